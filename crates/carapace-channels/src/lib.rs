//! Outbound channel adapters for carapace (docs/channels.md): the [`ChannelAdapter`] interface, the
//! typed [`DeliveryOutcome`] of one HTTP attempt, the one [`RetryPolicy`] every adapter shares,
//! and the Discord, Telegram, Slack and webhook adapters.
//!
//! Invariants:
//! - An [`Attachment`]'s fd was verified by the outbound reader; adapters stream exactly
//!   `size` bytes of **that** fd with positional reads from offset 0, on every attempt. They
//!   never open a path and never hold a whole file in memory.
//! - A file over [`ChannelAdapter::max_attachment_bytes`] fails the whole send with
//!   `OUTBOUND_MEDIA_TOO_LARGE` before any byte (text included) leaves.
//! - A request that may have been delivered but got no answer is reported as an unknown outcome
//!   (`CHANNEL_UNREACHABLE`, `details.outcome = "unknown"`) and never retried blindly.
//! - Tokens live in [`SecretString`] and appear in no log, error or `Debug` output.

mod error;
mod http;
mod message;
mod retry;
mod secret;
mod target;

pub mod discord;
pub mod from_config;
pub mod inbound;
pub mod inbox;
pub mod matrix;
pub mod slack;
pub mod telegram;
pub mod webhook;

pub use error::ChannelError;
pub use http::Timeouts;
pub use message::{
    Attachment, Delivered, DeliveredAttachment, OutboundMessage, Progress, ProgressUpdate,
};
pub use retry::{DeliveryOutcome, RetryPolicy};
pub use secret::SecretString;
pub use target::Target;

pub use discord::{DiscordAdapter, DiscordSettings};
pub use slack::{SlackAdapter, SlackSettings};
pub use telegram::{TelegramAdapter, TelegramSettings};
pub use webhook::{WebhookAdapter, WebhookSettings};

/// One outbound channel. Implementations are cheap to share (`Arc<dyn ChannelAdapter>`).
#[async_trait::async_trait]
pub trait ChannelAdapter: Send + Sync {
    /// The channel id (`discord`, `telegram`, …), as used in config and errors.
    fn id(&self) -> &str;

    /// The largest file this channel accepts, in bytes. The outbound reader checks it before
    /// opening a stream; adapters check it again before sending.
    fn max_attachment_bytes(&self) -> u64;

    /// Sends one message with its attachments: the text, the files, and the caption as the
    /// platform places it. Retries what is safe to retry within the adapter's [`RetryPolicy`].
    async fn send(&self, msg: OutboundMessage) -> Result<Delivered, ChannelError>;

    /// [`send`](Self::send), where sending the same `key` again must not post twice if the
    /// platform can de-duplicate (Matrix: transaction ids derived from `key`, so a reply sent
    /// again after a restart is not repeated). Platforms without idempotent sends just send.
    async fn send_idempotent(
        &self,
        msg: OutboundMessage,
        key: &str,
    ) -> Result<Delivered, ChannelError> {
        let _ = key;
        self.send(msg).await
    }
}

/// The checks every adapter makes before sending: something to send, and every file within
/// `limit`. Shared so the adapters cannot disagree.
pub fn check_message(channel: &str, limit: u64, msg: &OutboundMessage) -> Result<(), ChannelError> {
    if msg.is_empty() {
        return Err(ChannelError::BadRequest {
            message: format!("nothing to send to {channel}: no text, caption or attachment"),
        });
    }
    for a in &msg.attachments {
        if a.size > limit {
            return Err(ChannelError::MediaTooLarge {
                channel: channel.to_string(),
                filename: Some(a.filename.clone()),
                size: Some(a.size),
                limit: Some(limit),
                status: None,
            });
        }
    }
    Ok(())
}

/// Splits `text` into pieces of at most `max` characters (not bytes), preferring to cut at a
/// newline or space in the last fifth of a piece.
pub(crate) fn split_text(text: &str, max: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let mut end = (start + max).min(chars.len());
        if end < chars.len() {
            let floor = start + max * 4 / 5;
            if let Some(cut) = (floor..end)
                .rev()
                .find(|&i| chars[i] == '\n' || chars[i] == ' ')
            {
                end = cut + 1;
            }
        }
        out.push(chars[start..end].iter().collect());
        start = end;
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn split_text_respects_the_limit_and_keeps_everything() {
        let text = "word ".repeat(1000) + &"é".repeat(3000);
        for max in [7, 1024, 2000, 4096] {
            let parts = split_text(&text, max);
            assert!(parts.iter().all(|p| p.chars().count() <= max));
            assert_eq!(parts.concat(), text);
        }
        assert!(split_text("", 10).is_empty());
    }
}
