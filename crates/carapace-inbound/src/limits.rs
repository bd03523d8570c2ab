//! Bounds on what one message, one sender and one channel can make the service do: hostile
//! input (huge texts, many attachments, control characters, a flood from one sender) costs a
//! bounded amount of work.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use carapace_channels::inbound::InboundMessage;

/// Characters of one message handed to the model; the rest is cut, and the model is told.
pub const MAX_TEXT_CHARS: usize = 16_000;
/// Attachments fetched per message; further ones are named to the model, not fetched.
pub const MAX_ATTACHMENTS: usize = 8;
/// Messages one sender may have waiting per conversation before new ones are dropped.
pub const MAX_QUEUED_PER_SESSION: usize = 16;
/// Per sender: a burst of 6 messages, then one every 10 s.
pub const SENDER_BURST: f64 = 6.0;
/// Per sender refill, messages per second.
pub const SENDER_RATE: f64 = 0.1;
/// Per channel: a burst of 60 messages, then one per second.
pub const CHANNEL_BURST: f64 = 60.0;
/// Per channel refill, messages per second.
pub const CHANNEL_RATE: f64 = 1.0;
/// Buckets kept per limiter (the least recently used full ones are forgotten beyond it).
const MAX_BUCKETS: usize = 10_000;

/// Cuts `msg` to the bounds and removes control characters (all but newline and tab: they
/// can hide text from the person reading a transcript, or end a JSON line early in a log).
/// Returns the notes the model gets about what was cut.
pub fn bound(msg: &mut InboundMessage) -> Vec<String> {
    let mut notes = Vec::new();
    let cleaned: String = msg
        .text
        .replace("\r\n", "\n")
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .filter(|c| !matches!(*c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
        .collect();
    let n = cleaned.chars().count();
    msg.text = if n > MAX_TEXT_CHARS {
        notes.push(format!(
            "[the message was {n} characters long; only the first {MAX_TEXT_CHARS} are shown]"
        ));
        cleaned.chars().take(MAX_TEXT_CHARS).collect()
    } else {
        cleaned
    };
    if msg.attachments.len() > MAX_ATTACHMENTS {
        let extra = msg.attachments.len() - MAX_ATTACHMENTS;
        msg.attachments.truncate(MAX_ATTACHMENTS);
        notes.push(format!(
            "[{extra} more attachment(s) were not fetched: at most {MAX_ATTACHMENTS} per message]"
        ));
    }
    for a in &mut msg.attachments {
        if let Some(f) = &a.filename {
            let clean: String = f.chars().filter(|c| !c.is_control()).take(200).collect();
            a.filename = (!clean.trim().is_empty()).then_some(clean);
        }
    }
    let clean_name = msg.sender.name.as_ref().map(|n| {
        n.chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect::<String>()
    });
    msg.sender.name = clean_name.filter(|n| !n.trim().is_empty());
    notes
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by key.
#[derive(Debug)]
pub struct RateLimiter {
    burst: f64,
    rate: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// A burst of `burst`, refilled at `rate` per second.
    pub fn new(burst: f64, rate: f64) -> RateLimiter {
        RateLimiter {
            burst,
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`; false when there is none.
    pub fn allow(&self, key: &str) -> bool {
        let now = Instant::now();
        let mut m = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= MAX_BUCKETS && !m.contains_key(key) {
            let (burst, rate) = (self.burst, self.rate);
            m.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = m.entry(key.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.rate).min(self.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use carapace_channels::inbound::{
        AttachmentKind, ChatKind, ChatRef, InboundAttachment, SenderRef,
    };

    #[test]
    fn hostile_messages_are_bounded() {
        let mut m = InboundMessage {
            channel: "telegram".into(),
            account: None,
            event_id: "1".into(),
            chat: ChatRef {
                kind: ChatKind::Direct,
                id: "1".into(),
                thread: None,
            },
            sender: SenderRef {
                id: "1".into(),
                name: Some("evil\u{0}\u{1b}[31m".into()),
            },
            text: format!("a\u{0}b\u{202E}c\r\nd{}", "é".repeat(100_000)),
            mentions_bot: false,
            attachments: (0..50)
                .map(|i| InboundAttachment {
                    kind: AttachmentKind::File,
                    filename: Some(format!("f{i}\n.txt")),
                    mime: None,
                    size: None,
                    fetch: i.to_string(),
                })
                .collect(),
            timestamp_ms: None,
        };
        let notes = bound(&mut m);
        assert!(m.text.starts_with("abc\nd"));
        assert_eq!(m.text.chars().count(), MAX_TEXT_CHARS);
        assert_eq!(m.attachments.len(), MAX_ATTACHMENTS);
        assert_eq!(m.attachments[0].filename.as_deref(), Some("f0.txt"));
        assert_eq!(m.sender.name.as_deref(), Some("evil[31m"));
        assert_eq!(notes.len(), 2);
    }

    #[test]
    fn buckets_allow_a_burst_then_refuse() {
        let r = RateLimiter::new(3.0, 0.0);
        assert!(r.allow("a") && r.allow("a") && r.allow("a"));
        assert!(!r.allow("a"));
        assert!(r.allow("b"), "per key");
    }
}
