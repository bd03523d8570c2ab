//! carapace run as an ordinary user keeps working: the sandbox runs as that user in its own
//! user namespace (bwrap unprivileged, no uid switch), files it makes are the user's, the file
//! tools read them, and the limits hold per sandbox. When the tests run as root (CI), this test
//! runs itself again as an unprivileged uid.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

const S: &str = "agent:main:telegram:dm:1";
const INNER: &str = "CARAPACE_TEST_NONROOT_INNER";
const UID: u32 = 4244;

#[tokio::test]
async fn an_ordinary_user_runs_sandboxes_as_itself() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    if std::env::var_os(INNER).is_some() || !is_root() {
        return as_ordinary_user().await;
    }
    let out = std::process::Command::new("setpriv")
        .args([
            &format!("--reuid={UID}"),
            &format!("--regid={UID}"),
            "--clear-groups",
            "--",
        ])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "an_ordinary_user_runs_sandboxes_as_itself",
            "--nocapture",
        ])
        .env(INNER, "1")
        .env("HOME", "/nonexistent")
        .env("TMPDIR", "/tmp")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

async fn as_ordinary_user() {
    let me = rustix::process::geteuid().as_raw();
    assert_ne!(me, 0);
    let e = env(
        r#"mode: "all", workspaceAccess: "session", docker: { pidsLimit: 100 }"#,
        "",
    );
    let (code, out, err) = sh(
        &e,
        S,
        "id -u; echo hi > made.txt; (ulimit -u 2>/dev/null || ulimit -p)",
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, format!("{me}\n100\n"));
    assert_eq!(
        ok(&e, S, "read", json!({ "path": "made.txt" })).await["content"],
        "hi\n"
    );
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(slug_dir(&e, S).join("made.txt")).unwrap();
    assert_eq!(m.uid(), me);
    // Set-uid bits are cleared here too.
    let (code, _, _) = sh(&e, S, "cp /bin/sh ./s && chmod 4755 ./s").await;
    assert_eq!(code, 0);
    let m = std::fs::metadata(slug_dir(&e, S).join("s")).unwrap();
    assert_eq!(m.mode() & 0o6000, 0);
}
