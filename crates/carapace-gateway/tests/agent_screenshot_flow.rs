//! The screenshot-and-send flow end to end through a running gateway, under `umask 077` (process-wide, hence
//! a test binary of its own): an OpenAI client asks `POST /v1/chat/completions` to
//! "screenshot this page and send it to me"; the scripted model calls `browser` (real
//! Chromium, a loopback page) and then `message` to the inbox; the PNG arrives in the inbox
//! byte for byte as the media store holds it, at 0644, and the audit log has both calls.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod agent_support;

use std::os::unix::fs::PermissionsExt;

use agent_support::*;
use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use carapace_testkit::model_server::{Api, ModelServer, Reply, Step, call};
use serde_json::{Value, json};

const PAGE: &str = r#"<!doctype html><html><head><style>
html,body{margin:0;background:#fff}
#box{position:absolute;left:0;top:0;width:300px;height:200px;background:rgb(0,0,255)}
</style></head><body><div id="box"></div></body></html>"#;

async fn page_server() -> String {
    let app = Router::new().route(
        "/page",
        get(|| async {
            ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response()
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    format!("http://{addr}/page")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshot_this_page_and_send_it_to_me_over_chat_completions() {
    if !carapace_testkit::require(
        "chromium",
        carapace_testkit::have_program("chromium"),
        "apt-get install -y chromium",
    ) {
        return;
    }
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let url = page_server().await;
    let u = url.clone();
    let srv = ModelServer::builder(Api::OpenAi, KEY)
        .step(Step::with(move |seen| {
            assert!(seen.last_user_text().contains("screenshot"));
            Reply::tools(vec![call(
                "browser",
                json!({"action": "screenshot", "url": u, "width": 300, "height": 200}),
            )])
        }))
        .step(Step::with(|seen| {
            let (r, v) = seen.last_tool_result().unwrap();
            assert_eq!(r.name, "browser");
            assert_eq!(v["mime"], "image/png", "{}", r.content);
            Reply::tools(vec![call(
                "message",
                json!({"action": "send", "channel": "inbox", "target": "user:alice",
                       "message": "Here is the screenshot.", "media": v["path"]}),
            )])
        }))
        .step(Step::with(|seen| {
            let (r, _) = seen.last_tool_result().unwrap();
            assert_eq!(r.name, "message");
            assert!(!r.content.contains("\"ok\":false"), "{}", r.content);
            Reply::text("Sent.")
        }))
        .start()
        .await;
    let gw = start(
        r#"mode: "off""#,
        &provider(&srv, Api::OpenAi),
        "browser: { allowPrivateNetwork: true },",
    )
    .await;
    let (s, v) = chat(
        gw.addr,
        json!({"model": "openclaw:main", "user": "alice",
               "messages": [{"role": "user", "content": format!("screenshot this page and send it to me: {url}")}]}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["choices"][0]["message"]["content"], "Sent.");

    let media = files(&gw.media);
    assert_eq!(media.len(), 1, "{media:?}");
    let shot = std::fs::read(&media[0]).unwrap();
    assert!(shot.starts_with(b"\x89PNG\r\n\x1a\n"));
    let att: Vec<_> = files(&gw.inbox.join("user-alice"))
        .into_iter()
        .filter(|f| f.extension().is_none_or(|x| x != "json"))
        .collect();
    assert_eq!(att.len(), 1, "{att:?}");
    assert_eq!(std::fs::read(&att[0]).unwrap(), shot, "byte for byte");
    assert_eq!(
        std::fs::metadata(&att[0]).unwrap().permissions().mode() & 0o777,
        0o644,
        "0644 under umask 077"
    );
    let audit = audit_text(&gw);
    let tools: Vec<String> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["transport"] == "agent")
        .map(|l| l["tool"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(tools, ["browser", "message"], "{audit}");
    srv.assert_clean();
}
