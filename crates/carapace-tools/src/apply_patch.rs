//! `apply_patch`: `input` in OpenClaw's (Codex's) patch format → files `added`, `updated`,
//! `deleted`.
//!
//! ```text
//! Patch      := "*** Begin Patch" NL { FileOp } "*** End Patch" [NL]
//! FileOp     := AddFile | DeleteFile | UpdateFile
//! AddFile    := "*** Add File: " path NL { "+" line NL }
//! DeleteFile := "*** Delete File: " path NL
//! UpdateFile := "*** Update File: " path NL [ "*** Move to: " path NL ] { Hunk }
//! Hunk       := "@@" [ " " context ] NL { (" " | "-" | "+") line NL } [ "*** End of File" NL ]
//! ```
//!
//! The whole patch is parsed, every path mapped through the mount table (writes only to
//! writable mounts) and every hunk located before anything is written; then the changes are
//! applied, each file atomically through carapace-fs.

use std::path::PathBuf;

use carapace_fs::{FileKind, FsError, RemoveOptions, SymlinkPolicy};
use carapace_policy::mounts::Access;
use serde_json::{Value, json};

use crate::args::Args;
use crate::files::{read_options, target, write};
use crate::{ToolCall, ToolContext, ToolError, ToolSpec};

pub(crate) fn spec() -> ToolSpec {
    ToolSpec {
        name: "apply_patch".into(),
        description: "Apply a patch to one or more files using the apply_patch format. The input should include *** Begin Patch and *** End Patch markers.".into(),
        input_schema: json!({
            "type": "object",
            "properties": {
                "input": {"type": "string", "description": "Patch content using the *** Begin Patch/End Patch format."}
            },
            "required": ["input"]
        }),
    }
}

/// One hunk of an update.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Chunk {
    pub context: Option<String>,
    pub old: Vec<String>,
    pub new: Vec<String>,
    pub eof: bool,
}

/// One file operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    Add {
        path: String,
        contents: String,
    },
    Delete {
        path: String,
    },
    Update {
        path: String,
        move_to: Option<String>,
        chunks: Vec<Chunk>,
    },
}

fn perr(line: usize, msg: impl std::fmt::Display) -> ToolError {
    ToolError::bad_request(format!("apply_patch: line {line}: {msg}"))
        .with_hint("the input must be `*** Begin Patch`, then `*** Add File: p` / `*** Update File: p` (with @@ hunks) / `*** Delete File: p` sections, then `*** End Patch`")
        .with_detail("line", line)
}

/// Parses a patch.
pub(crate) fn parse(input: &str) -> Result<Vec<Op>, ToolError> {
    let lines: Vec<&str> = input
        .lines()
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut start = 0;
    while start < lines.len() && lines[start].trim().is_empty() {
        start += 1;
    }
    let mut end = lines.len();
    while end > start && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    if start >= end || lines[start].trim() != "*** Begin Patch" {
        return Err(perr(
            start + 1,
            "the first line must be \"*** Begin Patch\"",
        ));
    }
    if lines[end - 1].trim() != "*** End Patch" {
        return Err(perr(end, "the last line must be \"*** End Patch\""));
    }
    let body = &lines[start + 1..end - 1];
    let base = start + 2; // 1-based line number of body[0]
    let mut ops = Vec::new();
    let mut i = 0;
    while i < body.len() {
        let l = body[i];
        if let Some(p) = l.strip_prefix("*** Add File: ") {
            let mut contents = String::new();
            i += 1;
            while i < body.len() && !body[i].starts_with("*** ") {
                match body[i].strip_prefix('+') {
                    Some(rest) => {
                        contents.push_str(rest);
                        contents.push('\n');
                    }
                    None => {
                        return Err(perr(
                            base + i,
                            "every line of an added file starts with '+'",
                        ));
                    }
                }
                i += 1;
            }
            ops.push(Op::Add {
                path: p.trim().to_string(),
                contents,
            });
        } else if let Some(p) = l.strip_prefix("*** Delete File: ") {
            ops.push(Op::Delete {
                path: p.trim().to_string(),
            });
            i += 1;
        } else if let Some(p) = l.strip_prefix("*** Update File: ") {
            i += 1;
            let mut move_to = None;
            if i < body.len()
                && let Some(m) = body[i].strip_prefix("*** Move to: ")
            {
                move_to = Some(m.trim().to_string());
                i += 1;
            }
            let mut chunks: Vec<Chunk> = Vec::new();
            let mut cur: Option<Chunk> = None;
            while i < body.len() {
                let h = body[i];
                if h == "*** End of File" {
                    let c = cur.get_or_insert_with(Chunk::default);
                    c.eof = true;
                    i += 1;
                    continue;
                }
                if h.starts_with("*** ") {
                    break;
                }
                if h == "@@" || h.starts_with("@@ ") {
                    if let Some(c) = cur.take() {
                        chunks.push(c);
                    }
                    let ctx = h
                        .strip_prefix("@@")
                        .map(str::trim)
                        .filter(|s| !s.is_empty());
                    cur = Some(Chunk {
                        context: ctx.map(str::to_string),
                        ..Chunk::default()
                    });
                    i += 1;
                    continue;
                }
                let c = cur.get_or_insert_with(Chunk::default);
                if c.eof {
                    return Err(perr(base + i, "a hunk line after \"*** End of File\""));
                }
                match h.chars().next() {
                    Some('+') => c.new.push(h[1..].to_string()),
                    Some('-') => c.old.push(h[1..].to_string()),
                    Some(' ') => {
                        c.old.push(h[1..].to_string());
                        c.new.push(h[1..].to_string());
                    }
                    None => {
                        c.old.push(String::new());
                        c.new.push(String::new());
                    }
                    Some(_) => {
                        return Err(perr(
                            base + i,
                            format!("hunk lines start with ' ', '-' or '+', not {h:?}"),
                        ));
                    }
                }
                i += 1;
            }
            if let Some(c) = cur.take() {
                chunks.push(c);
            }
            if chunks.is_empty() && move_to.is_none() {
                return Err(perr(
                    base + i,
                    format!("update of {} has no hunks", p.trim()),
                ));
            }
            ops.push(Op::Update {
                path: p.trim().to_string(),
                move_to,
                chunks,
            });
        } else if l.trim().is_empty() {
            i += 1;
        } else {
            return Err(perr(
                base + i,
                format!(
                    "expected \"*** Add File:\", \"*** Update File:\" or \"*** Delete File:\", found {l:?}"
                ),
            ));
        }
    }
    if ops.is_empty() {
        return Err(perr(start + 1, "the patch changes no file"));
    }
    Ok(ops)
}

/// Finds `pat` in `lines` at or after `from`: exact, then ignoring trailing whitespace, then
/// ignoring surrounding whitespace. With `eof`, a match at the very end is preferred.
fn seek(lines: &[String], pat: &[String], from: usize, eof: bool) -> Option<usize> {
    if pat.is_empty() {
        return Some(lines.len());
    }
    if pat.len() > lines.len() {
        return None;
    }
    let eqs: [fn(&str, &str) -> bool; 3] = [
        |a, b| a == b,
        |a, b| a.trim_end() == b.trim_end(),
        |a, b| a.trim() == b.trim(),
    ];
    for eq in eqs {
        let matches = |s: usize| pat.iter().enumerate().all(|(k, p)| eq(&lines[s + k], p));
        if eof {
            let s = lines.len() - pat.len();
            if s >= from && matches(s) {
                return Some(s);
            }
        }
        if let Some(s) = (from..=lines.len() - pat.len()).find(|&s| matches(s)) {
            return Some(s);
        }
    }
    None
}

/// Applies the hunks to `text`.
pub(crate) fn apply_chunks(text: &str, chunks: &[Chunk], shown: &str) -> Result<String, ToolError> {
    let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
    if lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    let mut cursor = 0usize;
    let mut edits: Vec<(usize, usize, Vec<String>)> = Vec::new();
    for (n, c) in chunks.iter().enumerate() {
        if let Some(ctx) = &c.context {
            match (cursor..lines.len()).find(|&i| lines[i].trim() == ctx.trim()) {
                Some(i) => cursor = i + 1,
                None => {
                    return Err(ToolError::bad_request(format!(
                        "apply_patch: hunk {} of {shown}: context line {ctx:?} not found",
                        n + 1
                    ))
                    .with_detail("path", shown));
                }
            }
        }
        let at = seek(&lines, &c.old, cursor, c.eof).ok_or_else(|| {
            ToolError::bad_request(format!(
                "apply_patch: hunk {} of {shown} does not match the file",
                n + 1
            ))
            .with_hint("read the file again; the lines to remove and the context must match it")
            .with_detail("path", shown)
            .with_detail("expected", c.old.join("\n"))
        })?;
        edits.push((at, c.old.len(), c.new.clone()));
        cursor = at + c.old.len();
    }
    for (at, len, new) in edits.into_iter().rev() {
        lines.splice(at..at + len, new);
    }
    let mut out = lines.join("\n");
    out.push('\n');
    Ok(out)
}

enum Planned {
    Write { path: String, data: Vec<u8> },
    Remove { path: String },
}

pub(crate) fn run(ctx: &ToolContext, call: &ToolCall) -> Result<Value, ToolError> {
    let a = Args::new("apply_patch", &call.args)?;
    let input = a.str(&["input", "patch"])?;
    let ops = parse(input)?;
    let session = ctx.session(call)?;
    let max = ctx.config.file.tools.fs.max_read_bytes;

    // Plan everything first: paths mapped, files read, hunks located.
    let mut plan: Vec<Planned> = Vec::new();
    let (mut added, mut updated, mut deleted) = (Vec::new(), Vec::new(), Vec::new());
    for op in &ops {
        match op {
            Op::Add { path, contents } => {
                let t = target(&session, path, Access::Write)?;
                added.push(t.container_path.clone());
                plan.push(Planned::Write {
                    path: path.clone(),
                    data: contents.clone().into_bytes(),
                });
            }
            Op::Delete { path } => {
                let t = target(&session, path, Access::Write)?;
                let meta = t.root.stat(&t.rel)?;
                if meta.kind != FileKind::File {
                    return Err(FsError::NotRegularFile {
                        path: PathBuf::from(&t.container_path),
                        kind: meta.kind,
                    }
                    .into());
                }
                deleted.push(t.container_path.clone());
                plan.push(Planned::Remove { path: path.clone() });
            }
            Op::Update {
                path,
                move_to,
                chunks,
            } => {
                let t = target(&session, path, Access::Write)?;
                let mut opts = read_options(Some(max));
                opts.symlinks = SymlinkPolicy::RefuseFinal;
                let bytes = t.root.read(&t.rel, &opts)?;
                let text = String::from_utf8(bytes).map_err(|_| {
                    ToolError::bad_request(format!(
                        "apply_patch: {} is not UTF-8 text",
                        t.container_path
                    ))
                })?;
                let new = if chunks.is_empty() {
                    text
                } else {
                    apply_chunks(&text, chunks, &t.container_path)?
                };
                match move_to {
                    Some(dest) => {
                        let d = target(&session, dest, Access::Write)?;
                        updated.push(d.container_path.clone());
                        deleted.push(t.container_path.clone());
                        plan.push(Planned::Write {
                            path: dest.clone(),
                            data: new.into_bytes(),
                        });
                        plan.push(Planned::Remove { path: path.clone() });
                    }
                    None => {
                        updated.push(t.container_path.clone());
                        plan.push(Planned::Write {
                            path: path.clone(),
                            data: new.into_bytes(),
                        });
                    }
                }
            }
        }
    }

    for p in plan {
        match p {
            Planned::Write { path, data } => {
                let t = target(&session, &path, Access::Write)?;
                write(&session, &t, &data)?;
            }
            Planned::Remove { path } => {
                let t = target(&session, &path, Access::Write)?;
                t.root.remove(&t.rel, &RemoveOptions::default())?;
            }
        }
    }
    let mut summary = String::from("Success. Updated the following files:");
    for (tag, list) in [("A", &added), ("M", &updated), ("D", &deleted)] {
        for p in list {
            summary.push_str(&format!("\n{tag} {p}"));
        }
    }
    Ok(json!({ "added": added, "updated": updated, "deleted": deleted, "summary": summary }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_all_ops() {
        let p = "*** Begin Patch\n*** Add File: hello.txt\n+Hello\n+world\n*** Update File: src/app.py\n*** Move to: src/main.py\n@@ def greet():\n-print(\"Hi\")\n+print(\"Hello, world!\")\n*** Delete File: obsolete.txt\n*** End Patch\n";
        let ops = parse(p).unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!(
            ops[0],
            Op::Add {
                path: "hello.txt".into(),
                contents: "Hello\nworld\n".into()
            }
        );
        match &ops[1] {
            Op::Update {
                path,
                move_to,
                chunks,
            } => {
                assert_eq!(path, "src/app.py");
                assert_eq!(move_to.as_deref(), Some("src/main.py"));
                assert_eq!(chunks[0].context.as_deref(), Some("def greet():"));
                assert_eq!(chunks[0].old, vec!["print(\"Hi\")"]);
            }
            _ => panic!(),
        }
        for bad in [
            "",
            "*** Add File: x\n+a\n*** End Patch",
            "*** Begin Patch\n*** Add File: x\n+a\n",
            "*** Begin Patch\n*** Add File: x\nno plus\n*** End Patch",
            "*** Begin Patch\n*** End Patch",
            "*** Begin Patch\n*** Frobnicate: x\n*** End Patch",
            "*** Begin Patch\n*** Update File: x\n*** End Patch",
            "*** Begin Patch\n*** Update File: x\n@@\n?bad\n*** End Patch",
        ] {
            assert_eq!(
                parse(bad).unwrap_err().code(),
                carapace_policy::ErrorCode::BadRequest,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn applies_hunks() {
        let text = "a\nb\nc\nd\ne\n";
        let ops = parse("*** Begin Patch\n*** Update File: f\n@@ b\n c\n-d\n+D\n@@\n-e\n+E\n+F\n*** End of File\n*** End Patch").unwrap();
        let Op::Update { chunks, .. } = &ops[0] else {
            panic!()
        };
        assert_eq!(
            apply_chunks(text, chunks, "f").unwrap(),
            "a\nb\nc\nD\nE\nF\n"
        );
        // Whitespace-tolerant match.
        let ops =
            parse("*** Begin Patch\n*** Update File: f\n@@\n-b  \n+B\n*** End Patch").unwrap();
        let Op::Update { chunks, .. } = &ops[0] else {
            panic!()
        };
        assert_eq!(apply_chunks(text, chunks, "f").unwrap(), "a\nB\nc\nd\ne\n");
        // Mismatch is a typed refusal.
        let ops =
            parse("*** Begin Patch\n*** Update File: f\n@@\n-zzz\n+y\n*** End Patch").unwrap();
        let Op::Update { chunks, .. } = &ops[0] else {
            panic!()
        };
        assert_eq!(
            apply_chunks(text, chunks, "f").unwrap_err().code(),
            carapace_policy::ErrorCode::BadRequest
        );
        // Pure addition goes to the end.
        let ops = parse("*** Begin Patch\n*** Update File: f\n@@\n+z\n*** End Patch").unwrap();
        let Op::Update { chunks, .. } = &ops[0] else {
            panic!()
        };
        assert_eq!(apply_chunks("a\n", chunks, "f").unwrap(), "a\nz\n");
    }
}
