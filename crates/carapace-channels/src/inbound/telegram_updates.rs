//! Telegram inbound: `getUpdates` long polling of the Bot API.
//!
//! - **Cursor**: the next `offset` (last `update_id` + 1), saved after every update of a batch
//!   was accepted by the sink; Telegram forgets updates below the offset of the next call, so
//!   a refused batch is fetched again and nothing is lost. Updates Telegram kept while the bot
//!   was down (up to 24 h) are answered: they are messages sent to the bot, not history.
//! - **Messages**: `message` updates only (`allowed_updates`), so edits and channel posts never
//!   arrive. Private chats are direct, groups and supergroups are groups; a forum topic
//!   (`is_topic_message`) is the thread. Text or caption; photos (the largest size), documents,
//!   audio, voice notes, videos and animations as attachments fetched with `getFile`.
//! - **Mentions**: `@<bot username>` in the text or caption, a `text_mention` of the bot, a
//!   `/command@<bot username>`, or a reply to one of the bot's messages.
//! - **Errors**: 5xx, 429 (`parameters.retry_after`), 409 (another poller or a webhook) and
//!   connection failures back off; 401 (and 404 from `getMe`: Telegram's answer to a bad
//!   token) end `run` with `CHANNEL_UNAUTHORIZED`. The token is in every URL, so no URL is
//!   ever logged or put in an error.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::backoff::{Backoff, sleep_or_cancel};
use super::cursor::CursorStore;
use super::matrix_sync::{describe, read_capped};
use super::{
    AttachmentKind, ChatKind, ChatRef, ConnectionState, FetchedMedia, InboundAttachment,
    InboundMessage, InboundSink, InboundSource, SenderRef,
};
use crate::telegram::TELEGRAM_API_BASE;
use crate::{ChannelError, SecretString};

/// Settings of the Telegram source.
#[derive(Debug, Clone)]
pub struct TelegramSourceSettings {
    /// The bot token.
    pub bot_token: SecretString,
    /// API base (`apiBaseUrl`), default `https://api.telegram.org`.
    pub api_base_url: String,
    /// carapace's state directory (the cursor lives under it).
    pub state_dir: PathBuf,
    /// How long Telegram may hold a `getUpdates` open (default 30 s).
    pub poll_timeout: Duration,
    /// Reconnect backoff (default 1 s doubling to 60 s).
    pub backoff: Backoff,
}

impl TelegramSourceSettings {
    /// Defaults for this token and state dir.
    pub fn new(bot_token: impl Into<SecretString>, state_dir: impl Into<PathBuf>) -> Self {
        TelegramSourceSettings {
            bot_token: bot_token.into(),
            api_base_url: TELEGRAM_API_BASE.to_string(),
            state_dir: state_dir.into(),
            poll_timeout: Duration::from_secs(30),
            backoff: Backoff::default(),
        }
    }
}

#[derive(Debug)]
struct Bot {
    id: i64,
    username: Option<String>,
}

/// The Telegram inbound source.
#[derive(Debug)]
pub struct TelegramSource {
    settings: TelegramSourceSettings,
    base: String,
    http: reqwest::Client,
    cursor: CursorStore,
    me: tokio::sync::OnceCell<Bot>,
}

enum Failure {
    Transient(String, Option<Duration>),
    Permanent(ChannelError),
}

impl Failure {
    fn into_error(self) -> ChannelError {
        match self {
            Failure::Permanent(e) => e,
            Failure::Transient(reason, _) => ChannelError::Unreachable {
                channel: "telegram".into(),
                attempts: 1,
                reason,
            },
        }
    }
}

/// A `file_path` from `getFile`, checked so it can only name a file under the bot's file
/// area (`documents/file_1.pdf`, `photos/file_2.jpg`).
pub fn valid_file_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 512
        && !p.starts_with('/')
        && p.split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
}

impl TelegramSource {
    /// Builds the source; an empty or malformed token is `CHANNEL_NOT_CONFIGURED`.
    pub fn new(settings: TelegramSourceSettings) -> Result<TelegramSource, ChannelError> {
        let t = settings.bot_token.expose();
        if t.is_empty() || t.contains(['/', '?', '#', ' ']) {
            return Err(ChannelError::NotConfigured {
                channel: "telegram".into(),
                reason: "no valid bot token (channels.telegram.botToken)".into(),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("carapace/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ChannelError::NotConfigured {
                channel: "telegram".into(),
                reason: format!("could not build the HTTP client: {}", describe(e)),
            })?;
        let cursor = CursorStore::new(&settings.state_dir, "telegram", None);
        Ok(TelegramSource {
            base: settings.api_base_url.trim_end_matches('/').to_string(),
            settings,
            http,
            cursor,
            me: tokio::sync::OnceCell::new(),
        })
    }

    /// The cursor store (for status and tests).
    pub fn cursor(&self) -> &CursorStore {
        &self.cursor
    }

    fn method_url(&self, method: &str) -> String {
        format!(
            "{}/bot{}/{method}",
            self.base,
            self.settings.bot_token.expose()
        )
    }

    async fn call(&self, method: &str, body: &Value, timeout: Duration) -> Result<Value, Failure> {
        let resp = self
            .http
            .post(self.method_url(method))
            .json(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| Failure::Transient(describe(e), None))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Failure::Transient(describe(e), None))?;
        let j: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if (200..300).contains(&status) && j["ok"] == true {
            return Ok(j["result"].clone());
        }
        let description = j["description"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {status}"));
        let retry_after = j
            .pointer("/parameters/retry_after")
            .and_then(Value::as_f64)
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(|v| Duration::from_secs_f64(v.min(3600.0)));
        match status {
            429 => Err(Failure::Transient(description, retry_after)),
            409 => Err(Failure::Transient(
                format!(
                    "{description} (another getUpdates poller, or a webhook, is active for this bot)"
                ),
                None,
            )),
            500..=599 | 408 => Err(Failure::Transient(description, retry_after)),
            401 | 403 => Err(Failure::Permanent(ChannelError::Unauthorized {
                channel: "telegram".into(),
                status,
                message: description,
            })),
            404 if method == "getMe" => Err(Failure::Permanent(ChannelError::Unauthorized {
                channel: "telegram".into(),
                status,
                message: format!("{description} (Telegram's answer to a wrong bot token)"),
            })),
            _ => Err(Failure::Permanent(ChannelError::Rejected {
                channel: "telegram".into(),
                status,
                message: description,
                platform_code: j.get("error_code").map(|c| c.to_string()),
            })),
        }
    }

    async fn me(&self) -> Result<&Bot, Failure> {
        self.me
            .get_or_try_init(|| async {
                let r = self
                    .call("getMe", &json!({}), Duration::from_secs(30))
                    .await?;
                Ok(Bot {
                    id: r["id"].as_i64().unwrap_or_default(),
                    username: r["username"].as_str().map(str::to_string),
                })
            })
            .await
    }

    /// Fuzzing: one `getUpdates` answer (`{"ok", "result": [updates]}`) or one update, read as
    /// the bot `@carapace_bot` (id 777); the number of messages reported.
    pub(crate) fn fuzz_updates(&self, v: &Value) -> usize {
        let me = Bot {
            id: 777,
            username: Some("carapace_bot".into()),
        };
        let updates = match v.get("result").and_then(Value::as_array) {
            Some(a) => a.clone(),
            None => vec![v.clone()],
        };
        updates
            .iter()
            .filter_map(|u| u.get("message").or_else(|| u.get("channel_post")))
            .filter_map(|m| self.to_message(&me, m))
            .count()
    }

    fn to_message(&self, me: &Bot, m: &Value) -> Option<InboundMessage> {
        let chat = &m["chat"];
        let chat_id = match &chat["id"] {
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        let kind = match chat["type"].as_str()? {
            "private" => ChatKind::Direct,
            "group" | "supergroup" => ChatKind::Group,
            _ => return None,
        };
        let from = &m["from"];
        let sender_id = from["id"].as_i64()?;
        if sender_id == me.id {
            return None;
        }
        let message_id = m["message_id"].as_i64()?;
        let text = m["text"]
            .as_str()
            .or_else(|| m["caption"].as_str())
            .unwrap_or_default()
            .to_string();
        let mut attachments = Vec::new();
        let file = |v: &Value, kind: AttachmentKind, default_mime: Option<&str>| {
            v["file_id"].as_str().map(|id| InboundAttachment {
                kind,
                filename: v["file_name"].as_str().map(str::to_string),
                mime: v["mime_type"].as_str().or(default_mime).map(str::to_string),
                size: v["file_size"].as_u64(),
                fetch: id.to_string(),
            })
        };
        if let Some(sizes) = m["photo"].as_array() {
            // Telegram lists the sizes smallest first; take the largest.
            let largest = sizes.iter().max_by_key(|p| {
                p["width"].as_u64().unwrap_or(0) * p["height"].as_u64().unwrap_or(0)
            });
            attachments
                .extend(largest.and_then(|p| file(p, AttachmentKind::Image, Some("image/jpeg"))));
        }
        for (key, kind) in [
            ("document", AttachmentKind::File),
            ("audio", AttachmentKind::Audio),
            ("voice", AttachmentKind::Audio),
            ("video", AttachmentKind::Video),
            ("video_note", AttachmentKind::Video),
            ("animation", AttachmentKind::Video),
        ] {
            if m.get(key).is_some_and(Value::is_object) {
                // An animation also carries a `document`; keep one.
                if key == "document" && m.get("animation").is_some() {
                    continue;
                }
                attachments.extend(file(&m[key], kind, None));
            }
        }
        if text.is_empty() && attachments.is_empty() {
            return None;
        }
        let mut mentioned = m
            .pointer("/reply_to_message/from/id")
            .and_then(Value::as_i64)
            == Some(me.id);
        if let Some(u) = &me.username {
            mentioned |= mentions_username(&text, u);
        }
        for ents in [&m["entities"], &m["caption_entities"]] {
            for e in ents.as_array().into_iter().flatten() {
                if e["type"] == "text_mention"
                    && e.pointer("/user/id").and_then(Value::as_i64) == Some(me.id)
                {
                    mentioned = true;
                }
            }
        }
        let thread = (m["is_topic_message"] == true)
            .then(|| m["message_thread_id"].as_i64().map(|t| t.to_string()))
            .flatten();
        let name = [from["first_name"].as_str(), from["last_name"].as_str()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        Some(InboundMessage {
            channel: "telegram".into(),
            account: None,
            event_id: format!("{chat_id}:{message_id}"),
            chat: ChatRef {
                kind,
                id: chat_id,
                thread,
            },
            sender: SenderRef {
                id: sender_id.to_string(),
                name: (!name.is_empty()).then_some(name),
            },
            text,
            mentions_bot: mentioned,
            attachments,
            timestamp_ms: m["date"].as_i64().map(|d| d.saturating_mul(1000)),
        })
    }
}

/// `@name` (case-insensitive) as a whole word, or `/cmd@name`.
fn mentions_username(text: &str, username: &str) -> bool {
    let lower = text.to_lowercase();
    let needle = format!("@{}", username.to_lowercase());
    let mut from = 0;
    while let Some(i) = lower[from..].find(&needle) {
        let end = from + i + needle.len();
        let next = lower[end..].chars().next();
        if next.is_none_or(|c| !(c.is_alphanumeric() || c == '_')) {
            return true;
        }
        from = end;
    }
    false
}

#[async_trait::async_trait]
impl InboundSource for TelegramSource {
    fn channel(&self) -> &str {
        "telegram"
    }

    async fn run(
        &self,
        sink: Arc<dyn InboundSink>,
        shutdown: CancellationToken,
    ) -> Result<(), ChannelError> {
        sink.state("telegram", ConnectionState::Connecting);
        let mut backoff = self.settings.backoff.clone();
        let mut offset: Option<i64> = match self.cursor.load()? {
            Some(c) => Some(c.trim().parse().map_err(|_| ChannelError::Storage {
                channel: "telegram".into(),
                envelope: Box::new(carapace_policy::ErrorEnvelope::new(
                    carapace_policy::ErrorCode::BadRequest,
                    format!(
                        "{} does not hold an update offset",
                        self.cursor.path().display()
                    ),
                )),
            })?),
            None => None,
        };
        let mut connected = false;
        loop {
            if shutdown.is_cancelled() {
                sink.state("telegram", ConnectionState::Stopped { error: None });
                return Ok(());
            }
            let step = async {
                let me = self.me().await?;
                let mut body = json!({
                    "timeout": self.settings.poll_timeout.as_secs(),
                    "allowed_updates": ["message"],
                });
                if let Some(o) = offset {
                    body["offset"] = json!(o);
                }
                let updates = self
                    .call(
                        "getUpdates",
                        &body,
                        self.settings.poll_timeout + Duration::from_secs(30),
                    )
                    .await?;
                Ok::<_, Failure>((me, updates))
            };
            let res = tokio::select! {
                _ = shutdown.cancelled() => continue,
                r = step => r,
            };
            let failure = match res {
                Ok((me, updates)) => {
                    if !connected {
                        sink.state("telegram", ConnectionState::Connected);
                        connected = true;
                    }
                    let mut next = offset;
                    let mut refused = None;
                    for u in updates.as_array().into_iter().flatten() {
                        let Some(id) = u["update_id"].as_i64() else {
                            continue;
                        };
                        if let Some(m) = u.get("message").and_then(|m| self.to_message(me, m))
                            && let Err(e) = sink.deliver(m).await
                        {
                            refused = Some(e);
                            break;
                        }
                        next = Some(id + 1);
                    }
                    // Save what was accepted, even when a later update was refused.
                    let saved = match next {
                        Some(n) if next != offset => self
                            .cursor
                            .save(&n.to_string())
                            .map(|()| offset = Some(n))
                            .map_err(Failure::Permanent),
                        _ => Ok(()),
                    };
                    match (saved, refused) {
                        (Err(f), _) => Some(f),
                        (Ok(()), Some(e)) => Some(Failure::Transient(
                            format!("the message handler refused a message: {e}"),
                            None,
                        )),
                        (Ok(()), None) => None,
                    }
                }
                Err(f) => Some(f),
            };
            match failure {
                None => backoff.reset(),
                Some(Failure::Permanent(e)) if e.is_permanent() => {
                    sink.state(
                        "telegram",
                        ConnectionState::Stopped {
                            error: Some(e.to_string()),
                        },
                    );
                    return Err(e);
                }
                Some(f) => {
                    let (msg, server_wait) = match f {
                        Failure::Transient(m, w) => (m, w),
                        Failure::Permanent(e) => (e.to_string(), None),
                    };
                    let own = backoff.next_delay();
                    let wait = server_wait.unwrap_or(own);
                    tracing::warn!(channel = "telegram", error = %msg, "getUpdates failed; retrying");
                    connected = false;
                    sink.state(
                        "telegram",
                        ConnectionState::Reconnecting {
                            attempt: backoff.attempt(),
                            error: msg,
                        },
                    );
                    if sleep_or_cancel(wait, &shutdown).await {
                        continue;
                    }
                }
            }
        }
    }

    async fn fetch_attachment(
        &self,
        attachment: &InboundAttachment,
        max_bytes: u64,
    ) -> Result<FetchedMedia, ChannelError> {
        if let Some(size) = attachment.size
            && size > max_bytes
        {
            return Err(ChannelError::MediaTooLarge {
                channel: "telegram".into(),
                filename: attachment.filename.clone(),
                size: Some(size),
                limit: Some(max_bytes),
                status: None,
            });
        }
        let f = self
            .call(
                "getFile",
                &json!({"file_id": attachment.fetch}),
                Duration::from_secs(30),
            )
            .await
            .map_err(Failure::into_error)?;
        if let Some(size) = f["file_size"].as_u64()
            && size > max_bytes
        {
            return Err(ChannelError::MediaTooLarge {
                channel: "telegram".into(),
                filename: attachment.filename.clone(),
                size: Some(size),
                limit: Some(max_bytes),
                status: None,
            });
        }
        let path = f["file_path"].as_str().unwrap_or_default();
        if !valid_file_path(path) {
            return Err(ChannelError::Rejected {
                channel: "telegram".into(),
                status: 200,
                message: "getFile answered without a usable file_path".into(),
                platform_code: None,
            });
        }
        let url = format!(
            "{}/file/bot{}/{path}",
            self.base,
            self.settings.bot_token.expose()
        );
        let resp = self
            .http
            .get(url)
            .timeout(Duration::from_secs(300))
            .send()
            .await
            .map_err(|e| ChannelError::Unreachable {
                channel: "telegram".into(),
                attempts: 1,
                reason: describe(e),
            })?;
        let status = resp.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(ChannelError::Rejected {
                channel: "telegram".into(),
                status,
                message: format!("file download: HTTP {status}"),
                platform_code: None,
            });
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = read_capped(resp, max_bytes, "telegram").await?;
        Ok(FetchedMedia {
            bytes,
            content_type,
        })
    }

    async fn typing(&self, chat: &ChatRef, on: bool) -> Result<(), ChannelError> {
        if !on {
            return Ok(()); // Telegram's indicator ends by itself (after 5 s or at the reply).
        }
        let mut body = json!({"chat_id": chat.id, "action": "typing"});
        if let Some(t) = chat.thread.as_deref().and_then(|t| t.parse::<i64>().ok()) {
            body["message_thread_id"] = json!(t);
        }
        self.call("sendChatAction", &body, Duration::from_secs(15))
            .await
            .map(|_| ())
            .map_err(Failure::into_error)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn usernames_match_as_words() {
        assert!(mentions_username("hi @CarapaceBot!", "carapacebot"));
        assert!(mentions_username("/start@carapacebot", "carapacebot"));
        assert!(!mentions_username("hi @carapacebot2", "carapacebot"));
        assert!(!mentions_username("hi carapacebot", "carapacebot"));
    }

    #[test]
    fn file_paths_stay_under_the_file_area() {
        assert!(valid_file_path("photos/file_1.jpg"));
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a//b",
            "a?b",
            "a b",
            "a/./b",
        ] {
            assert!(!valid_file_path(bad), "{bad}");
        }
    }
}
