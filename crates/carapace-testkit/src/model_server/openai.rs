//! The OpenAI Chat Completions wire format: request rules and response shapes.
//!
//! Request rules (from the API reference): JSON body with known parameters only; `model` a
//! string; `messages` a non-empty array of `system` / `developer` / `user` / `assistant` /
//! `tool` messages with their content shapes (user parts `text` / `image_url`); an assistant
//! message with `tool_calls` (`id`, `type: "function"`, `function.name`, `function.arguments`
//! a JSON string) must be followed by one `tool` message per call, answering the ids in order,
//! before any other message; a `tool` message must answer such a call; `tools` entries are
//! `{type: "function", function: {name, description?, parameters}}` with a JSON Schema object;
//! `tool_choice` and `parallel_tool_calls` only with tools; `stream_options` only with
//! `stream: true`.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::schema::{check_parameters, tool_name_ok};
use super::{Answer, Seen, pieces};

const KNOWN: &[&str] = &[
    "model",
    "messages",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "n",
    "stop",
    "user",
    "seed",
    "response_format",
    "presence_penalty",
    "frequency_penalty",
    "logprobs",
    "top_logprobs",
    "logit_bias",
    "metadata",
    "store",
    "reasoning_effort",
    "modalities",
    "prediction",
    "service_tier",
    "audio",
    "web_search_options",
    "safety_identifier",
    "prompt_cache_key",
    "verbosity",
];

pub(crate) fn validate(headers: &BTreeMap<String, String>, body: &Value, raw: &str) -> Vec<String> {
    let mut p = Vec::new();
    if !headers
        .get("content-type")
        .is_some_and(|c| c.starts_with("application/json"))
    {
        p.push(format!(
            "Content-Type must be application/json, got {:?}",
            headers.get("content-type")
        ));
    }
    let Some(o) = body.as_object() else {
        p.push(format!("the body is not a JSON object: {:.200}", raw));
        return p;
    };
    for k in o.keys() {
        if !KNOWN.contains(&k.as_str()) {
            p.push(format!("Unrecognized request argument supplied: {k}"));
        }
    }
    if !o
        .get("model")
        .is_some_and(|m| m.as_str().is_some_and(|s| !s.is_empty()))
    {
        p.push("model must be a non-empty string".into());
    }
    let stream = match o.get("stream") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            p.push(format!("stream must be a boolean, got {v}"));
            false
        }
    };
    if let Some(so) = o.get("stream_options") {
        if !stream {
            p.push("stream_options is only allowed when stream is true".into());
        }
        if !so.is_object() {
            p.push("stream_options must be an object".into());
        }
    }
    for k in ["max_tokens", "max_completion_tokens"] {
        if let Some(v) = o.get(k)
            && !v.as_u64().is_some_and(|n| n > 0)
        {
            p.push(format!("{k} must be a positive integer, got {v}"));
        }
    }
    if o.contains_key("max_tokens") && o.contains_key("max_completion_tokens") {
        p.push("max_tokens and max_completion_tokens are mutually exclusive".into());
    }
    if let Some(n) = o.get("n")
        && n != &json!(1)
    {
        p.push(format!("n must be 1 for tool use, got {n}"));
    }
    let tool_names = check_tools(o.get("tools"), &mut p);
    if let Some(tc) = o.get("tool_choice") {
        if tool_names.is_empty() {
            p.push("tool_choice is only allowed when tools are specified".into());
        }
        match tc {
            Value::String(s) if ["none", "auto", "required"].contains(&s.as_str()) => {}
            Value::Object(c)
                if c.get("type") == Some(&json!("function"))
                    && c["function"]["name"]
                        .as_str()
                        .is_some_and(|n| tool_names.iter().any(|t| t == n)) => {}
            v => p.push(format!(
                "tool_choice {v} is not none/auto/required or a named offered function"
            )),
        }
    }
    if o.contains_key("parallel_tool_calls") && tool_names.is_empty() {
        p.push("parallel_tool_calls is only allowed when tools are specified".into());
    }
    match o.get("messages").and_then(Value::as_array) {
        Some(m) if !m.is_empty() => check_messages(m, &mut p),
        _ => p.push("messages must be a non-empty array".into()),
    }
    p
}

fn check_tools(tools: Option<&Value>, p: &mut Vec<String>) -> Vec<String> {
    let mut names = Vec::new();
    let Some(tools) = tools else { return names };
    let Some(arr) = tools.as_array() else {
        p.push("tools must be an array".into());
        return names;
    };
    if arr.is_empty() {
        p.push("tools must not be an empty array (omit it)".into());
    }
    for (i, t) in arr.iter().enumerate() {
        let path = format!("tools[{i}]");
        if t.get("type") != Some(&json!("function")) {
            p.push(format!("{path}.type must be \"function\""));
        }
        if let Some(o) = t.as_object() {
            for k in o.keys() {
                if k != "type" && k != "function" {
                    p.push(format!("{path}.{k}: unknown key"));
                }
            }
        }
        let f = &t["function"];
        let Some(fo) = f.as_object() else {
            p.push(format!("{path}.function must be an object"));
            continue;
        };
        for k in fo.keys() {
            if !["name", "description", "parameters", "strict"].contains(&k.as_str()) {
                p.push(format!("{path}.function.{k}: unknown key"));
            }
        }
        match f["name"].as_str() {
            Some(n) if tool_name_ok(n) => {
                if names.iter().any(|x| x == n) {
                    p.push(format!("{path}.function.name {n:?} is offered twice"));
                }
                names.push(n.to_string());
            }
            n => p.push(format!(
                "{path}.function.name {n:?} must match ^[a-zA-Z0-9_-]{{1,64}}$"
            )),
        }
        if let Some(d) = fo.get("description")
            && !d.is_string()
        {
            p.push(format!("{path}.function.description must be a string"));
        }
        if let Some(params) = fo.get("parameters") {
            check_parameters(params, &format!("{path}.function.parameters"), p);
        }
    }
    names
}

fn check_messages(msgs: &[Value], p: &mut Vec<String>) {
    // Ids of the last assistant message's tool calls not yet answered, in order.
    let mut pending: Vec<String> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let path = format!("messages[{i}]");
        let Some(o) = m.as_object() else {
            p.push(format!("{path} is not an object"));
            continue;
        };
        let role = o.get("role").and_then(Value::as_str).unwrap_or("");
        if role != "tool" && !pending.is_empty() {
            p.push(format!(
                "{path}: an assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'; not answered: {}",
                pending.join(", ")
            ));
            pending.clear();
        }
        let allowed: &[&str] = match role {
            "system" | "developer" => &["role", "content", "name"],
            "user" => &["role", "content", "name"],
            "assistant" => &["role", "content", "name", "tool_calls", "refusal", "audio"],
            "tool" => &["role", "content", "tool_call_id", "name"],
            r => {
                p.push(format!(
                    "{path}.role {r:?} is not system/developer/user/assistant/tool"
                ));
                continue;
            }
        };
        for k in o.keys() {
            if !allowed.contains(&k.as_str()) {
                p.push(format!("{path}.{k}: unknown key for a {role} message"));
            }
        }
        let content = o.get("content").unwrap_or(&Value::Null);
        match role {
            "system" | "developer" => text_content(content, &path, p, false),
            "user" => user_content(content, &path, p),
            "assistant" => {
                let calls = o.get("tool_calls");
                if content.is_null() {
                    if calls.is_none() {
                        p.push(format!(
                            "{path}: content is required unless tool_calls is set"
                        ));
                    }
                } else {
                    text_content(content, &path, p, calls.is_some());
                }
                if let Some(calls) = calls {
                    match calls.as_array() {
                        Some(a) if !a.is_empty() => {
                            for (j, c) in a.iter().enumerate() {
                                let cp = format!("{path}.tool_calls[{j}]");
                                let id = c["id"].as_str().unwrap_or("");
                                if id.is_empty() {
                                    p.push(format!("{cp}.id must be a non-empty string"));
                                }
                                if pending.iter().any(|x| x == id) {
                                    p.push(format!("{cp}.id {id:?} is used twice"));
                                }
                                pending.push(id.to_string());
                                if c["type"] != "function" {
                                    p.push(format!("{cp}.type must be \"function\""));
                                }
                                if !c["function"]["name"].as_str().is_some_and(tool_name_ok) {
                                    p.push(format!("{cp}.function.name is not a valid tool name"));
                                }
                                match c["function"]["arguments"].as_str() {
                                    Some(a) if serde_json::from_str::<Value>(a).is_ok_and(|v| v.is_object()) => {}
                                    a => p.push(format!(
                                        "{cp}.function.arguments must be a JSON object encoded as a string, got {a:?}"
                                    )),
                                }
                            }
                        }
                        _ => p.push(format!(
                            "{path}.tool_calls must be a non-empty array (omit it)"
                        )),
                    }
                }
            }
            "tool" => {
                let id = o.get("tool_call_id").and_then(Value::as_str).unwrap_or("");
                match pending.first() {
                    Some(first) if first == id => {
                        pending.remove(0);
                    }
                    Some(first) => p.push(format!(
                        "{path}: tool message answers {id:?} but the next unanswered tool call is {first:?} (answer them in order)"
                    )),
                    None => p.push(format!(
                        "{path}: messages with role 'tool' must be a response to a preceding message with 'tool_calls' (tool_call_id {id:?})"
                    )),
                }
                text_content(content, &path, p, false);
            }
            _ => {}
        }
    }
    if !pending.is_empty() {
        p.push(format!(
            "the last assistant message's tool calls are not answered: {}",
            pending.join(", ")
        ));
    }
}

/// A string, or an array of `{type: "text", text}` parts.
fn text_content(c: &Value, path: &str, p: &mut Vec<String>, empty_ok: bool) {
    match c {
        Value::String(s) => {
            if s.is_empty() && !empty_ok {
                p.push(format!("{path}.content must not be empty"));
            }
        }
        Value::Array(parts) => {
            for (i, part) in parts.iter().enumerate() {
                if part["type"] != "text" || !part["text"].is_string() {
                    p.push(format!(
                        "{path}.content[{i}] must be a text part {{type: \"text\", text}}"
                    ));
                }
            }
        }
        v => p.push(format!(
            "{path}.content must be a string or an array of text parts, got {v}"
        )),
    }
}

fn user_content(c: &Value, path: &str, p: &mut Vec<String>) {
    match c {
        Value::String(_) => {}
        Value::Array(parts) if !parts.is_empty() => {
            for (i, part) in parts.iter().enumerate() {
                let pp = format!("{path}.content[{i}]");
                match part["type"].as_str() {
                    Some("text") if part["text"].is_string() => {}
                    Some("image_url") => match part["image_url"]["url"].as_str() {
                        Some(u)
                            if u.starts_with("https://")
                                || u.starts_with("http://")
                                || (u.starts_with("data:image/") && u.contains(";base64,")) => {}
                        u => p.push(format!("{pp}.image_url.url must be an http(s) or data:image/...;base64 URL, got {u:?}")),
                    },
                    t => p.push(format!("{pp}: unsupported content part type {t:?}")),
                }
            }
        }
        v => p.push(format!(
            "{path}.content must be a string or a non-empty array of parts, got {v}"
        )),
    }
}

fn chunk(seen: &Seen, delta: Value, finish: Value) -> String {
    let v = json!({
        "id": format!("chatcmpl-{}", seen.index),
        "object": "chat.completion.chunk",
        "created": 1_700_000_000u64,
        "model": seen.model(),
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
    });
    format!("data: {v}\n\n")
}

pub(crate) fn stream_events(a: &Answer, seen: &Seen) -> Vec<String> {
    let mut out = vec![chunk(
        seen,
        json!({"role": "assistant", "content": ""}),
        Value::Null,
    )];
    if let Some(t) = &a.text {
        for piece in pieces(t, 3) {
            out.push(chunk(seen, json!({"content": piece}), Value::Null));
        }
    }
    for (i, (id, c)) in a.calls.iter().enumerate() {
        out.push(chunk(
            seen,
            json!({"tool_calls": [{"index": i, "id": id, "type": "function",
                "function": {"name": c.name, "arguments": ""}}]}),
            Value::Null,
        ));
        for piece in pieces(&c.arguments.to_string(), 3) {
            out.push(chunk(
                seen,
                json!({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}),
                Value::Null,
            ));
        }
    }
    let finish = if a.calls.is_empty() {
        "stop"
    } else {
        "tool_calls"
    };
    out.push(chunk(seen, json!({}), json!(finish)));
    if seen.body["stream_options"]["include_usage"] == json!(true) {
        let v = json!({
            "id": format!("chatcmpl-{}", seen.index),
            "object": "chat.completion.chunk",
            "created": 1_700_000_000u64,
            "model": seen.model(),
            "choices": [],
            "usage": usage(a),
        });
        out.push(format!("data: {v}\n\n"));
    }
    out.push("data: [DONE]\n\n".into());
    out
}

fn usage(a: &Answer) -> Value {
    json!({"prompt_tokens": a.input_tokens, "completion_tokens": a.output_tokens,
        "total_tokens": a.input_tokens + a.output_tokens})
}

pub(crate) fn response(a: &Answer, seen: &Seen) -> Value {
    let mut message = json!({"role": "assistant", "content": a.text, "refusal": null});
    if !a.calls.is_empty() {
        message["tool_calls"] = a
            .calls
            .iter()
            .map(|(id, c)| {
                json!({"id": id, "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments.to_string()}})
            })
            .collect();
    }
    json!({
        "id": format!("chatcmpl-{}", seen.index),
        "object": "chat.completion",
        "created": 1_700_000_000u64,
        "model": seen.model(),
        "choices": [{"index": 0, "message": message, "logprobs": null,
            "finish_reason": if a.calls.is_empty() { "stop" } else { "tool_calls" }}],
        "usage": usage(a),
    })
}
