//! [`AgentError`]: every failure of a turn, with its code in the one table.

use carapace_policy::{CarapaceError, ErrorCode, ErrorEnvelope};
use serde_json::{Map, Value, json};

use crate::provider::ProviderError;

/// One failed model attempt, for the details of a final model error.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// `provider/model`.
    pub model: String,
    /// The attempt's code.
    pub code: ErrorCode,
    /// Upstream HTTP status, when there was one.
    pub status: Option<u16>,
}

/// A failed turn (or a refused request to start one).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AgentError {
    /// No model configured for the agent, or the configured one cannot be used.
    #[error("{message}")]
    ModelNotConfigured {
        /// What is missing.
        message: String,
        /// What to do.
        hint: String,
    },
    /// Every model of the chain failed; `last` decides the code.
    #[error("the model call failed: {last}")]
    Model {
        /// The last failure (decides the code).
        last: ProviderError,
        /// `provider/model` of the last failure.
        model: String,
        /// Every attempt, in order.
        attempts: Vec<Attempt>,
    },
    /// The turn used its budget.
    #[error("the turn reached its {limit} limit ({value}) before a final answer")]
    LimitReached {
        /// `rounds` or `time`.
        limit: &'static str,
        /// The limit's value (`24` rounds, `600s`).
        value: String,
    },
    /// The turn was cancelled.
    #[error("the turn was cancelled ({reason})")]
    Cancelled {
        /// `stop`, `new`, `shutdown`.
        reason: &'static str,
    },
    /// The session's queue is full.
    #[error("session {session_key} already has {queued} messages waiting")]
    Busy {
        /// The session.
        session_key: String,
        /// How many wait.
        queued: usize,
    },
    /// The transcript or session index could not be read or written.
    #[error("session storage failed: {0}")]
    Storage(ErrorEnvelope),
    /// A bad request (empty message, malformed session key).
    #[error("{0}")]
    BadRequest(String),
}

impl AgentError {
    pub(crate) fn storage(e: impl CarapaceError) -> AgentError {
        AgentError::Storage(e.to_envelope())
    }
}

impl CarapaceError for AgentError {
    fn code(&self) -> ErrorCode {
        match self {
            AgentError::ModelNotConfigured { .. } => ErrorCode::ModelNotConfigured,
            AgentError::Model { last, .. } => last.code(),
            AgentError::LimitReached { .. } => ErrorCode::TurnLimitReached,
            AgentError::Cancelled { .. } => ErrorCode::TurnCancelled,
            AgentError::Busy { .. } => ErrorCode::SessionBusy,
            AgentError::Storage(e) => e.code,
            AgentError::BadRequest(_) => ErrorCode::BadRequest,
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            AgentError::ModelNotConfigured { hint, .. } => hint.clone(),
            AgentError::Model { last, .. } => last.hint(),
            AgentError::LimitReached {
                limit: "rounds", ..
            } => "the model kept calling tools; ask for a smaller step, or raise the round limit"
                .into(),
            AgentError::LimitReached { .. } => {
                "raise agents.defaults.timeoutSeconds, or ask for a smaller step".into()
            }
            AgentError::Cancelled { .. } => "send the message again to start a new turn".into(),
            AgentError::Busy { .. } => "wait for the running turn to finish, or send /stop".into(),
            AgentError::Storage(e) => return e.hint.clone(),
            AgentError::BadRequest(_) => return None,
        })
    }

    fn details(&self) -> Map<String, Value> {
        let mut m = Map::new();
        match self {
            AgentError::Model {
                last,
                model,
                attempts,
            } => {
                m.insert("model".into(), model.clone().into());
                if let Some(s) = last.status() {
                    m.insert("status".into(), s.into());
                }
                if let Some(r) = last.retry_after() {
                    m.insert("retryAfterSeconds".into(), r.as_secs().into());
                }
                m.insert(
                    "attempts".into(),
                    attempts
                        .iter()
                        .map(|a| json!({"model": a.model, "code": a.code, "status": a.status}))
                        .collect(),
                );
            }
            AgentError::LimitReached { limit, value } => {
                m.insert("limit".into(), (*limit).into());
                m.insert("value".into(), value.clone().into());
            }
            AgentError::Cancelled { reason } => {
                m.insert("reason".into(), (*reason).into());
            }
            AgentError::Busy {
                session_key,
                queued,
            } => {
                m.insert("sessionKey".into(), session_key.clone().into());
                m.insert("queued".into(), (*queued).into());
            }
            AgentError::Storage(e) => return e.details.clone(),
            AgentError::ModelNotConfigured { .. } | AgentError::BadRequest(_) => {}
        }
        m
    }
}
