//! What goes out and what came back.

use std::sync::Arc;

use serde::Serialize;

use crate::Target;

/// One file to send. The file was opened and verified by the outbound reader (docs/channels.md); the
/// adapter streams **this** fd with positional reads from offset 0 and never re-opens a path.
/// Exactly `size` bytes are sent: a file that shrank since it was checked fails the send.
#[derive(Debug)]
pub struct Attachment {
    /// The verified, already-open file.
    pub file: std::fs::File,
    /// Its size when it was verified.
    pub size: u64,
    /// The file name shown to recipients.
    pub filename: String,
    /// Its MIME type (sniffed by the outbound reader).
    pub mime: String,
    /// Image width in pixels, when known.
    pub width: Option<u32>,
    /// Image height in pixels, when known.
    pub height: Option<u32>,
}

/// One message to one target.
#[derive(Debug)]
pub struct OutboundMessage {
    /// Where it goes.
    pub target: Target,
    /// Message text.
    pub text: Option<String>,
    /// Caption for the attachments (sent with the first one where the platform has captions).
    pub caption: Option<String>,
    /// Files, in order.
    pub attachments: Vec<Attachment>,
    /// Called as file bytes are handed to the HTTP stack (for a progress bar).
    pub progress: Option<Progress>,
}

/// How far one attachment's upload has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressUpdate {
    /// Index of the attachment in [`OutboundMessage::attachments`].
    pub index: usize,
    /// Bytes of it streamed so far in the current attempt (a retry starts again from 0).
    pub sent: u64,
    /// Its size.
    pub total: u64,
}

/// A progress callback. Cheap to clone; must not block (it runs on the upload path).
#[derive(Clone)]
pub struct Progress(Arc<dyn Fn(ProgressUpdate) + Send + Sync>);

impl Progress {
    /// Wraps a callback.
    pub fn new(f: impl Fn(ProgressUpdate) + Send + Sync + 'static) -> Self {
        Progress(Arc::new(f))
    }

    /// Reports one update.
    pub fn report(&self, update: ProgressUpdate) {
        (self.0)(update)
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

impl OutboundMessage {
    /// Text and caption as one body (blank line between), for platforms that have a single
    /// text field per message (Discord `content`, Slack `initial_comment`).
    pub fn text_and_caption(&self) -> String {
        [self.text.as_deref(), self.caption.as_deref()]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    /// A text-only message.
    pub fn text(target: Target, text: impl Into<String>) -> Self {
        OutboundMessage {
            target,
            text: Some(text.into()),
            caption: None,
            attachments: Vec::new(),
            progress: None,
        }
    }

    /// True when there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.attachments.is_empty()
            && self.text.as_deref().is_none_or(str::is_empty)
            && self.caption.as_deref().is_none_or(str::is_empty)
    }
}

/// One attachment that arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveredAttachment {
    /// The platform's id for the uploaded file (Discord attachment id, Telegram `file_id`,
    /// Slack file id; for webhooks the index of the part).
    pub remote_id: String,
    /// The file name it was sent under.
    pub filename: String,
    /// Bytes sent.
    pub bytes: u64,
}

/// A send that succeeded.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivered {
    /// The id of the (first) message the platform created.
    pub remote_id: String,
    /// Further message ids when the platform needed more than one message (text too long for
    /// a caption, more files than one message carries). In order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_message_ids: Vec<String>,
    /// One entry per attachment, in the order given.
    pub attachments: Vec<DeliveredAttachment>,
}

impl Delivered {
    /// Records a message id: the first becomes `remote_id`, later ones `extra_message_ids`.
    pub fn push_message(&mut self, id: String) {
        if self.remote_id.is_empty() {
            self.remote_id = id;
        } else {
            self.extra_message_ids.push(id);
        }
    }
}
