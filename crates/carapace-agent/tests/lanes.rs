//! Lanes and limits: one turn at a time per session (a second message waits behind the
//! first), the global cap across sessions, `/stop` cancelling the running turn and those
//! queued behind it, `/new` starting a fresh transcript, the round limit, the wall-time limit,
//! the per-session queue limit.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use carapace_agent::{Reply as RtReply, TurnRequest};
use carapace_policy::CarapaceError;
use carapace_testkit::model_server::{Api, ModelServer, Reply, Step, call};
use common::*;
use serde_json::json;

const S: &str = "agent:main:inbox:direct:carol";

fn code(e: carapace_agent::AgentError) -> String {
    e.to_envelope().code.as_str().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_message_waits_behind_the_running_turn() {
    let e = env(r#"mode: "off""#, "");
    let srv = ModelServer::builder(Api::OpenAi, KEY)
        .step(Reply::tools(vec![call(
            "exec",
            json!({"command": "sleep 0.3; echo slept"}),
        )]))
        .step(Reply::text("first done"))
        .step(Step::with(|seen| {
            // The second turn sees the whole first turn before its own message.
            assert_eq!(seen.user_texts(), ["one", "two"]);
            Reply::text("second done")
        }))
        .start()
        .await;
    let (rt, _) = runtime(
        &e,
        models(
            json!({"p": provider(&srv, Api::OpenAi)}),
            json!({"model": "p/m"}),
        ),
        fast_options(),
    );
    let a = tokio::spawn({
        let rt = rt.clone();
        async move { rt.run_turn(TurnRequest::new(S, "one")).await }
    });
    wait_for("the first request", || srv.request_count() >= 1).await;
    let b = tokio::spawn({
        let rt = rt.clone();
        async move { rt.run_turn(TurnRequest::new(S, "two")).await }
    });
    assert_eq!(a.await.unwrap().unwrap().text, "first done");
    assert_eq!(b.await.unwrap().unwrap().text, "second done");
    let k = kinds(&events(&rt, S));
    assert_eq!(
        k,
        [
            "session",
            "user",
            "assistant",
            "tool_result",
            "assistant",
            "turn_end",
            "user",
            "assistant",
            "turn_end"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_cancels_the_running_turn_and_the_queue_and_new_starts_fresh() {
    for api in [Api::OpenAi, Api::Anthropic] {
        let e = env(r#"mode: "off""#, "");
        let srv = ModelServer::builder(api, KEY)
            .step(Reply::Stall)
            .step(Step::with(|seen| {
                // The queued message never ran. (Anthropic has no two user messages in a row:
                // the cancelled turn's message and the next one are one user message.)
                let texts = seen.user_texts().join("|");
                let want = match seen.api {
                    Api::OpenAi => "hang|after stop",
                    Api::Anthropic => "hang\nafter stop",
                };
                assert_eq!(texts, want);
                Reply::text("back")
            }))
            .step(Step::with(|seen| {
                assert_eq!(seen.user_texts(), ["fresh"], "a new session starts empty");
                Reply::text("new session")
            }))
            .start()
            .await;
        let (rt, _) = runtime(
            &e,
            models(json!({"p": provider(&srv, api)}), json!({"model": "p/m"})),
            fast_options(),
        );
        let running = tokio::spawn({
            let rt = rt.clone();
            async move { rt.run_turn(TurnRequest::new(S, "hang")).await }
        });
        wait_for("the stalled request", || srv.request_count() == 1).await;
        let queued = tokio::spawn({
            let rt = rt.clone();
            async move { rt.run_turn(TurnRequest::new(S, "queued")).await }
        });
        wait_for("the queued message", || rt.queued(S) == 1).await;
        // /stop does not wait in the queue.
        let r = rt.send(TurnRequest::new(S, "/stop")).await.unwrap();
        assert_eq!(r, RtReply::Stopped { cancelled: true });
        assert_eq!(code(running.await.unwrap().unwrap_err()), "TURN_CANCELLED");
        assert_eq!(code(queued.await.unwrap().unwrap_err()), "TURN_CANCELLED");
        let ev = serde_json::to_value(events(&rt, S)).unwrap();
        let end = ev.as_array().unwrap().last().unwrap().clone();
        assert_eq!(end["status"], "cancelled");
        assert_eq!(end["error"]["details"]["reason"], "stop");

        // The session goes on.
        let out = rt
            .run_turn(TurnRequest::new(S, "after stop"))
            .await
            .unwrap();
        assert_eq!(out.text, "back");
        let old = rt.sessions().show(S, None).unwrap().summary;

        // /new: a fresh transcript; the old one stays.
        let r = rt.send(TurnRequest::new(S, "/new")).await.unwrap();
        let RtReply::Reset { session_id } = r else {
            panic!("{r:?}")
        };
        assert_ne!(session_id, old.session_id);
        let out = rt.run_turn(TurnRequest::new(S, "fresh")).await.unwrap();
        assert_eq!(out.text, "new session");
        assert_eq!(out.session_id, session_id);
        assert!(old.path.exists());
        let list = rt.sessions().list(None).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].session_id, session_id);
        srv.assert_clean();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_global_cap_holds_other_sessions_back() {
    let e = env(r#"mode: "off""#, "");
    let srv = ModelServer::builder(Api::OpenAi, KEY)
        .step(Reply::Stall)
        .step(Reply::text("b ran"))
        .start()
        .await;
    let (rt, _) = runtime(
        &e,
        models(
            json!({"p": provider(&srv, Api::OpenAi)}),
            json!({"model": "p/m", "maxConcurrent": 1}),
        ),
        fast_options(),
    );
    let a = tokio::spawn({
        let rt = rt.clone();
        async move { rt.run_turn(TurnRequest::new("agent:main:a", "a")).await }
    });
    wait_for("a's request", || srv.request_count() == 1).await;
    let b = tokio::spawn({
        let rt = rt.clone();
        async move { rt.run_turn(TurnRequest::new("agent:main:b", "b")).await }
    });
    // b cannot get the only slot while a holds it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(srv.request_count(), 1);
    assert_eq!(rt.running(), 1);
    assert!(rt.stop("agent:main:a"));
    assert_eq!(code(a.await.unwrap().unwrap_err()), "TURN_CANCELLED");
    assert_eq!(b.await.unwrap().unwrap().text, "b ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_and_time_limits_end_the_turn_with_an_honest_record() {
    // Rounds: a model that never stops calling tools.
    let e = env(r#"mode: "off""#, "");
    let srv = ModelServer::builder(Api::Anthropic, KEY)
        .then_repeat(Reply::tools(vec![call("ls", json!({}))]))
        .start()
        .await;
    let mut opts = fast_options();
    opts.max_rounds = 3;
    let (rt, _) = runtime(
        &e,
        models(
            json!({"p": provider(&srv, Api::Anthropic)}),
            json!({"model": "p/m"}),
        ),
        opts,
    );
    let err = rt
        .run_turn(TurnRequest::new(S, "loop"))
        .await
        .unwrap_err()
        .to_envelope();
    assert_eq!(err.code.as_str(), "TURN_LIMIT_REACHED");
    assert_eq!(err.details["limit"], "rounds");
    assert_eq!(srv.request_count(), 3);
    let k = kinds(&events(&rt, S));
    assert_eq!(k.iter().filter(|k| *k == "tool_result").count(), 3);
    assert_eq!(k.last().unwrap(), "turn_end");

    // Time: agents.defaults.timeoutSeconds against a model that never answers, and against a
    // tool that runs too long (its call is answered as interrupted).
    let e = env(r#"mode: "off""#, "");
    let srv = ModelServer::builder(Api::OpenAi, KEY)
        .step(Reply::Stall)
        .step(Reply::tools(vec![call(
            "exec",
            json!({"command": "sleep 30"}),
        )]))
        .step(Step::with(|seen| {
            let r = seen.tool_results();
            assert_eq!(r.len(), 1);
            assert!(r[0].content.contains("interrupted"), "{}", r[0].content);
            Reply::text("ok")
        }))
        .start()
        .await;
    let (rt, _) = runtime(
        &e,
        models(
            json!({"p": provider(&srv, Api::OpenAi)}),
            json!({"model": "p/m", "timeoutSeconds": 1}),
        ),
        fast_options(),
    );
    let err = rt
        .run_turn(TurnRequest::new(S, "slow model"))
        .await
        .unwrap_err()
        .to_envelope();
    assert_eq!(err.code.as_str(), "TURN_LIMIT_REACHED");
    assert_eq!(err.details["limit"], "time");
    let err = rt
        .run_turn(TurnRequest::new(S, "slow tool"))
        .await
        .unwrap_err()
        .to_envelope();
    assert_eq!(err.details["limit"], "time");
    let ev = serde_json::to_value(events(&rt, S)).unwrap();
    let interrupted: Vec<_> = ev
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "tool_result" && e["interrupted"] == true)
        .collect();
    assert_eq!(interrupted.len(), 1);
    // The next turn's request is valid (the server checks every call has its result).
    assert_eq!(
        rt.run_turn(TurnRequest::new(S, "next")).await.unwrap().text,
        "ok"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_session_busy() {
    let e = env(r#"mode: "off""#, "");
    let srv = ModelServer::builder(Api::OpenAi, KEY)
        .then_repeat(Reply::Stall)
        .start()
        .await;
    let mut opts = fast_options();
    opts.max_queue = 1;
    let (rt, _) = runtime(
        &e,
        models(
            json!({"p": provider(&srv, Api::OpenAi)}),
            json!({"model": "p/m"}),
        ),
        opts,
    );
    let first = tokio::spawn({
        let rt = rt.clone();
        async move { rt.run_turn(TurnRequest::new(S, "1")).await }
    });
    wait_for("the first request", || srv.request_count() == 1).await;
    let second = tokio::spawn({
        let rt = rt.clone();
        async move { rt.run_turn(TurnRequest::new(S, "2")).await }
    });
    wait_for("the queued message", || rt.queued(S) == 1).await;
    let err = rt
        .run_turn(TurnRequest::new(S, "3"))
        .await
        .unwrap_err()
        .to_envelope();
    assert_eq!(err.code.as_str(), "SESSION_BUSY");
    assert_eq!(err.code.http_status(), 429);
    rt.shutdown();
    assert_eq!(code(first.await.unwrap().unwrap_err()), "TURN_CANCELLED");
    assert!(second.await.unwrap().is_err());
}
