//! Telegram: the Bot API (`{apiBaseUrl}/bot<token>/<method>`; local Bot API servers work by
//! setting `apiBaseUrl`).
//!
//! - `user:<id>` and `channel:<id>` both become `chat_id` (a private chat id, a group /
//!   channel id, or `@channelusername`); `room:` is refused.
//! - Images Telegram takes as photos (JPEG, PNG, WebP; ≤ 10 MB; width + height ≤ 10000 and
//!   ratio ≤ 20 when known) go by `sendPhoto`, everything else by `sendDocument`; both
//!   multipart with `chat_id`, `caption` and the file part (`photo` / `document`). If Telegram
//!   refuses a photo's dimensions it is sent again as a document.
//! - The caption (or the text when there is no caption) rides on the first file when it fits
//!   in 1024 characters; otherwise it, and any remaining text, follow by `sendMessage`
//!   (split at 4096 characters).
//! - A `thread` (a forum topic id) goes as `message_thread_id` on every call.
//! - Errors come as `{ok: false, error_code, description, parameters: {retry_after}}`.

use reqwest::multipart::Form;
use serde_json::{Value, json};

use crate::http::{FileSource, RawResponse, Transport, seconds};
use crate::{
    ChannelAdapter, ChannelError, Delivered, DeliveredAttachment, DeliveryOutcome, OutboundMessage,
    RetryPolicy, SecretString, Target, Timeouts, check_message, split_text,
};

/// The Bot API base.
pub const TELEGRAM_API_BASE: &str = "https://api.telegram.org";
/// Default per-file limit: 50 MB, the cloud Bot API's upload limit for bots (decimal MB, to
/// stay under it). A local Bot API server allows more: raise it with `mediaMaxMb`.
pub const TELEGRAM_DEFAULT_MAX_BYTES: u64 = 50 * 1000 * 1000;
/// Largest file sent with `sendPhoto` (10 MB); larger images go as documents.
pub const TELEGRAM_PHOTO_MAX_BYTES: u64 = 10 * 1000 * 1000;
/// Caption length limit, in characters.
pub const TELEGRAM_CAPTION_MAX_CHARS: usize = 1024;
/// Message length limit, in characters.
pub const TELEGRAM_TEXT_MAX_CHARS: usize = 4096;
/// MIME types sent as photos.
pub const TELEGRAM_PHOTO_MIMES: &[&str] = &["image/jpeg", "image/png", "image/webp"];

/// Settings of the Telegram adapter.
#[derive(Debug, Clone)]
pub struct TelegramSettings {
    /// The bot token (it goes in the URL path, which is why no URL is ever logged).
    pub bot_token: SecretString,
    /// API base, default [`TELEGRAM_API_BASE`] (`apiBaseUrl`).
    pub api_base_url: String,
    /// Per-file limit in bytes, default [`TELEGRAM_DEFAULT_MAX_BYTES`] (`mediaMaxMb`).
    pub media_max_bytes: Option<u64>,
    /// Retries.
    pub retry: RetryPolicy,
    /// Timeouts.
    pub timeouts: Timeouts,
}

impl TelegramSettings {
    /// Defaults with this token.
    pub fn new(bot_token: impl Into<SecretString>) -> Self {
        TelegramSettings {
            bot_token: bot_token.into(),
            api_base_url: TELEGRAM_API_BASE.to_string(),
            media_max_bytes: None,
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
        }
    }
}

/// The Telegram adapter.
#[derive(Debug)]
pub struct TelegramAdapter {
    settings: TelegramSettings,
    base: String,
    http: Transport,
}

/// Whether `f` goes by `sendPhoto`.
fn is_photo(f: &FileSource) -> bool {
    let mime = f
        .mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !TELEGRAM_PHOTO_MIMES.contains(&mime.as_str()) || f.size > TELEGRAM_PHOTO_MAX_BYTES {
        return false;
    }
    match (f.width, f.height) {
        (Some(w), Some(h)) => {
            let (w, h) = (u64::from(w), u64::from(h));
            w > 0 && h > 0 && w + h <= 10_000 && w.max(h) <= 20 * w.min(h)
        }
        _ => true,
    }
}

impl TelegramAdapter {
    /// Builds the adapter; an empty or malformed token is `CHANNEL_NOT_CONFIGURED`.
    pub fn new(settings: TelegramSettings) -> Result<Self, ChannelError> {
        let t = settings.bot_token.expose();
        if t.is_empty() || t.contains(['/', '?', '#', ' ']) {
            return Err(ChannelError::NotConfigured {
                channel: "telegram".into(),
                reason: "no valid bot token (channels.telegram.botToken)".into(),
            });
        }
        let http = Transport::new("telegram", &settings.timeouts)?;
        Ok(TelegramAdapter {
            base: settings.api_base_url.trim_end_matches('/').to_string(),
            settings,
            http,
        })
    }

    fn post(&self, method: &str) -> reqwest::RequestBuilder {
        self.http.client.post(format!(
            "{}/bot{}/{method}",
            self.base,
            self.settings.bot_token.expose()
        ))
    }

    fn classify<T>(&self, raw: &RawResponse, file: Option<&FileSource>) -> DeliveryOutcome<T> {
        let j = raw.json.as_ref();
        let description = j
            .and_then(|j| j.get("description"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let code = j
            .and_then(|j| j.get("error_code"))
            .and_then(Value::as_i64)
            .map(|c| c.to_string());
        let mut out = self.http.classify_error(raw, description, code);
        match &mut out {
            DeliveryOutcome::Retryable {
                rate_limited: true,
                retry_after,
                ..
            } => {
                if let Some(r) = j
                    .and_then(|j| j.pointer("/parameters/retry_after"))
                    .and_then(Value::as_f64)
                    .and_then(seconds)
                {
                    *retry_after = Some(r);
                }
            }
            DeliveryOutcome::Permanent(ChannelError::MediaTooLarge {
                filename,
                size,
                limit,
                ..
            }) => {
                *filename = file.map(|f| f.filename.clone());
                *size = file.map(|f| f.size);
                *limit = Some(self.max_attachment_bytes());
            }
            _ => {}
        }
        out
    }

    /// Reads `{ok, result}` of a 2xx answer.
    fn result(&self, raw: RawResponse) -> Result<Value, DeliveryOutcome<()>> {
        let j = raw.json.unwrap_or(Value::Null);
        if j.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(j.get("result").cloned().unwrap_or(Value::Null));
        }
        Err(DeliveryOutcome::Permanent(ChannelError::Rejected {
            channel: "telegram".into(),
            status: raw.status,
            message: j
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or("answer without ok: true")
                .to_string(),
            platform_code: j.get("error_code").map(|c| c.to_string()),
        }))
    }

    async fn send_text(
        &self,
        chat_id: &str,
        thread: Option<i64>,
        text: &str,
    ) -> DeliveryOutcome<String> {
        let mut body = json!({ "chat_id": chat_id, "text": text });
        if let Some(t) = thread {
            body["message_thread_id"] = json!(t);
        }
        let req = self.post("sendMessage").json(&body);
        let raw = match self.http.send(req, false, &[]).await {
            Ok(r) => r,
            Err(f) => return f.into_outcome(),
        };
        if !raw.is_success() {
            return self.classify(&raw, None);
        }
        match self.result(raw) {
            Ok(r) => DeliveryOutcome::Sent(message_id(&r)),
            Err(o) => retype(o),
        }
    }

    async fn send_file(
        &self,
        chat_id: &str,
        thread: Option<i64>,
        file: &FileSource,
        caption: Option<&str>,
        as_photo: bool,
    ) -> DeliveryOutcome<(String, DeliveredAttachment)> {
        let (method, field) = if as_photo {
            ("sendPhoto", "photo")
        } else {
            ("sendDocument", "document")
        };
        let mut form = Form::new().text("chat_id", chat_id.to_string());
        if let Some(t) = thread {
            form = form.text("message_thread_id", t.to_string());
        }
        if let Some(c) = caption {
            form = form.text("caption", c.to_string());
        }
        form = form.part(field, file.part());
        let raw = match self
            .http
            .send(self.post(method).multipart(form), false, &[file])
            .await
        {
            Ok(r) => r,
            Err(f) => return f.into_outcome(),
        };
        if !raw.is_success() {
            return self.classify(&raw, Some(file));
        }
        let r = match self.result(raw) {
            Ok(r) => r,
            Err(o) => return retype(o),
        };
        let file_id = if as_photo {
            // The largest size is last.
            r.get("photo")
                .and_then(Value::as_array)
                .and_then(|a| a.last())
                .and_then(|p| p.get("file_id"))
        } else {
            r.get("document").and_then(|d| d.get("file_id"))
        }
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
        DeliveryOutcome::Sent((
            message_id(&r),
            DeliveredAttachment {
                remote_id: file_id,
                filename: file.filename.clone(),
                bytes: file.size,
            },
        ))
    }
}

fn message_id(result: &Value) -> String {
    match result.get("message_id") {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(s)) => s.clone(),
        _ => String::new(),
    }
}

fn retype<T>(o: DeliveryOutcome<()>) -> DeliveryOutcome<T> {
    match o {
        DeliveryOutcome::Sent(()) => DeliveryOutcome::Ambiguous {
            reason: "unexpected answer".into(),
        },
        DeliveryOutcome::Retryable {
            rate_limited,
            retry_after,
            reason,
        } => DeliveryOutcome::Retryable {
            rate_limited,
            retry_after,
            reason,
        },
        DeliveryOutcome::Ambiguous { reason } => DeliveryOutcome::Ambiguous { reason },
        DeliveryOutcome::Permanent(e) => DeliveryOutcome::Permanent(e),
        DeliveryOutcome::Unauthorized { status, message } => {
            DeliveryOutcome::Unauthorized { status, message }
        }
    }
}

fn is_photo_refusal(e: &ChannelError) -> bool {
    matches!(e, ChannelError::Rejected { status: 400, message, .. }
        if ["PHOTO_INVALID_DIMENSIONS", "IMAGE_PROCESS_FAILED", "PHOTO_SAVE_FILE_INVALID"]
            .iter()
            .any(|m| message.contains(m)))
}

#[async_trait::async_trait]
impl ChannelAdapter for TelegramAdapter {
    fn id(&self) -> &str {
        "telegram"
    }

    fn max_attachment_bytes(&self) -> u64 {
        self.settings
            .media_max_bytes
            .unwrap_or(TELEGRAM_DEFAULT_MAX_BYTES)
    }

    async fn send(&self, msg: OutboundMessage) -> Result<Delivered, ChannelError> {
        check_message("telegram", self.max_attachment_bytes(), &msg)?;
        let chat_id = match &msg.target {
            Target::User(id) | Target::Channel(id) => id.clone(),
            Target::Room(_) => {
                return Err(ChannelError::BadRequest {
                    message: "telegram has no rooms: use user:<chat id> or channel:<chat id or @username>".into(),
                });
            }
        };
        // A forum topic (the thread the inbound side reported) is `message_thread_id`.
        let thread = match msg.thread.as_deref().filter(|t| !t.is_empty()) {
            None => None,
            Some(t) => Some(t.parse::<i64>().map_err(|_| ChannelError::BadRequest {
                message: format!("telegram thread {t:?} is not a topic id (an integer)"),
            })?),
        };
        let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        let (text, caption) = (nonempty(&msg.text), nonempty(&msg.caption));
        let files = crate::http::sources(msg.attachments, msg.progress);
        let retry = &self.settings.retry;
        let mut delivered = Delivered::default();
        // What follows the files as plain messages.
        let mut follow: Vec<String> = Vec::new();
        if files.is_empty() {
            follow.extend(text);
            follow.extend(caption);
        } else {
            let (first_caption, rest) = match (caption, text) {
                (Some(c), t) => (Some(c), t),
                (None, t) => (t, None),
            };
            let on_file = first_caption
                .clone()
                .filter(|c| c.chars().count() <= TELEGRAM_CAPTION_MAX_CHARS);
            if on_file.is_none() {
                follow.extend(first_caption);
            }
            follow.extend(rest);
            for (i, f) in files.iter().enumerate() {
                let cap = if i == 0 { on_file.as_deref() } else { None };
                let mut photo = is_photo(f);
                let sent = loop {
                    match retry
                        .run("telegram", |_| {
                            self.send_file(&chat_id, thread, f, cap, photo)
                        })
                        .await
                    {
                        Err(e) if photo && is_photo_refusal(&e) => photo = false,
                        other => break other,
                    }
                };
                let (id, att) = sent.map_err(|e| e.after_partial(&delivered))?;
                delivered.push_message(id);
                delivered.attachments.push(att);
            }
        }
        for t in follow
            .iter()
            .flat_map(|t| split_text(t, TELEGRAM_TEXT_MAX_CHARS))
        {
            let id = retry
                .run("telegram", |_| self.send_text(&chat_id, thread, &t))
                .await
                .map_err(|e| e.after_partial(&delivered))?;
            delivered.push_message(id);
        }
        Ok(delivered)
    }
}
