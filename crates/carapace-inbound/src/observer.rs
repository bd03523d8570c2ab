//! What the service tells the gateway about each message (for the audit log and metrics).
//! Events carry ids and decisions, never message text or file contents.

use carapace_policy::ErrorEnvelope;

/// One thing that happened to an inbound message.
#[derive(Debug, Clone, PartialEq)]
pub enum InboundEvent {
    /// Accepted from a source (recorded in the journal).
    Accepted {
        /// Channel id.
        channel: String,
        /// Platform event id.
        event_id: String,
        /// Sender id.
        sender: String,
    },
    /// Not handed to the agent.
    Dropped {
        /// Channel id.
        channel: String,
        /// Platform event id.
        event_id: String,
        /// Sender id.
        sender: String,
        /// Why (`dm-not-allowed`, `not-mentioned`, `rate-limited`, …).
        reason: String,
    },
    /// An unknown sender was offered a pairing code.
    PairingRequested {
        /// Channel id.
        channel: String,
        /// Sender id.
        sender: String,
    },
    /// A reply was delivered.
    Answered {
        /// Channel id.
        channel: String,
        /// Platform event id of the message answered.
        event_id: String,
        /// The session that answered.
        session_key: String,
        /// Ids of the messages the platform created.
        remote_ids: Vec<String>,
    },
    /// A turn or a reply failed.
    Failed {
        /// Channel id.
        channel: String,
        /// Platform event id.
        event_id: String,
        /// The typed error.
        error: ErrorEnvelope,
    },
}

/// Receives [`InboundEvent`]s. Must not block.
pub trait InboundObserver: Send + Sync {
    /// One event.
    fn event(&self, e: &InboundEvent);
}

/// Discards events.
#[derive(Debug, Default)]
pub struct NoObserver;

impl InboundObserver for NoObserver {
    fn event(&self, _: &InboundEvent) {}
}
