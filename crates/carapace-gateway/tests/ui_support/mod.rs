//! Fixtures of the web page tests: a gateway with the page mounted, a real AgentRuntime over a
//! scripted model server behind `RuntimeChat`, a headless Chromium over CDP, a PNG maker.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use carapace_agent::{
    AgentRuntime, RetryPolicy, RuntimeOptions, SessionInfo, ToolExecutor, ToolFuture,
};
use carapace_gateway::auth::{Token, TokenSource};
use carapace_gateway::ui::{ChatBackend, RuntimeChat, UiOptions};
use carapace_gateway::{Gateway, Limits};
use carapace_policy::models::ModelsSettings;
use carapace_policy::{Config, LoadEnv};
use carapace_testkit::model_server::{Api, ModelServer, Step};
use carapace_tools::{ToolCall, ToolContext, ToolSpec, invoke, tool_specs};
use serde_json::json;

pub const TOKEN: &str = "ui-test-token-0123456789";
pub const MODEL_KEY: &str = "sk-ui-test-key";
pub const WEB_SESSION: &str = "agent:main:web:direct:owner";

/// The tools over carapace-tools with a real context (what the gateway's executor does,
/// minus policy and audit).
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

pub struct Running {
    pub addr: SocketAddr,
    pub base: String,
    pub dir: tempfile::TempDir,
    pub state: PathBuf,
    pub ws: PathBuf,
    pub media: PathBuf,
    pub config: Arc<Config>,
    pub gw: Gateway,
    pub model: Option<ModelServer>,
}

fn config_in(dir: &Path) -> Config {
    let ws = dir.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(ws.join("AGENTS.md"), "Answer briefly.\n").unwrap();
    let text = format!(
        r#"{{ agents: {{ defaults: {{ workspace: "{}", sandbox: {{ mode: "all", backend: "bwrap", workspaceAccess: "rw", workspaceRoot: "{}" }} }} }},
             media: {{ dir: "{}" }}, channels: {{ inbox: {{ dir: "{}" }} }} }}"#,
        ws.display(),
        dir.join("sandboxes").display(),
        dir.join("media").display(),
        dir.join("inbox").display(),
    );
    let var = |_: &str| None;
    Config::parse(
        &text,
        "test.json5",
        &LoadEnv {
            var: &var,
            home: "/nonexistent-home",
            state_dir: dir.join("state"),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// A runtime over `srv` (provider `p`, model `m`).
pub fn runtime(config: &Arc<Config>, srv: &ModelServer) -> AgentRuntime {
    let var = |n: &str| (n == "UI_TEST_KEY").then(|| MODEL_KEY.to_string());
    let models = ModelsSettings::from_config_value(
        &json!({"models": {"mode": "replace", "providers": {"p": {
                    "baseUrl": srv.base_url(), "apiKey": "${UI_TEST_KEY}", "api": "openai-completions",
                    "models": [{"id": "m", "contextWindow": 64000, "maxTokens": 1024, "input": ["text", "image"]}]}}},
                "agents": {"defaults": {"model": {"primary": "p/m"}}}}),
        &var,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tools = Arc::new(DirectTools {
        ctx: ToolContext::new(Arc::clone(config)),
    });
    AgentRuntime::builder(Arc::clone(config), Arc::new(models), tools)
        .options(RuntimeOptions {
            retry: RetryPolicy {
                max_attempts: 2,
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(50),
                max_retry_after: Duration::from_secs(5),
            },
            durable: false,
            ..RuntimeOptions::default()
        })
        .build()
}

/// A gateway with the page mounted. `script`: the scripted model's answers (`None`: no model
/// configured, the chat backend is absent).
pub async fn start(script: Option<Vec<Step>>) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let config = Arc::new(config_in(dir.path()));
    let (model, chat): (Option<ModelServer>, Option<Arc<dyn ChatBackend>>) = match script {
        Some(steps) => {
            let srv = ModelServer::builder(Api::OpenAi, MODEL_KEY)
                .script(steps)
                .chunk_delay(Duration::from_millis(2))
                .start()
                .await;
            let rt = runtime(&config, &srv);
            (
                Some(srv),
                Some(Arc::new(RuntimeChat::new(rt, Some("p/m".into())))),
            )
        }
        None => (None, None),
    };
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
    let app = carapace_gateway::server::router(gw.clone(), None).merge(
        carapace_gateway::ui::router(gw.clone(), UiOptions::new(Arc::clone(&config), chat)),
    );
    tokio::spawn(carapace_gateway::server::serve(
        bound,
        gw.clone(),
        app,
        std::future::pending(),
    ));
    Running {
        addr,
        base: format!("http://{addr}"),
        state: dir.path().join("state"),
        ws: dir.path().join("ws"),
        media: dir.path().join("media"),
        dir,
        config,
        gw,
        model,
    }
}

/// Width and height of the test PNG.
pub const PNG_W: u32 = 160;
/// Height of the test PNG.
pub const PNG_H: u32 = 96;

/// A 160×96 PNG: left half red, right half blue, a green 16×16 square at the top left.
pub fn test_png() -> Vec<u8> {
    carapace_testkit::png::png_rgba(PNG_W, PNG_H, test_png_pixel)
}

/// The pixel at (x, y) of the test PNG.
pub fn test_png_pixel(x: u32, y: u32) -> [u8; 4] {
    if x < 16 && y < 16 {
        [0, 200, 0, 255]
    } else if x < PNG_W / 2 {
        [255, 0, 0, 255]
    } else {
        [0, 0, 255, 255]
    }
}

/// The Chromium binary: `CARAPACE_TEST_CHROMIUM` or `CARAPACE_CHROMIUM`, else `chromium` on
/// PATH. Missing: the test is skipped, or fails under `CARAPACE_TEST_STRICT=1`.
pub fn chromium() -> Option<PathBuf> {
    for var in ["CARAPACE_TEST_CHROMIUM", "CARAPACE_CHROMIUM"] {
        if let Some(p) = std::env::var_os(var) {
            let p = PathBuf::from(p);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|n| {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|d| d.join(n))
                    .find(|c| c.is_file())
            })
        });
    if carapace_testkit::require(
        "chromium",
        found.is_some(),
        "apt-get install -y chromium, or set CARAPACE_TEST_CHROMIUM",
    ) {
        found
    } else {
        None
    }
}

/// A headless Chromium over CDP.
pub struct Chrome {
    pub browser: chromiumoxide::Browser,
    handler: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Chrome {
    pub async fn launch(bin: &Path) -> Chrome {
        use futures::StreamExt as _;
        let profile = tempfile::tempdir().unwrap();
        let cfg = chromiumoxide::BrowserConfig::builder()
            .chrome_executable(bin)
            .no_sandbox()
            .new_headless_mode()
            .user_data_dir(profile.path())
            .window_size(1280, 860)
            .viewport(chromiumoxide::handler::viewport::Viewport {
                width: 1280,
                height: 860,
                device_scale_factor: Some(1.0),
                ..Default::default()
            })
            .launch_timeout(Duration::from_secs(60))
            .request_timeout(Duration::from_secs(60))
            .args([
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--force-color-profile=srgb",
                "--force-device-scale-factor=1",
                "--hide-scrollbars",
                "--proxy-server=direct://",
                "--proxy-bypass-list=*",
            ])
            .build()
            .unwrap();
        let (browser, mut handler) = chromiumoxide::Browser::launch(cfg).await.unwrap();
        let handler = tokio::spawn(async move { while handler.next().await.is_some() {} });
        Chrome {
            browser,
            handler,
            _profile: profile,
        }
    }

    pub async fn close(mut self) {
        let _ = self.browser.close().await;
        let _ = self.browser.wait().await;
        self.handler.abort();
    }
}

async fn try_eval(page: &chromiumoxide::Page, js: &str) -> Result<String, String> {
    let r = page
        .evaluate(format!("(async () => String(await ({js})))()"))
        .await
        .map_err(|e| e.to_string())?;
    r.into_value::<String>().map_err(|e| e.to_string())
}

/// Evaluates `js` (an expression, awaited when it is a promise) and returns its string value.
pub async fn eval(page: &chromiumoxide::Page, js: &str) -> String {
    try_eval(page, js)
        .await
        .unwrap_or_else(|e| panic!("evaluating {js}: {e}"))
}

/// Waits (bounded, generous) until `js` evaluates to "true" (a page that is navigating counts
/// as not yet).
pub async fn wait_js(page: &chromiumoxide::Page, what: &str, js: &str) {
    for _ in 0..400 {
        if try_eval(page, js).await.as_deref() == Ok("true") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let state = try_eval(
        page,
        "location.href + ' | ' + document.body.innerText.slice(0, 300)",
    )
    .await;
    panic!("timed out waiting for {what} ({js}); the page: {state:?}");
}

/// Writes a screenshot of `page` as `docs/img/ui-<name>.png` when `CARAPACE_UI_SCREENSHOTS` names
/// a directory, and checks it is a PNG of the viewport.
pub async fn screenshot(page: &chromiumoxide::Page, name: &str) {
    use chromiumoxide::page::ScreenshotParams;
    let png = page
        .screenshot(ScreenshotParams::builder().build())
        .await
        .unwrap();
    assert_eq!(&png[1..4], b"PNG", "the screenshot of {name} is a PNG");
    if let Some(dir) = std::env::var_os("CARAPACE_UI_SCREENSHOTS") {
        let p = PathBuf::from(dir).join(format!("ui-{name}.png"));
        std::fs::write(&p, &png).unwrap();
    }
}
