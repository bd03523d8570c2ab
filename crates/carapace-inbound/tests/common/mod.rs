//! Fixtures of the conversation tests: a state dir and workspace in a temp dir, a config with
//! the channels under test, the scripted model servers, the tools over `carapace_tools::invoke`
//! (what the gateway does, minus its policy and audit), and the service.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use carapace_agent::{
    AgentRuntime, RetryPolicy, RuntimeOptions, SessionInfo, ToolExecutor, ToolFuture,
};
use carapace_inbound::{InboundOptions, InboundService, ReplyRoutes};
use carapace_policy::models::ModelsSettings;
use carapace_policy::{CarapaceError, Config, LoadEnv};
use carapace_testkit::model_server::{Api, ModelServer};
use carapace_tools::{ToolCall, ToolContext, ToolSpec, invoke, tool_specs};
use serde_json::{Value, json};

pub const KEY: &str = "sk-test-inbound-secret";

pub struct DirectTools {
    pub ctx: ToolContext,
}

impl ToolExecutor for DirectTools {
    fn tools(&self, _: &SessionInfo) -> Vec<ToolSpec> {
        tool_specs()
    }
    fn invoke<'a>(&'a self, call: ToolCall) -> ToolFuture<'a> {
        Box::pin(async move { invoke(&self.ctx, call).await.map_err(|e| e.0) })
    }
}

pub struct Env {
    pub dir: Option<tempfile::TempDir>,
    pub root: PathBuf,
    pub state: PathBuf,
    pub ws: PathBuf,
    pub sbx: PathBuf,
    pub media: PathBuf,
    pub inbox: PathBuf,
    pub config: Arc<Config>,
}

/// A config: `sandbox` is the body of agents.defaults.sandbox (besides workspaceRoot),
/// `extra` more top-level keys; `vars` resolves `${…}` references.
pub fn env_with(sandbox: &str, extra: &str, vars: &[(&str, &str)]) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut e = env_at(dir.path(), sandbox, extra, vars);
    e.dir = Some(dir);
    e
}

/// The same layout under an existing directory (a child process re-opening a parent's state).
pub fn env_at(root: &Path, sandbox: &str, extra: &str, vars: &[(&str, &str)]) -> Env {
    let state = root.join("state");
    let ws = root.join("ws");
    let sbx = root.join("sandboxes");
    let media = root.join("media");
    let inbox = root.join("inbox");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("AGENTS.md"), "Answer briefly.\n").unwrap();
    let text = format!(
        r#"{{ agents: {{ defaults: {{ workspace: "{}", sandbox: {{ workspaceRoot: "{}", {sandbox} }} }} }},
             media: {{ dir: "{}" }}, {extra} }}"#,
        ws.display(),
        sbx.display(),
        media.display(),
    );
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .chain([("INBOX".to_string(), inbox.display().to_string())])
        .collect();
    let var = move |n: &str| vars.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let config = Config::parse(
        &text,
        "test.json5",
        &LoadEnv {
            var: &var,
            home: "/nonexistent-home",
            state_dir: state.clone(),
        },
    )
    .unwrap_or_else(|e| panic!("{}", e.to_envelope().message));
    Env {
        dir: None,
        root: root.to_path_buf(),
        state,
        ws,
        sbx,
        media,
        inbox,
        config: Arc::new(config),
    }
}

pub fn models(srv: &ModelServer) -> Arc<ModelsSettings> {
    models_at(&srv.base_url())
}

pub fn models_at(base_url: &str) -> Arc<ModelsSettings> {
    let var = |n: &str| (n == "TEST_KEY").then(|| KEY.to_string());
    Arc::new(
        ModelsSettings::from_config_value(
            &json!({"models": {"mode": "replace", "providers": {"p": {
                "baseUrl": base_url, "apiKey": "${TEST_KEY}", "api": "openai-completions",
                "models": [{"id": "m", "contextWindow": 64000, "maxTokens": 1024, "input": ["text", "image"]}]}}},
                    "agents": {"defaults": {"model": "p/m"}}}),
            &var,
        )
        .unwrap_or_else(|e| panic!("{e}")),
    )
}

pub fn fast_runtime_options() -> RuntimeOptions {
    RuntimeOptions {
        retry: RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(5),
        },
        durable: false,
        stream: false,
        ..RuntimeOptions::default()
    }
}

pub fn fast_inbound_options() -> InboundOptions {
    InboundOptions {
        reply_retry_base: Duration::from_millis(50),
        restart_base: Duration::from_millis(200),
        ..InboundOptions::default()
    }
}

/// The wiring the gateway does: routes, runtime over the wrapped tools, the service.
pub fn service(
    env: &Env,
    models: Arc<ModelsSettings>,
) -> (InboundService, AgentRuntime, ToolContext) {
    let ctx = ToolContext::new(Arc::clone(&env.config));
    let routes = ReplyRoutes::new();
    let tools: Arc<dyn ToolExecutor> = Arc::new(DirectTools { ctx: ctx.clone() });
    let rt = AgentRuntime::builder(Arc::clone(&env.config), models, routes.wrap(tools))
        .options(fast_runtime_options())
        .build();
    let svc = InboundService::with_options(
        Arc::clone(&env.config),
        rt.clone(),
        ctx.clone(),
        routes,
        fast_inbound_options(),
    );
    (svc, rt, ctx)
}

pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

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

/// Waits (bounded, generous for a loaded machine) until `f` is true.
pub async fn until(what: &str, f: impl Fn() -> bool) {
    for _ in 0..1200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The text after `marker` up to the next whitespace or `)` in `s`.
pub fn word_after(s: &str, marker: &str) -> Option<String> {
    let i = s.find(marker)? + marker.len();
    Some(
        s[i..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != ')' && *c != ']')
            .collect(),
    )
}

pub fn api() -> Api {
    Api::OpenAi
}

pub fn json_of(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or(Value::Null)
}
