//! Against a real llama.cpp server (llama-cpp-python with SmolLM2-135M, started by
//! `scripts/llama.sh`; gated like the other real dependencies: under CARAPACE_TEST_STRICT=1 a
//! missing server fails the test). The model is tiny, so this asserts the transport, not the
//! wisdom: a tool call it makes (forced with `tool_choice`) runs in the session's sandbox
//! (real bubblewrap), the result goes back, and a final answer arrives — streamed and not.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use carapace_agent::{AgentRuntime, ToolChoice, TurnRequest};
use carapace_tools::ToolContext;
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_model_calls_exec_in_the_sandbox_and_answers() {
    let Some((url, model)) = carapace_testkit::llama_server() else {
        return;
    };
    if !carapace_testkit::require_bwrap() {
        return;
    }
    for stream in [false, true] {
        let e = env(
            r#"mode: "all", backend: "bwrap", workspaceAccess: "session""#,
            "",
        );
        let m = models(
            json!({"llama": {
                "baseUrl": url,
                "apiKey": "${TEST_KEY}",
                "api": "openai-completions",
                "models": [{"id": model, "contextWindow": 8192, "maxTokens": 128}],
            }}),
            json!({"model": format!("llama/{model}")}),
        );
        let tools = Arc::new(DirectTools {
            ctx: ToolContext::new(Arc::clone(&e.config)),
            only: Some(vec!["exec"]),
        });
        let mut opts = fast_options();
        opts.stream = stream;
        let records = Arc::new(Records::default());
        let rt = AgentRuntime::builder(Arc::clone(&e.config), m, tools)
            .options(opts)
            .observer(records.clone())
            .build();
        let key = format!("agent:main:llama:{stream}");
        let mut req = TurnRequest::new(
            &key,
            "Run the shell command `echo hello` with the exec tool.",
        );
        // Round 1 must call exec; round 2 must answer in text.
        req.tool_choice = vec![ToolChoice::Tool("exec".into()), ToolChoice::None];
        let out = rt.run_turn(req).await.unwrap();
        assert_eq!(out.rounds, 2, "stream={stream}");
        assert_eq!(out.tool_calls, 1);
        if !stream {
            // llama.cpp reports usage on whole answers (not in streams).
            assert!(out.usage.input > 0, "usage reported: {:?}", out.usage);
        }

        let ev = serde_json::to_value(events(&rt, &key)).unwrap();
        let arr = ev.as_array().unwrap();
        let kinds: Vec<&str> = arr.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            kinds,
            [
                "session",
                "user",
                "assistant",
                "tool_result",
                "assistant",
                "turn_end"
            ]
        );
        assert_eq!(arr[2]["toolCalls"][0]["name"], "exec");
        // Whatever command the model wrote, it ran in the sandbox, or was refused with a typed
        // error the model read as a tool result (a 135M model invents arguments such as a
        // `working_directory` that does not exist): never a bug, never a crashed turn.
        let result: serde_json::Value =
            serde_json::from_str(arr[3]["content"].as_str().unwrap()).unwrap();
        if result.get("ok") != Some(&json!(false)) {
            assert_eq!(result["sandboxed"], true, "{result}");
            assert_eq!(result["backend"], "bwrap", "{result}");
            assert!(result["exitCode"].is_i64(), "{result}");
        } else {
            let code = result["error"]["code"].as_str().unwrap_or_default();
            assert!(
                [
                    "BAD_REQUEST",
                    "NOT_FOUND",
                    "PERMISSION_DENIED",
                    "TOOL_DENIED"
                ]
                .contains(&code),
                "a typed refusal the model can act on: {result}"
            );
            assert!(result["error"]["message"].is_string(), "{result}");
        }
        assert_eq!(arr[5]["status"], "completed");
        let recs = records.all();
        assert_eq!(recs.len(), 2);
        assert!(
            recs.iter()
                .all(|r| r.outcome == "ok" && r.streamed == stream)
        );
    }
}
