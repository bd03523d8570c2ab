//! Slack: the Web API with a bot token (`Authorization: Bearer`), files by the external
//! upload flow.
//!
//! - `channel:<id>` is a conversation id; `user:<id>` → `conversations.open {users}` (cached);
//!   `room:` is refused.
//! - Per file: `files.getUploadURLExternal` (form-encoded `filename`, `length`) → the bytes
//!   POSTed raw to the returned `upload_url` (without the token) → one
//!   `files.completeUploadExternal {files: [{id, title}], channel_id, initial_comment}` shares
//!   them all with the text / caption as the comment. The first two steps share nothing and are
//!   safe to retry; only the last one can be ambiguous.
//! - Text alone goes by `chat.postMessage {channel, text}`.
//! - A message with a `thread` carries it as `thread_ts` in both calls (a reply in the thread).
//! - Slack answers API errors with HTTP 200 and `{ok: false, error}`; 429 carries
//!   `Retry-After`.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::http::{FileSource, RawResponse, Transport};
use crate::{
    ChannelAdapter, ChannelError, Delivered, DeliveredAttachment, DeliveryOutcome, OutboundMessage,
    RetryPolicy, SecretString, Target, Timeouts, check_message, split_text,
};

/// Slack's Web API base.
pub const SLACK_API_BASE: &str = "https://slack.com/api";
/// Default per-file limit: 1 GB, Slack's file upload limit.
pub const SLACK_DEFAULT_MAX_BYTES: u64 = 1000 * 1000 * 1000;
/// `chat.postMessage` text limit, in characters.
pub const SLACK_TEXT_MAX_CHARS: usize = 40_000;

/// `error` values that mean the token is wrong or lacks rights.
const AUTH_ERRORS: &[&str] = &[
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "no_permission",
    "missing_scope",
    "not_allowed_token_type",
    "ekm_access_denied",
    "access_denied",
];
/// `error` values that mean "try again later".
const TRANSIENT_ERRORS: &[&str] = &[
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// Settings of the Slack adapter.
#[derive(Debug, Clone)]
pub struct SlackSettings {
    /// The bot token (`xoxb-…`).
    pub bot_token: SecretString,
    /// API base, default [`SLACK_API_BASE`] (`apiBaseUrl`).
    pub api_base_url: String,
    /// Per-file limit in bytes, default [`SLACK_DEFAULT_MAX_BYTES`] (`mediaMaxMb`).
    pub media_max_bytes: Option<u64>,
    /// Retries.
    pub retry: RetryPolicy,
    /// Timeouts.
    pub timeouts: Timeouts,
}

impl SlackSettings {
    /// Defaults with this token.
    pub fn new(bot_token: impl Into<SecretString>) -> Self {
        SlackSettings {
            bot_token: bot_token.into(),
            api_base_url: SLACK_API_BASE.to_string(),
            media_max_bytes: None,
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
        }
    }
}

/// The Slack adapter.
#[derive(Debug)]
pub struct SlackAdapter {
    settings: SlackSettings,
    base: String,
    http: Transport,
    dm_channels: Mutex<HashMap<String, String>>,
}

impl SlackAdapter {
    /// Builds the adapter; an empty token is `CHANNEL_NOT_CONFIGURED`.
    pub fn new(settings: SlackSettings) -> Result<Self, ChannelError> {
        if settings.bot_token.is_empty() {
            return Err(ChannelError::NotConfigured {
                channel: "slack".into(),
                reason: "no bot token (channels.slack.botToken)".into(),
            });
        }
        let http = Transport::new("slack", &settings.timeouts)?;
        Ok(SlackAdapter {
            base: settings.api_base_url.trim_end_matches('/').to_string(),
            settings,
            http,
            dm_channels: Mutex::new(HashMap::new()),
        })
    }

    fn api(&self, method: &str) -> reqwest::RequestBuilder {
        self.http
            .client
            .post(format!("{}/{method}", self.base))
            .bearer_auth(self.settings.bot_token.expose())
    }

    /// Calls a Web API method and reads `{ok, error}`.
    async fn call(&self, req: reqwest::RequestBuilder, idempotent: bool) -> DeliveryOutcome<Value> {
        let raw = match self.http.send(req, idempotent, &[]).await {
            Ok(r) => r,
            Err(f) => return f.into_outcome(),
        };
        self.read(raw, idempotent)
    }

    fn read(&self, raw: RawResponse, idempotent: bool) -> DeliveryOutcome<Value> {
        let error = raw
            .json
            .as_ref()
            .and_then(|j| j.get("error"))
            .and_then(Value::as_str)
            .map(str::to_string);
        if !raw.is_success() {
            return self.http.classify_error(&raw, error.clone(), error);
        }
        let Some(j) = raw.json else {
            return DeliveryOutcome::Permanent(ChannelError::Rejected {
                channel: "slack".into(),
                status: raw.status,
                message: "the answer was not JSON".into(),
                platform_code: None,
            });
        };
        if j.get("ok").and_then(Value::as_bool) == Some(true) {
            return DeliveryOutcome::Sent(j);
        }
        let error = error.unwrap_or_else(|| "unknown_error".into());
        if error == "ratelimited" {
            DeliveryOutcome::Retryable {
                rate_limited: true,
                retry_after: raw.retry_after,
                reason: error,
            }
        } else if AUTH_ERRORS.contains(&error.as_str()) {
            DeliveryOutcome::Unauthorized {
                status: raw.status,
                message: error,
            }
        } else if TRANSIENT_ERRORS.contains(&error.as_str()) {
            if idempotent {
                DeliveryOutcome::Retryable {
                    rate_limited: false,
                    retry_after: raw.retry_after,
                    reason: error,
                }
            } else {
                DeliveryOutcome::Ambiguous {
                    reason: format!("Slack answered {error}"),
                }
            }
        } else {
            DeliveryOutcome::Permanent(ChannelError::Rejected {
                channel: "slack".into(),
                status: raw.status,
                message: error.clone(),
                platform_code: Some(error),
            })
        }
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
        let j = self
            .settings
            .retry
            .run("slack", |_| {
                self.call(
                    self.api("conversations.open")
                        .json(&json!({ "users": user })),
                    true,
                )
            })
            .await?;
        let id = j
            .pointer("/channel/id")
            .and_then(Value::as_str)
            .ok_or_else(|| ChannelError::Rejected {
                channel: "slack".into(),
                status: 200,
                message: "conversations.open answered without channel.id".into(),
                platform_code: None,
            })?
            .to_string();
        if let Ok(mut m) = self.dm_channels.lock() {
            m.insert(user.to_string(), id.clone());
        }
        Ok(id)
    }

    /// Steps 1 and 2 for one file: returns its Slack file id.
    async fn upload(&self, f: &FileSource) -> Result<String, ChannelError> {
        let retry = &self.settings.retry;
        let length = f.size.to_string();
        let ticket = retry
            .run("slack", |_| {
                let form = [
                    ("filename", f.filename.as_str()),
                    ("length", length.as_str()),
                ];
                self.call(self.api("files.getUploadURLExternal").form(&form), true)
            })
            .await?;
        let (Some(url), Some(file_id)) = (
            ticket.get("upload_url").and_then(Value::as_str),
            ticket.get("file_id").and_then(Value::as_str),
        ) else {
            return Err(ChannelError::Rejected {
                channel: "slack".into(),
                status: 200,
                message: "files.getUploadURLExternal answered without upload_url / file_id".into(),
                platform_code: None,
            });
        };
        retry
            .run("slack", |_| async {
                // The upload URL is pre-signed: the token is not sent there.
                let req = self
                    .http
                    .client
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .header(reqwest::header::CONTENT_LENGTH, f.size)
                    .body(f.body());
                match self.http.send(req, true, &[f]).await {
                    Err(fail) => fail.into_outcome(),
                    Ok(raw) if raw.is_success() => DeliveryOutcome::Sent(()),
                    Ok(raw) if raw.status == 413 => {
                        DeliveryOutcome::Permanent(ChannelError::MediaTooLarge {
                            channel: "slack".into(),
                            filename: Some(f.filename.clone()),
                            size: Some(f.size),
                            limit: Some(self.max_attachment_bytes()),
                            status: Some(413),
                        })
                    }
                    Ok(raw) => self.http.classify_error(&raw, None, None),
                }
            })
            .await?;
        Ok(file_id.to_string())
    }
}

#[async_trait::async_trait]
impl ChannelAdapter for SlackAdapter {
    fn id(&self) -> &str {
        "slack"
    }

    fn max_attachment_bytes(&self) -> u64 {
        self.settings
            .media_max_bytes
            .unwrap_or(SLACK_DEFAULT_MAX_BYTES)
    }

    async fn send(&self, msg: OutboundMessage) -> Result<Delivered, ChannelError> {
        check_message("slack", self.max_attachment_bytes(), &msg)?;
        let channel_id = match &msg.target {
            Target::Channel(id) => id.clone(),
            Target::User(id) => self.dm_channel(id).await?,
            Target::Room(_) => {
                return Err(ChannelError::BadRequest {
                    message: "slack has no rooms: use channel:<conversation id> or user:<user id>"
                        .into(),
                });
            }
        };
        let comment = msg.text_and_caption();
        let retry = &self.settings.retry;
        let mut delivered = Delivered::default();
        if msg.attachments.is_empty() {
            for text in split_text(&comment, SLACK_TEXT_MAX_CHARS) {
                let j = retry
                    .run("slack", |_| {
                        self.call(
                            self.api("chat.postMessage").json(&with_thread(
                                json!({ "channel": channel_id, "text": text }),
                                msg.thread.as_deref(),
                            )),
                            false,
                        )
                    })
                    .await
                    .map_err(|e| e.after_partial(&delivered))?;
                delivered.push_message(
                    j.get("ts")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                );
            }
            return Ok(delivered);
        }
        let thread = msg.thread.clone();
        let files = crate::http::sources(msg.attachments, msg.progress);
        let mut ids = Vec::with_capacity(files.len());
        for f in &files {
            ids.push(self.upload(f).await?);
        }
        let entries: Vec<Value> = ids
            .iter()
            .zip(&files)
            .map(|(id, f)| json!({ "id": id, "title": f.filename }))
            .collect();
        let mut body = with_thread(
            json!({ "files": entries, "channel_id": channel_id }),
            thread.as_deref(),
        );
        if !comment.is_empty() {
            body["initial_comment"] = json!(comment);
        }
        let j = retry
            .run("slack", |_| {
                self.call(self.api("files.completeUploadExternal").json(&body), false)
            })
            .await?;
        let remote: Vec<&str> = j
            .get("files")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|f| f.get("id").and_then(Value::as_str))
                    .collect()
            })
            .unwrap_or_default();
        for (i, (id, f)) in ids.iter().zip(&files).enumerate() {
            delivered.attachments.push(DeliveredAttachment {
                remote_id: remote
                    .get(i)
                    .map_or_else(|| id.clone(), |s| (*s).to_string()),
                filename: f.filename.clone(),
                bytes: f.size,
            });
        }
        delivered.remote_id = delivered
            .attachments
            .first()
            .map(|a| a.remote_id.clone())
            .unwrap_or_default();
        Ok(delivered)
    }
}

/// `body` with `thread_ts` when the message goes into a thread (the same field in
/// `chat.postMessage` and `files.completeUploadExternal`).
fn with_thread(mut body: Value, thread: Option<&str>) -> Value {
    if let Some(t) = thread.filter(|t| !t.is_empty()) {
        body["thread_ts"] = json!(t);
    }
    body
}
