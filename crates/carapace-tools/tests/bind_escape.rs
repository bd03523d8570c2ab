//! The user-bind escape, performed for real (bwrap and Docker): sandboxed code replaces a bind's
//! source with `ln -s / …`, then exec, `read`, `write`, `ls` and `media_save` try to reach the
//! host's root through it. Before the fix the next bwrap exec mounted `/` (host `/etc/shadow`
//! readable, host `/tmp` writable), the file tools followed it at once, and Docker followed it
//! after its next recreate.
//!
//! Two layers are proven: a bind inside a directory a sandbox can write is refused when the
//! config is checked (the attack cannot start), and a source swapped after validation by anyone
//! else is refused everywhere (`SANDBOX_MOUNT_CHANGED`), never followed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use carapace_policy::ErrorCode;
use common::*;
use serde_json::{Value, json};

const S: &str = "agent:main:telegram:dm:1";

/// The first line of the host's `/etc/shadow` (the tests run as root in CI); a stand-in
/// secret when it is unreadable.
fn host_secret() -> String {
    std::fs::read_to_string("/etc/shadow")
        .ok()
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| "root:".into())
}

/// A unique name in the host's `/tmp` (bwrap sandboxes have their own `/tmp`, so a file there
/// can only come through the bind).
fn host_tmp_marker() -> PathBuf {
    PathBuf::from(format!(
        "/tmp/carapace-escape-{}",
        std::process::id() ^ rand_u32()
    ))
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    t.subsec_nanos()
}

fn with_binds(binds: &[String], extra_sandbox: &str) -> String {
    with_docker(binds, extra_sandbox, "")
}

fn with_docker(binds: &[String], extra_sandbox: &str, docker: &str) -> String {
    let list: Vec<String> = binds.iter().map(|b| format!("{b:?}")).collect();
    format!(
        r#"mode: "all", {extra_sandbox} docker: {{ {docker} binds: [{}] }}"#,
        list.join(", ")
    )
}

/// Every surface tries to reach the host's root through `/data`; none may. Returns the codes of
/// the refusals (for the caller to check they are the expected ones).
async fn try_every_surface(e: &Env, marker: &Path) -> Vec<ErrorCode> {
    let secret = host_secret();
    let name = marker.file_name().unwrap().to_string_lossy().to_string();
    let mut codes = Vec::new();
    let mut check = |r: Result<Value, carapace_tools::ToolError>, what: &str| match r {
        Ok(v) => assert!(
            !v.to_string().contains(&secret),
            "{what} read the host's /etc/shadow: {v}"
        ),
        Err(err) => codes.push(err.code()),
    };
    let exec = format!("cat /data/etc/shadow; echo pwned > /data/tmp/{name}");
    check(call(e, S, "exec", json!({ "command": exec })).await, "exec");
    check(
        call(e, S, "read", json!({ "path": "/data/etc/shadow" })).await,
        "read",
    );
    check(call(e, S, "ls", json!({ "path": "/data/etc" })).await, "ls");
    check(
        call(
            e,
            S,
            "write",
            json!({ "path": format!("/data/tmp/{name}"), "content": "pwned" }),
        )
        .await,
        "write",
    );
    check(
        call(e, S, "media_save", json!({ "path": "/data/etc/shadow" })).await,
        "media_save",
    );
    assert!(
        !marker.exists(),
        "the host's /tmp was written through the bind"
    );
    codes
}

/// A bind whose source is inside the `rw` workspace: sandboxed code can replace it. The config
/// is refused before anything runs, so the swap never happens and nothing reaches the host.
#[tokio::test]
async fn a_bind_inside_the_rw_workspace_is_refused_before_the_swap() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    // The bind source is the workspace's own subdirectory.
    let e = env_with(|ws| {
        std::fs::create_dir_all(ws.join("sub")).unwrap();
        with_binds(
            &[format!("{}:/data:rw", ws.join("sub").display())],
            r#"workspaceAccess: "rw","#,
        )
    });
    let marker = host_tmp_marker();
    // The attack: replace the bind source with a link to the host's root...
    let planted = call(
        &e,
        S,
        "exec",
        json!({ "command": "rm -rf /workspace/sub && ln -s / /workspace/sub && echo planted" }),
    )
    .await;
    let err = planted.expect_err("the configuration must be refused before anything runs");
    assert_eq!(err.code(), ErrorCode::ConfigInvalid, "{err:?}");
    assert_eq!(
        err.0.details["path"], "agents.defaults.sandbox.docker.binds[0]",
        "{err:?}"
    );
    assert!(err.0.message.contains("sandboxes can write"), "{err:?}");
    assert!(e.ws.join("sub").is_dir(), "the source was replaced");
    // ...and through it, reach the host.
    let codes = try_every_surface(&e, &marker).await;
    assert!(
        codes.iter().all(|c| *c == ErrorCode::ConfigInvalid),
        "{codes:?}"
    );
}

/// A bind source replaced by a symlink to `/` after it was validated (by anyone: a local user
/// who can write its parent) is refused by exec, `read`, `ls`, `write` and `media_save`; so is
/// one replaced by another real directory. Put back, it works again.
#[tokio::test]
async fn a_bind_source_swapped_after_validation_is_refused_everywhere() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    let e = env_with(|ws| {
        let data = ws.parent().unwrap().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("hello.txt"), "hello\n").unwrap();
        if is_root() {
            std::os::unix::fs::chown(&data, Some(WS_OWNER), Some(WS_OWNER)).unwrap();
        }
        with_binds(&[format!("{}:/data:rw", data.display())], "")
    });
    let data = e.dir.path().join("data");
    let (code, out, _) = sh(&e, S, "cat /data/hello.txt").await;
    assert_eq!((code, out.as_str()), (0, "hello\n"));
    assert_eq!(
        ok(&e, S, "read", json!({ "path": "/data/hello.txt" })).await["content"],
        "hello\n"
    );

    // Swapped for a link to the host's root.
    std::fs::rename(&data, e.dir.path().join("data.orig")).unwrap();
    std::os::unix::fs::symlink("/", &data).unwrap();
    let marker = host_tmp_marker();
    let codes = try_every_surface(&e, &marker).await;
    assert_eq!(codes.len(), 5, "every surface must refuse: {codes:?}");
    assert!(
        codes.iter().all(|c| *c == ErrorCode::SandboxMountChanged),
        "{codes:?}"
    );

    // Swapped for another real directory (holding a copy of the host's secrets, say).
    std::fs::remove_file(&data).unwrap();
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("hello.txt"), "impostor\n").unwrap();
    let err = call(&e, S, "exec", json!({ "command": "cat /data/hello.txt" }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SandboxMountChanged);
    assert!(err.0.details["reason"].as_str().unwrap().contains("inode"));
    let err = call(&e, S, "read", json!({ "path": "/data/hello.txt" }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::SandboxMountChanged);

    // The validated directory put back: it is what was validated, so it works again.
    std::fs::remove_dir_all(&data).unwrap();
    std::fs::rename(e.dir.path().join("data.orig"), &data).unwrap();
    let (code, out, _) = sh(&e, S, "cat /data/hello.txt").await;
    assert_eq!((code, out.as_str()), (0, "hello\n"));
}

/// Binds that only look harmless: a symlink to `/etc`, the state directory (which holds the
/// gateway token under `secrets/`), a source that does not exist. Each is refused with its
/// config key, by the load-time check and at first use.
#[tokio::test]
async fn binds_are_checked_as_the_host_resolves_them() {
    for (setup, expect) in [
        ("etc-link", "(which is /etc)"),
        ("state", "secrets"),
        ("missing", "does not exist"),
    ] {
        let e = env_with(|ws| {
            let base = ws.parent().unwrap();
            let src = match setup {
                "etc-link" => {
                    std::os::unix::fs::symlink("/etc", base.join("etc-link")).unwrap();
                    base.join("etc-link")
                }
                "state" => {
                    std::fs::create_dir_all(base.join("state/secrets")).unwrap();
                    std::fs::write(base.join("state/secrets/gateway-token"), "t0ken").unwrap();
                    base.join("state")
                }
                _ => base.join("missing"),
            };
            with_binds(&[format!("{}:/data:ro", src.display())], "")
        });
        let err =
            carapace_sandbox::validate::check_config(&e.ctx.config, "test.json5").expect_err(setup);
        let text = err.to_string();
        assert!(
            text.contains("agents.defaults.sandbox.docker.binds[0]") && text.contains(expect),
            "{setup}: {text}"
        );
        let err = call(
            &e,
            S,
            "exec",
            json!({ "command": "cat /data/gateway-token /data/passwd" }),
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), ErrorCode::ConfigInvalid, "{setup}: {err:?}");
    }
}

/// Docker: a bind source swapped for `/` after the container was created is refused right
/// before the next create (after a recreate), so no container ever sees the host's root.
#[tokio::test]
async fn docker_never_mounts_a_swapped_bind_source() {
    if !carapace_testkit::require_docker() {
        return;
    }
    let prefix = format!("cbe{}-", rand_u32() % 100_000);
    let image = std::env::var("CARAPACE_TEST_DOCKER_IMAGE")
        .unwrap_or_else(|_| "carapace-test:busybox".into());
    let e = env_with(|ws| {
        let data = ws.parent().unwrap().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("hello.txt"), "hello\n").unwrap();
        with_docker(
            &[format!("{}:/data:ro", data.display())],
            r#"backend: "docker","#,
            &format!(r#"image: "{image}", containerPrefix: "{prefix}","#),
        )
    });
    let data = e.dir.path().join("data");
    let (code, out, _) = sh(&e, S, "cat /data/hello.txt").await;
    assert_eq!((code, out.as_str()), (0, "hello\n"));
    std::fs::rename(&data, e.dir.path().join("data.orig")).unwrap();
    std::os::unix::fs::symlink("/", &data).unwrap();
    let backend = e.ctx.sandboxes.docker(&e.ctx.config.state_dir).unwrap();
    backend
        .recreate(&carapace_sandbox::docker::Selector::All, true)
        .await
        .unwrap();
    let marker = host_tmp_marker();
    let codes = try_every_surface(&e, &marker).await;
    assert!(
        !codes.is_empty() && codes.iter().all(|c| *c == ErrorCode::SandboxMountChanged),
        "{codes:?}"
    );
    backend
        .recreate(&carapace_sandbox::docker::Selector::All, true)
        .await
        .unwrap();
}
