//! `browser`: `action` `screenshot` (`url`, `width?`, `height?`, `fullPage?`, `selector?`,
//! `waitMs?`) → PNG, or `pdf` (`url`) → PDF, rendered by a real headless Chromium
//! (carapace-browser) and saved in the media store (`media.fileMode`, default 0644, whatever
//! the umask): `path`, `mime`, `bytes`, `width`, `height`, `mode`. The path is what `message`
//! sends as it is.
//!
//! `file:` URLs name files of the session's `/workspace` (container or host path), served to
//! Chromium through carapace-fs; loopback and private addresses need
//! `browser.allowPrivateNetwork`. One Chromium is shared by every call with the same `browser`
//! settings: [`Browsers`], owned by the [`ToolContext`] and stopped by its
//! [`ToolContext::shutdown`].

use carapace_policy::tools_policy::{Effect, Section};
use std::sync::{Arc, Mutex};

use carapace_browser::{
    BrowserArgs, BrowserEnv, BrowserService, BrowserSettings, CaptureRequest, SavedCapture,
    WorkspaceScope, save_capture,
};
use carapace_fs::Root;
use carapace_policy::ErrorCode;
use carapace_policy::mounts::Access;
use serde_json::{Value, json};

use crate::{ToolCall, ToolContext, ToolError, ToolSpec};

pub(crate) fn spec() -> ToolSpec {
    ToolSpec::new(
        "browser",
        "Render a web page in headless Chromium and save it to the media store (mode 0644, ready to send with `message`). action `screenshot` (default): `url`, optional `width`/`height` (viewport px, default 1280x800), `fullPage`, `selector` (capture one element), `waitMs`. action `pdf`: `url`. URLs: http(s), or file:///workspace/... for workspace files; private/loopback addresses are refused unless browser.allowPrivateNetwork. Returns the media path, mime, bytes, width and height (PDF: page size in points).",
        json!({
            "type": "object",
            "properties": {
                "action": {"type": "string", "enum": ["screenshot", "pdf"]},
                "url": {"type": "string"},
                "width": {"type": "integer", "minimum": 1, "maximum": carapace_browser::MAX_DIMENSION},
                "height": {"type": "integer", "minimum": 1, "maximum": carapace_browser::MAX_DIMENSION},
                "fullPage": {"type": "boolean"},
                "selector": {"type": "string"},
                "waitMs": {"type": "integer", "minimum": 0, "maximum": carapace_browser::MAX_WAIT_MS}
            },
            "required": ["url"]
        }),
    )
    .with_meta(Section::Ui, &[], &[Effect::Network, Effect::WritesMedia])
    .with_aliases(&[])
}

/// The browser services of one tool runtime: one service (one Chromium) per distinct `browser`
/// settings, started by the first call that needs it, all stopped by [`Browsers::shutdown`]
/// (or, best effort, when the last handle is dropped).
#[derive(Debug)]
pub struct Browsers {
    env: BrowserEnv,
    services: Mutex<Vec<Arc<BrowserService>>>,
}

impl Browsers {
    /// No service yet; Chromium is found on `env.path` and keeps its files in `env.temp_dir`.
    pub fn new(env: BrowserEnv) -> Browsers {
        Browsers {
            env,
            services: Mutex::new(Vec::new()),
        }
    }

    /// The service for `settings`, created on first use.
    pub fn service(&self, settings: BrowserSettings) -> Arc<BrowserService> {
        let mut all = self
            .services
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = all.iter().find(|s| *s.settings() == settings) {
            return s.clone();
        }
        let s = Arc::new(BrowserService::with_env(settings, self.env.clone()));
        all.push(s.clone());
        s
    }

    /// Stops every Chromium and removes its profile and temp files; waits until they are gone.
    pub async fn shutdown(&self) {
        let all: Vec<Arc<BrowserService>> = std::mem::take(
            &mut *self
                .services
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for s in all {
            s.shutdown().await;
        }
    }
}

fn result(s: SavedCapture) -> Value {
    json!({
        "path": s.path,
        "mime": s.mime,
        "bytes": s.bytes,
        "width": s.width,
        "height": s.height,
        "mode": s.mode,
    })
}

pub(crate) async fn run(ctx: &ToolContext, call: &ToolCall) -> Result<Value, ToolError> {
    // Every string argument of the browser is a name (URL, selector, action): no NUL bytes.
    if let Some(obj) = call.args.as_object() {
        for (k, v) in obj {
            if let Value::String(s) = v {
                crate::args::no_nul("browser", k, s)?;
            }
        }
    }
    let args: BrowserArgs = match &call.args {
        Value::Null => BrowserArgs::default(),
        v => serde_json::from_value(v.clone())
            .map_err(|e| ToolError::bad_request(format!("browser: {e}")))?,
    };
    let req = CaptureRequest::from_args(call.action.as_deref(), args)?;
    let svc = ctx
        .browsers
        .service(BrowserSettings::from_config(&ctx.config));

    // Only file URLs need the session's workspace (and its directories prepared).
    let workspace = if req
        .url
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("file:")
    {
        let session = ctx.session(call)?;
        let r = session.resolve("/workspace", Access::Read)?;
        Some(WorkspaceScope::new(
            Root::open(&r.mount.host_path)?,
            Some(r.mount.container_path.clone().into()),
        ))
    } else {
        None
    };
    let policy = svc.policy(workspace);
    let capture = svc.capture(&req, &policy).await?;

    let store = ctx.media_store()?;
    let saved = tokio::task::spawn_blocking(move || save_capture(&store, &capture))
        .await
        .map_err(|e| ToolError::new(ErrorCode::Internal, e.to_string()))??;
    Ok(result(saved))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::sync::Arc;

    use carapace_policy::{Config, LoadEnv};

    use serde_json::json;

    use crate::{ToolCall, ToolContext, invoke};

    const PAGE: &str = "<!doctype html><body style='margin:0;background:#fff'>\
        <div style='width:300px;height:200px;background:rgb(255,0,0)'></div></body>";

    fn ctx(dir: &std::path::Path, browser: &str) -> ToolContext {
        ToolContext::new(Arc::new(config(dir, browser)))
    }

    fn config(dir: &std::path::Path, browser: &str) -> Config {
        let ws = dir.join("ws");
        std::fs::create_dir_all(&ws).unwrap();
        std::fs::write(ws.join("box.html"), PAGE).unwrap();
        let text = format!(
            r#"{{ agents: {{ defaults: {{ workspace: "{}", sandbox: {{ mode: "off" }} }} }},
                 media: {{ dir: "{}" }}, browser: {{ {browser} }} }}"#,
            ws.display(),
            dir.join("media").display()
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
        .unwrap()
    }

    fn call(action: Option<&str>, args: serde_json::Value) -> ToolCall {
        ToolCall {
            tool: "browser".into(),
            action: action.map(Into::into),
            args,
            session_key: Some("agent:main:main".into()),
            ..ToolCall::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn screenshot_of_a_workspace_page_lands_in_the_media_store() {
        if !carapace_testkit::require(
            "chromium",
            carapace_testkit::have_program("chromium"),
            "apt-get install -y chromium",
        ) {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let ctx = ctx(tmp.path(), "timeoutSeconds: 20");
        let v = invoke(
            &ctx,
            call(
                Some("screenshot"),
                json!({ "url": "file:///workspace/box.html", "width": 300, "height": 200 }),
            ),
        )
        .await
        .unwrap();
        assert_eq!(v["mime"], "image/png");
        assert_eq!(v["width"], 300);
        assert_eq!(v["height"], 200);
        assert_eq!(v["mode"], "0644");
        let path = std::path::PathBuf::from(v["path"].as_str().unwrap());
        assert!(path.starts_with(tmp.path().join("media")), "{path:?}");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
        assert_eq!(meta.len(), v["bytes"].as_u64().unwrap());

        let v = invoke(
            &ctx,
            call(Some("pdf"), json!({ "url": "file:///workspace/box.html" })),
        )
        .await
        .unwrap();
        assert_eq!(v["mime"], "application/pdf");
    }

    /// The injected environment decides where Chromium keeps its files, and shutdown stops it
    /// and removes all of them (profile and Chromium's own temp files).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_stops_chromium_and_leaves_the_temp_dir_empty() {
        if !carapace_testkit::require(
            "chromium",
            carapace_testkit::have_program("chromium"),
            "apt-get install -y chromium",
        ) {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let private = tmp.path().join("tmp");
        std::fs::create_dir(&private).unwrap();
        let env = carapace_sandbox::BackendEnv {
            temp_dir: private.clone(),
            ..carapace_sandbox::BackendEnv::from_process()
        };
        let ctx = ToolContext::with_env(Arc::new(config(tmp.path(), "timeoutSeconds: 30")), env);
        let v = invoke(
            &ctx,
            call(
                None,
                json!({ "url": "file:///workspace/box.html", "width": 30, "height": 20 }),
            ),
        )
        .await
        .unwrap();
        assert_eq!(v["mime"], "image/png");
        let names = || -> Vec<String> {
            std::fs::read_dir(&private)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        };
        let during = names();
        assert!(
            during.len() == 1 && during[0].starts_with("carapace-chromium-"),
            "the profile is made in the injected temp dir: {during:?}"
        );
        let svc = ctx
            .browsers
            .service(carapace_browser::BrowserSettings::from_config(&ctx.config));
        let pid = svc.chromium_pid().await.expect("chromium runs");
        ctx.shutdown().await;
        assert!(names().is_empty(), "left behind: {:?}", names());
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "chromium {pid} still runs"
        );
    }

    #[tokio::test]
    async fn refusals_and_bad_arguments_are_typed() {
        let tmp = tempfile::tempdir().unwrap();
        let ctx = ctx(tmp.path(), "");
        for (action, args, code) in [
            (
                None,
                json!({ "url": "http://127.0.0.1:1/" }),
                "NETWORK_POLICY_REFUSED",
            ),
            (
                None,
                json!({ "url": "file:///etc/passwd" }),
                "PATH_OUTSIDE_ROOT",
            ),
            (
                None,
                json!({ "url": "file:///workspace/../../etc/passwd" }),
                "PATH_OUTSIDE_ROOT",
            ),
            (None, json!({ "url": "javascript:1" }), "BAD_REQUEST"),
            (
                None,
                json!({ "url": "http://x/", "width": 0 }),
                "BAD_REQUEST",
            ),
            (
                None,
                json!({ "url": "http://x/", "bogus": 1 }),
                "BAD_REQUEST",
            ),
            (Some("click"), json!({ "url": "http://x/" }), "BAD_REQUEST"),
            (
                Some("pdf"),
                json!({ "url": "http://x/", "fullPage": true }),
                "BAD_REQUEST",
            ),
            (None, json!({}), "BAD_REQUEST"),
        ] {
            let e = invoke(&ctx, call(action, args.clone())).await.unwrap_err();
            assert_eq!(e.code().as_str(), code, "{args}: {e}");
        }
        assert!(crate::tool_specs().iter().any(|s| s.name == "browser"));
    }
}
