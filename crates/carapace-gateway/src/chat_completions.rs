//! `POST /v1/chat/completions`: the OpenAI Chat Completions wire format in front of
//! carapace's agent, as OpenClaw's gateway offers it (docs/gateway.md). Off unless
//! `gateway.http.endpoints.chatCompletions.enabled` is true; behind the gateway token.
//!
//! - The agent: `model: "openclaw:<agentId>"` or `"agent:<agentId>"` (plain `"openclaw"`:
//!   `main`), or the header `x-openclaw-agent-id`; `x-openclaw-model` overrides the agent's
//!   model (checked against `modelPolicy.allow`).
//! - The session: `x-openclaw-session-key`; else one derived from the OpenAI `user` field (the
//!   same user gets the same session); else a new session per request.
//! - The turn's text is the last `user` message (text parts joined; `data:` image URLs become
//!   images): the session's transcript is the history, earlier request messages are not
//!   replayed.
//! - `stream: true`: `text/event-stream`, `chat.completion.chunk` objects as `data:` lines, the
//!   answer's text as it arrives, then `data: [DONE]`.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use carapace_agent::{ImageData, LiveEvent, Reply, TurnRequest};
use carapace_policy::session::normalize_agent_id;
use carapace_policy::{CarapaceError as _, ErrorCode, ErrorEnvelope};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::gateway::Gateway;
use crate::server::{
    BodyError, OPENCLAW_CHANNEL_HEADER, error_response, json_response, read_body, request_id_of,
    too_large,
};

/// OpenClaw's header naming the agent.
pub const AGENT_HEADER: &str = "x-openclaw-agent-id";
/// OpenClaw's header naming the session key.
pub const SESSION_KEY_HEADER: &str = "x-openclaw-session-key";
/// OpenClaw's header overriding the agent's model.
pub const MODEL_HEADER: &str = "x-openclaw-model";

fn bad(msg: impl Into<String>) -> ErrorEnvelope {
    ErrorEnvelope::new(ErrorCode::BadRequest, msg)
}

fn header<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The parsed request.
#[derive(Debug)]
struct Parsed {
    model_field: String,
    agent: String,
    session_key: String,
    text: String,
    images: Vec<ImageData>,
    stream: bool,
}

fn agent_of_model(model: &str) -> Result<Option<String>, ErrorEnvelope> {
    if model == "openclaw" || model.is_empty() {
        return Ok(None);
    }
    for prefix in ["openclaw:", "agent:"] {
        if let Some(id) = model.strip_prefix(prefix) {
            if id.trim().is_empty() {
                break;
            }
            return Ok(Some(id.trim().to_string()));
        }
    }
    Err(bad(format!("model {model:?} does not name an agent"))
        .with_hint("send model \"openclaw:<agentId>\" (or \"agent:<agentId>\", or \"openclaw\" for main); choose the backend model with the x-openclaw-model header")
        .with_detail("field", "model"))
}

/// A session key from the OpenAI `user` string: kept readable, limited to safe characters.
fn user_session(agent: &str, user: &str) -> String {
    let slug: String = user
        .trim()
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("agent:{agent}:openai-user:{slug}")
}

fn content_of(m: &Value) -> Result<(String, Vec<ImageData>), ErrorEnvelope> {
    match m.get("content") {
        Some(Value::String(s)) => Ok((s.clone(), Vec::new())),
        Some(Value::Array(parts)) => {
            let mut text = Vec::new();
            let mut images = Vec::new();
            for p in parts {
                match p.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(t) = p.get("text").and_then(Value::as_str) {
                            text.push(t.to_string());
                        }
                    }
                    Some("image_url") => {
                        let url = p
                            .pointer("/image_url/url")
                            .and_then(Value::as_str)
                            .unwrap_or("");
                        images.push(data_url(url)?);
                    }
                    other => {
                        return Err(bad(format!(
                            "message content part of type {other:?} is not supported"
                        ))
                        .with_hint("send text parts, and images as data: URLs"));
                    }
                }
            }
            Ok((text.join("\n"), images))
        }
        _ => Err(bad("the last user message has no content").with_detail("field", "messages")),
    }
}

fn data_url(url: &str) -> Result<ImageData, ErrorEnvelope> {
    let parsed = url.strip_prefix("data:").and_then(|rest| {
        let (meta, data) = rest.split_once(',')?;
        let mime = meta.strip_suffix(";base64")?;
        mime.starts_with("image/").then(|| ImageData {
            mime: mime.to_string(),
            data: data.to_string(),
        })
    });
    parsed.ok_or_else(|| {
        bad("an image_url must be a data:image/...;base64 URL (carapace fetches no URLs here)")
            .with_detail("field", "messages")
    })
}

fn parse(body: &[u8], req: &Request) -> Result<(Parsed, Option<String>), ErrorEnvelope> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| bad(format!("the request body is not valid JSON: {e}")))?;
    let model_field = match v.get("model") {
        None | Some(Value::Null) => "openclaw".to_string(),
        Some(Value::String(s)) => s.trim().to_string(),
        Some(_) => return Err(bad("\"model\" must be a string").with_detail("field", "model")),
    };
    let agent = match header(req, AGENT_HEADER) {
        Some(a) => a.to_string(),
        None => agent_of_model(&model_field)?.unwrap_or_else(|| "main".to_string()),
    };
    let agent = normalize_agent_id(&agent);
    let Some(Value::Array(messages)) = v.get("messages") else {
        return Err(bad("\"messages\" must be an array").with_detail("field", "messages"));
    };
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .ok_or_else(|| bad("\"messages\" has no user message").with_detail("field", "messages"))?;
    let (text, images) = content_of(last_user)?;
    let stream = match v.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("\"stream\" must be a boolean").with_detail("field", "stream")),
    };
    let session_key = match (
        header(req, SESSION_KEY_HEADER),
        v.get("user").and_then(Value::as_str),
    ) {
        (Some(k), _) => k.to_string(),
        (None, Some(u)) if !u.trim().is_empty() => user_session(&agent, u),
        _ => format!("agent:{agent}:openai:{}", uuid::Uuid::new_v4()),
    };
    Ok((
        Parsed {
            model_field,
            agent,
            session_key,
            text,
            images,
            stream,
        },
        header(req, MODEL_HEADER).map(str::to_string),
    ))
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn reply_text(r: &Reply) -> (String, Value) {
    match r {
        Reply::Turn(o) => (
            o.text.clone(),
            json!({"prompt_tokens": o.usage.input, "completion_tokens": o.usage.output,
                   "total_tokens": o.usage.input + o.usage.output}),
        ),
        Reply::Stopped { cancelled } => (
            if *cancelled {
                "Stopped."
            } else {
                "Nothing to stop."
            }
            .to_string(),
            json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}),
        ),
        Reply::Reset { .. } => (
            "Started a new session.".to_string(),
            json!({"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}),
        ),
    }
}

/// `POST /v1/chat/completions`.
pub(crate) async fn chat_completions(State(gw): State<Gateway>, req: Request) -> Response {
    let rid = request_id_of(&req);
    let Some(agent) = gw.agent() else {
        return error_response(&crate::server::no_agent(), &rid);
    };
    if !agent.config.file.gateway.chat_completions_enabled() {
        return error_response(
            &ErrorEnvelope::new(ErrorCode::NotFound, "POST /v1/chat/completions is disabled")
                .with_hint("set gateway.http.endpoints.chatCompletions.enabled to true"),
            &rid,
        );
    }
    let channel = header(&req, OPENCLAW_CHANNEL_HEADER).map(str::to_string);
    let limit = gw.limits().max_body_bytes;
    let (parts, body) = req.into_parts();
    let req = Request::from_parts(parts, Body::empty());
    let body = match read_body(body, limit).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return error_response(&too_large(limit), &rid),
        Err(BodyError::Other(r)) => return r.into_response(&rid),
    };
    let (p, model_override) = match parse(&body, &req) {
        Ok(p) => p,
        Err(e) => return error_response(&e, &rid),
    };
    let mut turn = TurnRequest::new(&p.session_key, &p.text);
    turn.agent_id = Some(p.agent.clone());
    turn.channel = channel;
    turn.images = p.images;
    turn.model = model_override;
    turn.stream = Some(p.stream);
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = now_secs();
    if !p.stream {
        return match agent.runtime.send(turn).await {
            Ok(r) => {
                let (text, usage) = reply_text(&r);
                json_response(
                    StatusCode::OK,
                    &json!({
                        "id": id, "object": "chat.completion", "created": created,
                        "model": p.model_field,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                     "finish_reason": "stop"}],
                        "usage": usage,
                    }),
                )
            }
            Err(e) => error_response(&e.to_envelope(), &rid),
        };
    }
    stream(agent, turn, id, created, p.model_field, rid.to_string())
}

fn chunk(id: &str, created: u64, model: &str, delta: Value, finish: Option<&str>) -> Bytes {
    let v = json!({
        "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    Bytes::from(format!("data: {v}\n\n"))
}

fn stream(
    agent: std::sync::Arc<crate::agent::AgentServices>,
    mut turn: TurnRequest,
    id: String,
    created: u64,
    model: String,
    rid: String,
) -> Response {
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<LiveEvent>();
    turn.events = Some(ev_tx);
    let (out_tx, out_rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let _ = out_tx
            .send(chunk(
                &id,
                created,
                &model,
                json!({"role": "assistant"}),
                None,
            ))
            .await;
        let run = agent.runtime.send(turn);
        tokio::pin!(run);
        let mut streamed = false;
        let result = loop {
            tokio::select! {
                r = &mut run => break r,
                Some(e) = ev_rx.recv() => {
                    if let LiveEvent::TextDelta { text } = e {
                        streamed = true;
                        let _ = out_tx.send(chunk(&id, created, &model, json!({"content": text}), None)).await;
                    }
                }
            }
        };
        // Deltas sent just before the turn ended.
        while let Ok(e) = ev_rx.try_recv() {
            if let LiveEvent::TextDelta { text } = e {
                streamed = true;
                let _ = out_tx
                    .send(chunk(&id, created, &model, json!({"content": text}), None))
                    .await;
            }
        }
        match result {
            Ok(r) => {
                let (text, _) = reply_text(&r);
                if !streamed && !text.is_empty() {
                    let _ = out_tx
                        .send(chunk(&id, created, &model, json!({"content": text}), None))
                        .await;
                }
                let _ = out_tx
                    .send(chunk(&id, created, &model, json!({}), Some("stop")))
                    .await;
            }
            Err(e) => {
                let mut env = e.to_envelope().with_detail("requestId", rid.as_str());
                env.message = env.message.chars().take(500).collect();
                let body = json!({"error": {"message": env.message, "type": "carapace_error",
                                            "code": env.code, "details": env.details}});
                let _ = out_tx.send(Bytes::from(format!("data: {body}\n\n"))).await;
            }
        }
        let _ = out_tx.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
    });
    let body = futures_util::stream::unfold(out_rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<Bytes, Infallible>(b), rx))
    });
    let mut r = Response::new(Body::from_stream(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}
