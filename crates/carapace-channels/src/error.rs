//! The typed channel error and its codes (docs/errors.md).

use std::time::Duration;

use carapace_policy::{CarapaceError, ErrorCode};
use serde_json::{Map, Value, json};

use crate::Delivered;

/// Everything a send can end in other than success. Messages and details never contain a
/// token: adapters build them from status codes and platform error text only.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// 401/403, or the platform's "invalid token" answer.
    #[error("channel {channel} refused the credentials (HTTP {status}): {message}")]
    Unauthorized {
        /// Channel id.
        channel: String,
        /// Upstream HTTP status.
        status: u16,
        /// The platform's error text.
        message: String,
    },
    /// Still rate-limited when the retry budget ran out.
    #[error(
        "channel {channel} kept rate-limiting the send and the retry budget ran out after {attempts} attempt(s)"
    )]
    RateLimited {
        /// Channel id.
        channel: String,
        /// Attempts made.
        attempts: u32,
        /// The platform's last `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// The platform refused the request (a 4xx other than 401/403/413/429, or `ok: false`).
    #[error("channel {channel} rejected the request (HTTP {status}): {message}")]
    Rejected {
        /// Channel id.
        channel: String,
        /// Upstream HTTP status (Slack answers errors with 200).
        status: u16,
        /// The platform's error text.
        message: String,
        /// The platform's own error code (Discord `code`, Telegram `error_code`, Slack `error`).
        platform_code: Option<String>,
    },
    /// Nothing got through: connection refused, DNS, 5xx or timeouts until the budget ran out.
    #[error("channel {channel} could not be reached after {attempts} attempt(s): {reason}")]
    Unreachable {
        /// Channel id.
        channel: String,
        /// Attempts made.
        attempts: u32,
        /// What the last attempt saw.
        reason: String,
    },
    /// The request went out but no answer came back: it may or may not have been delivered.
    #[error(
        "channel {channel}: the outcome of the send is unknown ({reason}); it may or may not have been delivered, so it was not retried"
    )]
    Ambiguous {
        /// Channel id.
        channel: String,
        /// What happened.
        reason: String,
    },
    /// A file over the channel's limit (checked before sending, or the platform's 413 / 40005).
    #[error("{}", too_large_message(.channel, .filename.as_deref(), *.size, *.limit))]
    MediaTooLarge {
        /// Channel id.
        channel: String,
        /// The file, when known.
        filename: Option<String>,
        /// Its size, when known.
        size: Option<u64>,
        /// The limit, when known.
        limit: Option<u64>,
        /// Upstream HTTP status when the platform said so.
        status: Option<u16>,
    },
    /// The channel lacks configuration (no token, no URL).
    #[error("channel {channel} is not configured: {reason}")]
    NotConfigured {
        /// Channel id.
        channel: String,
        /// What is missing.
        reason: String,
    },
    /// The message itself is malformed (bad target, nothing to send, a target kind the
    /// channel does not have).
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
    },
    /// The verified fd could not be read to the end (it shrank or an I/O error occurred).
    #[error("attachment {filename} could not be read while sending to {channel}: {reason}")]
    AttachmentRead {
        /// Channel id.
        channel: String,
        /// The file.
        filename: String,
        /// The I/O problem.
        reason: String,
    },
    /// The Matrix room is end-to-end encrypted: carapace has no encryption and never sends
    /// plaintext there.
    #[error(
        "room {room} on {channel} is end-to-end encrypted; carapace cannot encrypt, so it sends nothing there (never plaintext)"
    )]
    RoomEncrypted {
        /// Channel id.
        channel: String,
        /// The room id.
        room: String,
    },
    /// Reading or writing the channel's state (cursor, handled ids) failed.
    #[error("channel {channel}: {}", .envelope.message)]
    Storage {
        /// Channel id.
        channel: String,
        /// The underlying typed error (a carapace-fs error, usually).
        envelope: Box<carapace_policy::ErrorEnvelope>,
    },
    /// Part of the message (earlier messages / files) was delivered before `source` happened.
    #[error("{source} (part of the message had already been delivered)")]
    PartiallyDelivered {
        /// What did arrive.
        delivered: Box<Delivered>,
        /// What stopped the rest.
        source: Box<ChannelError>,
    },
}

fn too_large_message(
    channel: &str,
    filename: Option<&str>,
    size: Option<u64>,
    limit: Option<u64>,
) -> String {
    let file = filename.map_or_else(
        || "an attachment".to_string(),
        |f| format!("attachment {f}"),
    );
    match (size, limit) {
        (Some(s), Some(l)) => {
            format!("{file} is {s} bytes; channel {channel} accepts at most {l} bytes per file")
        }
        _ => format!("channel {channel} refused {file} as too large"),
    }
}

impl ChannelError {
    /// A storage failure of `channel`'s state, keeping the underlying error's code and facts.
    pub fn storage(channel: &str, e: impl CarapaceError) -> ChannelError {
        ChannelError::Storage {
            channel: channel.to_string(),
            envelope: Box::new(e.to_envelope()),
        }
    }

    /// True for failures that retrying cannot fix (bad credentials, refused requests, a bad
    /// configuration): an inbound source stops on these instead of reconnecting forever.
    pub fn is_permanent(&self) -> bool {
        match self {
            ChannelError::Unauthorized { .. }
            | ChannelError::NotConfigured { .. }
            | ChannelError::BadRequest { .. }
            | ChannelError::RoomEncrypted { .. } => true,
            ChannelError::Rejected { status, .. } => !matches!(status, 404 | 409),
            ChannelError::PartiallyDelivered { source, .. } => source.is_permanent(),
            _ => false,
        }
    }

    /// Wraps `self` as having happened after `delivered` arrived (no-op when nothing did).
    pub fn after_partial(self, delivered: &Delivered) -> ChannelError {
        if delivered.remote_id.is_empty() && delivered.attachments.is_empty() {
            self
        } else {
            ChannelError::PartiallyDelivered {
                delivered: Box::new(delivered.clone()),
                source: Box::new(self),
            }
        }
    }

    fn channel(&self) -> Option<&str> {
        match self {
            ChannelError::Unauthorized { channel, .. }
            | ChannelError::RateLimited { channel, .. }
            | ChannelError::Rejected { channel, .. }
            | ChannelError::Unreachable { channel, .. }
            | ChannelError::Ambiguous { channel, .. }
            | ChannelError::MediaTooLarge { channel, .. }
            | ChannelError::NotConfigured { channel, .. }
            | ChannelError::AttachmentRead { channel, .. }
            | ChannelError::RoomEncrypted { channel, .. }
            | ChannelError::Storage { channel, .. } => Some(channel),
            ChannelError::BadRequest { .. } => None,
            ChannelError::PartiallyDelivered { source, .. } => source.channel(),
        }
    }
}

impl CarapaceError for ChannelError {
    fn code(&self) -> ErrorCode {
        match self {
            ChannelError::Unauthorized { .. } => ErrorCode::ChannelUnauthorized,
            ChannelError::RateLimited { .. } => ErrorCode::ChannelRateLimited,
            ChannelError::Rejected { .. } => ErrorCode::ChannelRejected,
            ChannelError::Unreachable { .. } | ChannelError::Ambiguous { .. } => {
                ErrorCode::ChannelUnreachable
            }
            ChannelError::MediaTooLarge { .. } => ErrorCode::OutboundMediaTooLarge,
            ChannelError::NotConfigured { .. } => ErrorCode::ChannelNotConfigured,
            ChannelError::BadRequest { .. } | ChannelError::AttachmentRead { .. } => {
                ErrorCode::BadRequest
            }
            ChannelError::RoomEncrypted { .. } => ErrorCode::ChannelRoomEncrypted,
            ChannelError::Storage { envelope, .. } => envelope.code,
            ChannelError::PartiallyDelivered { source, .. } => source.code(),
        }
    }

    fn hint(&self) -> Option<String> {
        let h = match self {
            ChannelError::Unauthorized { .. } => {
                "Check the channel's token in the config (and that the bot may post to this target)."
            }
            ChannelError::RateLimited { .. } => "The platform is rate-limiting; try again later.",
            ChannelError::Ambiguous { .. } => {
                "Check the conversation before sending again: a retry could deliver it twice."
            }
            ChannelError::Unreachable { .. } => {
                "Nothing was delivered; check the network and the channel's apiBaseUrl, then retry."
            }
            ChannelError::MediaTooLarge { .. } => {
                "Send a smaller file (compress or resize it), or raise the channel's mediaMaxMb if the platform allows it."
            }
            ChannelError::NotConfigured { .. } => {
                "Configure the channel under `channels` in the config."
            }
            ChannelError::AttachmentRead { .. } => {
                "The file changed after it was checked; make sure nothing is still writing it and send again."
            }
            ChannelError::RoomEncrypted { .. } => {
                "Talk to the bot in a room without end-to-end encryption (encryption cannot be turned off in a room once on: create a new room or DM without it)."
            }
            ChannelError::Storage { envelope, .. } => return envelope.hint.clone(),
            ChannelError::PartiallyDelivered { source, .. } => return source.hint(),
            ChannelError::Rejected { .. } | ChannelError::BadRequest { .. } => return None,
        };
        Some(h.to_string())
    }

    fn details(&self) -> Map<String, Value> {
        let mut d = Map::new();
        if let Some(c) = self.channel() {
            d.insert("channel".into(), json!(c));
        }
        match self {
            ChannelError::Unauthorized { status, .. } => {
                d.insert("status".into(), json!(status));
            }
            ChannelError::RateLimited {
                attempts,
                retry_after,
                ..
            } => {
                d.insert("attempts".into(), json!(attempts));
                if let Some(r) = retry_after {
                    d.insert("retryAfterSeconds".into(), json!(r.as_secs_f64()));
                }
            }
            ChannelError::Rejected {
                status,
                message,
                platform_code,
                ..
            } => {
                d.insert("status".into(), json!(status));
                d.insert("platformError".into(), json!(message));
                if let Some(c) = platform_code {
                    d.insert("platformCode".into(), json!(c));
                }
            }
            ChannelError::Unreachable { attempts, .. } => {
                d.insert("attempts".into(), json!(attempts));
                d.insert("outcome".into(), json!("not_delivered"));
            }
            ChannelError::Ambiguous { .. } => {
                d.insert("outcome".into(), json!("unknown"));
            }
            ChannelError::MediaTooLarge {
                filename,
                size,
                limit,
                status,
                ..
            } => {
                if let Some(f) = filename {
                    d.insert("filename".into(), json!(f));
                }
                if let Some(s) = size {
                    d.insert("size".into(), json!(s));
                }
                if let Some(l) = limit {
                    d.insert("limit".into(), json!(l));
                }
                if let Some(s) = status {
                    d.insert("status".into(), json!(s));
                }
            }
            ChannelError::AttachmentRead { filename, .. } => {
                d.insert("filename".into(), json!(filename));
            }
            ChannelError::RoomEncrypted { room, .. } => {
                d.insert("room".into(), json!(room));
            }
            ChannelError::Storage { envelope, .. } => {
                d.extend(envelope.details.clone());
            }
            ChannelError::PartiallyDelivered { delivered, source } => {
                d.extend(source.details());
                d.insert("delivered".into(), json!(delivered));
            }
            ChannelError::NotConfigured { .. } | ChannelError::BadRequest { .. } => {}
        }
        d
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_details() {
        let e = ChannelError::Ambiguous {
            channel: "discord".into(),
            reason: "connection closed".into(),
        };
        assert_eq!(e.code(), ErrorCode::ChannelUnreachable);
        assert_eq!(e.details()["outcome"], "unknown");
        assert!(e.to_string().contains("unknown"));

        let e = ChannelError::Rejected {
            channel: "telegram".into(),
            status: 400,
            message: "Bad Request: chat not found".into(),
            platform_code: Some("400".into()),
        };
        let env = e.to_envelope();
        assert_eq!(env.code, ErrorCode::ChannelRejected);
        assert_eq!(env.details["status"], 400);
        assert_eq!(env.details["platformError"], "Bad Request: chat not found");

        let e = ChannelError::MediaTooLarge {
            channel: "discord".into(),
            filename: Some("a.png".into()),
            size: Some(11),
            limit: Some(10),
            status: None,
        };
        assert_eq!(e.code(), ErrorCode::OutboundMediaTooLarge);
        assert!(e.to_string().contains("a.png is 11 bytes"));

        let mut d = Delivered::default();
        d.push_message("1".into());
        let e = e.after_partial(&d);
        assert_eq!(e.code(), ErrorCode::OutboundMediaTooLarge);
        assert_eq!(e.details()["delivered"]["remoteId"], "1");
    }
}
