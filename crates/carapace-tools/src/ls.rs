//! `ls`: `path?` (default `/workspace`) → entries with `name`, `kind`, `size`, `mode`. Symlinks
//! are listed as symlinks, never followed. `/` lists the session's mounts.

use carapace_policy::mode_string;
use carapace_policy::mounts::{self, Access};
use serde_json::{Value, json};

use crate::args::Args;
use crate::files::target;
use crate::{ToolCall, ToolContext, ToolError, ToolSpec};

pub(crate) fn spec() -> ToolSpec {
    ToolSpec {
        name: "ls".into(),
        description: "List a directory (default /workspace): name, kind, size and mode of each entry. `/` lists the mounts this session can see.".into(),
        input_schema: json!({
            "type": "object",
            "properties": { "path": {"type": "string"} }
        }),
    }
}

pub(crate) fn run(ctx: &ToolContext, call: &ToolCall) -> Result<Value, ToolError> {
    let a = Args::new("ls", &call.args)?;
    let path = a.opt_str(&["path"])?.unwrap_or(mounts::WORKSPACE);
    let session = ctx.session(call)?;
    if mounts::normalize(path.trim()).as_deref() == Some("/") {
        let entries: Vec<Value> = session
            .table
            .mounts
            .iter()
            .map(|m| {
                json!({
                    "name": m.container_path.trim_start_matches('/'),
                    "kind": "dir",
                    "mount": true,
                    "writable": m.writable,
                })
            })
            .collect();
        return Ok(json!({ "path": "/", "entries": entries }));
    }
    let t = target(&session, path, Access::Read)?;
    let entries: Vec<Value> = t
        .root
        .list(&t.rel)?
        .into_iter()
        .filter(|e| !e.name.starts_with(carapace_fs::STAGING_PREFIX))
        .map(|e| {
            json!({
                "name": e.name,
                "kind": e.meta.kind.as_str(),
                "size": e.meta.size,
                "mode": mode_string(e.meta.mode),
            })
        })
        .collect();
    Ok(json!({ "path": t.container_path, "entries": entries }))
}
