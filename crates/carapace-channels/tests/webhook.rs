//! Webhook adapter against a loopback receiver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use carapace_channels::{
    ChannelAdapter, OutboundMessage, SecretString, Target, WebhookAdapter, WebhookSettings,
};
use carapace_policy::{CarapaceError, ErrorCode};
use carapace_testkit::png::png_of_len;
use common::*;
use serde_json::json;

const SECRET: &str = "Bearer hook-SECRET";

fn adapter(base: &str) -> WebhookAdapter {
    let mut s = WebhookSettings::new(format!("{base}/hooks/carapace"));
    s.headers = vec![
        ("Authorization".into(), SecretString::new(SECRET)),
        ("X-Source".into(), SecretString::new("carapace")),
    ];
    s.retry = fast_retry();
    s.timeouts = fast_timeouts();
    WebhookAdapter::new(s).unwrap()
}

fn receiver(r: &Received) -> axum::response::Response {
    if r.header("authorization") != Some(SECRET) {
        return json(401, json!({"error": "bad signature"}));
    }
    if r.path != "/hooks/carapace" || !r.is_multipart() || r.part("target").is_none() {
        return json(400, json!({"error": "malformed"}));
    }
    json(200, json!({"id": 77, "attachments": [{"id": "up-1"}]}))
}

#[tokio::test]
async fn posts_text_caption_target_and_files_with_configured_headers() {
    let fake = Fake::start(receiver).await;
    let bytes = png_of_len(33_000, 1);
    let d = adapter(&fake.base)
        .send(OutboundMessage {
            target: Target::Room("!abc:example.org".into()),
            text: Some("hello".into()),
            caption: Some("the pic".into()),
            progress: None,
            attachments: vec![
                attachment(&bytes, "pic.png", "image/png"),
                attachment(&content(9), "n.txt", "text/plain"),
            ],
            thread: None,
        })
        .await
        .unwrap();
    assert_eq!(d.remote_id, "77");
    assert_eq!(d.attachments[0].remote_id, "up-1");
    assert_eq!(d.attachments[1].remote_id, "files[1]");
    let r = &fake.requests()[0];
    assert_eq!(r.header("x-source"), Some("carapace"));
    assert_eq!(r.part("target").unwrap().text(), "room:!abc:example.org");
    assert_eq!(r.part("text").unwrap().text(), "hello");
    assert_eq!(r.part("caption").unwrap().text(), "the pic");
    let f = r.part("files[0]").unwrap();
    assert_eq!(f.bytes, bytes);
    assert_eq!(f.filename.as_deref(), Some("pic.png"));
    assert_eq!(f.content_type.as_deref(), Some("image/png"));
    assert_eq!(
        r.part("files[1]").unwrap().content_type.as_deref(),
        Some("text/plain")
    );
}

#[tokio::test]
async fn status_codes_map_to_typed_errors() {
    for (status, code) in [
        (401, ErrorCode::ChannelUnauthorized),
        (403, ErrorCode::ChannelUnauthorized),
        (413, ErrorCode::OutboundMediaTooLarge),
        (422, ErrorCode::ChannelRejected),
    ] {
        let fake = Fake::start(move |_| json(status, json!({"error": "nope"}))).await;
        let e = adapter(&fake.base)
            .send(OutboundMessage {
                target: Target::User("u".into()),
                text: None,
                caption: None,
                progress: None,
                attachments: vec![attachment(
                    &content(10),
                    "a.bin",
                    "application/octet-stream",
                )],
                thread: None,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), code, "{status}: {e}");
        assert_eq!(fake.requests().len(), 1, "{status} is not retried");
        if status == 422 {
            assert_eq!(e.details()["platformError"], "nope");
            assert_eq!(e.details()["status"], 422);
        }
        assert!(!format!("{e:?}").contains("SECRET"));
    }
}

#[tokio::test]
async fn retry_after_and_5xx_are_retried() {
    let fake = Fake::start(|r| match r.index {
        0 => json_retry_after(429, "0.2", json!({"error": "slow down"})),
        1 => plain(500, "oops"),
        _ => receiver(r),
    })
    .await;
    let bytes = content(20_000);
    let start = Instant::now();
    adapter(&fake.base)
        .send(OutboundMessage {
            target: Target::Channel("c".into()),
            text: None,
            caption: None,
            progress: None,
            attachments: vec![attachment(&bytes, "a.bin", "application/octet-stream")],
            thread: None,
        })
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(200));
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 3);
    assert!(
        reqs.iter()
            .all(|r| r.part("files[0]").unwrap().bytes == bytes)
    );
}

#[tokio::test]
async fn dropped_connection_is_unknown_and_bad_config_is_not_configured() {
    let (base, conns) = dropping_server().await;
    let e = adapter(&base)
        .send(OutboundMessage::text(Target::User("u".into()), "hi"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ChannelUnreachable);
    assert_eq!(e.details()["outcome"], "unknown");
    assert_eq!(conns.load(Ordering::SeqCst), 1);

    for url in ["", "ftp://x/", "not a url"] {
        let e = WebhookAdapter::new(WebhookSettings::new(url)).unwrap_err();
        assert_eq!(e.code(), ErrorCode::ChannelNotConfigured);
    }
    let mut s = WebhookSettings::new("http://127.0.0.1:9/x?key=SECRET");
    s.headers = vec![("Bad Header".into(), SecretString::new("v"))];
    assert_eq!(
        WebhookAdapter::new(s).unwrap_err().code(),
        ErrorCode::ChannelNotConfigured
    );
    let a = WebhookAdapter::new(WebhookSettings::new("http://127.0.0.1:9/x?key=SECRET")).unwrap();
    assert!(!format!("{a:?}").contains("SECRET"));
}

#[tokio::test]
async fn progress_is_reported_and_adapters_are_object_safe() {
    use std::io::Seek;
    use std::sync::{Arc, Mutex};

    let fake = Fake::start(receiver).await;
    let adapter: Arc<dyn ChannelAdapter> = Arc::new(adapter(&fake.base));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let bytes = content(600_000); // several 256 KiB reads
    let mut a = attachment(&bytes, "big.bin", "application/octet-stream");
    let before = a.file.stream_position().unwrap();
    let dup = a.file.try_clone().unwrap();
    a.size = bytes.len() as u64;
    adapter
        .send(OutboundMessage {
            target: Target::User("u".into()),
            text: None,
            caption: None,
            progress: Some(carapace_channels::Progress::new(move |u| {
                s.lock().unwrap().push(u)
            })),
            attachments: vec![a],
            thread: None,
        })
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.first().unwrap().sent, 0);
    assert_eq!(seen.last().unwrap().sent, bytes.len() as u64);
    assert!(seen.len() >= 4);
    assert!(seen.windows(2).all(|w| w[0].sent <= w[1].sent));
    assert!(
        seen.iter()
            .all(|u| u.index == 0 && u.total == bytes.len() as u64)
    );
    let mut dup = dup;
    assert_eq!(
        dup.stream_position().unwrap(),
        before,
        "pread: the fd offset is untouched"
    );
    assert_eq!(fake.requests()[0].part("files[0]").unwrap().bytes, bytes);
}
