//! A loopback Bot API for the conversation tests: `getMe`, `getUpdates` (offsets confirm,
//! `timeout` long polls), `getFile` + `/file/bot<token>/<path>`, `sendMessage` (≤ 4096
//! characters, as Telegram enforces), `sendPhoto` / `sendDocument` (multipart), and
//! `sendChatAction`. Every request's token is checked; what the bot sent is recorded.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub const TOKEN: &str = "4242:inbound-test-token";
pub const BOT_ID: i64 = 4242;

/// What the bot sent.
#[derive(Debug, Clone)]
pub struct Sent {
    pub method: String,
    pub chat_id: String,
    pub text: Option<String>,
    pub file: Option<(String, Vec<u8>)>,
}

#[derive(Default)]
pub struct Tg {
    pending: Mutex<VecDeque<Value>>,
    next: Mutex<i64>,
    pub sent: Mutex<Vec<Sent>>,
    pub actions: Mutex<Vec<Value>>,
    pub files: Mutex<Vec<(String, String, Vec<u8>)>>,
    pub violations: Mutex<Vec<String>>,
    msg_id: Mutex<i64>,
}

fn ok(v: Value) -> Response {
    axum::Json(json!({"ok": true, "result": v})).into_response()
}
fn err(status: u16, d: &str) -> Response {
    (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({"ok": false, "error_code": status, "description": d})),
    )
        .into_response()
}

async fn method(
    State(tg): State<Arc<Tg>>,
    Path((bot, m)): Path<(String, String)>,
    req: Request,
) -> Response {
    if bot != format!("bot{TOKEN}") {
        return err(401, "Unauthorized");
    }
    let multipart = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("multipart/form-data"));
    let mut fields: Vec<(String, Option<String>, Vec<u8>)> = Vec::new();
    let body: Value = if multipart {
        let mut mp = Multipart::from_request(req, &()).await.unwrap();
        while let Some(f) = mp.next_field().await.unwrap() {
            let name = f.name().unwrap_or_default().to_string();
            let file = f.file_name().map(str::to_string);
            let bytes = f.bytes().await.unwrap().to_vec();
            fields.push((name, file, bytes));
        }
        let mut o = serde_json::Map::new();
        for (n, f, b) in &fields {
            if f.is_none() {
                o.insert(
                    n.clone(),
                    Value::String(String::from_utf8_lossy(b).into_owned()),
                );
            }
        }
        Value::Object(o)
    } else {
        let b = axum::body::to_bytes(req.into_body(), 64 << 20)
            .await
            .unwrap();
        match serde_json::from_slice(&b) {
            Ok(v) => v,
            Err(_) => return err(400, "Bad Request: not JSON"),
        }
    };
    let next_msg = || {
        let mut n = tg.msg_id.lock().unwrap();
        *n += 1;
        *n
    };
    match m.as_str() {
        "getMe" => {
            ok(json!({"id": BOT_ID, "is_bot": true, "first_name": "Cara", "username": "cara_bot"}))
        }
        "getUpdates" => {
            if let Some(o) = body["offset"].as_i64() {
                tg.pending
                    .lock()
                    .unwrap()
                    .retain(|u| u["update_id"].as_i64().unwrap() >= o);
            }
            let t = body["timeout"].as_u64().unwrap_or(0);
            for _ in 0..(t * 20).max(1) {
                let p = tg.pending.lock().unwrap().clone();
                if !p.is_empty() {
                    return ok(Value::Array(p.into_iter().collect()));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            ok(json!([]))
        }
        "getFile" => {
            let id = body["file_id"].as_str().unwrap_or_default();
            match tg.files.lock().unwrap().iter().find(|f| f.0 == id) {
                Some((id, p, b)) => {
                    ok(json!({"file_id": id, "file_size": b.len(), "file_path": p}))
                }
                None => err(400, "Bad Request: invalid file_id"),
            }
        }
        "sendChatAction" => {
            tg.actions.lock().unwrap().push(body);
            ok(json!(true))
        }
        "sendMessage" => {
            let text = body["text"].as_str().unwrap_or_default().to_string();
            if text.is_empty() || text.chars().count() > 4096 {
                tg.violations.lock().unwrap().push(format!(
                    "sendMessage text of {} chars",
                    text.chars().count()
                ));
                return err(400, "Bad Request: message is too long");
            }
            tg.sent.lock().unwrap().push(Sent {
                method: m.clone(),
                chat_id: body["chat_id"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| body["chat_id"].to_string()),
                text: Some(text),
                file: None,
            });
            ok(json!({"message_id": next_msg(), "date": 1, "chat": {"id": 1, "type": "private"}}))
        }
        "sendPhoto" | "sendDocument" => {
            let field = if m == "sendPhoto" {
                "photo"
            } else {
                "document"
            };
            let Some((_, name, bytes)) = fields.iter().find(|f| f.0 == field) else {
                tg.violations
                    .lock()
                    .unwrap()
                    .push(format!("{m} without a {field} part"));
                return err(400, "Bad Request: there is no file in the request");
            };
            tg.sent.lock().unwrap().push(Sent {
                method: m.clone(),
                chat_id: body["chat_id"].as_str().unwrap_or_default().to_string(),
                text: body["caption"].as_str().map(str::to_string),
                file: Some((name.clone().unwrap_or_default(), bytes.clone())),
            });
            let r = if m == "sendPhoto" {
                json!({"message_id": next_msg(), "date": 1, "chat": {"id": 1, "type": "private"}, "photo": [{"file_id": "p1", "width": 1, "height": 1}]})
            } else {
                json!({"message_id": next_msg(), "date": 1, "chat": {"id": 1, "type": "private"}, "document": {"file_id": "d1"}})
            };
            ok(r)
        }
        other => err(404, &format!("Not Found: {other}")),
    }
}

async fn file(State(tg): State<Arc<Tg>>, Path((bot, path)): Path<(String, String)>) -> Response {
    if bot != format!("bot{TOKEN}") {
        return err(401, "Unauthorized");
    }
    match tg.files.lock().unwrap().iter().find(|f| f.1 == path) {
        Some((_, _, b)) => Bytes::from(b.clone()).into_response(),
        None => err(404, "Not Found"),
    }
}

/// Starts the fake; its base URL.
pub async fn start() -> (String, Arc<Tg>) {
    let tg = Arc::new(Tg::default());
    let app = Router::new()
        .route("/{bot}/{method}", post(method))
        .route("/file/{bot}/{*path}", get(file))
        .with_state(tg.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}"), tg)
}

impl Tg {
    /// Queues a `message` update.
    pub fn push(&self, message: Value) {
        let mut n = self.next.lock().unwrap();
        *n += 1;
        let id = 500 + *n;
        let mut m = message;
        if m.get("message_id").is_none() {
            m["message_id"] = json!(id * 10);
        }
        if m.get("date").is_none() {
            m["date"] = json!(1_700_000_000);
        }
        self.pending
            .lock()
            .unwrap()
            .push_back(json!({"update_id": id, "message": m}));
    }

    /// What was sent to `chat`.
    pub fn sent_to(&self, chat: &str) -> Vec<Sent> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.chat_id == chat)
            .cloned()
            .collect()
    }
}

/// A private-chat message from `from`.
pub fn dm(from: i64, extra: Value) -> Value {
    let mut m = json!({"chat": {"id": from, "type": "private"}, "from": {"id": from, "is_bot": false, "first_name": "P"}});
    for (k, v) in extra.as_object().unwrap() {
        m[k] = v.clone();
    }
    m
}

/// A group message.
pub fn group(chat: i64, from: i64, text: &str) -> Value {
    json!({"chat": {"id": chat, "type": "supergroup", "title": "G"}, "from": {"id": from, "is_bot": false, "first_name": "P"}, "text": text})
}
