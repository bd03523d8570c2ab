//! Real bwrap: what `exec` and the file tools can read and write under each workspace access,
//! session isolation, planted symlinks, per-channel workspace access end to end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use carapace_policy::ErrorCode;
use common::*;
use serde_json::json;

const S1: &str = "agent:main:telegram:dm:1";
const S2: &str = "agent:main:telegram:dm:2";

fn sandboxed(access: &str) -> Env {
    env(
        &format!(r#"mode: "all", scope: "session", workspaceAccess: "{access}""#),
        "",
    )
}

/// The shell's view: reads and writes of every interesting place, per access.
#[tokio::test]
async fn exec_view_per_access() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    for access in ["none", "ro", "rw", "session"] {
        let e = sandboxed(access);
        let (code, out, _) = sh(&e, S1, "pwd; id -u").await;
        assert_eq!(code, 0, "{access}");
        assert!(out.starts_with("/workspace\n"), "{access}: {out}");

        // /workspace: writable except for ro.
        let (code, _, _) = sh(&e, S1, "echo hi > /workspace/w.txt").await;
        assert_eq!(code == 0, access != "ro", "{access}: write /workspace");
        // /agent: visible (read-only) for ro and session only, never writable.
        let (code, out, _) = sh(&e, S1, "cat /agent/AGENTS.md").await;
        assert_eq!(
            code == 0,
            access == "ro" || access == "session",
            "{access}: read /agent"
        );
        if code == 0 {
            assert_eq!(out, "agent instructions\n");
        }
        let (code, _, _) = sh(&e, S1, "echo x > /agent/AGENTS.md || echo x > /agent/new").await;
        assert_ne!(code, 0, "{access}: write /agent");
        assert_eq!(
            std::fs::read_to_string(e.ws.join("AGENTS.md")).unwrap(),
            "agent instructions\n"
        );
        assert!(!e.ws.join("new").exists());
        // rw: /workspace is the agent workspace itself.
        if access == "rw" {
            assert_eq!(std::fs::read_to_string(e.ws.join("w.txt")).unwrap(), "hi\n");
        }
        // /usr and /etc are read-only; host secrets are not there at all.
        for cmd in [
            "touch /usr/x",
            "touch /etc/x",
            "cat /etc/shadow",
            "ls /root",
            "touch /x",
        ] {
            let (code, _, _) = sh(&e, S1, cmd).await;
            assert_ne!(code, 0, "{access}: {cmd} succeeded");
        }
        let (code, _, _) = sh(&e, S1, "cat /etc/passwd >/dev/null && ls /usr/bin/env").await;
        assert_eq!(code, 0, "{access}: /etc/passwd and /usr readable");
        // The host's directories (sandbox root, agent workspace path, temp dir) are invisible.
        for p in [&e.sbx, &e.ws, &e.dir.path().to_path_buf()] {
            let (code, _, _) = sh(&e, S1, &format!("ls {}", p.display())).await;
            assert_ne!(code, 0, "{access}: host path {} visible", p.display());
        }
        // No network: only the loopback interface exists in the sandbox's namespace.
        let (_, out, _) = sh(&e, S1, "cat /proc/net/dev").await;
        let ifaces: Vec<&str> = out
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(str::trim)
            .collect();
        assert_eq!(ifaces, vec!["lo"], "{access}: {out}");
        // /tmp is a private writable tmpfs.
        let (code, _, _) = sh(&e, S1, "echo t > /tmp/t && cat /tmp/t").await;
        assert_eq!(code, 0);
    }
}

/// The file tools' view matches the shell's, with the exact refusal codes.
#[tokio::test]
async fn file_tools_per_access() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    for access in ["none", "ro", "rw", "session"] {
        let e = sandboxed(access);
        let w = call(
            &e,
            S1,
            "write",
            json!({"path": "notes/a.txt", "content": "A"}),
        )
        .await;
        match access {
            "ro" => assert_eq!(w.unwrap_err().code(), ErrorCode::WorkspaceReadOnly),
            _ => {
                let v = w.unwrap();
                assert_eq!(v["path"], "/workspace/notes/a.txt");
                assert_eq!(v["mode"], "0644");
                assert_eq!(v["bytes"], 1);
                // The shell sees what the tool wrote.
                let (code, out, _) = sh(&e, S1, "cat notes/a.txt").await;
                assert_eq!((code, out.as_str()), (0, "A"), "{access}");
            }
        }
        let agent_write = err(
            &e,
            S1,
            "write",
            json!({"path": "/agent/AGENTS.md", "content": "pwned"}),
        )
        .await;
        let agent_read = call(&e, S1, "read", json!({"path": "/agent/AGENTS.md"})).await;
        match access {
            "ro" | "session" => {
                assert_eq!(agent_write, ErrorCode::WorkspaceReadOnly, "{access}");
                assert_eq!(agent_read.unwrap()["content"], "agent instructions\n");
            }
            _ => {
                assert_eq!(agent_write, ErrorCode::WorkspaceAccessDenied, "{access}");
                assert_eq!(
                    agent_read.unwrap_err().code(),
                    ErrorCode::WorkspaceAccessDenied
                );
            }
        }
        assert_eq!(
            std::fs::read_to_string(e.ws.join("AGENTS.md")).unwrap(),
            "agent instructions\n"
        );
        for p in [
            "/etc/passwd",
            "/usr/bin/env",
            "../../etc/passwd",
            "/workspace/../../etc/passwd",
        ] {
            assert_eq!(
                err(&e, S1, "read", json!({"path": p})).await,
                ErrorCode::PathOutsideRoot,
                "{access} {p}"
            );
            assert_eq!(
                err(&e, S1, "write", json!({"path": p, "content": "x"})).await,
                ErrorCode::PathOutsideRoot,
                "{access} {p}"
            );
        }
        // The shell's files are the tools' files.
        if access != "ro" {
            sh(&e, S1, "printf 'one\\ntwo\\n' > made-by-shell.txt").await;
            let v = ok(
                &e,
                S1,
                "read",
                json!({"path": "/workspace/made-by-shell.txt"}),
            )
            .await;
            assert_eq!(v["content"], "one\ntwo\n");
            let v = ok(&e, S1, "ls", json!({})).await;
            let names: Vec<&str> = v["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap())
                .collect();
            assert!(names.contains(&"made-by-shell.txt"), "{names:?}");
        }
    }
}

/// Sandbox directories are seeded from the agent workspace for none/ro/session, created 0755.
#[tokio::test]
async fn seeding_and_dir_modes() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    for access in ["none", "ro", "session"] {
        let e = sandboxed(access);
        let (code, out, _) = sh(&e, S1, "cat /workspace/AGENTS.md; ls /workspace").await;
        assert_eq!(code, 0, "{access}");
        assert!(out.starts_with("agent instructions\n"), "{access}: {out}");
        assert!(
            !out.contains("secret.txt"),
            "only bootstrap files are seeded: {out}"
        );
        let d = slug_dir(&e, S1);
        assert_eq!(mode(&d), 0o755);
        assert_eq!(mode(&e.sbx), 0o755);
        assert_eq!(mode(&d.join("AGENTS.md")), 0o644);
    }
}

/// A session never sees or changes another session's files.
#[tokio::test]
async fn sessions_are_isolated() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    let e = sandboxed("session");
    ok(
        &e,
        S1,
        "write",
        json!({"path": "mine.txt", "content": "s1 data"}),
    )
    .await;
    sh(&e, S1, "mkdir -p sub && echo deep > sub/f").await;
    let d1 = slug_dir(&e, S1);
    let before = tree_hash(&d1);
    assert!(before.contains_key("mine.txt"));

    let slug1 = d1.file_name().unwrap().to_str().unwrap().to_string();
    // The shell of S2: nothing of S1 is reachable, whatever it tries.
    let (_, out, _) = sh(
        &e,
        S2,
        "ls -a /workspace; find / -name mine.txt 2>/dev/null; true",
    )
    .await;
    assert!(!out.contains("mine.txt"), "{out}");
    for cmd in [
        format!("cat /workspace/../{slug1}/mine.txt"),
        format!("rm -rf /workspace/../{slug1}"),
        format!("ls {}", d1.display()),
        "rm -rf /workspace/../*".to_string(),
    ] {
        sh(&e, S2, &cmd).await;
    }
    // The tools of S2.
    for p in [
        format!("../{slug1}/mine.txt"),
        format!("/{slug1}/mine.txt"),
        format!("{}/mine.txt", d1.display()),
    ] {
        assert_eq!(
            err(&e, S2, "read", json!({"path": p})).await,
            ErrorCode::PathOutsideRoot,
            "{p}"
        );
        assert_eq!(
            err(&e, S2, "write", json!({"path": p, "content": "x"})).await,
            ErrorCode::PathOutsideRoot,
            "{p}"
        );
    }
    assert_eq!(tree_hash(&d1), before);
    // And S1 still reads its file.
    assert_eq!(
        ok(&e, S1, "read", json!({"path": "mine.txt"})).await["content"],
        "s1 data"
    );
}

/// Symlinks planted by sandboxed code never let a host-side tool escape.
#[tokio::test]
async fn planted_symlinks_are_refused() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    let e = sandboxed("session");
    let host_target = e.dir.path().join("host-file.txt");
    std::fs::write(&host_target, "host original\n").unwrap();
    let planted = format!(
        "ln -s /agent/AGENTS.md to-agent; ln -s /agent to-agent-dir; ln -s {} to-host; ln -s ../../ws/AGENTS.md rel-up; ln -s /etc to-etc",
        host_target.display()
    );
    let (code, _, stderr) = sh(&e, S1, &planted).await;
    assert_eq!(code, 0, "{stderr}");
    let agent_before = tree_hash(&e.ws);

    for (path, codes) in [
        (
            "to-agent",
            &[ErrorCode::SymlinkRefused, ErrorCode::PathOutsideRoot][..],
        ),
        (
            "to-host",
            &[ErrorCode::SymlinkRefused, ErrorCode::PathOutsideRoot][..],
        ),
        (
            "rel-up",
            &[ErrorCode::SymlinkRefused, ErrorCode::PathOutsideRoot][..],
        ),
        ("to-agent-dir/AGENTS.md", &[ErrorCode::PathOutsideRoot][..]),
        ("to-agent-dir/new.txt", &[ErrorCode::PathOutsideRoot][..]),
        ("to-etc/evil", &[ErrorCode::PathOutsideRoot][..]),
    ] {
        let c = err(&e, S1, "write", json!({"path": path, "content": "pwned\n"})).await;
        assert!(codes.contains(&c), "write {path}: {c}");
        let c = err(
            &e,
            S1,
            "edit",
            json!({"path": path, "oldText": "agent", "newText": "pwned"}),
        )
        .await;
        assert!(
            codes.contains(&c) || c == ErrorCode::PathOutsideRoot || c == ErrorCode::NotFound,
            "edit {path}: {c}"
        );
        let patch = format!("*** Begin Patch\n*** Add File: {path}\n+pwned\n*** End Patch");
        let c = err(&e, S1, "apply_patch", json!({"input": patch})).await;
        assert!(codes.contains(&c), "apply_patch {path}: {c}");
    }
    // Reads through links that lead out are refused too.
    for path in ["to-agent", "to-host", "rel-up", "to-etc/passwd"] {
        assert_eq!(
            err(&e, S1, "read", json!({"path": path})).await,
            ErrorCode::PathOutsideRoot,
            "read {path}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&host_target).unwrap(),
        "host original\n"
    );
    assert_eq!(tree_hash(&e.ws), agent_before);
    // The links themselves are still there (nothing replaced them).
    assert!(
        std::fs::symlink_metadata(slug_dir(&e, S1).join("to-host"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

/// seeds/003: the array channel form gives telegram sessions session access; other channels
/// keep the default.
#[tokio::test]
async fn per_channel_session_access_end_to_end() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    let e = env(
        r#"mode: "all""#,
        r#"channels: [ { id: "telegram", session: { workspaceAccess: "session" } } ]"#,
    );
    // Telegram: its own writable dir, the agent workspace read-only at /agent.
    let tg = "agent:main:telegram:dm:4242";
    ok(&e, tg, "write", json!({"path": "out.txt", "content": "tg"})).await;
    assert_eq!(
        std::fs::read_to_string(slug_dir(&e, tg).join("out.txt")).unwrap(),
        "tg"
    );
    let (code, out, _) = sh(&e, tg, "cat /agent/AGENTS.md && touch /agent/x; echo $?").await;
    assert_eq!(code, 0);
    assert!(
        out.starts_with("agent instructions\n") && !out.ends_with("0\n"),
        "{out}"
    );
    // A second telegram session is a different directory.
    let tg2 = "agent:main:telegram:dm:7";
    let (_, out, _) = sh(&e, tg2, "ls /workspace").await;
    assert!(!out.contains("out.txt"));
    // Inbox (configured, no override): default "none": the agent-scoped sandbox dir, no /agent.
    let inbox = "agent:main:inbox:u1";
    let (code, _, _) = sh(&e, inbox, "test -e /agent").await;
    assert_ne!(code, 0);
    ok(&e, inbox, "write", json!({"path": "i.txt", "content": "i"})).await;
    assert!(slug_dir(&e, "agent:main").join("i.txt").exists());
    assert_eq!(
        err(&e, inbox, "read", json!({"path": "/agent/AGENTS.md"})).await,
        ErrorCode::WorkspaceAccessDenied
    );
    // An explicit channel argument wins over the key.
    let v = carapace_tools::invoke(
        &e.ctx,
        carapace_tools::ToolCall {
            tool: "exec".into(),
            args: json!({"command": "test -r /agent/AGENTS.md"}),
            session_key: Some("agent:main:somewhere:9".into()),
            channel: Some("telegram".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(v["exitCode"], 0);

    // seeds/003 defaults form: session access for everyone.
    let e = env(r#"mode: "all", workspaceAccess: "session""#, "");
    ok(
        &e,
        "agent:main:discord:dm:1",
        "write",
        json!({"path": "d.txt", "content": "d"}),
    )
    .await;
    assert!(
        slug_dir(&e, "agent:main:discord:dm:1")
            .join("d.txt")
            .exists()
    );
}

/// Mode off: exec runs on the host in the agent workspace, labelled unsandboxed; the file tools
/// stay confined to the agent workspace.
#[tokio::test]
async fn mode_off_is_host_and_labelled() {
    let e = env(r#"mode: "off""#, "");
    let v = ok(&e, S1, "exec", json!({"command": "pwd; echo hi > h.txt"})).await;
    assert_eq!(v["sandboxed"], false);
    assert_eq!(v["backend"], "hostUnsandboxed");
    assert_eq!(
        v["stdout"].as_str().unwrap().trim(),
        std::fs::canonicalize(&e.ws).unwrap().display().to_string()
    );
    assert_eq!(
        ok(&e, S1, "read", json!({"path": "/workspace/h.txt"})).await["content"],
        "hi\n"
    );
    assert_eq!(
        err(&e, S1, "read", json!({"path": "/etc/passwd"})).await,
        ErrorCode::PathOutsideRoot
    );
    assert_eq!(
        err(&e, S1, "read", json!({"path": "/agent/AGENTS.md"})).await,
        ErrorCode::WorkspaceAccessDenied
    );
}
