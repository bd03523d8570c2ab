//! Set-uid files left on the host, performed for real: carapace runs as root (as in CI), code in
//! the sandbox copies an interpreter into its workspace and marks it set-uid; a local user then
//! runs it. Before the fix the copy was root's and `chmod 4755` made it a root shell for every
//! local user. Now the sandbox runs as an unprivileged uid (the copy is that uid's) and the
//! set-uid/set-gid bits are cleared after every command on every writable mount.
//!
//! Also: ownership stays workable both ways (the file tools read and replace what the sandbox
//! made, the sandbox appends to and creates in what the tools made), and what the sandbox makes
//! can be sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;
use serde_json::json;

const S: &str = "agent:main:telegram:dm:1";

/// The attack inside the sandbox: a set-uid copy of the shell, and a hardlinked one.
const PLANT: &str = "cp /bin/sh ./rootsh && chmod 4755 ./rootsh && cp /bin/sh ./gsh && chmod 2755 ./gsh && cp /bin/sh ./h1 && chmod 4755 ./h1 && ln ./h1 ./h2 && id -u";

/// Runs `path -c 'id -u'` as an unprivileged local user; its uid as the program sees it.
fn run_as_local_user(path: &Path) -> String {
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=4343", "--regid=4343", "--clear-groups", "--"])
        .arg(path)
        .args(["-c", "id -u"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `run`: also run the copy as a local user (a host shell; busybox copies are not runnable
/// under another name).
fn check_no_setid_left(dir: &Path, run: bool) {
    for name in ["rootsh", "gsh", "h1", "h2"] {
        let p = dir.join(name);
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue; // a hardlinked set-uid name is removed
        };
        assert_ne!(m.uid(), 0, "{} is root's", p.display());
        assert_eq!(
            m.mode() & 0o6000,
            0,
            "{} kept mode {:o}",
            p.display(),
            m.mode() & 0o7777
        );
    }
    let rootsh = dir.join("rootsh");
    assert!(rootsh.exists(), "the sandbox could not plant its copy");
    if run {
        assert_eq!(
            run_as_local_user(&rootsh),
            "4343",
            "a local user got another uid"
        );
    }
}

#[tokio::test]
async fn set_uid_files_never_reach_the_host_bwrap() {
    if !carapace_testkit::require_bwrap() || !carapace_testkit::require_root() {
        return;
    }
    for access in ["none", "session", "rw"] {
        let e = env(&format!(r#"mode: "all", workspaceAccess: "{access}""#), "");
        let (code, out, err) = sh(&e, S, PLANT).await;
        assert_eq!(code, 0, "{access}: {err}");
        assert_ne!(out.trim(), "0", "{access}: the sandbox runs as root");
        let dir = match access {
            "rw" => e.ws.clone(),
            "session" => slug_dir(&e, S),
            _ => slug_dir(&e, "agent:main"),
        };
        check_no_setid_left(&dir, true);
    }
}

#[tokio::test]
async fn set_uid_files_never_reach_the_host_through_a_writable_bind() {
    if !carapace_testkit::require_bwrap() || !carapace_testkit::require_root() {
        return;
    }
    let e = env_with(|ws| {
        let out = ws.parent().unwrap().join("out");
        std::fs::create_dir_all(&out).unwrap();
        // Writable by whatever uid the sandbox runs as.
        std::fs::set_permissions(&out, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        format!(
            r#"mode: "all", docker: {{ binds: ["{}:/out:rw"] }}"#,
            out.display()
        )
    });
    let (code, _, err) = sh(&e, S, &format!("cd /out && {PLANT}")).await;
    assert_eq!(code, 0, "{err}");
    check_no_setid_left(&e.dir.path().join("out"), true);
}

#[tokio::test]
async fn set_uid_files_never_reach_the_host_docker() {
    if !carapace_testkit::require_docker() || !carapace_testkit::require_root() {
        return;
    }
    let image = std::env::var("CARAPACE_TEST_DOCKER_IMAGE")
        .unwrap_or_else(|_| "carapace-test:busybox".into());
    let prefix = format!("csu{}-", std::process::id() % 100_000);
    let e = env(
        &format!(
            r#"mode: "all", backend: "docker", docker: {{ image: "{image}", containerPrefix: "{prefix}" }}"#
        ),
        "",
    );
    let (code, out, err) = sh(&e, S, PLANT).await;
    assert_eq!(code, 0, "{err}");
    assert_ne!(out.trim(), "0", "the container runs as root");
    check_no_setid_left(&slug_dir(&e, "agent:main"), false);
    e.ctx
        .sandboxes
        .docker(&e.ctx.config.state_dir)
        .unwrap()
        .recreate(&carapace_sandbox::docker::Selector::All, true)
        .await
        .unwrap();
}

/// With the sandbox and the file tools running as different uids, each can still work with
/// what the other made, and what the sandbox makes can be sent.
#[tokio::test]
async fn the_sandbox_and_the_file_tools_share_the_workspace() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    let e = env(r#"mode: "all", workspaceAccess: "session""#, "");
    // Tools first: a file in a new directory; the sandbox appends to it and adds a file.
    ok(
        &e,
        S,
        "write",
        json!({ "path": "notes/a.txt", "content": "one\n" }),
    )
    .await;
    let (code, _, err) = sh(&e, S, "echo two >> notes/a.txt && echo b > notes/b.txt").await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        ok(&e, S, "read", json!({ "path": "notes/a.txt" })).await["content"],
        "one\ntwo\n"
    );
    // Sandbox first: the tools read and replace it; the sandbox can still change it.
    let (code, _, _) = sh(&e, S, "echo made > made.txt").await;
    assert_eq!(code, 0);
    ok(
        &e,
        S,
        "edit",
        json!({ "path": "made.txt", "oldText": "made", "newText": "edited" }),
    )
    .await;
    let (code, out, err) = sh(&e, S, "echo again >> made.txt && cat made.txt").await;
    assert_eq!((code, out.as_str()), (0, "edited\nagain\n"), "{err}");
    // Outbound: a file the sandbox made (0644 under its umask) goes out.
    let (code, _, _) = sh(&e, S, "printf 'hello' > out.txt").await;
    assert_eq!(code, 0);
    let r = ok(
        &e,
        S,
        "message",
        json!({ "action": "upload-file", "channel": "inbox", "target": "user:me", "filePath": "/workspace/out.txt" }),
    )
    .await;
    assert_eq!(r["attachments"][0]["bytes"], 5, "{r}");
    let dir = slug_dir(&e, S);
    if is_root() {
        for p in ["notes", "notes/a.txt", "notes/b.txt", "made.txt", "out.txt"] {
            assert_ne!(
                std::fs::metadata(dir.join(p)).unwrap().uid(),
                0,
                "{p} is root's"
            );
        }
    }
}
