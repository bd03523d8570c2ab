//! carapace's gateway (docs/gateway.md): how agents and programs reach the tools, and how
//! messages reach carapace's agent.
//!
//! - `POST /tools/invoke`, OpenClaw-compatible (`{tool, action?, args, sessionKey?, agentId?,
//!   channel?}` → `{ok: true, result}`), bearer token compared in constant time, body limit,
//!   request id, and the error envelope (docs/errors.md) with the status of the one table on **every** path:
//!   typed tool errors, bad JSON, unknown tools and routes, oversize bodies, timeouts, panics.
//! - MCP over streamable HTTP (`/mcp`) and stdio ([`mcp::serve_stdio`]), same tools, same
//!   schemas, typed errors as MCP tool errors carrying the envelope.
//! - `GET /healthz`, `GET /metrics` (Prometheus), an audit log line per mutation, exec and
//!   send, config hot reload, graceful shutdown.
//! - [`client::invoke`] for CLIs talking to a running gateway.
//! - carapace's agent ([`agent::AgentServices`], in [`Gateway::agent`]): the agent runtime
//!   over the same call pipeline, the inbound channels started with the gateway, the webhook
//!   (`POST <hooks.path>/…`) and OpenAI's `POST /v1/chat/completions`.
//!
//! The gateway does not run tools: it hands every [`ToolCall`] to a [`ToolBackend`]
//! (carapace-tools in the binary, a stub in tests) through one pipeline, [`Gateway::call`].

pub mod agent;
mod agent_observer;
pub mod agent_tools;
pub mod audit;
pub mod auth;
pub mod call;
pub mod chat_completions;
pub mod client;
pub mod deadline_body;
pub mod gateway;
mod hooks;
pub mod idempotency;
pub mod jsonrpc;
pub mod listener;
pub mod mcp;
mod mcp_http;
pub mod metrics;
pub mod prune;
pub mod reload;
pub mod run;
pub mod server;
pub mod tools_backend;
pub mod ui;

pub use agent::AgentServices;
pub use call::{BackendFactory, Origin, ToolBackend, ToolCall, ToolSpec};
pub use gateway::{CallRequest, Gateway, Limits, Transport};
pub use run::{Ready, RunOptions, run};
