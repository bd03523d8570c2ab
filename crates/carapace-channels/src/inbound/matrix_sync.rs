//! Matrix inbound: `/sync` long polling of the Client-Server API.
//!
//! - **Cursor**: the `next_batch` token, saved (see [`CursorStore`]) after every message of a
//!   batch was accepted by the sink. A batch the sink refuses is fetched again from the same
//!   `since`, so nothing is lost; what it accepted before is ignored there as a duplicate.
//! - **First start** (no cursor): one sync with an empty timeline takes the current position;
//!   nothing said before it is answered. Invites pending then are handled like new ones.
//! - **Invites**: joined per `autoJoin` — `always` (default), `allowlist` (the room id or its
//!   canonical alias in `autoJoinAllowlist`), `off`. A DM invite (`is_direct`) is recorded in
//!   the bot's `m.direct`, so `user:@person` sends reuse that room.
//! - **Newly joined rooms**: only events after the bot's invite (or join) are handed over,
//!   never the room's earlier history.
//! - **DM or group**: a room with at most two joined members (the bot and one person) is a
//!   direct chat; a room with more is a group, whatever its flags.
//! - **Messages**: `m.text`, `m.emote`, and `m.image` / `m.file` / `m.audio` / `m.video` (the
//!   last two as files) with their `mxc://` URI; a caption is the `body` when it differs from
//!   `filename`. Ignored: the bot's own events, `m.notice` (bots), edits (`m.replace`),
//!   redactions and redacted events, other event types.
//! - **Encryption**: carapace has none. Encrypted events, and any message in a room whose
//!   state says it is encrypted, are reported with [`InboundSink::skipped`] and never handed
//!   over (a reply would be plaintext in an encrypted room).
//! - **Mentions**: `m.mentions.user_ids`, a `matrix.to` pill in `formatted_body`, the bot's
//!   user id or display name in the body, or a reply to one of the bot's events.
//! - **Threads**: `m.relates_to` with `rel_type: "m.thread"` gives the thread root.
//! - **Errors**: connection failures, 5xx and 429 back off (1 s doubling to 60 s, or the
//!   server's `retry_after_ms`) and the state says `reconnecting`; an unknown or missing token
//!   (`M_UNKNOWN_TOKEN`, `M_MISSING_TOKEN`, `M_FORBIDDEN` on `/sync`) ends `run` with
//!   `CHANNEL_UNAUTHORIZED`.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Url;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::backoff::{Backoff, sleep_or_cancel};
use super::cursor::{CursorStore, now_ms};
use super::{
    AttachmentKind, ChatKind, ChatRef, ConnectionState, FetchedMedia, InboundAttachment,
    InboundMessage, InboundSink, InboundSource, SenderRef,
};
use crate::{ChannelError, SecretString};

/// Which invites are joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinPolicy {
    /// Every invite.
    Always,
    /// Rooms whose id or canonical alias is listed.
    Allowlist(Vec<String>),
    /// None.
    Off,
}

/// Settings of the Matrix source.
#[derive(Debug, Clone)]
pub struct MatrixSourceSettings {
    /// Homeserver base URL.
    pub homeserver: String,
    /// Access token of the bot.
    pub access_token: SecretString,
    /// The bot's user id (asked with `whoami` when absent).
    pub user_id: Option<String>,
    /// carapace's state directory (the cursor lives under it).
    pub state_dir: PathBuf,
    /// Invite handling.
    pub join: JoinPolicy,
    /// How long the server may hold a `/sync` open (default 30 s).
    pub poll_timeout: Duration,
    /// Reconnect backoff (default 1 s doubling to 60 s).
    pub backoff: Backoff,
    /// Timeline events per room and sync (default 50).
    pub timeline_limit: u32,
}

impl MatrixSourceSettings {
    /// Defaults for this homeserver, token and state dir.
    pub fn new(
        homeserver: impl Into<String>,
        access_token: impl Into<SecretString>,
        state_dir: impl Into<PathBuf>,
    ) -> Self {
        MatrixSourceSettings {
            homeserver: homeserver.into(),
            access_token: access_token.into(),
            user_id: None,
            state_dir: state_dir.into(),
            join: JoinPolicy::Always,
            poll_timeout: Duration::from_secs(30),
            backoff: Backoff::default(),
            timeline_limit: 50,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct RoomInfo {
    encrypted: bool,
    joined: Option<u64>,
    reported_encrypted: bool,
}

#[derive(Debug, Default)]
struct Me {
    id: String,
    display_name: Option<String>,
}

/// The Matrix inbound source.
#[derive(Debug)]
pub struct MatrixSource {
    settings: MatrixSourceSettings,
    base: Url,
    http: reqwest::Client,
    cursor: CursorStore,
    me: tokio::sync::OnceCell<Me>,
    rooms: Mutex<HashMap<String, RoomInfo>>,
    own_events: Mutex<VecDeque<String>>,
}

const OWN_EVENTS_KEPT: usize = 512;

/// What went wrong with one request.
#[derive(Debug)]
enum Failure {
    /// Try again after a backoff (or the server's wait).
    Transient(String, Option<Duration>),
    /// Stop.
    Permanent(ChannelError),
}

impl Failure {
    fn text(&self) -> String {
        match self {
            Failure::Transient(m, _) => m.clone(),
            Failure::Permanent(e) => e.to_string(),
        }
    }

    fn into_error(self) -> ChannelError {
        match self {
            Failure::Permanent(e) => e,
            Failure::Transient(reason, _) => ChannelError::Unreachable {
                channel: "matrix".into(),
                attempts: 1,
                reason,
            },
        }
    }
}

fn channel_err(status: u16, errcode: Option<&str>, message: String) -> ChannelError {
    match errcode {
        Some("M_UNKNOWN_TOKEN" | "M_MISSING_TOKEN" | "M_FORBIDDEN") => ChannelError::Unauthorized {
            channel: "matrix".into(),
            status,
            message,
        },
        _ if status == 401 || status == 403 => ChannelError::Unauthorized {
            channel: "matrix".into(),
            status,
            message,
        },
        _ => ChannelError::Rejected {
            channel: "matrix".into(),
            status,
            message,
            platform_code: errcode.map(str::to_string),
        },
    }
}

pub(crate) fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        "HTTP error".to_string()
    };
    let mut src = std::error::Error::source(&e);
    while let Some(x) = src {
        let t = x.to_string();
        if !t.is_empty() && !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = x.source();
    }
    s
}

impl MatrixSource {
    /// Builds the source; a bad homeserver URL or no token is `CHANNEL_NOT_CONFIGURED`.
    pub fn new(settings: MatrixSourceSettings) -> Result<MatrixSource, ChannelError> {
        let nc = |reason: String| ChannelError::NotConfigured {
            channel: "matrix".into(),
            reason,
        };
        if settings.access_token.is_empty() {
            return Err(nc("no access token (channels.matrix.accessToken)".into()));
        }
        let mut base = Url::parse(settings.homeserver.trim_end_matches('/')).map_err(|e| {
            nc(format!(
                "homeserver {:?} is not a URL: {e}",
                settings.homeserver
            ))
        })?;
        if base.cannot_be_a_base() {
            return Err(nc(format!(
                "homeserver {:?} is not a base URL",
                settings.homeserver
            )));
        }
        if let Ok(mut segs) = base.path_segments_mut() {
            segs.pop_if_empty();
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("carapace/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| nc(format!("could not build the HTTP client: {}", describe(e))))?;
        let cursor = CursorStore::new(&settings.state_dir, "matrix", None);
        Ok(MatrixSource {
            settings,
            base,
            http,
            cursor,
            me: tokio::sync::OnceCell::new(),
            rooms: Mutex::new(HashMap::new()),
            own_events: Mutex::new(VecDeque::new()),
        })
    }

    /// The cursor store (for status and tests).
    pub fn cursor(&self) -> &CursorStore {
        &self.cursor
    }

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

    async fn request(
        &self,
        req: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<Value, Failure> {
        let resp = req
            .bearer_auth(self.settings.access_token.expose())
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| Failure::Transient(describe(e), None))?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(|v| Duration::from_secs_f64(v.min(3600.0)));
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| Failure::Transient(describe(e), None))?;
        let j: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(j);
        }
        let errcode = j.get("errcode").and_then(Value::as_str);
        let message = match (errcode, j.get("error").and_then(Value::as_str)) {
            (Some(c), Some(e)) => format!("{c}: {e}"),
            (Some(c), None) => c.to_string(),
            (None, Some(e)) => e.to_string(),
            (None, None) => format!("HTTP {status}"),
        };
        if status == 429 || errcode == Some("M_LIMIT_EXCEEDED") {
            let wait = j
                .get("retry_after_ms")
                .and_then(Value::as_f64)
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(|ms| Duration::from_secs_f64((ms / 1000.0).min(3600.0)))
                .or(retry_after);
            return Err(Failure::Transient(message, wait));
        }
        if status >= 500 || status == 408 {
            return Err(Failure::Transient(message, retry_after));
        }
        Err(Failure::Permanent(channel_err(status, errcode, message)))
    }

    async fn get(&self, url: Url, timeout: Duration) -> Result<Value, Failure> {
        self.request(self.http.get(url), timeout).await
    }

    /// The bot's id and display name (asked once).
    async fn me(&self) -> Result<&Me, Failure> {
        self.me
            .get_or_try_init(|| async {
                let id = match &self.settings.user_id {
                    Some(id) => id.clone(),
                    None => {
                        let j = self
                            .get(
                                self.client_url(&["account", "whoami"]),
                                Duration::from_secs(30),
                            )
                            .await?;
                        j.get("user_id")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .ok_or_else(|| {
                                Failure::Permanent(ChannelError::Rejected {
                                    channel: "matrix".into(),
                                    status: 200,
                                    message: "whoami answered without user_id".into(),
                                    platform_code: None,
                                })
                            })?
                    }
                };
                let display_name = match self
                    .get(
                        self.client_url(&["profile", &id, "displayname"]),
                        Duration::from_secs(30),
                    )
                    .await
                {
                    Ok(j) => j
                        .get("displayname")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    Err(_) => None,
                };
                Ok(Me { id, display_name })
            })
            .await
    }

    fn sync_url(&self, since: Option<&str>, initial: bool) -> Url {
        let limit = if initial {
            0
        } else {
            self.settings.timeline_limit
        };
        let filter = json!({
            "presence": {"types": []},
            "account_data": {"types": []},
            "room": {
                "timeline": {"limit": limit},
                "state": {"lazy_load_members": true},
                "ephemeral": {"types": []},
                "account_data": {"types": []},
            },
        });
        let mut u = self.client_url(&["sync"]);
        {
            let mut q = u.query_pairs_mut();
            q.append_pair("filter", &filter.to_string());
            let t = if initial {
                0
            } else {
                self.settings.poll_timeout.as_millis()
            };
            q.append_pair("timeout", &t.to_string());
            if let Some(s) = since {
                q.append_pair("since", s);
            }
        }
        u
    }

    async fn sync(&self, since: Option<&str>, initial: bool) -> Result<Value, Failure> {
        let timeout = if initial {
            Duration::from_secs(60)
        } else {
            self.settings.poll_timeout + Duration::from_secs(30)
        };
        self.get(self.sync_url(since, initial), timeout).await
    }

    fn remember_own(&self, event_id: &str) {
        if let Ok(mut q) = self.own_events.lock() {
            if q.len() >= OWN_EVENTS_KEPT {
                q.pop_front();
            }
            q.push_back(event_id.to_string());
        }
    }

    fn is_own_event(&self, event_id: &str) -> bool {
        self.own_events
            .lock()
            .map(|q| q.iter().any(|e| e == event_id))
            .unwrap_or(false)
    }

    async fn handle_invites(&self, invites: &serde_json::Map<String, Value>) {
        let Ok(me) = self.me().await else {
            return;
        };
        for (room, data) in invites {
            let events = data
                .pointer("/invite_state/events")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let alias = events
                .iter()
                .find(|e| e["type"] == "m.room.canonical_alias")
                .and_then(|e| e.pointer("/content/alias"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let my_invite = events
                .iter()
                .find(|e| e["type"] == "m.room.member" && e["state_key"] == me.id.as_str());
            let join = match &self.settings.join {
                JoinPolicy::Always => true,
                JoinPolicy::Off => false,
                JoinPolicy::Allowlist(list) => list
                    .iter()
                    .any(|x| x == room || alias.as_deref() == Some(x.as_str())),
            };
            if !join {
                tracing::info!(channel = "matrix", %room, "invite not joined (autoJoin)");
                continue;
            }
            if let Err(f) = self
                .request(
                    self.http
                        .post(self.client_url(&["join", room]))
                        .json(&json!({})),
                    Duration::from_secs(30),
                )
                .await
            {
                tracing::warn!(channel = "matrix", %room, error = %f.text(), "could not join the room");
                continue;
            }
            tracing::info!(channel = "matrix", %room, "joined on invite");
            let direct = my_invite
                .and_then(|e| e.pointer("/content/is_direct"))
                .and_then(Value::as_bool)
                == Some(true);
            if let (true, Some(inviter)) = (
                direct,
                my_invite
                    .and_then(|e| e["sender"].as_str())
                    .map(str::to_string),
            ) {
                self.record_direct(&me.id, &inviter, room).await;
            }
        }
    }

    /// Adds `room` to the bot's `m.direct` for `person` (best effort).
    async fn record_direct(&self, me: &str, person: &str, room: &str) {
        let url = self.client_url(&["user", me, "account_data", "m.direct"]);
        let mut direct = match self.get(url.clone(), Duration::from_secs(30)).await {
            Ok(v) if v.is_object() => v,
            _ => json!({}),
        };
        let list = direct
            .get(person)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if list.iter().any(|r| r == room) {
            return;
        }
        let mut list = list;
        list.push(json!(room));
        direct[person] = Value::Array(list);
        if let Err(f) = self
            .request(self.http.put(url).json(&direct), Duration::from_secs(30))
            .await
        {
            tracing::debug!(channel = "matrix", error = %f.text(), "could not record the DM room in m.direct");
        }
    }

    /// Fills in what the source needs to know of `room` (encryption, member count) the first
    /// time it is seen, and whenever its membership changed.
    async fn room_info(&self, room: &str, data: &Value) -> RoomInfo {
        let events: Vec<&Value> = ["/state/events", "/timeline/events"]
            .iter()
            .filter_map(|p| data.pointer(p).and_then(Value::as_array))
            .flatten()
            .collect();
        let members_changed = events.iter().any(|e| e["type"] == "m.room.member");
        let encryption_event = events.iter().any(|e| e["type"] == "m.room.encryption");
        let summary_count = data
            .pointer("/summary/m.joined_member_count")
            .and_then(Value::as_u64);
        let known = self.rooms.lock().ok().and_then(|m| m.get(room).cloned());
        let mut info = known.clone().unwrap_or_default();
        if encryption_event {
            info.encrypted = true;
        }
        if let Some(n) = summary_count {
            info.joined = Some(n);
        } else if members_changed || info.joined.is_none() {
            info.joined = self
                .get(
                    self.client_url(&["rooms", room, "joined_members"]),
                    Duration::from_secs(30),
                )
                .await
                .ok()
                .and_then(|j| {
                    j.get("joined")
                        .and_then(Value::as_object)
                        .map(|m| m.len() as u64)
                })
                .or(info.joined);
        }
        if known.is_none() && !info.encrypted {
            // The state of a room seen for the first time in this run: is it encrypted?
            match self
                .get(
                    self.client_url(&["rooms", room, "state", "m.room.encryption", ""]),
                    Duration::from_secs(30),
                )
                .await
            {
                Ok(v) if v.get("algorithm").is_some() => info.encrypted = true,
                Ok(_) | Err(Failure::Permanent(ChannelError::Rejected { status: 404, .. })) => {}
                // Unknown: assume encrypted until known, rather than risk plaintext.
                Err(_) => info.encrypted = true,
            }
        }
        if let Ok(mut m) = self.rooms.lock() {
            m.insert(room.to_string(), info.clone());
        }
        info
    }

    fn mark_encrypted_reported(&self, room: &str) -> bool {
        let Ok(mut m) = self.rooms.lock() else {
            return true;
        };
        let e = m.entry(room.to_string()).or_default();
        let first = !e.reported_encrypted;
        e.reported_encrypted = true;
        first
    }

    /// The messages of one joined room's timeline, in order.
    /// Fuzzing: every joined room of one `/sync` answer, as the bot `@bot:example.org`, read as
    /// an unencrypted and as an encrypted room of 2 and of 3 members; the number of messages
    /// reported.
    pub(crate) fn fuzz_sync(&self, j: &Value) -> usize {
        let me = Me {
            id: "@bot:example.org".into(),
            display_name: Some("Carapace".into()),
        };
        let Some(joined) = j.pointer("/rooms/join").and_then(Value::as_object) else {
            return 0;
        };
        let mut n = 0;
        for (room, data) in joined {
            for (encrypted, members) in [(false, 2), (false, 3), (true, 2)] {
                let info = RoomInfo {
                    encrypted,
                    joined: Some(members),
                    reported_encrypted: false,
                };
                n += self.room_messages(&me, room, data, &info, None).0.len();
            }
        }
        n
    }

    fn room_messages(
        &self,
        me: &Me,
        room: &str,
        data: &Value,
        info: &RoomInfo,
        cutoff_ms: Option<i64>,
    ) -> (Vec<InboundMessage>, Vec<String>) {
        let mut out = Vec::new();
        let mut skipped = Vec::new();
        let events = data
            .pointer("/timeline/events")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        // A room the bot just joined: nothing before its invite (or join) is handed over.
        let own_member = |m: &str| {
            events.iter().rposition(|e| {
                e["type"] == "m.room.member"
                    && e["state_key"] == me.id.as_str()
                    && e.pointer("/content/membership").and_then(Value::as_str) == Some(m)
            })
        };
        let start = own_member("invite")
            .or_else(|| own_member("join"))
            .map_or(0, |i| i + 1);
        let kind = if info.joined.is_some_and(|n| n > 2) {
            ChatKind::Group
        } else {
            ChatKind::Direct
        };
        for e in &events[start.min(events.len())..] {
            let Some(event_id) = e["event_id"].as_str() else {
                continue;
            };
            let sender = e["sender"].as_str().unwrap_or_default();
            if sender == me.id {
                self.remember_own(event_id);
                continue;
            }
            if let (Some(cut), Some(ts)) = (cutoff_ms, e["origin_server_ts"].as_i64())
                && ts < cut
            {
                continue;
            }
            match e["type"].as_str() {
                Some("m.room.encrypted") => {
                    skipped.push(format!(
                        "an encrypted event in room {room} (carapace has no end-to-end encryption)"
                    ));
                    continue;
                }
                Some("m.room.message") => {}
                _ => continue,
            }
            if info.encrypted {
                skipped.push(format!(
                    "a message in encrypted room {room}: not answered (a reply would be plaintext)"
                ));
                continue;
            }
            if let Some(m) = self.to_message(me, room, kind, e) {
                out.push(m);
            }
        }
        (out, skipped)
    }

    fn to_message(&self, me: &Me, room: &str, kind: ChatKind, e: &Value) -> Option<InboundMessage> {
        let c = e.get("content")?;
        if e.pointer("/unsigned/redacted_because").is_some() || c.as_object()?.is_empty() {
            return None;
        }
        let rel = c.get("m.relates_to");
        let rel_type = rel.and_then(|r| r["rel_type"].as_str());
        if rel_type == Some("m.replace") || c.get("m.new_content").is_some() {
            return None;
        }
        let msgtype = c["msgtype"].as_str()?;
        let body = c["body"].as_str().unwrap_or_default();
        let reply_to = rel
            .and_then(|r| r.pointer("/m.in_reply_to/event_id"))
            .and_then(Value::as_str);
        let mut attachments = Vec::new();
        let text = match msgtype {
            "m.text" => strip_reply_fallback(body, reply_to.is_some()),
            "m.emote" => format!("* {}", strip_reply_fallback(body, reply_to.is_some())),
            "m.image" | "m.file" | "m.audio" | "m.video" => {
                // Encrypted media carry `file` instead of `url`.
                let url = c["url"].as_str()?;
                if !url.starts_with("mxc://") {
                    return None;
                }
                let filename = c["filename"].as_str().map(str::to_string);
                let caption = match &filename {
                    Some(f) if !body.is_empty() && body != f => body.to_string(),
                    _ => String::new(),
                };
                let name = filename.or_else(|| (!body.is_empty()).then(|| body.to_string()));
                attachments.push(InboundAttachment {
                    kind: match msgtype {
                        "m.image" => AttachmentKind::Image,
                        "m.audio" => AttachmentKind::Audio,
                        "m.video" => AttachmentKind::Video,
                        _ => AttachmentKind::File,
                    },
                    filename: name,
                    mime: c
                        .pointer("/info/mimetype")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    size: c.pointer("/info/size").and_then(Value::as_u64),
                    fetch: url.to_string(),
                });
                caption
            }
            _ => return None,
        };
        let mentioned_ids = c
            .pointer("/m.mentions/user_ids")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|u| u == me.id.as_str()));
        let formatted = c["formatted_body"].as_str().unwrap_or_default();
        let pill = formatted.contains(&format!("matrix.to/#/{}", me.id))
            || formatted.contains(&format!("matrix.to/#/{}", url_encode(&me.id)));
        let lower = body.to_lowercase();
        let named = lower.contains(&me.id.to_lowercase())
            || me
                .display_name
                .as_deref()
                .filter(|n| n.chars().count() >= 2)
                .is_some_and(|n| lower.contains(&n.to_lowercase()));
        let replied = reply_to.is_some_and(|id| self.is_own_event(id))
            || (reply_to.is_some() && body.starts_with(&format!("> <{}>", me.id)));
        let thread = (rel_type == Some("m.thread"))
            .then(|| rel.and_then(|r| r["event_id"].as_str()).map(str::to_string))
            .flatten();
        Some(InboundMessage {
            channel: "matrix".into(),
            account: None,
            event_id: e["event_id"].as_str()?.to_string(),
            chat: ChatRef {
                kind,
                id: room.to_string(),
                thread,
            },
            sender: SenderRef {
                id: e["sender"].as_str()?.to_string(),
                name: None,
            },
            text,
            mentions_bot: mentioned_ids || pill || named || replied,
            attachments,
            timestamp_ms: e["origin_server_ts"].as_i64(),
        })
    }

    /// Handles one sync answer: invites, then every joined room's messages in order. `Err`:
    /// the sink refused a message (the batch is fetched again).
    async fn process(
        &self,
        j: &Value,
        sink: &Arc<dyn InboundSink>,
        cutoff_ms: Option<i64>,
    ) -> Result<(), ChannelError> {
        if let Some(inv) = j.pointer("/rooms/invite").and_then(Value::as_object) {
            self.handle_invites(inv).await;
        }
        if let Some(left) = j.pointer("/rooms/leave").and_then(Value::as_object)
            && let Ok(mut m) = self.rooms.lock()
        {
            for r in left.keys() {
                m.remove(r);
            }
        }
        let me = self.me().await.map_err(Failure::into_error)?;
        let Some(joined) = j.pointer("/rooms/join").and_then(Value::as_object) else {
            return Ok(());
        };
        for (room, data) in joined {
            let has_timeline = data
                .pointer("/timeline/events")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            let has_state = data
                .pointer("/state/events")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            if !has_timeline && !has_state {
                continue;
            }
            let info = self.room_info(room, data).await;
            let (messages, skipped) = self.room_messages(me, room, data, &info, cutoff_ms);
            for s in skipped {
                if self.mark_encrypted_reported(room) {
                    tracing::warn!(channel = "matrix", %room, "{s}");
                }
                sink.skipped("matrix", &s);
            }
            for m in messages {
                sink.deliver(m).await?;
            }
        }
        Ok(())
    }

    /// Streams `url` into memory, at most `max` bytes.
    async fn download(&self, url: Url, max: u64) -> Result<Option<FetchedMedia>, ChannelError> {
        let resp = self
            .http
            .get(url)
            .bearer_auth(self.settings.access_token.expose())
            .timeout(Duration::from_secs(300))
            .send()
            .await
            .map_err(|e| ChannelError::Unreachable {
                channel: "matrix".into(),
                attempts: 1,
                reason: describe(e),
            })?;
        let status = resp.status().as_u16();
        if status == 404 {
            return Ok(None);
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if !(200..300).contains(&status) {
            return Err(channel_err(
                status,
                None,
                format!("media download: HTTP {status}"),
            ));
        }
        let bytes = read_capped(resp, max, "matrix").await?;
        Ok(Some(FetchedMedia {
            bytes,
            content_type,
        }))
    }
}

/// Reads a response body, failing (never truncating) past `max` bytes.
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    max: u64,
    channel: &str,
) -> Result<Vec<u8>, ChannelError> {
    if let Some(len) = resp.content_length()
        && len > max
    {
        return Err(ChannelError::MediaTooLarge {
            channel: channel.to_string(),
            filename: None,
            size: Some(len),
            limit: Some(max),
            status: None,
        });
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| ChannelError::Unreachable {
        channel: channel.to_string(),
        attempts: 1,
        reason: describe(e),
    })? {
        if buf.len() as u64 + chunk.len() as u64 > max {
            return Err(ChannelError::MediaTooLarge {
                channel: channel.to_string(),
                filename: None,
                size: None,
                limit: Some(max),
                status: None,
            });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Removes the `> quoted` lines a Matrix reply carries before its text.
fn strip_reply_fallback(body: &str, is_reply: bool) -> String {
    if !is_reply || !body.starts_with("> ") {
        return body.to_string();
    }
    let mut lines = body.lines().peekable();
    while lines.peek().is_some_and(|l| l.starts_with('>')) {
        lines.next();
    }
    lines
        .collect::<Vec<_>>()
        .join("\n")
        .trim_start()
        .to_string()
}

/// `mxc://<server>/<media-id>` → (server, media id), both restricted to the characters the
/// spec allows, so they can never steer a request elsewhere.
pub fn parse_mxc(uri: &str) -> Option<(&str, &str)> {
    let rest = uri.strip_prefix("mxc://")?;
    let (server, id) = rest.split_once('/')?;
    let server_ok = !server.is_empty()
        && server.len() <= 255
        && server
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    let id_ok = !id.is_empty()
        && id.len() <= 255
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
    (server_ok && id_ok).then_some((server, id))
}

#[async_trait::async_trait]
impl InboundSource for MatrixSource {
    fn channel(&self) -> &str {
        "matrix"
    }

    async fn run(
        &self,
        sink: Arc<dyn InboundSink>,
        shutdown: CancellationToken,
    ) -> Result<(), ChannelError> {
        sink.state("matrix", ConnectionState::Connecting);
        let mut backoff = self.settings.backoff.clone();
        let mut since = self.cursor.load()?;
        let mut cutoff_ms = None;
        let mut connected = false;
        let mut last_error: Option<String> = None;
        loop {
            if shutdown.is_cancelled() {
                sink.state("matrix", ConnectionState::Stopped { error: None });
                return Ok(());
            }
            let initial = since.is_none();
            let res = tokio::select! {
                _ = shutdown.cancelled() => continue,
                r = self.sync(since.as_deref(), initial) => r,
            };
            let failure = match res {
                Ok(j) => {
                    if !connected {
                        sink.state("matrix", ConnectionState::Connected);
                        connected = true;
                    }
                    let next = j["next_batch"].as_str().map(str::to_string);
                    if initial {
                        // The first start: take the position, answer nothing said before it.
                        cutoff_ms = Some(now_ms());
                        if let Some(inv) = j.pointer("/rooms/invite").and_then(Value::as_object) {
                            self.handle_invites(inv).await;
                        }
                        Ok(())
                    } else {
                        self.process(&j, &sink, cutoff_ms).await.map_err(|e| {
                            Failure::Transient(
                                format!("the message handler refused a message: {e}"),
                                None,
                            )
                        })
                    }
                    .and_then(|()| match next {
                        Some(n) => self.cursor.save(&n).map(|()| n).map_err(Failure::Permanent),
                        None => Err(Failure::Transient(
                            "sync answered without next_batch".into(),
                            None,
                        )),
                    })
                    .map(|n| {
                        since = Some(n);
                    })
                    .err()
                }
                Err(f) => Some(f),
            };
            match failure {
                None => {
                    backoff.reset();
                    last_error = None;
                }
                Some(Failure::Permanent(e)) if e.is_permanent() => {
                    let msg = e.to_string();
                    sink.state("matrix", ConnectionState::Stopped { error: Some(msg) });
                    return Err(e);
                }
                Some(Failure::Permanent(e)) => {
                    let wait = backoff.next_delay();
                    let msg = e.to_string();
                    tracing::warn!(channel = "matrix", error = %msg, "sync failed; retrying");
                    connected = false;
                    sink.state(
                        "matrix",
                        ConnectionState::Reconnecting {
                            attempt: backoff.attempt(),
                            error: msg,
                        },
                    );
                    if sleep_or_cancel(wait, &shutdown).await {
                        continue;
                    }
                }
                Some(Failure::Transient(msg, server_wait)) => {
                    let wait = server_wait.unwrap_or_else(|| backoff.next_delay());
                    if server_wait.is_some() {
                        backoff.next_delay();
                    }
                    if last_error.as_deref() != Some(msg.as_str()) {
                        tracing::warn!(channel = "matrix", error = %msg, "sync failed; retrying");
                    }
                    last_error = Some(msg.clone());
                    connected = false;
                    sink.state(
                        "matrix",
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
        let (server, id) =
            parse_mxc(&attachment.fetch).ok_or_else(|| ChannelError::BadRequest {
                message: "the attachment is not a valid mxc:// URI".into(),
            })?;
        // Authenticated media (Matrix 1.11), then the legacy endpoint.
        let v1 = self.url(&["_matrix", "client", "v1", "media", "download", server, id]);
        if let Some(m) = self.download(v1, max_bytes).await? {
            return Ok(m);
        }
        let legacy = self.url(&["_matrix", "media", "v3", "download", server, id]);
        self.download(legacy, max_bytes)
            .await?
            .ok_or_else(|| ChannelError::Rejected {
                channel: "matrix".into(),
                status: 404,
                message: "the media is not on the homeserver (M_NOT_FOUND)".into(),
                platform_code: Some("M_NOT_FOUND".into()),
            })
    }

    async fn typing(&self, chat: &ChatRef, on: bool) -> Result<(), ChannelError> {
        let me = self.me().await.map_err(Failure::into_error)?;
        let body = if on {
            json!({"typing": true, "timeout": 30000})
        } else {
            json!({"typing": false})
        };
        self.request(
            self.http
                .put(self.client_url(&["rooms", &chat.id, "typing", &me.id]))
                .json(&body),
            Duration::from_secs(15),
        )
        .await
        .map(|_| ())
        .map_err(Failure::into_error)
    }

    fn typing_interval(&self) -> Duration {
        Duration::from_secs(20)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn mxc_is_strict() {
        assert_eq!(
            parse_mxc("mxc://localhost/AbC_1-2"),
            Some(("localhost", "AbC_1-2"))
        );
        assert_eq!(parse_mxc("mxc://h:8448/x"), Some(("h:8448", "x")));
        for bad in [
            "mxc://h/../../x",
            "mxc://h/a/b",
            "mxc://h/a?b",
            "mxc:///x",
            "https://h/x",
            "mxc://h%2f/x",
            "mxc://h/",
        ] {
            assert_eq!(parse_mxc(bad), None, "{bad}");
        }
    }

    #[test]
    fn reply_fallbacks_are_removed() {
        assert_eq!(
            strip_reply_fallback("> <@bot:hs> earlier\n> more\n\nthe answer", true),
            "the answer"
        );
        assert_eq!(
            strip_reply_fallback("> quoting is fine", false),
            "> quoting is fine"
        );
    }
}
