//! The Discord Gateway source against a loopback stand-in that follows the documented
//! opcode flow and records every deviation (`tests/common/discord_gateway_standin.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/recording_sink.rs"]
mod recording_sink;
#[path = "common/discord_gateway_standin.rs"]
mod standin;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use carapace_channels::inbound::discord_gateway::{
    DiscordGatewaySettings, DiscordGatewaySource, ReconnectPolicy,
};
use carapace_channels::inbound::{ChatKind, ChatRef, ConnectionState, InboundSource};
use carapace_channels::{
    Attachment, ChannelAdapter, ChannelError, DiscordAdapter, DiscordSettings, OutboundMessage,
    Target, Timeouts,
};
use carapace_policy::{CarapaceError, ErrorCode};
use carapace_testkit::png::png_of_len;
use recording_sink::RecordingSink;
use serde_json::{Value, json};
use standin::{BOT_ID, Cmd, MESSAGE_CONTENT, Standin, TOKEN};
use tokio_util::sync::CancellationToken;

fn settings(base: &str) -> DiscordGatewaySettings {
    let mut s = DiscordGatewaySettings::new(TOKEN);
    s.api_base_url = base.to_string();
    s.reconnect = ReconnectPolicy {
        base: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
    s.handshake_timeout = Duration::from_secs(20);
    s.invalid_session_delay = (Duration::from_millis(10), Duration::from_millis(30));
    s.typing_refresh = Duration::from_millis(50);
    s.timeouts = Timeouts {
        connect: Duration::from_secs(5),
        request: Duration::from_secs(20),
        min_upload_bytes_per_sec: 64 * 1024,
    };
    s
}

struct Running {
    source: Arc<DiscordGatewaySource>,
    sink: Arc<RecordingSink>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ChannelError>>,
}

fn start(s: DiscordGatewaySettings) -> Running {
    let source = Arc::new(DiscordGatewaySource::new(s).unwrap());
    let sink = Arc::new(RecordingSink::default());
    let stop = CancellationToken::new();
    let task = {
        let (source, sink, stop) = (source.clone(), sink.clone(), stop.clone());
        tokio::spawn(async move { source.run(sink, stop).await })
    };
    Running {
        source,
        sink,
        stop,
        task,
    }
}

impl Running {
    async fn stop(self) -> Result<(), ChannelError> {
        self.stop.cancel();
        let r = self.task.await.unwrap();
        assert_eq!(
            self.sink.last_state(),
            Some(ConnectionState::Stopped { error: None })
        );
        r
    }

    async fn ended(self) -> ChannelError {
        let r = tokio::time::timeout(recording_sink::PATIENCE, self.task)
            .await
            .expect("run did not end")
            .unwrap();
        let e = r.expect_err("run should have ended with an error");
        assert_eq!(
            self.sink.last_state(),
            Some(ConnectionState::Stopped {
                error: Some(e.to_string())
            })
        );
        e
    }
}

fn message(sd: &Standin, channel: &str, text: &str) -> Value {
    json!({
        "id": sd.message_id(),
        "channel_id": channel,
        "type": 0,
        "content": text,
        "author": {"id": "42", "username": "alice", "global_name": "Alice"},
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "timestamp": "2026-01-01T00:00:00.000000+00:00",
    })
}

#[tokio::test]
async fn a_dm_with_an_image_arrives_and_its_bytes_are_fetched_within_the_cap() {
    let sd = Standin::start().await;
    let bytes = png_of_len(300_000, 1);
    sd.set(|s| {
        s.files.insert(
            "/attachments/500/77/cat.png".into(),
            ("image/png".into(), bytes.clone()),
        );
    });
    let r = start(settings(&sd.base));
    sd.wait_live().await;
    let mut m = message(&sd, "500", "what is this?");
    m["attachments"] = json!([{
        "id": "77", "filename": "cat.png", "size": bytes.len(),
        "url": format!("{}/attachments/500/77/cat.png", sd.base),
        "proxy_url": format!("{}/attachments/500/77/cat.png", sd.base),
        "content_type": "image/png", "width": 10, "height": 10,
    }]);
    let id = m["id"].as_str().unwrap().to_string();
    sd.message(m);
    r.sink.wait_messages(1).await;
    let got = r.sink.messages().remove(0);
    assert_eq!(got.channel, "discord");
    assert_eq!(got.event_id, id);
    assert_eq!(
        got.chat,
        ChatRef {
            kind: ChatKind::Direct,
            id: "500".into(),
            thread: None
        }
    );
    assert_eq!(got.sender.id, "42");
    assert_eq!(got.text, "what is this?");
    assert_eq!(got.attachments.len(), 1);
    let att = &got.attachments[0];
    assert_eq!(att.filename.as_deref(), Some("cat.png"));
    assert_eq!(att.mime.as_deref(), Some("image/png"));

    let media = r.source.fetch_attachment(att, 10 << 20).await.unwrap();
    assert_eq!(
        media.bytes, bytes,
        "the bytes differ from what the CDN served"
    );
    assert_eq!(media.content_type.as_deref(), Some("image/png"));

    // Over the cap by its declared size: refused before any byte is read.
    let before = sd.get(|s| s.cdn_requests.len());
    let e = r.source.fetch_attachment(att, 1000).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::OutboundMediaTooLarge);
    assert_eq!(e.details()["limit"], 1000);
    assert_eq!(sd.get(|s| s.cdn_requests.len()), before);
    // A declared size that lies: the body itself is capped, no partial file comes back.
    let mut liar = att.clone();
    liar.size = Some(10);
    let e = r.source.fetch_attachment(&liar, 1000).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::OutboundMediaTooLarge);
    // A handle that is not Discord's CDN is never fetched.
    let mut elsewhere = att.clone();
    elsewhere.fetch = "http://127.0.0.2:9/attachments/x.png".into();
    let e = r
        .source
        .fetch_attachment(&elsewhere, 10 << 20)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadRequest);

    let identify = sd.get(|s| s.connections[0].identify.clone().unwrap());
    assert_eq!(identify["token"], TOKEN);
    assert_eq!(identify["intents"], 37377);
    assert_eq!(r.source.stats().connects, 1);
    assert_eq!(r.source.stats().delivered, 1);
    r.stop().await.unwrap();
    // A shutdown closes normally (the session is over).
    sd.wait("the client's close", |s| s.connections[0].ended)
        .await;
    assert_eq!(sd.get(|s| s.connections[0].client_close), Some(1000));
    sd.assert_clean();
}

#[tokio::test]
async fn a_dropped_connection_resumes_without_losing_or_repeating_a_message() {
    let sd = Standin::start().await;
    let r = start(settings(&sd.base));
    let first = sd.wait_live().await;
    for i in 1..=3 {
        sd.message(message(&sd, "500", &format!("m{i}")));
    }
    r.sink.wait_messages(3).await;
    // m4 reaches the source but the sink has not accepted it yet; m5 waits behind it.
    r.sink.hold.store(true, Ordering::SeqCst);
    sd.message(message(&sd, "500", "m4"));
    sd.message(message(&sd, "500", "m5"));
    r.sink
        .wait("m4 waiting in the sink", |s| {
            s.waiting.load(Ordering::SeqCst) == 1
        })
        .await;
    // The connection drops (no close frame); m6 and m7 are sent while the bot is away.
    sd.set(|s| s.paused = true);
    sd.cmd(Cmd::Drop);
    sd.wait("the drop", |s| s.connections[first].ended).await;
    sd.dispatch_offline("MESSAGE_CREATE", message(&sd, "500", "m6"));
    sd.dispatch_offline("MESSAGE_CREATE", message(&sd, "500", "m7"));
    sd.set(|s| s.paused = false);
    let second = sd.wait_live_after(first).await;
    // m4 was still not accepted when the connection went: the sink lets go only now.
    r.sink.release();
    r.sink.wait_messages(7).await;
    sd.message(message(&sd, "500", "m8"));
    r.sink.wait_messages(8).await;
    assert_eq!(
        r.sink.texts(),
        ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"],
        "every message exactly once, in order"
    );
    let (resume, identifies, path) = sd.get(|s| {
        (
            s.connections[second].resume.clone(),
            s.identifies,
            s.connections[second].path.clone(),
        )
    });
    let resume = resume.expect("the second connection should RESUME");
    assert_eq!(resume["session_id"], "session-1");
    assert_eq!(path, "/resume");
    // READY was 1, m1..m3 were 2..4: m4 was not accepted, so the session resumes from 4.
    assert_eq!(resume["seq"], 4);
    assert_eq!(identifies, 1);
    let stats = r.source.stats();
    assert_eq!(stats.resumes, 1);
    assert!(stats.reconnects >= 1);
    assert_eq!(stats.state, ConnectionState::Connected);
    assert!(
        r.sink
            .states
            .lock()
            .unwrap()
            .iter()
            .any(|(_, s)| matches!(s, ConnectionState::Reconnecting { attempt: 1, .. }))
    );
    r.stop().await.unwrap();
    sd.assert_clean();
}

#[tokio::test]
async fn a_refused_message_is_handed_over_again_after_a_resume() {
    let sd = Standin::start().await;
    let r = start(settings(&sd.base));
    let first = sd.wait_live().await;
    r.sink.refuse.store(1, Ordering::SeqCst);
    sd.message(message(&sd, "500", "once"));
    let second = sd.wait_live_after(first).await;
    r.sink.wait_messages(1).await;
    sd.message(message(&sd, "500", "after"));
    r.sink.wait_messages(2).await;
    assert_eq!(r.sink.texts(), ["once", "after"]);
    assert_eq!(r.sink.refused.load(Ordering::SeqCst), 1);
    assert_eq!(sd.get(|s| s.connections[first].client_close), Some(4900));
    assert!(sd.get(|s| s.connections[second].resume.is_some()));
    r.stop().await.unwrap();
    sd.assert_clean();
}

#[tokio::test]
async fn reconnect_op7_and_resumable_close_codes_resume_the_session() {
    let sd = Standin::start().await;
    let r = start(settings(&sd.base));
    let a = sd.wait_live().await;
    sd.message(message(&sd, "500", "before"));
    r.sink.wait_messages(1).await;
    sd.cmd(Cmd::Reconnect);
    let b = sd.wait_live_after(a).await;
    // The client closed with a code that keeps the session (not 1000 / 1001) and resumed.
    assert_eq!(sd.get(|s| s.connections[a].client_close), Some(4900));
    assert!(sd.get(|s| s.connections[b].resume.is_some()));
    sd.cmd(Cmd::Close(4000));
    let c = sd.wait_live_after(b).await;
    assert!(sd.get(|s| s.connections[c].resume.is_some()));
    sd.message(message(&sd, "500", "after"));
    r.sink.wait_messages(2).await;
    assert_eq!(r.sink.texts(), ["before", "after"]);
    assert_eq!(sd.get(|s| (s.identifies, s.resumes)), (1, 2));
    r.stop().await.unwrap();
    sd.assert_clean();
}

#[tokio::test]
async fn invalid_sessions_and_session_ending_close_codes_follow_the_documented_flow() {
    let sd = Standin::start().await;
    let r = start(settings(&sd.base));
    let a = sd.wait_live().await;
    // d = true: the session may be resumed.
    sd.cmd(Cmd::InvalidSession(true));
    let b = sd.wait_live_after(a).await;
    assert!(sd.get(|s| s.connections[b].resume.is_some()));
    // d = false: a new session, on the gateway URL (never a RESUME of the dead one — the
    // stand-in records that as a violation).
    sd.cmd(Cmd::InvalidSession(false));
    let c = sd.wait_live_after(b).await;
    assert!(sd.get(|s| s.connections[c].identify.is_some()));
    assert_eq!(sd.get(|s| s.connections[c].path.clone()), "/gateway");
    // 4009 (session timed out) needs a new session too.
    sd.cmd(Cmd::Close(4009));
    let d = sd.wait_live_after(c).await;
    assert!(sd.get(|s| s.connections[d].identify.is_some()));
    sd.message(message(&sd, "500", "still here"));
    r.sink.wait_messages(1).await;
    assert_eq!(sd.get(|s| (s.identifies, s.resumes)), (3, 1));
    assert_eq!(sd.get(|s| s.gateway_bot_calls), 3);
    r.stop().await.unwrap();
    sd.assert_clean();
}

#[tokio::test]
async fn heartbeats_carry_the_sequence_and_a_missed_ack_reconnects_and_resumes() {
    let sd = Standin::start().await;
    sd.set(|s| s.heartbeat_interval_ms = 500);
    let r = start(settings(&sd.base));
    sd.wait_live().await;
    sd.message(message(&sd, "500", "hi"));
    r.sink.wait_messages(1).await;
    // The stand-in validates each heartbeat's seq (never above what was sent, never going
    // backwards); after "hi" (seq 2) they carry at least 2.
    sd.wait("heartbeats after the message", |s| {
        s.connections.iter().any(|c| {
            c.heartbeats
                .iter()
                .filter(|h| h.is_some_and(|n| n >= 2))
                .count()
                >= 2
        })
    })
    .await;
    // The server stops acknowledging: the client must treat the connection as dead, close
    // it with a resumable code and resume.
    sd.set(|s| s.ack_heartbeats = false);
    let zombie = sd.get(|s| s.connections.len() - 1);
    sd.wait("the zombied connection closed", |s| {
        s.connections[zombie].ended
    })
    .await;
    assert_eq!(sd.get(|s| s.connections[zombie].client_close), Some(4900));
    sd.set(|s| s.ack_heartbeats = true);
    let b = sd.wait_live_after(zombie).await;
    assert!(sd.get(|s| s.connections[b].resume.is_some()));
    sd.message(message(&sd, "500", "after"));
    r.sink.wait_messages(2).await;
    assert_eq!(r.sink.texts(), ["hi", "after"]);
    assert_eq!(sd.get(|s| s.identifies), 1);
    r.stop().await.unwrap();
    sd.assert_clean();
}

#[tokio::test]
async fn a_heartbeat_request_is_answered_at_once() {
    let sd = Standin::start().await;
    let r = start(settings(&sd.base));
    let a = sd.wait_live().await;
    assert!(sd.get(|s| s.connections[a].heartbeats.is_empty()));
    sd.cmd(Cmd::RequestHeartbeat);
    sd.wait("the requested heartbeat", |s| {
        s.connections[a].heartbeats == [Some(1)]
    })
    .await;
    r.stop().await.unwrap();
    sd.assert_clean();
}

#[tokio::test]
async fn a_revoked_token_stops_with_a_typed_error_instead_of_reconnecting() {
    // At IDENTIFY: close 4004.
    let sd = Standin::start().await;
    sd.set(|s| s.gateway_token_revoked = true);
    let r = start(settings(&sd.base));
    let e = r.ended().await;
    assert_eq!(e.code(), ErrorCode::ChannelUnauthorized);
    let m = e.to_string();
    assert!(
        m.contains("4004") && m.contains("channels.discord.token"),
        "{m}"
    );
    assert!(!m.contains(TOKEN));
    assert_eq!(sd.get(|s| s.connections.len()), 1, "no second attempt");
    sd.assert_clean();

    // Mid-session: the token is reset, the connection drops, the RESUME is closed with 4004.
    let sd = Standin::start().await;
    let r = start(settings(&sd.base));
    let a = sd.wait_live().await;
    sd.set(|s| s.gateway_token_revoked = true);
    sd.cmd(Cmd::Drop);
    let source = r.source.clone();
    let e = r.ended().await;
    assert_eq!(e.code(), ErrorCode::ChannelUnauthorized);
    assert_eq!(sd.get(|s| s.connections.len()), a + 2);
    assert!(sd.get(|s| s.connections[a + 1].resume.is_some()));
    assert!(matches!(
        source.stats().state,
        ConnectionState::Stopped { error: Some(_) }
    ));

    // At GET /gateway/bot: HTTP 401, no connection at all.
    let sd = Standin::start().await;
    sd.set(|s| s.rest_token_revoked = true);
    let r = start(settings(&sd.base));
    let e = r.ended().await;
    assert_eq!(e.code(), ErrorCode::ChannelUnauthorized);
    assert_eq!(e.details()["status"], 401);
    assert!(e.to_string().contains("channels.discord.token"));
    assert_eq!(
        sd.get(|s| (s.gateway_bot_calls, s.connections.len())),
        (1, 0)
    );
}

#[tokio::test]
async fn disallowed_intents_stop_with_the_developer_portal_switch_named() {
    let sd = Standin::start().await;
    sd.set(|s| s.enabled_intents = 0);
    let r = start(settings(&sd.base));
    let e = r.ended().await;
    assert_eq!(e.code(), ErrorCode::ChannelNotConfigured);
    let m = e.to_string();
    for needle in [
        "4014",
        "Message Content Intent",
        "Developer Portal",
        "Privileged Gateway Intents",
    ] {
        assert!(m.contains(needle), "{needle:?} missing in {m}");
    }
    assert_eq!(sd.get(|s| s.connections.len()), 1, "no second attempt");

    // Asking for Server Members without it being enabled names that switch.
    let sd = Standin::start().await;
    sd.set(|s| s.enabled_intents = MESSAGE_CONTENT);
    let mut s = settings(&sd.base);
    s.intents.guild_members = true;
    let e = start(s).ended().await;
    let m = e.to_string();
    assert!(m.contains("Server Members Intent"), "{m}");
    assert!(m.contains("channels.discord.intents.guildMembers"), "{m}");
    sd.assert_clean();
}

#[tokio::test]
async fn identify_waits_while_the_daily_session_limit_is_used_up() {
    let sd = Standin::start().await;
    sd.set(|s| s.session_start_remaining = 0);
    let r = start(settings(&sd.base));
    sd.wait("a second look at /gateway/bot", |s| {
        s.gateway_bot_calls >= 2
    })
    .await;
    assert_eq!(sd.get(|s| s.identifies), 0);
    assert!(r.sink.states.lock().unwrap().iter().any(|(_, s)| matches!(
        s,
        ConnectionState::Reconnecting { error, .. } if error.contains("daily limit")
    )));
    sd.set(|s| s.session_start_remaining = 3);
    sd.wait_live().await;
    assert_eq!(sd.get(|s| s.identifies), 1);
    r.stop().await.unwrap();
    sd.assert_clean();
}

#[tokio::test]
async fn guild_messages_threads_mentions_and_bots() {
    let sd = Standin::start().await;
    sd.set(|s| {
        s.after_ready = vec![(
            "GUILD_CREATE".into(),
            json!({
                "id": "g1",
                "threads": [{"id": "t1", "parent_id": "c1", "type": 11}],
                "members": [{"user": {"id": BOT_ID}, "roles": ["r-bot"]}],
            }),
        )];
    });
    let r = start(settings(&sd.base));
    sd.wait_live().await;
    let g = |channel: &str, text: &str, extra: Value| {
        let mut m = message(&sd, channel, text);
        m["guild_id"] = json!("g1");
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        m
    };
    sd.message(g(
        "c1",
        "own",
        json!({"author": {"id": BOT_ID, "username": "carapace-test", "bot": true}}),
    ));
    sd.message(g(
        "c1",
        "other bot",
        json!({"author": {"id": "77", "username": "b", "bot": true}}),
    ));
    sd.message(g("c1", "join", json!({"type": 7})));
    sd.message(g("t1", "in thread", json!({"mentions": [{"id": BOT_ID}]})));
    sd.message(g("c1", "role", json!({"mention_roles": ["r-bot"]})));
    sd.message(g("c1", "plain", json!({})));
    sd.cmd(Cmd::Dispatch(
        "THREAD_CREATE".into(),
        json!({"id": "t2", "parent_id": "c2", "guild_id": "g1", "type": 11}),
    ));
    sd.message(g(
        "t2",
        "new thread",
        json!({"type": 19, "referenced_message": {"id": "1", "author": {"id": BOT_ID}}}),
    ));
    r.sink.wait_messages(4).await;
    let got = r.sink.messages();
    let summary: Vec<(String, String, Option<String>, bool, ChatKind)> = got
        .iter()
        .map(|m| {
            (
                m.text.clone(),
                m.chat.id.clone(),
                m.chat.thread.clone(),
                m.mentions_bot,
                m.chat.kind,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "in thread".into(),
                "c1".into(),
                Some("t1".into()),
                true,
                ChatKind::Group
            ),
            ("role".into(), "c1".into(), None, true, ChatKind::Group),
            ("plain".into(), "c1".into(), None, false, ChatKind::Group),
            (
                "new thread".into(),
                "c2".into(),
                Some("t2".into()),
                true,
                ChatKind::Group
            ),
        ]
    );
    r.stop().await.unwrap();
    sd.assert_clean();
}

#[tokio::test]
async fn typing_is_shown_in_the_chat_and_kept_alive_until_turned_off() {
    let sd = Standin::start().await;
    let r = start(settings(&sd.base));
    sd.wait_live().await;
    let dm = ChatRef {
        kind: ChatKind::Direct,
        id: "500".into(),
        thread: None,
    };
    r.source.typing(&dm, true).await.unwrap();
    sd.wait("the typing indicator refreshed", |s| {
        s.typing.iter().filter(|c| *c == "500").count() >= 3
    })
    .await;
    r.source.typing(&dm, false).await.unwrap();
    let thread = ChatRef {
        kind: ChatKind::Group,
        id: "c1".into(),
        thread: Some("t1".into()),
    };
    r.source.typing(&thread, true).await.unwrap();
    r.source.typing(&thread, false).await.unwrap();
    assert!(sd.get(|s| s.typing.contains(&"t1".to_string())));
    assert!(!sd.get(|s| s.typing.contains(&"c1".to_string())));
    r.stop().await.unwrap();
    sd.assert_clean();
}

/// The round trip the conversation service makes: a DM with an image comes in through the
/// Gateway, the image is fetched, and a reply carrying a file goes out through the REST
/// adapter to the chat it came from — byte for byte at the stand-in.
#[tokio::test]
async fn a_dm_with_an_image_in_and_a_reply_with_an_attachment_out() {
    let sd = Standin::start().await;
    let image = png_of_len(120_000, 1);
    sd.set(|s| {
        s.files.insert(
            "/attachments/600/9/photo.png".into(),
            ("image/png".into(), image.clone()),
        );
    });
    let r = start(settings(&sd.base));
    sd.wait_live().await;
    let mut m = message(&sd, "600", "make it smaller");
    m["attachments"] = json!([{"id": "9", "filename": "photo.png", "size": image.len(),
        "url": format!("{}/attachments/600/9/photo.png", sd.base), "content_type": "image/png"}]);
    sd.message(m);
    r.sink.wait_messages(1).await;
    let inbound = r.sink.messages().remove(0);
    let fetched = r
        .source
        .fetch_attachment(&inbound.attachments[0], 25 << 20)
        .await
        .unwrap();
    assert_eq!(fetched.bytes, image);

    // The "model" answers with a file derived from the input.
    let reply: Vec<u8> = fetched.bytes.iter().rev().copied().collect();
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(&reply).unwrap();
    let mut out = DiscordSettings::new(TOKEN);
    out.api_base_url = sd.base.clone();
    let adapter = DiscordAdapter::new(out).unwrap();
    r.source.typing(&inbound.chat, true).await.unwrap();
    let target = Target::Channel(
        inbound
            .chat
            .thread
            .clone()
            .unwrap_or(inbound.chat.id.clone()),
    );
    let delivered = adapter
        .send(OutboundMessage {
            target,
            text: Some("here it is".into()),
            caption: None,
            attachments: vec![Attachment {
                file: f,
                size: reply.len() as u64,
                filename: "small.png".into(),
                mime: "image/png".into(),
                width: None,
                height: None,
            }],
            progress: None,
            thread: None,
        })
        .await
        .unwrap();
    r.source.typing(&inbound.chat, false).await.unwrap();
    assert_eq!(delivered.attachments.len(), 1);
    let posted = sd.get(|s| s.posted.clone());
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].channel, "600");
    assert_eq!(posted[0].payload["content"], "here it is");
    assert_eq!(posted[0].files[0].0, "small.png");
    assert_eq!(
        posted[0].files[0].1, reply,
        "the reply's bytes differ at the stand-in"
    );
    r.stop().await.unwrap();
    sd.assert_clean();
}

/// Nothing the source logs, at any level, carries the token — through a drop, a resume and a
/// revoked token.
#[tokio::test(flavor = "current_thread")]
async fn the_token_never_appears_in_logs_states_or_errors() {
    let buf = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let writer = {
        let buf = buf.clone();
        move || LogWriter(buf.clone())
    };
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(writer)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let sd = Standin::start().await;
    let r = start(settings(&sd.base));
    let a = sd.wait_live().await;
    sd.message(message(&sd, "500", "hello"));
    r.sink.wait_messages(1).await;
    sd.cmd(Cmd::Drop);
    sd.wait_live_after(a).await;
    sd.set(|s| s.gateway_token_revoked = true);
    sd.cmd(Cmd::Drop);
    let states = r.sink.clone();
    let e = r.ended().await;
    let logs = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("gateway connection lost"),
        "the capture works"
    );
    assert!(!logs.contains(TOKEN), "the token was logged");
    assert!(!format!("{e:?} {e}").contains(TOKEN));
    assert!(!format!("{:?}", states.states.lock().unwrap()).contains(TOKEN));
}

struct LogWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
