//! `carapace mcp`: an MCP server on stdin/stdout running the tools in this process.

use carapace_gateway::audit::{AuditLog, DEFAULT_KEEP, DEFAULT_MAX_BYTES};
use carapace_gateway::{Gateway, Limits};
use carapace_policy::ErrorEnvelope;
use clap::Args;

use super::Global;
use crate::context::load_config;

/// Options of `carapace mcp`.
#[derive(Debug, Args)]
pub struct McpArgs {
    /// Session key for calls whose arguments carry no `sessionKey` (default: the agent's main
    /// session).
    #[arg(long, value_name = "KEY")]
    session: Option<String>,
}

/// Serves MCP on stdio until the client closes it. No token: the client is the process that
/// started this one. Mutations, execs and sends are audited like the gateway's.
pub async fn run(args: McpArgs, g: &Global) -> Result<(), ErrorEnvelope> {
    let config = load_config(g.config.as_deref(), true)?;
    let factory = carapace_gateway::tools_backend::tools_factory();
    let backend = factory(&config)?;
    let audit = AuditLog::open(&config.state_dir, DEFAULT_MAX_BYTES, DEFAULT_KEEP)?;
    let gw = Gateway::new(backend, None, Limits::from_config(&config), Some(audit))?;
    carapace_gateway::mcp::serve_stdio(gw, args.session).await
}
