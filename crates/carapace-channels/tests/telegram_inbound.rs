//! Telegram receiving against a loopback Bot API that enforces the documented formats: the
//! token in the path, JSON bodies, `getUpdates` offsets (an update below the offset of a call
//! is confirmed and never returned again; `timeout` long polling; `allowed_updates`),
//! `getFile` → `file_path` → `/file/bot<token>/<file_path>`, `sendChatAction`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use carapace_channels::ChannelError;
use carapace_channels::inbound::telegram_updates::{TelegramSource, TelegramSourceSettings};
use carapace_channels::inbound::{
    AttachmentKind, Backoff, ChatKind, ConnectionState, InboundMessage, InboundSink, InboundSource,
};
use carapace_policy::{CarapaceError, ErrorCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const TOKEN: &str = "123456:test-token-ABC";
const BOT_ID: i64 = 999;

#[derive(Default)]
struct Api {
    /// Updates not yet confirmed, in order.
    pending: Mutex<VecDeque<Value>>,
    next_id: Mutex<i64>,
    /// Every getUpdates body.
    polls: Mutex<Vec<Value>>,
    actions: Mutex<Vec<Value>>,
    files: Mutex<Vec<(String, String, Vec<u8>)>>, // file_id, file_path, bytes
    violations: Mutex<Vec<String>>,
    fail_next: Mutex<u32>,
}

fn ok(result: Value) -> Response {
    axum::Json(json!({"ok": true, "result": result})).into_response()
}

fn err(status: u16, description: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({"ok": false, "error_code": status, "description": description})),
    )
        .into_response()
}

async fn method(
    State(api): State<Arc<Api>>,
    Path((bot, method)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    if bot != format!("bot{TOKEN}") {
        return err(401, "Unauthorized");
    }
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        api.violations
            .lock()
            .unwrap()
            .push(format!("{method}: body is not JSON"));
        return err(400, "Bad Request: body is not JSON");
    };
    match method.as_str() {
        "getMe" => {
            ok(json!({"id": BOT_ID, "is_bot": true, "first_name": "Cara", "username": "cara_bot"}))
        }
        "getUpdates" => {
            {
                let mut f = api.fail_next.lock().unwrap();
                if *f > 0 {
                    *f -= 1;
                    return err(502, "Bad Gateway");
                }
            }
            api.polls.lock().unwrap().push(b.clone());
            if b["allowed_updates"] != json!(["message"]) {
                api.violations
                    .lock()
                    .unwrap()
                    .push(format!("allowed_updates: {}", b["allowed_updates"]));
            }
            let timeout = b["timeout"].as_u64().unwrap_or(0);
            if let Some(offset) = b["offset"].as_i64() {
                // Documented: calling with an offset confirms every update below it.
                api.pending
                    .lock()
                    .unwrap()
                    .retain(|u| u["update_id"].as_i64().unwrap() >= offset);
            }
            for _ in 0..(timeout * 20).max(1) {
                let p = api.pending.lock().unwrap().clone();
                if !p.is_empty() {
                    return ok(Value::Array(p.into_iter().collect()));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            ok(json!([]))
        }
        "getFile" => {
            let id = b["file_id"].as_str().unwrap_or_default();
            match api.files.lock().unwrap().iter().find(|f| f.0 == id) {
                Some((id, path, bytes)) => ok(
                    json!({"file_id": id, "file_unique_id": "u", "file_size": bytes.len(), "file_path": path}),
                ),
                None => err(400, "Bad Request: invalid file_id"),
            }
        }
        "sendChatAction" => {
            if b["chat_id"].is_null() || b["action"] != "typing" {
                api.violations
                    .lock()
                    .unwrap()
                    .push(format!("sendChatAction: {b}"));
            }
            api.actions.lock().unwrap().push(b);
            ok(json!(true))
        }
        other => err(404, &format!("Not Found: method {other}")),
    }
}

async fn file(State(api): State<Arc<Api>>, Path((bot, path)): Path<(String, String)>) -> Response {
    if bot != format!("bot{TOKEN}") {
        return err(401, "Unauthorized");
    }
    match api.files.lock().unwrap().iter().find(|f| f.1 == path) {
        Some((_, _, bytes)) => bytes.clone().into_response(),
        None => err(404, "Not Found"),
    }
}

async fn serve() -> (String, Arc<Api>) {
    let api = Arc::new(Api::default());
    let app = Router::new()
        .route("/{bot}/{method}", post(method))
        .route("/file/{bot}/{*path}", get(file))
        .with_state(api.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}"), api)
}

impl Api {
    fn push(&self, message: Value) -> i64 {
        let mut n = self.next_id.lock().unwrap();
        *n += 1;
        let id = 1000 + *n;
        self.pending
            .lock()
            .unwrap()
            .push_back(json!({"update_id": id, "message": message}));
        id
    }
}

fn msg(chat: Value, from: i64, extra: Value) -> Value {
    let mut m = json!({
        "message_id": fastrand_id(),
        "date": 1_700_000_000,
        "chat": chat,
        "from": {"id": from, "is_bot": false, "first_name": "Alice"},
    });
    for (k, v) in extra.as_object().unwrap() {
        m[k] = v.clone();
    }
    m
}

fn fastrand_id() -> i64 {
    use std::sync::atomic::{AtomicI64, Ordering};
    static N: AtomicI64 = AtomicI64::new(1);
    N.fetch_add(1, Ordering::SeqCst)
}

#[derive(Default)]
struct Sink {
    got: Mutex<Vec<InboundMessage>>,
    states: Mutex<Vec<ConnectionState>>,
    refuse_text: Mutex<Option<String>>,
}

#[async_trait::async_trait]
impl InboundSink for Sink {
    async fn deliver(&self, m: InboundMessage) -> Result<(), ChannelError> {
        if self.refuse_text.lock().unwrap().as_deref() == Some(m.text.as_str()) {
            return Err(ChannelError::BadRequest {
                message: "not now".into(),
            });
        }
        self.got.lock().unwrap().push(m);
        Ok(())
    }
    fn state(&self, _: &str, s: ConnectionState) {
        self.states.lock().unwrap().push(s);
    }
}

fn source(base: &str, state: &std::path::Path) -> Arc<TelegramSource> {
    let mut s = TelegramSourceSettings::new(TOKEN, state);
    s.api_base_url = base.into();
    s.poll_timeout = Duration::from_secs(1);
    s.backoff = Backoff::new(Duration::from_millis(20), Duration::from_millis(100));
    Arc::new(TelegramSource::new(s).unwrap())
}

async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..600 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn updates_media_mentions_offsets_and_restart() {
    let (base, api) = serve().await;
    let state = tempfile::tempdir().unwrap();
    let private = json!({"id": 42, "type": "private"});
    let group = json!({"id": -100123, "type": "supergroup", "title": "G"});
    // Sent while the bot was down: answered (Telegram kept them for the bot).
    api.push(msg(private.clone(), 42, json!({"text": "while down"})));
    let photo_small = b"small".to_vec();
    let photo_big: Vec<u8> = [&b"\xff\xd8\xff\xe0"[..], &[9u8; 30_000]].concat();
    api.files.lock().unwrap().extend([
        (
            "ph-s".to_string(),
            "photos/file_1.jpg".to_string(),
            photo_small,
        ),
        (
            "ph-b".to_string(),
            "photos/file_2.jpg".to_string(),
            photo_big.clone(),
        ),
        (
            "doc".to_string(),
            "documents/file_3.pdf".to_string(),
            b"%PDF-1.4".to_vec(),
        ),
    ]);
    api.push(msg(
        private.clone(),
        42,
        json!({"caption": "look", "photo": [
            {"file_id": "ph-s", "file_unique_id": "a", "width": 90, "height": 60, "file_size": 5},
            {"file_id": "ph-b", "file_unique_id": "b", "width": 1280, "height": 853, "file_size": 30004}]}),
    ));
    api.push(msg(
        private.clone(),
        42,
        json!({"document": {"file_id": "doc", "file_unique_id": "c", "file_name": "report.pdf", "mime_type": "application/pdf", "file_size": 8}}),
    ));
    api.push(msg(group.clone(), 7, json!({"text": "chatter"})));
    api.push(msg(
        group.clone(),
        7,
        json!({"text": "hey @Cara_Bot do it"}),
    ));
    api.push(msg(
        group.clone(),
        7,
        json!({"text": "yes", "reply_to_message": {"message_id": 1, "date": 1, "chat": group, "from": {"id": BOT_ID, "is_bot": true, "first_name": "Cara"}}}),
    ));
    api.push(msg(
        json!({"id": -100123, "type": "supergroup", "is_forum": true}),
        7,
        json!({"text": "in topic", "message_thread_id": 5, "is_topic_message": true}),
    ));

    let src = source(&base, state.path());
    let sink = Arc::new(Sink::default());
    let stop = CancellationToken::new();
    let task = {
        let (s, k, t) = (src.clone(), sink.clone(), stop.clone());
        tokio::spawn(async move { s.run(k, t).await })
    };
    until("seven messages", || sink.got.lock().unwrap().len() == 7).await;
    let got = sink.got.lock().unwrap().clone();
    assert_eq!(got[0].text, "while down");
    assert_eq!(got[0].chat.kind, ChatKind::Direct);
    assert_eq!(got[0].chat.id, "42");
    assert_eq!(got[0].sender.id, "42");
    assert_eq!(got[0].sender.name.as_deref(), Some("Alice"));
    assert_eq!(got[0].timestamp_ms, Some(1_700_000_000_000));
    // Photos: the largest size only.
    assert_eq!(got[1].text, "look");
    assert_eq!(got[1].attachments.len(), 1);
    assert_eq!(got[1].attachments[0].kind, AttachmentKind::Image);
    let fetched = src
        .fetch_attachment(&got[1].attachments[0], 1 << 20)
        .await
        .unwrap();
    assert_eq!(fetched.bytes, photo_big);
    let e = src
        .fetch_attachment(&got[1].attachments[0], 100)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::OutboundMediaTooLarge);
    assert_eq!(
        got[2].attachments[0].filename.as_deref(),
        Some("report.pdf")
    );
    assert_eq!(
        src.fetch_attachment(&got[2].attachments[0], 1 << 20)
            .await
            .unwrap()
            .bytes,
        b"%PDF-1.4"
    );
    assert_eq!(got[3].chat.kind, ChatKind::Group);
    assert!(!got[3].mentions_bot);
    assert!(got[4].mentions_bot, "@username, case-insensitive");
    assert!(got[5].mentions_bot, "a reply to the bot");
    assert_eq!(got[6].chat.thread.as_deref(), Some("5"));
    assert_eq!(
        got[6].event_id,
        format!("-100123:{}", got[6].event_id.split(':').nth(1).unwrap())
    );
    src.typing(&got[6].chat, true).await.unwrap();
    let action = api.actions.lock().unwrap()[0].clone();
    assert_eq!(
        action,
        json!({"chat_id": "-100123", "action": "typing", "message_thread_id": 5})
    );

    // The offset was persisted; a restart continues after it (nothing repeats).
    stop.cancel();
    task.await.unwrap().unwrap();
    let saved: i64 = src.cursor().load().unwrap().unwrap().parse().unwrap();
    assert_eq!(saved, 1008);
    api.push(msg(private.clone(), 42, json!({"text": "after restart"})));
    // A transient outage first: backed off, not fatal.
    *api.fail_next.lock().unwrap() = 2;
    let src2 = source(&base, state.path());
    let sink2 = Arc::new(Sink::default());
    let stop2 = CancellationToken::new();
    let task2 = {
        let (s, k, t) = (src2.clone(), sink2.clone(), stop2.clone());
        tokio::spawn(async move { s.run(k, t).await })
    };
    until("after restart", || !sink2.got.lock().unwrap().is_empty()).await;
    let texts: Vec<String> = sink2
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|m| m.text.clone())
        .collect();
    assert_eq!(texts, vec!["after restart"]);
    assert!(sink2
        .states
        .lock()
        .unwrap()
        .iter()
        .any(|s| matches!(s, ConnectionState::Reconnecting { error, .. } if error.contains("Bad Gateway"))));
    until("a poll past the delivered update", || {
        api.polls
            .lock()
            .unwrap()
            .last()
            .and_then(|p| p["offset"].as_i64())
            .is_some_and(|o| o >= 1009)
    })
    .await;

    // A refused message is not confirmed: it comes again, and what follows it waits.
    *sink2.refuse_text.lock().unwrap() = Some("refuse me".into());
    api.push(msg(private.clone(), 42, json!({"text": "refuse me"})));
    api.push(msg(private.clone(), 42, json!({"text": "after it"})));
    until("a retried poll", || {
        api.polls
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p["offset"] == 1009)
            .count()
            >= 2
    })
    .await;
    assert_eq!(
        sink2.got.lock().unwrap().len(),
        1,
        "nothing after the refused one"
    );
    *sink2.refuse_text.lock().unwrap() = None;
    until("both", || sink2.got.lock().unwrap().len() == 3).await;
    stop2.cancel();
    task2.await.unwrap().unwrap();
    assert!(
        api.violations.lock().unwrap().is_empty(),
        "{:?}",
        api.violations.lock().unwrap()
    );
}

#[tokio::test]
async fn a_wrong_token_stops_with_a_typed_error_and_never_shows_it() {
    let (base, _api) = serve().await;
    let state = tempfile::tempdir().unwrap();
    let mut s = TelegramSourceSettings::new("111:wrong-token-secret", state.path());
    s.api_base_url = base;
    let src = TelegramSource::new(s).unwrap();
    let sink = Arc::new(Sink::default());
    let e = tokio::time::timeout(
        Duration::from_secs(30),
        src.run(sink.clone(), CancellationToken::new()),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ChannelUnauthorized);
    let shown = format!(
        "{e} {:?} {:?}",
        e.to_envelope(),
        sink.states.lock().unwrap()
    );
    assert!(!shown.contains("wrong-token-secret"), "{shown}");
}

#[tokio::test]
async fn nothing_listening_is_retried_not_fatal() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let state = tempfile::tempdir().unwrap();
    let src = source(&base, state.path());
    let sink = Arc::new(Sink::default());
    let stop = CancellationToken::new();
    let task = {
        let (s, k, t) = (src.clone(), sink.clone(), stop.clone());
        tokio::spawn(async move { s.run(k, t).await })
    };
    until("three reconnect attempts", || {
        sink.states
            .lock()
            .unwrap()
            .iter()
            .any(|s| matches!(s, ConnectionState::Reconnecting { attempt: 3, .. }))
    })
    .await;
    stop.cancel();
    task.await.unwrap().unwrap();
    let states = sink.states.lock().unwrap().clone();
    assert!(states.iter().all(|s| !format!("{s:?}").contains(TOKEN)));
}
