//! The gateway's agent: one [`AgentRuntime`] (its tools are the gateway's own call pipeline on
//! the `agent` surface, [`GatewayTools`]) and the inbound service over it, built from the
//! config in force and rebuilt when a reload applies a new one.
//!
//! [`AgentServices`] lives in the gateway's shared state ([`Gateway::agent`]); the HTTP
//! surfaces (`/v1/chat/completions`, the webhook) and the CLI read it from there.
//!
//! With no model configured the services still start: every receiving channel runs, and a
//! message is answered with the typed `MODEL_NOT_CONFIGURED` failure naming
//! `agents.defaults.model.primary` (see docs/inbound.md), never with silence.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use carapace_agent::{AgentRuntime, RuntimeOptions};
use carapace_inbound::{InboundHandle, InboundService, ReplyRoutes};
use carapace_policy::{CarapaceError as _, Config, ErrorEnvelope};

use crate::agent_observer::AgentObserver;
use crate::agent_tools::GatewayTools;
use crate::gateway::Gateway;

/// How long inbound work (a turn, a reply) may take to finish when the gateway stops or a
/// reload replaces the services.
pub const INBOUND_GRACE: Duration = Duration::from_secs(10);

/// The agent runtime and the inbound service of one config.
pub struct AgentServices {
    /// The config they were built from.
    pub config: Arc<Config>,
    /// The agent runtime (sessions, transcripts, model calls).
    pub runtime: AgentRuntime,
    /// The conversation service (channels in, replies out, the webhook).
    pub inbound: InboundService,
    handle: Mutex<Option<InboundHandle>>,
}

impl std::fmt::Debug for AgentServices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentServices").finish_non_exhaustive()
    }
}

impl AgentServices {
    /// Builds the runtime and the inbound service for `config` over `gw`'s backend, without
    /// starting any channel. `None` when the backend has no tool context (a test stub).
    pub fn build(
        gw: &Gateway,
        config: Arc<Config>,
        opts: RuntimeOptions,
    ) -> Option<Arc<AgentServices>> {
        let tool_ctx = gw.backend().tool_context()?;
        let observer = Arc::new(AgentObserver::new(
            gw.metrics().clone(),
            &config.state_dir,
            gw.audit_log().is_some(),
        ));
        let routes = ReplyRoutes::new();
        let runtime = AgentRuntime::builder(
            config.clone(),
            config.models.clone(),
            routes.wrap(Arc::new(GatewayTools::new(gw))),
        )
        .options(opts)
        .observer(observer.clone())
        .build();
        let inbound = InboundService::new(config.clone(), runtime.clone(), tool_ctx, routes)
            .observer(observer);
        Some(Arc::new(AgentServices {
            config,
            runtime,
            inbound,
            handle: Mutex::new(None),
        }))
    }

    /// Starts a source for every configured channel that can receive.
    pub fn start_inbound(&self) -> Result<(), ErrorEnvelope> {
        let handle = self.inbound.start().map_err(|e| e.to_envelope())?;
        *self.handle.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(())
    }

    /// Stops the channels; in-flight messages get [`INBOUND_GRACE`] to finish.
    pub async fn stop_inbound(&self) {
        let handle = self.handle.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(h) = handle {
            h.shutdown(INBOUND_GRACE).await;
        }
    }

    /// [`stop_inbound`](Self::stop_inbound), then cancels the runtime's remaining turns (the
    /// gateway is stopping).
    pub async fn shutdown(&self) {
        self.stop_inbound().await;
        self.runtime.shutdown();
    }
}

/// Builds, starts and puts in force the services of `config`. The channels of the ones they
/// replace are stopped first (so two sources never poll the same channel); their runtime is
/// left to finish the turns it runs (an HTTP chat completion in flight keeps its answer) and
/// is dropped with its last user. A gateway whose backend has no tool context runs no agent.
pub async fn install(
    gw: &Gateway,
    config: Arc<Config>,
    opts: RuntimeOptions,
) -> Result<(), ErrorEnvelope> {
    if let Some(old) = gw.set_agent(None) {
        old.stop_inbound().await;
    }
    let Some(services) = AgentServices::build(gw, config, opts) else {
        return Ok(());
    };
    services.start_inbound()?;
    gw.set_agent(Some(services));
    Ok(())
}
