//! Conversations over a real Synapse with the scripted model, under `umask 077` (process-wide,
//! hence this test binary of its own), sandboxed by real bwrap with
//! `channels.matrix.session.workspaceAccess: "session"`:
//! - alice DMs "screenshot <loopback page>": the `m.image` that comes back is byte-identical to
//!   the file in the media store, as one captioned event;
//! - bob gets a different session (key and sandbox directory);
//! - an image alice sends is saved 0644 in her session's `media/inbound/`, is readable from
//!   `exec` inside her bwrap sandbox (same bytes), and reaches the model as an image;
//! - a 0600 file the agent names is refused and the reply says what and why; a `message` call
//!   without a target goes back to the conversation;
//! - a stranger under `pairing` gets a code and the model is never called; approving the code
//!   lets the next message through.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use carapace_channels::inbound::CursorStore;
use carapace_inbound::PairingStore;
use carapace_testkit::model_server::{ModelServer, Reply, Step, call};
use carapace_testkit::synapse::*;
use common::*;
use serde_json::{Value, json};

const PAGE: &str = r#"<!doctype html><html><head><style>
html,body{margin:0;background:#fff}
#box{position:absolute;left:0;top:0;width:300px;height:200px;background:rgb(0,128,255)}
</style></head><body><div id="box"></div></body></html>"#;

fn umask_077() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

fn require_all() -> bool {
    carapace_testkit::require_bwrap()
        && carapace_testkit::require(
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

fn last_is_tool(seen: &carapace_testkit::model_server::Seen) -> bool {
    seen.messages().last().is_some_and(|m| m["role"] == "tool")
}

/// The scripted model: what it does depends on the conversation it is shown.
fn script(saw_image: Arc<Mutex<bool>>) -> Step {
    Step::with(move |seen| {
        let user = seen.last_user_text();
        if last_is_tool(seen) {
            let (r, v) = seen.last_tool_result().unwrap();
            assert!(!r.content.contains("\"ok\":false"), "{}", r.content);
            return match r.name.as_str() {
                "browser" => Reply::text(&format!(
                    "Here is the page.\nMEDIA:{}",
                    v["path"].as_str().unwrap()
                )),
                "exec" if user.contains("send me the note") => Reply::tools(vec![call(
                    "message",
                    json!({"action": "send", "message": "from the message tool"}),
                )]),
                "message" => Reply::text("Here is the note.\nMEDIA:/workspace/note.txt"),
                "exec" => Reply::text(&format!(
                    "exec says: {}",
                    v["stdout"].as_str().unwrap_or_default()
                )),
                other => panic!("unexpected tool {other}"),
            };
        }
        if let Some(url) = word_after(&user, "screenshot ") {
            return Reply::tools(vec![call(
                "browser",
                json!({"action": "screenshot", "url": url, "width": 300, "height": 200}),
            )]);
        }
        if let Some(path) = word_after(&user, "[attached: ") {
            *saw_image.lock().unwrap() = seen.last_user_has_image();
            return Reply::tools(vec![call(
                "exec",
                json!({"command": format!("sha256sum {path} | cut -c1-64; stat -c %a {path}; id -u")}),
            )]);
        }
        if user.contains("who am i") {
            let header = user.lines().next().unwrap_or_default().replace('\'', "");
            return Reply::tools(vec![call(
                "exec",
                json!({"command": format!("printf '%s' '{header}' > /workspace/whoami.txt && ls /workspace")}),
            )]);
        }
        if user.contains("send me the note") {
            return Reply::tools(vec![call(
                "exec",
                json!({"command": "printf secret > /workspace/note.txt && chmod 600 /workspace/note.txt"}),
            )]);
        }
        Reply::text(&format!(
            "echo: {}",
            user.lines().last().unwrap_or_default()
        ))
    })
}

struct World {
    hs: Synapse,
    bot: User,
    alice: User,
    bob: User,
    env: Env,
    srv: ModelServer,
    handle: Option<carapace_inbound::InboundHandle>,
    saw_image: Arc<Mutex<bool>>,
}

async fn world() -> Option<World> {
    let hs = synapse()?;
    if !require_all() {
        return None;
    }
    umask_077();
    let bot = hs.user("bot").await;
    let alice = hs.user("alice").await;
    let bob = hs.user("bob").await;
    let saw_image = Arc::new(Mutex::new(false));
    let srv = ModelServer::builder(api(), KEY)
        .then_repeat(script(saw_image.clone()))
        .start()
        .await;
    let extra = format!(
        r#"browser: {{ allowPrivateNetwork: true }},
           // The sandbox tool policy denies `browser` by default (as OpenClaw does); this
           // conversation is the screenshot flow, so the operator allows it.
           tools: {{ sandbox: {{ tools: {{ alsoAllow: ["browser"] }} }} }},
           channels: {{ matrix: {{ homeserver: "{}", accessToken: "${{MATRIX_TOKEN}}", userId: "{}",
                                    allowFrom: ["{}", "matrix:{}"],
                                    session: {{ workspaceAccess: "session" }} }} }}"#,
        hs.url, bot.id, alice.id, bob.id
    );
    let env = env_with(
        r#"mode: "all", backend: "bwrap""#,
        &extra,
        &[("MATRIX_TOKEN", &bot.token)],
    );
    let (svc, _rt, _ctx) = service(&env, models(&srv));
    let handle = svc.start().unwrap();
    let cursor = CursorStore::new(&env.state, "matrix", None);
    for _ in 0..600 {
        if cursor.load().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cursor.load().unwrap().is_some(), "the source started");
    Some(World {
        hs,
        bot,
        alice,
        bob,
        env,
        srv,
        handle: Some(handle),
        saw_image,
    })
}

impl World {
    async fn replies(&self, reader: &User, room: &str, n: usize) -> Vec<Value> {
        let hs = &self.hs;
        let bot = self.bot.id.clone();
        eventually(&format!("{n} replies"), || async {
            let m = hs.messages_from(reader, room, &bot).await;
            (m.len() >= n).then_some(m)
        })
        .await
    }

    async fn dm(&self, who: &User) -> String {
        let room = self.hs.room(who, &[&self.bot], true, false).await;
        let hs = &self.hs;
        let bot = self.bot.id.clone();
        eventually("the bot joined", || async {
            hs.members(who, &room).await.contains(&bot).then_some(())
        })
        .await;
        room
    }

    async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown(Duration::from_secs(10)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn screenshot_comes_back_byte_identical_and_two_people_get_two_sessions() {
    let Some(w) = world().await else { return };
    let (alice, bob) = (w.alice.clone(), w.bob.clone());
    let url = page_server().await;
    let room = w.dm(&alice).await;
    w.hs.say(&alice, &room, &format!("screenshot {url}")).await;
    let evs = w.replies(&alice, &room, 1).await;
    assert_eq!(
        evs.len(),
        1,
        "one captioned image, not a text and a file: {evs:?}"
    );
    let c = &evs[0]["content"];
    assert_eq!(c["msgtype"], "m.image");
    assert_eq!(c["body"], "Here is the page.");
    assert_eq!(c["info"]["mimetype"], "image/png");
    let got = w.hs.download(&alice, c["url"].as_str().unwrap()).await;
    let stored: Vec<_> = files(&w.env.media)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "png"))
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(
        got,
        std::fs::read(&stored[0]).unwrap(),
        "byte-identical to the media store"
    );
    assert_eq!(mode(&stored[0]), 0o644, "0644 under umask 077");

    // bob: his own session, his own sandbox directory. Both write the same file name.
    let bob_room = w.dm(&bob).await;
    w.hs.say(&bob, &bob_room, "who am i").await;
    let b = w.replies(&bob, &bob_room, 1).await;
    assert!(
        b[0]["content"]["body"]
            .as_str()
            .unwrap()
            .starts_with("exec says: ")
    );
    w.hs.say(&alice, &room, "who am i").await;
    w.replies(&alice, &room, 2).await;
    let index: Value = serde_json::from_slice(
        &std::fs::read(w.env.state.join("agents/main/sessions/sessions.json")).unwrap(),
    )
    .unwrap();
    let keys: Vec<String> = index["sessions"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let ka = format!("agent:main:matrix:direct:{}", alice.id);
    let kb = format!("agent:main:matrix:direct:{}", bob.id);
    assert!(keys.contains(&ka) && keys.contains(&kb), "{keys:?}");
    assert_ne!(
        index["sessions"][&ka]["sessionId"], index["sessions"][&kb]["sessionId"],
        "two people never share a session"
    );
    let whoami: Vec<(std::path::PathBuf, String)> = files(&w.env.sbx)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "whoami.txt"))
        .map(|p| {
            let t = std::fs::read_to_string(&p).unwrap();
            (p, t)
        })
        .collect();
    assert_eq!(
        whoami.len(),
        2,
        "one file per session directory: {whoami:?}"
    );
    assert_ne!(whoami[0].0.parent(), whoami[1].0.parent());
    let a = whoami.iter().find(|(_, t)| t.contains(&alice.id)).unwrap();
    let b = whoami.iter().find(|(_, t)| t.contains(&bob.id)).unwrap();
    assert!(
        !a.1.contains(&bob.id) && !b.1.contains(&alice.id),
        "{whoami:?}"
    );
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_image_alice_sends_is_readable_inside_her_sandbox() {
    let Some(w) = world().await else { return };
    let alice = w.alice.clone();
    let room = w.dm(&alice).await;
    let png = carapace_testkit::png::png(2, 2, 0x42);
    let mxc = w.hs.upload(&alice, &png, "image/png", "my cat.png").await;
    w.hs.send(
        &alice,
        &room,
        json!({"msgtype": "m.image", "body": "what is this", "filename": "my cat.png", "url": mxc,
               "info": {"mimetype": "image/png", "size": png.len()}}),
    )
    .await;
    let r = w.replies(&alice, &room, 1).await;
    let body = r[0]["content"]["body"].as_str().unwrap().to_string();
    let want = {
        use std::process::Command;
        let out = Command::new("sha256sum")
            .arg("-")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = out;
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), &png).unwrap();
        let o = child.wait_with_output().unwrap();
        String::from_utf8(o.stdout).unwrap()[..64].to_string()
    };
    assert!(body.starts_with("exec says: "), "{body}");
    assert!(
        body.contains(&want),
        "the sandbox read the very bytes: {body}"
    );
    assert!(body.contains("\n644\n"), "0644 inside the sandbox: {body}");
    let placed: Vec<_> = files(&w.env.sbx)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/media/inbound/"))
        .collect();
    assert_eq!(placed.len(), 1, "{placed:?}");
    assert_eq!(std::fs::read(&placed[0]).unwrap(), png);
    assert_eq!(mode(&placed[0]), 0o644);
    assert!(
        placed[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("my_cat---")
    );
    assert!(*w.saw_image.lock().unwrap(), "the model got the image");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_file_is_said_and_the_message_tool_answers_here() {
    let Some(w) = world().await else { return };
    let alice = w.alice.clone();
    let room = w.dm(&alice).await;
    w.hs.say(&alice, &room, "send me the note").await;
    let r = w.replies(&alice, &room, 2).await;
    assert_eq!(
        r[0]["content"]["body"], "from the message tool",
        "no target: this conversation"
    );
    let body = r[1]["content"]["body"].as_str().unwrap();
    assert_eq!(r[1]["content"]["msgtype"], "m.text");
    assert!(body.starts_with("Here is the note."), "{body}");
    assert!(body.contains("Not attached: /workspace/note.txt"), "{body}");
    assert!(body.contains("0600"), "{body}");
    assert!(
        body.contains("OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE"),
        "{body}"
    );
    assert_eq!(r.len(), 2, "{r:?}");
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stranger_gets_a_code_and_the_model_is_never_called_until_approved() {
    let Some(w) = world().await else { return };
    let stranger = w.hs.user("stranger").await;
    let room = w.dm(&stranger).await;
    let calls_before = w.srv.request_count();
    w.hs.say(&stranger, &room, "hello? let me in").await;
    let r = w.replies(&stranger, &room, 1).await;
    let body = r[0]["content"]["body"].as_str().unwrap().to_string();
    let code = word_after(&body, "Pairing code: ").unwrap();
    assert_eq!(code.len(), 8, "{body}");
    assert!(body.contains(&stranger.id));
    assert!(body.contains(&format!("carapace pairing approve matrix {code}")));
    // A second message gets no second code, and still no model call.
    w.hs.say(&stranger, &room, "hello again").await;
    w.hs.say(&w.bot, &room, "marker from the bot itself").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        w.srv.request_count(),
        calls_before,
        "nothing reached the model"
    );
    assert_eq!(
        w.hs.messages_from(&stranger, &room, &w.bot.id).await.len(),
        2
    );
    let store = PairingStore::new(&w.env.state);
    let pending = store.list("matrix").unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, stranger.id);
    assert_eq!(mode(&store.pending_path("matrix").unwrap()), 0o600);
    // What `carapace pairing approve matrix <code>` does.
    store.approve("matrix", &code).unwrap();
    assert_eq!(mode(&store.allow_path("matrix").unwrap()), 0o600);
    w.hs.say(&stranger, &room, "thanks").await;
    let r = w.replies(&stranger, &room, 3).await;
    assert_eq!(r[2]["content"]["body"], "echo: thanks");
    assert!(w.srv.request_count() > calls_before);
    w.stop().await;
}
