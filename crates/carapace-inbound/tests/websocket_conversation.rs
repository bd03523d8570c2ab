//! Discord and Slack conversations end to end, with the sources built from the config
//! (`InboundService::start`), the loopback Gateway / Socket Mode stand-ins and the scripted
//! model: a Discord DM with a PNG in and the model's `message` call sending a file out (byte
//! for byte at the stand-in's REST side); a dropped Gateway connection resumed without losing
//! or repeating a message; a revoked token stopping with a typed error in the channel status
//! instead of reconnecting; a Slack thread message answered in its thread (text and file);
//! the connection counters in the status and the metrics text.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;
mod ws;

use std::sync::Arc;
use std::time::Duration;

use carapace_agent::{AgentRuntime, ToolExecutor};
use carapace_channels::inbound::ConnectionState;
use carapace_inbound::{InboundService, ReplyRoutes, read_status};
use carapace_testkit::model_server::{ModelServer, Reply, Step, call};
use carapace_testkit::png::png_of_len;
use carapace_tools::ToolContext;
use common::*;
use serde_json::{Value, json};
use ws::discord::{self as dg, Cmd, Standin as DiscordStandin};
use ws::slack::{self as sl, Standin as SlackStandin};

/// The model: a message with a file attached is answered by a `message` call sending that
/// file back with a text; after a tool result, "sent"; anything else is echoed.
fn script() -> Step {
    Step::with(|seen| {
        let after_tool = seen.messages().last().is_some_and(|m| m["role"] == "tool");
        if after_tool {
            return Reply::text("sent");
        }
        let user = seen.last_user_text();
        if let Some(path) = word_after(&user, "[attached: ") {
            return Reply::tools(vec![call(
                "message",
                json!({"action": "send", "message": "here it is", "media": path}),
            )]);
        }
        if user.contains("send the report") {
            return Reply::tools(vec![call(
                "message",
                json!({"action": "send", "message": "the report", "media": "report.txt"}),
            )]);
        }
        let body = user.lines().last().unwrap_or_default().to_string();
        Reply::text(&format!("echo: {body}"))
    })
}

fn discord_message(sd: &DiscordStandin, channel: &str, text: &str) -> Value {
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

fn service_with(env: &Env, srv: &ModelServer, restart_base: Duration) -> InboundService {
    let ctx = ToolContext::new(Arc::clone(&env.config));
    let routes = ReplyRoutes::new();
    let tools: Arc<dyn ToolExecutor> = Arc::new(DirectTools { ctx: ctx.clone() });
    let rt = AgentRuntime::builder(Arc::clone(&env.config), models(srv), routes.wrap(tools))
        .options(fast_runtime_options())
        .build();
    let mut opts = fast_inbound_options();
    opts.restart_base = restart_base;
    InboundService::with_options(Arc::clone(&env.config), rt, ctx, routes, opts)
}

fn texts_posted(sd: &DiscordStandin, channel: &str) -> Vec<String> {
    sd.get(|s| {
        s.posted
            .iter()
            .filter(|p| p.channel == channel)
            .filter_map(|p| p.payload["content"].as_str().map(str::to_string))
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn discord_dm_with_a_png_in_a_file_out_and_a_resume_that_loses_nothing() {
    let sd = DiscordStandin::start().await;
    let image = png_of_len(90_000, 1);
    sd.set(|s| {
        s.files.insert(
            "/attachments/600/9/photo.png".into(),
            ("image/png".into(), image.clone()),
        );
    });
    let srv = ModelServer::builder(api(), KEY)
        .then_repeat(script())
        .start()
        .await;
    let env = env_with(
        r#"mode: "off""#,
        &format!(
            r#"channels: {{ discord: {{ token: "${{DT}}", apiBaseUrl: "{}", allowFrom: ["42"], mediaMaxMb: 1 }} }}"#,
            sd.base
        ),
        &[("DT", dg::TOKEN)],
    );
    let svc = service_with(&env, &srv, Duration::from_millis(200));
    // The source comes from the config: nothing is handed to the service but the config.
    let h = svc.start().unwrap();
    let first = sd.wait_live().await;

    // A DM with a PNG: fetched into the workspace, answered by a `message` call that sends
    // the file back to the DM.
    let mut m = discord_message(&sd, "600", "make it smaller");
    m["attachments"] = json!([{"id": "9", "filename": "photo.png", "size": image.len(),
        "url": format!("{}/attachments/600/9/photo.png", sd.base), "content_type": "image/png"}]);
    sd.message(m);
    sd.wait("the reply with the file", |s| {
        s.posted.iter().any(|p| !p.files.is_empty())
    })
    .await;
    let posted = sd.get(|s| s.posted.clone());
    let with_file = posted.iter().find(|p| !p.files.is_empty()).unwrap();
    assert_eq!(with_file.channel, "600", "the reply goes to the DM");
    assert_eq!(with_file.payload["content"], "here it is");
    assert_eq!(with_file.files.len(), 1);
    assert_eq!(
        with_file.files[0].1, image,
        "the bytes at the stand-in are the bytes that came in"
    );
    until("the closing text", || {
        texts_posted(&sd, "600").contains(&"sent".to_string())
    })
    .await;
    assert!(sd.get(|s| s.typing.contains(&"600".to_string())));
    let placed = files(&env.ws.join("media/inbound"));
    assert_eq!(placed.len(), 1, "{placed:?}");
    assert_eq!(std::fs::read(&placed[0]).unwrap(), image);
    let seen_image = srv
        .requests()
        .iter()
        .any(|r| r.body.to_string().contains("image_url"));
    assert!(seen_image, "the model was shown the picture");

    // The connection drops while a message waits on Discord's side: the session resumes and
    // the message is answered exactly once; one more after it, once too.
    sd.set(|s| s.paused = true);
    sd.cmd(Cmd::Drop);
    sd.wait("the drop", |s| s.connections[first].ended).await;
    sd.dispatch_offline(
        "MESSAGE_CREATE",
        discord_message(&sd, "600", "while you were away"),
    );
    sd.set(|s| s.paused = false);
    let second = sd.wait_live_after(first).await;
    until("the replayed message answered", || {
        texts_posted(&sd, "600").contains(&"echo: while you were away".to_string())
    })
    .await;
    sd.message(discord_message(&sd, "600", "and now"));
    until("the next message answered", || {
        texts_posted(&sd, "600").contains(&"echo: and now".to_string())
    })
    .await;
    let texts = texts_posted(&sd, "600");
    assert_eq!(
        texts
            .iter()
            .filter(|t| *t == "echo: while you were away")
            .count(),
        1,
        "{texts:?}"
    );
    assert_eq!(
        sd.get(|s| (s.identifies, s.connections[second].resume.is_some())),
        (1, true),
        "resumed, not a new session"
    );

    // The counters reach the status (and the file `carapace channels status` reads) and the
    // metrics text.
    let st = svc
        .status()
        .into_iter()
        .find(|s| s.channel == "discord")
        .unwrap();
    assert_eq!(st.connection, ConnectionState::Connected);
    let link = st.link.clone().expect("the Gateway source's counters");
    assert!(link.connects >= 2 && link.reconnects >= 1, "{link:?}");
    assert_eq!(link.resumes, 1);
    assert!(link.delivered >= 3, "{link:?}");
    let metrics = svc.metrics_text();
    assert!(
        metrics.contains("carapace_inbound_connected{channel=\"discord\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("carapace_inbound_resumes_total{channel=\"discord\"} 1"),
        "{metrics}"
    );
    until("the status file has the counters", || {
        read_status(&env.state, "discord")
            .and_then(|s| s.link)
            .is_some_and(|l| l.resumes == 1)
    })
    .await;
    h.shutdown(Duration::from_secs(10)).await;
    sd.assert_clean();
    srv.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_discord_token_stops_the_channel_with_a_typed_error() {
    let sd = DiscordStandin::start().await;
    let srv = ModelServer::builder(api(), KEY)
        .then_repeat(script())
        .start()
        .await;
    let env = env_with(
        r#"mode: "off""#,
        &format!(
            r#"channels: {{ discord: {{ token: "${{DT}}", apiBaseUrl: "{}", allowFrom: ["42"] }} }}"#,
            sd.base
        ),
        &[("DT", dg::TOKEN)],
    );
    // The default restart wait of a channel that failed for good (60 s).
    let svc = service_with(&env, &srv, Duration::from_secs(60));
    let h = svc.start().unwrap();
    let a = sd.wait_live().await;
    // The token is reset in the portal; the connection drops; the RESUME is closed with 4004.
    sd.set(|s| s.gateway_token_revoked = true);
    sd.cmd(Cmd::Drop);
    until("the channel stopped", || {
        svc.status().iter().any(|s| {
            s.channel == "discord" && matches!(s.connection, ConnectionState::Stopped { .. })
        })
    })
    .await;
    let st = svc
        .status()
        .into_iter()
        .find(|s| s.channel == "discord")
        .unwrap();
    let ConnectionState::Stopped { error: Some(e) } = &st.connection else {
        panic!("{:?}", st.connection)
    };
    assert!(
        e.contains("4004") && e.contains("channels.discord.token"),
        "{e}"
    );
    // The restart waits the service's long backoff (60 s, jittered), not the reconnect one.
    assert!(e.contains("starting again in"), "{e}");
    assert_eq!(
        sd.get(|s| s.connections.len()),
        a + 2,
        "one RESUME attempt, no reconnect loop"
    );
    let file = std::fs::read_to_string(env.state.join("channels/discord/status.json")).unwrap();
    assert!(!file.contains(dg::TOKEN), "{file}");
    assert!(file.contains("4004"), "{file}");
    h.shutdown(Duration::from_secs(10)).await;
    sd.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slack_thread_message_is_answered_in_its_thread() {
    let ss = SlackStandin::start().await;
    let srv = ModelServer::builder(api(), KEY)
        .then_repeat(script())
        .start()
        .await;
    let env = env_with(
        r#"mode: "off""#,
        &format!(
            r#"channels: {{ slack: {{ botToken: "${{SB}}", appToken: "${{SA}}", mode: "socket", apiBaseUrl: "{}",
                                     groupPolicy: "open", groups: {{ "*": {{ requireMention: true }} }} }} }}"#,
            ss.api
        ),
        &[("SB", sl::BOT_TOKEN), ("SA", sl::APP_TOKEN)],
    );
    std::fs::write(env.ws.join("report.txt"), b"quarterly numbers\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            env.ws.join("report.txt"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    let svc = service_with(&env, &srv, Duration::from_millis(200));
    let h = svc.start().unwrap();
    ss.wait_live().await;

    // A mention in a thread of a channel: the answer goes into that thread.
    let root = "1712345678.000100";
    let mut p = ss.message(
        "C1",
        "channel",
        &format!("<@{}> hello in the thread", sl::BOT_USER),
        "1712345678.000200",
    );
    p["event"]["thread_ts"] = json!(root);
    ss.cmd(sl::Cmd::Event(p));
    ss.wait("the threaded answer", |s| !s.posted.is_empty())
        .await;
    let posted = ss.get(|s| s.posted.clone());
    assert_eq!(posted[0]["channel"], "C1");
    assert_eq!(posted[0]["thread_ts"], root, "{}", posted[0]);
    assert!(
        posted[0]["text"].as_str().unwrap().starts_with("echo: "),
        "{}",
        posted[0]
    );

    // A `message` call without a target sends its file into the same thread.
    let mut p = ss.message(
        "C1",
        "channel",
        &format!("<@{}> send the report", sl::BOT_USER),
        "1712345678.000300",
    );
    p["event"]["thread_ts"] = json!(root);
    ss.cmd(sl::Cmd::Event(p));
    ss.wait("the file in the thread", |s| !s.shared.is_empty())
        .await;
    let shared = ss.get(|s| s.shared.clone());
    assert_eq!(shared[0].channel, "C1");
    assert_eq!(shared[0].thread_ts.as_deref(), Some(root));
    assert_eq!(shared[0].files[0].1, b"quarterly numbers\n");

    // A message outside any thread is answered at the top level.
    let p = ss.message(
        "C1",
        "channel",
        &format!("<@{}> top level", sl::BOT_USER),
        "1712345678.000400",
    );
    ss.cmd(sl::Cmd::Event(p));
    ss.wait("the top-level answer", |s| {
        s.posted
            .iter()
            .any(|p| p["text"].as_str().is_some_and(|t| t.contains("top level")))
    })
    .await;
    let top = ss.get(|s| {
        s.posted
            .iter()
            .find(|p| p["text"].as_str().is_some_and(|t| t.contains("top level")))
            .cloned()
            .unwrap()
    });
    assert!(top.get("thread_ts").is_none(), "{top}");

    let st = svc
        .status()
        .into_iter()
        .find(|s| s.channel == "slack")
        .unwrap();
    assert_eq!(st.connection, ConnectionState::Connected);
    let link = st.link.expect("the Socket Mode source's counters");
    assert!(link.connects >= 1 && link.delivered >= 3, "{link:?}");
    h.shutdown(Duration::from_secs(10)).await;
    ss.assert_clean();
}
