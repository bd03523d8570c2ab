//! Scripted model servers on loopback: one for the OpenAI Chat Completions API, one for the
//! Anthropic Messages API. Each answers requests from a script, in order, and **enforces the
//! wire format** of the public API docs on every request: the auth headers, the request body
//! (known keys only, message roles and content shapes, tool schemas that are JSON Schema
//! objects), the pairing of tool calls with their results, and the streaming flags. A request
//! that breaks the format is answered `400` like the real API, and recorded as a violation: the
//! server panics when dropped with violations (unless the test is already panicking), so a
//! client bug fails the test with a message that says which rule it broke.
//!
//! Replies: text, tool calls (parallel when several), both, an HTTP error status (429 with
//! `Retry-After`, 5xx), a stream cut in the middle, or a stall (the connection is held open
//! until the client goes away). Streamed answers (`stream: true`) use each API's SSE chunk
//! shapes: OpenAI `chat.completion.chunk` lines and `data: [DONE]`; Anthropic's
//! `message_start` / `content_block_*` / `message_delta` / `message_stop` events.

// `!x.is_some_and(valid)` reads as "is not valid", which is what every check here says.
#![allow(clippy::nonminimal_bool)]

mod anthropic;
mod openai;
mod schema;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{Value, json};

/// Which API a server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `POST /v1/chat/completions`, `Authorization: Bearer <key>`.
    OpenAi,
    /// `POST /v1/messages`, `x-api-key: <key>` and `anthropic-version`.
    Anthropic,
}

/// One tool call the scripted model makes.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolUse {
    /// Tool name.
    pub name: String,
    /// Arguments (a JSON object).
    pub arguments: Value,
}

/// A tool call: `call("exec", json!({"command": "ls"}))`.
pub fn call(name: &str, arguments: Value) -> ToolUse {
    ToolUse {
        name: name.to_string(),
        arguments,
    }
}

/// What the scripted model answers to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A final text answer.
    Text(String),
    /// Tool calls (several = parallel calls in one assistant message), with optional text.
    Tools(Option<String>, Vec<ToolUse>),
    /// An HTTP error with the API's error body; `retry_after` becomes the `Retry-After` header.
    Status {
        /// HTTP status (429, 500, 503, 401, 400…).
        status: u16,
        /// `Retry-After` value (seconds).
        retry_after: Option<String>,
        /// The error message in the body.
        message: String,
    },
    /// A streamed answer that stops after its first chunk without the closing events (the
    /// connection ends). For non-streamed requests: a truncated JSON body.
    CutStream(String),
    /// Hold the connection open, sending nothing, until the client goes away.
    Stall,
}

impl Reply {
    /// A final text answer.
    pub fn text(s: &str) -> Reply {
        Reply::Text(s.to_string())
    }
    /// Tool calls without text.
    pub fn tools(calls: Vec<ToolUse>) -> Reply {
        Reply::Tools(None, calls)
    }
    /// 429 with `Retry-After: <secs>`.
    pub fn rate_limited(secs: u32) -> Reply {
        Reply::Status {
            status: 429,
            retry_after: Some(secs.to_string()),
            message: "Rate limit reached for requests".into(),
        }
    }
    /// An HTTP error status without `Retry-After`.
    pub fn status(status: u16) -> Reply {
        Reply::Status {
            status,
            retry_after: None,
            message: format!("scripted failure {status}"),
        }
    }
}

/// A tool result as the model sees it in a request.
#[derive(Debug, Clone, PartialEq)]
pub struct SeenToolResult {
    /// The tool call id it answers.
    pub id: String,
    /// The tool name of that call (from the assistant message that made it).
    pub name: String,
    /// The result text (text parts joined).
    pub content: String,
    /// Anthropic `is_error` (always false on OpenAI).
    pub is_error: bool,
}

/// A validated request, in a form scripts can read regardless of the API.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The API.
    pub api: Api,
    /// The raw JSON body.
    pub body: Value,
    /// 0-based index of this request on the server.
    pub index: usize,
}

impl Seen {
    /// `stream: true`.
    pub fn streamed(&self) -> bool {
        self.body["stream"].as_bool().unwrap_or(false)
    }

    /// The model id requested.
    pub fn model(&self) -> &str {
        self.body["model"].as_str().unwrap_or_default()
    }

    /// The system prompt text.
    pub fn system(&self) -> String {
        match self.api {
            Api::OpenAi => self
                .messages()
                .iter()
                .filter(|m| m["role"] == "system" || m["role"] == "developer")
                .map(|m| text_of(&m["content"]))
                .collect::<Vec<_>>()
                .join("\n"),
            Api::Anthropic => text_of(&self.body["system"]),
        }
    }

    /// The names of the tools offered.
    pub fn tool_names(&self) -> Vec<String> {
        self.body["tools"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| {
                        t["function"]["name"]
                            .as_str()
                            .or_else(|| t["name"].as_str())
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The messages array.
    pub fn messages(&self) -> Vec<Value> {
        self.body["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// The text of every user message (not tool results), in order.
    pub fn user_texts(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in self.messages() {
            if m["role"] != "user" {
                continue;
            }
            match &m["content"] {
                Value::String(s) => out.push(s.clone()),
                Value::Array(parts) => {
                    let t: Vec<String> = parts
                        .iter()
                        .filter(|p| p["type"] == "text")
                        .filter_map(|p| p["text"].as_str().map(str::to_string))
                        .collect();
                    if !t.is_empty() {
                        out.push(t.join("\n"));
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// The last user text.
    pub fn last_user_text(&self) -> String {
        self.user_texts().pop().unwrap_or_default()
    }

    /// True when the last user message carries an image part.
    pub fn last_user_has_image(&self) -> bool {
        self.messages()
            .iter()
            .rev()
            .find(|m| m["role"] == "user" && !is_tool_result_message(m))
            .and_then(|m| m["content"].as_array().cloned())
            .is_some_and(|parts| {
                parts
                    .iter()
                    .any(|p| p["type"] == "image_url" || p["type"] == "image")
            })
    }

    /// Every tool result in the conversation, in order.
    pub fn tool_results(&self) -> Vec<SeenToolResult> {
        let mut names: BTreeMap<String, String> = BTreeMap::new();
        let mut out = Vec::new();
        for m in self.messages() {
            match self.api {
                Api::OpenAi => {
                    if let Some(calls) = m["tool_calls"].as_array() {
                        for c in calls {
                            names.insert(
                                c["id"].as_str().unwrap_or_default().into(),
                                c["function"]["name"].as_str().unwrap_or_default().into(),
                            );
                        }
                    }
                    if m["role"] == "tool" {
                        let id = m["tool_call_id"].as_str().unwrap_or_default().to_string();
                        out.push(SeenToolResult {
                            name: names.get(&id).cloned().unwrap_or_default(),
                            content: text_of(&m["content"]),
                            is_error: false,
                            id,
                        });
                    }
                }
                Api::Anthropic => {
                    for b in m["content"].as_array().cloned().unwrap_or_default() {
                        if b["type"] == "tool_use" {
                            names.insert(
                                b["id"].as_str().unwrap_or_default().into(),
                                b["name"].as_str().unwrap_or_default().into(),
                            );
                        }
                        if b["type"] == "tool_result" {
                            let id = b["tool_use_id"].as_str().unwrap_or_default().to_string();
                            out.push(SeenToolResult {
                                name: names.get(&id).cloned().unwrap_or_default(),
                                content: text_of(&b["content"]),
                                is_error: b["is_error"].as_bool().unwrap_or(false),
                                id,
                            });
                        }
                    }
                }
            }
        }
        out
    }

    /// The last tool result, parsed as JSON when it is JSON.
    pub fn last_tool_result(&self) -> Option<(SeenToolResult, Value)> {
        let r = self.tool_results().pop()?;
        let v = serde_json::from_str(&r.content).unwrap_or(Value::Null);
        Some((r, v))
    }
}

fn is_tool_result_message(m: &Value) -> bool {
    m["content"]
        .as_array()
        .is_some_and(|a| a.iter().any(|b| b["type"] == "tool_result"))
}

/// Text of a content value: a string, or the `text` of its text parts joined with `\n`.
pub fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

type Responder = Box<dyn Fn(&Seen) -> Reply + Send + Sync>;

/// One step of a script: the reply to one request (fixed, or computed from the request).
pub struct Step(Responder);

impl Step {
    /// A fixed reply.
    pub fn reply(r: Reply) -> Step {
        Step(Box::new(move |_| r.clone()))
    }
    /// A reply computed from the request (e.g. from the last tool result).
    pub fn with(f: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Step {
        Step(Box::new(f))
    }
}

impl From<Reply> for Step {
    fn from(r: Reply) -> Step {
        Step::reply(r)
    }
}

/// One request as received (after validation).
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Method and path.
    pub path: String,
    /// Headers, lower-case names.
    pub headers: BTreeMap<String, String>,
    /// The body as JSON (Null when it was not JSON).
    pub body: Value,
    /// The raw body text.
    pub raw: String,
}

struct State {
    api: Api,
    key: String,
    bearer_for_anthropic: bool,
    script: Mutex<std::collections::VecDeque<Step>>,
    /// When the script is empty, answer this (e.g. an endlessly tool-calling model).
    repeat: Mutex<Option<Step>>,
    requests: Mutex<Vec<Recorded>>,
    violations: Mutex<Vec<String>>,
    chunk_delay: Duration,
    record: bool,
    count: std::sync::atomic::AtomicUsize,
}

/// A running scripted server. Dropping it stops it; with violations recorded it panics.
pub struct ModelServer {
    addr: SocketAddr,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

/// Builder of a [`ModelServer`].
pub struct ModelServerBuilder {
    api: Api,
    key: String,
    bearer_for_anthropic: bool,
    script: Vec<Step>,
    repeat: Option<Step>,
    chunk_delay: Duration,
    record: bool,
}

impl ModelServerBuilder {
    /// Keep no copy of the requests (benchmarks: memory stays flat). Violations are still
    /// recorded; `requests()` is then empty and `request_count()` still counts.
    pub fn without_recording(mut self) -> Self {
        self.record = false;
        self
    }
    /// The script (in order).
    pub fn script(mut self, steps: impl IntoIterator<Item = Step>) -> Self {
        self.script.extend(steps);
        self
    }
    /// Appends one step.
    pub fn step(mut self, s: impl Into<Step>) -> Self {
        self.script.push(s.into());
        self
    }
    /// What to answer once the script is used up (default: a violation).
    pub fn then_repeat(mut self, s: impl Into<Step>) -> Self {
        self.repeat = Some(s.into());
        self
    }
    /// Anthropic server expecting `Authorization: Bearer` instead of `x-api-key`.
    pub fn bearer_auth(mut self) -> Self {
        self.bearer_for_anthropic = true;
        self
    }
    /// Delay between streamed chunks (default 1 ms, so chunks arrive in separate reads).
    pub fn chunk_delay(mut self, d: Duration) -> Self {
        self.chunk_delay = d;
        self
    }
    /// Binds 127.0.0.1 on a free port and serves in the background.
    pub async fn start(self) -> ModelServer {
        let state = Arc::new(State {
            api: self.api,
            key: self.key,
            bearer_for_anthropic: self.bearer_for_anthropic,
            script: Mutex::new(self.script.into()),
            repeat: Mutex::new(self.repeat),
            requests: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
            chunk_delay: self.chunk_delay,
            record: self.record,
            count: std::sync::atomic::AtomicUsize::new(0),
        });
        let st = Arc::clone(&state);
        let app = Router::new().fallback(move |method, uri, headers, body| {
            let st = Arc::clone(&st);
            async move { handle(st, method, uri, headers, body).await }
        });
        #[allow(clippy::expect_used)]
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        #[allow(clippy::expect_used)]
        let addr = listener.local_addr().expect("local addr");
        // No Nagle: streamed chunks go out as they are written, as real APIs send them (and
        // a small write never waits for a delayed ACK).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ModelServer { addr, state, task }
    }
}

impl ModelServer {
    /// A builder for `api`, accepting `key`.
    pub fn builder(api: Api, key: &str) -> ModelServerBuilder {
        ModelServerBuilder {
            api,
            key: key.to_string(),
            bearer_for_anthropic: false,
            script: Vec::new(),
            repeat: None,
            chunk_delay: Duration::from_millis(1),
            record: true,
        }
    }

    /// The base URL to configure: `http://127.0.0.1:<port>/v1` for OpenAI,
    /// `http://127.0.0.1:<port>` for Anthropic (the client appends `/v1/messages`).
    pub fn base_url(&self) -> String {
        match self.state.api {
            Api::OpenAi => format!("http://{}/v1", self.addr),
            Api::Anthropic => format!("http://{}", self.addr),
        }
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state.requests).clone()
    }

    /// Number of requests received.
    pub fn request_count(&self) -> usize {
        self.state.count.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Wire-format violations seen so far.
    pub fn violations(&self) -> Vec<String> {
        lock(&self.state.violations).clone()
    }

    /// Takes the violations seen so far (for tests of the server itself: the drop is then
    /// quiet).
    pub fn take_violations(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.state.violations))
    }

    /// Steps not used yet.
    pub fn remaining(&self) -> usize {
        lock(&self.state.script).len()
    }

    /// Panics with the violations, if any.
    #[allow(clippy::panic)]
    pub fn assert_clean(&self) {
        let v = self.violations();
        if !v.is_empty() {
            panic!(
                "the model server saw wire-format violations:\n- {}",
                v.join("\n- ")
            );
        }
    }
}

impl Drop for ModelServer {
    #[allow(clippy::panic)]
    fn drop(&mut self) {
        self.task.abort();
        let v = self.violations();
        if !v.is_empty() && !std::thread::panicking() {
            panic!(
                "the model server saw wire-format violations:\n- {}",
                v.join("\n- ")
            );
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn handle(
    st: Arc<State>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let raw = String::from_utf8_lossy(&body).to_string();
    let json: Value = serde_json::from_str(&raw).unwrap_or(Value::Null);
    let hmap: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(v.as_bytes()).to_string(),
            )
        })
        .collect();
    let index = st.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    if st.record {
        lock(&st.requests).push(Recorded {
            path: format!("{method} {}", uri.path()),
            headers: hmap.clone(),
            body: json.clone(),
            raw: raw.clone(),
        });
    }
    let want_path = match st.api {
        Api::OpenAi => "/v1/chat/completions",
        Api::Anthropic => "/v1/messages",
    };
    if method != Method::POST || uri.path() != want_path {
        return violation(
            &st,
            404,
            format!(
                "request #{index}: {method} {} (expected POST {want_path})",
                uri.path()
            ),
        );
    }
    // Authentication first, as the real APIs do: a wrong key is a 401, not a violation.
    let auth = match st.api {
        Api::OpenAi => hmap.get("authorization").cloned(),
        Api::Anthropic if st.bearer_for_anthropic => hmap.get("authorization").cloned(),
        Api::Anthropic => hmap.get("x-api-key").map(|k| format!("Bearer {k}")),
    };
    if auth.as_deref() != Some(&format!("Bearer {}", st.key)) {
        return error_response(st.api, 401, None, "invalid api key", "authentication_error");
    }
    let problems = match st.api {
        Api::OpenAi => openai::validate(&hmap, &json, &raw),
        Api::Anthropic => anthropic::validate(&hmap, &json, &raw),
    };
    if !problems.is_empty() {
        return violation(
            &st,
            400,
            format!("request #{index}: {}", problems.join("; ")),
        );
    }
    let seen = Seen {
        api: st.api,
        body: json,
        index,
    };
    let step = lock(&st.script).pop_front();
    // An assertion inside a step fails the test (as a violation), not just the connection.
    let run = |s: &Step| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (s.0)(&seen))).map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a script step panicked".into())
        })
    };
    let reply = match step {
        Some(s) => run(&s),
        None => match lock(&st.repeat).as_ref() {
            Some(s) => run(s),
            None => {
                return violation(
                    &st,
                    500,
                    format!("request #{index}: the script has no step left for it"),
                );
            }
        },
    };
    match reply {
        Ok(reply) => render(&st, &seen, reply),
        Err(msg) => violation(
            &st,
            500,
            format!("request #{index}: script step failed: {msg}"),
        ),
    }
}

fn violation(st: &State, status: u16, message: String) -> Response {
    lock(&st.violations).push(message.clone());
    error_response(st.api, status, None, &message, "invalid_request_error")
}

/// The API's error body.
fn error_response(
    api: Api,
    status: u16,
    retry_after: Option<&str>,
    message: &str,
    kind: &str,
) -> Response {
    let body = match api {
        Api::OpenAi => json!({"error": {"message": message, "type": kind, "param": null,
            "code": if status == 429 { Value::from("rate_limit_exceeded") } else { Value::Null }}}),
        Api::Anthropic => json!({"type": "error", "error": {"type": kind, "message": message}}),
    };
    let mut b = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json");
    if let Some(r) = retry_after {
        b = b.header("retry-after", r);
    }
    b.body(Body::from(body.to_string()))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

fn render(st: &State, seen: &Seen, reply: Reply) -> Response {
    match reply {
        Reply::Status {
            status,
            retry_after,
            message,
        } => {
            let kind = match (st.api, status) {
                (Api::Anthropic, 429) => "rate_limit_error",
                (Api::Anthropic, 529) => "overloaded_error",
                (Api::Anthropic, s) if s >= 500 => "api_error",
                (Api::Anthropic, 401) => "authentication_error",
                (Api::Anthropic, _) => "invalid_request_error",
                (Api::OpenAi, 429) => "requests",
                (Api::OpenAi, s) if s >= 500 => "server_error",
                (Api::OpenAi, _) => "invalid_request_error",
            };
            error_response(st.api, status, retry_after.as_deref(), &message, kind)
        }
        Reply::Stall => {
            let s = futures_util::stream::pending::<Result<Bytes, Infallible>>();
            Response::builder()
                .status(200)
                .header(
                    "content-type",
                    if seen.streamed() {
                        "text/event-stream"
                    } else {
                        "application/json"
                    },
                )
                .body(Body::from_stream(s))
                .unwrap_or_else(|_| Response::new(Body::empty()))
        }
        reply => {
            let answer = Answer::from_reply(&reply, seen);
            if seen.streamed() {
                let mut events = match st.api {
                    Api::OpenAi => openai::stream_events(&answer, seen),
                    Api::Anthropic => anthropic::stream_events(&answer, seen),
                };
                if matches!(reply, Reply::CutStream(_)) {
                    events.truncate(2);
                }
                sse(events, st.chunk_delay)
            } else {
                let mut body = match st.api {
                    Api::OpenAi => openai::response(&answer, seen),
                    Api::Anthropic => anthropic::response(&answer, seen),
                }
                .to_string();
                if matches!(reply, Reply::CutStream(_)) {
                    body.truncate(body.len() / 2);
                }
                Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(Body::from(body))
                    .unwrap_or_else(|_| Response::new(Body::empty()))
            }
        }
    }
}

/// A normalised answer both APIs render.
pub(crate) struct Answer {
    pub text: Option<String>,
    pub calls: Vec<(String, ToolUse)>,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Answer {
    fn from_reply(r: &Reply, seen: &Seen) -> Answer {
        let (text, calls) = match r {
            Reply::Text(t) | Reply::CutStream(t) => (Some(t.clone()), Vec::new()),
            Reply::Tools(t, c) => (t.clone(), c.clone()),
            _ => (None, Vec::new()),
        };
        let prefix = match seen.api {
            Api::OpenAi => "call_",
            Api::Anthropic => "toolu_",
        };
        let calls = calls
            .into_iter()
            .enumerate()
            .map(|(i, c)| (format!("{prefix}{}_{i}", seen.index), c))
            .collect::<Vec<_>>();
        let out_chars = text.as_ref().map_or(0, String::len)
            + calls
                .iter()
                .map(|(_, c)| c.arguments.to_string().len())
                .sum::<usize>();
        Answer {
            text,
            calls,
            input_tokens: (seen.body.to_string().len() / 4) as u64,
            output_tokens: (out_chars / 4 + 1) as u64,
        }
    }
}

/// An SSE body: one event per item, `delay` apart.
fn sse(events: Vec<String>, delay: Duration) -> Response {
    let s = futures_util::stream::unfold(events.into_iter(), move |mut it| async move {
        let e = it.next()?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Some((Ok::<Bytes, Infallible>(Bytes::from(e)), it))
    });
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(s))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// Splits a string into roughly `n` pieces on char boundaries (for deltas).
pub(crate) fn pieces(s: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return vec![String::new()];
    }
    let size = chars.len().div_ceil(n.max(1));
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}
