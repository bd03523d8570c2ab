//! The flows carapace exists for, end to end through the agent loop, under `umask 077`
//! (process-wide, hence this test binary of its own):
//! - "screenshot this page and send it to me": the scripted model calls `browser` on a loopback
//!   page (real Chromium), then `message` to the inbox channel; the PNG arrives in the inbox
//!   byte for byte, at 0644;
//! - a 0600 attachment comes back to the model as `OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE` with its
//!   hint; the model follows it (`chmod 644` through `exec`, then send) and the file arrives.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::os::unix::fs::PermissionsExt;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use carapace_agent::TurnRequest;
use carapace_testkit::model_server::{Api, ModelServer, Reply, Step, call};
use common::*;
use serde_json::{Value, json};

const S: &str = "agent:main:inbox:direct:alice";

const PAGE: &str = r#"<!doctype html><html><head><style>
html,body{margin:0;background:#fff}
#box{position:absolute;left:0;top:0;width:300px;height:200px;background:rgb(255,0,0)}
</style></head><body><div id="box"></div></body></html>"#;

fn umask_077() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

fn require_chromium() -> bool {
    carapace_testkit::require(
        "chromium",
        carapace_testkit::have_program("chromium"),
        "apt-get install -y chromium",
    )
}

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

/// The inbox files of `user:alice`: (attachment paths, message JSON documents).
fn inbox(e: &Env) -> (Vec<std::path::PathBuf>, Vec<Value>) {
    let dir = e.inbox.join("user-alice");
    let mut att = Vec::new();
    let mut docs = Vec::new();
    for f in files(&dir) {
        if f.extension().is_some_and(|x| x == "json") {
            docs.push(serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap());
        } else {
            att.push(f);
        }
    }
    (att, docs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshot_this_page_and_send_it_to_me() {
    if !require_chromium() {
        return;
    }
    umask_077();
    let url = page_server().await;
    for (api, stream) in [(Api::OpenAi, true), (Api::Anthropic, false)] {
        let e = env(r#"mode: "off""#, "browser: { allowPrivateNetwork: true }");
        let u = url.clone();
        let srv = ModelServer::builder(api, KEY)
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
                assert!(!r.is_error, "{}", r.content);
                assert_eq!(v["mime"], "image/png");
                assert_eq!(v["mode"], "0644");
                Reply::tools(vec![call(
                    "message",
                    json!({"action": "send", "channel": "inbox", "target": "user:alice",
                           "message": "Here is the screenshot.", "media": v["path"]}),
                )])
            }))
            .step(Step::with(|seen| {
                let (r, v) = seen.last_tool_result().unwrap();
                assert_eq!(r.name, "message");
                assert!(!r.is_error, "{}", r.content);
                Reply::text(&format!("Sent ({} bytes).", v["attachments"][0]["bytes"]))
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
        let out = rt
            .run_turn(TurnRequest::new(
                S,
                &format!("screenshot this page and send it to me: {url}"),
            ))
            .await
            .unwrap();
        assert!(out.text.starts_with("Sent ("), "{}", out.text);
        assert_eq!(out.tool_calls, 2);

        // The PNG in the media store and the one in the inbox: same bytes, both 0644.
        let media = files(&e.media);
        assert_eq!(media.len(), 1, "{media:?}");
        let shot = std::fs::read(&media[0]).unwrap();
        assert!(shot.starts_with(b"\x89PNG\r\n\x1a\n"));
        let (att, docs) = inbox(&e);
        assert_eq!(att.len(), 1, "{att:?}");
        assert_eq!(std::fs::read(&att[0]).unwrap(), shot, "byte for byte");
        assert_eq!(
            std::fs::metadata(&att[0]).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(docs[0]["text"], "Here is the screenshot.");
        // The transcript and its directory are private whatever the umask.
        let dir = sessions_dir(&e);
        assert_eq!(mode(&dir), 0o700);
        for f in files(&dir) {
            assert_eq!(mode(&f), 0o600);
        }
        srv.assert_clean();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_0600_attachment_is_a_typed_result_the_model_recovers_from() {
    umask_077();
    for (api, stream) in [(Api::Anthropic, true), (Api::OpenAi, false)] {
        let e = env(r#"mode: "off""#, "");
        let bytes = b"\x89PNG\r\n\x1a\nnot really a png but private bytes".to_vec();
        let private = e.ws.join("private.png");
        std::fs::write(&private, &bytes).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
        let srv = ModelServer::builder(api, KEY)
            .step(Reply::tools(vec![call(
                "message",
                json!({"action": "send", "channel": "inbox", "target": "user:alice", "media": "/workspace/private.png"}),
            )]))
            .step(Step::with(|seen| {
                let (r, v) = seen.last_tool_result().unwrap();
                assert_eq!(v["ok"], false, "{}", r.content);
                assert_eq!(v["error"]["code"], "OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE");
                assert_eq!(v["error"]["details"]["mode"], "0600");
                let hint = v["error"]["hint"].as_str().unwrap();
                assert!(hint.contains("chmod 644 /workspace/private.png"), "{hint}");
                if seen.api == Api::Anthropic {
                    assert!(r.is_error);
                }
                // Follow the hint: the file is meant to be shared, so make it shareable.
                Reply::tools(vec![call("exec", json!({"command": "chmod 644 private.png"}))])
            }))
            .step(Step::with(|seen| {
                let (r, v) = seen.last_tool_result().unwrap();
                assert!(!r.is_error, "{}", r.content);
                assert_eq!(v["exitCode"], 0, "{}", r.content);
                Reply::tools(vec![call(
                    "message",
                    json!({"action": "send", "channel": "inbox", "target": "user:alice", "media": "/workspace/private.png"}),
                )])
            }))
            .step(Reply::text("Sent it after making it shareable."))
            .start()
            .await;
        let mut opts = fast_options();
        opts.stream = stream;
        let (rt, _) = runtime(
            &e,
            models(json!({"p": provider(&srv, api)}), json!({"model": "p/m"})),
            opts,
        );
        let out = rt
            .run_turn(TurnRequest::new(S, "send me private.png"))
            .await
            .unwrap();
        assert_eq!(out.text, "Sent it after making it shareable.");
        assert_eq!(out.tool_calls, 3);
        let (att, _) = inbox(&e);
        assert_eq!(att.len(), 1, "only the second send delivered");
        assert_eq!(std::fs::read(&att[0]).unwrap(), bytes);
        assert_eq!(
            std::fs::metadata(&att[0]).unwrap().permissions().mode() & 0o777,
            0o644
        );
        // The model changed the mode it was told to change, and nothing else.
        assert_eq!(
            std::fs::metadata(&private).unwrap().permissions().mode() & 0o777,
            0o644
        );
        // The refusal is in the transcript as a tool result, not a failed turn.
        let ev = serde_json::to_value(events(&rt, S)).unwrap();
        let first = ev
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["type"] == "tool_result")
            .unwrap()
            .clone();
        assert_eq!(first["ok"], false);
        assert!(
            first["content"]
                .as_str()
                .unwrap()
                .contains("OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE")
        );
        assert_eq!(
            ev.as_array().unwrap().last().unwrap()["status"],
            "completed"
        );
        srv.assert_clean();
    }
}
