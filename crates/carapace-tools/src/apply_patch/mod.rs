//! `apply_patch`: `input` in OpenClaw's (Codex's) patch format → files `added`, `updated`,
//! `deleted`, and OpenClaw's `summary` text. The grammar is in `parse.rs`.
//!
//! A patch applies completely or not at all:
//!
//! 1. **parse** the whole input (`parse.rs`);
//! 2. **plan**: map every path through the mount table (writes only to writable mounts), read
//!    the files, apply every operation in order to an in-memory view and locate every hunk
//!    (`plan.rs`) — a patch that does not fit changes nothing;
//! 3. **commit**: apply the net change per file, keeping each original until all are in place,
//!    and roll back if the OS refuses a step halfway (`commit.rs`).
//!
//! Each file is written atomically through carapace-fs (new files at `tools.fs.newFileMode`,
//! replaced ones keep their mode).

mod commit;
mod hunks;
mod parse;
mod plan;

use carapace_policy::config::ToolProfile;
use carapace_policy::tools_policy::{Effect, Section};
use serde_json::{Value, json};

use crate::args::Args;
use crate::{ToolCall, ToolContext, ToolError, ToolSpec};
use plan::Change;

pub(crate) fn spec() -> ToolSpec {
    ToolSpec::new(
        "apply_patch",
        "Apply a patch to one or more files using the apply_patch format. The input should include *** Begin Patch and *** End Patch markers.",
        json!({
            "type": "object",
            "properties": {
                "input": {"type": "string", "description": "Patch content using the *** Begin Patch/End Patch format."}
            },
            "required": ["input"]
        }),
    )
    .with_meta(Section::Fs, &[ToolProfile::Coding], &[Effect::ReadsWorkspace, Effect::WritesWorkspace])
    .with_aliases(&["patch"])
}

pub(crate) fn run(ctx: &ToolContext, call: &ToolCall) -> Result<Value, ToolError> {
    let a = Args::new("apply_patch", &call.args)?;
    let input = a.str(&["input", "patch"])?;
    let ops = parse::parse(input)?;
    let session = ctx.session(call)?;
    let max = ctx.config.file.tools.fs.max_read_bytes;
    let planned = plan::plan(&session, &ops, max)?;
    commit::commit(&session, &planned)?;

    let (mut added, mut updated, mut deleted) = (Vec::new(), Vec::new(), Vec::new());
    for e in &planned.entries {
        let p = e.target.container_path.clone();
        match e.change() {
            Change::Added => added.push(p),
            Change::Updated => updated.push(p),
            Change::Deleted => deleted.push(p),
            Change::None => {}
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
