//! The agent runtime's tools: a [`ToolExecutor`] over the gateway's own call pipeline.
//!
//! The model's tool calls take the path of `POST /tools/invoke` ([`Gateway::call`]: tool
//! lookup, the request budget, panics caught, metrics, the audit line) with the `agent`
//! surface of the tool policy, so the backend (carapace-tools' `registry::SurfaceTools` in
//! the binary) runs them in the session's sandbox. What the model is offered is the policy's
//! list for that session; a call to anything else is the policy's refusal.

use std::sync::Weak;

use carapace_agent::{SessionInfo, ToolExecutor, ToolFuture};
use carapace_policy::tools_policy::Surface;
use carapace_policy::{ErrorCode, ErrorEnvelope, ResolveInput};
use carapace_tools::{ToolCall, ToolSpec};

use crate::gateway::{CallRequest, Gateway, Transport};

/// The gateway's tools as the agent runtime sees them. Holds the gateway weakly: the gateway
/// owns the runtime that owns this.
#[derive(Clone)]
pub struct GatewayTools {
    gw: Weak<crate::gateway::Inner>,
}

impl std::fmt::Debug for GatewayTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatewayTools")
    }
}

impl GatewayTools {
    /// The tools of `gw` on the agent surface.
    pub fn new(gw: &Gateway) -> GatewayTools {
        GatewayTools { gw: gw.downgrade() }
    }

    fn gateway(&self) -> Option<Gateway> {
        Gateway::upgrade(&self.gw)
    }
}

fn input(s: &SessionInfo) -> ResolveInput<'_> {
    ResolveInput {
        agent: Some(&s.agent_id),
        channel: s.channel.as_deref(),
        session_key: Some(&s.session_key),
    }
}

impl ToolExecutor for GatewayTools {
    fn tools(&self, session: &SessionInfo) -> Vec<ToolSpec> {
        // A session whose policy cannot be resolved is offered nothing (nothing that could
        // not run).
        self.gateway()
            .and_then(|gw| gw.list(Surface::Agent, &input(session)).ok())
            .unwrap_or_default()
    }

    fn invoke<'a>(&'a self, call: ToolCall) -> ToolFuture<'a> {
        Box::pin(async move {
            let Some(gw) = self.gateway() else {
                return Err(ErrorEnvelope::new(
                    ErrorCode::TurnCancelled,
                    "the gateway is shutting down",
                ));
            };
            let rid = format!("agent-{}", uuid::Uuid::new_v4());
            let mut req = CallRequest::new(&rid, Transport::Agent);
            req.channel_hint = call.channel.clone();
            gw.call(call, &req).await
        })
    }

    fn unavailable(&self, session: &SessionInfo, tool: &str) -> Option<ErrorEnvelope> {
        self.gateway()?
            .refusal(Surface::Agent, &input(session), tool)
    }
}

/// The agent surface of carapace-tools in-process, without a gateway (the CLI's `agent` and
/// `chat` when they run the turn themselves): the same registry dispatch and policy decision
/// as the gateway's backend, minus the gateway's request budget and audit log.
#[derive(Debug, Clone)]
pub struct SurfaceExecutor(pub carapace_tools::registry::SurfaceTools);

impl SurfaceExecutor {
    /// The agent surface over `ctx`.
    pub fn agent(ctx: carapace_tools::ToolContext) -> SurfaceExecutor {
        SurfaceExecutor(carapace_tools::registry::SurfaceTools::new(
            ctx,
            Surface::Agent,
        ))
    }
}

impl ToolExecutor for SurfaceExecutor {
    fn tools(&self, s: &SessionInfo) -> Vec<ToolSpec> {
        self.0
            .tools(&s.session_key, &s.agent_id, s.channel.as_deref())
    }

    fn invoke<'a>(&'a self, call: ToolCall) -> ToolFuture<'a> {
        Box::pin(async move { self.0.invoke(call).await.map_err(|e| e.0) })
    }

    fn unavailable(&self, s: &SessionInfo, tool: &str) -> Option<ErrorEnvelope> {
        self.0
            .unavailable(&s.session_key, &s.agent_id, s.channel.as_deref(), tool)
            .map(|e| e.0)
    }
}
