//! The tool policy on the gateway's surfaces, with the real tools behind it (in-process router
//! on a loopback port, carapace-tools as the backend):
//!
//! - every restricting key, in both OpenClaw shapes where it has two, denies the tool over
//!   `POST /tools/invoke` (404 `TOOL_DENIED`, the setting named) and over MCP (not in
//!   `tools/list`; a call is a tool error `TOOL_DENIED` naming the setting) — and nothing runs;
//! - the surface defaults: `/tools/invoke` serves neither `exec` nor the file tools unless
//!   `gateway.tools.allow` lists them (OpenClaw's default), MCP serves them;
//! - `gateway.tools.deny` is HTTP's, `gateway.mcp.tools.deny` MCP's;
//! - unknown tool arguments are refused on both;
//! - an OpenClaw-shaped client, written from OpenClaw's docs of the endpoint, works unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use rmcp::model::CallToolRequestParams;
use serde_json::{Value, json};

/// Serve every tool over HTTP too, so a case's own setting is what refuses.
const HTTP_ALL: &str = r#"gateway: { tools: { allow: ["group:fs", "group:runtime"] } }"#;

struct Case {
    sandbox: &'static str,
    agents: &'static str,
    tools: &'static str,
    tool: &'static str,
    args: Value,
    setting: &'static str,
}

fn cases() -> Vec<Case> {
    let exec = || json!({"command": "touch pwned"});
    let c = |sandbox, agents, tools, tool, args, setting| Case {
        sandbox,
        agents,
        tools,
        tool,
        args,
        setting,
    };
    vec![
        c(
            r#"mode: "off""#,
            "",
            r#"deny: ["exec"]"#,
            "exec",
            exec(),
            "tools.deny",
        ),
        c(
            r#"mode: "off""#,
            "",
            r#"deny: ["bash"]"#,
            "exec",
            exec(),
            "tools.deny",
        ),
        c(
            r#"mode: "off""#,
            "",
            r#"deny: ["group:fs"]"#,
            "write",
            json!({"path": "pwned", "content": "x"}),
            "tools.deny",
        ),
        c(
            r#"mode: "off""#,
            "",
            r#"allow: ["read"]"#,
            "exec",
            exec(),
            "tools.allow",
        ),
        c(
            r#"mode: "off""#,
            "",
            r#"profile: "messaging""#,
            "exec",
            exec(),
            "tools.profile",
        ),
        c(
            r#"mode: "off""#,
            "",
            r#"exec: { security: "deny" }"#,
            "exec",
            exec(),
            "tools.exec.security",
        ),
        c(
            r#"mode: "off""#,
            "",
            r#"exec: { applyPatch: { enabled: false } }"#,
            "apply_patch",
            json!({"input": "*** Begin Patch\n*** Add File: pwned\n+x\n*** End Patch\n"}),
            "tools.exec.applyPatch.enabled",
        ),
        // Per agent, both OpenClaw shapes.
        c(
            r#"mode: "off""#,
            r#"list: [ { id: "main", tools: { deny: ["exec"] } } ]"#,
            "",
            "exec",
            exec(),
            "agents.list[0].tools.deny",
        ),
        c(
            r#"mode: "off""#,
            r#"entries: { main: { tools: { deny: ["exec"] } } }"#,
            "",
            "exec",
            exec(),
            "agents.entries.main.tools.deny",
        ),
        c(
            r#"mode: "off""#,
            r#"list: [ { id: "main", tools: { allow: ["read"] } } ]"#,
            "",
            "exec",
            exec(),
            "agents.list[0].tools.allow",
        ),
        c(
            r#"mode: "off""#,
            r#"entries: { main: { tools: { profile: "minimal" } } }"#,
            "",
            "write",
            json!({"path": "pwned", "content": "x"}),
            "agents.entries.main.tools.profile",
        ),
        c(
            r#"mode: "off""#,
            r#"list: [ { id: "main", tools: { exec: { security: "deny" } } } ]"#,
            "",
            "exec",
            exec(),
            "agents.list[0].tools.exec.security",
        ),
        c(
            r#"mode: "off""#,
            r#"entries: { main: { tools: { exec: { security: "deny" } } } }"#,
            "",
            "exec",
            exec(),
            "agents.entries.main.tools.exec.security",
        ),
        // The sandbox tool policy, global and per agent (both shapes).
        c(
            r#"mode: "all""#,
            "",
            r#"sandbox: { tools: { deny: ["exec"] } }"#,
            "exec",
            exec(),
            "tools.sandbox.tools.deny",
        ),
        c(
            r#"mode: "all""#,
            r#"list: [ { id: "main", tools: { sandbox: { tools: { deny: ["exec"] } } } } ]"#,
            "",
            "exec",
            exec(),
            "agents.list[0].tools.sandbox.tools.deny",
        ),
        c(
            r#"mode: "all""#,
            r#"entries: { main: { tools: { sandbox: { tools: { allow: ["read"] } } } } }"#,
            "",
            "exec",
            exec(),
            "agents.entries.main.tools.sandbox.tools.allow",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_restricting_key_denies_on_http_and_mcp() {
    for c in cases() {
        let extra = if c.tools.is_empty() {
            HTTP_ALL.to_string()
        } else {
            format!("tools: {{ {} }}, {HTTP_ALL}", c.tools)
        };
        let r = start(c.sandbox, c.agents, &extra).await;
        let what = format!("{} under {}", c.tool, c.setting);

        // HTTP: 404 like OpenClaw's "Tool not available", the setting named.
        let (s, v) = invoke(r.addr, json!({"tool": c.tool, "args": c.args})).await;
        assert_eq!(s, 404, "{what}: {v}");
        assert_eq!(v["error"]["code"], "TOOL_DENIED", "{what}: {v}");
        assert_eq!(v["error"]["type"], "not_found", "{what}: {v}");
        assert_eq!(v["error"]["details"]["setting"], c.setting, "{what}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(c.setting),
            "{what}: {v}"
        );

        // MCP: not listed; a call is a tool error naming the setting.
        let client = mcp(r.addr).await;
        let tools = client.list_all_tools().await.unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert!(!names.contains(&c.tool), "{what}: listed {names:?}");
        let mut p = CallToolRequestParams::new(c.tool);
        p.arguments = Some(obj(c.args.clone()));
        let res = client.call_tool(p).await.unwrap();
        assert_eq!(res.is_error, Some(true), "{what}");
        let sc = res.structured_content.unwrap();
        assert_eq!(sc["error"]["code"], "TOOL_DENIED", "{what}: {sc}");
        assert_eq!(sc["error"]["details"]["setting"], c.setting, "{what}: {sc}");
        assert_eq!(sc["error"]["details"]["surface"], "mcp", "{what}: {sc}");
        client.cancel().await.unwrap();

        // Nothing ran anywhere.
        assert!(!r.ws.join("pwned").exists(), "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surface_defaults_and_surface_keys() {
    // Out of the box: /tools/invoke serves neither exec nor the file tools; MCP does.
    let r = start(r#"mode: "off""#, "", "").await;
    for (tool, args) in [
        ("exec", json!({"command": "touch pwned"})),
        ("write", json!({"path": "pwned", "content": "x"})),
        ("read", json!({"path": "AGENTS.md"})),
        ("ls", json!({})),
    ] {
        let (s, v) = invoke(r.addr, json!({"tool": tool, "args": args})).await;
        assert_eq!(s, 404, "{tool}: {v}");
        assert_eq!(v["error"]["code"], "TOOL_DENIED");
        assert_eq!(v["error"]["details"]["setting"], "gateway.tools.allow");
        assert!(
            v["error"]["hint"]
                .as_str()
                .unwrap()
                .contains("gateway.tools.allow"),
            "{v}"
        );
    }
    assert!(!r.ws.join("pwned").exists());
    let (s, v) = invoke(
        r.addr,
        json!({"tool": "message", "args": {"target": "user:me", "message": "hello"}}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let client = mcp(r.addr).await;
    let names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    for t in [
        "read",
        "write",
        "edit",
        "apply_patch",
        "ls",
        "exec",
        "message",
    ] {
        assert!(names.iter().any(|n| n == t), "MCP serves {t}: {names:?}");
    }
    client.cancel().await.unwrap();

    // gateway.tools.allow re-allows, gateway.tools.deny denies, on HTTP only.
    let r = start(
        r#"mode: "off""#,
        "",
        r#"gateway: { tools: { allow: ["exec"], deny: ["message"] } }"#,
    )
    .await;
    let (s, v) = invoke(
        r.addr,
        json!({"tool": "exec", "args": {"command": "echo hi"}}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["result"]["details"]["stdout"], "hi\n");
    let (s, v) = invoke(
        r.addr,
        json!({"tool": "write", "args": {"path": "x", "content": "x"}}),
    )
    .await;
    assert_eq!(
        (s, v["error"]["details"]["setting"].clone()),
        (404, json!("gateway.tools.allow"))
    );
    let (s, v) = invoke(
        r.addr,
        json!({"tool": "message", "args": {"target": "user:me", "message": "x"}}),
    )
    .await;
    assert_eq!(s, 404, "{v}");
    assert_eq!(v["error"]["details"]["setting"], "gateway.tools.deny");
    let client = mcp(r.addr).await;
    let mut p = CallToolRequestParams::new("message");
    p.arguments = Some(obj(json!({"target": "user:me", "message": "over mcp"})));
    let res = client.call_tool(p).await.unwrap();
    assert_ne!(
        res.is_error,
        Some(true),
        "gateway.tools.deny is HTTP's only"
    );
    client.cancel().await.unwrap();

    // gateway.mcp.tools.deny is MCP's.
    let r = start(
        r#"mode: "off""#,
        "",
        r#"gateway: { mcp: { tools: { deny: ["exec"] } }, tools: { allow: ["exec"] } }"#,
    )
    .await;
    let client = mcp(r.addr).await;
    let names: Vec<String> = client
        .list_all_tools()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name.to_string())
        .collect();
    assert!(!names.iter().any(|n| n == "exec"), "{names:?}");
    let mut p = CallToolRequestParams::new("exec");
    p.arguments = Some(obj(json!({"command": "touch pwned"})));
    let res = client.call_tool(p).await.unwrap();
    let sc = res.structured_content.unwrap();
    assert_eq!(sc["error"]["details"]["setting"], "gateway.mcp.tools.deny");
    client.cancel().await.unwrap();
    assert!(!r.ws.join("pwned").exists());
    let (s, _) = invoke(r.addr, json!({"tool": "exec", "args": {"command": "true"}})).await;
    assert_eq!(s, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_arguments_are_refused_on_every_surface() {
    let r = start(r#"mode: "off""#, "", HTTP_ALL).await;
    let (s, v) = invoke(
        r.addr,
        json!({"tool": "write", "args": {"path": "a.txt", "content": "x", "mode": "0777"}}),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error"]["code"], "BAD_REQUEST");
    assert_eq!(v["error"]["details"]["argument"], "mode");
    assert!(!r.ws.join("a.txt").exists());
    // OpenClaw's spellings are arguments too.
    let (s, v) = invoke(
        r.addr,
        json!({"tool": "write", "args": {"file_path": "b.txt", "content": "x"}}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let client = mcp(r.addr).await;
    let mut p = CallToolRequestParams::new("exec");
    p.arguments = Some(obj(json!({"command": "touch pwned", "elevated": true})));
    let res = client.call_tool(p).await.unwrap();
    assert_eq!(res.is_error, Some(true));
    let sc = res.structured_content.unwrap();
    assert_eq!(sc["error"]["code"], "BAD_REQUEST", "{sc}");
    assert_eq!(sc["error"]["details"]["argument"], "elevated");
    client.cancel().await.unwrap();
    assert!(!r.ws.join("pwned").exists());
}

/// A client written from OpenClaw's documentation of `POST /tools/invoke` (request: `tool`,
/// `action`, `args`, `sessionKey` — `"main"` for the main session — and `dryRun`; the
/// `x-openclaw-message-channel` and `x-openclaw-account-id` headers; responses `200 {ok:
/// true, result}`, `404` "tool not available", `400 {ok: false, error: {type, message}}`),
/// reading results the way OpenClaw's tools return them (`content[].text`, `details`).
mod openclaw_client {
    use super::*;

    struct Client {
        base: String,
        token: String,
        channel: Option<String>,
    }

    enum Outcome {
        Ok { text: String, details: Value },
        NotAvailable(String),
        Failed { kind: String, message: String },
    }

    impl Client {
        async fn invoke(&self, tool: &str, action: Option<&str>, args: Value) -> Outcome {
            let mut body =
                json!({"tool": tool, "args": args, "sessionKey": "main", "dryRun": false});
            if let Some(a) = action {
                body["action"] = json!(a);
            }
            let mut req = reqwest::Client::new()
                .post(format!("{}/tools/invoke", self.base))
                .header("Authorization", format!("Bearer {}", self.token))
                .header("Content-Type", "application/json")
                .header("x-openclaw-account-id", "default");
            if let Some(c) = &self.channel {
                req = req.header("x-openclaw-message-channel", c);
            }
            let res = req.body(body.to_string()).send().await.unwrap();
            let status = res.status().as_u16();
            let json: Value = res.json().await.unwrap();
            match status {
                200 => {
                    assert_eq!(json["ok"], true);
                    let result = &json["result"];
                    let text = result["content"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .filter(|c| c["type"] == "text")
                        .map(|c| c["text"].as_str().unwrap().to_string())
                        .collect::<Vec<_>>()
                        .join("\n");
                    Outcome::Ok {
                        text,
                        details: result["details"].clone(),
                    }
                }
                404 => Outcome::NotAvailable(json["error"]["message"].as_str().unwrap().into()),
                _ => {
                    assert_eq!(json["ok"], false);
                    Outcome::Failed {
                        kind: json["error"]["type"].as_str().unwrap().into(),
                        message: json["error"]["message"].as_str().unwrap().into(),
                    }
                }
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_openclaw_client_works_unchanged() {
        // A channel OpenClaw knows and this carapace does not configure: only a hint, so a
        // tool that sends nothing still works.
        let r = start(r#"mode: "non-main""#, "", "").await;
        std::fs::write(r.ws.join("notes.txt"), "hi").unwrap();
        let client = Client {
            base: format!("http://{}", r.addr),
            token: TOKEN.into(),
            channel: Some("slack".into()),
        };
        // A tool OpenClaw serves over HTTP: the action goes into the args of tools with one.
        match client
            .invoke(
                "message",
                Some("send"),
                json!({"target": "user:alice", "message": "from an OpenClaw client"}),
            )
            .await
        {
            Outcome::Ok { text, details } => {
                let parsed: Value = serde_json::from_str(&text).unwrap();
                assert_eq!(parsed, details);
                assert_eq!(details["channel"], "inbox", "{details}");
            }
            _ => panic!("message must be served"),
        }
        let delivered: Vec<_> = std::fs::read_dir(r.inbox.join("user-alice"))
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(delivered.len(), 1);
        // `sessionKey: "main"` is the default agent's main session: not sandboxed under
        // non-main (media_save ran on the host's view of the workspace).
        match client
            .invoke("media_save", None, json!({"path": "notes.txt"}))
            .await
        {
            Outcome::Ok { details, .. } => assert_eq!(details["bytes"], 2, "{details}"),
            Outcome::NotAvailable(m) | Outcome::Failed { message: m, .. } => panic!("{m}"),
        }
        // What OpenClaw does not serve over HTTP by default is "not available".
        match client.invoke("exec", None, json!({"command": "id"})).await {
            Outcome::NotAvailable(m) => assert!(m.contains("exec"), "{m}"),
            _ => panic!("exec must not be served"),
        }
        // A tool error is a failure with a message (and OpenClaw's error type).
        match client
            .invoke(
                "message",
                Some("send"),
                json!({"target": "nobody", "message": "x"}),
            )
            .await
        {
            Outcome::Failed { kind, message } => {
                assert_eq!(kind, "invalid_request");
                assert!(!message.is_empty());
            }
            _ => panic!("a bad target is a failure"),
        }
        // OpenClaw's other spelling of the tool name.
        let (s, v) = invoke(
            r.addr,
            json!({"name": "media_save", "args": {"path": "notes.txt"}, "sessionKey": "main"}),
        )
        .await;
        assert_eq!(s, 200, "{v}");
    }
}
