//! Inbound media: a file that arrives with a message is fetched (capped), saved through the
//! media store (0644 whatever the umask, type sniffed from the bytes, `media.maxBytes`), then
//! copied into the session's workspace under `media/inbound/` — through carapace-fs, with the
//! mode the file tools give new files and the owner of the directory (the sandbox user's), so
//! `exec` in the session's sandbox can read it — and named to the model by the path it sees
//! there (`/workspace/media/inbound/<name>`). Images are also given to the model as images.

use std::path::{Path, PathBuf};

use base64::Engine;
use carapace_agent::ImageData;
use carapace_channels::inbound::{InboundAttachment, InboundSource};
use carapace_fs::WriteOptions;
use carapace_media::{MediaSettings, MediaStore};
use carapace_policy::CarapaceError;
use carapace_tools::{ToolCall, ToolContext};

/// Where inbound files go inside the session's workspace.
pub const INBOUND_DIR: &str = "media/inbound";
/// Largest image also given to the model as an image (bytes).
pub const MAX_MODEL_IMAGE_BYTES: u64 = 5 * 1024 * 1024;

/// One attachment, after placing it.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The path the model uses (`/workspace/media/inbound/…`), when it could be placed in the
    /// workspace.
    pub agent_path: Option<String>,
    /// The media-store copy.
    pub store_path: PathBuf,
    /// The sniffed type.
    pub mime: String,
    /// Size.
    pub bytes: u64,
    /// The image for the model, when it is one.
    pub image: Option<ImageData>,
    /// Why it is not in the workspace, when it is not.
    pub note: Option<String>,
}

/// The byte limit of inbound files of `channel`: its `mediaMaxMb`, capped by `media.maxBytes`.
pub fn inbound_limit(config: &carapace_policy::Config, channel: &str) -> u64 {
    let store = MediaSettings::from_config(config).max_bytes;
    let ch = config
        .file
        .channels
        .get(channel)
        .and_then(|c| c.media_max_mb)
        .map(|mb| (mb * 1024.0 * 1024.0) as u64);
    ch.map_or(store, |c| c.min(store))
}

fn what(a: &InboundAttachment) -> String {
    a.filename
        .clone()
        .unwrap_or_else(|| format!("an attachment ({:?})", a.kind).to_lowercase())
}

/// Fetches `att` through `source` and places it (see the module docs). `Err` is a note for the
/// model saying what could not be done and why.
pub async fn place(
    ctx: &ToolContext,
    source: &dyn InboundSource,
    att: &InboundAttachment,
    call: &ToolCall,
    limit: u64,
) -> Result<Placed, String> {
    let fetched = source.fetch_attachment(att, limit).await.map_err(|e| {
        format!(
            "{} could not be fetched: {}",
            what(att),
            e.to_envelope().message
        )
    })?;
    let ctx = ctx.clone();
    let att = att.clone();
    let call = call.clone();
    tokio::task::spawn_blocking(move || place_bytes(&ctx, &att, &call, &fetched.bytes))
        .await
        .map_err(|e| format!("placing the file failed: {e}"))?
}

fn place_bytes(
    ctx: &ToolContext,
    att: &InboundAttachment,
    call: &ToolCall,
    bytes: &[u8],
) -> Result<Placed, String> {
    let store = MediaStore::open(MediaSettings::from_config(&ctx.config)).map_err(|e| {
        format!(
            "the media store is unavailable: {}",
            e.to_envelope().message
        )
    })?;
    let declared = att.mime.as_deref();
    let saved = store
        .save_bytes(bytes, att.filename.as_deref(), declared)
        .map_err(|e| format!("{} was not saved: {}", what(att), e.to_envelope().message))?;
    let image = (saved.mime.starts_with("image/")
        && matches!(
            saved.mime.as_str(),
            "image/png" | "image/jpeg" | "image/gif" | "image/webp"
        )
        && saved.bytes <= MAX_MODEL_IMAGE_BYTES)
        .then(|| ImageData {
            mime: saved.mime.clone(),
            data: base64::engine::general_purpose::STANDARD.encode(bytes),
        });
    let mut placed = Placed {
        agent_path: None,
        store_path: saved.path.clone(),
        mime: saved.mime.clone(),
        bytes: saved.bytes,
        image,
        note: None,
    };
    match into_workspace(ctx, call, &store, &saved.name) {
        Ok(p) => placed.agent_path = Some(p),
        Err(why) => placed.note = Some(why),
    }
    Ok(placed)
}

fn into_workspace(
    ctx: &ToolContext,
    call: &ToolCall,
    store: &MediaStore,
    name: &str,
) -> Result<String, String> {
    let session = ctx
        .session(call)
        .map_err(|e| format!("the session's workspace is unavailable: {}", e.0.message))?;
    let mount = session
        .table
        .workspace()
        .ok_or_else(|| "the session has no workspace".to_string())?;
    if !mount.writable {
        return Err(format!(
            "the session's {} is read-only (workspaceAccess), so the file stays in the media store",
            mount.container_path
        ));
    }
    let root = session.open_mount(mount).map_err(|e| {
        format!(
            "the session's workspace is unavailable: {}",
            e.to_envelope().message
        )
    })?;
    root.mkdir_all(Path::new(INBOUND_DIR), session.new_dir_mode)
        .map_err(|e| format!("cannot create {INBOUND_DIR}: {}", e.to_envelope().message))?;
    let rel = Path::new(INBOUND_DIR).join(name);
    let opts = WriteOptions {
        new_file_mode: session.new_file_mode,
        force_mode: Some(session.new_file_mode),
        ..WriteOptions::default()
    };
    root.copy_in(store.root(), Path::new(name), &rel, &opts)
        .map_err(|e| format!("cannot place the file: {}", e.to_envelope().message))?;
    Ok(format!(
        "{}/{}",
        mount.container_path.trim_end_matches('/'),
        rel.display()
    ))
}
