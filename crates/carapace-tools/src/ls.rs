//! `ls`: `path?` (default `/workspace`), `limit?` → entries with `name`, `kind`, `size`,
//! `mode`, `truncated`, and `total` (entries in the directory, when counted to the end).
//! Symlinks are listed as symlinks, never followed. `/` lists the session's mounts.
//!
//! A listing is bounded: at most `limit` entries (default [`DEFAULT_ENTRIES`], at most
//! [`MAX_ENTRIES`]), the first ones by name; the directory is streamed, never held whole, and
//! counted up to [`MAX_COUNT`] entries for `total` (carapace-fs `list_bounded`). Staging files
//! of carapace's own writes are neither listed nor counted.

use carapace_fs::ListOptions;
use carapace_policy::config::ToolProfile;
use carapace_policy::mode_string;
use carapace_policy::mounts::{self, Access};
use carapace_policy::tools_policy::{Effect, Section};
use serde_json::{Value, json};

use crate::args::Args;
use crate::files::{AtPath, target};
use crate::{ToolCall, ToolContext, ToolError, ToolSpec};

/// Entries returned when `limit` is not given.
pub(crate) const DEFAULT_ENTRIES: usize = 1000;
/// The most entries one call returns, whatever `limit` asks.
pub(crate) const MAX_ENTRIES: usize = 10_000;
/// The most entries counted for `total`; past it `total` is absent.
pub(crate) const MAX_COUNT: u64 = 1_000_000;

pub(crate) fn spec() -> ToolSpec {
    ToolSpec::new(
        "ls",
        format!(
            "List a directory (default /workspace): name, kind, size and mode of each entry, the first {DEFAULT_ENTRIES} by name (`limit`, up to {MAX_ENTRIES}); `truncated` and `total` say when there are more. `/` lists the mounts this session can see."
        ),
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "limit": {"type": "integer", "minimum": 1, "maximum": MAX_ENTRIES, "description": "Most entries to return"}
            }
        }),
    )
    .with_meta(Section::Fs, &[ToolProfile::Coding], &[Effect::ReadsWorkspace])
    .with_aliases(&[])
}

pub(crate) fn run(ctx: &ToolContext, call: &ToolCall) -> Result<Value, ToolError> {
    let a = Args::new("ls", &call.args)?;
    let path = a.opt_name(&["path"])?.unwrap_or(mounts::WORKSPACE);
    let limit = a.opt_u64("limit")?.map_or(DEFAULT_ENTRIES, |l| {
        usize::try_from(l)
            .unwrap_or(MAX_ENTRIES)
            .clamp(1, MAX_ENTRIES)
    });
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
    let listing = t
        .root
        .list_bounded(
            &t.rel,
            &ListOptions {
                max_entries: limit,
                max_scan: MAX_COUNT,
                hide_staging: true,
            },
        )
        .at(&t.container_path)?;
    let entries: Vec<Value> = listing
        .entries
        .into_iter()
        .map(|e| {
            json!({
                "name": e.name,
                "kind": e.meta.kind.as_str(),
                "size": e.meta.size,
                "mode": mode_string(e.meta.mode),
            })
        })
        .collect();
    let mut out = json!({
        "path": t.container_path,
        "entries": entries,
        "truncated": listing.truncated,
    });
    if let Some(total) = listing.total {
        out["total"] = total.into();
    }
    Ok(out)
}
