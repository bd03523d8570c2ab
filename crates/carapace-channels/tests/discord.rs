//! Discord adapter against a loopback fake that enforces the documented request format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::response::Response;
use carapace_channels::{
    ChannelAdapter, ChannelError, DiscordAdapter, DiscordSettings, OutboundMessage, Target,
};
use carapace_policy::{CarapaceError, ErrorCode};
use carapace_testkit::png::png_of_len;
use common::*;
use serde_json::{Value, json};

const TOKEN: &str = "discord-test-token-SECRET";

fn adapter(base: &str) -> DiscordAdapter {
    let mut s = DiscordSettings::new(TOKEN);
    s.api_base_url = base.to_string();
    s.retry = fast_retry();
    s.timeouts = fast_timeouts();
    DiscordAdapter::new(s).unwrap()
}

/// What Discord answers a malformed request with.
fn invalid(why: &str) -> Response {
    json(
        400,
        json!({"code": 50035, "message": format!("Invalid Form Body: {why}")}),
    )
}

/// Enforces Discord's documented format; `None` when the request is well-formed.
fn check(r: &Received) -> Option<Response> {
    if r.header("authorization") != Some(&format!("Bot {TOKEN}")) {
        return Some(json(
            401,
            json!({"code": 0, "message": "401: Unauthorized"}),
        ));
    }
    if !r
        .header("user-agent")
        .unwrap_or("")
        .starts_with("DiscordBot (")
    {
        return Some(invalid("User-Agent must be DiscordBot (url, version)"));
    }
    if r.method != "POST" {
        return Some(json(
            405,
            json!({"code": 0, "message": "405: Method Not Allowed"}),
        ));
    }
    if r.path == "/users/@me/channels" {
        let ok = r.content_type.starts_with("application/json")
            && r.json
                .as_ref()
                .and_then(|j| j["recipient_id"].as_str())
                .is_some();
        return (!ok).then(|| invalid("recipient_id"));
    }
    if !(r.path.starts_with("/channels/") && r.path.ends_with("/messages")) {
        return Some(json(404, json!({"code": 0, "message": "404: Not Found"})));
    }
    if r.is_multipart() {
        let Some(pj) = r.part("payload_json") else {
            return Some(invalid("payload_json missing"));
        };
        if pj.content_type.as_deref() != Some("application/json") {
            return Some(invalid("payload_json must be application/json"));
        }
        let Ok(payload) = serde_json::from_slice::<Value>(&pj.bytes) else {
            return Some(invalid("payload_json is not JSON"));
        };
        let atts = payload["attachments"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let files: Vec<&Part> = r
            .parts
            .iter()
            .filter(|p| p.name.starts_with("files["))
            .collect();
        if files.is_empty() || files.len() != atts.len() || files.len() > 10 {
            return Some(invalid("attachments must describe every files[n]"));
        }
        for a in &atts {
            // A missing or malformed id is an invalid request (never a pass that skips the
            // remaining checks). Discord takes the index as a number or a numeric string.
            let id = match &a["id"] {
                Value::Number(n) => n.as_u64(),
                Value::String(s) => s.parse::<u64>().ok(),
                _ => None,
            };
            let Some(id) = id else {
                return Some(invalid(
                    "attachment id must be the index of a files[n] part",
                ));
            };
            let Some(f) = r.part(&format!("files[{id}]")) else {
                return Some(invalid("attachment id without files[n]"));
            };
            if f.filename.as_deref() != a["filename"].as_str() || f.content_type.is_none() {
                return Some(invalid("files[n] filename/content type"));
            }
        }
        if payload
            .get("content")
            .is_some_and(|c| c.as_str().is_none_or(|c| c.chars().count() > 2000))
        {
            return Some(invalid("content"));
        }
        None
    } else if r.content_type.starts_with("application/json") {
        let c = r
            .json
            .as_ref()
            .and_then(|j| j["content"].as_str())
            .unwrap_or("");
        (c.is_empty() || c.chars().count() > 2000).then(|| invalid("content"))
    } else {
        Some(invalid("content type"))
    }
}

/// A well-formed Discord answer to a valid request.
fn answer(r: &Received) -> Response {
    if r.path == "/users/@me/channels" {
        let user = r.json.as_ref().unwrap()["recipient_id"].as_str().unwrap();
        return json(200, json!({"id": format!("dm-{user}"), "type": 1}));
    }
    let atts: Vec<Value> = r
        .parts
        .iter()
        .filter(|p| p.name.starts_with("files["))
        .enumerate()
        .map(|(i, p)| {
            json!({"id": format!("att-{}-{i}", r.index), "filename": p.filename, "size": p.bytes.len()})
        })
        .collect();
    json(
        200,
        json!({"id": format!("msg-{}", r.index), "attachments": atts}),
    )
}

fn platform(r: &Received) -> Response {
    check(r).unwrap_or_else(|| answer(r))
}

fn messages(fake: &Fake) -> Vec<Received> {
    fake.requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/messages"))
        .collect()
}

#[tokio::test]
async fn uploads_the_file_with_caption_as_content() {
    let fake = Fake::start(platform).await;
    let bytes = png_of_len(300_000, 1);
    let msg = OutboundMessage {
        target: Target::parse("channel:123").unwrap(),
        text: None,
        caption: Some("the chart".into()),
        progress: None,
        attachments: vec![attachment(&bytes, "chart.png", "image/png")],
        thread: None,
    };
    let d = adapter(&fake.base).send(msg).await.unwrap();
    assert_eq!(d.remote_id, "msg-0");
    assert_eq!(d.attachments.len(), 1);
    assert_eq!(d.attachments[0].remote_id, "att-0-0");
    assert_eq!(d.attachments[0].bytes, bytes.len() as u64);

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.path, "/channels/123/messages");
    assert!(
        r.header("content-length").is_some(),
        "length-delimited, not chunked"
    );
    assert!(r.header("transfer-encoding").is_none());
    let f = r.part("files[0]").unwrap();
    assert_eq!(f.bytes, bytes, "byte-identical, from offset 0 of the fd");
    assert_eq!(f.filename.as_deref(), Some("chart.png"));
    assert_eq!(f.content_type.as_deref(), Some("image/png"));
    let payload: Value = serde_json::from_slice(&r.part("payload_json").unwrap().bytes).unwrap();
    assert_eq!(payload["content"], "the chart");
    assert_eq!(
        payload["attachments"],
        json!([{"id": 0, "filename": "chart.png"}])
    );
}

#[tokio::test]
async fn user_target_opens_the_dm_channel_once() {
    let fake = Fake::start(platform).await;
    let a = adapter(&fake.base);
    for _ in 0..2 {
        a.send(OutboundMessage::text(Target::User("42".into()), "hi"))
            .await
            .unwrap();
    }
    let reqs = fake.requests();
    let opens: Vec<_> = reqs
        .iter()
        .filter(|r| r.path == "/users/@me/channels")
        .collect();
    assert_eq!(opens.len(), 1, "DM channel cached");
    assert_eq!(opens[0].json.as_ref().unwrap()["recipient_id"], "42");
    let msgs = messages(&fake);
    assert_eq!(msgs.len(), 2);
    assert!(msgs.iter().all(|r| r.path == "/channels/dm-42/messages"));
    assert_eq!(msgs[0].json.as_ref().unwrap()["content"], "hi");
}

#[tokio::test]
async fn many_files_and_long_text_are_split_without_loss() {
    let fake = Fake::start(platform).await;
    let text = "x".repeat(4500);
    let attachments = (0..12)
        .map(|i| {
            attachment(
                &content(100 + i),
                &format!("f{i}.bin"),
                "application/octet-stream",
            )
        })
        .collect();
    let msg = OutboundMessage {
        target: Target::Channel("9".into()),
        text: Some(text.clone()),
        caption: None,
        progress: None,
        attachments,
        thread: None,
    };
    let d = adapter(&fake.base).send(msg).await.unwrap();
    assert_eq!(d.attachments.len(), 12);
    assert_eq!(d.extra_message_ids.len(), 2);
    let msgs = messages(&fake);
    assert_eq!(msgs.len(), 3);
    let mut got = String::new();
    let mut files = 0;
    for r in &msgs {
        if r.is_multipart() {
            let p: Value = serde_json::from_slice(&r.part("payload_json").unwrap().bytes).unwrap();
            got.push_str(p["content"].as_str().unwrap_or(""));
            files += r.parts.len() - 1;
        } else {
            got.push_str(r.json.as_ref().unwrap()["content"].as_str().unwrap());
        }
    }
    assert_eq!(got, text);
    assert_eq!(files, 12);
}

#[tokio::test]
async fn rate_limit_waits_json_retry_after_and_restreams_the_file() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let fake = Fake::start(move |r| {
        if let Some(bad) = check(r) {
            return bad;
        }
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            // JSON retry_after (fractional seconds) is the precise one; the header is rounded up.
            return json_retry_after(
                429,
                "2",
                json!({"message": "You are being rate limited.", "retry_after": 0.15, "global": false}),
            );
        }
        answer(r)
    })
    .await;
    let bytes = content(50_000);
    let start = Instant::now();
    let d = adapter(&fake.base)
        .send(OutboundMessage {
            target: Target::Channel("1".into()),
            text: None,
            caption: None,
            progress: None,
            attachments: vec![attachment(&bytes, "a.bin", "application/octet-stream")],
            thread: None,
        })
        .await
        .unwrap();
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(150), "{took:?}");
    assert!(
        took < Duration::from_millis(1900),
        "used the JSON value, not the header: {took:?}"
    );
    assert_eq!(d.remote_id, "msg-1");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(r.part("files[0]").unwrap().bytes, bytes);
    }
}

#[tokio::test]
async fn rate_limit_past_the_budget_is_channel_rate_limited() {
    let fake = Fake::start(|r| {
        check(r).unwrap_or_else(|| {
            json_retry_after(429, "0.01", json!({"message": "You are being rate limited.", "retry_after": 0.01, "global": true}))
        })
    })
    .await;
    let e = adapter(&fake.base)
        .send(OutboundMessage::text(Target::Channel("1".into()), "hi"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ChannelRateLimited);
    assert_eq!(e.details()["attempts"], 4);
    assert_eq!(fake.requests().len(), 4);
}

#[tokio::test]
async fn entity_too_large_is_outbound_media_too_large_and_nothing_else_is_sent() {
    for (status, body) in [
        (
            413,
            json!({"message": "Request entity too large", "code": 40005}),
        ),
        (
            400,
            json!({"message": "Request entity too large", "code": 40005}),
        ),
    ] {
        let b = body.clone();
        let fake = Fake::start(move |r| check(r).unwrap_or_else(|| json(status, b.clone()))).await;
        let e = adapter(&fake.base)
            .send(OutboundMessage {
                target: Target::Channel("1".into()),
                text: Some("see attached".into()),
                caption: None,
                progress: None,
                attachments: vec![attachment(&content(1000), "big.mp4", "video/mp4")],
                thread: None,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::OutboundMediaTooLarge, "{e}");
        assert_eq!(e.details()["filename"], "big.mp4");
        assert_eq!(fake.requests().len(), 1, "no text-only fallback, no retry");
    }
}

#[tokio::test]
async fn over_the_configured_limit_is_refused_before_any_request() {
    let fake = Fake::start(platform).await;
    let mut s = DiscordSettings::new(TOKEN);
    s.api_base_url = fake.base.clone();
    s.media_max_bytes = Some(10);
    let a = DiscordAdapter::new(s).unwrap();
    assert_eq!(a.max_attachment_bytes(), 10);
    let e = a
        .send(OutboundMessage {
            target: Target::Channel("1".into()),
            text: Some("hello".into()),
            caption: None,
            progress: None,
            attachments: vec![attachment(
                &content(11),
                "a.bin",
                "application/octet-stream",
            )],
            thread: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::OutboundMediaTooLarge);
    assert_eq!(e.details()["limit"], 10);
    assert_eq!(e.details()["size"], 11);
    assert!(fake.requests().is_empty());
    let default = DiscordAdapter::new(DiscordSettings::new("t")).unwrap();
    assert_eq!(default.max_attachment_bytes(), 10 * 1024 * 1024);
}

#[tokio::test]
async fn unauthorized_and_the_token_never_leaks() {
    let fake = Fake::start(|_| json(401, json!({"message": "401: Unauthorized", "code": 0}))).await;
    let a = adapter(&fake.base);
    assert!(!format!("{a:?}").contains("SECRET"));
    let e = a
        .send(OutboundMessage::text(Target::Channel("1".into()), "hi"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ChannelUnauthorized);
    assert_eq!(e.details()["status"], 401);
    assert_eq!(fake.requests().len(), 1, "not retried");
    let all = format!("{e} {e:?} {}", e.to_envelope().to_response_json());
    assert!(!all.contains("SECRET"), "{all}");
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_then_succeed() {
    let fake = Fake::start(|r| {
        if let Some(bad) = check(r) {
            return bad;
        }
        if r.index < 2 {
            return json(502, json!({"message": "Bad Gateway", "code": 0}));
        }
        answer(r)
    })
    .await;
    let bytes = content(10_000);
    let d = adapter(&fake.base)
        .send(OutboundMessage {
            target: Target::Channel("1".into()),
            text: None,
            caption: Some("c".into()),
            progress: None,
            attachments: vec![attachment(&bytes, "a.bin", "application/octet-stream")],
            thread: None,
        })
        .await
        .unwrap();
    assert_eq!(d.remote_id, "msg-2");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3);
    assert!(
        reqs.iter()
            .all(|r| r.part("files[0]").unwrap().bytes == bytes)
    );
}

#[tokio::test]
async fn other_4xx_is_rejected_with_the_platform_text() {
    let fake = Fake::start(|r| {
        check(r).unwrap_or_else(|| json(404, json!({"message": "Unknown Channel", "code": 10003})))
    })
    .await;
    let e = adapter(&fake.base)
        .send(OutboundMessage::text(Target::Channel("1".into()), "hi"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ChannelRejected);
    let d = e.details();
    assert_eq!(d["status"], 404);
    assert_eq!(d["platformError"], "Unknown Channel");
    assert_eq!(d["platformCode"], "10003");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn dropped_connection_after_the_upload_is_an_unknown_outcome_not_retried() {
    let (base, conns) = dropping_server().await;
    let e = adapter(&base)
        .send(OutboundMessage {
            target: Target::Channel("1".into()),
            text: None,
            caption: None,
            progress: None,
            attachments: vec![attachment(
                &content(200_000),
                "a.bin",
                "application/octet-stream",
            )],
            thread: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(e, ChannelError::Ambiguous { .. }), "{e:?}");
    assert_eq!(e.code(), ErrorCode::ChannelUnreachable);
    assert_eq!(e.details()["outcome"], "unknown");
    assert_eq!(conns.load(Ordering::SeqCst), 1, "not retried blindly");
}

#[tokio::test]
async fn timeout_waiting_for_the_answer_is_an_unknown_outcome() {
    let fake = Fake::start_holding(|_| true, answer).await;
    let mut s = DiscordSettings::new(TOKEN);
    s.api_base_url = fake.base.clone();
    s.retry = fast_retry();
    s.timeouts = short_timeouts();
    let e = DiscordAdapter::new(s)
        .unwrap()
        .send(OutboundMessage::text(Target::Channel("1".into()), "hi"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ChannelUnreachable);
    assert_eq!(e.details()["outcome"], "unknown", "{e}");
}

#[tokio::test]
async fn nothing_listening_is_unreachable_after_retries() {
    let base = closed_port().await;
    let e = adapter(&base)
        .send(OutboundMessage::text(Target::Channel("1".into()), "hi"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ChannelError::Unreachable { attempts: 4, .. }),
        "{e:?}"
    );
    assert_eq!(e.details()["outcome"], "not_delivered");
}

#[tokio::test]
async fn room_targets_and_empty_tokens_are_refused() {
    let fake = Fake::start(platform).await;
    let e = adapter(&fake.base)
        .send(OutboundMessage::text(Target::Room("!r:x".into()), "hi"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadRequest);
    let e = DiscordAdapter::new(DiscordSettings::new("")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ChannelNotConfigured);
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn a_reply_in_a_thread_is_posted_to_the_thread_channel() {
    let fake = Fake::start(platform).await;
    let a = adapter(&fake.base);
    a.send(
        OutboundMessage::text(Target::Channel("123".into()), "in the thread")
            .in_thread(Some("777".into())),
    )
    .await
    .unwrap();
    let bytes = png_of_len(1000, 1);
    a.send(OutboundMessage {
        target: Target::Channel("123".into()),
        text: None,
        caption: Some("file in the thread".into()),
        progress: None,
        attachments: vec![attachment(&bytes, "t.png", "image/png")],
        thread: Some("777".into()),
    })
    .await
    .unwrap();
    a.send(OutboundMessage::text(Target::Channel("123".into()), "top"))
        .await
        .unwrap();
    let paths: Vec<String> = messages(&fake).iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/channels/777/messages",
            "/channels/777/messages",
            "/channels/123/messages"
        ]
    );
    assert_eq!(messages(&fake)[1].part("files[0]").unwrap().bytes, bytes);
}
