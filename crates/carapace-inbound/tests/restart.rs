//! A restart neither loses nor repeats a message, against a real Synapse with the scripted
//! model:
//! - the service runs in a child process (this test binary re-invoked); it is killed with
//!   SIGKILL while a turn is running (the model holds the request open), alice writes while it
//!   is down, and a new process on the same state answers the interrupted message and the new
//!   one — every message exactly once, in order;
//! - a reply recorded in the journal and already sent when the process died is sent again on
//!   the next start with the same transaction id, and the homeserver keeps one copy.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::process::{Child, Command};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use carapace_channels::inbound::{ChatKind, ChatRef, CursorStore, InboundMessage, SenderRef};
use carapace_channels::matrix::{MatrixAdapter, MatrixSettings};
use carapace_channels::{ChannelAdapter, OutboundMessage, Target};
use carapace_inbound::journal::{Journal, PlannedReply};
use carapace_testkit::model_server::{ModelServer, Reply, Step};
use carapace_testkit::synapse::*;
use common::*;

fn extra(hs: &Synapse, bot: &User, alice: &User) -> String {
    format!(
        r#"channels: {{ matrix: {{ homeserver: "{}", accessToken: "${{MATRIX_TOKEN}}", userId: "{}", allowFrom: ["{}"] }} }}"#,
        hs.url, bot.id, alice.id
    )
}

/// The service in a child process: it runs until it is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_gateway() {
    let Ok(dir) = std::env::var("CARAPACE_INBOUND_CHILD_DIR") else {
        return; // not a child: nothing to do
    };
    let var = |k: &str| std::env::var(k).unwrap();
    let hs = Synapse::at(var("CHILD_HS"));
    let bot = User {
        id: var("CHILD_BOT"),
        token: var("CHILD_TOKEN"),
    };
    let alice = User {
        id: var("CHILD_ALICE"),
        token: String::new(),
    };
    let env = env_at(
        std::path::Path::new(&dir),
        r#"mode: "off""#,
        &extra(&hs, &bot, &alice),
        &[("MATRIX_TOKEN", &bot.token)],
    );
    let (svc, _rt, _ctx) = service(&env, models_at(&var("CHILD_MODEL")));
    let _h = svc.start().unwrap();
    loop {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}

fn spawn_child(
    dir: &std::path::Path,
    hs: &Synapse,
    bot: &User,
    alice: &User,
    model: &str,
) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "child_gateway",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("CARAPACE_INBOUND_CHILD_DIR", dir)
        .env("CHILD_HS", &hs.url)
        .env("CHILD_BOT", &bot.id)
        .env("CHILD_TOKEN", &bot.token)
        .env("CHILD_ALICE", &alice.id)
        .env("CHILD_MODEL", model)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

async fn cursor_exists(state: &std::path::Path) {
    let c = CursorStore::new(state, "matrix", None);
    until("the source's first cursor", || {
        c.load().ok().flatten().is_some()
    })
    .await;
}

fn bodies(evs: &[serde_json::Value]) -> Vec<String> {
    evs.iter()
        .map(|e| {
            e["content"]["body"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_turn_then_restarted_answers_every_message_once() {
    if std::env::var("CARAPACE_INBOUND_CHILD_DIR").is_ok() {
        return;
    }
    let Some(hs) = synapse() else { return };
    let bot = hs.user("bot").await;
    let alice = hs.user("alice").await;
    let twos = Arc::new(AtomicUsize::new(0));
    let t2 = twos.clone();
    let srv = ModelServer::builder(api(), KEY)
        .then_repeat(Step::with(move |seen| {
            let last = seen.last_user_text();
            let line = last.lines().nth(1).unwrap_or_default().to_string();
            if line == "two" && t2.fetch_add(1, Ordering::SeqCst) == 0 {
                return Reply::Stall; // the turn is running when the process is killed
            }
            Reply::text(&format!("answer: {line}"))
        }))
        .start()
        .await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut child = spawn_child(dir.path(), &hs, &bot, &alice, &srv.base_url());
    cursor_exists(&state).await;
    let room = hs.room(&alice, &[&bot], true, false).await;
    eventually("joined", || async {
        hs.members(&alice, &room)
            .await
            .contains(&bot.id)
            .then_some(())
    })
    .await;
    let replies = |n: usize| {
        let (hs, room, alice, bot) = (hs.clone(), room.clone(), alice.clone(), bot.id.clone());
        async move {
            eventually(&format!("{n} replies"), || async {
                let m = hs.messages_from(&alice, &room, &bot).await;
                (m.len() >= n).then_some(m)
            })
            .await
        }
    };
    hs.say(&alice, &room, "one").await;
    replies(1).await;
    hs.say(&alice, &room, "two").await;
    until("the turn of \"two\" reached the model", || {
        twos.load(Ordering::SeqCst) == 1
    })
    .await;
    child.kill().unwrap(); // SIGKILL, mid-turn
    child.wait().unwrap();
    hs.say(&alice, &room, "three").await;
    let mut child = spawn_child(dir.path(), &hs, &bot, &alice, &srv.base_url());
    replies(3).await;
    hs.say(&alice, &room, "four").await;
    let evs = replies(4).await;
    tokio::time::sleep(Duration::from_secs(2)).await; // a duplicate would show up by now
    let evs = if hs.messages_from(&alice, &room, &bot.id).await.len() > evs.len() {
        hs.messages_from(&alice, &room, &bot.id).await
    } else {
        evs
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        bodies(&evs),
        vec![
            "answer: one",
            "answer: two",
            "answer: three",
            "answer: four"
        ],
        "none lost, none twice, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_sent_before_the_crash_is_not_sent_twice() {
    if std::env::var("CARAPACE_INBOUND_CHILD_DIR").is_ok() {
        return;
    }
    let Some(hs) = synapse() else { return };
    let bot = hs.user("bot").await;
    let alice = hs.user("alice").await;
    let srv = ModelServer::builder(api(), KEY)
        .then_repeat(Step::with(|_| Reply::text("the model must not run again")))
        .start()
        .await;
    let env = env_with(
        r#"mode: "off""#,
        &extra(&hs, &bot, &alice),
        &[("MATRIX_TOKEN", &bot.token)],
    );
    let room = hs.room(&bot, &[&alice], false, false).await;
    hs.join(&alice, &room).await;
    let event = hs
        .say(&alice, &room, "answered just before the crash")
        .await;
    // The state a crash right after the send leaves: accepted, reply recorded, not done —
    // and the reply already in the room (sent with the key the service uses).
    let msg = InboundMessage {
        channel: "matrix".into(),
        account: None,
        event_id: event.clone(),
        chat: ChatRef {
            kind: ChatKind::Direct,
            id: room.clone(),
            thread: None,
        },
        sender: SenderRef {
            id: alice.id.clone(),
            name: None,
        },
        text: "answered just before the crash".into(),
        mentions_bot: false,
        attachments: vec![],
        timestamp_ms: None,
    };
    {
        let (j, _) = Journal::open(&env.state, "matrix", true).unwrap();
        j.accept(&msg).unwrap();
        j.reply(
            &event,
            &PlannedReply {
                session_key: format!("agent:main:matrix:direct:{}", alice.id),
                agent_id: "main".into(),
                text: "the one reply".into(),
                media: vec![],
            },
        )
        .unwrap();
    }
    let adapter =
        MatrixAdapter::new(MatrixSettings::new(hs.url.clone(), bot.token.clone())).unwrap();
    adapter
        .send_idempotent(
            OutboundMessage::text(Target::Room(room.clone()), "the one reply"),
            &format!("matrix-{event}-t0"),
        )
        .await
        .unwrap();
    let calls = srv.request_count();
    let (svc, _rt, _ctx) = service(&env, models(&srv));
    let h = svc.start().unwrap();
    cursor_exists(&env.state).await;
    let status = || {
        carapace_inbound::read_status(&env.state, "matrix")
            .map(|s| s.counters.failed)
            .unwrap_or(0)
    };
    // The journal entry ends once the re-send is done.
    let journal = env.state.join("channels/matrix/journal.jsonl");
    let done = format!("{{\"t\":\"done\",\"id\":\"{event}\"");
    until("the pending reply handled", || {
        std::fs::read_to_string(&journal)
            .unwrap_or_default()
            .contains(&done)
    })
    .await;
    let evs = hs.messages_from(&alice, &room, &bot.id).await;
    assert_eq!(bodies(&evs), vec!["the one reply"], "sent once");
    assert_eq!(srv.request_count(), calls, "the turn was not run again");
    assert_eq!(status(), 0);
    h.shutdown(Duration::from_secs(10)).await;
}
