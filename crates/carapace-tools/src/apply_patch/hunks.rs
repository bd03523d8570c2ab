//! Locating and applying the hunks of an update: each hunk's context and removed lines are
//! found in order (exact, then ignoring trailing whitespace, then ignoring surrounding
//! whitespace), then all edits are spliced in at once.

use crate::ToolError;
use crate::apply_patch::parse::Chunk;

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::apply_patch::parse::{Op, parse};

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
