//! A gateway over the real tools (carapace-tools as the backend) on a loopback port, for the
//! policy and idempotency tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;

use carapace_gateway::auth::{Token, TokenSource};
use carapace_gateway::mcp::HttpMcp;
use carapace_gateway::{Gateway, Limits};
use carapace_policy::{Config, LoadEnv};
use rmcp::ServiceExt as _;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::Value;

pub const TOKEN: &str = "policy-test-token";

pub struct Running {
    pub addr: SocketAddr,
    pub ws: PathBuf,
    pub inbox: PathBuf,
    pub gw: Gateway,
    _dir: tempfile::TempDir,
}

/// A gateway over the real tools with a config of `agents` (keys inside `agents`, besides the
/// defaults) and `extra` (other top-level keys).
pub async fn start(sandbox: &str, agents: &str, extra: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&ws).unwrap();
    let text = format!(
        r#"{{ agents: {{ defaults: {{ workspace: "{}", sandbox: {{ workspaceRoot: "{}", {sandbox} }} }}, {agents} }},
             media: {{ dir: "{}" }}, channels: {{ inbox: {{ dir: "{}" }} }}, {extra} }}"#,
        ws.display(),
        dir.path().join("sandboxes").display(),
        dir.path().join("media").display(),
        inbox.display(),
    );
    let var = |_: &str| None;
    let config = Config::parse(
        &text,
        "test.json5",
        &LoadEnv {
            var: &var,
            home: "/nonexistent-home",
            state_dir: dir.path().join("state"),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let backend = carapace_gateway::tools_backend::tools_factory()(&config).unwrap();
    let gw = Gateway::new(
        backend,
        Some(Token::new(TOKEN.into(), TokenSource::Config)),
        Limits::from_config(&config),
        None,
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
        ws,
        inbox,
        gw,
        _dir: dir,
    }
}

pub async fn invoke(addr: SocketAddr, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/tools/invoke"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap())
}

pub async fn mcp(addr: SocketAddr) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    let transport = StreamableHttpClientTransport::with_client(
        reqwest013::Client::new(),
        StreamableHttpClientTransportConfig::with_uri(format!("http://{addr}/mcp"))
            .auth_header(TOKEN),
    );
    ().serve(transport).await.unwrap()
}

pub fn obj(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}
