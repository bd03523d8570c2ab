//! A file made under `umask 077` sent end to end at the tool layer, under `umask 077`, against a real Synapse (started
//! by scripts/synapse.sh): PNGs made by `exec` (host and, with bubblewrap, in a session
//! sandbox), by `write` and by `media_save` all arrive byte-identical; the same file at 0600 is
//! `OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE` and nothing is sent (nor copied by `media_save`); `allowOwnerOnly` sends it;
//! `/etc/hostname` and an `~/.ssh/id_ed25519`-like file are outside the roots; a FIFO named
//! `shot.png` is refused without hanging. Also the inbox channel, which needs no server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use base64::Engine;
use carapace_policy::ErrorCode;
use carapace_testkit::png::png;
use carapace_testkit::synapse::{Synapse, synapse};
use carapace_tools::{ToolCall, invoke};
use common::*;
use serde_json::{Value, json};

const S: &str = "agent:main:matrix:room:1";

fn umask_077() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// The `m.image` events among the last 100 messages of `room`, newest first.
async fn room_images(hs: &Synapse, room: &str) -> Vec<Value> {
    hs.messages(&hs.bot, room, 100)
        .await
        .into_iter()
        .filter(|e| e["content"]["msgtype"] == "m.image")
        .collect()
}

async fn msg(e: &Env, session: &str, args: Value) -> Result<Value, carapace_tools::ToolError> {
    invoke(
        &e.ctx,
        ToolCall {
            tool: "message".into(),
            args,
            session_key: Some(session.into()),
            ..ToolCall::default()
        },
    )
    .await
}

fn b64(d: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(d)
}

fn matrix_extra(hs: &Synapse, policy: &str) -> String {
    format!(
        r#"channels: {{ matrix: {{ homeserver: "{}", accessToken: "{}" }} }}, tools: {{ message: {{ outboundMediaPolicy: {{ {policy} }} }} }}"#,
        hs.url, hs.bot.token
    )
}

#[tokio::test]
async fn a_file_made_under_umask_077_reaches_a_real_synapse() {
    umask_077();
    let Some(hs) = synapse() else { return };
    let e = env(r#"mode: "off""#, &matrix_extra(&hs, ""));
    let room = hs.create_room(&hs.bot, json!({})).await;
    let target = format!("room:{room}");

    // 1. exec (host, mode off) writes a PNG.
    let exec_png = png(1, 1, 1);
    ok(
        &e,
        S,
        "exec",
        json!({"command": "printf %s \"$P\" | base64 -d > exec.png", "env": {"P": b64(&exec_png)}}),
    )
    .await;
    // 2. the write tool writes one.
    let write_png = png(1, 1, 2);
    let w = ok(
        &e,
        S,
        "write",
        json!({"path": "write.png", "base64": b64(&write_png)}),
    )
    .await;
    assert_eq!(w["mode"], "0644");
    // 3. media_save applies the send's checks: a private (0600) file is refused like a send
    //    of it would be (a copy in the media store is sendable); shared (0644), it is copied
    //    into the store at 0644.
    let media_png = png(1, 1, 3);
    std::fs::write(e.ws.join("private.png"), &media_png).unwrap();
    assert_eq!(mode(&e.ws.join("private.png")), 0o600, "umask 077 at work");
    let refused = call(&e, S, "media_save", json!({"path": "private.png"}))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::OutboundMediaPermsTooRestrictive);
    assert_eq!(refused.0.details["path"], "private.png");
    std::fs::set_permissions(
        e.ws.join("private.png"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let saved = ok(&e, S, "media_save", json!({"path": "private.png"})).await;
    assert_eq!(saved["mode"], "0644");
    assert_eq!(saved["mime"], "image/png");
    let media_path = saved["path"].as_str().unwrap().to_string();

    let r = msg(
        &e,
        S,
        json!({"channel": "matrix", "target": target, "message": "three shots",
        "filePath": ["/workspace/exec.png", "write.png"], "media": media_path}),
    )
    .await
    .unwrap();
    let atts = r["attachments"].as_array().unwrap();
    assert_eq!(atts.len(), 3);
    let mut got = Vec::new();
    for a in atts {
        got.push(hs.download(&hs.bot, a["remoteId"].as_str().unwrap()).await);
    }
    // Order: media, path, filePath are gathered as given by the argument order of the tool.
    assert!(got.contains(&exec_png) && got.contains(&write_png) && got.contains(&media_png));
    let before = room_images(&hs, &room).await.len();
    assert_eq!(before, 3);

    // The same file at 0600: the typed error, nothing sent.
    std::fs::set_permissions(
        e.ws.join("write.png"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let err = msg(
        &e,
        S,
        json!({"channel": "matrix", "target": target, "filePath": "write.png"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::OutboundMediaPermsTooRestrictive);
    assert_eq!(
        err.0.message,
        "File write.png has mode 0600 and cannot be sent over an outbound channel."
    );
    assert!(err.0.hint.as_deref().unwrap().contains("chmod 644"));
    // upload-file and MEDIA: lines take the same path.
    let err = msg(&e, S, json!({"action": "upload-file", "channel": "matrix", "target": target, "filePath": "/workspace/write.png", "caption": "c"}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::OutboundMediaPermsTooRestrictive);
    let err = msg(
        &e,
        S,
        json!({"channel": "matrix", "target": target, "message": "see\nMEDIA:write.png"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::OutboundMediaPermsTooRestrictive);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        room_images(&hs, &room).await.len(),
        before,
        "nothing was sent"
    );

    // Outside the roots, FIFOs.
    let home = e.dir.path().join("home/.ssh");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("id_ed25519"), "KEY").unwrap();
    for p in [
        "/etc/hostname".to_string(),
        home.join("id_ed25519").display().to_string(),
        "../home/.ssh/id_ed25519".into(),
    ] {
        let err = msg(
            &e,
            S,
            json!({"channel": "matrix", "target": target, "filePath": p}),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), ErrorCode::OutboundMediaOutsideRoots, "{p}");
    }
    rustix::fs::mknodat(
        rustix::fs::CWD,
        e.ws.join("shot.png"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let t0 = Instant::now();
    let err = msg(
        &e,
        S,
        json!({"channel": "matrix", "target": target, "filePath": "shot.png"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NotRegularFile);
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(
        room_images(&hs, &room).await.len(),
        before,
        "still nothing was sent"
    );

    // allowOwnerOnly: the 0600 file goes.
    let e2 = env(r#"mode: "off""#, &matrix_extra(&hs, "allowOwnerOnly: true"));
    std::fs::write(e2.ws.join("owner.png"), &write_png).unwrap();
    assert_eq!(mode(&e2.ws.join("owner.png")), 0o600);
    let r = msg(&e2, S, json!({"action": "upload-file", "channel": "matrix", "target": target, "filePath": "owner.png", "caption": "owner only"}))
        .await
        .unwrap();
    assert_eq!(
        hs.download(&hs.bot, r["attachments"][0]["remoteId"].as_str().unwrap())
            .await,
        write_png
    );
    let imgs = room_images(&hs, &room).await;
    assert_eq!(imgs.len(), before + 1);
    assert_eq!(imgs[0]["content"]["body"], "owner only");
    assert_eq!(imgs[0]["content"]["info"]["w"], 1);
    assert_eq!(imgs[0]["content"]["info"]["mimetype"], "image/png");
}

#[tokio::test]
async fn a_png_made_by_exec_in_a_session_sandbox_arrives() {
    umask_077();
    let Some(hs) = synapse() else { return };
    if !carapace_testkit::require_bwrap() {
        return;
    }
    let e = env(
        r#"mode: "all", workspaceAccess: "session""#,
        &matrix_extra(&hs, ""),
    );
    let room = hs.create_room(&hs.bot, json!({})).await;
    let p = png(1, 1, 4);
    ok(&e, S, "exec", json!({"command": "printf %s \"$P\" | base64 -d > /workspace/sb.png", "env": {"P": b64(&p)}})).await;
    let r = msg(&e, S, json!({"channel": "matrix", "target": format!("room:{room}"), "filePath": "/workspace/sb.png"}))
        .await
        .unwrap();
    assert_eq!(
        hs.download(&hs.bot, r["attachments"][0]["remoteId"].as_str().unwrap())
            .await,
        p
    );
    // The agent workspace is not mounted writable in a session sandbox, and its files outside
    // /workspace are not reachable by container path, but the host path of the session dir is.
    let err = msg(
        &e,
        S,
        json!({"channel": "matrix", "target": format!("room:{room}"), "filePath": "/etc/hostname"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::OutboundMediaOutsideRoots);
}

#[tokio::test]
async fn inbox_is_the_default_channel() {
    umask_077();
    let e = env(r#"mode: "off""#, "");
    let p = png(1, 1, 5);
    ok(&e, S, "write", json!({"path": "i.png", "base64": b64(&p)})).await;
    let r = msg(&e, S, json!({"target": "user:me", "message": "hi", "path": "i.png", "buffer": b64(b"hello"), "filename": "hello.txt"}))
        .await
        .unwrap();
    assert_eq!(r["channel"], "inbox");
    let atts = r["attachments"].as_array().unwrap();
    assert_eq!(atts.len(), 2);
    let inbox = e.dir.path().join("state/inbox");
    assert_eq!(
        std::fs::read(inbox.join(atts[0]["remoteId"].as_str().unwrap())).unwrap(),
        p
    );
    assert_eq!(
        std::fs::read(inbox.join(atts[1]["remoteId"].as_str().unwrap())).unwrap(),
        b"hello"
    );
    assert_eq!(atts[1]["mime"], "text/plain");
    let err = msg(
        &e,
        S,
        json!({"channel": "discord", "target": "user:1", "message": "x"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ChannelNotConfigured);
    // A URL attachment goes through the media store's download guard first.
    let err = msg(
        &e,
        S,
        json!({"target": "user:me", "media": "http://127.0.0.1:9/x.png"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::NetworkPolicyRefused);
    assert_eq!(err.0.details["address"], "127.0.0.1");
    let err = msg(&e, S, json!({"target": "nobody", "message": "x"}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadRequest);
}

/// End to end through the tool: a thread keeps swapping `race.png` between a real PNG and a
/// symlink to a secret; every send either is refused or delivers exactly the PNG — the
/// symlink's target never leaves.
#[tokio::test]
async fn a_file_swapped_for_a_symlink_never_sends_the_target() {
    umask_077();
    let e = env(r#"mode: "off""#, "");
    let secret = e.dir.path().join("id_ed25519");
    std::fs::write(&secret, "SECRET KEY MATERIAL").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let good = png(1, 1, 6);
    std::fs::write(e.ws.join("race.png"), &good).unwrap();
    std::fs::set_permissions(
        e.ws.join("race.png"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let ws = e.ws.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s2, g2, sec2) = (stop.clone(), good.clone(), secret.clone());
    let swapper = std::thread::spawn(move || {
        let mut i = 0u64;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            let tmp = ws.join(format!(".swap{i}"));
            if i.is_multiple_of(2) {
                std::fs::write(&tmp, &g2).unwrap();
                std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o644))
                    .unwrap();
            } else {
                std::os::unix::fs::symlink(&sec2, &tmp).unwrap();
            }
            std::fs::rename(&tmp, ws.join("race.png")).unwrap();
            i += 1;
        }
    });
    let inbox = e.dir.path().join("state/inbox");
    let (mut sent, mut refused) = (0, 0);
    let mut last = None;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline && (sent < 30 || refused < 5) {
        match msg(
            &e,
            S,
            json!({"target": "user:race", "filePath": "race.png"}),
        )
        .await
        {
            Ok(r) => {
                let f = inbox.join(r["attachments"][0]["remoteId"].as_str().unwrap());
                assert_eq!(
                    std::fs::read(f).unwrap(),
                    good,
                    "only the checked PNG is sent"
                );
                sent += 1;
            }
            Err(err) => {
                assert!(
                    matches!(
                        err.code(),
                        ErrorCode::SymlinkRefused
                            | ErrorCode::PathOutsideRoot
                            | ErrorCode::NotFound
                    ),
                    "{err}"
                );
                refused += 1;
                last = Some(err.to_string());
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(sent > 0, "sent {sent}, refused {refused}: {last:?}");
}
