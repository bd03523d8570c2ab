//! Matrix: the Client-Server API with an access token (`Authorization: Bearer`).
//!
//! - `room:<id>` is a room id (`!abc:server`) or an alias (`#name:server`, resolved with
//!   `GET /_matrix/client/v3/directory/room/{alias}`); `channel:` is read the same way (Matrix
//!   has rooms only). `user:<@mxid>` → a direct-message room: reused from the `m.direct`
//!   account data when the bot is joined to one, else created (`POST /createRoom` with
//!   `is_direct`, `invite`, preset `trusted_private_chat`) and recorded in `m.direct`.
//! - Before anything is sent, the room's `m.room.encryption` state is asked: an encrypted room
//!   is refused (`CHANNEL_ROOM_ENCRYPTED`) — carapace has no end-to-end encryption and never
//!   sends plaintext into a room whose members expect encryption.
//! - Each file: `POST /_matrix/media/v3/upload?filename=…` with the verified fd streamed as the
//!   body (exactly `size` bytes, `Content-Type` set; the bytes are never re-encoded), then
//!   `PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}` with `m.image`
//!   (`image/*`) or `m.file`, `url` = the `mxc://` URI, `filename`, and
//!   `info {mimetype, size, w, h}`. The text and the caption become the `body` of the first file
//!   event — one captioned event (Matrix v1.10 captions: `body` ≠ `filename`), not a text and
//!   then a file. Without files the text goes as `m.text` (split past
//!   [`MATRIX_TEXT_MAX_CHARS`]), as does text too long to be a caption.
//! - A message with a `thread` (the root event id of a thread) carries an `m.thread` relation
//!   (`m.relates_to {rel_type: "m.thread", event_id: root, is_falling_back, m.in_reply_to}`)
//!   on every event, so the reply stays in the thread.
//! - Event sends carry a transaction id, which the homeserver de-duplicates, so they are safe
//!   to retry; uploads are too (an orphaned upload is not a message).
//! - Errors: `{errcode, error}`; 429 / `M_LIMIT_EXCEEDED` waits `retry_after_ms` (or
//!   `Retry-After`); `M_FORBIDDEN`, `M_UNKNOWN_TOKEN`, `M_MISSING_TOKEN` are
//!   `CHANNEL_UNAUTHORIZED`; 413 / `M_TOO_LARGE` is `OUTBOUND_MEDIA_TOO_LARGE`.

use std::collections::HashMap;
use std::sync::Mutex;

use reqwest::Url;
use serde_json::{Value, json};

use crate::http::{FileSource, RawResponse, Transport, seconds};
use crate::{
    ChannelAdapter, ChannelError, Delivered, DeliveredAttachment, DeliveryOutcome, OutboundMessage,
    RetryPolicy, SecretString, Target, Timeouts, check_message,
};

/// Default per-file limit: 50 MiB, Synapse's default `max_upload_size`.
pub const MATRIX_DEFAULT_MAX_BYTES: u64 = 50 * 1024 * 1024;

const AUTH_ERRCODES: &[&str] = &["M_FORBIDDEN", "M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"];

/// Settings of the Matrix adapter.
#[derive(Debug, Clone)]
pub struct MatrixSettings {
    /// Homeserver base URL (`channels.matrix.homeserver`, or `apiBaseUrl`).
    pub homeserver: String,
    /// Access token.
    pub access_token: SecretString,
    /// The bot's user id (`channels.matrix.userId`); asked with `whoami` when absent.
    pub user_id: Option<String>,
    /// Per-file limit (`mediaMaxMb`), default [`MATRIX_DEFAULT_MAX_BYTES`].
    pub media_max_bytes: Option<u64>,
    /// Retries.
    pub retry: RetryPolicy,
    /// Timeouts.
    pub timeouts: Timeouts,
}

impl MatrixSettings {
    /// Defaults with this homeserver and token.
    pub fn new(homeserver: impl Into<String>, access_token: impl Into<SecretString>) -> Self {
        MatrixSettings {
            homeserver: homeserver.into(),
            access_token: access_token.into(),
            user_id: None,
            media_max_bytes: None,
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
        }
    }
}

/// The Matrix adapter.
#[derive(Debug)]
pub struct MatrixAdapter {
    settings: MatrixSettings,
    base: Url,
    http: Transport,
    me: Mutex<Option<String>>,
    dm_rooms: Mutex<HashMap<String, String>>,
    aliases: Mutex<HashMap<String, String>>,
}

fn rejected(status: u16, message: impl Into<String>, code: Option<String>) -> ChannelError {
    ChannelError::Rejected {
        channel: "matrix".into(),
        status,
        message: message.into(),
        platform_code: code,
    }
}

impl MatrixAdapter {
    /// Builds the adapter; no token or a bad homeserver URL is `CHANNEL_NOT_CONFIGURED`.
    pub fn new(settings: MatrixSettings) -> Result<Self, ChannelError> {
        if settings.access_token.is_empty() {
            return Err(ChannelError::NotConfigured {
                channel: "matrix".into(),
                reason: "no access token (channels.matrix.accessToken)".into(),
            });
        }
        let mut base = Url::parse(settings.homeserver.trim_end_matches('/')).map_err(|e| {
            ChannelError::NotConfigured {
                channel: "matrix".into(),
                reason: format!("homeserver {:?} is not a URL: {e}", settings.homeserver),
            }
        })?;
        if base.cannot_be_a_base() {
            return Err(ChannelError::NotConfigured {
                channel: "matrix".into(),
                reason: format!("homeserver {:?} is not a base URL", settings.homeserver),
            });
        }
        if let Ok(mut segs) = base.path_segments_mut() {
            segs.pop_if_empty();
        }
        let http = Transport::new("matrix", &settings.timeouts)?;
        Ok(MatrixAdapter {
            me: Mutex::new(settings.user_id.clone()),
            settings,
            base,
            http,
            dm_rooms: Mutex::new(HashMap::new()),
            aliases: Mutex::new(HashMap::new()),
        })
    }

    /// `<homeserver>/<segments…>`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Url {
        let mut u = self.base.clone();
        if let Ok(mut s) = u.path_segments_mut() {
            s.extend(segments);
        }
        u
    }

    fn client_url(&self, segments: &[&str]) -> Url {
        let mut all = vec!["_matrix", "client", "v3"];
        all.extend_from_slice(segments);
        self.url(&all)
    }

    fn auth(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.bearer_auth(self.settings.access_token.expose())
    }

    /// Reads an answer: 2xx JSON is sent; the rest is classified by status and `errcode`.
    fn read(&self, raw: RawResponse) -> DeliveryOutcome<Value> {
        if raw.is_success() {
            return match raw.json {
                Some(j) => DeliveryOutcome::Sent(j),
                None => DeliveryOutcome::Permanent(rejected(
                    raw.status,
                    "the homeserver's answer was not JSON",
                    None,
                )),
            };
        }
        let errcode = raw
            .json
            .as_ref()
            .and_then(|j| j.get("errcode"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let error = raw
            .json
            .as_ref()
            .and_then(|j| j.get("error"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let message = match (&errcode, &error) {
            (Some(c), Some(e)) => Some(format!("{c}: {e}")),
            (Some(c), None) => Some(c.clone()),
            (None, e) => e.clone(),
        };
        if raw.status == 429 || errcode.as_deref() == Some("M_LIMIT_EXCEEDED") {
            let retry_after = raw
                .json
                .as_ref()
                .and_then(|j| j.get("retry_after_ms"))
                .and_then(Value::as_f64)
                .and_then(|ms| seconds(ms / 1000.0))
                .or(raw.retry_after);
            return DeliveryOutcome::Retryable {
                rate_limited: true,
                retry_after,
                reason: message.unwrap_or_else(|| "HTTP 429".into()),
            };
        }
        if let Some(c) = errcode.as_deref()
            && AUTH_ERRCODES.contains(&c)
        {
            return DeliveryOutcome::Unauthorized {
                status: raw.status,
                message: message.unwrap_or_default(),
            };
        }
        if errcode.as_deref() == Some("M_TOO_LARGE") || raw.status == 413 {
            return DeliveryOutcome::Permanent(ChannelError::MediaTooLarge {
                channel: "matrix".into(),
                filename: None,
                size: None,
                limit: Some(self.max_attachment_bytes()),
                status: Some(raw.status),
            });
        }
        self.http.classify_error(&raw, message, errcode)
    }

    async fn call(
        &self,
        req: reqwest::RequestBuilder,
        idempotent: bool,
        files: &[&FileSource],
    ) -> DeliveryOutcome<Value> {
        match self.http.send(self.auth(req), idempotent, files).await {
            Ok(raw) => self.read(raw),
            Err(f) => f.into_outcome(),
        }
    }

    async fn get(&self, url: Url) -> Result<Value, ChannelError> {
        self.settings
            .retry
            .run("matrix", |_| {
                self.call(self.http.client.get(url.clone()), true, &[])
            })
            .await
    }

    /// The bot's own user id.
    async fn me(&self) -> Result<String, ChannelError> {
        if let Some(me) = self.me.lock().ok().and_then(|m| m.clone()) {
            return Ok(me);
        }
        let j = self.get(self.client_url(&["account", "whoami"])).await?;
        let me = j
            .get("user_id")
            .and_then(Value::as_str)
            .ok_or_else(|| rejected(200, "whoami answered without user_id", None))?
            .to_string();
        if let Ok(mut m) = self.me.lock() {
            *m = Some(me.clone());
        }
        Ok(me)
    }

    async fn resolve_room(&self, id: &str) -> Result<String, ChannelError> {
        if id.starts_with('!') {
            return Ok(id.to_string());
        }
        if !id.starts_with('#') {
            return Err(ChannelError::BadRequest {
                message: format!(
                    "matrix room {id:?} is neither a room id (!id:server) nor an alias (#name:server)"
                ),
            });
        }
        if let Some(r) = self.aliases.lock().ok().and_then(|m| m.get(id).cloned()) {
            return Ok(r);
        }
        let j = self
            .get(self.client_url(&["directory", "room", id]))
            .await?;
        let room = j
            .get("room_id")
            .and_then(Value::as_str)
            .ok_or_else(|| rejected(200, "directory lookup answered without room_id", None))?
            .to_string();
        if let Ok(mut m) = self.aliases.lock() {
            m.insert(id.to_string(), room.clone());
        }
        Ok(room)
    }

    /// The DM room with `user`: cached, else from `m.direct` (a room the bot is joined to),
    /// else created and recorded.
    async fn dm_room(&self, user: &str) -> Result<String, ChannelError> {
        if !user.starts_with('@') || !user.contains(':') {
            return Err(ChannelError::BadRequest {
                message: format!("matrix user {user:?} is not a user id (@name:server)"),
            });
        }
        if let Some(r) = self.dm_rooms.lock().ok().and_then(|m| m.get(user).cloned()) {
            return Ok(r);
        }
        let me = self.me().await?;
        let direct_url = self.client_url(&["user", &me, "account_data", "m.direct"]);
        let mut direct = match self.get(direct_url.clone()).await {
            Ok(v) if v.is_object() => v,
            Ok(_) => json!({}),
            Err(ChannelError::Rejected { status: 404, .. }) => json!({}),
            Err(e) => return Err(e),
        };
        let candidates: Vec<String> = direct
            .get(user)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        if !candidates.is_empty() {
            let joined = self.get(self.client_url(&["joined_rooms"])).await?;
            let joined: Vec<&str> = joined
                .get("joined_rooms")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            if let Some(r) = candidates.iter().find(|c| joined.contains(&c.as_str())) {
                if let Ok(mut m) = self.dm_rooms.lock() {
                    m.insert(user.to_string(), r.clone());
                }
                return Ok(r.clone());
            }
        }
        let body = json!({
            "is_direct": true,
            "invite": [user],
            "preset": "trusted_private_chat",
        });
        let j = self
            .settings
            .retry
            .run("matrix", |_| {
                self.call(
                    self.http
                        .client
                        .post(self.client_url(&["createRoom"]))
                        .json(&body),
                    false,
                    &[],
                )
            })
            .await?;
        let room = j
            .get("room_id")
            .and_then(Value::as_str)
            .ok_or_else(|| rejected(200, "createRoom answered without room_id", None))?
            .to_string();
        let mut list = candidates;
        list.push(room.clone());
        direct[user] = json!(list);
        // Recording the DM is best effort: the room exists and the message can go.
        let recorded = self
            .settings
            .retry
            .run("matrix", |_| {
                self.call(
                    self.http.client.put(direct_url.clone()).json(&direct),
                    true,
                    &[],
                )
            })
            .await;
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "could not record the DM room in m.direct");
        }
        if let Ok(mut m) = self.dm_rooms.lock() {
            m.insert(user.to_string(), room.clone());
        }
        Ok(room)
    }

    async fn upload(&self, f: &FileSource) -> Result<String, ChannelError> {
        let mut url = self.url(&["_matrix", "media", "v3", "upload"]);
        url.query_pairs_mut().append_pair("filename", &f.filename);
        let mime = if crate::http::valid_mime(&f.mime) {
            f.mime.clone()
        } else {
            "application/octet-stream".into()
        };
        let j = self
            .settings
            .retry
            .run("matrix", |_| {
                let req = self
                    .http
                    .client
                    .post(url.clone())
                    .header(reqwest::header::CONTENT_TYPE, mime.as_str())
                    .header(reqwest::header::CONTENT_LENGTH, f.size)
                    .body(f.body());
                async move {
                    match self.call(req, true, &[f]).await {
                        DeliveryOutcome::Permanent(ChannelError::MediaTooLarge {
                            status, ..
                        }) => DeliveryOutcome::Permanent(ChannelError::MediaTooLarge {
                            channel: "matrix".into(),
                            filename: Some(f.filename.clone()),
                            size: Some(f.size),
                            limit: Some(self.max_attachment_bytes()),
                            status,
                        }),
                        o => o,
                    }
                }
            })
            .await?;
        j.get("content_uri")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| rejected(200, "upload answered without content_uri", None))
    }

    async fn send_event(
        &self,
        room: &str,
        content: &Value,
        txn: Option<String>,
    ) -> Result<String, ChannelError> {
        let txn = txn.unwrap_or_else(|| format!("carapace-{}", uuid::Uuid::new_v4()));
        let url = self.client_url(&["rooms", room, "send", "m.room.message", &txn]);
        let j = self
            .settings
            .retry
            .run("matrix", |_| {
                // The transaction id makes a repeated PUT a no-op on the homeserver.
                self.call(self.http.client.put(url.clone()).json(content), true, &[])
            })
            .await?;
        j.get("event_id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| rejected(200, "send answered without event_id", None))
    }

    /// Refuses an end-to-end encrypted room: carapace cannot encrypt, and plaintext must never
    /// go into a room whose members expect encryption. Asked before every send (a room can turn
    /// encryption on at any time, never off).
    async fn refuse_encrypted(&self, room: &str) -> Result<(), ChannelError> {
        let url = self.client_url(&["rooms", room, "state", "m.room.encryption", ""]);
        match self.get(url).await {
            Ok(v) if v.get("algorithm").is_some() => Err(ChannelError::RoomEncrypted {
                channel: "matrix".into(),
                room: room.to_string(),
            }),
            Ok(_) => Ok(()),
            Err(ChannelError::Rejected { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn send_with(
        &self,
        msg: OutboundMessage,
        key: Option<&str>,
    ) -> Result<Delivered, ChannelError> {
        check_message("matrix", self.max_attachment_bytes(), &msg)?;
        let room = match &msg.target {
            Target::Room(id) | Target::Channel(id) => self.resolve_room(id).await?,
            Target::User(id) => self.dm_room(id).await?,
        };
        self.refuse_encrypted(&room).await?;
        // Deterministic transaction ids when the caller gives a key: sending the same reply
        // again (after a restart) is de-duplicated by the homeserver.
        let mut n = 0u32;
        let mut txn = || {
            n += 1;
            key.map(|k| format!("carapace-{}-{n}", txn_safe(k)))
        };
        let mut delivered = Delivered::default();
        let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        let (text, caption) = (nonempty(&msg.text), nonempty(&msg.caption));
        let thread = nonempty(&msg.thread);
        let files = crate::http::sources(msg.attachments, msg.progress);
        // With files, the text and caption ride on the first file as its caption (one event,
        // as Matrix v1.10 captions: body = caption, filename = the name). Text too long for
        // one event goes first as m.text.
        let together = [text.clone(), caption.clone()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("\n\n");
        let (before, first_caption) = if files.is_empty() {
            (crate::split_text(&together, MATRIX_TEXT_MAX_CHARS), None)
        } else if together.chars().count() <= MATRIX_TEXT_MAX_CHARS {
            (Vec::new(), (!together.is_empty()).then_some(together))
        } else {
            (crate::split_text(&together, MATRIX_TEXT_MAX_CHARS), None)
        };
        for t in before {
            let id = self
                .send_event(
                    &room,
                    &in_thread(json!({ "msgtype": "m.text", "body": t }), thread.as_deref()),
                    txn(),
                )
                .await
                .map_err(|e| e.after_partial(&delivered))?;
            delivered.push_message(id);
        }
        for (i, f) in files.iter().enumerate() {
            let uri = self
                .upload(f)
                .await
                .map_err(|e| e.after_partial(&delivered))?;
            let content = file_event(
                &uri,
                &f.filename,
                &f.mime,
                f.size,
                f.width,
                f.height,
                if i == 0 {
                    first_caption.as_deref()
                } else {
                    None
                },
            );
            let content = in_thread(content, thread.as_deref());
            let id = self
                .send_event(&room, &content, txn())
                .await
                .map_err(|e| e.after_partial(&delivered))?;
            delivered.push_message(id);
            delivered.attachments.push(DeliveredAttachment {
                remote_id: uri,
                filename: f.filename.clone(),
                bytes: f.size,
            });
        }
        Ok(delivered)
    }
}

/// Longest text carapace puts in one Matrix event (characters); longer text is split. Events
/// are limited to 64 KiB of JSON, and clients render very long messages poorly.
pub const MATRIX_TEXT_MAX_CHARS: usize = 16_000;

fn txn_safe(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect()
}

/// `content` as a message in the thread rooted at `root` (an `m.thread` relation, with the
/// reply fallback for clients without threads), or unchanged without a thread.
pub fn in_thread(mut content: Value, root: Option<&str>) -> Value {
    if let Some(root) = root {
        content["m.relates_to"] = json!({
            "rel_type": "m.thread",
            "event_id": root,
            "is_falling_back": true,
            "m.in_reply_to": { "event_id": root },
        });
    }
    content
}

/// The `m.room.message` content of one uploaded file.
pub fn file_event(
    content_uri: &str,
    filename: &str,
    mime: &str,
    size: u64,
    w: Option<u32>,
    h: Option<u32>,
    caption: Option<&str>,
) -> Value {
    let msgtype = if mime.starts_with("image/") {
        "m.image"
    } else {
        "m.file"
    };
    let mut info = json!({ "mimetype": mime, "size": size });
    if msgtype == "m.image"
        && let (Some(w), Some(h)) = (w, h)
    {
        info["w"] = json!(w);
        info["h"] = json!(h);
    }
    json!({
        "msgtype": msgtype,
        "body": caption.filter(|c| !c.is_empty()).unwrap_or(filename),
        "filename": filename,
        "url": content_uri,
        "info": info,
    })
}

#[async_trait::async_trait]
impl ChannelAdapter for MatrixAdapter {
    fn id(&self) -> &str {
        "matrix"
    }

    fn max_attachment_bytes(&self) -> u64 {
        self.settings
            .media_max_bytes
            .unwrap_or(MATRIX_DEFAULT_MAX_BYTES)
    }

    async fn send(&self, msg: OutboundMessage) -> Result<Delivered, ChannelError> {
        self.send_with(msg, None).await
    }

    async fn send_idempotent(
        &self,
        msg: OutboundMessage,
        key: &str,
    ) -> Result<Delivered, ChannelError> {
        self.send_with(msg, Some(key)).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn events() {
        let e = file_event(
            "mxc://s/a",
            "a.png",
            "image/png",
            10,
            Some(3),
            Some(4),
            Some("hi"),
        );
        assert_eq!(e["msgtype"], "m.image");
        assert_eq!(e["body"], "hi");
        assert_eq!(e["filename"], "a.png");
        assert_eq!(e["info"]["w"], 3);
        let e = file_event(
            "mxc://s/a",
            "a.pdf",
            "application/pdf",
            10,
            None,
            None,
            None,
        );
        assert_eq!(e["msgtype"], "m.file");
        assert_eq!(e["body"], "a.pdf");
        assert!(e["info"].get("w").is_none());
    }

    #[test]
    fn urls_are_encoded() {
        let a = MatrixAdapter::new(MatrixSettings::new("http://h:8008/", "t")).unwrap();
        let u = a.client_url(&["rooms", "!r/x:h", "send", "m.room.message", "t1"]);
        assert_eq!(
            u.as_str(),
            "http://h:8008/_matrix/client/v3/rooms/!r%2Fx:h/send/m.room.message/t1"
        );
        let u = a.client_url(&["directory", "room", "#a:h"]);
        assert_eq!(
            u.as_str(),
            "http://h:8008/_matrix/client/v3/directory/room/%23a:h"
        );
    }
}
