//! Shared fixtures of the agent tests: a state dir and workspace in a temp dir, a real
//! `ToolContext` behind the `ToolExecutor` seam, the scripted model servers, a record of model
//! calls.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use carapace_agent::{
    AgentRuntime, Event, ModelCallRecord, Observer, RetryPolicy, RuntimeOptions, SessionInfo,
    ToolExecutor, ToolFuture,
};
use carapace_policy::models::ModelsSettings;
use carapace_policy::{CarapaceError, Config, LoadEnv};
use carapace_testkit::model_server::{Api, ModelServer};
use carapace_tools::{ToolCall, ToolContext, ToolSpec, invoke, tool_specs};
use serde_json::{Value, json};

pub const KEY: &str = "sk-test-0123456789-secret";

/// The tools over `carapace_tools::invoke` with a real context: what the gateway will do,
/// minus policy and audit.
pub struct DirectTools {
    pub ctx: ToolContext,
    pub only: Option<Vec<&'static str>>,
}

impl ToolExecutor for DirectTools {
    fn tools(&self, _: &SessionInfo) -> Vec<ToolSpec> {
        tool_specs()
            .into_iter()
            .filter(|s| {
                self.only
                    .as_ref()
                    .is_none_or(|o| o.contains(&s.name.as_str()))
            })
            .collect()
    }
    fn invoke<'a>(&'a self, call: ToolCall) -> ToolFuture<'a> {
        Box::pin(async move { invoke(&self.ctx, call).await.map_err(|e| e.0) })
    }
}

/// Collects model-call records.
#[derive(Default)]
pub struct Records(pub Mutex<Vec<ModelCallRecord>>);

impl Observer for Records {
    fn model_call(&self, r: &ModelCallRecord) {
        self.0.lock().unwrap().push(r.clone());
    }
}

impl Records {
    pub fn all(&self) -> Vec<ModelCallRecord> {
        self.0.lock().unwrap().clone()
    }
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
    pub ws: PathBuf,
    pub sbx: PathBuf,
    pub inbox: PathBuf,
    pub media: PathBuf,
    pub config: Arc<Config>,
}

/// A config whose sandbox settings are `sandbox` (JSON5 object body) and whose other
/// top-level keys are `extra`. The workspace has an AGENTS.md.
pub fn env(sandbox: &str, extra: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let ws = dir.path().join("ws");
    let sbx = dir.path().join("sandboxes");
    let inbox = dir.path().join("inbox");
    let media = dir.path().join("media");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("AGENTS.md"), "Always answer in English.\n").unwrap();
    let text = format!(
        r#"{{ agents: {{ defaults: {{ workspace: "{}", sandbox: {{ workspaceRoot: "{}", {sandbox} }} }} }},
             media: {{ dir: "{}" }}, channels: {{ inbox: {{ dir: "{}" }} }}, {extra} }}"#,
        ws.display(),
        sbx.display(),
        media.display(),
        inbox.display(),
    );
    let var = |_: &str| None;
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
        dir,
        state,
        ws,
        sbx,
        inbox,
        media,
        config: Arc::new(config),
    }
}

/// Model settings: provider `p` (and more, from `extra_providers`) with model `m`.
pub fn models(providers: Value, agents_defaults: Value) -> Arc<ModelsSettings> {
    let var = |n: &str| (n == "TEST_KEY").then(|| KEY.to_string());
    Arc::new(
        ModelsSettings::from_config_value(
            &json!({"models": {"mode": "replace", "providers": providers},
                    "agents": {"defaults": agents_defaults}}),
            &var,
        )
        .unwrap_or_else(|e| panic!("{e}")),
    )
}

/// One provider entry for a scripted server.
pub fn provider(srv: &ModelServer, api: Api) -> Value {
    provider_at(&srv.base_url(), api)
}

pub fn provider_at(base_url: &str, api: Api) -> Value {
    json!({
        "baseUrl": base_url,
        "apiKey": "${TEST_KEY}",
        "api": match api { Api::OpenAi => "openai-completions", Api::Anthropic => "anthropic-messages" },
        "models": [{"id": "m", "contextWindow": 64000, "maxTokens": 1024, "input": ["text", "image"]}],
    })
}

/// Fast retries for tests (the policy is the same, the delays are short).
pub fn fast_options() -> RuntimeOptions {
    RuntimeOptions {
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_retry_after: Duration::from_secs(5),
        },
        durable: false,
        ..RuntimeOptions::default()
    }
}

pub fn tools(env: &Env) -> Arc<DirectTools> {
    Arc::new(DirectTools {
        ctx: ToolContext::new(Arc::clone(&env.config)),
        only: None,
    })
}

pub fn runtime(
    env: &Env,
    models: Arc<ModelsSettings>,
    opts: RuntimeOptions,
) -> (AgentRuntime, Arc<Records>) {
    let records = Arc::new(Records::default());
    let rt = AgentRuntime::builder(Arc::clone(&env.config), models, tools(env))
        .options(opts)
        .observer(records.clone())
        .build();
    (rt, records)
}

/// The sessions directory of agent `main`.
pub fn sessions_dir(env: &Env) -> PathBuf {
    env.state.join("agents/main/sessions")
}

/// The events of the only (or the current) transcript of `key`.
pub fn events(rt: &AgentRuntime, key: &str) -> Vec<Event> {
    rt.sessions().show(key, None).unwrap().events
}

/// Event type names, in order.
pub fn kinds(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            serde_json::to_value(e).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Every file under `dir`, recursively.
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

/// Waits (bounded) until `f` is true.
pub async fn wait_for(what: &str, f: impl Fn() -> bool) {
    for _ in 0..3000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Asserts the key appears in no file under `dir`.
pub fn assert_no_key_under(dir: &Path) {
    for f in files(dir) {
        let bytes = std::fs::read(&f).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(KEY),
            "the API key leaked into {}",
            f.display()
        );
    }
}
