//! The tool execution seam. The runtime never runs a tool itself: it asks a [`ToolExecutor`]
//! which tools a session has and hands it each call. The gateway implements it with the same
//! path as `POST /tools/invoke` (tool policy, audit, timeouts), so the model, MCP and HTTP see
//! the same tools, schemas and decisions.

use std::future::Future;
use std::pin::Pin;

use carapace_policy::ErrorEnvelope;
use carapace_tools::{ToolCall, ToolSpec};
use serde_json::Value;

/// Which session a turn runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session key (`agent:main:telegram:direct:42`).
    pub session_key: String,
    /// The agent id.
    pub agent_id: String,
    /// The channel the message came from, when the caller knows it.
    pub channel: Option<String>,
}

/// The future of one tool call.
pub type ToolFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, ErrorEnvelope>> + Send + 'a>>;

/// Runs tools for the agent runtime.
pub trait ToolExecutor: Send + Sync {
    /// The tools offered to this session's model (name, description, JSON schema), after
    /// policy: a tool that is not listed here is never called.
    fn tools(&self, session: &SessionInfo) -> Vec<ToolSpec>;

    /// Runs one call. `call` carries the session key, agent id and channel of the turn. A
    /// typed error is not a failed turn: it goes back to the model as the tool's result.
    fn invoke<'a>(&'a self, call: ToolCall) -> ToolFuture<'a>;

    /// Why `tool`, which [`ToolExecutor::tools`] did not offer, cannot be called — the typed
    /// refusal the model reads when it calls it anyway (a policy names its setting here). The
    /// runtime never invokes such a tool; `None` gives a plain `NOT_FOUND`.
    fn unavailable(&self, _session: &SessionInfo, _tool: &str) -> Option<ErrorEnvelope> {
        None
    }
}
