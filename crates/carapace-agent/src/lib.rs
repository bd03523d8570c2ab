//! carapace's agent runtime: messages become turns of a configured model whose tool calls run
//! through a [`ToolExecutor`] (the gateway's `/tools/invoke` path), with transcripts on disk.
//!
//! - [`provider`]: one narrow trait over two wire formats (OpenAI Chat Completions and
//!   compatible servers; the Anthropic Messages API), streamed or not.
//! - [`AgentRuntime`]: one lane per session (one turn at a time, later messages queue), a
//!   global cap, `/stop` and `/new`, retries and fallbacks, context kept within the window.
//! - [`transcript`]: JSONL per session through carapace-fs, resumed after a restart;
//!   [`SessionStore`] lists, shows and resets sessions.
//! - [`observe`]: a [`ModelCallRecord`] per model call (no content, no keys) and live events.
//!
//! The loop is `turn.rs`; what it writes before acting on it is described there.

mod context;
pub mod error;
mod guard;
pub mod message;
pub mod observe;
mod prompt;
pub mod provider;
mod retry;
mod runtime;
mod time;
pub mod tools;
pub mod transcript;
mod turn;

pub use error::AgentError;
pub use guard::CancelReason;
pub use message::{ContentPart, ImageData, Message, ToolChoice, Usage};
pub use observe::{LiveEvent, ModelCallRecord, NoObserver, Observer};
pub use prompt::BOOTSTRAP_FILES;
pub use retry::RetryPolicy;
pub use runtime::{AgentRuntime, AgentRuntimeBuilder, Reply, RuntimeOptions, TurnRequest};
pub use tools::{SessionInfo, ToolExecutor, ToolFuture};
pub use transcript::{Event, SessionStore, SessionSummary, SessionView, TurnStatus};
pub use turn::TurnOutcome;
