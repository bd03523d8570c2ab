//! The real backend: carapace-tools (whose dispatch applies the tool policy of the call's
//! surface), with one sandbox manager kept across config reloads.

use std::sync::Arc;

use carapace_policy::tools_policy::Surface;
use carapace_policy::{Config, ErrorEnvelope, ResolveInput};
use carapace_sandbox::SandboxManager;
use carapace_tools::{StagingSweeper, ToolContext};
use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::call::{BackendFactory, Origin, ToolBackend, ToolCall, ToolSpec};

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

impl ToolBackend for ToolsBackend {
    fn specs(&self) -> Vec<ToolSpec> {
        carapace_tools::tool_specs()
    }

    fn list(
        &self,
        surface: Surface,
        input: &ResolveInput<'_>,
    ) -> Result<Vec<ToolSpec>, ErrorEnvelope> {
        carapace_tools::registry::list(&self.ctx, surface, input).map_err(|e| e.0)
    }

    fn invoke(
        &self,
        call: ToolCall,
        origin: Origin,
    ) -> BoxFuture<'static, Result<Value, ErrorEnvelope>> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            carapace_tools::invoke_on(&ctx, &origin, call)
                .await
                .map_err(|e| e.0)
        })
    }
    fn refusal(
        &self,
        surface: Surface,
        input: &ResolveInput<'_>,
        tool: &str,
    ) -> Option<ErrorEnvelope> {
        let st = carapace_tools::registry::SurfaceTools::new(self.ctx.clone(), surface);
        st.unavailable(
            input.session_key.unwrap_or("agent:main:main"),
            input.agent.unwrap_or("main"),
            input.channel,
            tool,
        )
        .map(|e| e.0)
    }

    fn tool_context(&self) -> Option<ToolContext> {
        Some(self.ctx.clone())
    }

    fn shutdown(&self) -> BoxFuture<'static, ()> {
        let ctx = self.ctx.clone();
        Box::pin(async move { ctx.shutdown().await })
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

#[cfg(test)]
mod tests {
    /// The audit log's list of audited tools is exactly what the registry's effects say.
    #[test]
    fn audited_tools_follow_the_effects() {
        let mut from_effects: Vec<String> = carapace_tools::tool_specs()
            .into_iter()
            .filter(|s| s.meta.audited())
            .map(|s| s.name)
            .collect();
        from_effects.sort();
        let mut listed: Vec<String> = crate::audit::AUDITED_TOOLS
            .iter()
            .map(|s| s.to_string())
            .collect();
        listed.sort();
        assert_eq!(from_effects, listed);
    }
}
