//! [`ToolError`]: the envelope every tool failure becomes.

use carapace_policy::{CarapaceError, ErrorCode, ErrorEnvelope};

/// A failed tool call: the typed envelope of docs/errors.md.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolError(pub ErrorEnvelope);

impl ToolError {
    /// A bare error.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ToolError {
        ToolError(ErrorEnvelope::new(code, message))
    }

    /// `BAD_REQUEST`.
    pub fn bad_request(message: impl Into<String>) -> ToolError {
        ToolError::new(ErrorCode::BadRequest, message)
    }

    /// Adds a hint.
    pub fn with_hint(self, hint: impl Into<String>) -> ToolError {
        ToolError(self.0.with_hint(hint))
    }

    /// Adds a detail.
    pub fn with_detail(self, key: &str, value: impl Into<serde_json::Value>) -> ToolError {
        ToolError(self.0.with_detail(key, value))
    }

    /// The stable code.
    pub fn code(&self) -> ErrorCode {
        self.0.code
    }
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for ToolError {}

impl<E: CarapaceError> From<E> for ToolError {
    fn from(e: E) -> ToolError {
        ToolError(e.to_envelope())
    }
}
