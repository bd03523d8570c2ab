//! carapace's tool layer: one dispatch ([`invoke`]) over one file per tool. The CLI, the HTTP
//! `POST /tools/invoke` and MCP all call [`invoke`]; [`tool_specs`] describes the tools for MCP.
//!
//! Every path argument is an agent path (`/workspace/…`, `/agent/…`, or relative to
//! `/workspace`), mapped through the session's mount table (`carapace_policy::mounts`), then
//! opened beneath the mount's host directory with carapace-fs. So the file tools see exactly
//! what `exec` sees in the sandbox, a write to a read-only mount is `WORKSPACE_READ_ONLY`, a
//! path in no mount is `PATH_OUTSIDE_ROOT`, and a symlink planted by sandboxed code never lets a
//! host-side write escape.
//!
//! Adding a tool: one file with `spec()` and `run()`, one arm in [`invoke`], one line in
//! [`tool_specs`].

mod apply_patch;
mod args;
mod browser;
mod edit;
mod error;
mod exec;
mod files;
mod ls;
mod media_save;
pub mod message;
mod read;
pub mod sweep;
mod write;

use std::sync::Arc;

use carapace_policy::{Config, ErrorCode, ResolveInput};
use carapace_sandbox::{SandboxManager, Session};
use serde::Serialize;
use serde_json::Value;

pub use error::ToolError;
pub use sweep::{StagingSweeper, SweepSummary};

/// One tool call, as every surface receives it.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCall {
    /// Tool name (`read`, `exec`...).
    pub tool: String,
    /// Action, for tools that have several (`message`, `browser`).
    #[serde(default)]
    pub action: Option<String>,
    /// Arguments (a JSON object).
    #[serde(default)]
    pub args: Value,
    /// Session key (`agent:main:telegram:dm:42`).
    #[serde(default)]
    pub session_key: Option<String>,
    /// Explicit agent id (wins over the session key's).
    #[serde(default)]
    pub agent_id: Option<String>,
    /// Explicit channel id (wins over the session key's).
    #[serde(default)]
    pub channel: Option<String>,
}

/// Shared state of the tools.
#[derive(Debug, Clone)]
pub struct ToolContext {
    /// The loaded configuration.
    pub config: Arc<Config>,
    /// The sandbox runtime (backend selection, prepared directories).
    pub sandboxes: Arc<SandboxManager>,
    /// Which roots have been swept of killed writes' staging files (see [`sweep`]).
    pub sweeper: Arc<StagingSweeper>,
}

impl ToolContext {
    /// A context with a fresh sandbox manager and sweeper (a CLI invocation).
    pub fn new(config: Arc<Config>) -> ToolContext {
        ToolContext::with_parts(
            config,
            Arc::new(SandboxManager::new()),
            Arc::new(StagingSweeper::new()),
        )
    }

    /// A context over long-lived parts (the gateway keeps them across config reloads).
    pub fn with_parts(
        config: Arc<Config>,
        sandboxes: Arc<SandboxManager>,
        sweeper: Arc<StagingSweeper>,
    ) -> ToolContext {
        ToolContext {
            config,
            sandboxes,
            sweeper,
        }
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

/// A tool's name, description and JSON schema of its arguments.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec {
    /// Name.
    pub name: String,
    /// One paragraph for the model.
    pub description: String,
    /// JSON schema of `args`.
    pub input_schema: Value,
}

/// Runs one tool call. An unknown tool is `NOT_FOUND`.
pub async fn invoke(ctx: &ToolContext, call: ToolCall) -> Result<Value, ToolError> {
    match call.tool.as_str() {
        "read" => read::run(ctx, &call),
        "write" => write::run(ctx, &call),
        "edit" => edit::run(ctx, &call),
        "apply_patch" => apply_patch::run(ctx, &call),
        "ls" => ls::run(ctx, &call),
        "exec" => exec::run(ctx, &call).await,
        "browser" => browser::run(ctx, &call).await,
        "message" => message::run(ctx, &call).await,
        "media_save" => media_save::run(ctx, &call).await,
        other => Err(
            ToolError::new(ErrorCode::NotFound, format!("unknown tool {other:?}"))
                .with_hint(format!(
                    "available tools: {}",
                    tool_specs()
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
                .with_detail("tool", other),
        ),
    }
}

/// Every tool this crate serves.
pub fn tool_specs() -> Vec<ToolSpec> {
    vec![
        read::spec(),
        write::spec(),
        edit::spec(),
        apply_patch::spec(),
        ls::spec(),
        exec::spec(),
        browser::spec(),
        message::spec(),
        media_save::spec(),
    ]
}
