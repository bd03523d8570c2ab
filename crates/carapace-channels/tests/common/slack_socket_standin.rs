//! A loopback Slack stand-in: Socket Mode as Slack documents it, plus the Web API calls the
//! source and the adapter make (`auth.test`, `apps.connections.open`, the file upload flow)
//! and `url_private_download` files.
//!
//! Socket Mode rules it enforces: `apps.connections.open` takes the app-level token in the
//! `Authorization` header (a bot token is `not_allowed_token_type`) and gives a one-time
//! URL (a reused or unknown ticket is refused); each connection starts with `hello`; every
//! envelope must be acknowledged with its `envelope_id` within 3 seconds — one that is not is
//! sent again (`retry_attempt` + 1, `retry_reason: "timeout"`, like Slack) and recorded as a
//! timeout; an unknown or repeated acknowledgement, anything else the client sends, and a
//! reconnect after `link_disabled` are violations. Files without the bot token are answered
//! with a sign-in page, as Slack does. Tests end with `assert_clean`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State as AxState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};

pub const APP_TOKEN: &str = "xapp-1-A1-STANDIN-SECRET-app";
pub const BOT_TOKEN: &str = "xoxb-STANDIN-SECRET-bot";
pub const BOT_USER: &str = "UBOT";
pub const BOT_ID: &str = "BBOT";
/// Slack's documented acknowledgement deadline.
pub const ACK_DEADLINE: Duration = Duration::from_secs(3);
/// Times Slack sends an unacknowledged envelope again.
pub const MAX_RETRIES: u64 = 3;

#[derive(Debug, Clone)]
pub enum Cmd {
    /// An `events_api` envelope with this Events API payload.
    Event(Value),
    /// An envelope of another type (`slash_commands`, `interactive`).
    Envelope(String, Value),
    /// A `disconnect` frame with this reason (`link_disabled` also closes the socket).
    Disconnect(String),
    /// Drop the TCP connection without a close frame.
    Drop,
    /// Stop reading and writing (a half-open connection: not even pongs).
    Freeze,
}

#[derive(Debug, Default, Clone)]
pub struct Conn {
    pub ticket: String,
    pub acks: Vec<String>,
    pub client_close: Option<u16>,
    pub ended: bool,
}

#[derive(Debug, Clone)]
pub struct Pending {
    pub kind: String,
    pub payload: Value,
    pub sent: Instant,
    pub conn: usize,
    pub retry_attempt: u64,
}

/// One `files.completeUploadExternal`.
#[derive(Debug, Clone)]
pub struct Shared {
    pub channel: String,
    pub comment: Option<String>,
    pub thread_ts: Option<String>,
    pub files: Vec<(String, Vec<u8>)>,
}

#[derive(Debug)]
pub struct State {
    pub addr: String,
    /// `apps.connections.open` answers `ok: false` with this error.
    pub app_token_error: Option<String>,
    /// `auth.test` answers `ok: false` with this error.
    pub bot_token_error: Option<String>,
    /// The next `apps.connections.open` calls answered 429.
    pub rate_limit_opens: usize,
    /// Files are answered with the sign-in page even with the token (no `files:read`).
    pub files_without_scope: bool,
    pub tickets: HashMap<String, bool>,
    pub opens: usize,
    pub auth_tests: usize,
    pub connections: Vec<Conn>,
    /// envelope_id → what was sent and not yet acknowledged.
    pub pending: HashMap<String, Pending>,
    /// Every envelope sent: (envelope_id, type, retry_attempt).
    pub sent: Vec<(String, String, u64)>,
    /// Envelopes not acknowledged within the deadline.
    pub ack_timeouts: Vec<String>,
    pub violations: Vec<String>,
    pub link_disabled: bool,
    pub files: HashMap<String, (String, Vec<u8>)>,
    pub file_requests: Vec<HeaderMap>,
    pub posted: Vec<Value>,
    pub uploads: HashMap<String, Vec<u8>>,
    pub shared: Vec<Shared>,
    live: Option<(usize, mpsc::UnboundedSender<Cmd>)>,
    next: u64,
}

#[derive(Clone)]
pub struct Sh {
    pub state: Arc<Mutex<State>>,
    pub changed: Arc<Notify>,
}

impl Sh {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = f(&mut self.state.lock().unwrap());
        self.changed.notify_waiters();
        r
    }
    fn violation(&self, v: impl Into<String>) {
        let v = v.into();
        eprintln!("slack stand-in: VIOLATION: {v}");
        self.with(|s| s.violations.push(v));
    }
}

pub struct Standin {
    /// The Web API base (`apiBaseUrl`).
    pub api: String,
    pub base: String,
    pub sh: Sh,
}

impl Standin {
    pub async fn start() -> Standin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let sh = Sh {
            state: Arc::new(Mutex::new(State {
                addr: addr.clone(),
                app_token_error: None,
                bot_token_error: None,
                rate_limit_opens: 0,
                files_without_scope: false,
                tickets: HashMap::new(),
                opens: 0,
                auth_tests: 0,
                connections: Vec::new(),
                pending: HashMap::new(),
                sent: Vec::new(),
                ack_timeouts: Vec::new(),
                violations: Vec::new(),
                link_disabled: false,
                files: HashMap::new(),
                file_requests: Vec::new(),
                posted: Vec::new(),
                uploads: HashMap::new(),
                shared: Vec::new(),
                live: None,
                next: 0,
            })),
            changed: Arc::new(Notify::new()),
        };
        let app = Router::new()
            .route("/api/apps.connections.open", post(open))
            .route("/api/auth.test", post(auth_test))
            .route("/api/chat.postMessage", post(post_message))
            .route("/api/files.getUploadURLExternal", post(upload_url))
            .route("/api/files.completeUploadExternal", post(complete_upload))
            .route("/upload/{id}", post(upload))
            .route("/link/", get(link))
            .route("/files-pri/{*path}", get(file))
            .with_state(sh.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let checker = sh.clone();
        tokio::spawn(async move { ack_deadlines(checker).await });
        Standin {
            api: format!("http://{addr}/api"),
            base: format!("http://{addr}"),
            sh,
        }
    }

    pub fn set(&self, f: impl FnOnce(&mut State)) {
        self.sh.with(f);
    }

    pub fn get<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        f(&self.sh.state.lock().unwrap())
    }

    pub async fn wait(&self, what: &str, cond: impl Fn(&State) -> bool) {
        let deadline = tokio::time::Instant::now() + super::recording_sink::PATIENCE;
        loop {
            let n = self.sh.changed.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if self.get(&cond) {
                return;
            }
            tokio::select! {
                _ = &mut n => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = tokio::time::sleep_until(deadline) => {
                    panic!("timed out waiting for {what}; stand-in: {:#?}", self.get(|s| (s.connections.clone(), s.violations.clone(), s.opens)));
                }
            }
        }
    }

    pub async fn wait_live(&self) -> usize {
        self.wait("a live Socket Mode connection", |s| s.live.is_some())
            .await;
        self.get(|s| s.live.as_ref().unwrap().0)
    }

    pub async fn wait_live_after(&self, old: usize) -> usize {
        self.wait("a new live Socket Mode connection", |s| {
            s.live.as_ref().is_some_and(|l| l.0 > old)
        })
        .await;
        self.get(|s| s.live.as_ref().unwrap().0)
    }

    /// Sends `cmd` on the live connection; returns that connection's index.
    pub fn cmd(&self, cmd: Cmd) -> usize {
        let live = self.get(|s| s.live.as_ref().map(|l| (l.0, l.1.clone())));
        let (idx, tx) = live.expect("no live Socket Mode connection");
        tx.send(cmd).unwrap();
        idx
    }

    /// An Events API payload around `event`.
    pub fn payload(&self, event: Value) -> Value {
        let n = self.get(|s| s.next);
        self.set(|s| s.next += 1);
        json!({
            "token": "verification-token-unused",
            "team_id": "T1",
            "api_app_id": "A1",
            "event": event,
            "type": "event_callback",
            "event_id": format!("Ev{n:06}"),
            "event_time": 1_712_345_678,
            "authorizations": [{"team_id": "T1", "user_id": BOT_USER, "is_bot": true}],
        })
    }

    /// A plain message event.
    pub fn message(&self, channel: &str, kind: &str, text: &str, ts: &str) -> Value {
        self.payload(json!({
            "type": "message", "channel": channel, "channel_type": kind, "user": "U42",
            "text": text, "ts": ts, "event_ts": ts,
        }))
    }

    pub fn assert_clean(&self) {
        let (v, t) = self.get(|s| (s.violations.clone(), s.ack_timeouts.clone()));
        assert!(v.is_empty(), "the client deviated from Socket Mode: {v:#?}");
        assert!(t.is_empty(), "envelopes not acknowledged within 3 s: {t:?}");
    }

    pub fn assert_no_violations(&self) {
        let v = self.get(|s| s.violations.clone());
        assert!(v.is_empty(), "the client deviated from Socket Mode: {v:#?}");
    }
}

fn bearer(h: &HeaderMap) -> Option<String> {
    h.get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string)
}

fn slack_error(e: &str) -> Response {
    axum::Json(json!({"ok": false, "error": e})).into_response()
}

async fn open(AxState(sh): AxState<Sh>, h: HeaderMap, body: Bytes) -> Response {
    if String::from_utf8_lossy(&body).contains("token=") {
        sh.violation("apps.connections.open got the token as a POST parameter");
    }
    let (err, limited, link_disabled) = sh.with(|s| {
        s.opens += 1;
        let limited = s.rate_limit_opens > 0;
        s.rate_limit_opens = s.rate_limit_opens.saturating_sub(1);
        (s.app_token_error.clone(), limited, s.link_disabled)
    });
    if link_disabled {
        sh.violation("apps.connections.open again after link_disabled");
    }
    if limited {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            axum::Json(json!({"ok": false, "error": "ratelimited"})),
        )
            .into_response();
    }
    match bearer(&h).as_deref() {
        Some(APP_TOKEN) => {}
        Some(BOT_TOKEN) => return slack_error("not_allowed_token_type"),
        Some(_) => return slack_error("invalid_auth"),
        None => return slack_error("not_authed"),
    }
    if let Some(e) = err {
        return slack_error(&e);
    }
    let (ticket, addr) = sh.with(|s| {
        s.next += 1;
        let t = format!("ticket-{}", s.next);
        s.tickets.insert(t.clone(), false);
        (t, s.addr.clone())
    });
    axum::Json(json!({"ok": true, "url": format!("ws://{addr}/link/?ticket={ticket}&app_id=A1")}))
        .into_response()
}

async fn auth_test(AxState(sh): AxState<Sh>, h: HeaderMap) -> Response {
    let err = sh.with(|s| {
        s.auth_tests += 1;
        s.bot_token_error.clone()
    });
    if bearer(&h).as_deref() != Some(BOT_TOKEN) {
        return slack_error("invalid_auth");
    }
    if let Some(e) = err {
        return slack_error(&e);
    }
    axum::Json(
        json!({"ok": true, "url": "https://standin.slack.com/", "team": "Stand-in",
        "user": "carapace", "team_id": "T1", "user_id": BOT_USER, "bot_id": BOT_ID}),
    )
    .into_response()
}

async fn post_message(AxState(sh): AxState<Sh>, h: HeaderMap, body: Bytes) -> Response {
    if bearer(&h).as_deref() != Some(BOT_TOKEN) {
        return slack_error("invalid_auth");
    }
    let j: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let n = sh.with(|s| {
        s.posted.push(j);
        s.posted.len()
    });
    axum::Json(json!({"ok": true, "ts": format!("1800000000.{n:06}")})).into_response()
}

async fn upload_url(AxState(sh): AxState<Sh>, h: HeaderMap, body: Bytes) -> Response {
    if bearer(&h).as_deref() != Some(BOT_TOKEN) {
        return slack_error("invalid_auth");
    }
    let form = String::from_utf8_lossy(&body).to_string();
    if !form.contains("filename=") || !form.contains("length=") {
        return slack_error("invalid_arguments");
    }
    let (id, addr) = sh.with(|s| {
        s.next += 1;
        (format!("F{}", s.next), s.addr.clone())
    });
    axum::Json(
        json!({"ok": true, "upload_url": format!("http://{addr}/upload/{id}"), "file_id": id}),
    )
    .into_response()
}

async fn upload(
    AxState(sh): AxState<Sh>,
    Path(id): Path<String>,
    h: HeaderMap,
    body: Bytes,
) -> Response {
    if h.contains_key(header::AUTHORIZATION) {
        sh.violation("the bot token was sent to the upload URL");
    }
    sh.with(|s| s.uploads.insert(id, body.to_vec()));
    (StatusCode::OK, "OK").into_response()
}

async fn complete_upload(AxState(sh): AxState<Sh>, h: HeaderMap, body: Bytes) -> Response {
    if bearer(&h).as_deref() != Some(BOT_TOKEN) {
        return slack_error("invalid_auth");
    }
    let j: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut files = Vec::new();
    let mut out = Vec::new();
    for f in j["files"].as_array().cloned().unwrap_or_default() {
        let id = f["id"].as_str().unwrap_or_default().to_string();
        let Some(bytes) = sh.with(|s| s.uploads.get(&id).cloned()) else {
            return slack_error("file_not_found");
        };
        files.push((f["title"].as_str().unwrap_or_default().to_string(), bytes));
        out.push(json!({"id": id}));
    }
    sh.with(|s| {
        s.shared.push(Shared {
            channel: j["channel_id"].as_str().unwrap_or_default().to_string(),
            comment: j["initial_comment"].as_str().map(str::to_string),
            thread_ts: j["thread_ts"].as_str().map(str::to_string),
            files,
        })
    });
    axum::Json(json!({"ok": true, "files": out})).into_response()
}

async fn file(AxState(sh): AxState<Sh>, Path(path): Path<String>, h: HeaderMap) -> Response {
    let (f, no_scope) = sh.with(|s| {
        s.file_requests.push(h.clone());
        (
            s.files.get(&format!("/files-pri/{path}")).cloned(),
            s.files_without_scope,
        )
    });
    if bearer(&h).as_deref() != Some(BOT_TOKEN) || no_scope {
        // What Slack does: a sign-in page, with status 200.
        return (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<!DOCTYPE html><html><body>Sign in to Slack</body></html>",
        )
            .into_response();
    }
    match f {
        Some((ct, bytes)) => ([(header::CONTENT_TYPE, ct)], bytes).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn link(
    ws: WebSocketUpgrade,
    Query(q): Query<HashMap<String, String>>,
    AxState(sh): AxState<Sh>,
) -> Response {
    let ticket = q.get("ticket").cloned().unwrap_or_default();
    let ok = sh.with(|s| match s.tickets.get_mut(&ticket) {
        Some(used) if !*used => {
            *used = true;
            true
        }
        _ => false,
    });
    if !ok {
        sh.violation(format!(
            "a WebSocket connection with an unknown or used ticket {ticket:?}"
        ));
        return StatusCode::BAD_REQUEST.into_response();
    }
    ws.on_upgrade(move |socket| async move { connection(socket, ticket, sh).await })
}

async fn send(socket: &mut WebSocket, v: Value) -> bool {
    socket
        .send(Message::Text(v.to_string().into()))
        .await
        .is_ok()
}

async fn envelope(
    sh: &Sh,
    socket: &mut WebSocket,
    conn: usize,
    kind: &str,
    payload: Value,
    retry_attempt: u64,
) -> bool {
    let id = sh.with(|s| {
        s.next += 1;
        let id = format!("env-{:04}", s.next);
        s.pending.insert(
            id.clone(),
            Pending {
                kind: kind.to_string(),
                payload: payload.clone(),
                sent: Instant::now(),
                conn,
                retry_attempt,
            },
        );
        s.sent.push((id.clone(), kind.to_string(), retry_attempt));
        id
    });
    send(
        socket,
        json!({
            "envelope_id": id,
            "payload": payload,
            "type": kind,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": if retry_attempt > 0 { "timeout" } else { "" },
        }),
    )
    .await
}

/// Envelopes past the deadline are recorded and sent again (on the live connection), as
/// Slack does.
async fn ack_deadlines(sh: Sh) {
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let resend: Vec<(Pending, mpsc::UnboundedSender<Cmd>)> = sh.with(|s| {
            let late: Vec<String> = s
                .pending
                .iter()
                .filter(|(_, p)| p.sent.elapsed() > ACK_DEADLINE)
                .map(|(id, _)| id.clone())
                .collect();
            let mut out = Vec::new();
            for id in late {
                let p = s.pending.remove(&id).unwrap();
                s.ack_timeouts.push(id);
                if p.retry_attempt < MAX_RETRIES
                    && let Some((_, tx)) = &s.live
                {
                    out.push((p, tx.clone()));
                }
            }
            out
        });
        for (p, tx) in resend {
            let _ = tx.send(Cmd::Envelope(
                format!("retry:{}:{}", p.retry_attempt + 1, p.kind),
                p.payload,
            ));
        }
    }
}

/// One Socket Mode connection, as Slack runs it.
async fn connection(mut socket: WebSocket, ticket: String, sh: Sh) {
    let idx = sh.with(|s| {
        s.connections.push(Conn {
            ticket,
            ..Default::default()
        });
        s.connections.len() - 1
    });
    // Envelopes left unacknowledged on a connection that went away are sent again here.
    let leftovers: Vec<Pending> = sh.with(|s| {
        let ids: Vec<String> = s
            .pending
            .iter()
            .filter(|(_, p)| s.connections[p.conn].ended)
            .map(|(id, _)| id.clone())
            .collect();
        ids.into_iter()
            .filter_map(|id| s.pending.remove(&id))
            .collect()
    });
    let hello = json!({"type": "hello", "num_connections": 1,
        "debug_info": {"host": "applink-standin", "build_number": 1, "approximate_connection_time": 18060},
        "connection_info": {"app_id": "A1"}});
    if !send(&mut socket, hello).await {
        sh.with(|s| s.connections[idx].ended = true);
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Cmd>();
    sh.with(|s| s.live = Some((idx, tx)));
    for p in leftovers {
        if !envelope(
            &sh,
            &mut socket,
            idx,
            &p.kind,
            p.payload,
            p.retry_attempt + 1,
        )
        .await
        {
            break;
        }
    }
    'conn: loop {
        tokio::select! {
            frame = socket.recv() => {
                let text = match frame {
                    None | Some(Err(_)) => break 'conn,
                    Some(Ok(Message::Close(f))) => {
                        sh.with(|s| s.connections[idx].client_close = f.map(|f| f.code));
                        break 'conn;
                    }
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Binary(_))) => {
                        sh.violation("the client sent a binary frame");
                        continue;
                    }
                    Some(Ok(_)) => continue,
                };
                let j: Value = match serde_json::from_str(&text) {
                    Ok(j) => j,
                    Err(_) => {
                        sh.violation(format!("the client sent something that is not JSON: {text}"));
                        continue;
                    }
                };
                let Some(id) = j["envelope_id"].as_str() else {
                    sh.violation(format!("the client sent something that is not an acknowledgement: {text}"));
                    continue;
                };
                let p = sh.with(|s| {
                    s.connections[idx].acks.push(id.to_string());
                    s.pending.remove(id)
                });
                match p {
                    None => {
                        let known = sh.get_sent(id);
                        if known {
                            // Acknowledged after its deadline (already counted) or twice.
                            let late = sh.with(|s| s.ack_timeouts.contains(&id.to_string()));
                            if !late {
                                sh.violation(format!("envelope {id} acknowledged twice"));
                            }
                        } else {
                            sh.violation(format!("acknowledgement of an unknown envelope {id}"));
                        }
                    }
                    Some(p) => {
                        if p.conn != idx {
                            sh.violation(format!("envelope {id} acknowledged on another connection"));
                        }
                    }
                }
            }
            cmd = rx.recv() => {
                let Some(cmd) = cmd else { continue };
                match cmd {
                    Cmd::Event(payload) => {
                        if !envelope(&sh, &mut socket, idx, "events_api", payload, 0).await { break 'conn; }
                    }
                    Cmd::Envelope(kind, payload) => {
                        let (kind, attempt) = match kind.strip_prefix("retry:") {
                            Some(rest) => {
                                let (n, k) = rest.split_once(':').unwrap();
                                (k.to_string(), n.parse().unwrap())
                            }
                            None => (kind, 0),
                        };
                        if !envelope(&sh, &mut socket, idx, &kind, payload, attempt).await { break 'conn; }
                    }
                    Cmd::Disconnect(reason) => {
                        let disabled = reason == "link_disabled";
                        send(&mut socket, json!({"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-standin"}})).await;
                        if disabled {
                            sh.with(|s| s.link_disabled = true);
                            let _ = socket.send(Message::Close(Some(CloseFrame { code: 1000, reason: "".into() }))).await;
                            break 'conn;
                        }
                    }
                    Cmd::Drop => break 'conn,
                    Cmd::Freeze => {
                        sh.with(|s| { if s.live.as_ref().is_some_and(|l| l.0 == idx) { s.live = None; } });
                        // Neither read nor write until the client gives up on us.
                        tokio::time::sleep(super::recording_sink::PATIENCE).await;
                        break 'conn;
                    }
                }
            }
        }
    }
    sh.with(|s| {
        s.connections[idx].ended = true;
        if s.live.as_ref().is_some_and(|l| l.0 == idx) {
            s.live = None;
        }
    });
}

impl Sh {
    fn get_sent(&self, id: &str) -> bool {
        self.state.lock().unwrap().sent.iter().any(|s| s.0 == id)
    }
}
