//! The chat of the page over the gateway's own agent: whatever `AgentServices` are in force
//! (`Gateway::agent()`), looked up per turn, so a reload that changes the model or the
//! runtime is what the next message talks to.

use tokio::sync::mpsc;

use carapace_policy::{ErrorCode, ErrorEnvelope};

use super::backend::{ChatBackend, ChatEvent, ChatTurn, ResetFuture};
use super::runtime_chat::RuntimeChat;
use crate::Gateway;

/// The agent id the page talks to (the default agent, as `carapace chat`).
const AGENT: &str = "main";

/// [`ChatBackend`] over the gateway's agent services in force.
#[derive(Clone, Debug)]
pub struct GatewayChat {
    gw: Gateway,
}

impl GatewayChat {
    /// A chat over `gw`'s agent.
    pub fn new(gw: Gateway) -> GatewayChat {
        GatewayChat { gw }
    }

    fn current(&self) -> Option<RuntimeChat> {
        let services = self.gw.agent()?;
        let model = services
            .config
            .models
            .run_settings(AGENT)
            .model
            .map(|m| m.primary.to_string())?;
        Some(RuntimeChat::new(services.runtime.clone(), Some(model)))
    }
}

fn not_configured() -> ErrorEnvelope {
    ErrorEnvelope::new(
        ErrorCode::ModelNotConfigured,
        "no model is configured for the chat",
    )
    .with_hint(format!(
        "set {} in the config (and the provider under models.providers)",
        super::MODEL_SETTING
    ))
}

impl ChatBackend for GatewayChat {
    fn model(&self) -> Option<String> {
        self.current().and_then(|c| c.model())
    }

    fn start(&self, turn: ChatTurn) -> mpsc::UnboundedReceiver<ChatEvent> {
        match self.current() {
            Some(chat) => chat.start(turn),
            None => {
                let (tx, rx) = mpsc::unbounded_channel();
                let _ = tx.send(ChatEvent::Failed {
                    error: not_configured(),
                });
                rx
            }
        }
    }

    fn reset<'a>(&'a self, session_key: &'a str) -> ResetFuture<'a> {
        Box::pin(async move {
            match self.current() {
                Some(chat) => chat.reset(session_key).await,
                None => Err(not_configured()),
            }
        })
    }
}
