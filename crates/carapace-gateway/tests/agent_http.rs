//! carapace's agent through a running gateway (real HTTP on a loopback port, the real tools,
//! a scripted model server as the configured model):
//!
//! - `POST /v1/chat/completions` as OpenAI clients call it: non-streamed (`chat.completion`)
//!   and streamed (`chat.completion.chunk` SSE events, `data: [DONE]`), the agent chosen by
//!   `model: "openclaw:<id>"`, the session derived from `user`; off unless enabled; behind the
//!   gateway token;
//! - a model's tool call runs through the gateway in the session's sandbox (bubblewrap);
//! - a tool the policy denies is never offered to the model, and a call to it anyway is the
//!   policy's `TOOL_DENIED` naming the setting, with nothing run;
//! - the audit log and `/metrics` record each model call (model, tokens, outcome) and hold
//!   neither the prompt nor the API key;
//! - the webhook (`POST <hooks.path>/agent`) answers with the agent's reply;
//! - with no model configured a message is answered with `MODEL_NOT_CONFIGURED` naming the key.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod agent_support;

use agent_support::*;
use carapace_testkit::model_server::{Api, ModelServer, Reply, Step, call};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completions_non_streamed() {
    let srv = ModelServer::builder(Api::OpenAi, KEY)
        .step(Step::with(|seen| {
            assert!(!seen.streamed());
            assert_eq!(seen.last_user_text(), "what is 2+2?");
            Reply::text("4, of course.")
        }))
        .step(Step::with(|seen| {
            // Same `user`: the same session, so the first exchange is in the history.
            let texts = seen.user_texts();
            assert_eq!(texts.len(), 2, "{texts:?}");
            Reply::text("Still 4.")
        }))
        .start()
        .await;
    let gw = start(r#"mode: "off""#, &provider(&srv, Api::OpenAi), "").await;
    for (q, a) in [("what is 2+2?", "4, of course."), ("sure?", "Still 4.")] {
        let (s, v) = chat(
            gw.addr,
            json!({"model": "openclaw:main", "user": "alice@example.org",
                   "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": q}]}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["object"], "chat.completion");
        assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
        assert_eq!(v["model"], "openclaw:main");
        assert_eq!(v["choices"][0]["message"]["role"], "assistant");
        assert_eq!(v["choices"][0]["message"]["content"], a);
        assert_eq!(v["choices"][0]["finish_reason"], "stop");
        assert!(v["usage"]["total_tokens"].is_u64(), "{v}");
    }
    srv.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completions_streamed_as_sse_chunks() {
    let srv = ModelServer::builder(Api::OpenAi, KEY)
        .step(Step::with(|seen| {
            assert!(
                seen.streamed(),
                "a streamed request streams from the model too"
            );
            Reply::text("The quick brown fox jumps over the lazy dog.")
        }))
        .start()
        .await;
    let gw = start(r#"mode: "off""#, &provider(&srv, Api::OpenAi), "").await;
    let (s, ct, data) = chat_stream(
        gw.addr,
        json!({"model": "openclaw", "stream": true,
               "messages": [{"role": "user", "content": [{"type": "text", "text": "say the fox line"}]}]}),
    )
    .await;
    assert_eq!(s, 200);
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"), "{data:?}");
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks.len() >= 3, "role, content, stop: {chunks:?}");
    let mut text = String::new();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk", "{c}");
        assert_eq!(c["id"], chunks[0]["id"]);
        if let Some(t) = c["choices"][0]["delta"]["content"].as_str() {
            text.push_str(t);
        }
    }
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    assert_eq!(text, "The quick brown fox jumps over the lazy dog.");
    srv.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_completions_is_off_by_default_and_behind_the_token() {
    let srv = ModelServer::builder(Api::OpenAi, KEY).start().await;
    let gw = start(r#"mode: "off""#, &provider(&srv, Api::OpenAi), "").await;
    let r = reqwest::Client::new()
        .post(format!("http://{}/v1/chat/completions", gw.addr))
        .json(&json!({"messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "UNAUTHORIZED");
    // A model field that names no agent is refused, not guessed.
    let (s, v) = chat(
        gw.addr,
        json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["details"]["field"], "model");

    // Without gateway.http.endpoints.chatCompletions.enabled: 404 naming the key.
    let off = start_with(r#"mode: "off""#, &provider(&srv, Api::OpenAi), "", false).await;
    let (s, v) = chat(
        off.addr,
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(s, 404, "{v}");
    assert!(
        v["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("gateway.http.endpoints.chatCompletions.enabled"),
        "{v}"
    );
    assert_eq!(srv.request_count(), 0, "the model was never called");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_call_runs_in_the_sessions_sandbox() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    let srv = ModelServer::builder(Api::OpenAi, KEY)
        .step(Step::with(|seen| {
            assert!(seen.tool_names().contains(&"exec".to_string()));
            Reply::tools(vec![call(
                "exec",
                json!({"command": "echo made-in-sandbox > /workspace/proof.txt; pwd; test -e /etc/hostname && echo host-etc-visible; echo done"}),
            )])
        }))
        .step(Step::with(|seen| {
            let (r, v) = seen.last_tool_result().unwrap();
            assert_eq!(r.name, "exec");
            assert_eq!(v["exitCode"], 0, "{}", r.content);
            assert!(r.content.contains("/workspace"), "{}", r.content);
            Reply::text("written")
        }))
        .start()
        .await;
    let gw = start(
        r#"mode: "all", backend: "bwrap""#,
        &provider(&srv, Api::OpenAi),
        "",
    )
    .await;
    let (s, v) = chat(
        gw.addr,
        json!({"model": "openclaw:main", "user": "bob",
               "messages": [{"role": "user", "content": "write proof"}]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "written");
    // The file is in the session's sandbox workspace, not in the agent workspace.
    let made: Vec<_> = files(&gw.sbx)
        .into_iter()
        .filter(|f| f.ends_with("proof.txt"))
        .collect();
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(
        std::fs::read_to_string(&made[0]).unwrap(),
        "made-in-sandbox\n"
    );
    assert!(!gw.ws.join("proof.txt").exists());
    // The call went through the gateway's pipeline: an audit line of transport "agent".
    let audit = audit_text(&gw);
    let line: Value = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["tool"] == "exec")
        .expect("an audit line for the exec call");
    assert_eq!(line["transport"], "agent");
    assert_eq!(line["outcome"], "ok");
    srv.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_tool_is_never_offered_and_a_forced_call_is_refused() {
    let srv = ModelServer::builder(Api::Anthropic, KEY)
        .step(Step::with(|seen| {
            let names = seen.tool_names();
            assert!(!names.contains(&"exec".to_string()), "{names:?}");
            assert!(names.contains(&"read".to_string()), "{names:?}");
            Reply::tools(vec![call(
                "exec",
                json!({"command": "touch /workspace/pwned"}),
            )])
        }))
        .step(Step::with(|seen| {
            let (r, v) = seen.last_tool_result().unwrap();
            assert!(r.is_error);
            assert_eq!(v["error"]["code"], "TOOL_DENIED", "{}", r.content);
            assert!(r.content.contains("tools.deny"), "{}", r.content);
            Reply::text("exec is not allowed here")
        }))
        .start()
        .await;
    let gw = start(
        r#"mode: "off""#,
        &provider(&srv, Api::Anthropic),
        r#"tools: { deny: ["exec"] },"#,
    )
    .await;
    let (s, v) = chat(
        gw.addr,
        json!({"model": "openclaw:main", "messages": [{"role": "user", "content": "run touch"}]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "exec is not allowed here"
    );
    assert!(!gw.ws.join("pwned").exists());
    assert!(files(&gw.sbx).iter().all(|f| !f.ends_with("pwned")));
    srv.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_and_metrics_record_model_calls_without_content_or_keys() {
    const PROMPT: &str = "PROMPT-zebra-4711 tell nobody";
    const ANSWER: &str = "ANSWER-okapi-0815";
    let srv = ModelServer::builder(Api::OpenAi, KEY)
        .step(Reply::tools(vec![call("ls", json!({"path": "."}))]))
        .step(Reply::text(ANSWER))
        .start()
        .await;
    let gw = start(r#"mode: "off""#, &provider(&srv, Api::OpenAi), "").await;
    let (s, v) = chat(
        gw.addr,
        json!({"messages": [{"role": "user", "content": PROMPT}]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], ANSWER);

    let audit = audit_text(&gw);
    let calls: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["type"] == "model_call")
        .collect();
    assert_eq!(calls.len(), 2, "one line per model call: {audit}");
    for c in &calls {
        assert_eq!(c["model"], "m", "{c}");
        assert_eq!(c["provider"], "p", "{c}");
        assert_eq!(c["outcome"], "ok", "{c}");
        assert!(c.get("latencyMs").or(c.get("latency_ms")).is_some(), "{c}");
    }
    let r = reqwest::Client::new()
        .get(format!("http://{}/metrics", gw.addr))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let metrics = r.text().await.unwrap();
    assert!(
        metrics.contains(r#"carapace_model_calls_total{model="p/m",outcome="ok"} 2"#),
        "{metrics}"
    );
    assert!(metrics.contains("carapace_model_tokens_total"), "{metrics}");
    assert!(metrics.contains("carapace_model_call_duration_seconds_bucket"));
    for (what, text) in [("audit log", &audit), ("metrics", &metrics)] {
        for secret in ["zebra-4711", "okapi-0815", KEY, "0123456789-secret"] {
            assert!(!text.contains(secret), "{what} holds {secret:?}");
        }
    }
    srv.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_answers_over_http() {
    let srv = ModelServer::builder(Api::OpenAi, KEY)
        .then_repeat(Step::with(|seen| {
            let u = seen.last_user_text();
            Reply::text(&format!("hook saw: {}", u.lines().last().unwrap_or("")))
        }))
        .start()
        .await;
    let gw = start(r#"mode: "off""#, &provider(&srv, Api::OpenAi), "").await;
    let url = format!("http://{}/hooks/agent", gw.addr);
    let c = reqwest::Client::new();
    let body = json!({"message": "build 7 passed", "name": "CI"});
    let r = c.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401, "the hook token is required");
    let r = c
        .post(&url)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        401,
        "the gateway token is not the hook token"
    );
    let r = c
        .post(&url)
        .header("x-openclaw-token", HOOK_TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["reply"], "hook saw: build 7 passed", "{v}");
    // Other paths are still 404 envelopes; GET on the hook path too.
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 404);
    srv.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_model_a_message_is_answered_with_the_key_to_set() {
    let gw = start(r#"mode: "off""#, "", "").await;
    let (s, v) = chat(
        gw.addr,
        json!({"messages": [{"role": "user", "content": "hello?"}]}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "MODEL_NOT_CONFIGURED");
    let hint = v["error"]["hint"].as_str().unwrap();
    assert!(hint.contains("agents.defaults.model.primary"), "{hint}");
    // The webhook says the same, never silence.
    let r = reqwest::Client::new()
        .post(format!("http://{}/hooks/agent", gw.addr))
        .header("x-openclaw-token", HOOK_TOKEN)
        .json(&json!({"message": "ping", "name": "CI"}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert!(
        v.to_string().contains("agents.defaults.model.primary"),
        "{status} {v}"
    );
}
