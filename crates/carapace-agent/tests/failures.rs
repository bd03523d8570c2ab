//! Failures of the model: 429 with Retry-After then success, 5xx and broken streams retried,
//! a dead primary falling back, a 401 falling back without retries, every model failing with
//! a typed code and the facts, and no key in any error or record.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use carapace_agent::TurnRequest;
use carapace_policy::CarapaceError;
use carapace_testkit::model_server::{Api, ModelServer, Reply};
use common::*;
use serde_json::json;

const S: &str = "agent:main:inbox:direct:bob";

/// A loopback port nothing listens on.
async fn dead_url(api: Api) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    match api {
        Api::OpenAi => format!("http://{addr}/v1"),
        Api::Anthropic => format!("http://{addr}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_retried_then_succeed() {
    for api in [Api::OpenAi, Api::Anthropic] {
        for stream in [true, false] {
            let e = env(r#"mode: "off""#, "");
            let srv = ModelServer::builder(api, KEY)
                .step(Reply::rate_limited(1))
                .step(Reply::status(503))
                .step(Reply::CutStream("partial".into()))
                .step(Reply::text("finally"))
                .start()
                .await;
            let mut opts = fast_options();
            opts.stream = stream;
            opts.retry.max_attempts = 4;
            let (rt, records) = runtime(
                &e,
                models(json!({"p": provider(&srv, api)}), json!({"model": "p/m"})),
                opts,
            );
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let mut req = TurnRequest::new(S, "hi");
            req.events = Some(tx);
            let out = rt.run_turn(req).await.unwrap();
            assert_eq!(out.text, "finally", "{api:?} {stream}");
            let outcomes: Vec<(String, Option<u16>, u32)> = records
                .all()
                .into_iter()
                .map(|r| (r.outcome, r.status, r.attempt))
                .collect();
            assert_eq!(
                outcomes,
                [
                    ("MODEL_RATE_LIMITED".to_string(), Some(429), 1),
                    ("MODEL_UNAVAILABLE".to_string(), Some(503), 2),
                    ("MODEL_UNAVAILABLE".to_string(), None, 3),
                    ("ok".to_string(), None, 4),
                ]
            );
            // The live events say the partial text is void.
            let mut retries = 0;
            while let Ok(ev) = rx.try_recv() {
                if matches!(ev, carapace_agent::LiveEvent::ModelRetry { .. }) {
                    retries += 1;
                }
            }
            assert_eq!(retries, 3);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_primary_falls_back_and_a_401_falls_back_without_retries() {
    for api in [Api::OpenAi, Api::Anthropic] {
        let e = env(r#"mode: "off""#, "");
        let good = ModelServer::builder(api, KEY)
            .step(Reply::text("from the fallback"))
            .step(Reply::text("again from the fallback"))
            .start()
            .await;
        let dead = dead_url(api).await;
        let (rt, records) = runtime(
            &e,
            models(
                json!({"dead": provider_at(&dead, api), "good": provider(&good, api)}),
                json!({"model": {"primary": "dead/m", "fallbacks": ["good/m"]}}),
            ),
            fast_options(),
        );
        let out = rt.run_turn(TurnRequest::new(S, "hi")).await.unwrap();
        assert_eq!(out.text, "from the fallback");
        assert_eq!(out.model, "good/m");
        let recs = records.all();
        assert_eq!(
            recs.len(),
            4,
            "three attempts on the dead primary, then the fallback"
        );
        assert!(
            recs[..3]
                .iter()
                .all(|r| r.provider == "dead" && r.outcome == "MODEL_UNAVAILABLE")
        );
        assert_eq!(recs[3].provider, "good");
        // The transcript says which model answered.
        let ev = serde_json::to_value(events(&rt, S)).unwrap();
        assert_eq!(ev[2]["provider"], "good");

        // A wrong key is not retried: one attempt, then the fallback.
        let e = env(r#"mode: "off""#, "");
        let wrong = ModelServer::builder(api, "another-key").start().await;
        let (rt, records) = runtime(
            &e,
            models(
                json!({"wrong": provider(&wrong, api), "good": provider(&good, api)}),
                json!({"model": {"primary": "wrong/m", "fallbacks": ["good/m"]}}),
            ),
            fast_options(),
        );
        let out = rt.run_turn(TurnRequest::new(S, "hi")).await.unwrap();
        assert_eq!(out.text, "again from the fallback");
        let recs = records.all();
        assert_eq!(recs[0].outcome, "MODEL_UNAUTHORIZED");
        assert_eq!(recs[0].status, Some(401));
        assert_eq!(recs.len(), 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_model_fails_the_error_is_typed_and_keyless() {
    for api in [Api::OpenAi, Api::Anthropic] {
        let e = env(r#"mode: "off""#, "");
        let srv = ModelServer::builder(api, KEY)
            .then_repeat(Reply::Status {
                status: 500,
                retry_after: None,
                message: format!("internal error for key {KEY}"),
            })
            .start()
            .await;
        let (rt, records) = runtime(
            &e,
            models(json!({"p": provider(&srv, api)}), json!({"model": "p/m"})),
            fast_options(),
        );
        let err = rt.run_turn(TurnRequest::new(S, "hi")).await.unwrap_err();
        let env_ = err.to_envelope();
        assert_eq!(env_.code.as_str(), "MODEL_UNAVAILABLE");
        assert_eq!(env_.code.http_status(), 502);
        assert_eq!(env_.details["status"], 500);
        assert_eq!(env_.details["attempts"].as_array().unwrap().len(), 3);
        let text = serde_json::to_string(&env_).unwrap();
        assert!(
            !text.contains(KEY),
            "the upstream echoed the key; it must be redacted: {text}"
        );
        assert!(text.contains("***"));
        assert_eq!(records.all().len(), 3);
        let ev = serde_json::to_value(events(&rt, S)).unwrap();
        let end = ev.as_array().unwrap().last().unwrap();
        assert_eq!(end["type"], "turn_end");
        assert_eq!(end["status"], "failed");
        assert_eq!(end["error"]["code"], "MODEL_UNAVAILABLE");
        assert_no_key_under(&e.state);

        // A rejected request (400) is not retried and is MODEL_REJECTED.
        let e = env(r#"mode: "off""#, "");
        let srv = ModelServer::builder(api, KEY)
            .step(Reply::status(400))
            .start()
            .await;
        let (rt, records) = runtime(
            &e,
            models(json!({"p": provider(&srv, api)}), json!({"model": "p/m"})),
            fast_options(),
        );
        let err = rt
            .run_turn(TurnRequest::new(S, "hi"))
            .await
            .unwrap_err()
            .to_envelope();
        assert_eq!(err.code.as_str(), "MODEL_REJECTED");
        assert_eq!(records.all().len(), 1);

        // Rate limited on every attempt: MODEL_RATE_LIMITED with the Retry-After.
        let e = env(r#"mode: "off""#, "");
        let srv = ModelServer::builder(api, KEY)
            .then_repeat(Reply::rate_limited(0))
            .start()
            .await;
        let (rt, _) = runtime(
            &e,
            models(json!({"p": provider(&srv, api)}), json!({"model": "p/m"})),
            fast_options(),
        );
        let err = rt
            .run_turn(TurnRequest::new(S, "hi"))
            .await
            .unwrap_err()
            .to_envelope();
        assert_eq!(err.code.as_str(), "MODEL_RATE_LIMITED");
        assert_eq!(err.code.http_status(), 429);
        assert_eq!(err.details["retryAfterSeconds"], 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_longer_than_the_cap_goes_to_the_fallback_at_once() {
    let e = env(r#"mode: "off""#, "");
    let slow = ModelServer::builder(Api::OpenAi, KEY)
        .step(Reply::rate_limited(3600))
        .start()
        .await;
    let good = ModelServer::builder(Api::Anthropic, KEY)
        .step(Reply::text("ok"))
        .start()
        .await;
    let (rt, records) = runtime(
        &e,
        models(
            json!({"slow": provider(&slow, Api::OpenAi), "good": provider(&good, Api::Anthropic)}),
            json!({"model": {"primary": "slow/m", "fallbacks": ["good/m"]}}),
        ),
        fast_options(),
    );
    let out = rt.run_turn(TurnRequest::new(S, "hi")).await.unwrap();
    assert_eq!(out.text, "ok");
    assert_eq!(
        records.all().len(),
        2,
        "an hour-long Retry-After is not waited for"
    );
}
