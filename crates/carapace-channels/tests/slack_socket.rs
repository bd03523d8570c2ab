//! The Slack Socket Mode source against a loopback stand-in that enforces Socket Mode's rules
//! — acknowledgements within 3 s among them (`tests/common/slack_socket_standin.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/recording_sink.rs"]
mod recording_sink;
#[path = "common/slack_socket_standin.rs"]
mod standin;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use carapace_channels::inbound::slack_socket::{
    ReconnectPolicy, SlackSocketSettings, SlackSocketSource,
};
use carapace_channels::inbound::{ChatKind, ConnectionState, InboundSource};
use carapace_channels::{
    Attachment, ChannelAdapter, ChannelError, OutboundMessage, SlackAdapter, SlackSettings, Target,
    Timeouts,
};
use carapace_policy::{CarapaceError, ErrorCode};
use carapace_testkit::png::png_of_len;
use recording_sink::RecordingSink;
use serde_json::json;
use standin::{APP_TOKEN, BOT_TOKEN, BOT_USER, Cmd, Standin};
use tokio_util::sync::CancellationToken;

fn settings(api: &str) -> SlackSocketSettings {
    let mut s = SlackSocketSettings::new(APP_TOKEN, BOT_TOKEN);
    s.api_base_url = api.to_string();
    s.reconnect = ReconnectPolicy {
        base: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
    s.handshake_timeout = Duration::from_secs(20);
    s.timeouts = Timeouts {
        connect: Duration::from_secs(5),
        request: Duration::from_secs(20),
        min_upload_bytes_per_sec: 64 * 1024,
    };
    s
}

struct Running {
    source: Arc<SlackSocketSource>,
    sink: Arc<RecordingSink>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ChannelError>>,
}

fn start(s: SlackSocketSettings) -> Running {
    let source = Arc::new(SlackSocketSource::new(s).unwrap());
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

fn file_event(sd: &Standin, bytes: &[u8]) -> serde_json::Value {
    sd.payload(json!({
        "type": "message", "subtype": "file_share", "channel": "D1", "channel_type": "im",
        "user": "U42", "text": "what is this?", "ts": "1712345678.000100",
        "files": [{
            "id": "F1", "name": "cat.png", "mimetype": "image/png", "size": bytes.len(),
            "mode": "hosted",
            "url_private": format!("{}/files-pri/T1-F1/cat.png", sd.base),
            "url_private_download": format!("{}/files-pri/T1-F1/download/cat.png", sd.base),
        }],
    }))
}

#[tokio::test]
async fn a_dm_with_a_file_arrives_acknowledged_and_its_bytes_are_fetched_with_the_bot_token() {
    let sd = Standin::start().await;
    let bytes = png_of_len(250_000, 1);
    sd.set(|s| {
        s.files.insert(
            "/files-pri/T1-F1/download/cat.png".into(),
            ("image/png".into(), bytes.clone()),
        );
    });
    let r = start(settings(&sd.api));
    let live = sd.wait_live().await;
    sd.cmd(Cmd::Event(file_event(&sd, &bytes)));
    r.sink.wait_messages(1).await;
    let m = r.sink.messages().remove(0);
    assert_eq!(m.channel, "slack");
    assert_eq!(m.event_id, "D1:1712345678.000100");
    assert_eq!(m.chat.kind, ChatKind::Direct);
    assert_eq!(m.chat.id, "D1");
    assert_eq!(m.chat.thread, None);
    assert_eq!(m.sender.id, "U42");
    assert_eq!(m.attachments.len(), 1);
    sd.wait("the acknowledgement", |s| {
        s.connections[live].acks.len() == 1
    })
    .await;

    let media = r
        .source
        .fetch_attachment(&m.attachments[0], 10 << 20)
        .await
        .unwrap();
    assert_eq!(media.bytes, bytes);
    let auth = sd.get(|s| s.file_requests[0].get("authorization").cloned());
    assert_eq!(auth.unwrap(), format!("Bearer {BOT_TOKEN}").as_str());

    // Caps: by the declared size (no request), and by the body when the size lies.
    let before = sd.get(|s| s.file_requests.len());
    let e = r
        .source
        .fetch_attachment(&m.attachments[0], 1000)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::OutboundMediaTooLarge);
    assert_eq!(sd.get(|s| s.file_requests.len()), before);
    let mut liar = m.attachments[0].clone();
    liar.size = None;
    let e = r.source.fetch_attachment(&liar, 1000).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::OutboundMediaTooLarge);
    // Another host never gets the token.
    let mut elsewhere = m.attachments[0].clone();
    elsewhere.fetch = "http://127.0.0.2:9/files-pri/T1-F1/cat.png".into();
    assert_eq!(
        r.source
            .fetch_attachment(&elsewhere, 10 << 20)
            .await
            .unwrap_err()
            .code(),
        ErrorCode::BadRequest
    );
    // Without files:read Slack serves its sign-in page: a typed error naming the scope.
    sd.set(|s| s.files_without_scope = true);
    let e = r
        .source
        .fetch_attachment(&m.attachments[0], 10 << 20)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ChannelUnauthorized);
    assert!(e.to_string().contains("files:read"), "{e}");

    assert_eq!(sd.get(|s| (s.auth_tests, s.opens)), (1, 1));
    r.stop().await.unwrap();
    sd.wait("the client's close", |s| s.connections[live].ended)
        .await;
    assert_eq!(sd.get(|s| s.connections[live].client_close), Some(1000));
    sd.assert_clean();
}

#[tokio::test]
async fn every_envelope_is_acknowledged_in_time_and_only_messages_reach_the_sink() {
    let sd = Standin::start().await;
    let r = start(settings(&sd.api));
    let live = sd.wait_live().await;
    let text = format!("<@{BOT_USER}> summarise this");
    let ts = "1712345000.000200";
    // In a channel, a mention arrives twice: as `message` and as `app_mention`.
    sd.cmd(Cmd::Event(sd.message("C1", "channel", &text, ts)));
    sd.cmd(Cmd::Event(sd.payload(json!({
        "type": "app_mention", "channel": "C1", "user": "U42", "text": text, "ts": ts, "event_ts": ts,
    }))));
    sd.cmd(Cmd::Event(sd.payload(
        json!({"type": "reaction_added", "user": "U42", "reaction": "eyes",
        "item": {"type": "message", "channel": "C1", "ts": ts}}),
    )));
    sd.cmd(Cmd::Event(sd.payload(
        json!({"type": "message", "subtype": "message_changed", "channel": "C1",
        "hidden": true, "ts": "1712345001.000000", "message": {"text": "edited"}}),
    )));
    sd.cmd(Cmd::Event(sd.payload(
        json!({"type": "message", "channel": "C1", "user": BOT_USER,
        "bot_id": "BBOT", "text": "my own reply", "ts": "1712345002.000000"}),
    )));
    sd.cmd(Cmd::Envelope(
        "slash_commands".into(),
        json!({"command": "/carapace", "text": "hi"}),
    ));
    sd.cmd(Cmd::Envelope(
        "interactive".into(),
        json!({"type": "block_actions"}),
    ));
    sd.cmd(Cmd::Event(sd.message(
        "C1",
        "channel",
        "plain",
        "1712345003.000000",
    )));
    sd.wait("eight acknowledgements", |s| {
        s.connections[live].acks.len() == 8
    })
    .await;
    r.sink.wait_messages(3).await;
    let got = r.sink.messages();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].event_id, format!("C1:{ts}"));
    assert_eq!(
        got[1].event_id, got[0].event_id,
        "the twins share the sink's de-duplication key"
    );
    assert!(got[0].mentions_bot && got[1].mentions_bot);
    assert_eq!(got[0].chat.kind, ChatKind::Group);
    assert_eq!(got[2].text, "plain");
    assert!(!got[2].mentions_bot);
    let acked = sd.get(|s| s.connections[live].acks.clone());
    let sent: Vec<String> = sd.get(|s| s.sent.iter().map(|e| e.0.clone()).collect());
    assert_eq!(acked, sent, "every envelope acknowledged once, in order");
    r.stop().await.unwrap();
    sd.assert_clean();
}

#[tokio::test]
async fn thread_replies_keep_their_thread() {
    let sd = Standin::start().await;
    let r = start(settings(&sd.api));
    sd.wait_live().await;
    sd.cmd(Cmd::Event(sd.payload(json!({"type": "message", "channel": "C1", "channel_type": "channel",
        "user": "U42", "text": "in a thread", "ts": "1712345100.000300", "thread_ts": "1712345000.000100",
        "parent_user_id": BOT_USER}))));
    sd.cmd(Cmd::Event(sd.payload(
        json!({"type": "message", "channel": "G1", "channel_type": "group",
        "user": "U42", "text": "top level", "ts": "1712345101.000000"}),
    )));
    r.sink.wait_messages(2).await;
    let got = r.sink.messages();
    assert_eq!(got[0].chat.id, "C1");
    assert_eq!(got[0].chat.thread.as_deref(), Some("1712345000.000100"));
    assert!(
        got[0].mentions_bot,
        "a reply in the bot's thread counts as addressed to it"
    );
    assert_eq!(got[1].chat.thread, None);
    assert_eq!(got[1].chat.kind, ChatKind::Group);
    r.stop().await.unwrap();
    sd.assert_clean();
}

#[tokio::test]
async fn disconnect_messages_open_a_new_connection() {
    let sd = Standin::start().await;
    let r = start(settings(&sd.api));
    let a = sd.wait_live().await;
    sd.cmd(Cmd::Event(sd.message("D1", "im", "one", "1.000001")));
    r.sink.wait_messages(1).await;
    sd.cmd(Cmd::Disconnect("refresh_requested".into()));
    let b = sd.wait_live_after(a).await;
    sd.cmd(Cmd::Event(sd.message("D1", "im", "two", "1.000002")));
    r.sink.wait_messages(2).await;
    sd.cmd(Cmd::Disconnect("warning".into()));
    let c = sd.wait_live_after(b).await;
    sd.cmd(Cmd::Event(sd.message("D1", "im", "three", "1.000003")));
    r.sink.wait_messages(3).await;
    assert_eq!(r.sink.texts(), ["one", "two", "three"]);
    // A fresh apps.connections.open each time: the stand-in refuses a reused ticket.
    assert_eq!(sd.get(|s| s.opens), 3);
    assert_eq!(c, 2);
    sd.wait("the old connections closed", |s| {
        s.connections[a].ended && s.connections[b].ended
    })
    .await;
    let stats = r.source.stats();
    assert_eq!((stats.connects, stats.reconnects, stats.resumes), (3, 2, 0));
    assert_eq!(stats.delivered, 3);
    r.stop().await.unwrap();
    sd.assert_clean();
}

#[tokio::test]
async fn a_dropped_connection_reconnects_without_losing_or_repeating_a_message() {
    let sd = Standin::start().await;
    let r = start(settings(&sd.api));
    let a = sd.wait_live().await;
    sd.cmd(Cmd::Event(sd.message("D1", "im", "before", "2.000001")));
    r.sink.wait_messages(1).await;
    sd.wait("the ack", |s| s.connections[a].acks.len() == 1)
        .await;
    sd.cmd(Cmd::Drop);
    let b = sd.wait_live_after(a).await;
    sd.cmd(Cmd::Event(sd.message("D1", "im", "after", "2.000002")));
    r.sink.wait_messages(2).await;
    assert_eq!(r.sink.texts(), ["before", "after"]);
    sd.wait("the ack on the new connection", |s| {
        s.connections[b].acks.len() == 1
    })
    .await;
    assert!(matches!(
        r.sink
            .states
            .lock()
            .unwrap()
            .iter()
            .find(|(_, s)| matches!(s, ConnectionState::Reconnecting { .. })),
        Some((_, ConnectionState::Reconnecting { attempt: 1, .. }))
    ));
    r.stop().await.unwrap();
    sd.assert_clean();
}

#[tokio::test]
async fn a_message_the_sink_refused_is_left_unacknowledged_and_slack_sends_it_again() {
    let sd = Standin::start().await;
    let r = start(settings(&sd.api));
    let a = sd.wait_live().await;
    // Refused once on this connection: Slack sends it again after its 3 s deadline.
    r.sink.refuse.store(1, Ordering::SeqCst);
    sd.cmd(Cmd::Event(sd.message("D1", "im", "retry me", "3.000001")));
    r.sink.wait_messages(1).await;
    assert_eq!(r.sink.refused.load(Ordering::SeqCst), 1);
    let sent = sd.get(|s| s.sent.clone());
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[1].2, 1, "the second delivery is retry_attempt 1");
    assert_eq!(sd.get(|s| s.ack_timeouts.len()), 1);

    // Refused, then the connection drops: it comes again on the next connection.
    r.sink.refuse.store(1, Ordering::SeqCst);
    sd.cmd(Cmd::Event(sd.message("D1", "im", "and me", "3.000002")));
    r.sink
        .wait("the refusal", |s| s.refused.load(Ordering::SeqCst) == 2)
        .await;
    sd.cmd(Cmd::Drop);
    let b = sd.wait_live_after(a).await;
    r.sink.wait_messages(2).await;
    assert_eq!(r.sink.texts(), ["retry me", "and me"]);
    sd.wait("the ack on the new connection", |s| {
        s.connections[b].acks.len() == 1
    })
    .await;
    r.stop().await.unwrap();
    sd.assert_no_violations();
}

#[tokio::test]
async fn a_half_open_connection_is_noticed_and_replaced() {
    let sd = Standin::start().await;
    let mut s = settings(&sd.api);
    s.ping_interval = Duration::from_millis(100);
    s.idle_timeout = Duration::from_secs(1);
    let r = start(s);
    sd.wait_live().await;
    let a = sd.cmd(Cmd::Freeze);
    let b = sd.wait_live_after(a).await;
    sd.cmd(Cmd::Event(sd.message("D1", "im", "still here", "4.000001")));
    r.sink.wait_messages(1).await;
    assert!(b > a);
    assert!(r.sink.states.lock().unwrap().iter().any(|(_, s)| matches!(
        s,
        ConnectionState::Reconnecting { error, .. } if error.contains("nothing came from Slack")
    )));
    r.stop().await.unwrap();
    sd.assert_clean();
}

#[tokio::test]
async fn a_revoked_app_token_stops_with_a_typed_error_instead_of_reconnecting() {
    let sd = Standin::start().await;
    sd.set(|s| s.app_token_error = Some("token_revoked".into()));
    let e = start(settings(&sd.api)).ended().await;
    assert_eq!(e.code(), ErrorCode::ChannelUnauthorized);
    let m = e.to_string();
    assert!(
        m.contains("channels.slack.appToken") && m.contains("token_revoked"),
        "{m}"
    );
    assert!(!m.contains(APP_TOKEN) && !m.contains(BOT_TOKEN));
    assert_eq!(sd.get(|s| (s.opens, s.connections.len())), (1, 0));

    // Revoked while connected: the reconnect's apps.connections.open says so, and that ends it.
    let sd = Standin::start().await;
    let r = start(settings(&sd.api));
    sd.wait_live().await;
    sd.set(|s| s.app_token_error = Some("token_revoked".into()));
    sd.cmd(Cmd::Drop);
    let e = r.ended().await;
    assert_eq!(e.code(), ErrorCode::ChannelUnauthorized);
    assert_eq!(sd.get(|s| (s.opens, s.connections.len())), (2, 1));

    // A bot token where the app-level token belongs is refused before any request.
    let sd = Standin::start().await;
    let mut s = settings(&sd.api);
    s.app_token = BOT_TOKEN.into();
    let e = SlackSocketSource::new(s).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ChannelNotConfigured);
    // A wrong app-level token: Slack's invalid_auth.
    let mut s = settings(&sd.api);
    s.app_token = "xapp-1-A1-not-the-right-one".into();
    let e = start(s).ended().await;
    assert_eq!(e.code(), ErrorCode::ChannelUnauthorized);
    assert_eq!(sd.get(|s| s.opens), 1);

    // A refused bot token stops at auth.test, before any connection.
    let sd = Standin::start().await;
    sd.set(|s| s.bot_token_error = Some("invalid_auth".into()));
    let e = start(settings(&sd.api)).ended().await;
    assert_eq!(e.code(), ErrorCode::ChannelUnauthorized);
    assert!(e.to_string().contains("channels.slack.botToken"));
    assert_eq!(sd.get(|s| (s.auth_tests, s.opens)), (1, 0));
}

#[tokio::test]
async fn the_bot_token_in_the_app_token_place_is_named() {
    // A token not recognisable by its prefix: Slack's answer says what it is.
    let sd = Standin::start().await;
    sd.set(|st| st.app_token_error = Some("not_allowed_token_type".into()));
    let e = start(settings(&sd.api)).ended().await;
    assert_eq!(e.code(), ErrorCode::ChannelNotConfigured);
    assert!(e.to_string().contains("channels.slack.appToken"), "{e}");
    assert!(!e.to_string().contains(BOT_TOKEN));
}

#[tokio::test]
async fn link_disabled_stops_with_the_setting_named() {
    let sd = Standin::start().await;
    let r = start(settings(&sd.api));
    sd.wait_live().await;
    sd.cmd(Cmd::Disconnect("link_disabled".into()));
    let e = r.ended().await;
    assert_eq!(e.code(), ErrorCode::ChannelNotConfigured);
    assert!(e.to_string().contains("Socket Mode"), "{e}");
    assert_eq!(sd.get(|s| s.opens), 1, "no reconnect after link_disabled");
    sd.assert_clean();
}

#[tokio::test]
async fn a_rate_limited_open_waits_and_tries_again() {
    let sd = Standin::start().await;
    sd.set(|s| s.rate_limit_opens = 1);
    let r = start(settings(&sd.api));
    sd.wait_live().await;
    assert_eq!(sd.get(|s| s.opens), 2);
    assert!(r.sink.states.lock().unwrap().iter().any(|(_, s)| matches!(
        s,
        ConnectionState::Reconnecting { error, .. } if error.contains("429")
    )));
    r.stop().await.unwrap();
    sd.assert_clean();
}

/// The round trip of the conversation service, on Slack: a DM with an image in, the image
/// fetched, a reply with a file out through the Web API adapter — byte for byte at the
/// stand-in, in the conversation it came from.
#[tokio::test]
async fn a_dm_with_an_image_in_and_a_reply_with_an_attachment_out() {
    let sd = Standin::start().await;
    let bytes = png_of_len(90_000, 2);
    sd.set(|s| {
        s.files.insert(
            "/files-pri/T1-F1/download/cat.png".into(),
            ("image/png".into(), bytes.clone()),
        );
    });
    let r = start(settings(&sd.api));
    sd.wait_live().await;
    sd.cmd(Cmd::Event(file_event(&sd, &bytes)));
    r.sink.wait_messages(1).await;
    let inbound = r.sink.messages().remove(0);
    let fetched = r
        .source
        .fetch_attachment(&inbound.attachments[0], 25 << 20)
        .await
        .unwrap();
    assert_eq!(fetched.bytes, bytes);

    let reply: Vec<u8> = fetched.bytes.iter().rev().copied().collect();
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(&reply).unwrap();
    let mut out = SlackSettings::new(BOT_TOKEN);
    out.api_base_url = sd.api.clone();
    let adapter = SlackAdapter::new(out).unwrap();
    adapter
        .send(OutboundMessage {
            target: Target::Channel(inbound.chat.id.clone()),
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
    let shared = sd.get(|s| s.shared.clone());
    assert_eq!(shared.len(), 1);
    assert_eq!(shared[0].channel, "D1");
    assert_eq!(shared[0].comment.as_deref(), Some("here it is"));
    assert_eq!(shared[0].files[0].0, "small.png");
    assert_eq!(
        shared[0].files[0].1, reply,
        "the reply's bytes differ at the stand-in"
    );
    r.stop().await.unwrap();
    sd.assert_clean();
}

#[tokio::test(flavor = "current_thread")]
async fn tokens_never_appear_in_logs_states_or_errors() {
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
    let r = start(settings(&sd.api));
    let a = sd.wait_live().await;
    sd.cmd(Cmd::Event(sd.message("D1", "im", "hello", "5.000001")));
    r.sink.wait_messages(1).await;
    sd.cmd(Cmd::Drop);
    sd.wait_live_after(a).await;
    sd.set(|s| s.app_token_error = Some("token_revoked".into()));
    sd.cmd(Cmd::Drop);
    let sink = r.sink.clone();
    let e = r.ended().await;
    let logs = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("Socket Mode connection lost"),
        "the capture works"
    );
    for secret in [APP_TOKEN, BOT_TOKEN, "ticket-"] {
        assert!(!logs.contains(secret), "{secret} was logged");
        assert!(!format!("{e:?} {e}").contains(secret));
        assert!(!format!("{:?}", sink.states.lock().unwrap()).contains(secret));
    }
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
