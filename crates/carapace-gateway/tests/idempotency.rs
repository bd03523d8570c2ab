//! `idempotencyKey`: a retried `message` with the same key delivers once — counted at the
//! inbox and in a room of a real Synapse homeserver — whether the retry comes after the first
//! answer, at the same time as the first call, or over MCP; the same key for another call is
//! refused and sends nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use carapace_testkit::synapse::{Synapse, synapse, uuid_like};
use common::*;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

/// The message documents the inbox holds for `user:alice`.
fn inbox_messages(r: &Running) -> Vec<Value> {
    let dir = r.inbox.join("user-alice");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    rd.flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .map(|e| serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap())
        .collect()
}

fn send(text: &str, key: &str) -> Value {
    json!({"tool": "message", "action": "send", "idempotencyKey": key,
           "args": {"channel": "inbox", "target": "user:alice", "message": text}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_send_is_delivered_once_at_the_inbox() {
    let r = start(r#"mode: "off""#, "", "").await;
    let (s1, v1) = invoke(r.addr, send("hello once", "retry-1")).await;
    assert_eq!(s1, 200, "{v1}");
    let (s2, v2) = invoke(r.addr, send("hello once", "retry-1")).await;
    assert_eq!(s2, 200, "{v2}");
    assert_eq!(
        v1["result"], v2["result"],
        "the retry gets the first result"
    );
    assert_eq!(inbox_messages(&r).len(), 1);

    // Two at once with one key: one delivery, both answered with it.
    let (a, b) = tokio::join!(
        invoke(r.addr, send("hello twice at once", "retry-2")),
        invoke(r.addr, send("hello twice at once", "retry-2")),
    );
    assert_eq!((a.0, b.0), (200, 200), "{} {}", a.1, b.1);
    assert_eq!(a.1["result"], b.1["result"]);
    assert_eq!(inbox_messages(&r).len(), 2);

    // The key for a different call: refused, nothing sent.
    let (s, v) = invoke(r.addr, send("something else", "retry-1")).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["code"], "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(inbox_messages(&r).len(), 2);

    // Without a key, a repeat is a new message.
    for _ in 0..2 {
        let (s, _) = invoke(
            r.addr,
            json!({"tool": "message", "args": {"target": "user:alice", "message": "no key"}}),
        )
        .await;
        assert_eq!(s, 200);
    }
    assert_eq!(inbox_messages(&r).len(), 4);

    // The IETF header works as the key too.
    for _ in 0..2 {
        let resp = reqwest::Client::new()
            .post(format!("http://{}/tools/invoke", r.addr))
            .bearer_auth(TOKEN)
            .header("idempotency-key", "hdr-1")
            .json(&json!({"tool": "message", "args": {"target": "user:alice", "message": "by header"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    assert_eq!(inbox_messages(&r).len(), 5);

    // Over MCP, the key is an argument of the call.
    let client = mcp(r.addr).await;
    for _ in 0..2 {
        let mut p = CallToolRequestParams::new("message");
        p.arguments = Some(obj(
            json!({"target": "user:alice", "message": "over mcp", "idempotencyKey": "mcp-1"}),
        ));
        let res = client.call_tool(p).await.unwrap();
        assert_ne!(res.is_error, Some(true), "{res:?}");
    }
    client.cancel().await.unwrap();
    let msgs = inbox_messages(&r);
    assert_eq!(msgs.len(), 6);
    let texts: Vec<String> = msgs
        .iter()
        .map(|m| m.to_string())
        .filter(|m| m.contains("over mcp"))
        .collect();
    assert_eq!(texts.len(), 1, "{msgs:?}");
}

/// How many of the last 100 text events of `room` have `body`.
async fn room_texts(hs: &Synapse, room: &str, body: &str) -> usize {
    hs.messages(&hs.bot, room, 100)
        .await
        .iter()
        .filter(|e| e["content"]["body"] == body)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_send_is_delivered_once_on_a_real_synapse() {
    let Some(hs) = synapse() else { return };
    let room = hs.create_room(&hs.bot, json!({})).await;
    let r = start(
        r#"mode: "off""#,
        "",
        &format!(
            r#"channels: {{ inbox: {{ dir: "/nonexistent" }}, matrix: {{ homeserver: "{}", accessToken: "{}" }} }}"#,
            hs.url, hs.bot.token
        ),
    )
    .await;
    let body = format!("idempotent hello {}", uuid_like());
    let call = json!({"tool": "message", "action": "send", "idempotencyKey": format!("matrix-{body}"),
                      "args": {"channel": "matrix", "target": format!("room:{room}"), "message": body}});
    let (s1, v1) = invoke(r.addr, call.clone()).await;
    assert_eq!(s1, 200, "{v1}");
    let (s2, v2) = invoke(r.addr, call).await;
    assert_eq!(s2, 200, "{v2}");
    assert_eq!(v1["result"], v2["result"]);
    assert_eq!(room_texts(&hs, &room, &body).await, 1);
}
