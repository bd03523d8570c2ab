//! A NUL byte in any name-like argument of any tool (command, workdir, env keys and values,
//! paths, channels, targets, URLs, file names, patch paths) is `BAD_REQUEST` naming the
//! argument — never `INTERNAL` (which the HTTP surface turns into a 500), and nothing runs.
//! Content arguments (file text, message text) may hold NUL bytes: they are data.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use carapace_policy::ErrorCode;
use common::*;
use serde_json::{Value, json};

const S: &str = "agent:main:main";

/// (tool, args, the argument the error must name, or None when only the code matters).
fn cases() -> Vec<(&'static str, Value, Option<&'static str>)> {
    vec![
        (
            "exec",
            json!({"command": "echo hi\u{0}; touch /workspace/ran"}),
            Some("command"),
        ),
        (
            "exec",
            json!({"command": "true", "workdir": "/workspace\u{0}x"}),
            Some("workdir"),
        ),
        (
            "exec",
            json!({"command": "true", "env": {"A\u{0}B": "x"}}),
            Some("env (a key)"),
        ),
        (
            "exec",
            json!({"command": "true", "env": {"A": "x\u{0}y"}}),
            Some("env.A"),
        ),
        (
            "exec",
            json!({"command": "true", "env": {"A=B": "x"}}),
            Some("env.A=B"),
        ),
        ("read", json!({"path": "a\u{0}b"}), Some("path")),
        (
            "read",
            json!({"path": "a\u{0}b", "offset": 2}),
            Some("path"),
        ),
        (
            "write",
            json!({"path": "a\u{0}b", "content": "x"}),
            Some("path"),
        ),
        (
            "edit",
            json!({"path": "a\u{0}b", "oldText": "x", "newText": "y"}),
            Some("path"),
        ),
        ("ls", json!({"path": "/workspace/\u{0}"}), Some("path")),
        (
            "apply_patch",
            json!({"input": "*** Begin Patch\n*** Add File: a\u{0}b\n+x\n*** End Patch"}),
            None,
        ),
        (
            "message",
            json!({"target": "user:me\u{0}x", "message": "hi"}),
            Some("target"),
        ),
        (
            "message",
            json!({"channel": "inbox\u{0}", "target": "user:me"}),
            Some("channel"),
        ),
        (
            "message",
            json!({"target": "user:me", "filePath": "a\u{0}.png"}),
            Some("filePath"),
        ),
        (
            "message",
            json!({"target": "user:me", "media": ["ok.png", "b\u{0}.png"]}),
            Some("media"),
        ),
        (
            "message",
            json!({"target": "user:me", "path": "x\u{0}"}),
            Some("path"),
        ),
        (
            "message",
            json!({"target": "user:me", "buffer": "aGk=", "filename": "a\u{0}.txt"}),
            Some("filename"),
        ),
        ("media_save", json!({"path": "a\u{0}.png"}), Some("path")),
        (
            "media_save",
            json!({"url": "http://127.0.0.1/\u{0}"}),
            Some("url"),
        ),
        (
            "media_save",
            json!({"base64": "aGk=", "filename": "a\u{0}"}),
            Some("filename"),
        ),
        (
            "browser",
            json!({"action": "screenshot", "url": "http://127.0.0.1/\u{0}"}),
            Some("url"),
        ),
    ]
}

#[tokio::test]
async fn a_nul_byte_is_bad_request_naming_the_argument() {
    let e = env(r#"mode: "off""#, "");
    std::fs::write(e.ws.join("ok.png"), b"x").unwrap();
    let before = tree_hash(&e.ws);
    for (tool, args, argument) in cases() {
        let err = call(&e, S, tool, args.clone()).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadRequest, "{tool} {args}: {err:?}");
        if let Some(a) = argument {
            assert_eq!(err.0.details["argument"], a, "{tool} {args}: {err:?}");
            assert!(
                err.0.message.contains("NUL") || a.starts_with("env."),
                "{err:?}"
            );
        }
    }
    // Nothing ran, nothing was written, nothing was sent.
    assert_eq!(tree_hash(&e.ws), before);
    assert!(!e.ws.join("ran").exists());
    let inbox = e.dir.path().join("state/inbox");
    assert!(!inbox.exists() || std::fs::read_dir(&inbox).unwrap().count() == 0);
}

/// The call's own routing fields (session key, agent, channel) with a NUL byte.
#[tokio::test]
async fn a_nul_byte_in_the_routing_fields_is_never_internal() {
    let e = env(r#"mode: "off""#, "");
    for (session, agent, channel) in [
        (Some("agent:main:x\u{0}y"), None, None),
        (Some(S), Some("ma\u{0}in"), None),
        (Some(S), None, Some("inbox\u{0}")),
    ] {
        let r = carapace_tools::invoke(
            &e.ctx,
            carapace_tools::ToolCall {
                tool: "exec".into(),
                args: json!({"command": "touch /workspace/ran"}),
                session_key: session.map(str::to_string),
                agent_id: agent.map(str::to_string),
                channel: channel.map(str::to_string),
                ..carapace_tools::ToolCall::default()
            },
        )
        .await;
        if let Err(er) = r {
            assert_ne!(er.code(), ErrorCode::Internal, "{er:?}");
        }
    }
}

#[tokio::test]
async fn nul_bytes_in_content_are_data() {
    let e = env(r#"mode: "off""#, "");
    let v = ok(
        &e,
        S,
        "write",
        json!({"path": "n.txt", "content": "a\u{0}b"}),
    )
    .await;
    assert_eq!(v["bytes"], 3);
    assert_eq!(std::fs::read(e.ws.join("n.txt")).unwrap(), b"a\0b");
    ok(
        &e,
        S,
        "edit",
        json!({"path": "n.txt", "oldText": "\u{0}", "newText": "-"}),
    )
    .await;
    assert_eq!(std::fs::read(e.ws.join("n.txt")).unwrap(), b"a-b");
}

/// The same over the sandbox: the command with a NUL never reaches bwrap.
#[tokio::test]
async fn exec_in_the_sandbox_refuses_a_nul_command() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    let e = env(r#"mode: "all", workspaceAccess: "rw""#, "");
    let err = call(
        &e,
        "agent:main:telegram:dm:1",
        "exec",
        json!({"command": "touch /workspace/ran\u{0}"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), ErrorCode::BadRequest);
    assert_eq!(err.0.details["argument"], "command");
    assert!(!e.ws.join("ran").exists());
}
