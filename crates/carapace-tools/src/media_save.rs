//! `media_save`: `path` (an agent path) or `url` or `base64` (+ `filename`) → a file in the
//! media store (`media.fileMode`, default 0644, whatever the umask): `path`, `name`, `mime`,
//! `bytes`, `mode`. The returned host path is what `message` accepts as an attachment.
//!
//! Saving a `path` runs the outbound reader's checks (`carapace_media::check_file`, the one
//! home of that rule): the media copy is sendable, so a file `message` would refuse — private
//! (no others-read bit), hard-linked, on a user bind, a symlink, outside the session's roots —
//! is refused here with the same code, and nothing is copied.

use base64::Engine;
use carapace_media::{MediaRef, OutboundPolicy, SavedMedia, media_ref};
use carapace_policy::config::ToolProfile;
use carapace_policy::tools_policy::{Effect, Section};
use serde_json::{Value, json};

use crate::args::Args;
use crate::{ToolCall, ToolContext, ToolError, ToolSpec};

pub(crate) fn spec() -> ToolSpec {
    ToolSpec::new(
        "media_save",
        "Save a file into the media store (mode 0644, ready to send with `message`): `path` (/workspace/... or relative; the same checks as sending it: a private 0600 file, a hard link or a symlink is refused), or `url` (http/https download; private addresses refused), or `base64` with `filename`. Returns the media path, mime and bytes.",
        json!({
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "url": {"type": "string"},
                "base64": {"type": "string"},
                "filename": {"type": "string"}
            }
        }),
    )
    .with_meta(Section::Media, &[ToolProfile::Coding], &[Effect::ReadsWorkspace, Effect::WritesMedia, Effect::Network])
    .with_aliases(&["filePath", "file_path", "buffer"])
}

fn result(s: SavedMedia) -> Value {
    json!({
        "path": s.path,
        "name": s.name,
        "mime": s.mime,
        "bytes": s.bytes,
        "mode": s.mode,
    })
}

pub(crate) async fn run(ctx: &ToolContext, call: &ToolCall) -> Result<Value, ToolError> {
    let a = Args::new("media_save", &call.args)?;
    let path = a.opt_name(&["path", "filePath", "file_path"])?;
    let url = a.opt_name(&["url"])?;
    let b64 = a.opt_str(&["base64", "buffer"])?;
    let filename = a.opt_name(&["filename"])?;
    let given = [path.is_some(), url.is_some(), b64.is_some()]
        .iter()
        .filter(|x| **x)
        .count();
    if given != 1 {
        return Err(ToolError::bad_request(
            "media_save: give exactly one of path, url or base64",
        ));
    }
    let store = ctx.media_store()?;
    if let Some(u) = url {
        if let MediaRef::Path(_) = media_ref::classify(u)? {
            return Err(ToolError::bad_request(format!(
                "media_save: url {u:?} is not an http(s) URL"
            ))
            .with_hint("give a local file as `path`")
            .with_detail("argument", "url"));
        }
        return Ok(result(store.download(u).await?));
    }
    if let Some(b) = b64 {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .map_err(|e| ToolError::bad_request(format!("media_save: base64 is not valid: {e}")))?;
        return Ok(result(store.save_bytes(&bytes, filename, None)?));
    }
    let path = path.unwrap_or_default().to_string();
    // A copy in the media store is sendable, so saving a path is leaving: the outbound
    // reader's checks decide (allowed roots, no link, no hard link, not private), not a copy
    // of them.
    let session = ctx.session(call)?;
    let policy = OutboundPolicy::for_session(&ctx.config, &session.eff);
    let saved = tokio::task::spawn_blocking(move || store.import_checked(&policy, &path))
        .await
        .map_err(|e| ToolError::new(carapace_policy::ErrorCode::Internal, e.to_string()))??;
    Ok(result(saved))
}
