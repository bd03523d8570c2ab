//! Every file-tool error about a path names the container path the agent used
//! (`/workspace/sub/a.txt`), in the message and in `details.path` — not the path beneath the
//! mount (`sub/a.txt`) — and keeps its code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use carapace_policy::ErrorCode;
use common::*;
use serde_json::json;

const S: &str = "agent:main:main";

#[tokio::test]
async fn errors_name_the_agents_path() {
    let e = env(r#"mode: "off""#, "");
    std::fs::create_dir(e.ws.join("d")).unwrap();
    std::fs::write(e.ws.join("d/f.txt"), "x\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", e.ws.join("d/out")).unwrap();
    std::os::unix::fs::symlink("f.txt", e.ws.join("d/in")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        e.ws.join("d/fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    let cases = [
        (
            "read",
            json!({"path": "d/missing"}),
            ErrorCode::NotFound,
            "/workspace/d/missing",
        ),
        (
            "read",
            json!({"path": "d/missing", "offset": 2}),
            ErrorCode::NotFound,
            "/workspace/d/missing",
        ),
        (
            "read",
            json!({"path": "./d//out"}),
            ErrorCode::PathOutsideRoot,
            "/workspace/d/out",
        ),
        (
            "read",
            json!({"path": "/workspace/d"}),
            ErrorCode::NotRegularFile,
            "/workspace/d",
        ),
        (
            "read",
            json!({"path": "d/fifo", "limit": 1}),
            ErrorCode::NotRegularFile,
            "/workspace/d/fifo",
        ),
        (
            "write",
            json!({"path": "d/in", "content": "y"}),
            ErrorCode::SymlinkRefused,
            "/workspace/d/in",
        ),
        (
            "write",
            json!({"path": "d/f.txt/x", "content": "y"}),
            ErrorCode::BadRequest,
            "/workspace/d/f.txt/x",
        ),
        (
            "edit",
            json!({"path": "d/missing", "oldText": "a", "newText": "b"}),
            ErrorCode::NotFound,
            "/workspace/d/missing",
        ),
        (
            "edit",
            json!({"path": "d/in", "oldText": "x", "newText": "b"}),
            ErrorCode::SymlinkRefused,
            "/workspace/d/in",
        ),
        (
            "ls",
            json!({"path": "d/missing"}),
            ErrorCode::NotFound,
            "/workspace/d/missing",
        ),
        (
            "ls",
            json!({"path": "d/f.txt"}),
            ErrorCode::BadRequest,
            "/workspace/d/f.txt",
        ),
        (
            "ls",
            json!({"path": "d/out"}),
            ErrorCode::SymlinkRefused,
            "/workspace/d/out",
        ),
        (
            "apply_patch",
            json!({"input": "*** Begin Patch\n*** Update File: d/missing\n@@\n-a\n+b\n*** End Patch"}),
            ErrorCode::NotFound,
            "/workspace/d/missing",
        ),
        (
            "apply_patch",
            json!({"input": "*** Begin Patch\n*** Delete File: d/in\n*** End Patch"}),
            ErrorCode::NotRegularFile,
            "/workspace/d/in",
        ),
    ];
    for (tool, args, code, shown) in cases {
        let er = call(&e, S, tool, args.clone()).await.unwrap_err();
        assert_eq!(er.code(), code, "{tool} {args}: {er:?}");
        assert_eq!(er.0.details["path"], shown, "{tool} {args}: {er:?}");
        assert!(
            er.0.message.contains(shown),
            "{tool} {args}: {}",
            er.0.message
        );
    }
}
