//! Malformed input against the real gateway process and `carapace mcp`: every deterministic
//! refusal is a 4xx envelope (never a 500 / `INTERNAL`), MCP answers JSON-RPC's own codes
//! (-32700 parse error, -32600 invalid request, -32602 invalid params) and keeps serving, and
//! an inbox target too long for the inbox is `BAD_REQUEST` naming the limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{BIN, Gw, start};
use serde_json::{Value, json};

async fn post(gw: &Gw, path: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("http://{}{path}", gw.addr))
        .bearer_auth(&gw.token)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .timeout(Duration::from_secs(120))
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("not JSON (HTTP {status}): {text:?}"));
    (status, v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_invoke_bodies_are_refusals_not_internal_errors() {
    let gw = start("{gateway: {maxBodyBytes: 65536}}", 1024);
    let long = "a".repeat(5000);
    let deep = format!(
        "{{\"tool\":\"ls\",\"args\":{}{}}}",
        "[".repeat(300),
        "]".repeat(300)
    );
    let bodies: Vec<Vec<u8>> = vec![
        b"garbage".to_vec(),
        b"".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        b"\xff\xfe\xfd".to_vec(),
        b"{\"tool\":\"ls\",\"args\":{\"path\":\"\xff\"}}".to_vec(),
        br#"{"tool":"ls","args":{"path":"\ud800"}}"#.to_vec(),
        br#"{"tool":5}"#.to_vec(),
        br#"{"tool":"ls","args":5}"#.to_vec(),
        br#"{"tool":"ls","bogus":1}"#.to_vec(),
        br#"{"tool":"ls","sessionKey":5}"#.to_vec(),
        format!(r#"{{"tool":"{long}"}}"#).into_bytes(),
        deep.into_bytes(),
        br#"{"tool":"read","args":{"path":5}}"#.to_vec(),
        br#"{"tool":"read","args":{"path":"a","offset":-1}}"#.to_vec(),
        br#"{"tool":"read","args":{"path":"a","limit":1e300}}"#.to_vec(),
        format!(r#"{{"tool":"read","args":{{"path":"{long}"}}}}"#).into_bytes(),
        br#"{"tool":"write","args":{"path":"","content":"x"}}"#.to_vec(),
        br#"{"tool":"write","args":{"path":".","content":"x"}}"#.to_vec(),
        br#"{"tool":"exec","args":{"command":"true","timeoutSeconds":1e20}}"#.to_vec(),
        br#"{"tool":"apply_patch","args":{"input":"garbage"}}"#.to_vec(),
        br#"{"tool":"message","args":{"channel":"inbox","target":"room:x","text":5}}"#.to_vec(),
        br#"{"tool":"message","args":{"channel":"nope","target":"room:x","text":"hi"}}"#.to_vec(),
        br#"{"tool":"media_save","args":{"url":"http://[::1"}}"#.to_vec(),
        vec![b' '; 70_000],
    ];
    for body in bodies {
        let shown = String::from_utf8_lossy(&body[..body.len().min(80)]).to_string();
        let (status, v) = post(&gw, "/tools/invoke", body).await;
        assert!((400..500).contains(&status), "{shown}: HTTP {status} {v}");
        assert_eq!(v["ok"], false, "{shown}: {v}");
        assert_ne!(v["error"]["code"], "INTERNAL", "{shown}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_too_long_for_the_inbox_is_bad_request_naming_the_limit() {
    let gw = start("{}", 1024);
    for (target, says) in [
        (format!("channel:{}", "a".repeat(250)), "at most 247 bytes"),
        (format!("user:{}", "a".repeat(5000)), "limit of 255 bytes"),
    ] {
        let body = json!({"tool": "message", "args": {"channel": "inbox", "target": target, "text": "hi"}});
        let (status, v) = post(&gw, "/tools/invoke", body.to_string().into_bytes()).await;
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (400, Some("BAD_REQUEST")),
            "{v}"
        );
        let m = v["error"]["message"].as_str().unwrap();
        assert!(m.contains(says), "{m}");
        assert!(m.len() < 600, "the message echoes the whole target: {m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_over_http_answers_json_rpc_error_codes() {
    let gw = start("{}", 1024);
    for (body, code, id) in [
        (&b"garbage"[..], -32700, Value::Null),
        (&b"\xff\xfe"[..], -32700, Value::Null),
        (&b"[1,2]"[..], -32600, Value::Null),
        (
            &br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":5}}"#[..],
            -32602,
            json!(7),
        ),
        (
            &br#"{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"ls","arguments":[1]}}"#[..],
            -32602,
            json!("x"),
        ),
    ] {
        let (status, v) = post(&gw, "/mcp", body.to_vec()).await;
        assert_eq!(status, 400, "{v}");
        assert_eq!(v["error"]["code"], code, "{v}");
        assert_eq!(v["id"], id, "{v}");
        assert_eq!(v["jsonrpc"], "2.0", "{v}");
    }
}

#[test]
fn mcp_over_stdio_answers_garbage_with_parse_errors_and_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .arg("mcp")
        .env("CARAPACE_STATE_DIR", dir.path().join("state"))
        .env_remove("CARAPACE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let v: Value = serde_json::from_str(&line).unwrap_or_else(|_| json!({"notJson": line}));
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(60))
            .expect("no answer from carapace mcp")
    };
    let mut send = |line: &[u8]| {
        stdin.write_all(line).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    };
    send(b"garbage before anything");
    let v = next();
    assert_eq!(
        (v["error"]["code"].clone(), v["id"].clone()),
        (json!(-32700), Value::Null),
        "{v}"
    );
    send(br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#);
    let v = next();
    assert_eq!(v["id"], 1, "{v}");
    assert!(v["result"]["serverInfo"].is_object(), "{v}");
    send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    send(b"\xff\xfe not utf-8");
    let v = next();
    assert_eq!(v["error"]["code"], -32700, "{v}");
    send(br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":5}}"#);
    let v = next();
    assert_eq!(
        (v["id"].clone(), v["error"]["code"].clone()),
        (json!(2), json!(-32602)),
        "{v}"
    );
    send(br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":"x"}"#);
    let v = next();
    assert_eq!(
        (v["id"].clone(), v["error"]["code"].clone()),
        (json!(3), json!(-32602)),
        "{v}"
    );
    send(br#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#);
    let v = next();
    assert_eq!(v["id"], 4, "{v}");
    assert!(
        v["result"]["tools"]
            .as_array()
            .is_some_and(|t| !t.is_empty()),
        "{v}"
    );
    drop(stdin);
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "carapace mcp exited {status} after stdin closed"
    );
}
