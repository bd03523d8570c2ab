//! read / write / edit / apply_patch / ls semantics (no sandbox needed: mode off maps
//! `/workspace` to the agent workspace; the access-mode matrix is in sandbox_access.rs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine;
use carapace_policy::ErrorCode;
use common::*;
use serde_json::json;

const S: &str = "agent:main:main";

fn off(extra: &str) -> Env {
    env(r#"mode: "off""#, extra)
}

#[tokio::test]
async fn read_whole_window_binary_and_too_large() {
    let e = off("tools: { fs: { maxReadBytes: 64 } }");
    let text: String = (1..=40).map(|i| format!("line {i}\n")).collect();
    std::fs::write(e.ws.join("big.txt"), &text).unwrap();
    assert!(text.len() > 64);
    let er = call(&e, S, "read", json!({"path": "big.txt"}))
        .await
        .unwrap_err();
    assert_eq!(er.code(), ErrorCode::TooLarge);
    assert!(er.0.hint.unwrap().contains("offset"));
    assert_eq!(er.0.details["limit"], 64);
    let v = ok(
        &e,
        S,
        "read",
        json!({"path": "big.txt", "offset": 3, "limit": 2}),
    )
    .await;
    assert_eq!(v["content"], "line 3\nline 4\n");
    assert_eq!(v["lines"], 2);
    assert_eq!(v["truncated"], true);
    assert_eq!(v["size"], text.len());
    // A window is capped at maxReadBytes too.
    let v = ok(&e, S, "read", json!({"path": "big.txt", "offset": 1})).await;
    assert!(v["content"].as_str().unwrap().len() <= 64);
    assert_eq!(v["truncated"], true);

    std::fs::write(e.ws.join("bin"), [0u8, 159, 146, 150, 1]).unwrap();
    let v = ok(&e, S, "read", json!({"path": "/workspace/bin"})).await;
    assert_eq!(
        base64::engine::general_purpose::STANDARD
            .decode(v["base64"].as_str().unwrap())
            .unwrap(),
        vec![0u8, 159, 146, 150, 1]
    );
    assert!(v.get("content").is_none());
    assert_eq!(
        err(&e, S, "read", json!({"path": "missing"})).await,
        ErrorCode::NotFound
    );
    assert_eq!(
        err(&e, S, "read", json!({"path": "/workspace"})).await,
        ErrorCode::NotRegularFile
    );
    assert_eq!(err(&e, S, "read", json!({})).await, ErrorCode::BadRequest);
    assert_eq!(
        err(&e, S, "read", json!({"path": 3})).await,
        ErrorCode::BadRequest
    );
}

#[tokio::test]
async fn write_modes_and_base64() {
    let e = off("tools: { fs: { newFileMode: \"0640\", newDirMode: \"0750\" } }");
    let v = ok(
        &e,
        S,
        "write",
        json!({"path": "a/b/c.txt", "content": "hello"}),
    )
    .await;
    assert_eq!(
        v,
        json!({"path": "/workspace/a/b/c.txt", "bytes": 5, "mode": "0640", "created": true})
    );
    assert_eq!(mode(&e.ws.join("a")), 0o750);
    // Replacing keeps the existing mode.
    std::fs::set_permissions(
        e.ws.join("a/b/c.txt"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let v = ok(
        &e,
        S,
        "write",
        json!({"path": "a/b/c.txt", "base64": "AAEC"}),
    )
    .await;
    assert_eq!(v["mode"], "0600");
    assert_eq!(v["created"], false);
    assert_eq!(
        std::fs::read(e.ws.join("a/b/c.txt")).unwrap(),
        vec![0, 1, 2]
    );
    assert_eq!(
        err(&e, S, "write", json!({"path": "x"})).await,
        ErrorCode::BadRequest
    );
    assert_eq!(
        err(&e, S, "write", json!({"path": "x", "base64": "!!"})).await,
        ErrorCode::BadRequest
    );
    assert_eq!(
        err(
            &e,
            S,
            "write",
            json!({"path": "/workspace", "content": "x"})
        )
        .await,
        ErrorCode::NotRegularFile
    );
}

#[tokio::test]
async fn edit_unique_match() {
    let e = off("");
    std::fs::write(e.ws.join("f.txt"), "alpha beta\nbeta gamma\n").unwrap();
    let v = ok(
        &e,
        S,
        "edit",
        json!({"path": "f.txt", "oldText": "alpha", "newText": "ALPHA"}),
    )
    .await;
    assert_eq!(v, json!({"path": "/workspace/f.txt", "replacements": 1}));
    assert_eq!(
        std::fs::read_to_string(e.ws.join("f.txt")).unwrap(),
        "ALPHA beta\nbeta gamma\n"
    );
    let er = call(
        &e,
        S,
        "edit",
        json!({"path": "f.txt", "oldText": "beta", "newText": "x"}),
    )
    .await
    .unwrap_err();
    assert_eq!(er.code(), ErrorCode::BadRequest);
    assert_eq!(er.0.details["matches"], 2);
    let er = call(
        &e,
        S,
        "edit",
        json!({"path": "f.txt", "oldText": "zeta", "newText": "x"}),
    )
    .await
    .unwrap_err();
    assert_eq!(er.0.details["matches"], 0);
    assert_eq!(
        err(
            &e,
            S,
            "edit",
            json!({"path": "nope.txt", "oldText": "a", "newText": "b"})
        )
        .await,
        ErrorCode::NotFound
    );
}

#[tokio::test]
async fn apply_patch_end_to_end() {
    let e = off("");
    std::fs::write(e.ws.join("app.py"), "def greet():\n    print(\"Hi\")\n").unwrap();
    std::fs::write(e.ws.join("obsolete.txt"), "bye\n").unwrap();
    let patch = "*** Begin Patch\n*** Add File: src/hello.txt\n+Hello world\n*** Update File: app.py\n*** Move to: src/main.py\n@@ def greet():\n-    print(\"Hi\")\n+    print(\"Hello, world!\")\n*** Delete File: obsolete.txt\n*** End Patch\n";
    let v = ok(&e, S, "apply_patch", json!({"input": patch})).await;
    assert_eq!(v["added"], json!(["/workspace/src/hello.txt"]));
    assert_eq!(v["updated"], json!(["/workspace/src/main.py"]));
    assert_eq!(
        v["deleted"],
        json!(["/workspace/app.py", "/workspace/obsolete.txt"])
    );
    assert_eq!(
        std::fs::read_to_string(e.ws.join("src/hello.txt")).unwrap(),
        "Hello world\n"
    );
    assert_eq!(
        std::fs::read_to_string(e.ws.join("src/main.py")).unwrap(),
        "def greet():\n    print(\"Hello, world!\")\n"
    );
    assert!(!e.ws.join("app.py").exists() && !e.ws.join("obsolete.txt").exists());
    assert_eq!(mode(&e.ws.join("src/hello.txt")), 0o644);
    // A patch whose second file does not match changes nothing.
    let before = tree_hash(&e.ws);
    let bad = "*** Begin Patch\n*** Add File: new.txt\n+x\n*** Update File: src/main.py\n@@\n-no such line\n+y\n*** End Patch";
    assert_eq!(
        err(&e, S, "apply_patch", json!({"input": bad})).await,
        ErrorCode::BadRequest
    );
    assert_eq!(tree_hash(&e.ws), before);
    let out = "*** Begin Patch\n*** Add File: ../escape.txt\n+x\n*** End Patch";
    assert_eq!(
        err(&e, S, "apply_patch", json!({"input": out})).await,
        ErrorCode::PathOutsideRoot
    );
    assert!(!e.dir.path().join("escape.txt").exists());
}

#[tokio::test]
async fn ls_entries() {
    let e = off("");
    std::fs::create_dir(e.ws.join("d")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", e.ws.join("l")).unwrap();
    let v = ok(&e, S, "ls", json!({})).await;
    assert_eq!(v["path"], "/workspace");
    let entries = v["entries"].as_array().unwrap();
    let find = |n: &str| entries.iter().find(|x| x["name"] == n).unwrap().clone();
    assert_eq!(find("AGENTS.md")["kind"], "file");
    assert_eq!(find("AGENTS.md")["size"], 19);
    assert_eq!(find("d")["kind"], "dir");
    assert_eq!(find("l")["kind"], "symlink");
    assert_eq!(
        err(&e, S, "ls", json!({"path": "l"})).await,
        ErrorCode::SymlinkRefused
    );
    let v = ok(&e, S, "ls", json!({"path": "/"})).await;
    assert_eq!(v["entries"][0]["name"], "workspace");
    assert_eq!(
        err(&e, S, "ls", json!({"path": "/etc"})).await,
        ErrorCode::PathOutsideRoot
    );
}

#[tokio::test]
async fn specs_cover_dispatch() {
    let names: Vec<String> = carapace_tools::tool_specs()
        .into_iter()
        .map(|s| s.name)
        .collect();
    for n in ["read", "write", "edit", "apply_patch", "ls", "exec"] {
        assert!(names.iter().any(|x| x == n), "{n} missing from {names:?}");
    }
    let unique: std::collections::BTreeSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "{names:?}");
    for s in carapace_tools::tool_specs() {
        assert_eq!(s.input_schema["type"], "object");
    }
}
