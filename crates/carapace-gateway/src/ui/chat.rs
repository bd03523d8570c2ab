//! The chat view's API: a message in, the turn's events out as NDJSON (one JSON object per
//! line, flushed as they happen) and the files the agent sent (uploads: `upload.rs`).
//!
//! A file the agent attaches (`MEDIA:` line) is offered only when the outbound rules of
//! carapace-media let it leave for this session (the same checks as a send to any channel:
//! inside an allowed root, no symlink, not hardlinked, readable by others, within
//! `media.maxBytes`), and is checked again, on the opened fd, each time it is downloaded.
//! Images of a few safe types are served inline; everything else as a download.

use std::io::Read as _;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use carapace_media::{MediaSettings, OutboundPolicy, open_outbound};
use carapace_policy::session::SessionKey;
use carapace_policy::{CarapaceError, Config, ErrorCode, ErrorEnvelope, ResolveInput};
use serde::Deserialize;
use serde_json::{Value, json};

use super::backend::{ChatEvent, ChatTurn};
use super::guard::refuse;
use super::login::Session;
use super::state::{Sent, UiState};

/// The session the chat opens with.
pub const DEFAULT_WEB_SESSION: &str = "agent:main:web:direct:owner";
/// Image types shown inline (anything else is a download; SVG never renders).
const INLINE_TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

fn bad(msg: impl Into<String>) -> ErrorEnvelope {
    ErrorEnvelope::new(ErrorCode::BadRequest, msg)
}

/// The session key of a chat request: a `web` session (`agent:<id>:web:…`).
pub fn web_session(key: Option<&str>) -> Result<String, ErrorEnvelope> {
    let key = key.map(str::trim).filter(|k| !k.is_empty());
    let Some(k) = key else {
        return Ok(DEFAULT_WEB_SESSION.to_string());
    };
    let parsed = SessionKey::parse(k);
    if parsed.channel_segment() != Some("web") || k.len() > 256 {
        return Err(bad(format!("{k:?} is not a web chat session"))
            .with_hint("chat sessions have keys like agent:main:web:direct:owner"));
    }
    Ok(k.to_string())
}

/// The chat request.
#[derive(Debug, Deserialize)]
pub struct ChatRequest {
    session: Option<String>,
    text: String,
    #[serde(default)]
    uploads: Vec<String>,
}

fn ndjson_line(v: &Value) -> axum::body::Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    b.push(b'\n');
    axum::body::Bytes::from(b)
}

/// `POST /ui/api/chat`: runs a turn, streaming its events.
pub async fn send(
    State(st): State<UiState>,
    Extension(_login): Extension<Session>,
    axum::Json(req): axum::Json<ChatRequest>,
) -> Response {
    let Some(chat) = st.chat().cloned() else {
        return refuse(
            &ErrorEnvelope::new(
                ErrorCode::ModelNotConfigured,
                "no model is configured for the chat",
            )
            .with_hint(format!(
                "set {} in the config (and the provider under models.providers)",
                super::MODEL_SETTING
            ))
            .with_detail("setting", super::MODEL_SETTING),
        );
    };
    let key = match web_session(req.session.as_deref()) {
        Ok(k) => k,
        Err(e) => return refuse(&e),
    };
    let mut text = req.text.clone();
    let mut images = Vec::new();
    for id in &req.uploads {
        let Some(u) = st.uploads().get(id).filter(|u| u.session_key == key) else {
            return refuse(
                &bad(format!("no upload {id} for this session")).with_hint("upload the file again"),
            );
        };
        let at = match (&u.agent_path, &u.note) {
            (Some(p), _) => format!("at {p}"),
            (None, Some(n)) => format!("not in the workspace: {n}"),
            (None, None) => "in the media store".to_string(),
        };
        text.push_str(&format!(
            "\n[attached file: {} ({}, {} bytes) {at}]",
            u.name, u.mime, u.bytes
        ));
        images.extend(u.image.clone());
    }
    if text.trim().is_empty() {
        return refuse(&bad("the message is empty"));
    }
    let rx = chat.start(ChatTurn {
        session_key: key.clone(),
        text,
        images,
    });
    let st2 = st.clone();
    let stream = futures_util::stream::unfold(
        (rx, st2, key, false),
        |(mut rx, st, key, ended)| async move {
            if ended {
                return None;
            }
            let ev = rx.recv().await?;
            let last = matches!(ev, ChatEvent::Done { .. } | ChatEvent::Failed { .. });
            let v = page_event(&st, &key, ev);
            Some((
                Ok::<_, std::convert::Infallible>(ndjson_line(&v)),
                (rx, st, key, last),
            ))
        },
    );
    let mut r = Response::new(Body::from_stream(stream));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    r
}

/// An event as the page reads it: attachments checked and given an id.
fn page_event(st: &UiState, key: &str, ev: ChatEvent) -> Value {
    let ChatEvent::Attachment { path } = ev else {
        return serde_json::to_value(&ev).unwrap_or(Value::Null);
    };
    let config = st.config();
    match check_sent(&config, key, &path) {
        Ok(f) => {
            let sent = Sent {
                path: path.clone(),
                session_key: key.to_string(),
            };
            match st.sent().insert(sent) {
                Ok(id) => json!({
                    "type": "attachment",
                    "id": id,
                    "url": format!("/ui/api/media/{id}"),
                    "name": f.attachment.filename,
                    "mime": f.attachment.mime,
                    "bytes": f.attachment.size,
                    "inline": INLINE_TYPES.contains(&f.attachment.mime.as_str()),
                }),
                Err(e) => json!({"type": "attachment_refused", "path": path, "error": e}),
            }
        }
        Err(e) => json!({"type": "attachment_refused", "path": path, "error": e}),
    }
}

/// The outbound checks for a file the agent in `key` sent.
fn check_sent(
    config: &Config,
    key: &str,
    path: &str,
) -> Result<carapace_media::OutboundFile, ErrorEnvelope> {
    let eff = config
        .resolve(&ResolveInput {
            session_key: Some(key),
            ..ResolveInput::default()
        })
        .map_err(|e| e.to_envelope())?;
    let policy = OutboundPolicy::for_session(config, &eff);
    let limit = MediaSettings::from_config(config).max_bytes;
    open_outbound(&policy, path, "web", limit).map_err(|e| e.to_envelope())
}

/// `GET /ui/api/media/{id}`: a file the agent sent, checked again on the opened fd.
pub async fn media(State(st): State<UiState>, Path(id): Path<String>) -> Response {
    let Some(sent) = st.sent().get(&id) else {
        return refuse(
            &ErrorEnvelope::new(ErrorCode::NotFound, "no such file was sent here")
                .with_hint("files are remembered while the gateway runs"),
        );
    };
    let config = st.config();
    let mut f = match check_sent(&config, &sent.session_key, &sent.path) {
        Ok(f) => f,
        Err(e) => return refuse(&e),
    };
    let mut bytes = Vec::new();
    if let Err(e) = f.attachment.file.read_to_end(&mut bytes) {
        return refuse(&ErrorEnvelope::new(
            ErrorCode::Internal,
            format!("reading {} failed: {e}", sent.path),
        ));
    }
    let inline = INLINE_TYPES.contains(&f.attachment.mime.as_str());
    let mut r = Response::new(Body::from(bytes));
    let ct = if inline {
        f.attachment.mime.clone()
    } else {
        "application/octet-stream".to_string()
    };
    if let Ok(v) = HeaderValue::from_str(&ct) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    let safe_name: String = f
        .attachment
        .filename
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disp = format!(
        "{}; filename=\"{safe_name}\"",
        if inline { "inline" } else { "attachment" }
    );
    if let Ok(v) = HeaderValue::from_str(&disp) {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    r
}
