//! Telegram adapter against a loopback fake Bot API that enforces the documented format.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::response::Response;
use carapace_channels::{
    ChannelAdapter, ChannelError, OutboundMessage, Target, TelegramAdapter, TelegramSettings,
};
use carapace_policy::{CarapaceError, ErrorCode};
use carapace_testkit::png::{png, png_of_len};
use common::*;
use serde_json::json;

const TOKEN: &str = "123456:SECRET-telegram-token";

fn adapter(base: &str) -> TelegramAdapter {
    let mut s = TelegramSettings::new(TOKEN);
    s.api_base_url = base.to_string();
    s.retry = fast_retry();
    s.timeouts = fast_timeouts();
    TelegramAdapter::new(s).unwrap()
}

fn tg_error(status: u16, description: &str) -> Response {
    json(
        status,
        json!({"ok": false, "error_code": status, "description": description}),
    )
}

fn method(r: &Received) -> &str {
    r.path.rsplit('/').next().unwrap()
}

/// Enforces the Bot API's documented request format.
fn check(r: &Received) -> Option<Response> {
    let prefix = format!("/bot{TOKEN}/");
    if !r.path.starts_with(&prefix) {
        return Some(json(
            401,
            json!({"ok": false, "error_code": 401, "description": "Unauthorized"}),
        ));
    }
    if r.method != "POST" {
        return Some(tg_error(400, "Bad Request: POST expected"));
    }
    match method(r) {
        "sendMessage" => {
            let j = r.json.as_ref()?;
            let text = j["text"].as_str().unwrap_or("");
            if j["chat_id"].as_str().is_none() && j["chat_id"].as_i64().is_none() {
                return Some(tg_error(400, "Bad Request: chat_id is empty"));
            }
            if text.is_empty() {
                return Some(tg_error(400, "Bad Request: message text is empty"));
            }
            if text.chars().count() > 4096 {
                return Some(tg_error(400, "Bad Request: message is too long"));
            }
            None
        }
        m @ ("sendPhoto" | "sendDocument") => {
            if !r.is_multipart() {
                return Some(tg_error(400, "Bad Request: multipart/form-data expected"));
            }
            if r.part("chat_id")
                .map(Part::text)
                .unwrap_or_default()
                .is_empty()
            {
                return Some(tg_error(400, "Bad Request: chat_id is empty"));
            }
            if r.part("caption")
                .is_some_and(|c| c.text().chars().count() > 1024)
            {
                return Some(tg_error(400, "Bad Request: message caption is too long"));
            }
            let field = if m == "sendPhoto" {
                "photo"
            } else {
                "document"
            };
            let Some(f) = r.part(field) else {
                return Some(tg_error(
                    400,
                    &format!("Bad Request: there is no {field} in the request"),
                ));
            };
            if f.filename.is_none() || f.content_type.is_none() {
                return Some(tg_error(
                    400,
                    "Bad Request: file must be uploaded as a file part",
                ));
            }
            if m == "sendPhoto" && f.bytes.len() > 10_000_000 {
                return Some(tg_error(400, "Bad Request: PHOTO_SAVE_FILE_INVALID"));
            }
            None
        }
        _ => Some(tg_error(404, "Not Found")),
    }
}

fn answer(r: &Received) -> Response {
    let mid = 1000 + r.index;
    let result = match method(r) {
        "sendPhoto" => json!({"message_id": mid, "photo": [
            {"file_id": "small", "file_unique_id": "s", "width": 90, "height": 90},
            {"file_id": format!("photo-{mid}"), "file_unique_id": "b", "width": 800, "height": 600}
        ]}),
        "sendDocument" => {
            json!({"message_id": mid, "document": {"file_id": format!("doc-{mid}"), "file_unique_id": "d"}})
        }
        _ => json!({"message_id": mid, "text": "…"}),
    };
    json(200, json!({"ok": true, "result": result}))
}

fn platform(r: &Received) -> Response {
    check(r).unwrap_or_else(|| answer(r))
}

#[tokio::test]
async fn png_goes_as_photo_with_caption_and_chat_id() {
    let fake = Fake::start(platform).await;
    let bytes = png_of_len(120_000, 1);
    let d = adapter(&fake.base)
        .send(OutboundMessage {
            target: Target::parse("user:4242").unwrap(),
            text: None,
            caption: Some("look".into()),
            progress: None,
            attachments: vec![attachment(&bytes, "shot.png", "image/png")],
            thread: None,
        })
        .await
        .unwrap();
    assert_eq!(d.remote_id, "1000");
    assert_eq!(d.attachments[0].remote_id, "photo-1000");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(method(r), "sendPhoto");
    assert_eq!(r.part("chat_id").unwrap().text(), "4242");
    assert_eq!(r.part("caption").unwrap().text(), "look");
    let p = r.part("photo").unwrap();
    assert_eq!(p.bytes, bytes);
    assert_eq!(p.filename.as_deref(), Some("shot.png"));
    assert_eq!(p.content_type.as_deref(), Some("image/png"));
}

#[tokio::test]
async fn non_photos_go_as_documents_and_text_alone_as_messages() {
    let fake = Fake::start(platform).await;
    let a = adapter(&fake.base);
    let pdf = content(5000);
    let gif = content(700);
    let mut huge_png = attachment(&png(1, 1, 1), "wide.png", "image/png");
    huge_png.width = Some(5000);
    huge_png.height = Some(100); // ratio 50 > 20: not a photo
    let d = a
        .send(OutboundMessage {
            target: Target::Channel("-100123".into()),
            text: Some("report".into()),
            caption: None,
            progress: None,
            attachments: vec![
                attachment(&pdf, "r.pdf", "application/pdf"),
                attachment(&gif, "a.gif", "image/gif"),
                huge_png,
            ],
            thread: None,
        })
        .await
        .unwrap();
    let reqs = fake.requests();
    let methods: Vec<&str> = reqs.iter().map(method).collect();
    assert_eq!(methods, ["sendDocument", "sendDocument", "sendDocument"]);
    assert_eq!(
        reqs[0].part("caption").unwrap().text(),
        "report",
        "text as caption when no caption"
    );
    assert!(reqs[1].part("caption").is_none());
    assert_eq!(reqs[0].part("document").unwrap().bytes, pdf);
    assert_eq!(
        reqs[1].part("document").unwrap().content_type.as_deref(),
        Some("image/gif")
    );
    assert_eq!(d.attachments.len(), 3);
    assert_eq!(d.attachments[0].remote_id, "doc-1000");

    let fake = Fake::start(platform).await;
    adapter(&fake.base)
        .send(OutboundMessage::text(Target::User("7".into()), "hello"))
        .await
        .unwrap();
    let r = &fake.requests()[0];
    assert_eq!(method(r), "sendMessage");
    assert!(r.content_type.starts_with("application/json"));
    assert_eq!(r.json.as_ref().unwrap()["chat_id"], "7");
    assert_eq!(r.json.as_ref().unwrap()["text"], "hello");
}

#[tokio::test]
async fn caption_over_1024_chars_follows_as_a_message_and_text_after_caption() {
    let fake = Fake::start(platform).await;
    let long = "c".repeat(1500);
    let d = adapter(&fake.base)
        .send(OutboundMessage {
            target: Target::User("1".into()),
            text: Some("and the text".into()),
            caption: Some(long.clone()),
            progress: None,
            attachments: vec![attachment(&png_of_len(100, 1), "p.jpg", "image/jpeg")],
            thread: None,
        })
        .await
        .unwrap();
    let reqs = fake.requests();
    let methods: Vec<&str> = reqs.iter().map(method).collect();
    assert_eq!(methods, ["sendPhoto", "sendMessage", "sendMessage"]);
    assert!(reqs[0].part("caption").is_none());
    assert_eq!(reqs[1].json.as_ref().unwrap()["text"], long.as_str());
    assert_eq!(reqs[2].json.as_ref().unwrap()["text"], "and the text");
    assert_eq!(d.extra_message_ids.len(), 2);
}

#[tokio::test]
async fn rate_limit_uses_parameters_retry_after() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let fake = Fake::start(move |r| {
        if let Some(bad) = check(r) {
            return bad;
        }
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            return json(
                429,
                json!({"ok": false, "error_code": 429,
                "description": "Too Many Requests: retry after 1",
                "parameters": {"retry_after": 1}}),
            );
        }
        answer(r)
    })
    .await;
    let bytes = png_of_len(1000, 1);
    let start = Instant::now();
    adapter(&fake.base)
        .send(OutboundMessage {
            target: Target::User("1".into()),
            text: None,
            caption: None,
            progress: None,
            attachments: vec![attachment(&bytes, "p.png", "image/png")],
            thread: None,
        })
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_secs(1));
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    assert!(
        reqs.iter().all(|r| r.part("photo").unwrap().bytes == bytes),
        "re-streamed from 0"
    );
}

#[tokio::test]
async fn request_entity_too_large_is_outbound_media_too_large() {
    let fake =
        Fake::start(|r| check(r).unwrap_or_else(|| tg_error(413, "Request Entity Too Large")))
            .await;
    let e = adapter(&fake.base)
        .send(OutboundMessage {
            target: Target::User("1".into()),
            text: Some("caption-ish".into()),
            caption: None,
            progress: None,
            attachments: vec![attachment(&content(2000), "v.mp4", "video/mp4")],
            thread: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::OutboundMediaTooLarge);
    assert_eq!(e.details()["filename"], "v.mp4");
    assert_eq!(e.details()["status"], 413);
    assert_eq!(
        fake.requests().len(),
        1,
        "no text-only send after the refusal"
    );
}

#[tokio::test]
async fn photo_dimension_refusal_falls_back_to_document() {
    let fake = Fake::start(|r| {
        if let Some(bad) = check(r) {
            return bad;
        }
        if method(r) == "sendPhoto" {
            return tg_error(400, "Bad Request: PHOTO_INVALID_DIMENSIONS");
        }
        answer(r)
    })
    .await;
    let bytes = png_of_len(500, 1);
    let d = adapter(&fake.base)
        .send(OutboundMessage {
            target: Target::User("1".into()),
            text: None,
            caption: Some("cap".into()),
            progress: None,
            attachments: vec![attachment(&bytes, "tall.png", "image/png")],
            thread: None,
        })
        .await
        .unwrap();
    let reqs = fake.requests();
    assert_eq!(
        reqs.iter().map(method).collect::<Vec<_>>(),
        ["sendPhoto", "sendDocument"]
    );
    assert_eq!(reqs[1].part("document").unwrap().bytes, bytes);
    assert_eq!(reqs[1].part("caption").unwrap().text(), "cap");
    assert_eq!(d.attachments[0].remote_id, "doc-1001");
}

#[tokio::test]
async fn wrong_token_is_unauthorized_and_never_printed() {
    let fake = Fake::start(platform).await;
    let mut s = TelegramSettings::new("999:SECRET-wrong");
    s.api_base_url = fake.base.clone();
    s.retry = fast_retry();
    let a = TelegramAdapter::new(s).unwrap();
    let e = a
        .send(OutboundMessage::text(Target::User("1".into()), "hi"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ChannelUnauthorized);
    let all = format!("{e} {e:?} {a:?} {}", e.to_envelope().to_response_json());
    assert!(!all.contains("SECRET"), "{all}");
}

#[tokio::test]
async fn chat_not_found_is_rejected_with_description() {
    let fake =
        Fake::start(|r| check(r).unwrap_or_else(|| tg_error(400, "Bad Request: chat not found")))
            .await;
    let e = adapter(&fake.base)
        .send(OutboundMessage::text(Target::User("1".into()), "hi"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ChannelRejected);
    assert_eq!(e.details()["platformError"], "Bad Request: chat not found");
    assert_eq!(e.details()["status"], 400);
}

#[tokio::test]
async fn bad_gateway_then_success_and_partial_delivery_is_reported() {
    let fake = Fake::start(|r| {
        if let Some(bad) = check(r) {
            return bad;
        }
        match r.index {
            0 => plain(502, "Bad Gateway"),
            1 => answer(r),
            _ => tg_error(400, "Bad Request: chat not found"),
        }
    })
    .await;
    let e = adapter(&fake.base)
        .send(OutboundMessage {
            target: Target::User("1".into()),
            text: None,
            caption: None,
            progress: None,
            attachments: vec![
                attachment(&content(10), "a.bin", "application/octet-stream"),
                attachment(&content(20), "b.bin", "application/octet-stream"),
            ],
            thread: None,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(e, ChannelError::PartiallyDelivered { .. }),
        "{e:?}"
    );
    assert_eq!(e.code(), ErrorCode::ChannelRejected);
    assert_eq!(
        e.details()["delivered"]["attachments"][0]["filename"],
        "a.bin"
    );
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn dropped_connection_is_an_unknown_outcome() {
    let (base, conns) = dropping_server().await;
    let e = adapter(&base)
        .send(OutboundMessage {
            target: Target::User("1".into()),
            text: None,
            caption: None,
            progress: None,
            attachments: vec![attachment(
                &content(100_000),
                "a.bin",
                "application/octet-stream",
            )],
            thread: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.details()["outcome"], "unknown", "{e}");
    assert_eq!(conns.load(Ordering::SeqCst), 1);
    assert!(
        !format!("{e:?}").contains("SECRET"),
        "no URL (with the token) in errors"
    );
}

#[tokio::test]
async fn file_shrunk_after_the_check_fails_the_send() {
    let fake = Fake::start(platform).await;
    let mut a = attachment(&content(100), "a.bin", "application/octet-stream");
    a.size = 5000; // the fd has fewer bytes than were verified
    let e = adapter(&fake.base)
        .send(OutboundMessage {
            target: Target::User("1".into()),
            text: None,
            caption: None,
            progress: None,
            attachments: vec![a],
            thread: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(e, ChannelError::AttachmentRead { .. }), "{e:?}");
}

#[tokio::test]
async fn a_reply_in_a_topic_carries_message_thread_id() {
    let fake = Fake::start(platform).await;
    let a = adapter(&fake.base);
    a.send(
        OutboundMessage::text(Target::Channel("-100".into()), "in the topic")
            .in_thread(Some("7".into())),
    )
    .await
    .unwrap();
    let bytes = png_of_len(1000, 1);
    a.send(OutboundMessage {
        target: Target::Channel("-100".into()),
        text: None,
        caption: Some("photo in the topic".into()),
        progress: None,
        attachments: vec![attachment(&bytes, "t.png", "image/png")],
        thread: Some("7".into()),
    })
    .await
    .unwrap();
    a.send(OutboundMessage::text(
        Target::Channel("-100".into()),
        "general",
    ))
    .await
    .unwrap();
    let reqs = fake.requests();
    assert_eq!(reqs[0].json.as_ref().unwrap()["message_thread_id"], 7);
    assert_eq!(method(&reqs[1]), "sendPhoto");
    assert_eq!(reqs[1].part("message_thread_id").unwrap().text(), "7");
    assert!(
        reqs[2]
            .json
            .as_ref()
            .unwrap()
            .get("message_thread_id")
            .is_none()
    );
    // A thread that is not a topic id is refused before anything is sent.
    let e = a
        .send(
            OutboundMessage::text(Target::Channel("-100".into()), "x")
                .in_thread(Some("abc".into())),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), carapace_policy::ErrorCode::BadRequest);
    assert_eq!(fake.requests().len(), 3);
}
