//! Turns against the scripted servers of both APIs, streamed and not: a final answer, a tool
//! round trip with real tools, parallel tool calls answered in order, tool errors as results,
//! a tool the session does not offer, images, what the transcript and the records hold, and
//! that the API key is nowhere on disk. The servers enforce the wire formats.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;

use carapace_agent::{AgentRuntime, ImageData, TurnRequest};
use carapace_policy::CarapaceError;
use carapace_testkit::model_server::{Api, ModelServer, Reply, Step, call};
use carapace_tools::ToolContext;
use common::*;
use serde_json::json;

const S: &str = "agent:main:inbox:direct:alice";
const MODES: [(Api, bool); 4] = [
    (Api::OpenAi, true),
    (Api::OpenAi, false),
    (Api::Anthropic, true),
    (Api::Anthropic, false),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_round_trip_on_both_apis_streamed_and_not() {
    for (api, stream) in MODES {
        let e = env(r#"mode: "off""#, "");
        let srv = ModelServer::builder(api, KEY)
            .step(Reply::tools(vec![call(
                "write",
                json!({"path": "note.txt", "content": "hello"}),
            )]))
            .step(Step::with(|seen| {
                let (r, v) = seen.last_tool_result().unwrap();
                assert_eq!(r.name, "write");
                assert!(!r.is_error);
                Reply::text(&format!("wrote {} bytes at {}", v["bytes"], v["mode"]))
            }))
            .start()
            .await;
        let mut opts = fast_options();
        opts.stream = stream;
        let (rt, records) = runtime(
            &e,
            models(json!({"p": provider(&srv, api)}), json!({"model": "p/m"})),
            opts,
        );
        let out = rt
            .run_turn(TurnRequest::new(S, "write hello to note.txt"))
            .await
            .unwrap();
        assert_eq!(
            out.text, "wrote 5 bytes at \"0644\"",
            "{api:?} stream={stream}"
        );
        assert_eq!((out.rounds, out.tool_calls), (2, 1));
        assert_eq!(out.model, "p/m");
        assert!(
            out.usage.input > 0 && out.usage.output > 0,
            "{:?}",
            out.usage
        );
        assert_eq!(
            std::fs::read_to_string(e.ws.join("note.txt")).unwrap(),
            "hello"
        );

        // What the model was given: the workspace's AGENTS.md, every tool, the user's text.
        let reqs = srv.requests();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[0].body["stream"].as_bool().unwrap_or(false), stream);
        let first = serde_json::to_string(&reqs[0].body).unwrap();
        assert!(
            first.contains("Always answer in English."),
            "AGENTS.md is in the system prompt"
        );
        for t in [
            "read",
            "write",
            "edit",
            "apply_patch",
            "ls",
            "exec",
            "browser",
            "message",
            "media_save",
        ] {
            assert!(first.contains(&format!("\"{t}\"")), "tool {t} offered");
        }
        match api {
            Api::OpenAi => assert_eq!(reqs[0].headers["authorization"], format!("Bearer {KEY}")),
            Api::Anthropic => {
                assert_eq!(reqs[0].headers["x-api-key"], KEY);
                assert_eq!(reqs[0].headers["anthropic-version"], "2023-06-01");
            }
        }

        // The transcript: every step, in order; the records: one per call, no content.
        let ev = events(&rt, S);
        assert_eq!(
            kinds(&ev),
            [
                "session",
                "user",
                "assistant",
                "tool_result",
                "assistant",
                "turn_end"
            ]
        );
        let recs = records.all();
        assert_eq!(recs.len(), 2);
        assert!(
            recs.iter()
                .all(|r| r.outcome == "ok" && r.streamed == stream && r.provider == "p")
        );
        assert!(recs[0].input_tokens > 0);
        let rec_json = serde_json::to_string(&recs).unwrap();
        assert!(!rec_json.contains("hello") && !rec_json.contains(KEY));
        assert_no_key_under(&e.state);

        // Files: 0600 transcript and index in a 0700 directory.
        let dir = sessions_dir(&e);
        assert_eq!(mode(&dir), 0o700);
        for f in files(&dir) {
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
        srv.assert_clean();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_tool_calls_are_answered_in_order() {
    for (api, stream) in MODES {
        let e = env(r#"mode: "off""#, "");
        let srv = ModelServer::builder(api, KEY)
            .step(Reply::Tools(
                Some("Writing both files.".into()),
                vec![
                    call("write", json!({"path": "a.txt", "content": "A"})),
                    call("write", json!({"path": "b.txt", "content": "BB"})),
                    call("read", json!({"path": "a.txt"})),
                ],
            ))
            .step(Step::with(|seen| {
                let rs = seen.tool_results();
                let names: Vec<&str> = rs.iter().map(|r| r.name.as_str()).collect();
                assert_eq!(names, ["write", "write", "read"]);
                let read: serde_json::Value = serde_json::from_str(&rs[2].content).unwrap();
                Reply::text(&format!("a.txt says {}", read["content"]))
            }))
            .start()
            .await;
        let mut opts = fast_options();
        opts.stream = stream;
        let (rt, _) = runtime(
            &e,
            models(json!({"p": provider(&srv, api)}), json!({"model": "p/m"})),
            opts,
        );
        let out = rt.run_turn(TurnRequest::new(S, "two files")).await.unwrap();
        assert_eq!(out.text, "a.txt says \"A\"", "{api:?} {stream}");
        assert_eq!(out.tool_calls, 3);
        assert_eq!(std::fs::read_to_string(e.ws.join("b.txt")).unwrap(), "BB");
        let ev = events(&rt, S);
        assert_eq!(
            kinds(&ev),
            [
                "session",
                "user",
                "assistant",
                "tool_result",
                "tool_result",
                "tool_result",
                "assistant",
                "turn_end"
            ]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_errors_are_results_and_unoffered_tools_never_run() {
    for api in [Api::OpenAi, Api::Anthropic] {
        let e = env(r#"mode: "off""#, "");
        let srv = ModelServer::builder(api, KEY)
            .step(Reply::tools(vec![
                call("read", json!({"path": "missing.txt"})),
                call("exec", json!({"command": "touch pwned"})),
            ]))
            .step(Step::with(|seen| {
                let rs = seen.tool_results();
                let a: serde_json::Value = serde_json::from_str(&rs[0].content).unwrap();
                let b: serde_json::Value = serde_json::from_str(&rs[1].content).unwrap();
                assert_eq!(a["ok"], false);
                assert_eq!(a["error"]["code"], "NOT_FOUND");
                assert_eq!(b["error"]["code"], "NOT_FOUND");
                assert!(b["error"]["hint"].as_str().unwrap().contains("read"), "{b}");
                if seen.api == Api::Anthropic {
                    assert!(rs[0].is_error && rs[1].is_error);
                }
                Reply::text("recovered")
            }))
            .start()
            .await;
        let tools = Arc::new(DirectTools {
            ctx: ToolContext::new(Arc::clone(&e.config)),
            only: Some(vec!["read"]),
        });
        let rt = AgentRuntime::builder(
            Arc::clone(&e.config),
            models(json!({"p": provider(&srv, api)}), json!({"model": "p/m"})),
            tools,
        )
        .options(fast_options())
        .build();
        let out = rt.run_turn(TurnRequest::new(S, "try")).await.unwrap();
        assert_eq!(out.text, "recovered");
        assert!(
            !e.ws.join("pwned").exists(),
            "a tool the session does not offer never runs"
        );
        assert_eq!(srv.requests()[0].body["tools"].as_array().unwrap().len(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_go_to_models_that_accept_them_only() {
    // A 1x1 PNG.
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
    for (api, stream) in MODES {
        for accepts in [true, false] {
            let e = env(r#"mode: "off""#, "");
            let srv = ModelServer::builder(api, KEY)
                .step(Step::with(|seen| {
                    Reply::text(&format!("image={}", seen.last_user_has_image()))
                }))
                .start()
                .await;
            let mut p = provider(&srv, api);
            if !accepts {
                p["models"][0]["input"] = json!(["text"]);
            }
            let mut opts = fast_options();
            opts.stream = stream;
            let (rt, _) = runtime(&e, models(json!({"p": p}), json!({"model": "p/m"})), opts);
            let mut req = TurnRequest::new(S, "what is this?");
            req.images.push(ImageData {
                mime: "image/png".into(),
                data: png.into(),
            });
            let out = rt.run_turn(req).await.unwrap();
            assert_eq!(out.text, format!("image={accepts}"), "{api:?} {stream}");
            if !accepts {
                let body = serde_json::to_string(&srv.requests()[0].body).unwrap();
                assert!(body.contains("does not accept images"));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_problems_are_refused_before_anything_is_written() {
    let e = env(r#"mode: "off""#, "");
    let (rt, _) = runtime(&e, models(json!({}), json!({})), fast_options());
    let err = rt.run_turn(TurnRequest::new(S, "hi")).await.unwrap_err();
    let env_ = err.to_envelope();
    assert_eq!(env_.code.as_str(), "MODEL_NOT_CONFIGURED");
    assert!(env_.hint.unwrap().contains("agents.defaults.model"));
    assert!(!e.state.join("agents").exists(), "nothing written");

    // An unset key: the provider is not called, the error names the variable, not a value.
    let srv = ModelServer::builder(Api::OpenAi, KEY).start().await;
    let mut p = provider(&srv, Api::OpenAi);
    p["apiKey"] = json!("${UNSET_KEY_VAR}");
    let (rt, _) = runtime(
        &e,
        models(json!({"p": p}), json!({"model": "p/m"})),
        fast_options(),
    );
    let err = rt
        .run_turn(TurnRequest::new(S, "hi"))
        .await
        .unwrap_err()
        .to_envelope();
    assert_eq!(err.code.as_str(), "MODEL_NOT_CONFIGURED");
    assert!(err.message.contains("${UNSET_KEY_VAR}"), "{}", err.message);
    assert_eq!(srv.request_count(), 0);

    // A model override outside modelPolicy.allow is refused.
    let srv = ModelServer::builder(Api::OpenAi, KEY).start().await;
    let mut p = provider(&srv, Api::OpenAi);
    p["models"] = json!([{"id": "m"}, {"id": "big"}]);
    let (rt, _) = runtime(
        &e,
        models(
            json!({"p": p}),
            json!({"model": "p/m", "modelPolicy": {"allow": ["p/m"]}}),
        ),
        fast_options(),
    );
    let mut req = TurnRequest::new(S, "hi");
    req.model = Some("p/big".into());
    let err = rt.run_turn(req).await.unwrap_err().to_envelope();
    assert!(err.message.contains("modelPolicy.allow"), "{}", err.message);
    assert_eq!(srv.request_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_files_follow_openclaw_and_never_leave_the_workspace() {
    let e = env(r#"mode: "off""#, "");
    // AGENTS.md is a symlink to a file outside the workspace: refused, not followed.
    let outside = e.dir.path().join("host-secret.md");
    std::fs::write(&outside, "HOST SECRET 91c2").unwrap();
    std::fs::remove_file(e.ws.join("AGENTS.md")).unwrap();
    std::os::unix::fs::symlink(&outside, e.ws.join("AGENTS.md")).unwrap();
    std::fs::write(e.ws.join("SOUL.md"), "---\ntitle: x\n---\nBe kind.").unwrap();
    std::fs::write(e.ws.join("TOOLS.md"), "t".repeat(500)).unwrap();
    std::fs::write(e.ws.join("memory.md"), "remember the milk").unwrap();
    let srv = ModelServer::builder(Api::Anthropic, KEY)
        .step(Step::with(|seen| {
            let sys = seen.system();
            assert!(!sys.contains("HOST SECRET"), "{sys}");
            assert!(
                sys.contains("## SOUL.md\nBe kind."),
                "front matter stripped: {sys}"
            );
            assert!(!sys.contains("title: x"));
            assert!(
                sys.contains(&format!("## TOOLS.md\n{}\n", "t".repeat(100))),
                "cut at bootstrapMaxChars"
            );
            assert!(!sys.contains(&"t".repeat(101)));
            assert!(sys.contains("were truncated"));
            assert!(sys.contains("## MEMORY.md\nremember the milk"));
            let soul = sys.find("SOUL.md").unwrap();
            assert!(
                soul < sys.find("TOOLS.md").unwrap()
                    && sys.find("TOOLS.md").unwrap() < sys.find("MEMORY.md").unwrap()
            );
            Reply::text("ok")
        }))
        .step(Step::with(|seen| {
            assert!(
                !seen.system().contains("Be kind."),
                "contextInjection: never"
            );
            Reply::text("ok")
        }))
        .start()
        .await;
    let (rt, _) = runtime(
        &e,
        models(
            json!({"p": provider(&srv, Api::Anthropic)}),
            json!({"model": "p/m", "bootstrapMaxChars": 100}),
        ),
        fast_options(),
    );
    rt.run_turn(TurnRequest::new(S, "hi")).await.unwrap();
    let (rt, _) = runtime(
        &e,
        models(
            json!({"p": provider(&srv, Api::Anthropic)}),
            json!({"model": "p/m", "contextInjection": "never"}),
        ),
        fast_options(),
    );
    rt.run_turn(TurnRequest::new("agent:main:other", "hi"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_options_shape_the_wire() {
    // authHeader: Bearer on the Anthropic wire; headers from the config; compat flags.
    let e = env(r#"mode: "off""#, "");
    let srv = ModelServer::builder(Api::Anthropic, KEY)
        .bearer_auth()
        .step(Reply::text("bearer ok"))
        .start()
        .await;
    let mut p = provider(&srv, Api::Anthropic);
    p["authHeader"] = json!(true);
    p["headers"] = json!({"X-Org": "${TEST_KEY}"});
    let (rt, _) = runtime(
        &e,
        models(json!({"p": p}), json!({"model": "p/m"})),
        fast_options(),
    );
    assert_eq!(
        rt.run_turn(TurnRequest::new(S, "hi")).await.unwrap().text,
        "bearer ok"
    );
    let r = &srv.requests()[0];
    assert_eq!(r.headers["authorization"], format!("Bearer {KEY}"));
    assert!(!r.headers.contains_key("x-api-key"));
    assert_eq!(r.headers["x-org"], KEY);

    let srv = ModelServer::builder(Api::OpenAi, KEY)
        .step(Reply::tools(vec![call("ls", json!({}))]))
        .step(Reply::text("compat ok"))
        .start()
        .await;
    let mut p = provider(&srv, Api::OpenAi);
    p["models"][0]["compat"] = json!({"maxTokensField": "max_completion_tokens",
        "supportsUsageInStreaming": false, "requiresToolResultName": true});
    let (rt, _) = runtime(
        &e,
        models(json!({"p": p}), json!({"model": "p/m"})),
        fast_options(),
    );
    let out = rt
        .run_turn(TurnRequest::new("agent:main:compat", "hi"))
        .await
        .unwrap();
    assert_eq!(out.text, "compat ok");
    let b = &srv.requests()[1].body;
    assert_eq!(b["max_completion_tokens"], 1024);
    assert!(b.get("max_tokens").is_none() && b.get("stream_options").is_none());
    let tool_msg = b["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap();
    assert_eq!(tool_msg["name"], "ls");
}
