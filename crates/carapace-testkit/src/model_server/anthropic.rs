//! The Anthropic Messages wire format: request rules and response shapes.
//!
//! Request rules (from the API reference): `anthropic-version` header; JSON body with known
//! parameters only; `model`; `max_tokens` (required, positive); `system` a string or text
//! blocks; `messages` non-empty, roles `user` / `assistant` only, starting with `user`; content
//! a non-empty string or non-empty array of blocks (`text` non-empty, `image` with a base64 or
//! url source, `tool_use` {`id`, `name`, `input` object} from the assistant, `tool_result`
//! {`tool_use_id`, `content`?, `is_error`?} from the user); every assistant `tool_use` must be
//! answered by a `tool_result` in the **next** message, which is a user message whose
//! `tool_result` blocks come first; a `tool_result` must answer a `tool_use` of the message
//! just before. `tools`: `{name, description?, input_schema}` with a JSON Schema object.
//!
//! One rule is stricter than api.anthropic.com: roles must alternate. Anthropic merges
//! consecutive same-role messages, but Anthropic-compatible servers (DeepSeek, MiniMax…)
//! reject them, so carapace must never send them.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::schema::{check_parameters, tool_name_ok};
use super::{Answer, Seen, pieces};

const KNOWN: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "tools",
    "tool_choice",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "metadata",
    "thinking",
    "service_tier",
    "container",
    "mcp_servers",
];

pub(crate) fn validate(headers: &BTreeMap<String, String>, body: &Value, raw: &str) -> Vec<String> {
    let mut p = Vec::new();
    match headers.get("anthropic-version") {
        Some(v) if v == "2023-06-01" || v == "2023-01-01" => {}
        v => p.push(format!(
            "anthropic-version header must be set (2023-06-01), got {v:?}"
        )),
    }
    if !headers
        .get("content-type")
        .is_some_and(|c| c.starts_with("application/json"))
    {
        p.push(format!(
            "content-type must be application/json, got {:?}",
            headers.get("content-type")
        ));
    }
    let Some(o) = body.as_object() else {
        p.push(format!("the body is not a JSON object: {:.200}", raw));
        return p;
    };
    for k in o.keys() {
        if !KNOWN.contains(&k.as_str()) {
            p.push(format!("{k}: Extra inputs are not permitted"));
        }
    }
    if !o
        .get("model")
        .is_some_and(|m| m.as_str().is_some_and(|s| !s.is_empty()))
    {
        p.push("model: field required (a non-empty string)".into());
    }
    if !o
        .get("max_tokens")
        .is_some_and(|m| m.as_u64().is_some_and(|n| n > 0))
    {
        p.push("max_tokens: field required (a positive integer)".into());
    }
    if let Some(s) = o.get("stream")
        && !s.is_boolean()
    {
        p.push("stream must be a boolean".into());
    }
    match o.get("system") {
        None | Some(Value::String(_)) => {}
        Some(Value::Array(blocks)) => {
            for (i, b) in blocks.iter().enumerate() {
                if b["type"] != "text" || !b["text"].as_str().is_some_and(|t| !t.is_empty()) {
                    p.push(format!("system[{i}] must be a non-empty text block"));
                }
            }
        }
        Some(v) => p.push(format!("system must be a string or text blocks, got {v}")),
    }
    let names = check_tools(o.get("tools"), &mut p);
    if let Some(tc) = o.get("tool_choice") {
        match tc["type"].as_str() {
            Some("auto" | "any" | "none") => {}
            Some("tool")
                if tc["name"]
                    .as_str()
                    .is_some_and(|n| names.iter().any(|x| x == n)) => {}
            _ => p.push(format!(
                "tool_choice {tc} is not auto/any/none or a named offered tool"
            )),
        }
        if names.is_empty() && tc["type"] != "none" {
            p.push("tool_choice requires tools".into());
        }
    }
    match o.get("messages").and_then(Value::as_array) {
        Some(m) if !m.is_empty() => check_messages(m, &mut p),
        _ => p.push("messages: must be a non-empty array".into()),
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
    for (i, t) in arr.iter().enumerate() {
        let path = format!("tools[{i}]");
        let Some(o) = t.as_object() else {
            p.push(format!("{path} must be an object"));
            continue;
        };
        for k in o.keys() {
            if ![
                "name",
                "description",
                "input_schema",
                "cache_control",
                "type",
            ]
            .contains(&k.as_str())
            {
                p.push(format!("{path}.{k}: Extra inputs are not permitted"));
            }
        }
        match o.get("name").and_then(Value::as_str) {
            Some(n) if tool_name_ok(n) => {
                if names.iter().any(|x| x == n) {
                    p.push(format!("{path}.name {n:?}: tool names must be unique"));
                }
                names.push(n.to_string());
            }
            n => p.push(format!(
                "{path}.name {n:?} must match ^[a-zA-Z0-9_-]{{1,64}}$"
            )),
        }
        match o.get("input_schema") {
            Some(s) => check_parameters(s, &format!("{path}.input_schema"), p),
            None => p.push(format!("{path}.input_schema: field required")),
        }
    }
    names
}

fn check_messages(msgs: &[Value], p: &mut Vec<String>) {
    let mut prev_role = "";
    // tool_use ids of the previous (assistant) message that the next message must answer.
    let mut to_answer: Vec<String> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let path = format!("messages[{i}]");
        let Some(o) = m.as_object() else {
            p.push(format!("{path} is not an object"));
            continue;
        };
        for k in o.keys() {
            if k != "role" && k != "content" {
                p.push(format!("{path}.{k}: Extra inputs are not permitted"));
            }
        }
        let role = o.get("role").and_then(Value::as_str).unwrap_or("");
        if role != "user" && role != "assistant" {
            p.push(format!("{path}.role {role:?} must be user or assistant (the system prompt goes in `system`)"));
            continue;
        }
        if i == 0 && role != "user" {
            p.push("messages[0] must be a user message".into());
        }
        if role == prev_role {
            p.push(format!(
                "{path}: roles must alternate (two {role} messages in a row)"
            ));
        }
        let blocks: Vec<Value> = match o.get("content") {
            Some(Value::String(s)) => {
                if s.is_empty() {
                    p.push(format!("{path}.content must not be empty"));
                }
                vec![json!({"type": "text", "text": s})]
            }
            Some(Value::Array(a)) if !a.is_empty() => a.clone(),
            c => {
                p.push(format!(
                    "{path}.content must be a non-empty string or array of blocks, got {c:?}"
                ));
                Vec::new()
            }
        };
        let mut answered: Vec<String> = Vec::new();
        let mut seen_other = false;
        let mut uses: Vec<String> = Vec::new();
        for (j, b) in blocks.iter().enumerate() {
            let bp = format!("{path}.content[{j}]");
            match (role, b["type"].as_str()) {
                (_, Some("text")) => {
                    if !b["text"].as_str().is_some_and(|t| !t.is_empty()) {
                        p.push(format!("{bp}: text content blocks must be non-empty"));
                    }
                    seen_other = true;
                }
                ("user", Some("image")) => {
                    check_image(b, &bp, p);
                    seen_other = true;
                }
                ("assistant", Some("tool_use")) => {
                    let id = b["id"].as_str().unwrap_or("");
                    if id.is_empty() {
                        p.push(format!("{bp}.id is required"));
                    }
                    if uses.iter().any(|x| x == id) {
                        p.push(format!("{bp}.id {id:?} is used twice"));
                    }
                    uses.push(id.to_string());
                    if !b["name"].as_str().is_some_and(tool_name_ok) {
                        p.push(format!("{bp}.name is not a valid tool name"));
                    }
                    if !b["input"].is_object() {
                        p.push(format!("{bp}.input must be an object"));
                    }
                }
                ("user", Some("tool_result")) => {
                    if seen_other {
                        p.push(format!("{bp}: tool_result blocks must come FIRST in the content array, before any text"));
                    }
                    let id = b["tool_use_id"].as_str().unwrap_or("").to_string();
                    if !to_answer.contains(&id) {
                        p.push(format!(
                            "{bp}: unexpected `tool_use_id` {id:?} in `tool_result` blocks: each tool_result must have a corresponding `tool_use` block in the previous message"
                        ));
                    }
                    if answered.contains(&id) {
                        p.push(format!("{bp}: tool_use_id {id:?} is answered twice"));
                    }
                    answered.push(id);
                    if let Some(e) = b.get("is_error")
                        && !e.is_boolean()
                    {
                        p.push(format!("{bp}.is_error must be a boolean"));
                    }
                    match b.get("content") {
                        None | Some(Value::String(_)) => {}
                        Some(Value::Array(parts)) => {
                            for (k, part) in parts.iter().enumerate() {
                                match part["type"].as_str() {
                                    Some("text") if part["text"].as_str().is_some_and(|t| !t.is_empty()) => {}
                                    Some("image") => check_image(part, &format!("{bp}.content[{k}]"), p),
                                    _ => p.push(format!("{bp}.content[{k}] must be a non-empty text or an image block")),
                                }
                            }
                        }
                        Some(v) => {
                            p.push(format!("{bp}.content must be a string or blocks, got {v}"))
                        }
                    }
                }
                (r, t) => p.push(format!(
                    "{bp}: block type {t:?} is not allowed in a {r} message"
                )),
            }
        }
        if !to_answer.is_empty() {
            let missing: Vec<&String> = to_answer
                .iter()
                .filter(|id| !answered.contains(id))
                .collect();
            if role != "user" || !missing.is_empty() {
                p.push(format!(
                    "{path}: `tool_use` ids were found without `tool_result` blocks immediately after: {}. Each `tool_use` block must have a corresponding `tool_result` block in the next message",
                    missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                ));
            } else if answered != to_answer {
                p.push(format!(
                    "{path}: tool_result blocks must answer the tool_use blocks in order"
                ));
            }
        } else if !answered.is_empty() && role == "user" && prev_role != "assistant" {
            p.push(format!(
                "{path}: tool_result without a preceding assistant tool_use"
            ));
        }
        to_answer = if role == "assistant" {
            uses
        } else {
            Vec::new()
        };
        prev_role = if role == "user" { "user" } else { "assistant" };
    }
    if !to_answer.is_empty() {
        p.push(format!(
            "the last assistant message has tool_use blocks without results: {}",
            to_answer.join(", ")
        ));
    }
}

fn check_image(b: &Value, path: &str, p: &mut Vec<String>) {
    let s = &b["source"];
    match s["type"].as_str() {
        Some("base64") => {
            if !s["media_type"].as_str().is_some_and(|m| {
                ["image/jpeg", "image/png", "image/gif", "image/webp"].contains(&m)
            }) {
                p.push(format!(
                    "{path}.source.media_type must be image/jpeg, png, gif or webp"
                ));
            }
            if !s["data"]
                .as_str()
                .is_some_and(|d| !d.is_empty() && !d.starts_with("data:"))
            {
                p.push(format!(
                    "{path}.source.data must be bare base64 (no data: prefix)"
                ));
            }
        }
        Some("url") if s["url"].is_string() => {}
        _ => p.push(format!(
            "{path}.source must be {{type: base64, media_type, data}} or {{type: url, url}}"
        )),
    }
}

fn event(name: &str, data: Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

pub(crate) fn stream_events(a: &Answer, seen: &Seen) -> Vec<String> {
    let mut out = vec![event(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": format!("msg_{}", seen.index), "type": "message", "role": "assistant",
            "content": [], "model": seen.model(), "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": a.input_tokens, "output_tokens": 1}}}),
    )];
    let mut index = 0;
    if let Some(t) = &a.text {
        out.push(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}),
        ));
        out.push(event("ping", json!({"type": "ping"})));
        for piece in pieces(t, 3) {
            out.push(event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}),
            ));
        }
        out.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    for (id, c) in &a.calls {
        out.push(event(
            "content_block_start",
            json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": id, "name": c.name, "input": {}}}),
        ));
        for piece in pieces(&c.arguments.to_string(), 3) {
            out.push(event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": piece}}),
            ));
        }
        out.push(event(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    out.push(event(
        "message_delta",
        json!({"type": "message_delta",
            "delta": {"stop_reason": if a.calls.is_empty() { "end_turn" } else { "tool_use" }, "stop_sequence": null},
            "usage": {"output_tokens": a.output_tokens}}),
    ));
    out.push(event("message_stop", json!({"type": "message_stop"})));
    out
}

pub(crate) fn response(a: &Answer, seen: &Seen) -> Value {
    let mut content = Vec::new();
    if let Some(t) = &a.text {
        content.push(json!({"type": "text", "text": t}));
    }
    for (id, c) in &a.calls {
        content.push(json!({"type": "tool_use", "id": id, "name": c.name, "input": c.arguments}));
    }
    json!({
        "id": format!("msg_{}", seen.index),
        "type": "message",
        "role": "assistant",
        "model": seen.model(),
        "content": content,
        "stop_reason": if a.calls.is_empty() { "end_turn" } else { "tool_use" },
        "stop_sequence": null,
        "usage": {"input_tokens": a.input_tokens, "output_tokens": a.output_tokens},
    })
}
