//! Restarts: a new runtime over the same state dir resumes a session's transcript; a torn last
//! line (a crash mid-write) is tolerated and reported; a crash in the middle of a tool call is
//! repaired so the next request is valid; sessions list / show / reset as library functions;
//! a lost index is rebuilt from the transcripts; context kept within a small window, recorded.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::Write;

use carapace_agent::{Event, SessionStore, TurnRequest};
use carapace_testkit::model_server::{Api, ModelServer, Reply, Step, call};
use common::*;
use serde_json::json;

const S: &str = "agent:main:inbox:direct:dave";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_runtime_resumes_the_transcript() {
    for api in [Api::OpenAi, Api::Anthropic] {
        let e = env(r#"mode: "off""#, "");
        let srv = ModelServer::builder(api, KEY)
            .step(Reply::tools(vec![call(
                "write",
                json!({"path": "x.txt", "content": "x"}),
            )]))
            .step(Reply::text("first answer"))
            .step(Step::with(|seen| {
                // Everything before the restart is in the request.
                assert_eq!(seen.tool_results().len(), 1);
                assert!(seen.user_texts().join(" ").contains("before restart"));
                Reply::text("remembered")
            }))
            .start()
            .await;
        let m = models(json!({"p": provider(&srv, api)}), json!({"model": "p/m"}));
        {
            let (rt, _) = runtime(&e, m.clone(), fast_options());
            rt.run_turn(TurnRequest::new(S, "before restart"))
                .await
                .unwrap();
        }
        let (rt, _) = runtime(&e, m, fast_options());
        let out = rt
            .run_turn(TurnRequest::new(S, "after restart"))
            .await
            .unwrap();
        assert_eq!(out.text, "remembered");
        assert_eq!(out.turn, 2);
        let view = rt.sessions().show(S, None).unwrap();
        assert_eq!(view.summary.turns, 2);
        assert!(
            !kinds(&view.events).contains(&"resumed".to_string()),
            "nothing to repair"
        );
        srv.assert_clean();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_last_line_and_a_crash_mid_tool_call_are_repaired() {
    for api in [Api::OpenAi, Api::Anthropic] {
        let e = env(r#"mode: "off""#, "");
        let srv = ModelServer::builder(api, KEY)
            .step(Reply::text("one"))
            .step(Step::with(|seen| {
                // The call the crash left unanswered is answered as interrupted, so the
                // request is valid (the server checks the pairing).
                let r = seen.tool_results();
                assert_eq!(r.len(), 1);
                assert_eq!(r[0].id, "call_crashed");
                assert!(r[0].content.contains("interrupted"));
                Reply::text("repaired")
            }))
            .start()
            .await;
        let m = models(json!({"p": provider(&srv, api)}), json!({"model": "p/m"}));
        let id = {
            let (rt, _) = runtime(&e, m.clone(), fast_options());
            rt.run_turn(TurnRequest::new(S, "hi"))
                .await
                .unwrap()
                .session_id
        };
        // A crash: a turn whose tool call never finished, then half a line.
        let path = sessions_dir(&e).join(format!("{id}.jsonl"));
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        for ev in [
            json!({"type": "user", "turn": 2, "timestamp": "t", "content": [{"type": "text", "text": "do it"}]}),
            json!({"type": "assistant", "turn": 2, "round": 1, "timestamp": "t", "provider": "p", "model": "m",
                   "text": "", "toolCalls": [{"id": "call_crashed", "name": "exec", "arguments": {"command": "true"}}]}),
        ] {
            writeln!(f, "{ev}").unwrap();
        }
        write!(
            f,
            r#"{{"type": "tool_result", "turn": 2, "round": 1, "call"#
        )
        .unwrap();
        drop(f);

        let (rt, _) = runtime(&e, m, fast_options());
        let before = rt.sessions().show(S, None).unwrap();
        assert!(before.report.torn_tail, "reported by sessions show");
        let out = rt.run_turn(TurnRequest::new(S, "again")).await.unwrap();
        assert_eq!(out.text, "repaired");
        assert_eq!(out.turn, 3);
        let ev = events(&rt, S);
        let resumed = ev
            .iter()
            .find_map(|e| match e {
                Event::Resumed {
                    torn_tail,
                    interrupted_calls,
                    unfinished_turn,
                    ..
                } => Some((*torn_tail, *interrupted_calls, *unfinished_turn)),
                _ => None,
            })
            .unwrap();
        assert_eq!(resumed, (true, 1, Some(2)));
        // The torn line stays on its own line; every later line parses.
        let text = std::fs::read_to_string(&path).unwrap();
        let bad: Vec<&str> = text
            .lines()
            .filter(|l| !l.is_empty() && serde_json::from_str::<serde_json::Value>(l).is_err())
            .collect();
        assert_eq!(bad.len(), 1, "only the torn record is unparsable");
        assert_eq!(mode(&path), 0o600);
        srv.assert_clean();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_list_show_reset_and_a_lost_index() {
    let e = env(r#"mode: "off""#, "");
    let srv = ModelServer::builder(Api::OpenAi, KEY)
        .then_repeat(Reply::text("ok"))
        .start()
        .await;
    let m = models(
        json!({"p": provider(&srv, Api::OpenAi)}),
        json!({"model": "p/m"}),
    );
    let (rt, _) = runtime(&e, m.clone(), fast_options());
    for k in ["agent:main:a", "agent:main:b", "agent:ops:c"] {
        rt.run_turn(TurnRequest::new(k, "hi")).await.unwrap();
    }
    let store = SessionStore::new(&e.state);
    let all = store.list(None).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(store.list(Some("ops")).unwrap().len(), 1);
    assert_eq!(store.list(Some("ops")).unwrap()[0].agent_id, "ops");
    let v = store.show("agent:main:a", None).unwrap();
    assert_eq!(v.summary.turns, 1);
    assert_eq!(
        kinds(&v.events),
        ["session", "user", "assistant", "turn_end"]
    );
    assert!(store.show("agent:main:nope", None).is_err());

    let old = v.summary.session_id.clone();
    let new = store.reset("agent:main:a", None).unwrap().unwrap();
    assert_ne!(new, old);
    assert_eq!(store.reset("agent:main:nope", None).unwrap(), None);

    // The index is lost: it is rebuilt from the transcripts' headers.
    std::fs::remove_file(sessions_dir(&e).join("sessions.json")).unwrap();
    std::fs::write(sessions_dir(&e).join("sessions.json"), b"{not json").unwrap();
    let again = SessionStore::new(&e.state).list(Some("main")).unwrap();
    let keys: Vec<&str> = again.iter().map(|s| s.session_key.as_str()).collect();
    assert!(
        keys.contains(&"agent:main:a") && keys.contains(&"agent:main:b"),
        "{keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_context_is_kept_within_a_small_window_and_the_transcript_says_so() {
    for api in [Api::OpenAi, Api::Anthropic] {
        let e = env(r#"mode: "off""#, "");
        std::fs::write(e.ws.join("big.txt"), "y".repeat(60_000)).unwrap();
        let srv = ModelServer::builder(api, KEY)
            .step(Reply::tools(vec![call("read", json!({"path": "big.txt"}))]))
            .step(Reply::text("read it"))
            .step(Reply::tools(vec![call("read", json!({"path": "big.txt"}))]))
            .step(Reply::text("read it again"))
            .then_repeat(Step::with(|seen| {
                // Small enough for the window: the old results were shortened.
                assert!(
                    seen.body.to_string().len() < 4 * 12_000,
                    "{}",
                    seen.body.to_string().len()
                );
                Reply::text("fits")
            }))
            .start()
            .await;
        let mut p = provider(&srv, api);
        p["models"][0]["contextWindow"] = json!(8_000);
        p["models"][0]["maxTokens"] = json!(500);
        let mut opts = fast_options();
        opts.max_tool_result_chars = Some(12_000);
        let (rt, _) = runtime(&e, models(json!({"p": p}), json!({"model": "p/m"})), opts);
        assert_eq!(
            rt.run_turn(TurnRequest::new(S, "read big"))
                .await
                .unwrap()
                .text,
            "read it"
        );
        assert_eq!(
            rt.run_turn(TurnRequest::new(S, "again"))
                .await
                .unwrap()
                .text,
            "read it again"
        );
        assert_eq!(
            rt.run_turn(TurnRequest::new(S, "now")).await.unwrap().text,
            "fits"
        );
        let ev = serde_json::to_value(events(&rt, S)).unwrap();
        let arr = ev.as_array().unwrap();
        let compactions: Vec<_> = arr.iter().filter(|e| e["type"] == "compaction").collect();
        assert!(!compactions.is_empty(), "the compaction is recorded");
        assert!(compactions[0]["tokensAfter"].as_u64() < compactions[0]["tokensBefore"].as_u64());
        // The transcript itself keeps the results as the model first read them (cut to the
        // tool-result limit, and saying so).
        let results: Vec<_> = arr.iter().filter(|e| e["type"] == "tool_result").collect();
        assert_eq!(results[0]["truncated"], true);
        assert!(
            results[0]["content"]
                .as_str()
                .unwrap()
                .contains("tool result cut to 12000")
        );
        srv.assert_clean();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_beyond_the_cap_are_forgotten_and_reloaded() {
    let e = env(r#"mode: "off""#, "");
    let srv = ModelServer::builder(Api::OpenAi, KEY)
        .then_repeat(Step::with(|seen| {
            Reply::text(&format!("turns seen: {}", seen.user_texts().len()))
        }))
        .start()
        .await;
    let mut opts = fast_options();
    opts.max_loaded_sessions = 2;
    let (rt, _) = runtime(
        &e,
        models(
            json!({"p": provider(&srv, Api::OpenAi)}),
            json!({"model": "p/m"}),
        ),
        opts,
    );
    for i in 0..5 {
        rt.run_turn(TurnRequest::new(&format!("agent:main:s{i}"), "hi"))
            .await
            .unwrap();
        assert!(rt.loaded_sessions() <= 2, "{}", rt.loaded_sessions());
    }
    // s0 was forgotten; its next turn still sees its first one (reloaded from disk).
    let out = rt
        .run_turn(TurnRequest::new("agent:main:s0", "again"))
        .await
        .unwrap();
    assert_eq!(out.text, "turns seen: 2");
    assert_eq!(out.turn, 2);
}
