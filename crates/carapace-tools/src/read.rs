//! `read`: `path`, `offset?` (1-based first line), `limit?` (lines) → `content` (UTF-8 text) or
//! `base64` (binary), `size`. Read whole, a file over `tools.fs.maxReadBytes` is `TOO_LARGE`;
//! a window of it (offset/limit) is fine, and a window is itself capped at `maxReadBytes`.

use std::io::{BufRead, BufReader, Read};

use base64::Engine;
use carapace_fs::FsError;
use carapace_policy::ErrorCode;
use carapace_policy::mounts::Access;
use serde_json::{Value, json};

use crate::args::Args;
use crate::files::{read_options, target};
use crate::{ToolCall, ToolContext, ToolError, ToolSpec};

pub(crate) fn spec() -> ToolSpec {
    ToolSpec {
        name: "read".into(),
        description: "Read a file. Paths are /workspace/..., /agent/... or relative to /workspace. Text comes back as `content`, binary as `base64`. For large files pass `offset` (1-based line) and `limit` (lines).".into(),
        input_schema: json!({
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "File path"},
                "offset": {"type": "integer", "minimum": 1, "description": "First line to read (1-based)"},
                "limit": {"type": "integer", "minimum": 1, "description": "Number of lines to read"}
            },
            "required": ["path"]
        }),
    }
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

pub(crate) fn run(ctx: &ToolContext, call: &ToolCall) -> Result<Value, ToolError> {
    let a = Args::new("read", &call.args)?;
    let path = a.str(&["path", "file_path", "filePath"])?;
    let offset = a.opt_u64("offset")?;
    let limit = a.opt_u64("limit")?;
    let max = ctx.config.file.tools.fs.max_read_bytes;
    let session = ctx.session(call)?;
    let t = target(&session, path, Access::Read)?;
    let mut out = serde_json::Map::new();
    out.insert("path".into(), t.container_path.clone().into());

    if offset.is_none() && limit.is_none() {
        let bytes = t.root.read(&t.rel, &read_options(Some(max))).map_err(|e| match e {
            FsError::TooLarge { size, limit, .. } => ToolError::new(
                ErrorCode::TooLarge,
                format!(
                    "{} is larger than tools.fs.maxReadBytes ({limit} bytes) and cannot be read whole",
                    t.container_path
                ),
            )
            .with_hint("read a window of it with `offset` (1-based line) and `limit` (lines)")
            .with_detail("path", t.container_path.clone())
            .with_detail("limit", limit)
            .with_detail("size", size.map(Value::from).unwrap_or(Value::Null)),
            e => e.into(),
        })?;
        out.insert("size".into(), bytes.len().into());
        encode(bytes, &mut out);
        return Ok(Value::Object(out));
    }

    let first = offset.unwrap_or(1).max(1);
    let vf = t.root.open_file(&t.rel, &read_options(None))?;
    let size = vf.meta.size;
    let mut reader = BufReader::new(vf.file).take(u64::MAX);
    let mut line = Vec::new();
    let mut window = Vec::new();
    let mut lineno = 0u64;
    let mut lines_read = 0u64;
    let mut truncated = false;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line).map_err(|e| {
            ToolError::new(
                ErrorCode::Internal,
                format!("reading {}: {e}", t.container_path),
            )
        })?;
        if n == 0 {
            break;
        }
        lineno += 1;
        if lineno < first {
            continue;
        }
        if limit.is_some_and(|l| lines_read >= l) {
            truncated = true;
            break;
        }
        if (window.len() + line.len()) as u64 > max {
            truncated = true;
            break;
        }
        window.extend_from_slice(&line);
        lines_read += 1;
    }
    out.insert("size".into(), size.into());
    out.insert("offset".into(), first.into());
    out.insert("lines".into(), lines_read.into());
    out.insert("truncated".into(), truncated.into());
    encode(window, &mut out);
    Ok(Value::Object(out))
}
