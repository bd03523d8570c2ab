//! The behavioural suite of the Docker backend, against a real engine and the locally imported
//! busybox image (scripts/docker.sh): access modes, isolation between sessions, symlink escapes,
//! umask, hardening, clean environment, timeouts that kill the whole tree, the output cap.
//! Gated by `require_docker()`: fails under CARAPACE_TEST_STRICT=1, skips elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod docker_common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, Instant};

use carapace_policy::{CarapaceError, ErrorCode};
use carapace_sandbox::BackendKind;
use carapace_sandbox::docker::DockerError;
use docker_common::env;
use serde_json::json;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn runs_in_workspace_as_the_workspace_owner_with_exit_codes() {
    let Some(e) = env().await else { return };
    let cfg = e.config(json!({}));
    let s = e.session(&cfg, "agent:main:t1");
    let out = e.exec(&s, "pwd; id -u; id -g; echo err >&2; exit 3").await;
    assert_eq!(out.backend, BackendKind::Docker);
    assert!(out.sandboxed);
    assert_eq!(out.exit_code, 3, "{out:?}");
    assert!(!out.timed_out && !out.truncated);
    let meta = std::fs::metadata(&s.eff.sandbox_dir).unwrap();
    assert_eq!(
        out.stdout,
        format!("/workspace\n{}\n{}\n", meta.uid(), meta.gid())
    );
    assert_eq!(out.stderr, "err\n");
    let sub = s.eff.sandbox_dir.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let out = e
        .exec_with(
            &s,
            "pwd",
            Duration::from_secs(10),
            1000,
            "/workspace/sub",
            BTreeMap::new(),
        )
        .await;
    assert_eq!(out.stdout, "/workspace/sub\n");
}

#[tokio::test]
async fn stdin_is_closed_so_readers_do_not_hang() {
    let Some(e) = env().await else { return };
    let cfg = e.config(json!({}));
    let s = e.session(&cfg, "agent:main:t1");
    let t = Instant::now();
    let out = e
        .exec_with(
            &s,
            "cat; read x || echo eof",
            Duration::from_secs(10),
            1000,
            "/workspace",
            BTreeMap::new(),
        )
        .await;
    assert!(!out.timed_out, "{out:?}");
    assert_eq!(out.stdout, "eof\n");
    assert!(t.elapsed() < Duration::from_secs(9));
}

#[tokio::test]
async fn container_user_is_the_workspace_owner_so_both_sides_agree() {
    let Some(e) = env().await else { return };
    if !carapace_testkit::require_root() {
        return;
    }
    let cfg = e.config(json!({ "workspaceAccess": "rw" }));
    let s = e.session(&cfg, "agent:main:t1");
    // A workspace owned by an ordinary user (carapace running as that user, in effect).
    std::os::unix::fs::chown(e.ws(), Some(1000), Some(1000)).unwrap();
    let out = e
        .exec(
            &s,
            "id -u; id -g; echo inside > inside.txt; stat -c '%u:%g %a' inside.txt",
        )
        .await;
    assert_eq!(out.stdout, "1000\n1000\n1000:1000 644\n", "{out:?}");
    let meta = std::fs::metadata(e.ws().join("inside.txt")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (1000, 1000, 0o644)
    );
    // As that user, without capabilities, the sandbox cannot touch a root-owned 0600 file.
    std::fs::write(e.ws().join("root-only"), "x").unwrap();
    std::fs::set_permissions(
        e.ws().join("root-only"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let out = e.exec(&s, "cat root-only 2>/dev/null || echo denied").await;
    assert_eq!(out.stdout, "denied\n");
}

#[tokio::test]
async fn umask_decides_the_mode_of_files_made_inside() {
    let Some(e) = env().await else { return };
    let cfg = e.config(json!({}));
    let s = e.session(&cfg, "agent:main:t1");
    let out = e
        .exec(&s, "echo x > f.txt && mkdir d && stat -c %a f.txt d")
        .await;
    assert_eq!(out.stdout, "644\n755\n", "{out:?}");
    assert_eq!(mode(&s.eff.sandbox_dir.join("f.txt")), 0o644);
    assert_eq!(mode(&s.eff.sandbox_dir.join("d")), 0o755);

    let cfg = e.config(json!({ "umask": "0077" }));
    let s = e.session(&cfg, "agent:main:t1");
    let out = e.exec(&s, "echo x > g.txt && stat -c %a g.txt").await;
    assert_eq!(out.stdout, "600\n", "{out:?}");
    assert_eq!(mode(&s.eff.sandbox_dir.join("g.txt")), 0o600);
}

#[tokio::test]
async fn access_none_shows_only_the_scope_directory() {
    let Some(e) = env().await else { return };
    std::fs::write(e.ws().join("AGENTS.md"), "agents").unwrap();
    std::fs::write(e.ws().join("private.txt"), "private").unwrap();
    let cfg = e.config(json!({ "workspaceAccess": "none" }));
    let s = e.session(&cfg, "agent:main:t1");
    let out = e
        .exec(
            &s,
            "test ! -e /agent && echo no-agent; cat AGENTS.md; echo; test ! -e private.txt && echo no-private; echo w > new.txt && echo wrote",
        )
        .await;
    assert_eq!(
        out.stdout, "no-agent\nagents\nno-private\nwrote\n",
        "{out:?}"
    );
    assert!(s.eff.sandbox_dir.join("new.txt").exists());
    assert!(!e.ws().join("new.txt").exists());
}

#[tokio::test]
async fn access_ro_is_read_only_everywhere() {
    let Some(e) = env().await else { return };
    std::fs::write(e.ws().join("AGENTS.md"), "agents").unwrap();
    let cfg = e.config(json!({ "workspaceAccess": "ro" }));
    let s = e.session(&cfg, "agent:main:t1");
    let out = e
        .exec(
            &s,
            "cat /agent/AGENTS.md; echo; touch /workspace/x 2>/dev/null || echo ws-ro; touch /agent/x 2>/dev/null || echo agent-ro",
        )
        .await;
    assert_eq!(out.stdout, "agents\nws-ro\nagent-ro\n", "{out:?}");
    assert!(!e.ws().join("x").exists());
}

#[tokio::test]
async fn access_rw_writes_the_agent_workspace() {
    let Some(e) = env().await else { return };
    // The container runs as the workspace's owner (never root by default): a workspace the
    // operator gave to an unprivileged user is written as that user.
    let as_root = rustix::process::geteuid().is_root();
    if as_root {
        std::os::unix::fs::chown(e.ws(), Some(4242), Some(4242)).unwrap();
    }
    let cfg = e.config(json!({ "workspaceAccess": "rw" }));
    let s = e.session(&cfg, "agent:main:t1");
    let out = e
        .exec(
            &s,
            "echo hello > made-inside.txt; test ! -e /agent && echo no-agent",
        )
        .await;
    assert_eq!(out.stdout, "no-agent\n", "{out:?}");
    let p = e.ws().join("made-inside.txt");
    assert_eq!(std::fs::read_to_string(&p).unwrap(), "hello\n");
    assert_eq!(mode(&p), 0o644);
    if as_root {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&p).unwrap().uid(), 4242);
    }
}

#[tokio::test]
async fn access_session_isolates_sessions_and_shows_the_agent_read_only() {
    let Some(e) = env().await else { return };
    std::fs::write(e.ws().join("AGENTS.md"), "agents").unwrap();
    let cfg = e.config(json!({ "workspaceAccess": "session" }));
    let a = e.session(&cfg, "agent:main:telegram:dm:1");
    let b = e.session(&cfg, "agent:main:telegram:dm:2");
    assert_ne!(a.eff.sandbox_dir, b.eff.sandbox_dir);
    assert_ne!(e.sandbox(&a).plan().name, e.sandbox(&b).plan().name);
    let out = e
        .exec(&a, "echo secret-a > mine.txt; cat /agent/AGENTS.md; echo; touch /agent/x 2>/dev/null || echo agent-ro")
        .await;
    assert_eq!(out.stdout, "agents\nagent-ro\n", "{out:?}");
    let out = e
        .exec(
            &b,
            "cat mine.txt 2>/dev/null || echo not-here; find / \\( -path /proc -o -path /sys \\) -prune -o -name mine.txt -print; echo end",
        )
        .await;
    assert_eq!(out.stdout, "not-here\nend\n", "{out:?}");
    // The other session's processes are invisible too.
    let slow = e.exec_with(
        &a,
        "sleep 5",
        Duration::from_secs(1),
        1000,
        "/workspace",
        BTreeMap::new(),
    );
    let look = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        e.exec(&b, "for d in /proc/[0-9]*; do cat $d/cmdline; echo; done | tr '\\0' ' ' | grep -c '^sleep 5' || true")
            .await
    };
    let (_, seen) = tokio::join!(slow, look);
    assert_eq!(seen.stdout.trim(), "0", "{seen:?}");
}

#[tokio::test]
async fn symlinks_do_not_reach_the_host() {
    let Some(e) = env().await else { return };
    let secret = e.root().join("host-secret.txt");
    std::fs::write(&secret, "host secret").unwrap();
    let cfg = e.config(json!({ "workspaceAccess": "rw" }));
    let s = e.session(&cfg, "agent:main:t1");
    std::os::unix::fs::symlink(&secret, e.ws().join("link")).unwrap();
    std::os::unix::fs::symlink("../host-secret.txt", e.ws().join("rel-link")).unwrap();
    let out = e
        .exec(&s, "cat link 2>/dev/null || echo abs-refused; cat rel-link 2>/dev/null || echo rel-refused")
        .await;
    assert_eq!(out.stdout, "abs-refused\nrel-refused\n", "{out:?}");
    // A link planted inside makes no host file writable either.
    let out = e
        .exec(
            &s,
            &format!(
                "ln -s {} out; echo pwned > out 2>/dev/null; echo done",
                secret.display()
            ),
        )
        .await;
    assert_eq!(out.stdout, "done\n");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "host secret");

    // A managed mount source replaced by a symlink after validation is refused host-side,
    // right before the container is created (the engine would follow it anywhere).
    let cfg = e.config(json!({ "workspaceAccess": "none" }));
    let s = e.session(&cfg, "agent:main:t2");
    std::fs::remove_dir_all(&s.eff.sandbox_dir).unwrap();
    std::os::unix::fs::symlink("/etc", &s.eff.sandbox_dir).unwrap();
    let err = e.backend.ensure(e.sandbox(&s).plan()).await.unwrap_err();
    assert!(matches!(err, DockerError::Sandbox(_)), "{err:?}");
    assert_eq!(err.code(), ErrorCode::SandboxMountChanged);
}

#[tokio::test]
async fn hardened_container_no_network_no_caps_read_only_root() {
    let Some(e) = env().await else { return };
    let cfg = e.config(json!({}));
    let s = e.session(&cfg, "agent:main:t1");
    let out = e
        .exec(
            &s,
            "ls /sys/class/net; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; touch /etc/x 2>/dev/null || echo root-ro; touch /tmp/x && echo tmp-ok",
        )
        .await;
    assert_eq!(
        out.stdout, "lo\nCapEff:\t0000000000000000\nNoNewPrivs:\t1\nroot-ro\ntmp-ok\n",
        "{out:?}"
    );
    // Limits reach the engine (past the hot window, so the changed config recreates it).
    e.advance(Duration::from_secs(600));
    let cfg = e.config(json!({ "docker": { "memory": "64m", "pidsLimit": 64, "cpus": 0.5 } }));
    let s = e.session(&cfg, "agent:main:t1");
    let sb = e.sandbox(&s);
    let ensured = e.backend.ensure(sb.plan()).await.unwrap();
    let hc = e
        .backend
        .client()
        .await
        .unwrap()
        .inspect_container(
            &ensured.id,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .unwrap()
        .host_config
        .unwrap();
    assert_eq!(hc.memory, Some(64 << 20));
    assert_eq!(hc.pids_limit, Some(64));
    assert_eq!(hc.nano_cpus, Some(500_000_000));
    assert_eq!(hc.readonly_rootfs, Some(true));
    assert_eq!(hc.network_mode.as_deref(), Some("none"));
}

#[tokio::test]
async fn environment_is_clean_and_layered() {
    let Some(e) = env().await else { return };
    let cfg = e.config(json!({ "docker": { "env": { "FROM_CONFIG": "c", "BOTH": "config" } } }));
    let s = e.session(&cfg, "agent:main:t1");
    let env = BTreeMap::from([
        ("FROM_REQUEST".to_string(), "r".to_string()),
        ("BOTH".to_string(), "request".to_string()),
    ]);
    let out = e
        .exec_with(
            &s,
            "env | sort",
            Duration::from_secs(10),
            100_000,
            "/workspace",
            env,
        )
        .await;
    let vars: BTreeMap<&str, &str> = out
        .stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .collect();
    assert_eq!(vars.get("HOME"), Some(&"/workspace"));
    assert_eq!(vars.get("FROM_CONFIG"), Some(&"c"));
    assert_eq!(vars.get("FROM_REQUEST"), Some(&"r"));
    assert_eq!(vars.get("BOTH"), Some(&"request"));
    assert!(vars.contains_key("PATH"));
    // Nothing of the host's environment leaks in.
    for host_var in [
        "CARGO",
        "CARGO_MANIFEST_DIR",
        "RUST_TEST_THREADS",
        "USER",
        "SHELL",
    ] {
        assert!(!vars.contains_key(host_var), "{host_var} leaked: {out:?}");
    }
}

/// Counts processes in the container whose command line starts with `sleep 30`.
async fn leftovers(e: &docker_common::Env, s: &carapace_sandbox::Session) -> String {
    e.exec(
        s,
        "for d in /proc/[0-9]*; do cat $d/cmdline 2>/dev/null; echo; done | tr '\\0' ' ' | grep -c '^sleep 30' || true",
    )
    .await
    .stdout
    .trim()
    .to_string()
}

#[tokio::test]
async fn timeout_kills_the_whole_tree_even_escaped_processes() {
    let Some(e) = env().await else { return };
    let cfg = e.config(json!({}));
    let s = e.session(&cfg, "agent:main:t1");
    let t = Instant::now();
    let out = e
        .exec_with(
            &s,
            "echo started; sleep 300 & setsid sleep 301 & (sleep 302 &); sleep 303",
            Duration::from_secs(1),
            10_000,
            "/workspace",
            BTreeMap::new(),
        )
        .await;
    assert!(out.timed_out, "{out:?}");
    assert_eq!(out.exit_code, 137);
    assert_eq!(out.signal, Some(9));
    assert_eq!(out.stdout, "started\n", "output so far is kept");
    assert!(
        // Far below the 300 s the sleeps would take; loose, since CI machines are loaded.
        t.elapsed() < Duration::from_secs(30),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(leftovers(&e, &s).await, "0");
}

#[tokio::test]
async fn background_leftovers_die_with_the_command() {
    let Some(e) = env().await else { return };
    let cfg = e.config(json!({}));
    let s = e.session(&cfg, "agent:main:t1");
    let t = Instant::now();
    // The background sleep keeps stdout open; the command itself is done at once.
    let out = e.exec(&s, "sleep 304 & echo done").await;
    assert!(!out.timed_out, "{out:?}");
    assert_eq!(out.exit_code, 0);
    assert_eq!(out.stdout, "done\n");
    assert!(
        // Under the exec's 30 s timeout: not waiting for the background sleep.
        t.elapsed() < Duration::from_secs(25),
        "took {:?}",
        t.elapsed()
    );
    assert_eq!(leftovers(&e, &s).await, "0");
}

#[tokio::test]
async fn output_is_capped_per_stream_with_a_flag() {
    let Some(e) = env().await else { return };
    let cfg = e.config(json!({}));
    let s = e.session(&cfg, "agent:main:t1");
    let out = e
        .exec_with(
            &s,
            "yes abcdefghi | head -c 100000; echo small >&2",
            Duration::from_secs(20),
            1000,
            "/workspace",
            BTreeMap::new(),
        )
        .await;
    assert!(out.truncated, "{:?}", out.stdout.len());
    assert_eq!(out.stdout.len(), 1000);
    assert_eq!(out.stderr, "small\n");
    assert_eq!(out.exit_code, 0);
    let out = e.exec(&s, "echo fits").await;
    assert!(!out.truncated);
}
