//! The attack on `media_save`: copy into the media store what `message` refuses — a
//! hard link to a file outside the workspace, a file on a user bind, a private (0600) file, a
//! symlink — then send the copy. `media_save` of a path now runs the outbound reader's checks
//! (the same function): each is refused with the code a send gets, the media store gets
//! nothing, and there is no copy to send.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt;

use carapace_policy::ErrorCode;
use common::*;
use serde_json::json;

const S: &str = "agent:main:telegram:dm:5";

#[tokio::test]
async fn media_save_refuses_what_message_refuses() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let outside = t.path().join("outside");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let e = env(
        &format!(
            r#"mode: "all", workspaceAccess: "rw", docker: {{ binds: ["{}:/data:rw"] }}"#,
            data.display()
        ),
        "",
    );
    let shared = |p: &std::path::Path, bytes: &[u8]| {
        std::fs::write(p, bytes).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o644)).unwrap();
    };
    shared(&outside.join("id_ed25519"), b"PRIVATE KEY");
    std::fs::hard_link(outside.join("id_ed25519"), e.ws.join("hard.png")).unwrap();
    shared(&data.join("on-bind.png"), b"bind bytes");
    std::fs::write(e.ws.join("private.png"), b"mine only").unwrap();
    std::fs::set_permissions(
        e.ws.join("private.png"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.join("id_ed25519"), e.ws.join("link.png")).unwrap();
    shared(&e.ws.join("ok.png"), b"fine");

    let media = e.dir.path().join("state/media");
    for (path, code) in [
        ("hard.png", ErrorCode::HardlinkRefused),
        ("/data/on-bind.png", ErrorCode::OutboundMediaOutsideRoots),
        (
            "/workspace/private.png",
            ErrorCode::OutboundMediaPermsTooRestrictive,
        ),
        ("link.png", ErrorCode::SymlinkRefused),
        (
            "../outside/id_ed25519",
            ErrorCode::OutboundMediaOutsideRoots,
        ),
    ] {
        let save = call(&e, S, "media_save", json!({"path": path}))
            .await
            .unwrap_err();
        assert_eq!(save.code(), code, "media_save {path}: {save:?}");
        assert_eq!(save.0.details["path"], path);
        let send = call(
            &e,
            S,
            "message",
            json!({"target": "user:me", "filePath": path}),
        )
        .await
        .unwrap_err();
        assert_eq!(send.code(), code, "message {path}: {send:?}");
        let stored = std::fs::read_dir(&media).map(|d| d.count()).unwrap_or(0);
        assert_eq!(stored, 0, "media_save {path} copied something");
    }
    // A file a send accepts is copied, and the copy sends.
    let v = ok(&e, S, "media_save", json!({"path": "ok.png"})).await;
    assert_eq!(v["mode"], "0644");
    let r = ok(
        &e,
        S,
        "message",
        json!({"target": "user:me", "media": v["path"]}),
    )
    .await;
    assert_eq!(r["attachments"][0]["bytes"], 4);
}
