//! Files the person attaches in the chat go through the inbound media path of the chat
//! channels (`carapace_inbound::media::place`): saved in the media store (type sniffed from
//! the bytes, 0644, the channel's limit), copied into the session's workspace under
//! `media/inbound/` with the mode and owner the sandbox needs, named to the model by the path
//! it sees there, and given to the model as an image when it is one. The browser is the
//! "platform" here: [`WebUpload`] hands `place` the bytes the page posted.

use axum::Extension;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use carapace_channels::ChannelError;
use carapace_channels::inbound::{
    AttachmentKind, ChatRef, FetchedMedia, InboundAttachment, InboundSink, InboundSource,
};
use carapace_policy::{ErrorCode, ErrorEnvelope};
use serde_json::json;

use super::chat::web_session;
use super::guard::refuse;
use super::login::Session;
use super::state::{UiState, Upload};

/// The channel id of the page.
pub const WEB_CHANNEL: &str = "web";

/// One uploaded file, as an inbound source that has exactly that attachment.
pub struct WebUpload {
    bytes: Vec<u8>,
    content_type: Option<String>,
}

#[async_trait::async_trait]
impl InboundSource for WebUpload {
    fn channel(&self) -> &str {
        WEB_CHANNEL
    }

    async fn run(
        &self,
        _sink: std::sync::Arc<dyn InboundSink>,
        _shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<(), ChannelError> {
        Ok(())
    }

    async fn fetch_attachment(
        &self,
        _attachment: &InboundAttachment,
        max_bytes: u64,
    ) -> Result<FetchedMedia, ChannelError> {
        if self.bytes.len() as u64 > max_bytes {
            return Err(ChannelError::Rejected {
                channel: WEB_CHANNEL.into(),
                status: 413,
                message: format!("the file is larger than {max_bytes} bytes"),
                platform_code: None,
            });
        }
        Ok(FetchedMedia {
            bytes: self.bytes.clone(),
            content_type: self.content_type.clone(),
        })
    }

    async fn typing(&self, _chat: &ChatRef, _on: bool) -> Result<(), ChannelError> {
        Ok(())
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(hex) = s.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `POST /ui/api/upload`: the file's bytes as the body, its name in `x-filename`
/// (URL-encoded), the chat session in `x-session`. Returns an id to name in the next chat
/// message of that session.
pub async fn upload(
    State(st): State<UiState>,
    Extension(_login): Extension<Session>,
    req: Request,
) -> Response {
    let session_key = match web_session(header(&req, "x-session").as_deref()) {
        Ok(k) => k,
        Err(e) => return refuse(&e),
    };
    let name = header(&req, "x-filename")
        .map(|n| percent_decode(&n))
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "upload".into());
    let declared = header(&req, header::CONTENT_TYPE.as_str());
    let config = st.config();
    let limit = carapace_inbound::media::inbound_limit(&config, WEB_CHANNEL);
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    let Ok(bytes) = axum::body::to_bytes(req.into_body(), cap).await else {
        return refuse(
            &ErrorEnvelope::new(
                ErrorCode::TooLarge,
                format!("the file is larger than the limit of {limit} bytes"),
            )
            .with_hint("raise media.maxBytes, or send a smaller file")
            .with_detail("limit", limit),
        );
    };
    let kind = match declared.as_deref() {
        Some(t) if t.starts_with("image/") => AttachmentKind::Image,
        Some(t) if t.starts_with("audio/") => AttachmentKind::Audio,
        Some(t) if t.starts_with("video/") => AttachmentKind::Video,
        _ => AttachmentKind::File,
    };
    let att = InboundAttachment {
        kind,
        filename: Some(name.clone()),
        mime: declared.clone(),
        size: Some(bytes.len() as u64),
        fetch: "upload".into(),
    };
    let source = WebUpload {
        bytes: bytes.to_vec(),
        content_type: declared,
    };
    let call = carapace_tools::ToolCall {
        session_key: Some(session_key.clone()),
        ..Default::default()
    };
    let ctx = st.tool_context(config);
    let placed = match carapace_inbound::media::place(&ctx, &source, &att, &call, limit).await {
        Ok(p) => p,
        Err(note) => return refuse(&ErrorEnvelope::new(ErrorCode::BadRequest, note)),
    };
    let up = Upload {
        session_key,
        name: name.clone(),
        mime: placed.mime.clone(),
        bytes: placed.bytes,
        store_path: placed.store_path.clone(),
        agent_path: placed.agent_path.clone(),
        image: placed.image.clone(),
        note: placed.note.clone(),
    };
    match st.uploads().insert(up) {
        Ok(id) => (
            StatusCode::OK,
            axum::Json(
                json!({"ok": true, "id": id, "name": name, "mime": placed.mime,
                              "bytes": placed.bytes, "path": placed.agent_path,
                              "note": placed.note}),
            ),
        )
            .into_response(),
        Err(e) => refuse(&e),
    }
}
