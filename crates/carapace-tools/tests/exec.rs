//! `exec` semantics on real bwrap (and host exec): exit codes, timeouts that kill the whole
//! tree, the output cap, env and workdir.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use carapace_policy::ErrorCode;
use common::*;
use serde_json::json;

const S: &str = "agent:main:telegram:dm:1";

fn sandboxed(extra: &str) -> Env {
    env(r#"mode: "all", workspaceAccess: "session""#, extra)
}

#[tokio::test]
async fn nonzero_exit_is_a_result() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    let e = sandboxed("");
    let v = ok(
        &e,
        S,
        "exec",
        json!({"command": "echo out; echo err >&2; exit 7"}),
    )
    .await;
    assert_eq!(v["exitCode"], 7);
    assert_eq!(v["stdout"], "out\n");
    assert_eq!(v["stderr"], "err\n");
    assert_eq!(v["timedOut"], false);
    assert_eq!(v["truncated"], false);
    assert_eq!(v["sandboxed"], true);
    assert_eq!(v["backend"], "bwrap");
}

/// The timeout kills grandchildren too: a grandchild's side effect (even one that left the
/// session with setsid, or ignores SIGTERM) never happens. Positive control first: the same
/// grandchildren in a command that ends in time do write their files, so "never written"
/// cannot pass because they could not write at all.
async fn timeout_kills_tree(e: &Env, exists: impl Fn(&str) -> bool) {
    let control = "(sleep 0.2; echo ok > ctl1) & setsid sh -c 'trap \"\" TERM; sleep 0.2; echo ok > ctl2' & sh -c 'sleep 0.2; echo ok > ctl3' & wait; sleep 1";
    let v = ok(
        e,
        S,
        "exec",
        json!({"command": control, "timeoutSeconds": 60}),
    )
    .await;
    assert_eq!(v["timedOut"], false, "{v}");
    assert_eq!(v["exitCode"], 0, "{v}");
    for f in ["ctl1", "ctl2", "ctl3"] {
        assert!(
            exists(f),
            "{f}: a command that finished in time was cut short"
        );
    }
    let cmd = "(sleep 2; echo late > late1) & setsid sh -c 'trap \"\" TERM; sleep 2; echo late > late2' & sh -c 'sleep 2; echo late > late3' & sleep 30";
    let t = Instant::now();
    let v = ok(e, S, "exec", json!({"command": cmd, "timeoutSeconds": 1})).await;
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(v["timedOut"], true);
    assert_eq!(v["exitCode"], 137);
    tokio::time::sleep(Duration::from_secs(3)).await;
    for f in ["late1", "late2", "late3"] {
        assert!(!exists(f), "{f} was written after the timeout");
    }
}

#[tokio::test]
async fn timeout_kills_grandchildren_bwrap() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    let e = sandboxed("");
    let dir = slug_dir(&e, S);
    timeout_kills_tree(&e, |f| dir.join(f).exists()).await;
}

#[tokio::test]
async fn timeout_kills_group_on_host() {
    // Host exec: the process group is killed. (A setsid'd grandchild can escape on the host;
    // that is documented, and why mode "off" says "unsandboxed".) Positive control first: a
    // command that waits for its children in time is not killed and they write their files.
    let e = env(r#"mode: "off""#, "");
    let control = "(sleep 0.2; echo ok > ctl1) & sh -c 'sleep 0.2; echo ok > ctl3' & wait";
    let v = ok(
        &e,
        S,
        "exec",
        json!({"command": control, "timeoutSeconds": 60}),
    )
    .await;
    assert_eq!(v["timedOut"], false, "{v}");
    assert!(e.ws.join("ctl1").exists() && e.ws.join("ctl3").exists());
    let cmd = "(sleep 2; echo late > late1) & sh -c 'sleep 2; echo late > late3' & sleep 30";
    let v = ok(&e, S, "exec", json!({"command": cmd, "timeoutSeconds": 1})).await;
    assert_eq!(v["timedOut"], true);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!e.ws.join("late1").exists());
    assert!(!e.ws.join("late3").exists());
}

#[tokio::test]
async fn output_cap_sets_truncated() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    let e = sandboxed("tools: { exec: { maxOutputBytes: 1000 } }");
    let v = ok(
        &e,
        S,
        "exec",
        json!({"command": "head -c 5000 /dev/zero | tr '\\0' a; echo done >&2"}),
    )
    .await;
    assert_eq!(v["exitCode"], 0);
    assert_eq!(v["truncated"], true);
    assert_eq!(v["stdout"].as_str().unwrap().len(), 1000);
    assert_eq!(v["stderr"], "done\n");
    // An endless producer is bounded by the timeout, output still capped.
    let v = ok(
        &e,
        S,
        "exec",
        json!({"command": "yes", "timeoutSeconds": 1}),
    )
    .await;
    assert_eq!(v["timedOut"], true);
    assert_eq!(v["truncated"], true);
    assert_eq!(v["stdout"].as_str().unwrap().len(), 1000);
}

#[tokio::test]
async fn clean_env_workdir_and_env_args() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    // SAFETY of the test: only this test binary's env; a marker that must not leak.
    let e = sandboxed("");
    let v = ok(
        &e,
        S,
        "exec",
        json!({"command": "mkdir -p sub/dir; env | sort", "env": {"FOO": "bar"}}),
    )
    .await;
    let out = v["stdout"].as_str().unwrap();
    assert!(out.contains("FOO=bar\n"), "{out}");
    assert!(out.contains("HOME=/workspace\n"), "{out}");
    assert!(!out.contains("CARGO"), "host env leaked: {out}");
    let v = ok(
        &e,
        S,
        "exec",
        json!({"command": "pwd", "workdir": "sub/dir"}),
    )
    .await;
    assert_eq!(v["stdout"], "/workspace/sub/dir\n");
    let v = ok(
        &e,
        S,
        "exec",
        json!({"command": "pwd", "workdir": "/agent"}),
    )
    .await;
    assert_eq!(v["stdout"], "/agent\n");
    assert_eq!(
        err(&e, S, "exec", json!({"command": "pwd", "workdir": "/etc"})).await,
        ErrorCode::PathOutsideRoot
    );
    assert_eq!(
        err(&e, S, "exec", json!({"command": "pwd", "workdir": "nope"})).await,
        ErrorCode::NotFound
    );
    assert_eq!(
        err(
            &e,
            S,
            "exec",
            json!({"command": "true", "env": {"A=B": "x"}})
        )
        .await,
        ErrorCode::BadRequest
    );
    assert_eq!(err(&e, S, "exec", json!({})).await, ErrorCode::BadRequest);
    // A symlinked workdir planted by the sandbox is refused, not followed.
    sh(&e, S, "ln -s /agent linkdir").await;
    let c = err(
        &e,
        S,
        "exec",
        json!({"command": "pwd", "workdir": "linkdir"}),
    )
    .await;
    assert!(
        matches!(c, ErrorCode::SymlinkRefused | ErrorCode::PathOutsideRoot),
        "{c}"
    );
}

#[tokio::test]
async fn unknown_tool_is_not_found() {
    let e = env(r#"mode: "off""#, "");
    assert_eq!(
        err(&e, S, "frobnicate", json!({})).await,
        ErrorCode::NotFound
    );
}

/// The network is unshared by default and shared only when the policy says so.
#[tokio::test]
async fn network_only_when_configured() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    let host_ifaces = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .skip(2)
        .filter(|l| !l.trim_start().starts_with("lo:"))
        .count();
    let count = |out: &str| {
        out.lines()
            .skip(2)
            .filter(|l| !l.trim_start().starts_with("lo:"))
            .count()
    };
    let e = sandboxed("");
    let (_, out, _) = sh(&e, S, "cat /proc/net/dev").await;
    assert_eq!(count(&out), 0, "{out}");
    let e = env(
        r#"mode: "all", workspaceAccess: "session", docker: { network: "host" }"#,
        "",
    );
    let (_, out, _) = sh(
        &e,
        S,
        "cat /proc/net/dev; test -r /etc/resolv.conf || test ! -e /etc/resolv.conf",
    )
    .await;
    assert_eq!(count(&out), host_ifaces, "{out}");
}

/// `tools.exec.timeoutSeconds` is a ceiling: a larger request is capped (and says so), so no
/// command outlives the gateway's request budget; a smaller one applies as asked.
#[tokio::test]
async fn requested_timeout_is_capped_by_the_config() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    let e = sandboxed("tools: { exec: { timeoutSeconds: 1 } }");
    let started = Instant::now();
    let v = ok(
        &e,
        S,
        "exec",
        json!({"command": "sleep 30", "timeoutSeconds": 600}),
    )
    .await;
    assert_eq!(v["timedOut"], true);
    assert_eq!(v["timeoutSeconds"], 1);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "ran past the ceiling"
    );
    let v = ok(&e, S, "exec", json!({"command": "true"})).await;
    assert_eq!(v["timeoutSeconds"], 1);

    let e = sandboxed("tools: { exec: { timeoutSeconds: 120 } }");
    let v = ok(
        &e,
        S,
        "exec",
        json!({"command": "true", "timeoutSeconds": 5}),
    )
    .await;
    assert_eq!(v["timeoutSeconds"], 5);
    assert_eq!(v["timedOut"], false);
}
