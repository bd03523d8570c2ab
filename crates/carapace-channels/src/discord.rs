//! Discord: REST API v10 with a bot token.
//!
//! - `channel:<id>` → `POST /channels/{id}/messages`; with a `thread` (a thread's channel
//!   id, as the Gateway source reports it), `POST /channels/{thread}/messages`.
//! - `user:<id>` → `POST /users/@me/channels {"recipient_id"}` opens (or returns) the DM
//!   channel, cached per adapter, then as above.
//! - `room:` is refused (`BAD_REQUEST`).
//! - Text goes in `content` (split at 2000 characters); files as multipart `payload_json` +
//!   `files[n]` with `attachments: [{id: n, filename}]`, at most 10 per message.
//! - 429 waits the JSON `retry_after` (seconds, fractional), else the `Retry-After` header.
//!   HTTP 413 / error code 40005 is `OUTBOUND_MEDIA_TOO_LARGE`: the send stops, nothing is sent
//!   without the file.

use std::collections::HashMap;
use std::sync::Mutex;

use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::http::{FileSource, RawResponse, Transport, seconds};
use crate::{
    ChannelAdapter, ChannelError, Delivered, DeliveredAttachment, DeliveryOutcome, OutboundMessage,
    RetryPolicy, SecretString, Target, Timeouts, check_message, split_text,
};

/// Discord's API base.
pub const DISCORD_API_BASE: &str = "https://discord.com/api/v10";
/// Default per-file limit: 10 MiB, Discord's upload limit for bots in servers without boosts
/// (boosted servers allow more; raise it with `mediaMaxMb`).
pub const DISCORD_DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// Files per message Discord accepts.
pub const DISCORD_MAX_FILES_PER_MESSAGE: usize = 10;
/// Characters of `content` per message.
pub const DISCORD_MAX_CONTENT_CHARS: usize = 2000;
/// Discord's JSON error code for "Request entity too large".
pub const DISCORD_ENTITY_TOO_LARGE: i64 = 40005;

/// Settings of the Discord adapter (config parsing lives elsewhere).
#[derive(Debug, Clone)]
pub struct DiscordSettings {
    /// The bot token (sent as `Authorization: Bot <token>`).
    pub token: SecretString,
    /// API base, default [`DISCORD_API_BASE`] (`apiBaseUrl`).
    pub api_base_url: String,
    /// Per-file limit in bytes, default [`DISCORD_DEFAULT_MAX_BYTES`] (`mediaMaxMb`).
    pub media_max_bytes: Option<u64>,
    /// Retries.
    pub retry: RetryPolicy,
    /// Timeouts.
    pub timeouts: Timeouts,
}

impl DiscordSettings {
    /// Defaults with this token.
    pub fn new(token: impl Into<SecretString>) -> Self {
        DiscordSettings {
            token: token.into(),
            api_base_url: DISCORD_API_BASE.to_string(),
            media_max_bytes: None,
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
        }
    }
}

/// The Discord adapter.
#[derive(Debug)]
pub struct DiscordAdapter {
    settings: DiscordSettings,
    base: String,
    http: Transport,
    dm_channels: Mutex<HashMap<String, String>>,
}

impl DiscordAdapter {
    /// Builds the adapter; an empty token is `CHANNEL_NOT_CONFIGURED`.
    pub fn new(settings: DiscordSettings) -> Result<Self, ChannelError> {
        if settings.token.is_empty() {
            return Err(ChannelError::NotConfigured {
                channel: "discord".into(),
                reason: "no bot token (channels.discord.token)".into(),
            });
        }
        let http = Transport::new("discord", &settings.timeouts)?;
        Ok(DiscordAdapter {
            base: settings.api_base_url.trim_end_matches('/').to_string(),
            settings,
            http,
            dm_channels: Mutex::new(HashMap::new()),
        })
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .client
            .post(format!("{}{path}", self.base))
            .header(
                reqwest::header::AUTHORIZATION,
                format!("Bot {}", self.settings.token.expose()),
            )
            .header(
                reqwest::header::USER_AGENT,
                concat!(
                    "DiscordBot (https://example.invalid/carapace, ",
                    env!("CARGO_PKG_VERSION"),
                    ")"
                ),
            )
    }

    /// Reads Discord's error body: `{code, message, retry_after, global}`.
    fn classify<T>(&self, raw: &RawResponse, files: &[&FileSource]) -> DeliveryOutcome<T> {
        let j = raw.json.as_ref();
        let code = j.and_then(|j| j.get("code")).and_then(Value::as_i64);
        let message = j
            .and_then(|j| j.get("message"))
            .and_then(Value::as_str)
            .map(str::to_string);
        if raw.status == 413 || code == Some(DISCORD_ENTITY_TOO_LARGE) {
            let one = (files.len() == 1).then(|| files[0]);
            return DeliveryOutcome::Permanent(ChannelError::MediaTooLarge {
                channel: "discord".into(),
                filename: one.map(|f| f.filename.clone()),
                size: one.map(|f| f.size),
                limit: Some(self.max_attachment_bytes()),
                status: Some(raw.status),
            });
        }
        let mut out = self
            .http
            .classify_error(raw, message, code.map(|c| c.to_string()));
        if let DeliveryOutcome::Retryable {
            rate_limited: true,
            retry_after,
            ..
        } = &mut out
            && let Some(r) = j
                .and_then(|j| j.get("retry_after"))
                .and_then(Value::as_f64)
                .and_then(seconds)
        {
            *retry_after = Some(r);
        }
        out
    }

    async fn dm_channel(&self, user: &str) -> Result<String, ChannelError> {
        if let Some(c) = self
            .dm_channels
            .lock()
            .ok()
            .and_then(|m| m.get(user).cloned())
        {
            return Ok(c);
        }
        let id = self
            .settings
            .retry
            .run("discord", |_| async {
                let req = self
                    .post("/users/@me/channels")
                    .json(&json!({ "recipient_id": user }));
                match self.http.send(req, true, &[]).await {
                    Err(f) => f.into_outcome(),
                    Ok(raw) if raw.is_success() => {
                        match raw
                            .json
                            .as_ref()
                            .and_then(|j| j.get("id"))
                            .and_then(Value::as_str)
                        {
                            Some(id) => DeliveryOutcome::Sent(id.to_string()),
                            None => DeliveryOutcome::Permanent(ChannelError::Rejected {
                                channel: "discord".into(),
                                status: raw.status,
                                message: "the DM channel answer had no id".into(),
                                platform_code: None,
                            }),
                        }
                    }
                    Ok(raw) => self.classify(&raw, &[]),
                }
            })
            .await?;
        if let Ok(mut m) = self.dm_channels.lock() {
            m.insert(user.to_string(), id.clone());
        }
        Ok(id)
    }

    async fn post_message(
        &self,
        channel_id: &str,
        content: Option<&str>,
        files: &[&FileSource],
    ) -> DeliveryOutcome<(String, Vec<DeliveredAttachment>)> {
        let path = format!("/channels/{channel_id}/messages");
        let req = if files.is_empty() {
            self.post(&path)
                .json(&json!({ "content": content.unwrap_or("") }))
        } else {
            let attachments: Vec<Value> = files
                .iter()
                .enumerate()
                .map(|(i, f)| json!({ "id": i, "filename": f.filename }))
                .collect();
            let mut payload = json!({ "attachments": attachments });
            if let Some(c) = content {
                payload["content"] = json!(c);
            }
            let payload_part = match Part::text(payload.to_string()).mime_str("application/json") {
                Ok(p) => p,
                Err(_) => Part::text(payload.to_string()),
            };
            let mut form = Form::new().part("payload_json", payload_part);
            for (i, f) in files.iter().enumerate() {
                form = form.part(format!("files[{i}]"), f.part());
            }
            self.post(&path).multipart(form)
        };
        let raw = match self.http.send(req, false, files).await {
            Ok(raw) => raw,
            Err(f) => return f.into_outcome(),
        };
        if !raw.is_success() {
            return self.classify(&raw, files);
        }
        let j = raw.json.unwrap_or(Value::Null);
        let Some(id) = j.get("id").and_then(Value::as_str) else {
            return DeliveryOutcome::Ambiguous {
                reason: format!("HTTP {} without a message id", raw.status),
            };
        };
        let remote = j
            .get("attachments")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let delivered = files
            .iter()
            .enumerate()
            .map(|(i, f)| DeliveredAttachment {
                remote_id: remote
                    .get(i)
                    .and_then(|a| a.get("id"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                filename: f.filename.clone(),
                bytes: f.size,
            })
            .collect();
        DeliveryOutcome::Sent((id.to_string(), delivered))
    }
}

#[async_trait::async_trait]
impl ChannelAdapter for DiscordAdapter {
    fn id(&self) -> &str {
        "discord"
    }

    fn max_attachment_bytes(&self) -> u64 {
        self.settings
            .media_max_bytes
            .unwrap_or(DISCORD_DEFAULT_MAX_BYTES)
    }

    async fn send(&self, msg: OutboundMessage) -> Result<Delivered, ChannelError> {
        check_message("discord", self.max_attachment_bytes(), &msg)?;
        let channel_id = match &msg.target {
            // A Discord thread is a channel of its own: the reply is posted there.
            Target::Channel(id) => msg
                .thread
                .clone()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| id.clone()),
            Target::User(id) => self.dm_channel(id).await?,
            Target::Room(_) => {
                return Err(ChannelError::BadRequest {
                    message: "discord has no rooms: use channel:<channel id> or user:<user id>"
                        .into(),
                });
            }
        };
        let content = msg.text_and_caption();
        let texts = split_text(&content, DISCORD_MAX_CONTENT_CHARS);
        let files = crate::http::sources(msg.attachments, msg.progress);
        let batches: Vec<Vec<&FileSource>> = files
            .chunks(DISCORD_MAX_FILES_PER_MESSAGE)
            .map(|c| c.iter().collect())
            .collect();
        let mut delivered = Delivered::default();
        for i in 0..texts.len().max(batches.len()) {
            let text = texts.get(i).map(String::as_str);
            let batch: &[&FileSource] = batches.get(i).map_or(&[], Vec::as_slice);
            let (id, atts) = self
                .settings
                .retry
                .run("discord", |_| self.post_message(&channel_id, text, batch))
                .await
                .map_err(|e| e.after_partial(&delivered))?;
            delivered.push_message(id);
            delivered.attachments.extend(atts);
        }
        Ok(delivered)
    }
}
