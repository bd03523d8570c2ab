//! `message`: send text and files to a channel (docs/channels.md).
//!
//! - `send`: `channel`, `target`, `message?`, `media?` / `path?` / `filePath?` (one path or a
//!   list), `buffer?` (base64) + `filename?`, `caption?`; `MEDIA:<path>` lines in the message
//!   are attachments too (and are removed from the text).
//! - `upload-file`: `channel`, `target`, `filePath`, `caption?`.
//!
//! Every file goes through the outbound reader of carapace-media (allowed roots → regular
//! file, no symlink escape, not hardlinked → channel size limit → permission policy) **before
//! anything is sent**; the fd that passed is the fd the channel streams. A `buffer`, and an
//! http(s) URL given as a path (`HTTP://` too: schemes are case-insensitive), are saved through
//! the media store first (0644; downloads with the private-address guard), then sent like any
//! media file. Other schemes (`file:`, `data:`, `ftp://`, …) are refused, never read as paths
//! (`carapace_media::media_ref`).
//!
//! Result: `channel`, `target`, `messageId`, `messageIds`, and per attachment `path`,
//! `filename`, `mime`, `bytes`, `remoteId`.

use carapace_policy::config::ToolProfile;
use carapace_policy::tools_policy::{Effect, Section};
use std::sync::Arc;

use base64::Engine;
use carapace_channels::from_config::adapter_from_config;
use carapace_channels::{ChannelAdapter, OutboundMessage, Progress, Target};
use carapace_media::{MediaRef, OutboundPolicy, media_ref, open_outbound};
use serde_json::{Value, json};

use crate::args::{Args, no_nul};
use crate::{ToolCall, ToolContext, ToolError, ToolSpec};

pub(crate) fn spec() -> ToolSpec {
    ToolSpec::new(
        "message",
        "Send a message and/or files to a chat channel. action \"send\": channel, target (user:<id>, channel:<id>, room:<id>), message, media/path/filePath (one path or a list; /workspace/... or media-store paths), buffer (base64) + filename, caption; lines \"MEDIA:<path>\" in the message attach that file. action \"upload-file\": channel, target, filePath, caption. Files must be readable by others (0644): a 0600 file is refused with OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE (chmod 644 a file meant to be shared; media_save applies the same checks). http(s) URLs are downloaded first; other URL schemes are refused.",
        json!({
            "type": "object",
            "properties": {
                "action": {"type": "string", "enum": ["send", "upload-file"]},
                "channel": {"type": "string", "description": "Configured channel id (default: inbox)"},
                "target": {"type": "string", "description": "user:<id>, channel:<id> or room:<id>"},
                "message": {"type": "string"},
                "caption": {"type": "string"},
                "media": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                "path": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                "filePath": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                "buffer": {"type": "string", "description": "File content, base64"},
                "filename": {"type": "string"},
                "threadId": {"type": "string", "description": "Post in this thread of the target (Slack thread_ts, Discord thread channel id, Telegram topic id, Matrix thread root event id); default: the thread the conversation is in"}
            },
            "required": ["target"]
        }),
    )
    .with_meta(Section::Messaging, &[ToolProfile::Messaging], &[Effect::ReadsWorkspace, Effect::SendsOutbound, Effect::Network])
    .with_aliases(&["to", "text", "file_path", "mediaUrl"])
}

/// Splits `MEDIA:<path>` lines out of a message: (remaining text, paths).
pub fn split_media_lines(text: &str) -> (String, Vec<String>) {
    let mut keep = Vec::new();
    let mut paths = Vec::new();
    for line in text.lines() {
        match line.trim().strip_prefix("MEDIA:") {
            Some(p) if !p.trim().is_empty() => paths.push(p.trim().to_string()),
            _ => keep.push(line),
        }
    }
    (keep.join("\n").trim().to_string(), paths)
}

fn paths_arg(call: &ToolCall, names: &[&str]) -> Result<Vec<String>, ToolError> {
    let mut out = Vec::new();
    let Some(obj) = call.args.as_object() else {
        return Ok(out);
    };
    for n in names {
        match obj.get(*n) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => {
                no_nul("message", n, s)?;
                out.push(s.clone());
            }
            Some(Value::Array(a)) => {
                for v in a {
                    match v {
                        Value::String(s) => {
                            no_nul("message", n, s)?;
                            out.push(s.clone());
                        }
                        _ => {
                            return Err(ToolError::bad_request(format!(
                                "message: {n} must be a path or a list of paths"
                            ))
                            .with_detail("argument", *n));
                        }
                    }
                }
            }
            Some(_) => {
                return Err(ToolError::bad_request(format!(
                    "message: {n} must be a path or a list of paths"
                ))
                .with_detail("argument", *n));
            }
        }
    }
    Ok(out)
}

/// Runs the tool (see the module docs).
pub(crate) async fn run(ctx: &ToolContext, call: &ToolCall) -> Result<Value, ToolError> {
    send(ctx, call, None).await
}

/// The tool with a progress callback (the CLI's progress bar).
pub async fn send(
    ctx: &ToolContext,
    call: &ToolCall,
    progress: Option<Progress>,
) -> Result<Value, ToolError> {
    let a = Args::new("message", &call.args)?;
    let action = match call.action.as_deref() {
        Some(x) => x.to_string(),
        None => a.opt_str(&["action"])?.unwrap_or("send").to_string(),
    };
    let upload = match action.as_str() {
        "send" => false,
        "upload-file" | "uploadFile" | "upload_file" => true,
        other => {
            return Err(
                ToolError::bad_request(format!("message: unknown action {other:?}"))
                    .with_hint("use \"send\" or \"upload-file\"")
                    .with_detail("action", other),
            );
        }
    };
    let channel = a
        .opt_name(&["channel"])?
        .map(str::to_string)
        .or_else(|| call.channel.clone())
        .unwrap_or_else(|| "inbox".to_string());
    let target = Target::parse(a.name(&["target", "to"])?)?;
    let caption = a.opt_str(&["caption"])?.map(str::to_string);
    // A number is accepted too (Telegram topic ids are integers).
    let thread = match call.args.get("threadId") {
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => a.opt_name(&["threadId"])?.map(str::to_string),
    }
    .filter(|t| !t.is_empty());
    let mut text = a.opt_str(&["message", "text"])?.map(str::to_string);
    let mut paths;
    let mut buffer = None;
    if upload {
        paths = paths_arg(call, &["filePath", "file_path", "path"])?;
        if paths.len() != 1 {
            return Err(
                ToolError::bad_request("message upload-file: give exactly one filePath")
                    .with_detail("argument", "filePath"),
            );
        }
        text = None;
    } else {
        paths = paths_arg(
            call,
            &["media", "path", "filePath", "file_path", "mediaUrl"],
        )?;
        if let Some(t) = &text {
            let (rest, more) = split_media_lines(t);
            paths.extend(more);
            text = (!rest.is_empty()).then_some(rest);
        }
        if let Some(b) = a.opt_str(&["buffer"])? {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .map_err(|e| {
                    ToolError::bad_request(format!("message: buffer is not valid base64: {e}"))
                })?;
            buffer = Some((bytes, a.opt_name(&["filename"])?.map(str::to_string)));
        }
    }
    let config = Arc::clone(&ctx.config);
    let adapter: Arc<dyn ChannelAdapter> = adapter_from_config(&config, &channel)?;
    let session = ctx.session(call)?;
    let policy = OutboundPolicy::for_session(&config, &session.eff);
    let limit = adapter.max_attachment_bytes();
    // http(s) URLs (any case) are URLs; other schemes are refused, not taken as paths.
    let mut urls = Vec::new();
    for (i, p) in paths.iter().enumerate() {
        if let MediaRef::Url(u) = media_ref::classify(p)? {
            urls.push((i, u.to_string()));
        }
    }
    if buffer.is_some() || !urls.is_empty() {
        let store = ctx.media_store()?;
        // URLs are downloaded into the media store first (SSRF guard, caps), then sent from
        // there like any media file.
        for (i, u) in urls {
            paths[i] = store
                .download(&u)
                .await?
                .path
                .to_string_lossy()
                .into_owned();
        }
        if let Some((bytes, filename)) = buffer {
            let saved = store.save_bytes(&bytes, filename.as_deref(), None)?;
            paths.push(saved.path.to_string_lossy().into_owned());
        }
    }
    // Every check, for every file, before any byte leaves.
    let mut files = Vec::with_capacity(paths.len());
    for p in &paths {
        files.push(open_outbound(&policy, p, &channel, limit)?);
    }
    let described: Vec<(String, String)> = files
        .iter()
        .map(|f| (f.path.clone(), f.attachment.mime.clone()))
        .collect();
    let msg = OutboundMessage {
        target: target.clone(),
        text,
        caption,
        attachments: files.into_iter().map(|f| f.attachment).collect(),
        progress,
        thread,
    };
    let delivered = adapter.send(msg).await?;
    let attachments: Vec<Value> = delivered
        .attachments
        .iter()
        .zip(described)
        .map(|(d, (path, mime))| {
            json!({
                "path": path,
                "filename": d.filename,
                "mime": mime,
                "bytes": d.bytes,
                "remoteId": d.remote_id,
            })
        })
        .collect();
    let mut ids = vec![delivered.remote_id.clone()];
    ids.extend(delivered.extra_message_ids.iter().cloned());
    ids.retain(|s| !s.is_empty());
    Ok(json!({
        "channel": channel,
        "target": target.to_string(),
        "messageId": delivered.remote_id,
        "messageIds": ids,
        "attachments": attachments,
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn media_lines() {
        let (t, p) = split_media_lines("hi\nMEDIA:/workspace/a.png\n  MEDIA: b.png \nbye");
        assert_eq!(t, "hi\nbye");
        assert_eq!(p, vec!["/workspace/a.png", "b.png"]);
        let (t, p) = split_media_lines("MEDIA:x.png");
        assert_eq!((t.as_str(), p.len()), ("", 1));
    }
}
