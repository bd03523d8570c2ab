//! Matrix receiving and the outbound refusals it needs, against a real Synapse: `/sync` with
//! the cursor persisted (a restart neither loses nor repeats), no history on the first start,
//! invites joined per `autoJoin`, DMs and groups told apart, own events / edits / redactions /
//! notices ignored, attachments fetched byte-identical, encrypted rooms never answered and
//! never sent plaintext, captioned files as one event, idempotent sends.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use carapace_channels::inbound::matrix_sync::{JoinPolicy, MatrixSource, MatrixSourceSettings};
use carapace_channels::inbound::{
    AttachmentKind, ChatKind, ConnectionState, InboundMessage, InboundSink, InboundSource,
};
use carapace_channels::matrix::{MatrixAdapter, MatrixSettings};
use carapace_channels::{Attachment, ChannelAdapter, ChannelError, OutboundMessage, Target};
use carapace_policy::{CarapaceError, ErrorCode};
use carapace_testkit::png::png_of_len;
use carapace_testkit::synapse::*;
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[derive(Default)]
struct Sink {
    got: Mutex<Vec<InboundMessage>>,
    states: Mutex<Vec<ConnectionState>>,
    skipped: Mutex<Vec<String>>,
    refuse: AtomicBool,
}

#[async_trait::async_trait]
impl InboundSink for Sink {
    async fn deliver(&self, msg: InboundMessage) -> Result<(), ChannelError> {
        if self.refuse.load(Ordering::SeqCst) {
            return Err(ChannelError::BadRequest {
                message: "refused by the test".into(),
            });
        }
        let mut g = self.got.lock().unwrap();
        // The sink's side of the contract: a redelivered event is ignored.
        if !g.iter().any(|m| m.event_id == msg.event_id) {
            g.push(msg);
        }
        Ok(())
    }
    fn state(&self, _: &str, s: ConnectionState) {
        self.states.lock().unwrap().push(s);
    }
    fn skipped(&self, _: &str, what: &str) {
        self.skipped.lock().unwrap().push(what.to_string());
    }
}

impl Sink {
    fn texts(&self) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|m| m.text.clone())
            .collect()
    }
    fn find(&self, text: &str) -> Option<InboundMessage> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .find(|m| m.text == text)
            .cloned()
    }
}

struct Running {
    sink: Arc<Sink>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), ChannelError>>,
    source: Arc<MatrixSource>,
}

fn settings(hs: &Synapse, bot: &User, state: &std::path::Path) -> MatrixSourceSettings {
    let mut s = MatrixSourceSettings::new(hs.url.clone(), bot.token.clone(), state);
    s.poll_timeout = Duration::from_secs(2);
    s
}

fn start(s: MatrixSourceSettings, sink: Arc<Sink>) -> Running {
    let source = Arc::new(MatrixSource::new(s).unwrap());
    let stop = CancellationToken::new();
    let (src, st, sk) = (source.clone(), stop.clone(), sink.clone());
    let task = tokio::spawn(async move { src.run(sk, st).await });
    Running {
        sink,
        stop,
        task,
        source,
    }
}

impl Running {
    async fn stop(self) -> Arc<Sink> {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
        self.sink
    }
    async fn cursor_saved(&self) {
        let s = self.source.clone();
        eventually("the first cursor", || {
            let s = s.clone();
            async move { s.cursor().load().unwrap().map(|_| ()) }
        })
        .await;
    }
}

async fn wait_text(sink: &Arc<Sink>, text: &str) -> InboundMessage {
    eventually(&format!("message {text:?}"), || async { sink.find(text) }).await
}

#[tokio::test]
async fn dm_flow_history_invites_kinds_ignored_events_and_restart() {
    let Some(hs) = synapse() else { return };
    let bot = hs.user("bot").await;
    let alice = hs.user("alice").await;
    let bob = hs.user("bob").await;
    let state = tempfile::tempdir().unwrap();

    // History from before the first start: a room the bot already is in.
    let old_room = hs.room(&alice, &[&bot], true, false).await;
    hs.join(&bot, &old_room).await;
    hs.say(&alice, &old_room, "old history").await;

    let run = start(settings(&hs, &bot, state.path()), Arc::new(Sink::default()));
    run.cursor_saved().await;

    // A DM invite after the start: joined (autoJoin default always), and the message alice
    // wrote right after inviting (before the bot joined) is handed over.
    let dm = hs.room(&alice, &[&bot], true, false).await;
    hs.say(&alice, &dm, "hello bot").await;
    let m = wait_text(&run.sink, "hello bot").await;
    assert_eq!(m.channel, "matrix");
    assert_eq!(m.chat.kind, ChatKind::Direct);
    assert_eq!(m.chat.id, dm);
    assert_eq!(m.sender.id, alice.id);
    assert!(m.timestamp_ms.is_some());
    assert!(hs.members(&alice, &dm).await.contains(&bot.id), "joined");
    // The DM was recorded in the bot's m.direct (so user: sends reuse it).
    let direct = hs
        .api(
            &bot.token,
            "GET",
            &format!(
                "/_matrix/client/v3/user/{}/account_data/m.direct",
                enc(&bot.id)
            ),
            None,
        )
        .await;
    assert!(
        direct[&alice.id]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == dm.as_str())
    );

    // Three people: a group. Mentions by id, by pill, by display name.
    let group = hs.room(&alice, &[&bot, &bob], false, false).await;
    hs.join(&bob, &group).await;
    eventually("bot in group", || async {
        hs.members(&alice, &group)
            .await
            .contains(&bot.id)
            .then_some(())
    })
    .await;
    hs.say(&alice, &group, "no mention here").await;
    hs.send(
        &bob,
        &group,
        json!({"msgtype": "m.text", "body": "bot: look", "m.mentions": {"user_ids": [bot.id]}}),
    )
    .await;
    hs.say(&alice, &group, &format!("hey {} what's up", bot.id))
        .await;
    let g = wait_text(&run.sink, "no mention here").await;
    assert_eq!(g.chat.kind, ChatKind::Group);
    assert!(!g.mentions_bot);
    assert!(wait_text(&run.sink, "bot: look").await.mentions_bot);
    assert!(
        wait_text(&run.sink, &format!("hey {} what's up", bot.id))
            .await
            .mentions_bot
    );

    // Ignored: the bot's own message, notices, edits, redacted events, other event types.
    hs.say(&bot, &dm, "bot talking").await;
    hs.send(
        &alice,
        &dm,
        json!({"msgtype": "m.notice", "body": "a notice"}),
    )
    .await;
    let orig = hs.say(&alice, &dm, "to be edited").await;
    hs.send(
        &alice,
        &dm,
        json!({"msgtype": "m.text", "body": "* edited",
               "m.new_content": {"msgtype": "m.text", "body": "edited"},
               "m.relates_to": {"rel_type": "m.replace", "event_id": orig}}),
    )
    .await;
    let gone = hs.say(&alice, &dm, "to be redacted").await;
    hs.api(
        &alice.token,
        "PUT",
        &format!(
            "/_matrix/client/v3/rooms/{}/redact/{}/r{}",
            enc(&dm),
            enc(&gone),
            uuid_like()
        ),
        Some(json!({})),
    )
    .await;
    hs.send_event(
        &alice,
        &dm,
        "m.reaction",
        json!({"m.relates_to": {"rel_type": "m.annotation", "event_id": orig, "key": "👍"}}),
    )
    .await;
    hs.say(&alice, &dm, "marker 1").await;
    wait_text(&run.sink, "marker 1").await;
    let texts = run.sink.texts();
    for t in [
        "old history",
        "bot talking",
        "a notice",
        "* edited",
        "edited",
    ] {
        assert!(
            !texts.contains(&t.to_string()),
            "{t:?} was handed over: {texts:?}"
        );
    }
    // A redacted event is handed over only if it arrived before its redaction; never twice.
    assert!(texts.iter().filter(|t| *t == "to be edited").count() == 1);

    // Stop; alice writes while the source is down; a fresh source on the same state dir
    // continues from the cursor: the message arrives, nothing earlier arrives again.
    let first = run.stop().await;
    let before = first.got.lock().unwrap().len();
    hs.say(&alice, &dm, "while you were away").await;
    let run = start(settings(&hs, &bot, state.path()), Arc::new(Sink::default()));
    wait_text(&run.sink, "while you were away").await;
    hs.say(&alice, &dm, "marker 2").await;
    wait_text(&run.sink, "marker 2").await;
    let texts = run.sink.texts();
    assert_eq!(texts, vec!["while you were away", "marker 2"], "{texts:?}");
    assert!(before >= 5);

    // A sink that refuses: the cursor does not move, the message comes again once accepted.
    run.sink.refuse.store(true, Ordering::SeqCst);
    hs.say(&alice, &dm, "refused once").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    run.sink.refuse.store(false, Ordering::SeqCst);
    wait_text(&run.sink, "refused once").await;
    assert!(
        run.sink
            .states
            .lock()
            .unwrap()
            .iter()
            .any(|s| matches!(s, ConnectionState::Reconnecting { .. })),
        "a refused batch is retried with a backoff"
    );
    run.stop().await;
}

#[tokio::test]
async fn autojoin_off_and_allowlist() {
    let Some(hs) = synapse() else { return };
    let bot = hs.user("bot").await;
    let alice = hs.user("alice").await;
    let state = tempfile::tempdir().unwrap();
    let mut s = settings(&hs, &bot, state.path());
    let allowed = hs.room(&alice, &[], false, false).await;
    s.join = JoinPolicy::Allowlist(vec![allowed.clone()]);
    let run = start(s, Arc::new(Sink::default()));
    run.cursor_saved().await;
    let other = hs.room(&alice, &[&bot], true, false).await;
    hs.api(
        &alice.token,
        "POST",
        &format!("/_matrix/client/v3/rooms/{}/invite", enc(&allowed)),
        Some(json!({"user_id": bot.id})),
    )
    .await;
    eventually("joined the allowlisted room", || async {
        hs.members(&alice, &allowed)
            .await
            .contains(&bot.id)
            .then_some(())
    })
    .await;
    hs.say(&alice, &allowed, "in allowed").await;
    wait_text(&run.sink, "in allowed").await;
    assert!(
        !hs.members(&alice, &other).await.contains(&bot.id),
        "not allowlisted"
    );
    run.stop().await;
}

#[tokio::test]
async fn attachments_threads_and_fetch() {
    let Some(hs) = synapse() else { return };
    let bot = hs.user("bot").await;
    let alice = hs.user("alice").await;
    let state = tempfile::tempdir().unwrap();
    let run = start(settings(&hs, &bot, state.path()), Arc::new(Sink::default()));
    run.cursor_saved().await;
    let dm = hs.room(&alice, &[&bot], true, false).await;
    let png = png_of_len(40_000, 7);
    let mxc = hs.upload(&alice, &png, "image/png", "cat.png").await;
    hs.send(
        &alice,
        &dm,
        json!({"msgtype": "m.image", "body": "my cat", "filename": "cat.png", "url": mxc,
               "info": {"mimetype": "image/png", "size": png.len()}}),
    )
    .await;
    let pdf = b"%PDF-1.4 not really".to_vec();
    let mxc2 = hs.upload(&alice, &pdf, "application/pdf", "r.pdf").await;
    hs.send(
        &alice,
        &dm,
        json!({"msgtype": "m.file", "body": "r.pdf", "url": mxc2, "info": {"mimetype": "application/pdf"}}),
    )
    .await;
    let root = hs.say(&alice, &dm, "thread root").await;
    hs.send(
        &alice,
        &dm,
        json!({"msgtype": "m.text", "body": "in thread",
               "m.relates_to": {"rel_type": "m.thread", "event_id": root}}),
    )
    .await;
    let img = wait_text(&run.sink, "my cat").await;
    assert_eq!(img.attachments.len(), 1);
    let a = &img.attachments[0];
    assert_eq!(a.kind, AttachmentKind::Image);
    assert_eq!(a.filename.as_deref(), Some("cat.png"));
    assert_eq!(a.mime.as_deref(), Some("image/png"));
    let got = run.source.fetch_attachment(a, 10 << 20).await.unwrap();
    assert_eq!(got.bytes, png, "byte-identical");
    // A cap below the size is an error, never a partial file.
    let e = run.source.fetch_attachment(a, 1000).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::OutboundMediaTooLarge);
    let file = eventually("the pdf", || async {
        run.sink
            .got
            .lock()
            .unwrap()
            .iter()
            .find(|m| {
                m.attachments
                    .first()
                    .is_some_and(|a| a.filename.as_deref() == Some("r.pdf"))
            })
            .cloned()
    })
    .await;
    assert_eq!(
        file.text, "",
        "a body equal to the file name is not a caption"
    );
    assert_eq!(file.attachments[0].kind, AttachmentKind::File);
    let t = wait_text(&run.sink, "in thread").await;
    assert_eq!(t.chat.thread.as_deref(), Some(root.as_str()));
    // Typing works in a joined room.
    run.source.typing(&t.chat, true).await.unwrap();
    run.source.typing(&t.chat, false).await.unwrap();
    run.stop().await;
}

#[tokio::test]
async fn encrypted_rooms_are_never_answered_nor_sent_plaintext() {
    let Some(hs) = synapse() else { return };
    let bot = hs.user("bot").await;
    let alice = hs.user("alice").await;
    let state = tempfile::tempdir().unwrap();
    let run = start(settings(&hs, &bot, state.path()), Arc::new(Sink::default()));
    run.cursor_saved().await;
    let secret = hs.room(&alice, &[&bot], true, true).await;
    eventually("bot joined the encrypted room", || async {
        hs.members(&alice, &secret)
            .await
            .contains(&bot.id)
            .then_some(())
    })
    .await;
    // A client that (wrongly) sends plaintext, and a real encrypted event.
    hs.say(&alice, &secret, "plaintext in an encrypted room")
        .await;
    hs.send_event(
        &alice,
        &secret,
        "m.room.encrypted",
        json!({"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AwgA", "sender_key": "k", "session_id": "s", "device_id": "D"}),
    )
    .await;
    let plain = hs.room(&alice, &[&bot], true, false).await;
    hs.say(&alice, &plain, "marker").await;
    wait_text(&run.sink, "marker").await;
    assert!(run.sink.find("plaintext in an encrypted room").is_none());
    let skipped = run.sink.skipped.lock().unwrap().clone();
    assert!(
        skipped.iter().any(|s| s.contains("encrypted")),
        "{skipped:?}"
    );

    // Outbound: refused with a typed error, and nothing reaches the room.
    let mut ms = MatrixSettings::new(hs.url.clone(), bot.token.clone());
    ms.retry.base_backoff = Duration::from_millis(10);
    let adapter = MatrixAdapter::new(ms).unwrap();
    let e = adapter
        .send(OutboundMessage::text(
            Target::Room(secret.clone()),
            "this must never appear",
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ChannelRoomEncrypted);
    assert_eq!(e.details()["room"], secret.as_str());
    assert!(e.to_string().contains("encrypted"), "{e}");
    assert!(e.hint().unwrap().contains("without end-to-end encryption"));
    assert!(hs.messages_from(&alice, &secret, &bot.id).await.is_empty());
    run.stop().await;
}

fn file_attachment(bytes: &[u8], name: &str, mime: &str) -> Attachment {
    let mut f = tempfile::tempfile().unwrap();
    std::io::Write::write_all(&mut f, bytes).unwrap();
    Attachment {
        file: f,
        size: bytes.len() as u64,
        filename: name.into(),
        mime: mime.into(),
        width: None,
        height: None,
    }
}

#[tokio::test]
async fn idempotent_sends_post_once_and_captions_are_one_event() {
    let Some(hs) = synapse() else { return };
    let bot = hs.user("bot").await;
    let alice = hs.user("alice").await;
    let room = hs.room(&bot, &[&alice], false, false).await;
    hs.join(&alice, &room).await;
    let adapter =
        MatrixAdapter::new(MatrixSettings::new(hs.url.clone(), bot.token.clone())).unwrap();
    let bytes = png_of_len(5000, 1);
    let msg = || OutboundMessage {
        target: Target::Room(room.clone()),
        text: Some("here it is".into()),
        caption: None,
        attachments: vec![file_attachment(&bytes, "shot.png", "image/png")],
        progress: None,
        thread: None,
    };
    let a = adapter
        .send_idempotent(msg(), "matrix:$reply-to-1")
        .await
        .unwrap();
    let b = adapter
        .send_idempotent(msg(), "matrix:$reply-to-1")
        .await
        .unwrap();
    assert_eq!(
        a.remote_id, b.remote_id,
        "the homeserver de-duplicated the repeat"
    );
    let evs = hs.messages_from(&alice, &room, &bot.id).await;
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0]["content"]["msgtype"], "m.image");
    assert_eq!(evs[0]["content"]["body"], "here it is");
    assert_eq!(evs[0]["content"]["filename"], "shot.png");
    let got = hs
        .download(&alice, evs[0]["content"]["url"].as_str().unwrap())
        .await;
    assert_eq!(got, bytes, "never re-encoded");
}

#[tokio::test]
async fn a_bad_token_stops_the_source_with_a_typed_error() {
    let Some(hs) = synapse() else { return };
    let state = tempfile::tempdir().unwrap();
    let bad = User {
        id: "@nobody:localhost".into(),
        token: "syt_not_a_token".into(),
    };
    let sink = Arc::new(Sink::default());
    let source = MatrixSource::new(settings(&hs, &bad, state.path())).unwrap();
    let e = tokio::time::timeout(
        Duration::from_secs(60),
        source.run(sink.clone(), CancellationToken::new()),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ChannelUnauthorized);
    assert!(!e.to_string().contains("syt_not_a_token"));
    assert!(matches!(
        sink.states.lock().unwrap().last(),
        Some(ConnectionState::Stopped { error: Some(_) })
    ));
}
