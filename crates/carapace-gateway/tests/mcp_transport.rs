//! What MCP clients see of `/mcp`'s transport-level answers: the official MCP Python SDK
//! (installed by `scripts/mcp-python.sh`) reports a bad token as the `UNAUTHORIZED` error with
//! carapace's message (a JSON-RPC error object, not a bare status), works with the right one and
//! closes its session without complaint; an unknown or ended session is 404 with a JSON-RPC
//! error; `DELETE` of a live session is 200.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::*;
use serde_json::{Value, json};

fn python() -> Option<String> {
    let p = std::env::var("CARAPACE_TEST_MCP_PYTHON").ok();
    if carapace_testkit::require(
        "the MCP Python SDK",
        p.is_some(),
        "source scripts/mcp-python.sh (scripts/test.sh does), which sets CARAPACE_TEST_MCP_PYTHON",
    ) {
        p
    } else {
        None
    }
}

fn run_client(py: &str, url: &str, token: &str, scenario: &str) -> (Value, String) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/mcp_client.py");
    let out = Command::new(py)
        .args([script, url, token, scenario])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let v: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| panic!("client output {stdout:?}, stderr {stderr:?}"));
    (v, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdk_reports_a_bad_token_with_carapaces_message() {
    let Some(py) = python() else { return };
    let r = start(r#"mode: "off""#, "", "").await;
    let url = format!("http://{}/mcp", r.addr);
    let (py_url, py_token) = (url.clone(), "not-the-token".to_string());
    let (v, stderr) =
        tokio::task::spawn_blocking(move || run_client(&py, &py_url, &py_token, "auth"))
            .await
            .unwrap();
    assert_eq!(v["connected"], false, "{v}");
    let e = &v["error"];
    assert_eq!(e["type"], "MCPError", "{v} {stderr}");
    assert_eq!(
        e["message"], "UNAUTHORIZED: the bearer token is wrong",
        "{v}"
    );
    assert_eq!(e["data"]["error"]["code"], "UNAUTHORIZED", "{v}");
    assert!(
        e["data"]["error"]["hint"]
            .as_str()
            .unwrap()
            .contains("gateway.auth.token"),
        "{v}"
    );

    // With the right token: tools listed, a call made, the session closed without the SDK
    // logging a failed termination.
    let py = std::env::var("CARAPACE_TEST_MCP_PYTHON").unwrap();
    let (v, stderr) = tokio::task::spawn_blocking(move || run_client(&py, &url, TOKEN, "call"))
        .await
        .unwrap();
    assert_eq!(v["connected"], true, "{v} {stderr}");
    assert_eq!(v["isError"], false, "{v}");
    assert!(
        v["tools"].as_array().unwrap().iter().any(|t| t == "exec"),
        "{v}"
    );
    assert!(!stderr.contains("Session termination failed"), "{stderr}");
}

async fn post(addr: std::net::SocketAddr, session: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}/mcp"))
        .bearer_auth(TOKEN)
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    if let Some(s) = session {
        req = req.header("mcp-session-id", s);
    }
    req.send().await.unwrap()
}

fn assert_jsonrpc_error(v: &Value, code: &str) {
    assert_eq!(v["jsonrpc"], "2.0", "{v}");
    assert!(v["error"]["code"].is_i64(), "{v}");
    assert_eq!(v["error"]["data"]["error"]["code"], code, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{code}: ")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_end_as_the_spec_says() {
    let r = start(r#"mode: "off""#, "", "").await;
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "t", "version": "1"}}});
    let resp = post(r.addr, None, init).await;
    assert_eq!(resp.status(), 200);
    let sid = resp.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    drop(resp);

    // A request naming a session that does not exist: 404, a JSON-RPC error.
    let resp = post(
        r.addr,
        Some("no-such-session"),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    assert_eq!(resp.status(), 404);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_jsonrpc_error(&resp.json().await.unwrap(), "NOT_FOUND");

    let delete = |s: String| async move {
        reqwest::Client::new()
            .delete(format!("http://{}/mcp", r.addr))
            .bearer_auth(TOKEN)
            .header("mcp-session-id", s)
            .send()
            .await
            .unwrap()
    };
    // Closing it: 200; closing it again, or one that never was: 404.
    let resp = delete(sid.clone()).await;
    assert_eq!(resp.status(), 200);
    let resp = delete(sid.clone()).await;
    assert_eq!(resp.status(), 404);
    assert_jsonrpc_error(&resp.json().await.unwrap(), "NOT_FOUND");
    let resp = post(
        r.addr,
        Some(&sid),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
    )
    .await;
    assert_eq!(resp.status(), 404, "an ended session is gone");
}
