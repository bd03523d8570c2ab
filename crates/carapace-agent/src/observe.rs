//! Observability hooks: a record per model call (for the audit log and metrics: no content, no
//! keys) and live events of a turn (for a chat UI that shows text as it streams).

use serde::Serialize;

/// One model call attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelCallRecord {
    /// Session key.
    pub session_key: String,
    /// Turn number in the session.
    pub turn: u64,
    /// Round within the turn (1-based).
    pub round: u32,
    /// Provider id.
    pub provider: String,
    /// Model id.
    pub model: String,
    /// Wire format (`openai-completions` / `anthropic-messages`).
    pub api: String,
    /// Streamed or not.
    pub streamed: bool,
    /// Attempt number for this model (1 = first try).
    pub attempt: u32,
    /// Input tokens reported by the provider (0 when it reported none).
    pub input_tokens: u64,
    /// Output tokens reported by the provider.
    pub output_tokens: u64,
    /// Wall time of the call, milliseconds.
    pub latency_ms: u64,
    /// `ok`, or the error code (`MODEL_RATE_LIMITED`…).
    pub outcome: String,
    /// Upstream HTTP status of a failed call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// What happens during a turn, as it happens.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    /// A turn started (it was first in the session's queue).
    TurnStarted {
        /// Turn number.
        turn: u64,
    },
    /// More answer text from the model.
    TextDelta {
        /// The text.
        text: String,
    },
    /// A model call failed and is retried or falls back: text streamed since the round began
    /// is void.
    ModelRetry {
        /// `provider/model` of the next attempt.
        next: String,
        /// Code of the failure.
        code: String,
    },
    /// A tool call starts.
    ToolStarted {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
    },
    /// A tool call finished.
    ToolFinished {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// False when it returned an error envelope.
        ok: bool,
    },
    /// The context was shortened to fit the model's window.
    Compacted {
        /// Tool results shortened.
        shortened: usize,
        /// Messages dropped.
        dropped: usize,
    },
}

/// Receives model-call records (gateway: audit log and metrics).
pub trait Observer: Send + Sync {
    /// One model call attempt finished.
    fn model_call(&self, record: &ModelCallRecord);
}

/// An observer that drops everything.
#[derive(Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn model_call(&self, _: &ModelCallRecord) {}
}
