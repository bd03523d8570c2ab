//! `write`: `path`, `content` (or `base64`) → `path`, `bytes`, `mode` ("0644"). Atomic; a new
//! file gets `tools.fs.newFileMode` whatever the umask, a replaced file keeps its mode; missing
//! parents get `tools.fs.newDirMode`; a final symlink is refused, and links in parents may not
//! lead out of the mount.

use base64::Engine;
use carapace_policy::config::ToolProfile;
use carapace_policy::mode_string;
use carapace_policy::mounts::Access;
use carapace_policy::tools_policy::{Effect, Section};
use serde_json::{Value, json};

use crate::args::Args;
use crate::files::{target, write};
use crate::{ToolCall, ToolContext, ToolError, ToolSpec};

pub(crate) fn spec() -> ToolSpec {
    ToolSpec::new(
        "write",
        "Create or replace a file with `content` (text) or `base64` (binary). Parent directories are created. Paths are /workspace/... or relative to /workspace.",
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "content": {"type": "string"},
                "base64": {"type": "string", "description": "Binary content, base64-encoded (instead of content)"}
            },
            "required": ["path"]
        }),
    )
    .with_meta(Section::Fs, &[ToolProfile::Coding], &[Effect::WritesWorkspace])
    .with_aliases(&["file_path", "filePath"])
}

pub(crate) fn run(ctx: &ToolContext, call: &ToolCall) -> Result<Value, ToolError> {
    let a = Args::new("write", &call.args)?;
    let path = a.name(&["path", "file_path", "filePath"])?;
    let data: Vec<u8> = match (a.opt_str(&["content"])?, a.opt_str(&["base64"])?) {
        (Some(c), None) => c.as_bytes().to_vec(),
        (None, Some(b)) => base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .map_err(|e| ToolError::bad_request(format!("write: base64 is not valid: {e}")))?,
        (Some(_), Some(_)) => {
            return Err(ToolError::bad_request(
                "write: give either content or base64, not both",
            ));
        }
        (None, None) => {
            return Err(ToolError::bad_request(
                "write: missing required argument \"content\" (or \"base64\")",
            )
            .with_detail("argument", "content"));
        }
    };
    let session = ctx.session(call)?;
    let t = target(&session, path, Access::Write)?;
    let o = write(&session, &t, &data)?;
    Ok(json!({
        "path": t.container_path,
        "bytes": o.bytes,
        "mode": mode_string(o.mode),
        "created": o.created,
    }))
}
