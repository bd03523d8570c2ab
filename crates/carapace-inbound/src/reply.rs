//! Delivering a reply to the conversation it answers: text cut to the channel's chunk limit,
//! attachments (`MEDIA:` lines of the answer) through the outbound checks of carapace-media
//! with the session's policy — a refused file is named in the reply with the reason and the
//! hint, never dropped in silence — and sends retried while the platform is unreachable.
//! Every send carries a key derived from the message it answers, so a reply sent again after
//! a restart is de-duplicated where the platform can (Matrix).

use std::sync::Arc;
use std::time::{Duration, Instant};

use carapace_channels::inbound::{Backoff, InboundMessage, sleep_or_cancel};
use carapace_channels::{ChannelAdapter, ChannelError, OutboundMessage, Target};
use carapace_media::{OutboundPolicy, open_outbound};
use carapace_policy::{CarapaceError, ErrorCode, ErrorEnvelope};

use crate::journal::PlannedReply;
use crate::service::Inner;

/// Default longest text message (characters), OpenClaw's `textChunkLimit` default.
pub const DEFAULT_CHUNK_CHARS: usize = 4000;

/// Where a reply to `msg` goes: the room or chat it came from.
pub fn reply_target(msg: &InboundMessage) -> Target {
    match msg.channel.as_str() {
        "matrix" => Target::Room(msg.chat.id.clone()),
        _ => Target::Channel(msg.chat.id.clone()),
    }
}

/// Splits `text` into pieces of at most `max` characters, preferring paragraph, line, then
/// word boundaries in the last third of a piece. Nothing is lost.
pub fn chunk(text: &str, max: usize) -> Vec<String> {
    let max = max.max(1);
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let mut end = (start + max).min(chars.len());
        if end < chars.len() {
            let floor = start + (max * 2) / 3;
            let window = floor..end;
            let find = |pred: &dyn Fn(usize) -> bool| window.clone().rev().find(|&i| pred(i));
            if let Some(i) = find(&|i| chars[i] == '\n' && i > 0 && chars[i - 1] == '\n')
                .or_else(|| find(&|i| chars[i] == '\n'))
                .or_else(|| find(&|i| chars[i] == ' '))
            {
                end = i + 1;
            }
        }
        let piece: String = chars[start..end].iter().collect();
        if !piece.trim().is_empty() {
            out.push(piece.trim_end().to_string());
        }
        start = end;
    }
    out
}

fn transient(e: &ChannelError) -> bool {
    matches!(
        e,
        ChannelError::Unreachable { .. } | ChannelError::RateLimited { .. }
    ) || matches!(e, ChannelError::PartiallyDelivered { source, .. } if transient(source))
}

fn file_refusal(e: &ChannelError) -> bool {
    matches!(
        e,
        ChannelError::MediaTooLarge { .. } | ChannelError::AttachmentRead { .. }
    ) || matches!(e, ChannelError::PartiallyDelivered { source, .. } if file_refusal(source))
}

/// A refusal as the person reads it: what, why, what to do.
fn refusal_note(path: &str, env: &ErrorEnvelope) -> String {
    let mut n = format!("(Not attached: {path} — {} [{}]", env.message, env.code);
    if let Some(h) = &env.hint {
        n.push_str(&format!(" {h}"));
    }
    n.push(')');
    n
}

impl Inner {
    fn chunk_limit(&self, channel: &str) -> usize {
        self.config
            .file
            .channels
            .get(channel)
            .and_then(|c| c.text_chunk_limit)
            .map_or(DEFAULT_CHUNK_CHARS, |n| n as usize)
    }

    /// Opens every attachment of `reply` through the outbound checks of the session.
    fn open_media(
        &self,
        channel: &str,
        adapter: &dyn ChannelAdapter,
        reply: &PlannedReply,
    ) -> (Vec<carapace_channels::Attachment>, Vec<String>) {
        let mut files = Vec::new();
        let mut notes = Vec::new();
        if reply.media.is_empty() {
            return (files, notes);
        }
        let call = carapace_tools::ToolCall {
            session_key: Some(reply.session_key.clone()),
            agent_id: Some(reply.agent_id.clone()),
            channel: Some(channel.to_string()),
            ..Default::default()
        };
        let policy = match self.tools.session(&call) {
            Ok(s) => OutboundPolicy::for_session(&self.config, &s.eff),
            Err(e) => {
                for p in &reply.media {
                    notes.push(refusal_note(p, &e.0));
                }
                return (files, notes);
            }
        };
        for p in &reply.media {
            match open_outbound(&policy, p, channel, adapter.max_attachment_bytes()) {
                Ok(f) => files.push(f.attachment),
                Err(e) => notes.push(refusal_note(p, &e.to_envelope())),
            }
        }
        (files, notes)
    }

    /// Sends one message, retrying while the platform is unreachable (within the budget).
    /// `make` rebuilds the message for each attempt (files are re-opened and re-checked).
    async fn send_retrying(
        &self,
        adapter: &dyn ChannelAdapter,
        key: &str,
        mut make: impl FnMut() -> OutboundMessage,
    ) -> Result<carapace_channels::Delivered, ChannelError> {
        let started = Instant::now();
        let mut backoff = Backoff::new(self.opts.reply_retry_base, Duration::from_secs(60));
        loop {
            match adapter.send_idempotent(make(), key).await {
                Ok(d) => return Ok(d),
                Err(e) if transient(&e) && started.elapsed() < self.opts.reply_retry_budget => {
                    let wait = backoff.next_delay();
                    tracing::warn!(channel = %adapter.id(), error = %e, "reply not delivered; retrying");
                    if sleep_or_cancel(wait, &self.shutdown).await {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Sends `reply` to the conversation of `msg`; the ids of the messages created.
    pub(crate) async fn send_reply(
        self: &Arc<Self>,
        msg: &InboundMessage,
        reply: &PlannedReply,
    ) -> Result<Vec<String>, ErrorEnvelope> {
        self.send_reply_to(msg, reply, None).await
    }

    /// [`send_reply`](Self::send_reply) to `target` instead of the message's conversation.
    pub(crate) async fn send_reply_to(
        self: &Arc<Self>,
        msg: &InboundMessage,
        reply: &PlannedReply,
        target: Option<Target>,
    ) -> Result<Vec<String>, ErrorEnvelope> {
        let channel = msg.channel.as_str();
        let adapter = self.adapter(channel).map_err(|e| e.to_envelope())?;
        // A reply to the conversation goes into the thread the message came from.
        let thread = target.is_none().then(|| msg.chat.thread.clone()).flatten();
        let target = target.unwrap_or_else(|| reply_target(msg));
        // This pass collects the refusals; the files are opened again (and checked again) for
        // each send attempt, since an attempt consumes them.
        let (files, notes) = self.open_media(channel, adapter.as_ref(), reply);
        let with_files = !files.is_empty();
        drop(files);
        let mut text = reply.text.clone();
        for n in &notes {
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            text.push_str(n);
        }
        let mut chunks = chunk(&text, self.chunk_limit(channel));
        let last = if with_files { chunks.pop() } else { None };
        let mut ids = Vec::new();
        let base = format!("{}-{}", channel, msg.event_id);
        for (i, c) in chunks.iter().enumerate() {
            let d = self
                .send_retrying(adapter.as_ref(), &format!("{base}-t{i}"), || {
                    OutboundMessage::text(target.clone(), c.clone()).in_thread(thread.clone())
                })
                .await
                .map_err(|e| self.shut_or(e))?;
            ids.push(d.remote_id);
            ids.extend(d.extra_message_ids);
        }
        if with_files {
            let result = self
                .send_retrying(adapter.as_ref(), &format!("{base}-f"), || {
                    let (files, _) = self.open_media(channel, adapter.as_ref(), reply);
                    OutboundMessage {
                        target: target.clone(),
                        text: last.clone(),
                        caption: None,
                        attachments: files,
                        progress: None,
                        thread: thread.clone(),
                    }
                })
                .await;
            match result {
                Ok(d) => {
                    ids.push(d.remote_id);
                    ids.extend(d.extra_message_ids);
                }
                Err(e) if file_refusal(&e) => {
                    // The platform refused a file: say so, with the text, rather than nothing.
                    let env = e.to_envelope();
                    let mut t = last.clone().unwrap_or_default();
                    if !t.is_empty() {
                        t.push_str("\n\n");
                    }
                    t.push_str(&refusal_note(&reply.media.join(", "), &env));
                    let d = self
                        .send_retrying(adapter.as_ref(), &format!("{base}-r"), || {
                            OutboundMessage::text(target.clone(), t.clone())
                                .in_thread(thread.clone())
                        })
                        .await
                        .map_err(|e| self.shut_or(e))?;
                    ids.push(d.remote_id);
                }
                Err(e) => return Err(self.shut_or(e)),
            }
        }
        ids.retain(|i| !i.is_empty());
        Ok(ids)
    }

    /// The error to report: a cancellation marker when shutting down (the reply stays
    /// pending), else the channel's error.
    fn shut_or(&self, e: ChannelError) -> ErrorEnvelope {
        if self.shutdown.is_cancelled() {
            ErrorEnvelope::new(ErrorCode::TurnCancelled, "shutting down")
        } else {
            e.to_envelope()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_keep_everything_and_prefer_boundaries() {
        let t = format!("{}\n\n{}", "a ".repeat(30), "b".repeat(50));
        let c = chunk(&t, 70);
        assert!(c.iter().all(|p| p.chars().count() <= 70));
        assert_eq!(c[0], "a ".repeat(30).trim_end());
        let joined: String = chunk(&"x".repeat(10_001), 4000).concat();
        assert_eq!(joined.len(), 10_001);
        assert!(chunk("   ", 10).is_empty());
        assert_eq!(chunk("é".repeat(5).as_str(), 2).len(), 3);
    }
}
