//! `read`: `path`, `offset?` (1-based first line), `limit?` (lines) → `content` (UTF-8 text) or
//! `base64` (binary), `size`. Read whole, a file over `tools.fs.maxReadBytes` is `TOO_LARGE`;
//! a window of it (offset/limit) is fine, and a window is itself capped at `maxReadBytes`.
//!
//! A window holds whole lines only (`lines`, `truncated`, `nextOffset` to continue,
//! `totalLines` when the read reached the end). Whatever the file's shape, a call costs at
//! most `maxReadBytes` of memory for the content and reads at most [`SCAN_FACTOR`] ×
//! `maxReadBytes` to find the first line (carapace-fs `read_lines`; holes of sparse files are
//! skipped unread). A window whose first line alone is over the cap, and one that starts
//! beyond the scan budget, are `TOO_LARGE` with a hint to use byte ranges or `sed`/`tail`.

use base64::Engine;
use carapace_fs::{FsError, LineQuery};
use carapace_policy::ErrorCode;
use carapace_policy::config::ToolProfile;
use carapace_policy::mounts::Access;
use carapace_policy::tools_policy::{Effect, Section};
use serde_json::{Value, json};

use crate::args::Args;
use crate::files::{AtPath, read_options, target};
use crate::{ToolCall, ToolContext, ToolError, ToolSpec};

pub(crate) fn spec() -> ToolSpec {
    ToolSpec::new(
        "read",
        "Read a file. Paths are /workspace/..., /agent/... or relative to /workspace. Text comes back as `content`, binary as `base64`. For large files pass `offset` (1-based line) and `limit` (lines): a window holds whole lines up to tools.fs.maxReadBytes; when `truncated` is true, continue at `nextOffset`.",
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "File path"},
                "offset": {"type": "integer", "minimum": 1, "description": "First line to read (1-based)"},
                "limit": {"type": "integer", "minimum": 1, "description": "Number of lines to read"}
            },
            "required": ["path"]
        }),
    )
    .with_meta(Section::Fs, &[ToolProfile::Coding], &[Effect::ReadsWorkspace])
    .with_aliases(&["file_path", "filePath"])
}

fn encode(bytes: Vec<u8>, out: &mut serde_json::Map<String, Value>) {
    match String::from_utf8(bytes) {
        Ok(s) if !s.contains('\0') => {
            out.insert("content".into(), s.into());
        }
        Ok(s) => {
            out.insert(
                "base64".into(),
                base64::engine::general_purpose::STANDARD
                    .encode(s.as_bytes())
                    .into(),
            );
        }
        Err(e) => {
            out.insert(
                "base64".into(),
                base64::engine::general_purpose::STANDARD
                    .encode(e.as_bytes())
                    .into(),
            );
        }
    }
}

/// How far into a file a window may start: bytes read while skipping to `offset`, as a
/// multiple of `tools.fs.maxReadBytes` (holes of sparse files are free), at least 1 MiB.
pub(crate) const SCAN_FACTOR: u64 = 64;
const MIN_SCAN: u64 = 1 << 20;

pub(crate) fn run(ctx: &ToolContext, call: &ToolCall) -> Result<Value, ToolError> {
    let a = Args::new("read", &call.args)?;
    let path = a.name(&["path", "file_path", "filePath"])?;
    let offset = a.opt_u64("offset")?;
    let limit = a.opt_u64("limit")?;
    let max = ctx.config.file.tools.fs.max_read_bytes;
    let session = ctx.session(call)?;
    let t = target(&session, path, Access::Read)?;
    let shown = t.container_path.clone();
    let mut out = serde_json::Map::new();
    out.insert("path".into(), shown.clone().into());

    if offset.is_none() && limit.is_none() {
        let bytes = t
            .root
            .read(&t.rel, &read_options(Some(max)))
            .map_err(|e| match e {
                FsError::TooLarge { size, limit, .. } => ToolError::new(
                    ErrorCode::TooLarge,
                    format!(
                        "{shown} is larger than tools.fs.maxReadBytes ({limit} bytes) and cannot be read whole"
                    ),
                )
                .with_hint("read a window of it with `offset` (1-based line) and `limit` (lines)")
                .with_detail("path", shown.clone())
                .with_detail("limit", limit)
                .with_detail("size", size.map(Value::from).unwrap_or(Value::Null)),
                e => e.with_path(&shown).into(),
            })?;
        out.insert("size".into(), bytes.len().into());
        encode(bytes, &mut out);
        return Ok(Value::Object(out));
    }

    let first = offset.unwrap_or(1).max(1);
    let vf = t.root.open_file(&t.rel, &read_options(None)).at(&shown)?;
    let size = vf.meta.size;
    let scan = max.saturating_mul(SCAN_FACTOR).max(MIN_SCAN);
    let w = vf
        .read_lines(&LineQuery {
            first,
            limit,
            max_bytes: max,
            max_scan: scan,
        })
        .map_err(|e| match e {
            FsError::LineTooLong { line, limit, .. } => ToolError::new(
                ErrorCode::TooLarge,
                format!(
                    "line {line} of {shown} is longer than tools.fs.maxReadBytes ({limit} bytes); not even that one line fits"
                ),
            )
            .with_hint("read that line in byte ranges with exec, e.g. `head -c 65536 FILE`, `dd if=FILE bs=65536 skip=N count=1` or `cut -c 1-65536`")
            .with_detail("path", shown.clone())
            .with_detail("line", line)
            .with_detail("limit", limit)
            .with_detail("size", size),
            FsError::ScanLimit { line, scanned, .. } => ToolError::new(
                ErrorCode::TooLarge,
                format!(
                    "line {line} of {shown} is beyond the first {scanned} bytes, the most a read scans to find a line ({SCAN_FACTOR} x tools.fs.maxReadBytes)"
                ),
            )
            .with_hint("extract those lines with exec, e.g. `sed -n 'N,Mp' FILE` or `tail -n K FILE`")
            .with_detail("path", shown.clone())
            .with_detail("line", line)
            .with_detail("scanned", scanned)
            .with_detail("size", size),
            e => e.with_path(&shown).into(),
        })?;
    out.insert("size".into(), size.into());
    out.insert("offset".into(), first.into());
    out.insert("lines".into(), w.lines.into());
    out.insert("truncated".into(), w.more.into());
    if w.more {
        out.insert("nextOffset".into(), (first + w.lines).into());
    }
    if let Some(total) = w.total_lines {
        out.insert("totalLines".into(), total.into());
    }
    encode(w.bytes, &mut out);
    Ok(Value::Object(out))
}
