//! The read-mostly views: who is logged in (and the CSRF token), sessions and transcripts,
//! channels and pairing requests.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use carapace_agent::{Event, SessionStore};
use carapace_channels::inbound::ConnectionState;
use carapace_channels::inbound::CursorStore;
use carapace_channels::inbound::from_config::wants_source;
use carapace_inbound::{PairingStore, read_status};
use carapace_policy::session::SessionKey;
use carapace_policy::{CarapaceError, ErrorCode, ErrorEnvelope};
use serde::Deserialize;
use serde_json::{Value, json};

use super::chat::DEFAULT_WEB_SESSION;
use super::guard::refuse;
use super::login::Session;
use super::state::UiState;

/// Channels whose DMs can be paired (as `carapace pairing list` shows them).
const PAIRING_CHANNELS: &[&str] = &["matrix", "telegram", "discord", "slack"];
/// Most sessions listed.
const MAX_SESSIONS: usize = 500;

fn ok(v: Value) -> Response {
    Json(v).into_response()
}

/// `GET /ui/api/me`: the login's CSRF token and what the chat talks to.
pub async fn me(State(st): State<UiState>, Extension(login): Extension<Session>) -> Response {
    let model = st.chat().and_then(|c| c.model());
    ok(json!({
        "ok": true,
        "csrf": login.csrf,
        "chat": {
            "available": model.is_some(),
            "model": model,
            "setting": super::MODEL_SETTING,
        },
        "defaultSession": DEFAULT_WEB_SESSION,
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

/// Channel and peer of a session key (`agent:main:telegram:direct:42` → telegram, 42).
fn channel_and_peer(key: &str) -> (Option<String>, Option<String>) {
    let k = SessionKey::parse(key);
    let channel = k.channel_segment().map(str::to_string);
    let parts: Vec<&str> = k.rest.split(':').collect();
    let peer = (channel.is_some() && parts.len() >= 2)
        .then(|| parts.last().map(|p| p.to_string()))
        .flatten();
    (channel, peer)
}

fn last_model(events: &[Event]) -> Option<String> {
    events.iter().rev().find_map(|e| match e {
        Event::Assistant {
            provider, model, ..
        } => Some(format!("{provider}/{model}")),
        _ => None,
    })
}

/// `GET /ui/api/sessions`: every session, most recent first, with channel, peer, last
/// activity and the model of its last answer.
pub async fn sessions(State(st): State<UiState>) -> Response {
    let config = st.config();
    let store = SessionStore::new(&config.state_dir);
    let list = match store.list(None) {
        Ok(l) => l,
        Err(e) => return refuse(&e.to_envelope()),
    };
    let total = list.len();
    let out: Vec<Value> = list
        .into_iter()
        .take(MAX_SESSIONS)
        .map(|s| {
            let (channel, peer) = channel_and_peer(&s.session_key);
            let model = store
                .show(&s.session_key, Some(&s.agent_id))
                .ok()
                .and_then(|v| last_model(&v.events));
            json!({
                "sessionKey": s.session_key, "agentId": s.agent_id, "sessionId": s.session_id,
                "channel": channel, "peer": peer, "createdAt": s.created_at,
                "updatedAt": s.updated_at, "turns": s.turns, "model": model,
            })
        })
        .collect();
    ok(json!({"ok": true, "sessions": out, "total": total}))
}

/// A `?key=` query.
#[derive(Debug, Deserialize)]
pub struct KeyQuery {
    key: String,
}

/// `GET /ui/api/sessions/show?key=`: the session's transcript.
pub async fn session_show(State(st): State<UiState>, Query(q): Query<KeyQuery>) -> Response {
    let config = st.config();
    let store = SessionStore::new(&config.state_dir);
    match store.show(&q.key, None) {
        Ok(v) => ok(json!({"ok": true, "session": v})),
        Err(e) => {
            // A session just reset has an id but no transcript file until its next message.
            let fresh = store
                .list(None)
                .ok()
                .and_then(|l| l.into_iter().find(|s| s.session_key == q.key));
            match fresh {
                Some(summary) if e.code() == ErrorCode::NotFound => ok(json!({"ok": true,
                    "session": {"summary": summary, "events": [], "report": {}}})),
                _ => refuse(&e.to_envelope()),
            }
        }
    }
}

/// A `{key}` body.
#[derive(Debug, Deserialize)]
pub struct KeyBody {
    key: String,
}

/// `POST /ui/api/sessions/reset {key}`: stops the session's turns and starts a fresh one (the
/// old transcript stays on disk).
pub async fn session_reset(State(st): State<UiState>, Json(b): Json<KeyBody>) -> Response {
    let result = match st.chat() {
        Some(c) => c.reset(&b.key).await.map(Some),
        None => {
            let config = st.config();
            SessionStore::new(&config.state_dir)
                .reset(&b.key, None)
                .map_err(|e| e.to_envelope())
        }
    };
    match result {
        Ok(Some(id)) => ok(json!({"ok": true, "sessionKey": b.key, "sessionId": id})),
        Ok(None) => refuse(&ErrorEnvelope::new(
            ErrorCode::NotFound,
            format!("session {} has no transcript to reset", b.key),
        )),
        Err(e) => refuse(&e),
    }
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn state_word(s: &ConnectionState) -> String {
    match s {
        ConnectionState::Connecting => "connecting".into(),
        ConnectionState::Connected => "connected".into(),
        ConnectionState::Reconnecting { attempt, .. } => {
            format!("reconnecting (attempt {attempt})")
        }
        ConnectionState::Stopped { error: None } => "stopped".into(),
        ConnectionState::Stopped { error: Some(_) } => "stopped on an error".into(),
    }
}

/// `GET /ui/api/channels`: what `carapace channels status` and `pairing list` show.
pub async fn channels(State(st): State<UiState>) -> Response {
    let config = st.config();
    let pairing = PairingStore::new(&config.state_dir);
    let mut out = Vec::new();
    for id in config.channel_ids() {
        let receives = wants_source(&config, &id);
        let status = read_status(&config.state_dir, &id);
        let cursor = CursorStore::new(&config.state_dir, &id, None)
            .load()
            .ok()
            .flatten();
        let running = status.as_ref().is_some_and(|s| alive(s.pid));
        let connection = match (&status, running, receives) {
            (_, _, false) => "sends only".to_string(),
            (None, _, true) => "never started".to_string(),
            (Some(s), false, true) => format!(
                "not running (last: {}, {})",
                state_word(&s.connection),
                s.updated_at
            ),
            (Some(s), true, true) => state_word(&s.connection),
        };
        out.push(json!({
            "channel": id,
            "receives": receives,
            "running": running,
            "connection": connection,
            "cursor": cursor,
            "lastError": status.as_ref().and_then(|s| s.last_error.clone()),
            "lastErrorAt": status.as_ref().and_then(|s| s.last_error_at.clone()),
            "lastMessageAt": status.as_ref().and_then(|s| s.last_message_at.clone()),
            "counters": status.as_ref().map(|s| json!(s.counters)),
        }));
    }
    let mut names: Vec<String> = PAIRING_CHANNELS.iter().map(|c| c.to_string()).collect();
    for c in config.channel_ids() {
        if !names.contains(&c) && c != "inbox" {
            names.push(c);
        }
    }
    let mut requests = Vec::new();
    for c in names {
        if let Ok(list) = pairing.list(&c) {
            for r in list {
                requests.push(json!({"channel": c, "code": r.code, "id": r.id,
                    "createdAt": r.created_at, "lastSeenAt": r.last_seen_at, "meta": r.meta}));
            }
        }
    }
    ok(json!({"ok": true, "channels": out, "pairing": requests}))
}

/// A `{channel, code}` body.
#[derive(Debug, Deserialize)]
pub struct Decide {
    channel: String,
    code: String,
}

/// `POST /ui/api/pairing/approve {channel, code}`: the sender may DM the bot from now on.
pub async fn pairing_approve(State(st): State<UiState>, Json(d): Json<Decide>) -> Response {
    let config = st.config();
    match PairingStore::new(&config.state_dir).approve(&d.channel, &d.code) {
        Ok(r) => ok(json!({"ok": true, "channel": d.channel, "id": r.id, "code": r.code})),
        Err(e) => refuse(&e.to_envelope()),
    }
}

/// `POST /ui/api/pairing/reject {channel, code}`.
pub async fn pairing_reject(State(st): State<UiState>, Json(d): Json<Decide>) -> Response {
    let config = st.config();
    match PairingStore::new(&config.state_dir).reject(&d.channel, &d.code) {
        Ok(r) => ok(json!({"ok": true, "channel": d.channel, "id": r.id, "code": r.code})),
        Err(e) => refuse(&e.to_envelope()),
    }
}
