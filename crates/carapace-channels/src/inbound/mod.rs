//! Inbound messaging: what a channel receives, in one shape for every platform, and the seam
//! between a platform client (an [`InboundSource`]: Matrix `/sync`, Telegram `getUpdates`,
//! the Discord Gateway, Slack Socket Mode, …) and whatever handles the messages (an
//! [`InboundSink`]: the conversation service that routes a message to its session, checks who
//! may talk, runs the agent turn and sends the reply through the outbound adapters).
//!
//! Delivery contract, the same for every source:
//! - A source hands messages to [`InboundSink::deliver`] in the order the platform gave them,
//!   one at a time, and persists its platform cursor (sync token, update offset, sequence
//!   number) only after `deliver` returned `Ok` for every message before that cursor. A crash
//!   therefore never loses a message; it may hand the same message again after a restart.
//! - The sink makes redelivery harmless: it records each `(channel, event_id)` it accepted and
//!   ignores one it has seen, so a person never gets two answers to one message.
//! - A source never answers, never calls a model and never decides access: it reports what
//!   arrived (including whether the bot was mentioned) and the sink decides.
//! - Connection changes are reported with [`InboundSink::state`] (for `carapace channels
//!   status` and metrics). A permanent failure (revoked token, disallowed intents) ends
//!   [`InboundSource::run`] with a typed error instead of a reconnect loop; transient ones are
//!   retried with backoff inside `run`.
//! - Tokens never appear in a message, a state, a log line or an error.

use serde::{Deserialize, Serialize};

use crate::ChannelError;

pub mod backoff;
pub mod cursor;
pub mod from_config;
pub mod matrix_sync;
pub mod telegram_updates;

pub use backoff::{Backoff, sleep_or_cancel};
pub use cursor::CursorStore;
pub use websocket::{AllowBots, ConnectionStats, ReconnectPolicy};

/// Whether a conversation is a direct message or a group (room, guild channel, group chat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatKind {
    /// One person and the bot.
    Direct,
    /// Several people (a Matrix room, a Telegram group, a Discord guild channel, a Slack
    /// channel).
    Group,
}

/// Where a message was said.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatRef {
    /// Direct or group.
    pub kind: ChatKind,
    /// The platform's id of the conversation (room id, chat id, channel id).
    pub id: String,
    /// The thread inside it, when the message is in one (Matrix thread root, Slack `thread_ts`,
    /// Telegram topic, Discord thread channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<String>,
}

/// Who said it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SenderRef {
    /// The platform's stable user id (`@alice:example.org`, a Telegram user id, a Discord
    /// snowflake, a Slack user id).
    pub id: String,
    /// A display name, for logs and the control page only (never used for access decisions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What an attachment is, as the platform declared it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachmentKind {
    /// A picture (largest size the platform offers).
    Image,
    /// Any other file.
    File,
    /// Sound.
    Audio,
    /// Video.
    Video,
}

/// A file that came with a message. Nothing is downloaded until the sink asks the source with
/// [`InboundSource::fetch_attachment`]; `fetch` is the source's own opaque handle (an `mxc://`
/// URI, a Telegram `file_id`, a Discord CDN URL, a Slack `url_private`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundAttachment {
    /// Declared kind.
    pub kind: AttachmentKind,
    /// The file name the sender gave, if any (untrusted; the media store sanitises it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Declared MIME type, if any (untrusted; the media store sniffs the bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime: Option<String>,
    /// Declared size in bytes, if the platform says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The source's handle to fetch it with.
    pub fetch: String,
}

/// One message as it arrived, whatever the platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundMessage {
    /// The channel id (`matrix`, `telegram`, `discord`, `slack`, `webhook`, `web`).
    pub channel: String,
    /// The account of that channel the message reached, when a channel has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The platform's unique id of this event; with `channel`, the key that makes redelivery
    /// harmless.
    pub event_id: String,
    /// Where it was said.
    pub chat: ChatRef,
    /// Who said it.
    pub sender: SenderRef,
    /// The text (may be empty when there are attachments).
    pub text: String,
    /// The bot was mentioned (by id, by name where the platform resolves it, or by a reply to
    /// one of its messages).
    pub mentions_bot: bool,
    /// Files, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<InboundAttachment>,
    /// When the platform says it was sent, in milliseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
}

/// A source's connection, as `carapace channels status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum ConnectionState {
    /// Connecting for the first time.
    Connecting,
    /// Receiving.
    Connected,
    /// Lost and trying again (`attempt` counts from 1 since the last success).
    Reconnecting {
        /// Attempt number.
        attempt: u32,
        /// The error that caused it (no secrets).
        error: String,
    },
    /// Stopped for good (shut down, or a permanent error such as a revoked token).
    Stopped {
        /// Why, when it was an error (no secrets).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// Bytes of one fetched attachment, read with a size cap.
#[derive(Debug, Clone)]
pub struct FetchedMedia {
    /// The content (at most the cap the sink gave).
    pub bytes: Vec<u8>,
    /// The content type the platform served, if any (untrusted).
    pub content_type: Option<String>,
}

/// Whatever handles inbound messages (the conversation service).
#[async_trait::async_trait]
pub trait InboundSink: Send + Sync {
    /// Accepts one message. `Ok` means it is durably recorded as accepted (it will be handled,
    /// or was a duplicate); only then may the source advance its cursor past it. An `Err`
    /// makes the source stop advancing and retry later.
    async fn deliver(&self, msg: InboundMessage) -> Result<(), ChannelError>;

    /// Reports a connection change of `channel`.
    fn state(&self, channel: &str, state: ConnectionState);

    /// Reports something that arrived but cannot be handed over as a message (an encrypted
    /// Matrix event, a message in an encrypted room), for `carapace channels status` and the
    /// logs. `what` names the event and why, never its content. Default: nothing.
    fn skipped(&self, channel: &str, what: &str) {
        let _ = (channel, what);
    }
}

/// A platform client that receives messages.
#[async_trait::async_trait]
pub trait InboundSource: Send + Sync {
    /// The channel id it receives for.
    fn channel(&self) -> &str;

    /// Receives until `shutdown` is cancelled (then `Ok`) or a permanent error (then `Err`),
    /// handing each message to `sink` under the delivery contract of this module.
    async fn run(
        &self,
        sink: std::sync::Arc<dyn InboundSink>,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> Result<(), ChannelError>;

    /// Downloads one attachment of a message this source delivered, reading at most
    /// `max_bytes` (a larger file is an error, never a partial file).
    async fn fetch_attachment(
        &self,
        attachment: &InboundAttachment,
        max_bytes: u64,
    ) -> Result<FetchedMedia, ChannelError>;

    /// Shows or clears a typing indicator in `chat` while a turn runs, where the platform has
    /// one (a no-op elsewhere).
    async fn typing(&self, chat: &ChatRef, on: bool) -> Result<(), ChannelError>;

    /// How often the sink repeats `typing(chat, true)` while a turn runs (platform indicators
    /// expire: Telegram's after 5 s). Default 4 s.
    fn typing_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(4)
    }

    /// The connection counters of a source that keeps them (the Discord Gateway and Slack
    /// Socket Mode sources: state, connects, reconnects, resumes, delivered, last error), for
    /// `carapace channels status` and the metrics. Default: none.
    fn connection_stats(&self) -> Option<ConnectionStats> {
        None
    }
}

pub mod discord_gateway;
pub mod slack_socket;
mod websocket;

#[doc(hidden)]
pub mod fuzz;
