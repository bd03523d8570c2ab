//! The webhook ingress, called the way the gateway's route calls it: the token check (bearer,
//! `x-openclaw-token`, never the query string), the body rules, a synchronous answer, and a
//! delivery to a named channel and target through the outbound checks.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use carapace_inbound::{WebhookRequest, WebhookResponse};
use carapace_testkit::model_server::{ModelServer, Reply, Step};
use common::*;
use serde_json::{Value, json};

const TOKEN: &str = "hook-token-0123456789-secret";

async fn call(
    svc: &carapace_inbound::InboundService,
    path: &str,
    query: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> WebhookResponse {
    let mut h = http::HeaderMap::new();
    for (k, v) in headers {
        h.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    svc.handle_webhook(WebhookRequest {
        path,
        query,
        headers: &h,
        body: body.as_bytes(),
    })
    .await
}

fn bearer() -> (&'static str, String) {
    ("authorization", format!("Bearer {TOKEN}"))
}

fn code(r: &WebhookResponse) -> &str {
    r.body["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_means_not_found() {
    let srv = ModelServer::builder(api(), KEY).start().await;
    let env = env_with(r#"mode: "off""#, "", &[]);
    let (svc, _, _) = service(&env, models(&srv));
    let r = call(&svc, "/hooks/agent", None, &[], r#"{"message": "x"}"#).await;
    assert_eq!((r.status, code(&r)), (404, "NOT_FOUND"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_and_body_rules() {
    let srv = ModelServer::builder(api(), KEY).start().await;
    let env = env_with(
        r#"mode: "off""#,
        r#"hooks: { enabled: true, token: "${HOOKS_TOKEN}", maxBodyBytes: 2000 }"#,
        &[("HOOKS_TOKEN", TOKEN)],
    );
    let (svc, _, _) = service(&env, models(&srv));
    let (hk, hv) = bearer();
    let good = [(hk, hv.as_str())];
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Vec<(&'a str, &'a str)>,
        String,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            "/hooks/agent",
            None,
            vec![],
            r#"{"message":"x"}"#.into(),
            401,
            "UNAUTHORIZED",
        ),
        (
            "/hooks/agent",
            None,
            vec![("authorization", "Bearer wrong-token-0123456789-secre")],
            r#"{"message":"x"}"#.into(),
            401,
            "UNAUTHORIZED",
        ),
        (
            "/hooks/agent",
            None,
            vec![("authorization", TOKEN)],
            r#"{"message":"x"}"#.into(),
            401,
            "UNAUTHORIZED",
        ),
        (
            "/hooks/agent",
            Some("token=hook-token-0123456789-secret"),
            vec![],
            r#"{"message":"x"}"#.into(),
            400,
            "BAD_REQUEST",
        ),
        (
            "/hooks/agent",
            None,
            good.to_vec(),
            "not json".into(),
            400,
            "BAD_REQUEST",
        ),
        (
            "/hooks/agent",
            None,
            good.to_vec(),
            "[1]".into(),
            400,
            "BAD_REQUEST",
        ),
        (
            "/hooks/agent",
            None,
            good.to_vec(),
            r#"{"message":"x","mesage":"typo"}"#.into(),
            400,
            "BAD_REQUEST",
        ),
        (
            "/hooks/agent",
            None,
            good.to_vec(),
            r#"{"name":"no message"}"#.into(),
            400,
            "BAD_REQUEST",
        ),
        (
            "/hooks/agent",
            None,
            good.to_vec(),
            r#"{"message":"x","sessionKey":"hook:mine"}"#.into(),
            400,
            "BAD_REQUEST",
        ),
        (
            "/hooks/agent",
            None,
            good.to_vec(),
            r#"{"message":"x","channel":"last","to":"y"}"#.into(),
            400,
            "BAD_REQUEST",
        ),
        (
            "/hooks/agent",
            None,
            good.to_vec(),
            r#"{"message":"x","channel":"inbox"}"#.into(),
            400,
            "BAD_REQUEST",
        ),
        (
            "/hooks/agent",
            None,
            good.to_vec(),
            r#"{"message":"x","channel":"telegram","to":"42"}"#.into(),
            400,
            "CHANNEL_NOT_CONFIGURED",
        ),
        (
            "/hooks/agent",
            None,
            good.to_vec(),
            format!(r#"{{"message":"{}"}}"#, "x".repeat(3000)),
            413,
            "TOO_LARGE",
        ),
        (
            "/hooks/wake",
            None,
            good.to_vec(),
            r#"{"text":"x"}"#.into(),
            404,
            "NOT_FOUND",
        ),
        (
            "/hooks/other",
            None,
            good.to_vec(),
            r#"{"message":"x"}"#.into(),
            404,
            "NOT_FOUND",
        ),
        (
            "/elsewhere",
            None,
            good.to_vec(),
            r#"{"message":"x"}"#.into(),
            404,
            "NOT_FOUND",
        ),
    ];
    for (path, q, h, body, status, c) in cases {
        let r = call(&svc, path, q, &h, &body).await;
        assert_eq!(
            (r.status, code(&r)),
            (status, c),
            "{path} {q:?} {h:?} {body:.60}: {}",
            r.body
        );
        assert!(
            !r.body.to_string().contains(TOKEN),
            "the token never comes back"
        );
        assert_eq!(r.body["ok"], false);
    }
    assert_eq!(
        srv.request_count(),
        0,
        "no refused request reached the model"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronous_answer_and_a_delivery_to_a_channel() {
    let srv = ModelServer::builder(api(), KEY)
        .then_repeat(Step::with(|seen| {
            let u = seen.last_user_text();
            assert!(
                u.starts_with("[webhook CI: the message below comes from an external system"),
                "{u}"
            );
            let body = u.lines().nth(1).unwrap_or_default().to_string();
            if let Some(path) = body.strip_prefix("attach ") {
                return Reply::text(&format!("report attached\nMEDIA:{path}"));
            }
            Reply::text(&format!("done: {body}"))
        }))
        .start()
        .await;
    let env = env_with(
        r#"mode: "off""#,
        r#"hooks: { enabled: true, token: "${HOOKS_TOKEN}", path: "/ingest", allowRequestSessionKey: true, allowedSessionKeyPrefixes: ["hook:ci:"] },
           channels: { inbox: { dir: "${INBOX}" } }"#,
        &[("HOOKS_TOKEN", TOKEN)],
    );
    let (svc, _, _) = service(&env, models(&srv));
    let r = call(
        &svc,
        "/ingest/agent",
        None,
        &[("x-openclaw-token", TOKEN)],
        r#"{"message": "build 41 passed", "name": "CI", "wakeMode": "now", "thinking": "low"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["reply"], "done: build 41 passed");
    let key = r.body["sessionKey"].as_str().unwrap();
    assert!(key.starts_with("agent:main:hook:"), "{key}");
    // A caller-named session, within the allowed prefixes; twice the same key is one session.
    for _ in 0..2 {
        let r = call(
            &svc,
            "/ingest/agent",
            None,
            &[("authorization", &format!("Bearer {TOKEN}"))],
            r#"{"message": "again", "name": "CI", "sessionKey": "hook:ci:main"}"#,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["sessionKey"], "agent:main:hook:ci:main");
    }
    let r = call(
        &svc,
        "/ingest/agent",
        None,
        &[("authorization", &format!("Bearer {TOKEN}"))],
        r#"{"message": "x", "name": "CI", "sessionKey": "agent:main:telegram:direct:42"}"#,
    )
    .await;
    assert_eq!(
        r.status, 400,
        "a webhook cannot speak in someone's DM session: {}",
        r.body
    );

    // Delivery: 202 at once, the reply in the channel, with its attachment checked like any send.
    let report = env.media.join("report.txt");
    std::fs::create_dir_all(&env.media).unwrap();
    std::fs::write(&report, "all green\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&report, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = call(
        &svc,
        "/ingest/agent",
        None,
        &[("authorization", &format!("Bearer {TOKEN}"))],
        &json!({"message": format!("attach {}", report.display()), "name": "CI", "channel": "inbox", "to": "user:ops"}).to_string(),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert!(r.body["runId"].is_string());
    let dir = env.inbox.join("user-ops");
    until("the delivered reply", || {
        files(&dir)
            .iter()
            .any(|f| f.extension().is_some_and(|x| x == "json"))
    })
    .await;
    let doc: Value = serde_json::from_slice(
        &std::fs::read(
            files(&dir)
                .into_iter()
                .find(|f| f.extension().is_some_and(|x| x == "json"))
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(doc["text"], "report attached");
    let att = files(&dir)
        .into_iter()
        .find(|f| f.extension().is_some_and(|x| x == "txt"))
        .unwrap();
    assert_eq!(std::fs::read(att).unwrap(), b"all green\n");
}
