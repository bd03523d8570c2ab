//! Slow clients against the real gateway process: hundreds of connections that say nothing,
//! and requests that send their headers and never their body, under a lowered fd limit
//! (`prlimit --nofile` on the child). `/healthz` and an authenticated `/tools/invoke` must keep
//! answering, and every stalled connection must be closed by its deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::start;

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Reads until the peer closes, for at most `within`; returns what arrived, or `None` if the
/// connection was still open at the end.
async fn read_until_closed(mut s: TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let until = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(until, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

async fn connect(addr: &str) -> TcpStream {
    // The backlog may be full while the gateway sheds connections; retry briefly.
    for _ in 0..200 {
        if let Ok(s) = TcpStream::connect(addr).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("cannot connect to {addr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_do_not_starve_the_gateway_and_are_closed_by_their_deadlines() {
    let gw = start(
        "{gateway: {headerTimeoutSeconds: 4, bodyTimeoutSeconds: 4, tools: {allow: [\"ls\"]}}}",
        256,
    );
    // 300 connections that never send a byte: more than the fd limit allows at once.
    let mut silent = Vec::new();
    for _ in 0..300 {
        silent.push(connect(&gw.addr).await);
    }
    // 40 requests that send their headers (authenticated) and never their body.
    let mut no_body = Vec::new();
    for _ in 0..40 {
        let mut s = connect(&gw.addr).await;
        let head = format!(
            "POST /tools/invoke HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n",
            gw.addr, gw.token
        );
        s.write_all(head.as_bytes()).await.unwrap();
        no_body.push(s);
    }

    // The gateway still answers, over fresh connections, while the attack sockets are open.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let health = client
        .get(format!("http://{}/healthz", gw.addr))
        .send()
        .await
        .unwrap_or_else(|e| panic!("/healthz under attack: {e}; stderr: {}", gw.stderr()));
    assert_eq!(health.status(), 200);
    let invoke = client
        .post(format!("http://{}/tools/invoke", gw.addr))
        .bearer_auth(&gw.token)
        .header("content-type", "application/json")
        .body(r#"{"tool":"ls","args":{}}"#)
        .send()
        .await
        .unwrap_or_else(|e| panic!("/tools/invoke under attack: {e}; stderr: {}", gw.stderr()));
    let status = invoke.status();
    let v: Value = invoke.json().await.unwrap();
    assert_eq!(
        (status.as_u16(), &v["ok"]),
        (200, &Value::Bool(true)),
        "{v}"
    );

    // Every stalled connection is closed (generous bound: the deadlines are 4 s).
    let bound = Duration::from_secs(90);
    let mut tasks = tokio::task::JoinSet::new();
    for s in silent {
        tasks.spawn(async move { ("silent", read_until_closed(s, bound).await) });
    }
    for s in no_body {
        tasks.spawn(async move { ("no-body", read_until_closed(s, bound).await) });
    }
    let mut timed_out_bodies = 0;
    while let Some(r) = tasks.join_next().await {
        let (kind, got) = r.unwrap();
        let got = got.unwrap_or_else(|| {
            panic!(
                "a {kind} connection was still open after {bound:?}; stderr: {}",
                gw.stderr()
            )
        });
        if kind == "no-body" && !got.is_empty() {
            let text = String::from_utf8_lossy(&got);
            assert!(text.starts_with("HTTP/1.1 408"), "{text}");
            assert!(text.contains("REQUEST_TIMEOUT"), "{text}");
            timed_out_bodies += 1;
        }
    }
    // Connections waiting for a body are evicted only after idle ones, so these got their 408.
    assert!(timed_out_bodies > 0, "no body deadline answered");

    // And the gateway is still healthy afterwards.
    let health = client
        .get(format!("http://{}/healthz", gw.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_deadline() {
    let gw = start("{gateway: {headerTimeoutSeconds: 2}}", 1024);
    let mut s = connect(&gw.addr).await;
    s.write_all(format!("GET /healthz HTTP/1.1\r\nhost: {}\r\n\r\n", gw.addr).as_bytes())
        .await
        .unwrap();
    // The response arrives, then (no further request) the connection is closed.
    let got = read_until_closed(s, Duration::from_secs(60))
        .await
        .expect("the idle keep-alive connection was never closed");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}
