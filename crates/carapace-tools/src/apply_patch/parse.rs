//! The patch grammar (OpenClaw's, which is Codex's):
//!
//! ```text
//! Patch      := [ "<<EOF" NL ] "*** Begin Patch" NL { FileOp } "*** End Patch" [ NL "EOF" ]
//! FileOp     := AddFile | DeleteFile | UpdateFile
//! AddFile    := "*** Add File: " path NL { "+" line NL }
//! DeleteFile := "*** Delete File: " path NL
//! UpdateFile := "*** Update File: " path NL [ "*** Move to: " path NL ] { Hunk }
//! Hunk       := "@@" [ " " context ] NL { (" " | "-" | "+") line NL } [ "*** End of File" NL ]
//! ```
//!
//! Blank lines around the patch and between file sections are ignored; file headers may be
//! indented; the first hunk of an update may omit its `@@` line; an update may be a pure move
//! (no hunks). CRLF line ends are accepted.

use crate::ToolError;

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
    // A patch pasted as a shell heredoc (`<<EOF` … `EOF`) is accepted, like OpenClaw does.
    if end >= start + 2
        && matches!(lines[start].trim(), "<<EOF" | "<<'EOF'" | "<<\"EOF\"")
        && lines[end - 1].trim().ends_with("EOF")
        && lines[start + 1].trim() == "*** Begin Patch"
    {
        start += 1;
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
        // File headers may be indented (OpenClaw trims them); hunk lines may not.
        let l = body[i].trim();
        if let Some(p) = l.strip_prefix("*** Add File: ") {
            let mut contents = String::new();
            i += 1;
            while i < body.len() && !body[i].trim_start().starts_with("*** ") {
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
                && let Some(m) = body[i].trim().strip_prefix("*** Move to: ")
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
        } else if l.is_empty() {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn openclaw_leniencies() {
        // A heredoc wrapper, indented headers, CRLF.
        let p = "<<'EOF'\r\n*** Begin Patch\r\n  *** Add File: a.txt\r\n+x\r\n  *** Delete File: b.txt\r\n*** End Patch\r\nEOF\r\n";
        let ops = parse(p).unwrap();
        assert_eq!(
            ops,
            vec![
                Op::Add {
                    path: "a.txt".into(),
                    contents: "x\n".into()
                },
                Op::Delete {
                    path: "b.txt".into()
                }
            ]
        );
        // A pure move.
        let ops =
            parse("*** Begin Patch\n*** Update File: a\n  *** Move to: b\n*** End Patch").unwrap();
        assert!(
            matches!(&ops[0], Op::Update { move_to: Some(m), chunks, .. } if m == "b" && chunks.is_empty())
        );
    }

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
}
