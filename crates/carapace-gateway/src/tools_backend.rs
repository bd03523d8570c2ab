//! The real backend: carapace-tools, with one sandbox manager kept across config reloads.

use std::sync::Arc;

use carapace_policy::Config;
use carapace_sandbox::SandboxManager;
use carapace_tools::{StagingSweeper, ToolContext};
use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::call::{BackendFactory, ToolBackend, ToolCall, ToolSpec};
use carapace_policy::ErrorEnvelope;

/// carapace-tools behind the [`ToolBackend`] seam.
#[derive(Debug, Clone)]
pub struct ToolsBackend {
    ctx: ToolContext,
}

impl ToolsBackend {
    /// A backend over `config` and a sandbox manager.
    pub fn new(config: Arc<Config>, sandboxes: Arc<SandboxManager>) -> ToolsBackend {
        ToolsBackend::with_sweeper(config, sandboxes, Arc::new(StagingSweeper::new()))
    }

    /// A backend whose staging sweeper outlives config reloads.
    pub fn with_sweeper(
        config: Arc<Config>,
        sandboxes: Arc<SandboxManager>,
        sweeper: Arc<StagingSweeper>,
    ) -> ToolsBackend {
        ToolsBackend {
            ctx: ToolContext::with_parts(config, sandboxes, sweeper),
        }
    }
}

fn to_tools_call(c: ToolCall) -> carapace_tools::ToolCall {
    carapace_tools::ToolCall {
        tool: c.tool,
        action: c.action,
        args: c.args,
        session_key: c.session_key,
        agent_id: c.agent_id,
        channel: c.channel,
    }
}

impl ToolBackend for ToolsBackend {
    fn specs(&self) -> Vec<ToolSpec> {
        carapace_tools::tool_specs()
            .into_iter()
            .map(|s| ToolSpec {
                name: s.name,
                description: s.description,
                input_schema: s.input_schema,
            })
            .collect()
    }

    fn invoke(&self, call: ToolCall) -> BoxFuture<'static, Result<Value, ErrorEnvelope>> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            carapace_tools::invoke(&ctx, to_tools_call(call))
                .await
                .map_err(|e| e.0)
        })
    }
}

/// The factory the CLI hands to [`crate::run`]: every (re)load builds a context over the new
/// config and the same sandbox manager (told to re-check its prepared directories).
///
/// At start (and for roots a reloaded config adds) every root the config names is swept of
/// the staging files of writes killed with an earlier process (`carapace_tools::sweep`).
pub fn tools_factory() -> BackendFactory {
    let sandboxes = Arc::new(SandboxManager::new());
    let sweeper = Arc::new(StagingSweeper::new());
    Arc::new(move |config: &Config| {
        sandboxes.forget(None);
        sweeper.sweep_config(config);
        let backend: Arc<dyn ToolBackend> = Arc::new(ToolsBackend::with_sweeper(
            Arc::new(config.clone()),
            sandboxes.clone(),
            sweeper.clone(),
        ));
        Ok(backend)
    })
}
