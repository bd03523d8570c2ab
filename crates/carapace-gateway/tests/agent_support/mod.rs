//! A whole gateway with carapace's agent on a loopback port: the real tools, the audit log,
//! the agent runtime over the gateway's call pipeline, the inbound service, and a scripted
//! model server as the configured model.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use carapace_agent::{RetryPolicy, RuntimeOptions};
use carapace_gateway::audit::{AuditLog, DEFAULT_KEEP, DEFAULT_MAX_BYTES};
use carapace_gateway::auth::{Token, TokenSource};
use carapace_gateway::{Gateway, Limits};
use carapace_policy::{Config, LoadEnv};
use carapace_testkit::model_server::{Api, ModelServer};
use serde_json::Value;

pub const TOKEN: &str = "agent-test-gateway-token";
pub const KEY: &str = "sk-test-0123456789-secret";
pub const HOOK_TOKEN: &str = "hook-test-token-42";

pub struct Running {
    pub addr: SocketAddr,
    pub ws: PathBuf,
    pub sbx: PathBuf,
    pub inbox: PathBuf,
    pub media: PathBuf,
    pub state: PathBuf,
    pub gw: Gateway,
    _dir: tempfile::TempDir,
}

/// The model provider entry for a scripted server.
pub fn provider(srv: &ModelServer, api: Api) -> String {
    let api = match api {
        Api::OpenAi => "openai-completions",
        Api::Anthropic => "anthropic-messages",
    };
    format!(
        r#"models: {{ mode: "replace", providers: {{ p: {{ baseUrl: "{}", apiKey: "${{TEST_KEY}}", api: "{api}",
             models: [{{ id: "m", contextWindow: 64000, maxTokens: 1024 }}] }} }} }},"#,
        srv.base_url()
    )
}

/// A gateway whose config has `sandbox` (inside `agents.defaults.sandbox`), model `p/m` from
/// `models` (see [`provider`]; empty: no model), the chat completions endpoint on, the hooks
/// on, and `extra` top-level keys.
pub async fn start(sandbox: &str, models: &str, extra: &str) -> Running {
    start_with(sandbox, models, extra, true).await
}

/// [`start`], with `POST /v1/chat/completions` on or left at its default (off).
pub async fn start_with(sandbox: &str, models: &str, extra: &str, chat: bool) -> Running {
    start_full(sandbox, models, extra, chat, "").await
}

/// [`start_with`], with more channels (`telegram: {…},`) beside the inbox.
pub async fn start_full(
    sandbox: &str,
    models: &str,
    extra: &str,
    chat: bool,
    channels: &str,
) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let inbox = dir.path().join("inbox");
    let media = dir.path().join("media");
    let sbx = dir.path().join("sandboxes");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&ws).unwrap();
    let model = if models.is_empty() {
        ""
    } else {
        r#"model: "p/m","#
    };
    let chat = if chat {
        "gateway: { http: { endpoints: { chatCompletions: { enabled: true } } } },"
    } else {
        ""
    };
    let text = format!(
        r#"{{ agents: {{ defaults: {{ {model} workspace: "{}", sandbox: {{ workspaceRoot: "{}", {sandbox} }} }} }},
             {models}
             media: {{ dir: "{}" }}, channels: {{ {channels} inbox: {{ dir: "{}" }} }},
             {chat}
             hooks: {{ enabled: true, token: "{HOOK_TOKEN}" }},
             {extra} }}"#,
        ws.display(),
        sbx.display(),
        media.display(),
        inbox.display(),
    );
    let var = |n: &str| (n == "TEST_KEY").then(|| KEY.to_string());
    let config = Config::parse(
        &text,
        "test.json5",
        &LoadEnv {
            var: &var,
            home: "/nonexistent-home",
            state_dir: state.clone(),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let backend = carapace_gateway::tools_backend::tools_factory()(&config).unwrap();
    let audit = AuditLog::open(&state, DEFAULT_MAX_BYTES, DEFAULT_KEEP).unwrap();
    let gw = Gateway::new(
        backend,
        Some(Token::new(TOKEN.into(), TokenSource::Config)),
        Limits::from_config(&config),
        Some(audit),
    )
    .unwrap();
    let opts = RuntimeOptions {
        retry: RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(5),
        },
        durable: false,
        ..RuntimeOptions::default()
    };
    carapace_gateway::agent::install(&gw, std::sync::Arc::new(config), opts)
        .await
        .unwrap();
    let bound = carapace_gateway::server::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = bound.addr;
    let app = carapace_gateway::server::router(gw.clone(), None);
    tokio::spawn(carapace_gateway::server::serve(
        bound,
        gw.clone(),
        app,
        std::future::pending(),
    ));
    Running {
        addr,
        ws,
        sbx,
        inbox,
        media,
        state,
        gw,
        _dir: dir,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}

/// `POST /v1/chat/completions` with the gateway token: (status, JSON body).
pub async fn chat(addr: SocketAddr, body: Value) -> (u16, Value) {
    let r = client()
        .post(format!("http://{addr}/v1/chat/completions"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap())
}

/// A streamed `POST /v1/chat/completions`: (status, content type, the `data:` payloads).
pub async fn chat_stream(addr: SocketAddr, body: Value) -> (u16, String, Vec<String>) {
    let r = client()
        .post(format!("http://{addr}/v1/chat/completions"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = r.text().await.unwrap();
    let data = text
        .split("\n\n")
        .filter_map(|ev| ev.strip_prefix("data: "))
        .map(str::to_string)
        .collect();
    (s, ct, data)
}

/// Every file under `dir`, sorted.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The audit log's text.
pub fn audit_text(r: &Running) -> String {
    std::fs::read_to_string(r.state.join("audit/audit.jsonl")).unwrap_or_default()
}

/// Waits (generously) until `cond` holds.
pub async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
