//! A loopback Discord stand-in: the Gateway (v10, JSON) as Discord documents it, plus the
//! REST calls the source and the adapter make (`GET /gateway/bot`, typing, messages) and a
//! CDN for attachments.
//!
//! It follows the documented opcode flow — HELLO first, IDENTIFY or RESUME (heartbeats may
//! come before), READY with `session_id` and `resume_gateway_url`, heartbeats ACKed, RESUME
//! replaying every dispatch after the given `seq` and then RESUMED, op 7, op 9, close codes —
//! and records every deviation of the client as a violation (a second IDENTIFY, RESUME on the
//! wrong URL or of an invalidated session or one the client closed with 1000/1001, a seq it
//! never sent, a heartbeat going backwards, a payload before identifying, the token sent to
//! the CDN, …). Tests end with `assert_clean`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Multipart, Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

pub const TOKEN: &str = "discord-gateway-token-SECRET-9f3c";
pub const BOT_ID: &str = "900000000000000001";

/// Intent bits the stand-in knows.
pub const GUILDS: u64 = 1;
pub const GUILD_MEMBERS: u64 = 1 << 1;
pub const GUILD_PRESENCES: u64 = 1 << 8;
pub const GUILD_MESSAGES: u64 = 1 << 9;
pub const DIRECT_MESSAGES: u64 = 1 << 12;
pub const MESSAGE_CONTENT: u64 = 1 << 15;
const PRIVILEGED: u64 = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT;

/// What a test can make the live connection do.
#[derive(Debug, Clone)]
pub enum Cmd {
    /// Send a dispatch with the next sequence number.
    Dispatch(String, Value),
    /// op 7.
    Reconnect,
    /// op 9 with `d`.
    InvalidSession(bool),
    /// Close with this code.
    Close(u16),
    /// Drop the TCP connection without a close frame.
    Drop,
    /// op 1 from the server.
    RequestHeartbeat,
}

#[derive(Debug, Default, Clone)]
pub struct SessionLog {
    pub events: Vec<(u64, String, Value)>,
    pub seq: u64,
    pub invalid: bool,
}

#[derive(Debug, Default, Clone)]
pub struct ConnInfo {
    pub path: String,
    /// `IDENTIFY` / `RESUME` payloads.
    pub identify: Option<Value>,
    pub resume: Option<Value>,
    pub heartbeats: Vec<Option<u64>>,
    pub client_close: Option<u16>,
    pub session: Option<String>,
    pub ended: bool,
}

/// One `POST /channels/{id}/messages`.
#[derive(Debug, Clone)]
pub struct Posted {
    pub channel: String,
    pub payload: Value,
    pub files: Vec<(String, Vec<u8>)>,
}

#[derive(Debug)]
pub struct State {
    pub addr: String,
    pub heartbeat_interval_ms: u64,
    pub ack_heartbeats: bool,
    /// While set, new connections wait before HELLO (to queue dispatches "while offline").
    pub paused: bool,
    /// The token was reset: IDENTIFY / RESUME are closed with 4004.
    pub gateway_token_revoked: bool,
    /// `GET /gateway/bot` answers 401.
    pub rest_token_revoked: bool,
    /// Privileged intents switched on in the "developer portal".
    pub enabled_intents: u64,
    pub session_start_remaining: u64,
    /// Dispatches sent right after READY (e.g. `GUILD_CREATE`).
    pub after_ready: Vec<(String, Value)>,
    pub sessions: HashMap<String, SessionLog>,
    pub connections: Vec<ConnInfo>,
    pub violations: Vec<String>,
    pub gateway_bot_calls: usize,
    pub identifies: usize,
    pub resumes: usize,
    pub typing: Vec<String>,
    pub posted: Vec<Posted>,
    /// CDN path → (content type, bytes).
    pub files: HashMap<String, (String, Vec<u8>)>,
    pub cdn_requests: Vec<HeaderMap>,
    /// The connection that identified or resumed last and is still open.
    live: Option<(usize, mpsc::UnboundedSender<Cmd>)>,
    next_session: usize,
    next_message: u64,
}

#[derive(Clone)]
pub struct Shared {
    pub state: Arc<Mutex<State>>,
    pub changed: Arc<Notify>,
}

impl Shared {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = f(&mut self.state.lock().unwrap());
        self.changed.notify_waiters();
        r
    }
    fn violation(&self, v: impl Into<String>) {
        let v = v.into();
        eprintln!("discord stand-in: VIOLATION: {v}");
        self.with(|s| s.violations.push(v));
    }
}

pub struct Standin {
    pub base: String,
    pub shared: Shared,
}

impl Standin {
    pub async fn start() -> Standin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let shared = Shared {
            state: Arc::new(Mutex::new(State {
                addr: addr.clone(),
                heartbeat_interval_ms: 45_000,
                ack_heartbeats: true,
                paused: false,
                gateway_token_revoked: false,
                rest_token_revoked: false,
                enabled_intents: MESSAGE_CONTENT,
                session_start_remaining: 1000,
                after_ready: Vec::new(),
                sessions: HashMap::new(),
                connections: Vec::new(),
                violations: Vec::new(),
                gateway_bot_calls: 0,
                identifies: 0,
                resumes: 0,
                typing: Vec::new(),
                posted: Vec::new(),
                files: HashMap::new(),
                cdn_requests: Vec::new(),
                live: None,
                next_session: 0,
                next_message: 0,
            })),
            changed: Arc::new(Notify::new()),
        };
        let app = Router::new()
            .route("/gateway/bot", get(gateway_bot))
            .route("/gateway", get(|ws, q, st| upgrade(ws, q, st, "/gateway")))
            .route("/resume", get(|ws, q, st| upgrade(ws, q, st, "/resume")))
            .route("/channels/{id}/typing", post(typing))
            .route("/channels/{id}/messages", post(post_message))
            .route("/users/@me/channels", post(dm_channel))
            .route("/attachments/{*path}", get(cdn))
            .with_state(shared.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Standin {
            base: format!("http://{addr}"),
            shared,
        }
    }

    pub fn set(&self, f: impl FnOnce(&mut State)) {
        self.shared.with(f);
    }

    pub fn get<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.shared.state.lock().unwrap())
    }

    /// Waits until `cond` holds.
    pub async fn wait(&self, what: &str, cond: impl Fn(&State) -> bool) {
        let deadline = tokio::time::Instant::now() + super::recording_sink::PATIENCE;
        loop {
            let n = self.shared.changed.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if self.get(&cond) {
                return;
            }
            tokio::select! {
                _ = &mut n => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = tokio::time::sleep_until(deadline) => {
                    panic!("timed out waiting for {what}; stand-in state: {:#?}", self.get(|s| (s.connections.clone(), s.violations.clone())));
                }
            }
        }
    }

    /// Waits for a live (identified or resumed) connection and returns its index.
    pub async fn wait_live(&self) -> usize {
        self.wait("a live gateway connection", |s| s.live.is_some())
            .await;
        self.get(|s| s.live.as_ref().unwrap().0)
    }

    /// Waits for a live connection other than `old`.
    pub async fn wait_live_after(&self, old: usize) -> usize {
        self.wait("a new live gateway connection", |s| {
            s.live.as_ref().is_some_and(|l| l.0 > old)
        })
        .await;
        self.get(|s| s.live.as_ref().unwrap().0)
    }

    /// Sends `cmd` on the live connection; returns that connection's index.
    pub fn cmd(&self, cmd: Cmd) -> usize {
        let live = self.get(|s| s.live.as_ref().map(|l| (l.0, l.1.clone())));
        let (idx, tx) = live.expect("no live gateway connection");
        tx.send(cmd).unwrap();
        idx
    }

    /// A `MESSAGE_CREATE` on the live connection.
    pub fn message(&self, d: Value) {
        self.cmd(Cmd::Dispatch("MESSAGE_CREATE".into(), d));
    }

    /// Adds a dispatch to the session while no connection is live: it is replayed on RESUME.
    pub fn dispatch_offline(&self, t: &str, d: Value) {
        self.set(|s| {
            assert!(s.live.is_none(), "a connection is live");
            let sess = s
                .connections
                .iter()
                .rev()
                .find_map(|c| c.session.clone())
                .expect("no session");
            let log = s.sessions.get_mut(&sess).unwrap();
            log.seq += 1;
            let seq = log.seq;
            log.events.push((seq, t.to_string(), d));
        });
    }

    /// A fresh message id (a snowflake of "now").
    pub fn message_id(&self) -> String {
        let n = self.get(|s| s.next_message);
        self.set(|s| s.next_message += 1);
        let ms_since_discord_epoch: u64 = 300_000_000_000;
        ((ms_since_discord_epoch << 22) + n).to_string()
    }

    pub fn assert_clean(&self) {
        let v = self.get(|s| s.violations.clone());
        assert!(
            v.is_empty(),
            "the client deviated from the Gateway protocol: {v:#?}"
        );
    }
}

fn authorized(h: &HeaderMap) -> bool {
    h.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) == Some(&format!("Bot {TOKEN}"))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        axum::Json(json!({"message": "401: Unauthorized", "code": 0})),
    )
        .into_response()
}

async fn gateway_bot(AxState(st): AxState<Shared>, h: HeaderMap) -> Response {
    let (revoked, addr, remaining) = st.with(|s| {
        s.gateway_bot_calls += 1;
        (
            s.rest_token_revoked,
            s.addr.clone(),
            s.session_start_remaining,
        )
    });
    if !authorized(&h) || revoked {
        return unauthorized();
    }
    if !h
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|u| u.starts_with("DiscordBot ("))
    {
        st.violation("GET /gateway/bot without a DiscordBot user agent");
    }
    axum::Json(json!({
        "url": format!("ws://{addr}/gateway"),
        "shards": 1,
        "session_start_limit": {"total": 1000, "remaining": remaining, "reset_after": 50, "max_concurrency": 1},
    }))
    .into_response()
}

async fn typing(AxState(st): AxState<Shared>, Path(id): Path<String>, h: HeaderMap) -> Response {
    if !authorized(&h) {
        return unauthorized();
    }
    st.with(|s| s.typing.push(id));
    StatusCode::NO_CONTENT.into_response()
}

async fn dm_channel(AxState(st): AxState<Shared>, h: HeaderMap, body: Bytes) -> Response {
    if !authorized(&h) {
        return unauthorized();
    }
    let j: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(user) = j["recipient_id"].as_str() else {
        st.violation("POST /users/@me/channels without recipient_id");
        return StatusCode::BAD_REQUEST.into_response();
    };
    axum::Json(json!({"id": format!("dm-{user}"), "type": 1})).into_response()
}

/// A message: JSON (`{content}`, text only) or multipart (`payload_json` + `files[n]`), as
/// Discord takes both.
async fn post_message(
    AxState(st): AxState<Shared>,
    Path(id): Path<String>,
    req: axum::extract::Request,
) -> Response {
    use axum::extract::FromRequest;
    let h = req.headers().clone();
    if !authorized(&h) {
        return unauthorized();
    }
    let ct = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut payload = Value::Null;
    let mut files = Vec::new();
    if ct.starts_with("application/json") {
        let body = axum::body::to_bytes(req.into_body(), 1 << 20)
            .await
            .unwrap();
        payload = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if payload["content"].as_str().is_none_or(|c| c.is_empty()) {
            st.violation("a JSON message without content");
            return StatusCode::BAD_REQUEST.into_response();
        }
        let n = st.with(|s| {
            s.posted.push(Posted {
                channel: id,
                payload,
                files: Vec::new(),
            });
            s.posted.len()
        });
        return axum::Json(json!({"id": format!("msg-{n}"), "attachments": []})).into_response();
    }
    let Ok(mut mp) = Multipart::from_request(req, &()).await else {
        st.violation(format!(
            "a message that is neither JSON nor multipart ({ct})"
        ));
        return StatusCode::BAD_REQUEST.into_response();
    };
    while let Some(f) = mp.next_field().await.unwrap() {
        let name = f.name().unwrap_or("").to_string();
        let filename = f.file_name().unwrap_or("").to_string();
        let bytes = f.bytes().await.unwrap().to_vec();
        if name == "payload_json" {
            payload = serde_json::from_slice(&bytes).unwrap();
        } else if name.starts_with("files[") {
            files.push((filename, bytes));
        }
    }
    let n = st.with(|s| {
        s.posted.push(Posted {
            channel: id,
            payload,
            files: files.clone(),
        });
        s.posted.len()
    });
    let atts: Vec<Value> = (0..files.len())
        .map(|i| json!({"id": format!("att-{n}-{i}")}))
        .collect();
    axum::Json(json!({"id": format!("msg-{n}"), "attachments": atts})).into_response()
}

async fn cdn(AxState(st): AxState<Shared>, Path(path): Path<String>, h: HeaderMap) -> Response {
    if h.contains_key(header::AUTHORIZATION) {
        st.violation(
            "the CDN got an Authorization header (the bot token must not leave for the CDN)",
        );
    }
    let file = st.with(|s| {
        s.cdn_requests.push(h.clone());
        s.files.get(&format!("/attachments/{path}")).cloned()
    });
    match file {
        Some((ct, bytes)) => ([(header::CONTENT_TYPE, ct)], bytes).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn upgrade(
    ws: WebSocketUpgrade,
    Query(q): Query<HashMap<String, String>>,
    AxState(st): AxState<Shared>,
    path: &'static str,
) -> Response {
    ws.on_upgrade(move |socket| async move { connection(socket, q, st, path).await })
}

async fn send(socket: &mut WebSocket, v: Value) -> bool {
    socket
        .send(Message::Text(v.to_string().into()))
        .await
        .is_ok()
}

async fn close(socket: &mut WebSocket, code: u16) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: "".into(),
        })))
        .await;
}

/// One gateway connection, as Discord runs it.
async fn connection(
    mut socket: WebSocket,
    q: HashMap<String, String>,
    st: Shared,
    path: &'static str,
) {
    let idx = st.with(|s| {
        s.connections.push(ConnInfo {
            path: path.to_string(),
            ..Default::default()
        });
        s.connections.len() - 1
    });
    if q.get("v").map(String::as_str) != Some("10")
        || q.get("encoding").map(String::as_str) != Some("json")
    {
        st.violation(format!("connected without ?v=10&encoding=json: {q:?}"));
        close(&mut socket, 4012).await;
        st.with(|s| s.connections[idx].ended = true);
        return;
    }
    loop {
        let n = st.changed.notified();
        tokio::pin!(n);
        n.as_mut().enable();
        if !st.state.lock().unwrap().paused {
            break;
        }
        n.await;
    }
    let interval = st.with(|s| s.heartbeat_interval_ms);
    send(
        &mut socket,
        json!({"op": 10, "d": {"heartbeat_interval": interval}, "s": null, "t": null}),
    )
    .await;
    let (tx, mut rx) = mpsc::unbounded_channel::<Cmd>();
    let mut session: Option<String> = None;
    let mut last_hb: Option<Option<u64>> = None;

    'conn: loop {
        tokio::select! {
            frame = socket.recv() => {
                let text = match frame {
                    None | Some(Err(_)) => break 'conn,
                    Some(Ok(Message::Close(f))) => {
                        st.with(|s| s.connections[idx].client_close = f.map(|f| f.code));
                        break 'conn;
                    }
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Binary(_))) => {
                        st.violation("the client sent a binary frame");
                        close(&mut socket, 4002).await;
                        break 'conn;
                    }
                    Some(Ok(_)) => continue,
                };
                let Ok(p) = serde_json::from_str::<Value>(&text) else {
                    st.violation(format!("the client sent something that is not JSON: {text}"));
                    close(&mut socket, 4002).await;
                    break 'conn;
                };
                let op = p["op"].as_u64().unwrap_or(99);
                match op {
                    1 => {
                        let d = &p["d"];
                        let d = if d.is_null() { None } else if let Some(n) = d.as_u64() { Some(n) } else {
                            st.violation(format!("heartbeat d is neither null nor a sequence number: {d}"));
                            None
                        };
                        let max = session.as_ref().and_then(|id| st.with(|s| s.sessions.get(id).map(|l| l.seq)));
                        if let Some(n) = d
                            && max.is_none_or(|m| n > m)
                        {
                            st.violation(format!("heartbeat with seq {n}, but the last one sent is {max:?}"));
                        }
                        if let Some(prev) = last_hb
                            && d < prev
                        {
                            st.violation(format!("heartbeat seq went backwards: {prev:?} then {d:?}"));
                        }
                        last_hb = Some(d);
                        let ack = st.with(|s| { s.connections[idx].heartbeats.push(d); s.ack_heartbeats });
                        if ack {
                            send(&mut socket, json!({"op": 11, "d": null, "s": null, "t": null})).await;
                        }
                    }
                    2 => {
                        if session.is_some() {
                            st.violation("a second IDENTIFY on one connection");
                            close(&mut socket, 4005).await;
                            break 'conn;
                        }
                        if path != "/gateway" {
                            st.violation("IDENTIFY on the resume URL");
                        }
                        let d = &p["d"];
                        st.with(|s| s.connections[idx].identify = Some(d.clone()));
                        let (revoked, enabled, remaining) = st.with(|s| (s.gateway_token_revoked, s.enabled_intents, s.session_start_remaining));
                        if d["token"].as_str() != Some(TOKEN) || revoked {
                            close(&mut socket, 4004).await;
                            break 'conn;
                        }
                        let props = &d["properties"];
                        if !["os", "browser", "device"].iter().all(|k| props[k].is_string()) {
                            st.violation(format!("IDENTIFY properties must have os, browser, device: {props}"));
                            close(&mut socket, 4002).await;
                            break 'conn;
                        }
                        let Some(intents) = d["intents"].as_u64() else {
                            st.violation("IDENTIFY without integer intents");
                            close(&mut socket, 4013).await;
                            break 'conn;
                        };
                        let needed = GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT;
                        if intents & needed != needed {
                            st.violation(format!("intents {intents} lack GUILD_MESSAGES / DIRECT_MESSAGES / MESSAGE_CONTENT"));
                        }
                        if intents & PRIVILEGED & !enabled != 0 {
                            close(&mut socket, 4014).await;
                            break 'conn;
                        }
                        if remaining == 0 {
                            st.violation("IDENTIFY with no session starts left");
                        }
                        let (id, addr, extra) = st.with(|s| {
                            s.next_session += 1;
                            s.session_start_remaining = s.session_start_remaining.saturating_sub(1);
                            s.identifies += 1;
                            let id = format!("session-{}", s.next_session);
                            s.sessions.insert(id.clone(), SessionLog::default());
                            s.connections[idx].session = Some(id.clone());
                            (id, s.addr.clone(), s.after_ready.clone())
                        });
                        session = Some(id.clone());
                        let ready = json!({
                            "v": 10,
                            "user": {"id": BOT_ID, "username": "carapace-test", "bot": true},
                            "guilds": [],
                            "session_id": id,
                            "resume_gateway_url": format!("ws://{addr}/resume"),
                            "application": {"id": "1"},
                        });
                        if !dispatch(&st, &mut socket, &id, "READY", ready).await { break 'conn; }
                        for (t, d) in extra {
                            if !dispatch(&st, &mut socket, &id, &t, d).await { break 'conn; }
                        }
                        st.with(|s| s.live = Some((idx, tx.clone())));
                    }
                    6 => {
                        if session.is_some() {
                            st.violation("RESUME after IDENTIFY / RESUME on one connection");
                            close(&mut socket, 4005).await;
                            break 'conn;
                        }
                        if path != "/resume" {
                            st.violation("RESUME not on resume_gateway_url");
                        }
                        let d = p["d"].clone();
                        st.with(|s| s.connections[idx].resume = Some(d.clone()));
                        if d["token"].as_str() != Some(TOKEN) || st.with(|s| s.gateway_token_revoked) {
                            close(&mut socket, 4004).await;
                            break 'conn;
                        }
                        let id = d["session_id"].as_str().unwrap_or_default().to_string();
                        let Some(seq) = d["seq"].as_u64() else {
                            st.violation(format!("RESUME without an integer seq: {d}"));
                            close(&mut socket, 4002).await;
                            break 'conn;
                        };
                        let log = st.with(|s| s.sessions.get(&id).cloned());
                        let Some(log) = log else {
                            st.violation(format!("RESUME of an unknown session {id}"));
                            send(&mut socket, json!({"op": 9, "d": false, "s": null, "t": null})).await;
                            continue;
                        };
                        if log.invalid {
                            st.violation("RESUME of a session invalidated with op 9 d=false");
                            send(&mut socket, json!({"op": 9, "d": false, "s": null, "t": null})).await;
                            continue;
                        }
                        let closed_normally = st.with(|s| s.connections.iter().any(|c| c.session.as_deref() == Some(id.as_str()) && matches!(c.client_close, Some(1000 | 1001))));
                        if closed_normally {
                            st.violation("RESUME of a session the client closed with 1000/1001 (which invalidates it)");
                        }
                        if seq > log.seq {
                            st.violation(format!("RESUME with seq {seq}, but only {} were sent", log.seq));
                            close(&mut socket, 4007).await;
                            break 'conn;
                        }
                        session = Some(id.clone());
                        last_hb = None;
                        st.with(|s| { s.resumes += 1; s.connections[idx].session = Some(id.clone()); });
                        for (s, t, d) in log.events.iter().filter(|e| e.0 > seq && e.1 != "RESUMED") {
                            if !send(&mut socket, json!({"op": 0, "s": s, "t": t, "d": d})).await { break 'conn; }
                        }
                        if !dispatch(&st, &mut socket, &id, "RESUMED", json!({})).await { break 'conn; }
                        st.with(|s| s.live = Some((idx, tx.clone())));
                    }
                    other => {
                        if session.is_none() {
                            st.violation(format!("op {other} before IDENTIFY / RESUME"));
                            close(&mut socket, 4003).await;
                            break 'conn;
                        }
                        st.violation(format!("unexpected op {other} from the client: {p}"));
                    }
                }
            }
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { continue };
                let id = session.clone().unwrap_or_default();
                match cmd {
                    Cmd::Dispatch(t, d) => {
                        if !dispatch(&st, &mut socket, &id, &t, d).await { break 'conn; }
                    }
                    Cmd::Reconnect => { send(&mut socket, json!({"op": 7, "d": null, "s": null, "t": null})).await; }
                    Cmd::InvalidSession(resumable) => {
                        if !resumable {
                            st.with(|s| s.sessions.get_mut(&id).unwrap().invalid = true);
                        }
                        send(&mut socket, json!({"op": 9, "d": resumable, "s": null, "t": null})).await;
                    }
                    Cmd::Close(code) => {
                        close(&mut socket, code).await;
                        break 'conn;
                    }
                    Cmd::Drop => break 'conn,
                    Cmd::RequestHeartbeat => { send(&mut socket, json!({"op": 1, "d": null, "s": null, "t": null})).await; }
                }
            }
        }
    }
    st.with(|s| {
        s.connections[idx].ended = true;
        if s.live.as_ref().is_some_and(|l| l.0 == idx) {
            s.live = None;
        }
    });
    drop(socket);
}

/// Sends a dispatch with the session's next sequence number and logs it for replay.
async fn dispatch(st: &Shared, socket: &mut WebSocket, session: &str, t: &str, d: Value) -> bool {
    let seq = st.with(|s| {
        let log = s.sessions.get_mut(session).unwrap();
        log.seq += 1;
        log.events.push((log.seq, t.to_string(), d.clone()));
        log.seq
    });
    send(socket, json!({"op": 0, "s": seq, "t": t, "d": d})).await
}
