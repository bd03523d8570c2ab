//! The seam between the chat view and the agent: [`ChatBackend`] starts a turn for a `web`
//! session and yields what happens as it happens.

use std::future::Future;
use std::pin::Pin;

use carapace_agent::ImageData;
use carapace_policy::ErrorEnvelope;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

/// One message from the person, for a session.
#[derive(Debug, Clone)]
pub struct ChatTurn {
    /// Session key (`agent:main:web:direct:owner`).
    pub session_key: String,
    /// The text (with a line naming each uploaded file).
    pub text: String,
    /// Uploaded images, for models that accept images.
    pub images: Vec<ImageData>,
}

/// How a tool call ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ToolOutcome {
    /// It returned a result.
    Ok,
    /// It returned a typed error.
    Error {
        /// The stable code.
        code: String,
        /// What went wrong.
        message: String,
        /// What to do about it.
        #[serde(skip_serializing_if = "Option::is_none")]
        hint: Option<String>,
    },
}

/// What happens during a turn.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatEvent {
    /// More answer text.
    Text {
        /// The text.
        text: String,
    },
    /// A model call failed and is retried: the text of this round so far is void.
    Retry {
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
        /// Its arguments.
        args: Value,
    },
    /// A tool call finished.
    ToolFinished {
        /// Call id.
        id: String,
        /// Tool name.
        name: String,
        /// Result or typed error.
        outcome: ToolOutcome,
    },
    /// The answer attaches a file (a `MEDIA:` line), named as the agent named it. The page
    /// checks it with the outbound rules before offering it.
    Attachment {
        /// The path.
        path: String,
    },
    /// The turn ended with an answer.
    Done {
        /// The final text (without `MEDIA:` lines).
        text: String,
        /// `provider/model` that answered.
        #[serde(skip_serializing_if = "Option::is_none")]
        model: Option<String>,
    },
    /// The turn failed.
    Failed {
        /// The typed error.
        error: ErrorEnvelope,
    },
}

/// The future of a session reset: the new session id.
pub type ResetFuture<'a> = Pin<Box<dyn Future<Output = Result<String, ErrorEnvelope>> + Send + 'a>>;

/// The agent behind the chat view.
pub trait ChatBackend: Send + Sync {
    /// `provider/model` the chat talks to, for the page's header.
    fn model(&self) -> Option<String>;

    /// Starts a turn; its events arrive on the receiver, ending with `Done` or `Failed`.
    /// Dropping the receiver does not stop the turn (the transcript records it either way).
    fn start(&self, turn: ChatTurn) -> mpsc::UnboundedReceiver<ChatEvent>;

    /// Stops the session's turns and points its key at a fresh session.
    fn reset<'a>(&'a self, session_key: &'a str) -> ResetFuture<'a>;
}
