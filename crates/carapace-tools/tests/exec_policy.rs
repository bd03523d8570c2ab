//! `tools.exec.security` against the real sandbox (bubblewrap): `deny` runs nothing,
//! `allowlist` runs allowlisted command lines and refuses everything else before it reaches the
//! shell — command chains with one bad command, substitutions, environment overrides — and the
//! login shell's `$HOME/.profile`, which an agent can write, is not sourced (with `full` the same
//! planted profile does run: the attack is real).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use carapace_policy::ErrorCode;
use common::*;
use serde_json::json;

const S: &str = "agent:main:telegram:dm:7";

fn allowlist_env(security: &str) -> Env {
    env(
        r#"mode: "all", backend: "bwrap", workspaceAccess: "rw""#,
        &format!(
            r#"tools: {{ exec: {{ security: "{security}", allowlist: ["echo", "ls", "cat", "/usr/bin/wc"] }} }}"#
        ),
    )
}

#[tokio::test]
async fn allowlisted_lines_run_and_nothing_else_does() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    let e = allowlist_env("allowlist");
    let (code, out, _) = sh(&e, S, "echo hi && ls /workspace | /usr/bin/wc -l").await;
    assert_eq!(code, 0);
    assert!(out.starts_with("hi\n"), "{out:?}");
    for line in [
        "touch /workspace/pwned",
        "echo hi; touch /workspace/pwned",
        "echo hi && sh -c 'touch /workspace/pwned'",
        "echo $(touch /workspace/pwned)",
        "echo `touch /workspace/pwned`",
        "echo hi > /workspace/pwned",
        "PATH=/workspace echo hi",
        "/bin/touch /workspace/pwned",
        "ls | xargs touch",
    ] {
        let err = call(&e, S, "exec", json!({ "command": line }))
            .await
            .unwrap_err();
        assert_eq!(err.code(), ErrorCode::CommandNotAllowed, "{line}: {err:?}");
        assert_eq!(err.0.details["setting"], "tools.exec.security");
    }
    // The environment is the sandbox's: an override could make an allowlisted program run
    // another.
    let err = call(
        &e,
        S,
        "exec",
        json!({"command": "ls", "env": {"PATH": "/workspace"}}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::CommandNotAllowed);
    assert!(!e.ws.join("pwned").exists());
}

#[tokio::test]
async fn a_planted_profile_does_not_run_before_an_allowlisted_command() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    // Under `full`, the login shell sources $HOME/.profile (HOME is /workspace): the attack.
    let e = allowlist_env("full");
    ok(
        &e,
        S,
        "write",
        json!({"path": ".profile", "content": "touch /workspace/pwned\n"}),
    )
    .await;
    sh(&e, S, "echo hi").await;
    assert!(
        e.ws.join("pwned").exists(),
        "with security full the planted profile runs (what allowlist mode must prevent)"
    );
    // Under `allowlist`, the same profile and an allowlisted command: nothing else runs.
    let e = allowlist_env("allowlist");
    ok(
        &e,
        S,
        "write",
        json!({"path": ".profile", "content": "touch /workspace/pwned\n"}),
    )
    .await;
    let (code, out, _) = sh(&e, S, "echo hi").await;
    assert_eq!((code, out.as_str()), (0, "hi\n"));
    assert!(!e.ws.join("pwned").exists(), "the profile was sourced");
}

#[tokio::test]
async fn security_deny_runs_nothing_and_names_the_setting() {
    let e = env(r#"mode: "off""#, r#"tools: { exec: { security: "deny" } }"#);
    let err = call(&e, S, "exec", json!({"command": "touch pwned"}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ToolDenied);
    assert_eq!(err.0.details["setting"], "tools.exec.security");
    assert!(err.0.hint.unwrap().contains("allowlist"));
    assert!(!e.ws.join("pwned").exists());
}
