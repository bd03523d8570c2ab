//! The HTTP surface against a stub backend, in-process on a loopback port: auth, envelopes and
//! statuses on every path (bad JSON, unknown tool and route, oversize body, panic, timeout),
//! request ids, metrics, audit lines, MCP over HTTP with rmcp's client, and concurrency.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use carapace_gateway::audit::AuditLog;
use carapace_gateway::auth::{Token, TokenSource};
use carapace_gateway::mcp::HttpMcp;
use carapace_gateway::{Gateway, Limits, ToolBackend, ToolCall, ToolSpec};
use carapace_policy::tools_policy::{Effect, Section};
use carapace_policy::{ErrorCode, ErrorEnvelope};
use futures_util::future::BoxFuture;
use serde_json::{Value, json};

const TOKEN: &str = "test-token-123";

struct Stub;

impl ToolBackend for Stub {
    fn specs(&self) -> Vec<ToolSpec> {
        ["echo", "boom", "slow", "write", "refuse"]
            .iter()
            .map(|n| {
                let effects: &[Effect] = if *n == "write" {
                    &[Effect::WritesWorkspace]
                } else {
                    &[Effect::ReadsWorkspace]
                };
                ToolSpec::new(
                    n,
                    format!("stub {n}"),
                    json!({"type": "object", "properties": {"path": {"type": "string"}}}),
                )
                .with_meta(Section::Other, &[], effects)
            })
            .collect()
    }

    fn invoke(
        &self,
        call: ToolCall,
        origin: carapace_gateway::Origin,
    ) -> BoxFuture<'static, Result<Value, ErrorEnvelope>> {
        Box::pin(async move {
            match call.tool.as_str() {
                "echo" => Ok(json!({"args": call.args, "action": call.action, "session": call.session_key, "agent": call.agent_id, "channel": call.channel, "channelHint": origin.channel_hint, "surface": origin.surface})),
                "boom" => panic!("stub exploded"),
                "slow" => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    Ok(json!({}))
                }
                "write" => Ok(json!({"path": call.args["path"], "bytes": 3, "mode": "0644"})),
                "refuse" => Err(ErrorEnvelope::new(
                    ErrorCode::OutboundMediaPermsTooRestrictive,
                    "File /workspace/a.png has mode 0600 and cannot be sent over an outbound channel.",
                )
                .with_detail("mode", "0600")),
                _ => unreachable!(),
            }
        })
    }

    fn sandboxes_alive(&self) -> Option<u64> {
        Some(3)
    }
}

struct Running {
    addr: SocketAddr,
    gw: Gateway,
    _dir: tempfile::TempDir,
}

async fn start(limits: Limits) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditLog::open(dir.path(), 1 << 20, 2).unwrap();
    let gw = Gateway::new(
        Arc::new(Stub),
        Some(Token::new(TOKEN.into(), TokenSource::Config)),
        limits,
        Some(audit),
    )
    .unwrap();
    let bound = carapace_gateway::server::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = bound.addr;
    let app = carapace_gateway::server::router(gw.clone(), Some(HttpMcp::new(gw.clone(), true)));
    tokio::spawn(carapace_gateway::server::serve(
        bound,
        gw.clone(),
        app,
        std::future::pending(),
    ));
    Running {
        addr,
        gw,
        _dir: dir,
    }
}

fn limits() -> Limits {
    Limits {
        max_body_bytes: 4096,
        request_timeout: Duration::from_millis(500),
        max_connections: 64,
        header_timeout: Duration::from_secs(15),
        body_timeout: Duration::from_millis(500),
    }
}

async fn post(
    addr: SocketAddr,
    auth: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}/tools/invoke"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let v = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("not JSON (status {status}): {text:?}"));
    (status, headers, v)
}

fn bearer() -> Option<&'static str> {
    Some("Bearer test-token-123")
}

fn assert_envelope(v: &Value, code: &str) {
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    let rid = v["requestId"].as_str().expect("requestId");
    assert_eq!(v["error"]["details"]["requestId"], rid);
}

#[tokio::test]
async fn success_is_openclaw_shaped() {
    let r = start(limits()).await;
    let (s, h, v) = post(
        r.addr,
        bearer(),
        r#"{"tool":"echo","action":"json","args":{"a":1},"sessionKey":"agent:main:x","agentId":"main","channel":"inbox"}"#,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ok"], true);
    // OpenClaw's result shape: the text in content, carapace's structured result in details.
    let d = &v["result"]["details"];
    assert_eq!(
        v["result"]["content"],
        json!([{"type": "text", "text": serde_json::to_string_pretty(d).unwrap()}])
    );
    // The action is the call's; the registry merges it into the args of tools that take one.
    assert_eq!(d["args"], json!({"a": 1}));
    assert_eq!(d["action"], "json");
    assert_eq!(d["session"], "agent:main:x");
    assert_eq!(d["channel"], "inbox");
    assert_eq!(d["surface"], "http");
    assert!(h.get("x-request-id").is_some());
    // Headers fill in what the body leaves out; the body wins.
    let v: Value = reqwest::Client::new()
        .post(format!("http://{}/tools/invoke", r.addr))
        .header("authorization", "Bearer test-token-123")
        .header("x-carapace-session", "agent:main:hdr")
        .header("x-openclaw-message-channel", "telegram")
        .body(r#"{"tool":"echo","args":{}}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The channel header is a hint (the backend uses it only when it names a configured
    // channel), never the session's explicit channel.
    assert_eq!(v["result"]["details"]["session"], "agent:main:hdr");
    assert_eq!(v["result"]["details"]["channel"], Value::Null);
    assert_eq!(v["result"]["details"]["channelHint"], "telegram");
}

#[tokio::test]
async fn auth_failures_are_401_envelopes() {
    let r = start(limits()).await;
    let body = r#"{"tool":"echo","args":{}}"#;
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic dGVzdA=="),
        Some("Bearer test-token-1234"),
    ] {
        let (s, h, v) = post(r.addr, auth, body).await;
        assert_eq!(s, 401, "{auth:?}");
        assert_envelope(&v, "UNAUTHORIZED");
        assert!(h.get("www-authenticate").is_some());
    }
    // Metrics are behind the token too; healthz is not.
    let c = reqwest::Client::new();
    let m = c
        .get(format!("http://{}/metrics", r.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(m.status(), 401);
    let h = c
        .get(format!("http://{}/healthz", r.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(h.status(), 200);
    assert_eq!(h.json::<Value>().await.unwrap()["ok"], true);
}

#[tokio::test]
async fn request_errors_map_to_statuses() {
    let r = start(limits()).await;
    let (s, _, v) = post(r.addr, bearer(), "{not json").await;
    assert_eq!(s, 400);
    assert_envelope(&v, "BAD_REQUEST");
    let (s, _, v) = post(r.addr, bearer(), r#"{"args":{}}"#).await;
    assert_eq!(s, 400);
    assert_envelope(&v, "BAD_REQUEST");
    let (s, _, v) = post(r.addr, bearer(), r#"{"tool":"nope","args":{}}"#).await;
    assert_eq!(s, 404);
    assert_envelope(&v, "NOT_FOUND");
    assert!(v["error"]["hint"].as_str().unwrap().contains("echo"));
    let big = format!(
        r#"{{"tool":"echo","args":{{"x":"{}"}}}}"#,
        "a".repeat(10_000)
    );
    let (s, _, v) = post(r.addr, bearer(), big).await;
    assert_eq!(s, 413);
    assert_envelope(&v, "TOO_LARGE");
    assert_eq!(v["error"]["details"]["limit"], 4096);
    let (s, _, v) = post(r.addr, bearer(), r#"{"tool":"refuse","args":{}}"#).await;
    assert_eq!(s, 403);
    assert_envelope(&v, "OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE");
    assert_eq!(v["error"]["details"]["mode"], "0600");
}

#[tokio::test]
async fn oversize_chunked_body_is_413() {
    let r = start(limits()).await;
    let chunks: Vec<Result<String, std::io::Error>> =
        (0..10).map(|_| Ok("a".repeat(1000))).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let (s, _, v) = post(r.addr, bearer(), body).await;
    assert_eq!(s, 413);
    assert_envelope(&v, "TOO_LARGE");
}

#[tokio::test]
async fn panic_is_internal_500_with_json_and_request_id() {
    let r = start(limits()).await;
    let resp = reqwest::Client::new()
        .post(format!("http://{}/tools/invoke", r.addr))
        .header("authorization", "Bearer test-token-123")
        .header("x-request-id", "my-req-42")
        .body(r#"{"tool":"boom","args":{}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    assert_eq!(resp.headers()["x-request-id"], "my-req-42");
    let v: Value = resp.json().await.unwrap();
    assert_envelope(&v, "INTERNAL");
    assert_eq!(v["requestId"], "my-req-42");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stub exploded")
    );
    // The gateway is still serving.
    let (s, _, _) = post(r.addr, bearer(), r#"{"tool":"echo","args":{}}"#).await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn timeout_is_504() {
    let r = start(limits()).await;
    let (s, _, v) = post(r.addr, bearer(), r#"{"tool":"slow","args":{}}"#).await;
    assert_eq!(s, 504);
    assert_envelope(&v, "TIMEOUT");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_envelopes() {
    let r = start(limits()).await;
    let c = reqwest::Client::new();
    let resp = c
        .get(format!("http://{}/nope", r.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_envelope(&resp.json::<Value>().await.unwrap(), "NOT_FOUND");
    let resp = c
        .get(format!("http://{}/tools/invoke", r.addr))
        .header("authorization", "Bearer test-token-123")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert!(resp.headers().get("allow").is_some());
    assert_envelope(&resp.json::<Value>().await.unwrap(), "BAD_REQUEST");
}

#[tokio::test]
async fn metrics_and_audit() {
    let r = start(limits()).await;
    post(r.addr, bearer(), r#"{"tool":"echo","args":{}}"#).await;
    post(
        r.addr,
        bearer(),
        r#"{"tool":"write","args":{"path":"a.txt"},"sessionKey":"agent:main:s1"}"#,
    )
    .await;
    post(r.addr, bearer(), r#"{"tool":"refuse","args":{}}"#).await;
    let text = reqwest::Client::new()
        .get(format!("http://{}/metrics", r.addr))
        .header("authorization", "Bearer test-token-123")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"carapace_tool_calls_total{outcome="ok",tool="echo"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"carapace_tool_calls_total{outcome="OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE",tool="refuse"} 1"#));
    assert!(text.contains("carapace_tool_call_duration_seconds_bucket{tool=\"echo\""));
    assert!(text.contains("carapace_sandboxes_alive 3"));
    assert!(text.contains("carapace_http_response_bytes_total"));
    let audit = std::fs::read_to_string(r.gw.audit_log().unwrap().path()).unwrap();
    let lines: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "only the write is audited: {audit}");
    assert_eq!(lines[0]["tool"], "write");
    assert_eq!(lines[0]["session"], "agent:main:s1");
    assert_eq!(lines[0]["paths"], json!(["a.txt"]));
    assert_eq!(lines[0]["bytes"], 3);
    assert_eq!(lines[0]["outcome"], "ok");
    assert_eq!(lines[0]["transport"], "http");
    assert!(lines[0]["requestId"].as_str().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_sessions_do_not_cross_talk() {
    let r = start(limits()).await;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let addr = r.addr;
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            for j in 0..10 {
                let session = format!("agent:main:s{i}");
                let body =
                    json!({"tool": "echo", "args": {"n": j, "who": i}, "sessionKey": session});
                let v: Value = client
                    .post(format!("http://{addr}/tools/invoke"))
                    .header("authorization", "Bearer test-token-123")
                    .json(&body)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                assert_eq!(v["result"]["details"]["session"], session);
                assert_eq!(v["result"]["details"]["args"]["who"], i);
                assert_eq!(v["result"]["details"]["args"]["n"], j);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

mod mcp_http {
    use super::*;
    use rmcp::ServiceExt as _;
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    fn args(v: Value) -> serde_json::Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[tokio::test]
    async fn session_over_http() {
        let r = start(limits()).await;
        let mut headers = std::collections::HashMap::new();
        headers.insert(
            http::HeaderName::from_static("x-carapace-session"),
            http::HeaderValue::from_static("agent:main:from-header"),
        );
        let transport = StreamableHttpClientTransport::with_client(
            reqwest013::Client::new(),
            StreamableHttpClientTransportConfig::with_uri(format!("http://{}/mcp", r.addr))
                .auth_header(TOKEN)
                .custom_headers(headers),
        );
        let client = ().serve(transport).await.unwrap();
        let tools = client.list_all_tools().await.unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        assert!(
            names.contains(&"echo") && names.contains(&"write"),
            "{names:?}"
        );
        assert_eq!(tools[0].input_schema["type"], "object");

        let mut p = CallToolRequestParams::new("echo");
        p.arguments = Some(args(json!({"x": 1})));
        let res = client.call_tool(p).await.unwrap();
        assert_ne!(res.is_error, Some(true));
        let sc = res.structured_content.unwrap();
        assert_eq!(sc["session"], "agent:main:from-header");
        assert_eq!(sc["args"], json!({"x": 1}));

        let mut p = CallToolRequestParams::new("echo");
        p.arguments = Some(args(json!({"x": 2, "sessionKey": "agent:main:from-args"})));
        let sc = client
            .call_tool(p)
            .await
            .unwrap()
            .structured_content
            .unwrap();
        assert_eq!(sc["session"], "agent:main:from-args");

        let p = CallToolRequestParams::new("refuse");
        let res = client.call_tool(p).await.unwrap();
        assert_eq!(res.is_error, Some(true));
        let sc = res.structured_content.unwrap();
        assert_eq!(sc["error"]["code"], "OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE");

        let p = CallToolRequestParams::new("boom");
        let res = client.call_tool(p).await.unwrap();
        assert_eq!(res.is_error, Some(true));
        assert_eq!(res.structured_content.unwrap()["error"]["code"], "INTERNAL");
        client.cancel().await.unwrap();
    }

    #[tokio::test]
    async fn mcp_without_token_is_401() {
        let r = start(limits()).await;
        let resp = reqwest::Client::new()
            .post(format!("http://{}/mcp", r.addr))
            .header("accept", "application/json, text/event-stream")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        // A static token, not OAuth: no resource_metadata for a client to discover.
        let wa = resp.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(wa, "Bearer realm=\"carapace\"");
        // What MCP clients read: a JSON-RPC error object carrying the envelope.
        let v = resp.json::<Value>().await.unwrap();
        assert_eq!(v["jsonrpc"], "2.0", "{v}");
        assert_eq!(v["error"]["code"], -32000, "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("UNAUTHORIZED: "),
            "{v}"
        );
        assert_envelope(&v["error"]["data"], "UNAUTHORIZED");
        // A wrong token says so in RFC 6750's terms.
        let resp = reqwest::Client::new()
            .post(format!("http://{}/mcp", r.addr))
            .header("accept", "application/json, text/event-stream")
            .header("authorization", "Bearer nope")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
        let wa = resp.headers()["www-authenticate"].to_str().unwrap();
        assert!(wa.contains("error=\"invalid_token\""), "{wa}");
        assert!(!wa.contains("resource_metadata"), "{wa}");
    }
}

mod reload {
    use super::*;
    use carapace_gateway::reload::{ConfigLoader, ReloadOutcome, reload_once};
    use carapace_policy::Config;

    #[tokio::test]
    async fn validate_then_swap() {
        let r = start(limits()).await;
        let state = r._dir.path().to_path_buf();
        let ok_factory: carapace_gateway::BackendFactory =
            Arc::new(|_c: &Config| Ok(Arc::new(Stub) as Arc<dyn ToolBackend>));
        let bad_factory: carapace_gateway::BackendFactory = Arc::new(|_c: &Config| {
            Err(ErrorEnvelope::new(
                ErrorCode::SandboxBackendUnavailable,
                "no backend",
            ))
        });
        let bad_loader: ConfigLoader =
            Arc::new(|| Err(ErrorEnvelope::new(ErrorCode::ConfigInvalid, "broken edit")));
        let st = state.clone();
        let good_loader: ConfigLoader = Arc::new(move || {
            let mut c = Config::defaults(st.clone());
            c.file.gateway.max_body_bytes = Some(123);
            c.file.gateway.auth.token = Some(carapace_policy::config::Secret::literal("new-token"));
            Ok(c)
        });
        // A config that does not load changes nothing.
        assert!(
            matches!(reload_once(&r.gw, &bad_loader, &ok_factory), ReloadOutcome::Rejected(e) if e.code == ErrorCode::ConfigInvalid)
        );
        // Nor does one whose backend cannot be built.
        assert!(
            matches!(reload_once(&r.gw, &good_loader, &bad_factory), ReloadOutcome::Rejected(e) if e.code == ErrorCode::SandboxBackendUnavailable)
        );
        assert_eq!(r.gw.limits().max_body_bytes, 4096);
        assert!(r.gw.check_auth(Some("Bearer test-token-123")).is_ok());
        // A good one swaps limits and token together.
        assert!(matches!(
            reload_once(&r.gw, &good_loader, &ok_factory),
            ReloadOutcome::Applied(_)
        ));
        assert_eq!(r.gw.limits().max_body_bytes, 123);
        assert!(r.gw.check_auth(Some("Bearer new-token")).is_ok());
        assert!(r.gw.check_auth(Some("Bearer test-token-123")).is_err());
        let text = r.gw.metrics().render();
        assert!(
            text.contains(r#"carapace_config_reloads_total{result="rejected"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"carapace_config_reloads_total{result="applied"} 1"#),
            "{text}"
        );
    }
}
