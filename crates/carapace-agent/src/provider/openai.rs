//! OpenAI Chat Completions (`POST <baseUrl>/chat/completions`), streamed and not: OpenAI,
//! OpenRouter, vLLM, llama.cpp's server, Ollama's `/v1` and other compatible servers.
//!
//! Read leniently (see the module docs of `provider`): `role: null`, tool-call deltas that
//! repeat `id` and `name` or omit `index`, a `[DONE]` without `finish_reason`, `usage` in the
//! last chunk or nowhere.

use carapace_policy::models::{MaxTokensField, ModelDefinition, ProviderConfig};
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::http::{self, Outgoing};
use super::sse::SseEvent;
use super::{
    EventStream, FinishReason, ModelEvent, ModelRequest, Provider, ProviderError, SendFuture,
};
use crate::message::{ContentPart, Message, ToolChoice};

/// A client for one OpenAI-compatible model.
pub struct OpenAiProvider {
    id: String,
    url: String,
    key: Option<String>,
    headers: Vec<(String, String)>,
    model: ModelDefinition,
    client: reqwest::Client,
    secrets: Vec<String>,
    unset: Vec<String>,
}

impl OpenAiProvider {
    /// A client for model `m` of provider `p`.
    pub fn new(p: &ProviderConfig, m: &ModelDefinition, client: reqwest::Client) -> OpenAiProvider {
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
        OpenAiProvider {
            id: p.id.clone(),
            url: format!("{}/chat/completions", p.base_url),
            key,
            headers,
            model: m.clone(),
            client,
            secrets,
            unset,
        }
    }

    fn body(&self, req: &ModelRequest) -> Value {
        let mut messages = Vec::with_capacity(req.messages.len() + 1);
        if !req.system.is_empty() {
            messages.push(json!({"role": "system", "content": req.system}));
        }
        for m in &req.messages {
            match m {
                Message::User(parts) => messages.push(json!({
                    "role": "user",
                    "content": user_content(parts, self.model.accepts_images),
                })),
                Message::Assistant { text, tool_calls } => {
                    if text.is_empty() && tool_calls.is_empty() {
                        continue;
                    }
                    // An empty string, not null, beside tool calls: OpenAI takes both, but
                    // llama-cpp-python's server refuses null.
                    let mut msg = json!({"role": "assistant", "content": text});
                    if !tool_calls.is_empty() {
                        msg["tool_calls"] = tool_calls
                            .iter()
                            .map(|c| {
                                json!({"id": c.id, "type": "function",
                                    "function": {"name": c.name, "arguments": c.arguments.to_string()}})
                            })
                            .collect();
                    }
                    messages.push(msg);
                }
                Message::Tool {
                    call_id,
                    name,
                    content,
                    ..
                } => {
                    let mut msg =
                        json!({"role": "tool", "tool_call_id": call_id, "content": content});
                    if self.model.compat.requires_tool_result_name {
                        msg["name"] = json!(name);
                    }
                    messages.push(msg);
                }
            }
        }
        let mut body = json!({"model": req.model, "messages": messages});
        let limit_key = match self.model.compat.max_tokens_field {
            MaxTokensField::MaxTokens => "max_tokens",
            MaxTokensField::MaxCompletionTokens => "max_completion_tokens",
        };
        body[limit_key] = json!(req.max_tokens);
        if req.stream {
            body["stream"] = json!(true);
            if self.model.compat.supports_usage_in_streaming {
                body["stream_options"] = json!({"include_usage": true});
            }
        }
        if !req.tools.is_empty() && self.model.compat.supports_tools {
            body["tools"] = req
                .tools
                .iter()
                .map(|t| {
                    json!({"type": "function", "function": {
                        "name": t.name, "description": t.description, "parameters": t.parameters}})
                })
                .collect();
            match &req.tool_choice {
                ToolChoice::Auto => {}
                ToolChoice::None => body["tool_choice"] = json!("none"),
                ToolChoice::Required => body["tool_choice"] = json!("required"),
                ToolChoice::Tool(n) => {
                    body["tool_choice"] = json!({"type": "function", "function": {"name": n}});
                }
            }
        }
        body
    }
}

fn user_content(parts: &[ContentPart], images: bool) -> Value {
    let has_image = parts.iter().any(|p| matches!(p, ContentPart::Image { .. }));
    if !has_image || !images {
        let mut text: Vec<&str> = parts
            .iter()
            .filter_map(|p| match p {
                ContentPart::Text { text } => Some(text.as_str()),
                ContentPart::Image { .. } => None,
            })
            .collect();
        if has_image {
            text.push("[an image was attached, but this model does not accept images]");
        }
        let joined = text.join("\n");
        return Value::from(if joined.is_empty() {
            " ".to_string()
        } else {
            joined
        });
    }
    parts
        .iter()
        .map(|p| match p {
            ContentPart::Text { text } => json!({"type": "text", "text": text}),
            ContentPart::Image { image } => json!({"type": "image_url",
                "image_url": {"url": format!("data:{};base64,{}", image.mime, image.data)}}),
        })
        .collect()
}

impl Provider for OpenAiProvider {
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
            if let Some(k) = &self.key {
                headers.push(("authorization".into(), format!("Bearer {k}")));
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
        "stop" | "end_turn" => FinishReason::Stop,
        "tool_calls" | "function_call" => FinishReason::ToolCalls,
        "length" => FinishReason::Length,
        _ => FinishReason::Other,
    })
}

fn usage_event(u: &Value) -> Option<ModelEvent> {
    if !u.is_object() {
        return None;
    }
    Some(ModelEvent::Usage {
        input: u["prompt_tokens"].as_u64(),
        output: u["completion_tokens"].as_u64(),
    })
}

fn upstream_error(provider: &str, v: &Value) -> Option<ProviderError> {
    let e = v.get("error")?;
    let message = e["message"].as_str().unwrap_or("error").to_string();
    let status = e["code"].as_u64().and_then(|c| u16::try_from(c).ok());
    Some(match status {
        Some(s) if (400..600).contains(&s) => ProviderError::Http {
            provider: provider.to_string(),
            status: s,
            retry_after: None,
            message,
        },
        _ => ProviderError::Protocol {
            provider: provider.to_string(),
            message: format!("error in the answer: {message}"),
            truncated: true,
        },
    })
}

fn parse_whole(provider: &str, v: &Value) -> Result<Vec<ModelEvent>, ProviderError> {
    if let Some(e) = upstream_error(provider, v) {
        return Err(e);
    }
    let choice = &v["choices"][0];
    let Some(msg) = choice.get("message") else {
        return Err(ProviderError::Protocol {
            provider: provider.to_string(),
            message: "the answer has no choices[0].message".into(),
            truncated: false,
        });
    };
    let mut out = Vec::new();
    match &msg["content"] {
        Value::String(s) if !s.is_empty() => out.push(ModelEvent::TextDelta(s.clone())),
        Value::Array(parts) => {
            for p in parts {
                if let Some(t) = p["text"].as_str() {
                    out.push(ModelEvent::TextDelta(t.to_string()));
                }
            }
        }
        _ => {}
    }
    for (i, c) in msg["tool_calls"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        out.push(ModelEvent::ToolCallStart {
            index: i,
            id: c["id"].as_str().unwrap_or_default().to_string(),
            name: c["function"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        });
        let args = match &c["function"]["arguments"] {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        };
        out.push(ModelEvent::ToolCallDelta {
            index: i,
            arguments: args,
        });
    }
    if let Some(u) = usage_event(&v["usage"]) {
        out.push(u);
    }
    out.push(ModelEvent::Finish(
        finish_of(&choice["finish_reason"]).unwrap_or(FinishReason::Stop),
    ));
    Ok(out)
}

/// Highest tool-call `index` + 1 accepted in a stream: a larger one (a buggy or hostile
/// server) would make the index map allocate that many calls (`collect` refuses it too).
const MAX_CALLS: usize = super::MAX_TOOL_CALLS;

/// Per-stream state: which index an index-less tool-call delta belongs to.
#[derive(Default)]
struct Calls {
    ids: Vec<String>,
}

impl Calls {
    /// The call's index, `None` when the server's `index` is beyond [`MAX_CALLS`].
    fn index_of(&mut self, pos: usize, c: &Value) -> Option<usize> {
        if let Some(i) = c["index"].as_u64() {
            let i = usize::try_from(i).ok().filter(|i| *i < MAX_CALLS)?;
            if let Some(id) = c["id"].as_str() {
                while self.ids.len() <= i {
                    self.ids.push(String::new());
                }
                self.ids[i] = id.to_string();
            }
            return Some(i);
        }
        // No index (Ollama): a new id is a new call; no id continues the last one.
        Some(match c["id"].as_str() {
            Some(id) if !id.is_empty() => match self.ids.iter().position(|x| x == id) {
                Some(i) => i,
                None => {
                    self.ids.push(id.to_string());
                    self.ids.len() - 1
                }
            },
            _ => self
                .ids
                .len()
                .saturating_sub(1)
                .max(pos.min(self.ids.len())),
        })
    }
}

/// Stream state: the tool-call index map and the finish reason seen so far.
#[derive(Default)]
struct St {
    calls: Calls,
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
                    // The input ended: complete if a finish_reason came (some servers send no
                    // [DONE]); else the stream broke off, which `collect` reports.
                    None => {
                        ended = true;
                        if let Some(f) = st.finish {
                            out.push(Ok(ModelEvent::Finish(f)));
                        }
                    }
                    Some(Err(e)) => {
                        ended = true;
                        out.push(Err(e));
                    }
                    Some(Ok(ev)) if ev.data.trim() == "[DONE]" => {
                        ended = true;
                        out.push(Ok(ModelEvent::Finish(
                            st.finish.unwrap_or(FinishReason::Stop),
                        )));
                    }
                    Some(Ok(ev)) => match serde_json::from_str::<Value>(&ev.data) {
                        Err(e) => {
                            ended = true;
                            out.push(Err(ProviderError::Protocol {
                                provider: provider.clone(),
                                message: format!("a stream chunk is not JSON ({e})"),
                                truncated: false,
                            }));
                        }
                        Ok(v) => match upstream_error(&provider, &v) {
                            Some(e) => {
                                ended = true;
                                out.push(Err(e));
                            }
                            None => ended = chunk_events(&provider, &v, &mut st, &mut out),
                        },
                    },
                }
                Some((futures_util::stream::iter(out), (events, st, ended)))
            }
        },
    )
    .flatten();
    Box::pin(s)
}

/// Handles one chunk; returns true when the stream is over (a refused chunk).
fn chunk_events(
    provider: &str,
    v: &Value,
    st: &mut St,
    out: &mut Vec<Result<ModelEvent, ProviderError>>,
) -> bool {
    if let Some(choice) = v["choices"].get(0) {
        let delta = &choice["delta"];
        if let Some(t) = delta["content"].as_str()
            && !t.is_empty()
        {
            out.push(Ok(ModelEvent::TextDelta(t.to_string())));
        }
        for (pos, c) in delta["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            let Some(index) = st.calls.index_of(pos, c) else {
                out.push(Err(ProviderError::Protocol {
                    provider: provider.to_string(),
                    message: format!("a tool-call index is {MAX_CALLS} or more"),
                    truncated: false,
                }));
                return true;
            };
            let id = c["id"].as_str().unwrap_or_default();
            let name = c["function"]["name"].as_str().unwrap_or_default();
            if !id.is_empty() || !name.is_empty() {
                out.push(Ok(ModelEvent::ToolCallStart {
                    index,
                    id: id.to_string(),
                    name: name.to_string(),
                }));
            }
            if let Some(a) = c["function"]["arguments"].as_str()
                && !a.is_empty()
            {
                out.push(Ok(ModelEvent::ToolCallDelta {
                    index,
                    arguments: a.to_string(),
                }));
            }
        }
        if let Some(f) = finish_of(&choice["finish_reason"]) {
            st.finish = Some(f);
        }
    }
    if let Some(u) = usage_event(&v["usage"]) {
        out.push(Ok(u));
    }
    false
}
