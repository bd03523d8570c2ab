//! Slack adapter against a loopback fake Web API + upload host that enforce the documented
//! external upload flow.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::response::Response;
use carapace_channels::{
    ChannelAdapter, ChannelError, OutboundMessage, SlackAdapter, SlackSettings, Target,
};
use carapace_policy::{CarapaceError, ErrorCode};
use carapace_testkit::png::png_of_len;
use common::*;
use serde_json::{Value, json};

const TOKEN: &str = "xoxb-SECRET-slack";

fn adapter(base: &str) -> SlackAdapter {
    let mut s = SlackSettings::new(TOKEN);
    s.api_base_url = format!("{base}/api");
    s.retry = fast_retry();
    s.timeouts = fast_timeouts();
    SlackAdapter::new(s).unwrap()
}

fn slack_err(e: &str) -> Response {
    json(200, json!({"ok": false, "error": e}))
}

/// The fake's memory: declared lengths per file id, and which uploads completed.
#[derive(Default)]
struct State {
    declared: HashMap<String, u64>,
    uploaded: HashMap<String, Vec<u8>>,
}

/// Slack with an override hook: `hook` may answer first (after format checks).
fn slack(
    upload_host: Option<String>,
    hook: impl Fn(&Received) -> Option<Response> + Send + Sync + 'static,
) -> impl Fn(&Received) -> Response + Send + Sync + 'static {
    let state = Arc::new(Mutex::new(State::default()));
    move |r: &Received| {
        if r.method != "POST" {
            return plain(405, "method not allowed");
        }
        if let Some(id) = r.path.strip_prefix("/upload/") {
            if r.header("authorization").is_some() {
                return plain(400, "the upload URL is pre-signed: no Authorization");
            }
            let st = &mut *state.lock().unwrap();
            let Some(&len) = st.declared.get(id) else {
                return plain(404, "unknown upload");
            };
            if r.body.len() as u64 != len {
                return plain(400, "length mismatch");
            }
            if let Some(resp) = hook(r) {
                return resp;
            }
            st.uploaded.insert(id.to_string(), r.body.clone());
            return plain(200, &format!("OK - {len}"));
        }
        let Some(method) = r.path.strip_prefix("/api/") else {
            return plain(404, "not found");
        };
        if r.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
            return slack_err("invalid_auth");
        }
        let bad = match method {
            "files.getUploadURLExternal" => {
                let form: HashMap<_, _> = r.form().into_iter().collect();
                !r.content_type
                    .starts_with("application/x-www-form-urlencoded")
                    || form.get("filename").is_none_or(|f| f.is_empty())
                    || form
                        .get("length")
                        .and_then(|l| l.parse::<u64>().ok())
                        .is_none()
            }
            "files.completeUploadExternal" => {
                let j = r.json.clone().unwrap_or(Value::Null);
                let st = state.lock().unwrap();
                !r.content_type.starts_with("application/json")
                    || j["channel_id"].as_str().is_none()
                    || j["files"].as_array().is_none_or(|fs| {
                        fs.is_empty()
                            || fs.iter().any(|f| {
                                f["id"]
                                    .as_str()
                                    .is_none_or(|id| !st.uploaded.contains_key(id))
                            })
                    })
            }
            "conversations.open" => r.json.as_ref().and_then(|j| j["users"].as_str()).is_none(),
            "chat.postMessage" => {
                let j = r.json.clone().unwrap_or(Value::Null);
                j["channel"].as_str().is_none() || j["text"].as_str().is_none_or(str::is_empty)
            }
            _ => return slack_err("unknown_method"),
        };
        if bad {
            return slack_err("invalid_arguments");
        }
        if let Some(resp) = hook(r) {
            return resp;
        }
        match method {
            "files.getUploadURLExternal" => {
                let form: HashMap<_, _> = r.form().into_iter().collect();
                let id = format!("F{}", r.index);
                state
                    .lock()
                    .unwrap()
                    .declared
                    .insert(id.clone(), form["length"].parse().unwrap());
                let host = upload_host
                    .clone()
                    .unwrap_or_else(|| format!("http://{}", r.header("host").unwrap()));
                json(
                    200,
                    json!({"ok": true, "upload_url": format!("{host}/upload/{id}"), "file_id": id}),
                )
            }
            "files.completeUploadExternal" => {
                let j = r.json.clone().unwrap();
                let files: Vec<Value> = j["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| json!({"id": f["id"], "title": f["title"]}))
                    .collect();
                json(200, json!({"ok": true, "files": files}))
            }
            "conversations.open" => {
                let u = r.json.as_ref().unwrap()["users"]
                    .as_str()
                    .unwrap()
                    .to_string();
                json(200, json!({"ok": true, "channel": {"id": format!("D{u}")}}))
            }
            _ => json(
                200,
                json!({"ok": true, "channel": "C1", "ts": format!("1700000000.{:06}", r.index)}),
            ),
        }
    }
}

fn api_calls(fake: &Fake) -> Vec<String> {
    fake.requests()
        .iter()
        .map(|r| r.path.trim_start_matches("/api/").to_string())
        .collect()
}

#[tokio::test]
async fn external_upload_flow_with_initial_comment() {
    let fake = Fake::start(slack(None, |_| None)).await;
    let a_bytes = png_of_len(70_000, 1);
    let b_bytes = content(3000);
    let d = adapter(&fake.base)
        .send(OutboundMessage {
            target: Target::parse("channel:C0NF841BK").unwrap(),
            text: Some("results".into()),
            caption: Some("two files".into()),
            progress: None,
            attachments: vec![
                attachment(&a_bytes, "plot.png", "image/png"),
                attachment(&b_bytes, "data.csv", "text/csv"),
            ],
            thread: None,
        })
        .await
        .unwrap();
    let reqs = fake.requests();
    assert_eq!(
        api_calls(&fake),
        [
            "files.getUploadURLExternal",
            "/upload/F0",
            "files.getUploadURLExternal",
            "/upload/F2",
            "files.completeUploadExternal"
        ]
    );
    let form: HashMap<_, _> = reqs[0].form().into_iter().collect();
    assert_eq!(form["filename"], "plot.png");
    assert_eq!(form["length"], a_bytes.len().to_string());
    assert_eq!(reqs[1].body, a_bytes);
    assert_eq!(
        reqs[1].header("content-length"),
        Some(a_bytes.len().to_string().as_str())
    );
    assert!(
        reqs[1].header("authorization").is_none(),
        "no token to the upload host"
    );
    assert_eq!(reqs[3].body, b_bytes);
    let done = reqs[4].json.as_ref().unwrap();
    assert_eq!(done["channel_id"], "C0NF841BK");
    assert_eq!(done["initial_comment"], "results\n\ntwo files");
    assert_eq!(
        done["files"],
        json!([{"id": "F0", "title": "plot.png"}, {"id": "F2", "title": "data.csv"}])
    );
    assert_eq!(d.remote_id, "F0");
    assert_eq!(d.attachments[1].remote_id, "F2");
    assert_eq!(d.attachments[1].bytes, 3000);
}

#[tokio::test]
async fn user_target_opens_a_conversation_once_and_text_goes_by_post_message() {
    let fake = Fake::start(slack(None, |_| None)).await;
    let a = adapter(&fake.base);
    for _ in 0..2 {
        let d = a
            .send(OutboundMessage::text(Target::User("U123".into()), "hello"))
            .await
            .unwrap();
        assert!(d.remote_id.starts_with("1700000000."));
    }
    assert_eq!(
        api_calls(&fake),
        ["conversations.open", "chat.postMessage", "chat.postMessage"]
    );
    let reqs = fake.requests();
    assert_eq!(reqs[0].json.as_ref().unwrap()["users"], "U123");
    assert_eq!(reqs[1].json.as_ref().unwrap()["channel"], "DU123");
    assert_eq!(reqs[1].json.as_ref().unwrap()["text"], "hello");
}

#[tokio::test]
async fn ok_false_invalid_auth_is_unauthorized_and_the_token_stays_secret() {
    let fake = Fake::start(slack(None, |_| None)).await;
    let mut s = SlackSettings::new("xoxb-SECRET-wrong");
    s.api_base_url = format!("{}/api", fake.base);
    let a = SlackAdapter::new(s).unwrap();
    let e = a
        .send(OutboundMessage::text(Target::Channel("C1".into()), "hi"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ChannelUnauthorized);
    assert!(e.to_string().contains("invalid_auth"));
    let all = format!("{e} {e:?} {a:?} {}", e.to_envelope().to_response_json());
    assert!(!all.contains("SECRET"), "{all}");
}

#[tokio::test]
async fn ok_false_is_rejected_with_slacks_error_and_status_200() {
    let fake = Fake::start(slack(None, |r| {
        r.path
            .ends_with("completeUploadExternal")
            .then(|| slack_err("channel_not_found"))
    }))
    .await;
    let e = adapter(&fake.base)
        .send(OutboundMessage {
            target: Target::Channel("CNOPE".into()),
            text: None,
            caption: None,
            progress: None,
            attachments: vec![attachment(&content(10), "a.txt", "text/plain")],
            thread: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ChannelRejected);
    assert_eq!(e.details()["platformError"], "channel_not_found");
    assert_eq!(e.details()["status"], 200);
}

#[tokio::test]
async fn http_429_waits_retry_after() {
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    let fake = Fake::start(slack(None, move |r| {
        (r.path.ends_with("getUploadURLExternal") && c.fetch_add(1, Ordering::SeqCst) == 0)
            .then(|| json_retry_after(429, "1", json!({"ok": false, "error": "ratelimited"})))
    }))
    .await;
    let start = Instant::now();
    adapter(&fake.base)
        .send(OutboundMessage {
            target: Target::Channel("C1".into()),
            text: None,
            caption: None,
            progress: None,
            attachments: vec![attachment(&content(10), "a.txt", "text/plain")],
            thread: None,
        })
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert_eq!(api_calls(&fake).len(), 4);
}

#[tokio::test]
async fn upload_host_5xx_is_retried_with_the_file_restreamed() {
    let n = Arc::new(AtomicUsize::new(0));
    let c = n.clone();
    let fake = Fake::start(slack(None, move |r| {
        (r.path.starts_with("/upload/") && c.fetch_add(1, Ordering::SeqCst) < 2)
            .then(|| plain(503, "busy"))
    }))
    .await;
    let bytes = content(40_000);
    adapter(&fake.base)
        .send(OutboundMessage {
            target: Target::Channel("C1".into()),
            text: None,
            caption: None,
            progress: None,
            attachments: vec![attachment(&bytes, "a.bin", "application/octet-stream")],
            thread: None,
        })
        .await
        .unwrap();
    let uploads: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/upload/"))
        .collect();
    assert_eq!(uploads.len(), 3);
    assert!(uploads.iter().all(|r| r.body == bytes));
}

#[tokio::test]
async fn upload_host_413_is_outbound_media_too_large() {
    let fake = Fake::start(slack(None, |r| {
        r.path
            .starts_with("/upload/")
            .then(|| plain(413, "too large"))
    }))
    .await;
    let e = adapter(&fake.base)
        .send(OutboundMessage {
            target: Target::Channel("C1".into()),
            text: Some("t".into()),
            caption: None,
            progress: None,
            attachments: vec![attachment(
                &content(100),
                "big.iso",
                "application/octet-stream",
            )],
            thread: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::OutboundMediaTooLarge);
    assert!(
        !api_calls(&fake)
            .iter()
            .any(|c| c.contains("complete") || c.contains("postMessage"))
    );
}

#[tokio::test]
async fn dropped_upload_is_retried_because_nothing_was_shared_yet() {
    let (drop_host, conns) = dropping_server().await;
    let fake = Fake::start(slack(Some(drop_host), |_| None)).await;
    let e = adapter(&fake.base)
        .send(OutboundMessage {
            target: Target::Channel("C1".into()),
            text: None,
            caption: None,
            progress: None,
            attachments: vec![attachment(
                &content(5000),
                "a.bin",
                "application/octet-stream",
            )],
            thread: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(e, ChannelError::Unreachable { .. }), "{e:?}");
    assert_eq!(e.details()["outcome"], "not_delivered");
    assert_eq!(conns.load(Ordering::SeqCst), 4);
    assert!(!api_calls(&fake).iter().any(|c| c.contains("complete")));
}

#[tokio::test]
async fn no_answer_to_complete_is_an_unknown_outcome_not_retried() {
    let fake = Fake::start_holding(
        |r| r.path.ends_with("completeUploadExternal"),
        slack(None, |_| None),
    )
    .await;
    let mut s = SlackSettings::new(TOKEN);
    s.api_base_url = format!("{}/api", fake.base);
    s.retry = fast_retry();
    s.timeouts = short_timeouts();
    let e = SlackAdapter::new(s)
        .unwrap()
        .send(OutboundMessage {
            target: Target::Channel("C1".into()),
            text: None,
            caption: None,
            progress: None,
            attachments: vec![attachment(&content(10), "a.txt", "text/plain")],
            thread: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.details()["outcome"], "unknown", "{e}");
    let completes = api_calls(&fake)
        .iter()
        .filter(|c| c.contains("complete"))
        .count();
    assert_eq!(completes, 1, "sent once, never repeated");
}

#[tokio::test]
async fn a_reply_in_a_thread_carries_thread_ts_in_both_calls() {
    let fake = Fake::start(slack(None, |_| None)).await;
    let a = adapter(&fake.base);
    a.send(
        OutboundMessage::text(Target::Channel("C0NF841BK".into()), "in the thread")
            .in_thread(Some("1700000000.000100".into())),
    )
    .await
    .unwrap();
    let bytes = png_of_len(2000, 1);
    a.send(OutboundMessage {
        target: Target::Channel("C0NF841BK".into()),
        text: Some("with a file".into()),
        caption: None,
        progress: None,
        attachments: vec![attachment(&bytes, "a.png", "image/png")],
        thread: Some("1700000000.000100".into()),
    })
    .await
    .unwrap();
    // Top level: no thread_ts at all.
    a.send(OutboundMessage::text(
        Target::Channel("C0NF841BK".into()),
        "top",
    ))
    .await
    .unwrap();
    let reqs = fake.requests();
    let post: Vec<&Value> = reqs
        .iter()
        .filter(|r| r.path.ends_with("chat.postMessage"))
        .map(|r| r.json.as_ref().unwrap())
        .collect();
    assert_eq!(post[0]["thread_ts"], "1700000000.000100");
    assert_eq!(post[0]["channel"], "C0NF841BK");
    assert!(post[1].get("thread_ts").is_none(), "{}", post[1]);
    let complete = reqs
        .iter()
        .find(|r| r.path.ends_with("files.completeUploadExternal"))
        .unwrap();
    let j = complete.json.as_ref().unwrap();
    assert_eq!(j["thread_ts"], "1700000000.000100");
    assert_eq!(j["channel_id"], "C0NF841BK");
}
