//! The conversation service's typed error.

use carapace_policy::{CarapaceError, ErrorCode, ErrorEnvelope};
use serde_json::{Map, Value};

/// What can fail in the conversation service and its stores.
#[derive(Debug, thiserror::Error)]
pub enum InboundError {
    /// A state file (journal, pairing store, status) could not be read or written.
    #[error("{what}: {}", .source.message)]
    Storage {
        /// Which file or store.
        what: String,
        /// The underlying typed error (carapace-fs).
        source: Box<ErrorEnvelope>,
    },
    /// A state file holds something carapace did not write.
    #[error("{path} is not a carapace {what} file: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// What it should hold.
        what: String,
        /// The parse error.
        reason: String,
    },
    /// No pending pairing request has this code.
    #[error("no pending pairing request of channel {channel} has code {code}")]
    NoSuchCode {
        /// Channel id.
        channel: String,
        /// The code as given.
        code: String,
    },
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
}

impl InboundError {
    /// A storage failure of `what`.
    pub fn storage(what: impl Into<String>, e: impl CarapaceError) -> InboundError {
        InboundError::Storage {
            what: what.into(),
            source: Box::new(e.to_envelope()),
        }
    }
}

impl CarapaceError for InboundError {
    fn code(&self) -> ErrorCode {
        match self {
            InboundError::Storage { source, .. } => source.code,
            InboundError::Corrupt { .. } => ErrorCode::BadRequest,
            InboundError::NoSuchCode { .. } => ErrorCode::NotFound,
            InboundError::BadRequest(_) => ErrorCode::BadRequest,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            InboundError::Storage { source, .. } => source.hint.clone(),
            InboundError::Corrupt { .. } => Some(
                "move the file aside; carapace starts a fresh one (pending pairing requests or handled-message records in it are lost)".into(),
            ),
            InboundError::NoSuchCode { channel, .. } => Some(format!(
                "list the pending requests with `carapace pairing list {channel}`; codes expire after an hour"
            )),
            InboundError::BadRequest(_) => None,
        }
    }

    fn details(&self) -> Map<String, Value> {
        let mut d = Map::new();
        match self {
            InboundError::Storage { what, source } => {
                d.extend(source.details.clone());
                d.insert("store".into(), what.clone().into());
            }
            InboundError::Corrupt { path, .. } => {
                d.insert("path".into(), path.clone().into());
            }
            InboundError::NoSuchCode { channel, code } => {
                d.insert("channel".into(), channel.clone().into());
                d.insert("code".into(), code.clone().into());
            }
            InboundError::BadRequest(_) => {}
        }
        d
    }
}
