//! The Anthropic Messages API (`POST <baseUrl>/v1/messages`, `x-api-key`,
//! `anthropic-version: 2023-06-01`), streamed and not.
//!
//! The conversation is laid out so roles strictly alternate (Anthropic merges consecutive
//! same-role turns, compatible servers reject them): consecutive tool results become one user
//! message of `tool_result` blocks, and a user message right after tool results joins that
//! message, after the results (`tool_result` blocks must come first).

use carapace_policy::models::{ModelDefinition, ProviderConfig};
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::http::{self, Outgoing};
use super::sse::SseEvent;
use super::{
    EventStream, FinishReason, ModelEvent, ModelRequest, Provider, ProviderError, SendFuture,
};
use crate::message::{ContentPart, Message, ToolChoice};

/// The API version carapace speaks.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// A client for one Anthropic-compatible model.
pub struct AnthropicProvider {
    id: String,
    url: String,
    key: Option<String>,
    bearer: bool,
    headers: Vec<(String, String)>,
    model: ModelDefinition,
    client: reqwest::Client,
    secrets: Vec<String>,
    unset: Vec<String>,
}

impl AnthropicProvider {
    /// A client for model `m` of provider `p`.
    pub fn new(
        p: &ProviderConfig,
        m: &ModelDefinition,
        client: reqwest::Client,
    ) -> AnthropicProvider {
        let mut unset = Vec::new();
        let key = match &p.api_key {
            Some(k) => match k.expose() {
                Some(v) => Some(v.to_string()),
                None => {
                    unset.extend(k.env_refs());
                    None
                }
            },
            None => None,
        };
        let mut headers = Vec::new();
        for (name, v) in p.headers.iter().chain(m.headers.iter()) {
            match v.expose() {
                Some(val) => headers.push((name.clone(), val.to_string())),
                None => unset.extend(v.env_refs()),
            }
        }
        let mut secrets: Vec<String> = key.iter().cloned().collect();
        secrets.extend(headers.iter().map(|(_, v)| v.clone()));
        let url = if p.base_url.ends_with("/v1") {
            format!("{}/messages", p.base_url)
        } else {
            format!("{}/v1/messages", p.base_url)
        };
        AnthropicProvider {
            id: p.id.clone(),
            url,
            key,
            bearer: p.auth_header,
            headers,
            model: m.clone(),
            client,
            secrets,
            unset,
        }
    }

    fn body(&self, req: &ModelRequest) -> Value {
        let mut body = json!({
            "model": req.model,
            "max_tokens": req.max_tokens,
            "messages": messages(&req.messages, self.model.accepts_images),
        });
        if !req.system.is_empty() {
            body["system"] = json!(req.system);
        }
        if req.stream {
            body["stream"] = json!(true);
        }
        if !req.tools.is_empty() && self.model.compat.supports_tools {
            body["tools"] = req
                .tools
                .iter()
                .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
                .collect();
            match &req.tool_choice {
                ToolChoice::Auto => {}
                ToolChoice::None => body["tool_choice"] = json!({"type": "none"}),
                ToolChoice::Required => body["tool_choice"] = json!({"type": "any"}),
                ToolChoice::Tool(n) => body["tool_choice"] = json!({"type": "tool", "name": n}),
            }
        }
        body
    }
}

/// Lays the conversation out as alternating user / assistant messages of blocks.
fn messages(msgs: &[Message], images: bool) -> Value {
    let mut out: Vec<(String, Vec<Value>)> = Vec::new();
    let mut push = |role: &str, blocks: Vec<Value>| {
        if blocks.is_empty() {
            return;
        }
        match out.last_mut() {
            Some((r, b)) if r == role => b.extend(blocks),
            _ => out.push((role.to_string(), blocks)),
        }
    };
    for m in msgs {
        match m {
            Message::User(parts) => {
                let mut blocks = Vec::new();
                let mut dropped_image = false;
                for p in parts {
                    match p {
                        ContentPart::Text { text } if !text.is_empty() => {
                            blocks.push(json!({"type": "text", "text": text}));
                        }
                        ContentPart::Text { .. } => {}
                        ContentPart::Image { image } if images => blocks.push(json!({"type": "image",
                            "source": {"type": "base64", "media_type": image.mime, "data": image.data}})),
                        ContentPart::Image { .. } => dropped_image = true,
                    }
                }
                if dropped_image {
                    blocks.push(json!({"type": "text",
                        "text": "[an image was attached, but this model does not accept images]"}));
                }
                if blocks.is_empty() {
                    blocks.push(json!({"type": "text", "text": "(empty message)"}));
                }
                push("user", blocks);
            }
            Message::Assistant { text, tool_calls } => {
                let mut blocks = Vec::new();
                if !text.is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for c in tool_calls {
                    blocks.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": c.arguments}));
                }
                push("assistant", blocks);
            }
            Message::Tool {
                call_id,
                content,
                is_error,
                ..
            } => {
                let mut b =
                    json!({"type": "tool_result", "tool_use_id": call_id, "content": content});
                if *is_error {
                    b["is_error"] = json!(true);
                }
                push("user", vec![b]);
            }
        }
    }
    // The first message must be the user's.
    if out.first().is_some_and(|(r, _)| r == "assistant") {
        out.insert(
            0,
            (
                "user".into(),
                vec![json!({"type": "text", "text": "(earlier conversation omitted)"})],
            ),
        );
    }
    // tool_result blocks first within a user message (a user text may have been merged in
    // before results when a turn was interrupted).
    for (role, blocks) in &mut out {
        if role == "user" {
            blocks.sort_by_key(|b| b["type"] != "tool_result");
        }
    }
    out.into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect()
}

impl Provider for AnthropicProvider {
    fn id(&self) -> &str {
        &self.id
    }

    fn send<'a>(&'a self, req: &'a ModelRequest) -> SendFuture<'a> {
        Box::pin(async move {
            if !self.unset.is_empty() {
                return Err(ProviderError::NotConfigured {
                    message: format!(
                        "provider {} needs {}, which is not set",
                        self.id,
                        self.unset
                            .iter()
                            .map(|v| format!("${{{v}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
            let mut headers = self.headers.clone();
            headers.push(("anthropic-version".into(), ANTHROPIC_VERSION.into()));
            if let Some(k) = &self.key {
                if self.bearer {
                    headers.push(("authorization".into(), format!("Bearer {k}")));
                } else {
                    headers.push(("x-api-key".into(), k.clone()));
                }
            }
            if req.stream {
                headers.push(("accept".into(), "text/event-stream".into()));
            }
            let resp = http::post(Outgoing {
                provider: &self.id,
                client: &self.client,
                url: self.url.clone(),
                headers,
                body: self.body(req),
                secrets: &self.secrets,
            })
            .await?;
            if req.stream {
                Ok(stream(self.id.clone(), resp, self.secrets.clone()))
            } else {
                let v = http::json_body(&self.id, resp, &self.secrets).await?;
                Ok(http::ready(parse_whole(&self.id, &v)?))
            }
        })
    }
}

fn finish_of(v: &Value) -> Option<FinishReason> {
    Some(match v.as_str()? {
        "end_turn" | "stop_sequence" => FinishReason::Stop,
        "tool_use" => FinishReason::ToolCalls,
        "max_tokens" => FinishReason::Length,
        _ => FinishReason::Other,
    })
}

fn error_event(provider: &str, v: &Value) -> ProviderError {
    let kind = v["error"]["type"].as_str().unwrap_or("");
    let message = v["error"]["message"]
        .as_str()
        .unwrap_or("error")
        .to_string();
    let status = match kind {
        "overloaded_error" => Some(529),
        "api_error" => Some(500),
        "rate_limit_error" => Some(429),
        "authentication_error" => Some(401),
        "permission_error" => Some(403),
        "invalid_request_error" => Some(400),
        _ => None,
    };
    match status {
        Some(s) => ProviderError::Http {
            provider: provider.to_string(),
            status: s,
            retry_after: None,
            message,
        },
        None => ProviderError::Protocol {
            provider: provider.to_string(),
            message,
            truncated: true,
        },
    }
}

fn parse_whole(provider: &str, v: &Value) -> Result<Vec<ModelEvent>, ProviderError> {
    if v["type"] == "error" {
        return Err(error_event(provider, v));
    }
    let Some(content) = v["content"].as_array() else {
        return Err(ProviderError::Protocol {
            provider: provider.to_string(),
            message: "the answer has no content array".into(),
            truncated: false,
        });
    };
    let mut out = Vec::new();
    let mut tool = 0;
    for b in content {
        match b["type"].as_str() {
            Some("text") => {
                if let Some(t) = b["text"].as_str() {
                    out.push(ModelEvent::TextDelta(t.to_string()));
                }
            }
            Some("tool_use") => {
                out.push(ModelEvent::ToolCallStart {
                    index: tool,
                    id: b["id"].as_str().unwrap_or_default().to_string(),
                    name: b["name"].as_str().unwrap_or_default().to_string(),
                });
                out.push(ModelEvent::ToolCallDelta {
                    index: tool,
                    arguments: b["input"].to_string(),
                });
                tool += 1;
            }
            _ => {}
        }
    }
    out.push(ModelEvent::Usage {
        input: v["usage"]["input_tokens"].as_u64(),
        output: v["usage"]["output_tokens"].as_u64(),
    });
    out.push(ModelEvent::Finish(
        finish_of(&v["stop_reason"]).unwrap_or(FinishReason::Stop),
    ));
    Ok(out)
}

/// Stream state: block index → tool-call index, and the stop reason.
#[derive(Default)]
struct St {
    tools: Vec<(u64, usize)>,
    finish: Option<FinishReason>,
}

fn stream(provider: String, resp: reqwest::Response, secrets: Vec<String>) -> EventStream {
    let events = http::sse_stream(provider.clone(), resp, secrets);
    decode(provider, events)
}

/// Decodes SSE events into model events (the streaming half of the client, also the fuzzing
/// entry's).
pub(crate) fn decode<S>(provider: String, events: S) -> EventStream
where
    S: futures_util::Stream<Item = Result<SseEvent, ProviderError>> + Send + 'static,
{
    let events = Box::pin(events);
    let s = futures_util::stream::unfold(
        (events, St::default(), false),
        move |(mut events, mut st, ended)| {
            let provider = provider.clone();
            async move {
                if ended {
                    return None;
                }
                let mut out: Vec<Result<ModelEvent, ProviderError>> = Vec::new();
                let ended;
                match events.next().await {
                    // No message_stop: the stream broke off (`collect` reports it).
                    None => ended = true,
                    Some(Err(e)) => {
                        ended = true;
                        out.push(Err(e));
                    }
                    Some(Ok(ev)) => match serde_json::from_str::<Value>(&ev.data) {
                        Err(e) => {
                            ended = true;
                            out.push(Err(ProviderError::Protocol {
                                provider: provider.clone(),
                                message: format!("a stream event is not JSON ({e})"),
                                truncated: false,
                            }));
                        }
                        Ok(v) => {
                            let kind = v["type"].as_str().unwrap_or(ev.event.as_str()).to_string();
                            ended = event_into(&provider, &kind, &v, &mut st, &mut out);
                        }
                    },
                }
                Some((futures_util::stream::iter(out), (events, st, ended)))
            }
        },
    )
    .flatten();
    Box::pin(s)
}

/// Handles one event; returns true when the stream is over.
fn event_into(
    provider: &str,
    kind: &str,
    v: &Value,
    st: &mut St,
    out: &mut Vec<Result<ModelEvent, ProviderError>>,
) -> bool {
    match kind {
        "message_start" => {
            let u = &v["message"]["usage"];
            out.push(Ok(ModelEvent::Usage {
                input: u["input_tokens"].as_u64(),
                output: u["output_tokens"].as_u64(),
            }));
        }
        "content_block_start" => {
            let b = &v["content_block"];
            let idx = v["index"].as_u64().unwrap_or(0);
            match b["type"].as_str() {
                Some("text") => {
                    if let Some(t) = b["text"].as_str()
                        && !t.is_empty()
                    {
                        out.push(Ok(ModelEvent::TextDelta(t.to_string())));
                    }
                }
                Some("tool_use") => {
                    let tool = st.tools.len();
                    st.tools.push((idx, tool));
                    out.push(Ok(ModelEvent::ToolCallStart {
                        index: tool,
                        id: b["id"].as_str().unwrap_or_default().to_string(),
                        name: b["name"].as_str().unwrap_or_default().to_string(),
                    }));
                    // A non-empty initial input (rare) is part of the arguments.
                    if b["input"].as_object().is_some_and(|o| !o.is_empty()) {
                        out.push(Ok(ModelEvent::ToolCallDelta {
                            index: tool,
                            arguments: b["input"].to_string(),
                        }));
                    }
                }
                _ => {}
            }
        }
        "content_block_delta" => {
            let d = &v["delta"];
            let idx = v["index"].as_u64().unwrap_or(0);
            match d["type"].as_str() {
                Some("text_delta") => {
                    if let Some(t) = d["text"].as_str() {
                        out.push(Ok(ModelEvent::TextDelta(t.to_string())));
                    }
                }
                Some("input_json_delta") => {
                    if let Some((_, tool)) = st.tools.iter().find(|(b, _)| *b == idx) {
                        out.push(Ok(ModelEvent::ToolCallDelta {
                            index: *tool,
                            arguments: d["partial_json"].as_str().unwrap_or_default().to_string(),
                        }));
                    }
                }
                _ => {}
            }
        }
        "message_delta" => {
            if let Some(f) = finish_of(&v["delta"]["stop_reason"]) {
                st.finish = Some(f);
            }
            if let Some(o) = v["usage"]["output_tokens"].as_u64() {
                out.push(Ok(ModelEvent::Usage {
                    input: v["usage"]["input_tokens"].as_u64(),
                    output: Some(o),
                }));
            }
        }
        "message_stop" => {
            out.push(Ok(ModelEvent::Finish(
                st.finish.unwrap_or(FinishReason::Stop),
            )));
            return true;
        }
        "error" => {
            out.push(Err(error_event(provider, v)));
            return true;
        }
        _ => {}
    }
    false
}
