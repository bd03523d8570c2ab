//! Resource limits of a real bwrap sandbox: a fork bomb and a memory hog are contained, and
//! other calls keep being answered while they run. Bounded so that the machine survives even
//! without the limits (before the fix one exec held 1,500 host pids and 3 GiB): the "bomb" is a
//! tree of at most 1,023 processes and a loop of 200 sleepers, the hog asks for 768 MiB once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use carapace_sandbox::limits::Enforcement;
use common::*;
use serde_json::json;

const S: &str = "agent:main:telegram:dm:1";
const OTHER: &str = "agent:main:telegram:dm:2";

/// A sandbox with small limits. `user`: the sandbox's own uid when carapace runs as root (in
/// rlimit mode `pidsLimit` counts the processes of the sandbox user across its sandboxes, so
/// each test here gets its own).
fn limited(user: u32) -> Env {
    env(
        &format!(
            r#"mode: "all", scope: "session", docker: {{ user: "{user}:{user}", pidsLimit: 64, memory: "256m", cpus: 1 }}"#
        ),
        "tools: { exec: { timeoutSeconds: 30 } }",
    )
}

#[tokio::test]
async fn a_fork_bomb_is_contained_and_others_keep_being_answered() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    let e = limited(4401);
    // 200 sleepers started at once: forks past the limit fail (and end the subshell that
    // tries; the count is kept with builtins, which need no fork).
    let cmd = "( i=0; while [ $i -lt 200 ]; do sleep 3 & i=$((i+1)); echo $i > /tmp/n; done ) 2>/dev/null; read n < /tmp/n; echo live=$n";
    let bomb = call(&e, S, "exec", json!({ "command": cmd }));
    // Meanwhile carapace answers: a file tool on the same session, and another sandbox (of
    // another user: as root, pidsLimit counts the sandbox user's processes together).
    let neighbour = limited(4404);
    let other = async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let read = ok(&e, S, "read", json!({ "path": "/workspace/AGENTS.md" })).await;
        (read, sh(&neighbour, OTHER, "echo alive").await)
    };
    let (bomb, (read, other)) = tokio::join!(bomb, other);
    assert_eq!(read["content"], "agent instructions\n");
    assert_eq!(other.1, "alive\n");
    let out = bomb.unwrap();
    let stdout = out["stdout"].as_str().unwrap();
    let live: usize = stdout
        .trim()
        .strip_prefix("live=")
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        live <= 64,
        "{live} processes alive in one sandbox (limit 64): {out}"
    );
    assert!(live >= 10, "the measurement itself failed: {out}");

    // A real (bounded) fork bomb: a binary tree 9 deep, every leaf sleeping. It ends, killed
    // at its timeout or by failing forks, and takes nothing of the host with it.
    let bomb = "b() { [ \"$1\" -gt 0 ] || { sleep 5; return; }; b $(($1-1)) & b $(($1-1)) & wait; }; b 9 2>/dev/null; echo done";
    let (r, other) = tokio::join!(
        call(
            &e,
            S,
            "exec",
            json!({ "command": bomb, "timeoutSeconds": 15 })
        ),
        async {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            sh(&neighbour, OTHER, "echo still-alive").await
        }
    );
    assert_eq!(other.1, "still-alive\n");
    let r = r.unwrap();
    assert!(r["exitCode"].is_number(), "{r}");
}

#[tokio::test]
async fn a_memory_hog_is_contained() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    let e = limited(4402);
    // One allocation of 768 MiB (dd's block buffer), three times the limit.
    let (code, out, err) = sh(
        &e,
        S,
        "dd if=/dev/zero of=/dev/null bs=768M count=1 2>/dev/null && echo allocated",
    )
    .await;
    assert!(
        !out.contains("allocated"),
        "768 MiB allocated under a 256 MiB limit: {code} {err}"
    );
    // /tmp (RAM) is capped too.
    let (_, out, _) = sh(
        &e,
        S,
        "head -c 400000000 /dev/zero > /tmp/big 2>/dev/null && echo stored; rm -f /tmp/big",
    )
    .await;
    assert!(
        !out.contains("stored"),
        "400 MB stored in /tmp under a 256 MiB limit"
    );
    // A modest allocation still works.
    let (code, out, err) = sh(
        &e,
        S,
        "dd if=/dev/zero of=/dev/null bs=64M count=1 2>/dev/null && echo ok",
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "ok\n"), "{err}");
}

#[tokio::test]
async fn cpu_limits_apply() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    let e = limited(4403);
    match Enforcement::get() {
        Enforcement::Cgroup { .. } => {
            let (_, out, _) = sh(&e, S, "cat /proc/self/cgroup").await;
            assert!(out.contains("sbx-"), "{out}");
        }
        Enforcement::Rlimits { .. } => {
            // CPU time: cpus 1 × timeout 30 s; a lower priority than the gateway.
            let (code, out, err) = sh(&e, S, "ulimit -t; nice").await;
            assert_eq!((code, out.as_str()), (0, "30\n10\n"), "{err}");
        }
    }
    // Defaults apply when nothing is configured.
    let d = env(r#"mode: "all""#, "");
    let (code, out, err) = sh(&d, S, "ulimit -d").await;
    assert_eq!(code, 0, "{err}");
    if matches!(Enforcement::get(), Enforcement::Rlimits { .. }) {
        assert_eq!(
            out,
            format!("{}\n", carapace_policy::limits::DEFAULT_MEMORY_BYTES / 1024)
        );
    }
}
