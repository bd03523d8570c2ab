//! carapace's tool layer: one registry ([`registry`]) and one dispatch
//! ([`registry::dispatch`]) over one file per tool. The CLI, HTTP `POST /tools/invoke`, MCP and
//! the agent runtime all go through it, with the tool policy of their surface applied there;
//! [`registry::list`] lists a session's tools with the same decision.
//!
//! Every path argument is an agent path (`/workspace/…`, `/agent/…`, or relative to
//! `/workspace`), mapped through the session's mount table (`carapace_policy::mounts`), then
//! opened beneath the mount's host directory with carapace-fs. So the file tools see exactly
//! what `exec` sees in the sandbox, a write to a read-only mount is `WORKSPACE_READ_ONLY`, a
//! path in no mount is `PATH_OUTSIDE_ROOT`, and a symlink planted by sandboxed code never lets a
//! host-side write escape.
//!
//! Adding a tool: one file with `spec()` (schema, section, profiles, effects) and `run()`, one
//! arm in `run`, one line in [`registry::specs`].

mod apply_patch;
mod args;
mod browser;
pub use browser::Browsers;
mod edit;
mod error;
mod exec;
mod files;
mod ls;
mod media_save;
mod message;
pub use message::split_media_lines;
mod read;
pub mod registry;
pub mod sweep;
mod write;

use std::sync::Arc;

use carapace_policy::tools_policy::Surface;
use carapace_policy::{Config, ErrorCode, ResolveInput};
use carapace_sandbox::{BackendEnv, SandboxManager, Session};
use serde_json::Value;

pub use error::ToolError;
pub use registry::{Origin, ToolCall, ToolSpec};
pub use sweep::{StagingSweeper, SweepSummary};

/// The runtime context of the tools: the configuration and the services that run them. It is
/// built once by whoever runs tools (a CLI call, the gateway on every config load), cloned
/// cheaply into every call, and stopped with [`ToolContext::shutdown`]. No tool keeps a
/// service of its own in a static: the Docker backend belongs to [`ToolContext::sandboxes`],
/// the browsers to [`ToolContext::browsers`], and both see the one injected [`BackendEnv`].
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// The loaded configuration.
    pub config: Arc<Config>,
    /// The sandbox runtime (backend selection, prepared directories, the Docker backend).
    pub sandboxes: Arc<SandboxManager>,
    /// Which roots have been swept of killed writes' staging files (see [`sweep`]).
    pub sweeper: Arc<StagingSweeper>,
    /// The headless Chromiums of the `browser` tool.
    pub browsers: Arc<Browsers>,
}

impl ToolContext {
    /// A context with a fresh sandbox manager, sweeper and browsers over the process
    /// environment (a CLI invocation).
    pub fn new(config: Arc<Config>) -> ToolContext {
        ToolContext::with_env(config, BackendEnv::from_process())
    }

    /// A context with fresh parts over an injected environment (`PATH` for bwrap and Chromium,
    /// `DOCKER_HOST`, the temp dir for Chromium's profile).
    pub fn with_env(config: Arc<Config>, env: BackendEnv) -> ToolContext {
        let browsers = Arc::new(Browsers::new(browser_env(&env)));
        ToolContext {
            config,
            sandboxes: Arc::new(SandboxManager::with_env(env)),
            sweeper: Arc::new(StagingSweeper::new()),
            browsers,
        }
    }

    /// A context over long-lived parts (the gateway keeps them across config reloads); its
    /// browsers are new and see the sandbox manager's environment.
    pub fn with_parts(
        config: Arc<Config>,
        sandboxes: Arc<SandboxManager>,
        sweeper: Arc<StagingSweeper>,
    ) -> ToolContext {
        let browsers = Arc::new(Browsers::new(browser_env(sandboxes.env())));
        ToolContext {
            config,
            sandboxes,
            sweeper,
            browsers,
        }
    }

    /// Stops what this context started: every Chromium (process group gone, profile and temp
    /// files removed) and the sandbox manager's backends. A one-shot CLI call runs it before
    /// exiting; the gateway when it stops.
    pub async fn shutdown(&self) {
        self.browsers.shutdown().await;
        self.sandboxes.shutdown();
    }

    /// The session a call runs in: policy resolved, mounts planned, directories ready, and
    /// its writable mounts swept of killed writes' staging files the first time this process
    /// opens them.
    pub fn session(&self, call: &ToolCall) -> Result<Session, ToolError> {
        let session = self.sandboxes.session(
            &self.config,
            &ResolveInput {
                agent: call.agent_id.as_deref(),
                channel: call.channel.as_deref(),
                session_key: call.session_key.as_deref(),
            },
        )?;
        for m in session.table.mounts.iter().filter(|m| m.writable) {
            self.sweeper.sweep_once(&m.host_path);
        }
        Ok(session)
    }

    /// The media store (created 0755 when missing), swept of staging files the first time.
    pub(crate) fn media_store(&self) -> Result<carapace_media::MediaStore, ToolError> {
        let store = carapace_media::MediaStore::open(carapace_media::MediaSettings::from_config(
            &self.config,
        ))?;
        self.sweeper.sweep_once(store.dir());
        Ok(store)
    }
}

/// What the browsers take from the backend environment.
fn browser_env(env: &BackendEnv) -> carapace_browser::BrowserEnv {
    carapace_browser::BrowserEnv {
        path: env.path.clone(),
        temp_dir: env.temp_dir.clone(),
    }
}

/// Runs one call in-process, as the CLI does (`carapace tool invoke`): the policy of the
/// `cli` surface applies. Surfaces with a name of their own use [`invoke_on`].
pub async fn invoke(ctx: &ToolContext, call: ToolCall) -> Result<Value, ToolError> {
    registry::dispatch(ctx, &Origin::new(Surface::Cli), call).await
}

/// Runs one call from `origin` (its surface decides which policy layer applies).
pub async fn invoke_on(
    ctx: &ToolContext,
    origin: &Origin,
    call: ToolCall,
) -> Result<Value, ToolError> {
    registry::dispatch(ctx, origin, call).await
}

/// Runs a checked call (only [`registry::dispatch`] calls this).
pub(crate) async fn run(ctx: &ToolContext, call: &ToolCall) -> Result<Value, ToolError> {
    match call.tool.as_str() {
        // The file tools do blocking filesystem work (reads, writes, hashing, directory
        // walks): they run on the blocking pool, so one slow disk or large read never stalls
        // the async workers that serve every other request.
        "read" => blocking(ctx, call, read::run).await,
        "write" => blocking(ctx, call, write::run).await,
        "edit" => blocking(ctx, call, edit::run).await,
        "apply_patch" => blocking(ctx, call, apply_patch::run).await,
        "ls" => blocking(ctx, call, ls::run).await,
        "exec" => exec::run(ctx, call).await,
        "browser" => browser::run(ctx, call).await,
        "message" => message::run(ctx, call).await,
        "media_save" => media_save::run(ctx, call).await,
        other => Err(
            ToolError::new(ErrorCode::NotFound, format!("unknown tool {other:?}"))
                .with_detail("tool", other),
        ),
    }
}

/// Runs a synchronous tool on tokio's blocking pool. A panic inside stays a panic (the
/// gateway catches it and answers `INTERNAL` with a request id); a cancelled task is `INTERNAL`.
async fn blocking(
    ctx: &ToolContext,
    call: &ToolCall,
    tool: fn(&ToolContext, &ToolCall) -> Result<Value, ToolError>,
) -> Result<Value, ToolError> {
    let (ctx, call) = (ctx.clone(), call.clone());
    match tokio::task::spawn_blocking(move || tool(&ctx, &call)).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(ToolError::new(
            ErrorCode::Internal,
            format!("the file tool task was cancelled: {e}"),
        )),
    }
}

/// Every tool this crate serves (whatever the policy says; see [`registry::list`]).
pub fn tool_specs() -> Vec<ToolSpec> {
    registry::specs().to_vec()
}
