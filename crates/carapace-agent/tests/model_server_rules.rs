//! The scripted model servers themselves: raw requests that break the public wire formats are
//! refused (400, as the real APIs do) and recorded as violations with a message naming the rule;
//! a server dropped with violations fails the test; a wrong key is a 401, not a violation; the
//! streamed answers have each API's chunk shapes. These guard the guards the agent tests rely on.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use carapace_testkit::model_server::{Api, ModelServer, Reply, call};
use serde_json::{Value, json};

const KEY: &str = "k-123456";

async fn post(
    srv: &ModelServer,
    api: Api,
    body: Value,
    auth: bool,
    version: bool,
) -> (u16, String) {
    let c = reqwest::Client::new();
    let url = match api {
        Api::OpenAi => format!("{}/chat/completions", srv.base_url()),
        Api::Anthropic => format!("{}/v1/messages", srv.base_url()),
    };
    let mut rb = c.post(url).json(&body);
    if auth {
        rb = match api {
            Api::OpenAi => rb.header("authorization", format!("Bearer {KEY}")),
            Api::Anthropic => rb.header("x-api-key", KEY),
        };
    }
    if version && api == Api::Anthropic {
        rb = rb.header("anthropic-version", "2023-06-01");
    }
    let r = rb.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Sends `body`; returns the violations it produced.
async fn violations(api: Api, body: Value) -> Vec<String> {
    let srv = ModelServer::builder(api, KEY)
        .then_repeat(Reply::text("ok"))
        .start()
        .await;
    let (status, _) = post(&srv, api, body, true, true).await;
    let v = srv.take_violations();
    assert_eq!(status == 400, !v.is_empty(), "{v:?}");
    v
}

fn tool(name: &str) -> Value {
    json!({"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}})
}

#[tokio::test]
async fn openai_rules() {
    let ok =
        json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5});
    assert!(violations(Api::OpenAi, ok.clone()).await.is_empty());
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "temprature": 1}),
            "Unrecognized request argument",
        ),
        (
            json!({"model": "m", "messages": []}),
            "messages must be a non-empty array",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream_options": {"include_usage": true}}),
            "only allowed when stream is true",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tool_choice": "auto"}),
            "only allowed when tools",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "x", "parameters": {"type": "string"}}}]}),
            "JSON Schema with type \"object\"",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "bad name!"}}]}),
            "must match",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "x", "parameters": {"type": "object", "properties": {}, "required": ["nope"]}}}]}),
            "not one of the properties",
        ),
        (
            json!({"model": "m", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "x", "arguments": "{}"}}]},
            {"role": "user", "content": "again"}]}),
            "must be followed by tool messages",
        ),
        (
            json!({"model": "m", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "x", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "x", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c2", "content": "r"},
            {"role": "tool", "tool_call_id": "c1", "content": "r"}]}),
            "answer them in order",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "zz", "content": "r"}]}),
            "must be a response to a preceding message",
        ),
        (
            json!({"model": "m", "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "x", "arguments": "not json"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "r"}]}),
            "JSON object encoded as a string",
        ),
        (
            json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]}),
            "image_url.url",
        ),
    ];
    for (body, want) in cases {
        let v = violations(Api::OpenAi, body.clone()).await;
        assert!(
            v.iter().any(|m| m.contains(want)),
            "{body}: wanted {want:?}, got {v:?}"
        );
    }
}

#[tokio::test]
async fn anthropic_rules() {
    let ok =
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]});
    assert!(violations(Api::Anthropic, ok).await.is_empty());
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
            "max_tokens: field required",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}]}),
            "must be user or assistant",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}),
            "roles must alternate",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "assistant", "content": "a"}]}),
            "must be a user message",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}),
            "must be non-empty",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": {}}]},
            {"role": "user", "content": [{"type": "text", "text": "first"}, {"type": "tool_result", "tool_use_id": "t1", "content": "r"}]}]}),
            "must come FIRST",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": {}}, {"type": "tool_use", "id": "t2", "name": "x", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}]}]}),
            "without `tool_result` blocks",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t9", "content": "r"}]}]}),
            "unexpected `tool_use_id`",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "tools": [{"name": "x", "input_schema": {"type": "array"}}]}),
            "JSON Schema with type \"object\"",
        ),
        (
            json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "data:image/png;base64,AA"}}]}]}),
            "bare base64",
        ),
    ];
    for (body, want) in cases {
        let v = violations(Api::Anthropic, body.clone()).await;
        assert!(
            v.iter().any(|m| m.contains(want)),
            "{body}: wanted {want:?}, got {v:?}"
        );
    }
    // The version header is required.
    let srv = ModelServer::builder(Api::Anthropic, KEY).start().await;
    let (status, _) = post(
        &srv,
        Api::Anthropic,
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}),
        true,
        false,
    )
    .await;
    assert_eq!(status, 400);
    assert!(srv.take_violations()[0].contains("anthropic-version"));
}

#[tokio::test]
async fn a_wrong_key_is_401_and_not_a_violation() {
    for api in [Api::OpenAi, Api::Anthropic] {
        let srv = ModelServer::builder(api, KEY).start().await;
        let (status, body) = post(&srv, api, json!({"model": "m"}), false, true).await;
        assert_eq!(status, 401, "{body}");
        assert!(srv.violations().is_empty());
    }
}

#[tokio::test]
#[should_panic(expected = "wire-format violations")]
async fn a_server_dropped_with_violations_fails_the_test() {
    let srv = ModelServer::builder(Api::OpenAi, KEY).start().await;
    let _ = post(
        &srv,
        Api::OpenAi,
        json!({"model": "m", "messages": "nope"}),
        true,
        true,
    )
    .await;
    drop(srv);
}

#[tokio::test]
async fn streamed_answers_have_each_apis_chunk_shapes() {
    let srv = ModelServer::builder(Api::OpenAi, KEY)
        .step(Reply::tools(vec![call("x", json!({"a": "b"}))]))
        .start()
        .await;
    let (status, text) = post(
        &srv,
        Api::OpenAi,
        json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": "hi"}], "tools": [tool("x")]}),
        true,
        true,
    )
    .await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
    assert!(lines.iter().all(|l| l.starts_with("data: ")));
    assert_eq!(*lines.last().unwrap(), "data: [DONE]");
    let chunks: Vec<Value> = lines[..lines.len() - 1]
        .iter()
        .map(|l| serde_json::from_str(&l[6..]).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls")
    );
    assert!(
        chunks.last().unwrap()["usage"]["total_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );

    let srv = ModelServer::builder(Api::Anthropic, KEY)
        .step(Reply::text("hello there"))
        .start()
        .await;
    let (status, text) = post(
        &srv,
        Api::Anthropic,
        json!({"model": "m", "max_tokens": 5, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        true,
        true,
    )
    .await;
    assert_eq!(status, 200);
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    for n in [
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
    ] {
        assert!(names.contains(&n), "{names:?}");
    }
}
