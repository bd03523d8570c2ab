//! The tool policy (docs/tool-policy.md): which tools a session may use on each surface, resolved once
//! with the setting behind every decision, and the exec allowlist.
//!
//! Pure: a policy is built from a [`Config`](crate::Config), a session and a [`Catalog`] of
//! tools, and can be printed and compared without running anything. The tools crate applies it
//! in its one dispatch, which every surface (CLI, HTTP, MCP, the agent runtime) goes through,
//! and lists tools with the same decision.

pub mod catalog;
pub mod exec;
pub mod names;
pub mod policy;
pub mod shell;

pub use catalog::{Catalog, Effect, Section, ToolMeta};
pub use exec::{CommandRefusal, check_command};
pub use policy::{
    Block, BlockReason, EffectiveTools, ExecPolicy, HTTP_DEFAULT_DENY, PolicyLayer,
    SANDBOX_DEFAULT_ALLOW, SANDBOX_DEFAULT_DENY, SettingList, Surface, ToolDecision,
};
