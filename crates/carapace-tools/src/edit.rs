//! `edit`: `path`, `oldText`, `newText` → `path`, `replacements`. `oldText` must occur exactly
//! once (OpenClaw's rule: an ambiguous edit is refused, with the count). The rewrite is atomic
//! and keeps the file's mode.

use carapace_fs::SymlinkPolicy;
use carapace_policy::config::ToolProfile;
use carapace_policy::mounts::Access;
use carapace_policy::tools_policy::{Effect, Section};
use serde_json::{Value, json};

use crate::args::Args;
use crate::files::{AtPath, read_options, target, write};
use crate::{ToolCall, ToolContext, ToolError, ToolSpec};

pub(crate) fn spec() -> ToolSpec {
    ToolSpec::new(
        "edit",
        "Replace the one occurrence of `oldText` in a file with `newText`. Fails if `oldText` is missing or occurs more than once (add context to make it unique).",
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "oldText": {"type": "string", "description": "Exact text to replace (must be unique in the file)"},
                "newText": {"type": "string", "description": "Replacement text"}
            },
            "required": ["path", "oldText", "newText"]
        }),
    )
    .with_meta(Section::Fs, &[ToolProfile::Coding], &[Effect::ReadsWorkspace, Effect::WritesWorkspace])
    .with_aliases(&["file_path", "filePath", "old_string", "new_string"])
}

pub(crate) fn run(ctx: &ToolContext, call: &ToolCall) -> Result<Value, ToolError> {
    let a = Args::new("edit", &call.args)?;
    let path = a.name(&["path", "file_path", "filePath"])?;
    let old = a.str(&["oldText", "old_string"])?;
    let new = a.str(&["newText", "new_string"])?;
    if old.is_empty() {
        return Err(ToolError::bad_request("edit: oldText must not be empty"));
    }
    let session = ctx.session(call)?;
    let t = target(&session, path, Access::Write)?;
    let mut opts = read_options(Some(ctx.config.file.tools.fs.max_read_bytes));
    opts.symlinks = SymlinkPolicy::RefuseFinal;
    let bytes = t.root.read(&t.rel, &opts).at(&t.container_path)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        ToolError::bad_request(format!("edit: {} is not UTF-8 text", t.container_path))
            .with_hint("use write with base64 for binary files")
    })?;
    let count = text.matches(old).count();
    if count != 1 {
        let why = if count == 0 {
            "was not found"
        } else {
            "occurs more than once"
        };
        return Err(
            ToolError::bad_request(format!("edit: oldText {why} in {}", t.container_path))
                .with_hint(if count == 0 {
                    "read the file and copy the exact text, including whitespace"
                } else {
                    "include more surrounding lines in oldText so it matches exactly once"
                })
                .with_detail("path", t.container_path.clone())
                .with_detail("matches", count),
        );
    }
    let updated = text.replacen(old, new, 1);
    write(&session, &t, updated.as_bytes())?;
    Ok(json!({ "path": t.container_path, "replacements": 1 }))
}
