//! carapace under umask 077: files made by `exec` (sandboxed and host) and by the write tool
//! are still 0644, directories 0755. umask is process-wide, so this is its own test binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::json;

const S: &str = "agent:main:telegram:dm:1";

#[tokio::test]
async fn modes_hold_under_umask_077() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));

    // Host exec (mode off) and the write tool.
    let e = env(r#"mode: "off""#, "");
    ok(
        &e,
        S,
        "exec",
        json!({"command": "echo a > host.txt; mkdir hostdir"}),
    )
    .await;
    assert_eq!(mode(&e.ws.join("host.txt")), 0o644);
    assert_eq!(mode(&e.ws.join("hostdir")), 0o755);
    let v = ok(
        &e,
        S,
        "write",
        json!({"path": "deep/new/tool.txt", "content": "t"}),
    )
    .await;
    assert_eq!(v["mode"], "0644");
    assert_eq!(mode(&e.ws.join("deep/new/tool.txt")), 0o644);
    assert_eq!(mode(&e.ws.join("deep")), 0o755);
    assert_eq!(mode(&e.ws.join("deep/new")), 0o755);

    if !carapace_testkit::require_bwrap() {
        return;
    }
    let e = env(r#"mode: "all", workspaceAccess: "session""#, "");
    let v = ok(
        &e,
        S,
        "exec",
        json!({"command": "echo a > f.txt; mkdir d; umask"}),
    )
    .await;
    assert_eq!(v["stdout"], "0022\n");
    let d = slug_dir(&e, S);
    assert_eq!(mode(&d), 0o755);
    assert_eq!(mode(&d.join("f.txt")), 0o644);
    assert_eq!(mode(&d.join("d")), 0o755);
    assert_eq!(mode(&d.join("AGENTS.md")), 0o644, "seeded file");
    ok(&e, S, "write", json!({"path": "w.txt", "content": "w"})).await;
    assert_eq!(mode(&d.join("w.txt")), 0o644);

    // A configured umask is honoured as configured.
    let e = env(
        r#"mode: "all", workspaceAccess: "session", umask: "0027""#,
        "",
    );
    ok(&e, S, "exec", json!({"command": "echo a > f.txt"})).await;
    assert_eq!(mode(&slug_dir(&e, S).join("f.txt")), 0o640);
}
