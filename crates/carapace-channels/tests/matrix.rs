//! Matrix adapter against a loopback fake (error mapping, retries, request shapes) and against
//! a real Synapse started by scripts/synapse.sh (uploads arrive byte-identical, DM rooms are
//! created once and reused, aliases resolve, bad tokens are CHANNEL_UNAUTHORIZED).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use carapace_channels::matrix::{MatrixAdapter, MatrixSettings};
use carapace_channels::{ChannelAdapter, OutboundMessage, Target};
use carapace_policy::{CarapaceError, ErrorCode};
use carapace_testkit::png::png_of_len;
use carapace_testkit::synapse::synapse;
use common::*;
use serde_json::{Value, json};

fn adapter(base: &str, token: &str) -> MatrixAdapter {
    let mut s = MatrixSettings::new(base, token);
    s.retry = fast_retry();
    s.timeouts = fast_timeouts();
    MatrixAdapter::new(s).unwrap()
}

fn msg(
    target: &str,
    text: Option<&str>,
    files: Vec<carapace_channels::Attachment>,
) -> OutboundMessage {
    OutboundMessage {
        target: Target::parse(target).unwrap(),
        text: text.map(str::to_string),
        caption: None,
        attachments: files,
        progress: None,
        thread: None,
    }
}

// ---------------------------------------------------------------- fake homeserver

#[tokio::test]
async fn upload_then_event_with_info_and_retry_after_ms() {
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h2 = hits.clone();
    let fake = Fake::start(move |r| {
        if r.path.starts_with("/_matrix/media/v3/upload") {
            if h2.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                return json(
                    429,
                    json!({"errcode": "M_LIMIT_EXCEEDED", "error": "slow", "retry_after_ms": 20}),
                );
            }
            return json(200, json!({"content_uri": "mxc://fake/abc"}));
        }
        if r.path.contains("/send/m.room.message/") {
            return json(200, json!({"event_id": format!("$e{}", r.index)}));
        }
        if r.path.contains("/state/m.room.encryption") {
            return json(404, json!({"errcode": "M_NOT_FOUND"}));
        }
        json(404, json!({"errcode": "M_UNRECOGNIZED"}))
    })
    .await;
    let a = adapter(&fake.base, "tok");
    let body = png_of_len(5000, 1);
    let mut att = attachment(&body, "shot.png", "image/png");
    att.width = Some(640);
    att.height = Some(480);
    let mut m = msg("room:!r:fake", Some("hello"), vec![att]);
    m.caption = Some("look".into());
    let d = a.send(m).await.unwrap();
    assert_eq!(d.attachments[0].remote_id, "mxc://fake/abc");
    assert_eq!(d.attachments[0].bytes, body.len() as u64);
    assert!(
        d.extra_message_ids.is_empty(),
        "text, caption and file are one event"
    );
    let reqs = fake.requests();
    let check = &reqs[0];
    assert_eq!(check.method, "GET", "the room's encryption is asked first");
    assert!(
        check
            .path
            .ends_with("/rooms/!r:fake/state/m.room.encryption/"),
        "{}",
        check.path
    );
    assert_eq!(check.header("authorization"), Some("Bearer tok"));
    assert!(
        !reqs
            .iter()
            .any(|r| r.json.as_ref().is_some_and(|j| j["msgtype"] == "m.text")),
        "no separate text event"
    );
    let ups: Vec<_> = reqs.iter().filter(|r| r.path.contains("/upload")).collect();
    assert_eq!(ups.len(), 2, "the 429 was retried");
    assert_eq!(
        ups[1].body, body,
        "the fd was streamed from offset 0 on the retry"
    );
    assert_eq!(ups[1].header("content-type"), Some("image/png"));
    assert_eq!(ups[1].query.as_deref(), Some("filename=shot.png"));
    let ev = reqs.last().unwrap().json.clone().unwrap();
    assert_eq!(ev["msgtype"], "m.image");
    assert_eq!(ev["url"], "mxc://fake/abc");
    assert_eq!(ev["body"], "hello\n\nlook");
    assert_eq!(ev["filename"], "shot.png");
    assert_eq!(
        ev["info"],
        json!({"mimetype": "image/png", "size": body.len(), "w": 640, "h": 480})
    );
    assert!(
        reqs.last()
            .unwrap()
            .path
            .starts_with("/_matrix/client/v3/rooms/!r:fake/send/m.room.message/")
    );
}

#[tokio::test]
async fn forbidden_and_unknown_token_are_unauthorized() {
    for code in ["M_FORBIDDEN", "M_UNKNOWN_TOKEN"] {
        let status = if code == "M_FORBIDDEN" { 403 } else { 401 };
        let fake =
            Fake::start(move |_| json(status, json!({"errcode": code, "error": "no"}))).await;
        let e = adapter(&fake.base, "tok")
            .send(msg("room:!r:fake", Some("x"), vec![]))
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::ChannelUnauthorized, "{code}");
        assert!(e.to_string().contains(code));
        assert_eq!(fake.requests().len(), 1, "not retried");
    }
    let fake = Fake::start(|r| {
        if r.path.contains("/state/m.room.encryption") {
            return json(404, json!({"errcode": "M_NOT_FOUND"}));
        }
        json(413, json!({"errcode": "M_TOO_LARGE", "error": "big"}))
    })
    .await;
    let e = adapter(&fake.base, "tok")
        .send(msg(
            "room:!r:fake",
            None,
            vec![attachment(b"abc", "a.bin", "application/octet-stream")],
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::OutboundMediaTooLarge);
    assert_eq!(e.details()["filename"], "a.bin");
}

#[tokio::test]
async fn bad_targets_and_config() {
    let e = adapter("http://127.0.0.1:9", "t")
        .send(msg("room:general", Some("x"), vec![]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadRequest);
    let e = adapter("http://127.0.0.1:9", "t")
        .send(msg("user:alice", Some("x"), vec![]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadRequest);
    let e = MatrixAdapter::new(MatrixSettings::new("http://h", "")).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ChannelNotConfigured);
}

// ---------------------------------------------------------------- real Synapse

#[tokio::test]
async fn synapse_room_alias_upload_arrives_byte_identical() {
    let Some(hs) = synapse() else { return };
    let alias = format!("carapace-test-{}", std::process::id());
    let room = hs
        .create_room(
            &hs.bot,
            json!({"room_alias_name": alias, "invite": [hs.alice.id]}),
        )
        .await;
    let a = adapter(&hs.url, &hs.bot.token);
    let body = png_of_len(300_000, 2);
    let mut att = attachment(&body, "shot.png", "image/png");
    att.width = Some(10);
    att.height = Some(20);
    let doc = content(70_000);
    let d = a
        .send(msg(
            &format!("room:#{alias}:localhost"),
            Some("two files"),
            vec![att, attachment(&doc, "notes.pdf", "application/pdf")],
        ))
        .await
        .unwrap();
    assert_eq!(d.attachments.len(), 2);
    assert_eq!(
        hs.download(&hs.alice, &d.attachments[0].remote_id).await,
        body
    );
    assert_eq!(
        hs.download(&hs.alice, &d.attachments[1].remote_id).await,
        doc
    );
    let evs = hs.messages(&hs.bot, &room, 3).await;
    assert_eq!(evs[0]["content"]["msgtype"], "m.file");
    assert_eq!(evs[0]["content"]["info"]["mimetype"], "application/pdf");
    assert_eq!(evs[0]["content"]["body"], "notes.pdf");
    assert_eq!(evs[1]["content"]["msgtype"], "m.image");
    assert_eq!(evs[1]["content"]["info"]["w"], 10);
    assert_eq!(evs[1]["content"]["info"]["size"], body.len());
    assert_eq!(
        evs[1]["content"]["url"],
        d.attachments[0].remote_id.as_str()
    );
    // One captioned image: the text is its caption, the name its filename.
    assert_eq!(evs[1]["content"]["body"], "two files");
    assert_eq!(evs[1]["content"]["filename"], "shot.png");
    assert_eq!(evs[1]["sender"], hs.bot.id.as_str());
    assert_eq!(evs.len(), 2, "no separate text event: {evs:?}");
}

#[tokio::test]
async fn synapse_user_target_creates_the_dm_once_and_reuses_it() {
    let Some(hs) = synapse() else { return };
    // A fresh user per run keeps the test independent of earlier runs' m.direct.
    let a = adapter(&hs.url, &hs.bot.token);
    let d1 = a
        .send(msg(&format!("user:{}", hs.alice.id), Some("dm 1"), vec![]))
        .await
        .unwrap();
    // A second adapter (no cache) must find the room through m.direct.
    let b = adapter(&hs.url, &hs.bot.token);
    let d2 = b
        .send(msg(&format!("user:{}", hs.alice.id), Some("dm 2"), vec![]))
        .await
        .unwrap();
    let direct = hs
        .api(
            &hs.bot.token,
            "GET",
            &format!(
                "/_matrix/client/v3/user/{}/account_data/m.direct",
                hs.bot.id
            ),
            None,
        )
        .await;
    let rooms = direct[&hs.alice.id].as_array().unwrap();
    let room = rooms.last().unwrap().as_str().unwrap().to_string();
    let evs = hs.messages(&hs.bot, &room, 2).await;
    let ids: Vec<&str> = evs
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&d1.remote_id.as_str()) && ids.contains(&d2.remote_id.as_str()));
    // alice was invited to it.
    let inv = hs
        .api(
            &hs.alice.token,
            "GET",
            "/_matrix/client/v3/sync?timeout=0",
            None,
        )
        .await;
    let invited = inv["rooms"]["invite"]
        .as_object()
        .map(|m| m.contains_key(&room))
        .unwrap_or(false);
    let joined = inv["rooms"]["join"]
        .as_object()
        .map(|m| m.contains_key(&room))
        .unwrap_or(false);
    assert!(invited || joined, "alice is invited to the DM");
}

#[tokio::test]
async fn synapse_bad_token_is_unauthorized() {
    let Some(hs) = synapse() else { return };
    let e = adapter(&hs.url, "syt_not_a_token")
        .send(msg("room:!nope:localhost", Some("x"), vec![]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ChannelUnauthorized, "{e}");
    let _ = Duration::ZERO;
}

#[tokio::test]
async fn a_reply_in_a_thread_carries_the_m_thread_relation() {
    let fake = Fake::start(|r| {
        if r.path.starts_with("/_matrix/media/v3/upload") {
            return json(200, json!({"content_uri": "mxc://fake/t"}));
        }
        if r.path.contains("/send/m.room.message/") {
            return json(200, json!({"event_id": format!("$e{}", r.index)}));
        }
        if r.path.contains("/state/m.room.encryption") {
            return json(404, json!({"errcode": "M_NOT_FOUND"}));
        }
        json(404, json!({"errcode": "M_UNRECOGNIZED"}))
    })
    .await;
    let a = adapter(&fake.base, "tok");
    let mut m = msg("room:!r:hs", Some("in the thread"), Vec::new());
    m.thread = Some("$root".into());
    a.send(m).await.unwrap();
    let bytes = png_of_len(500, 3);
    let mut m = msg(
        "room:!r:hs",
        None,
        vec![attachment(&bytes, "t.png", "image/png")],
    );
    m.thread = Some("$root".into());
    a.send(m).await.unwrap();
    a.send(msg("room:!r:hs", Some("top"), Vec::new()))
        .await
        .unwrap();
    let events: Vec<Value> = fake
        .requests()
        .iter()
        .filter(|r| r.path.contains("/send/m.room.message/"))
        .map(|r| r.json.clone().unwrap())
        .collect();
    assert_eq!(events.len(), 3);
    for e in &events[..2] {
        let rel = &e["m.relates_to"];
        assert_eq!(rel["rel_type"], "m.thread", "{e}");
        assert_eq!(rel["event_id"], "$root");
        assert_eq!(rel["is_falling_back"], true);
        assert_eq!(rel["m.in_reply_to"]["event_id"], "$root");
    }
    assert_eq!(events[1]["msgtype"], "m.image");
    assert!(events[2].get("m.relates_to").is_none(), "{}", events[2]);
}
