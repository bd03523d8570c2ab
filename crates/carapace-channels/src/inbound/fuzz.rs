//! The fuzzing entry of the inbound event parsers: arbitrary bytes through the same parsing the
//! receiving channels use on what their servers send — Slack Socket Mode frames and Events API
//! payloads, Discord Gateway dispatches, Telegram `getUpdates` answers, Matrix `/sync` answers.
//! Not an API; `fuzz/` (cargo-afl) and the tests below call it.

use serde_json::Value;

use super::matrix_sync::{MatrixSource, MatrixSourceSettings};
use super::telegram_updates::{TelegramSource, TelegramSourceSettings};
use crate::ChannelError;

/// Holds the two sources whose parsers are methods (built once: they own an HTTP client, which
/// the parsers never use).
#[doc(hidden)]
#[derive(Debug)]
pub struct InboundFuzz {
    matrix: MatrixSource,
    telegram: TelegramSource,
}

impl InboundFuzz {
    /// Builds the sources (no I/O: nothing is created on disk or contacted).
    pub fn new() -> Result<InboundFuzz, ChannelError> {
        let dir = std::path::Path::new("/nonexistent/carapace-fuzz");
        Ok(InboundFuzz {
            matrix: MatrixSource::new(MatrixSourceSettings::new(
                "http://127.0.0.1:9",
                "fuzz-token",
                dir,
            ))?,
            telegram: TelegramSource::new(TelegramSourceSettings::new("1:fuzz", dir))?,
        })
    }

    /// Parses `bytes` as what channel `which % 4` (Slack, Discord, Telegram, Matrix) receives;
    /// the number of messages it would hand over. Never panics, whatever the bytes.
    pub fn run(&self, which: u8, bytes: &[u8]) -> usize {
        let text = String::from_utf8_lossy(bytes);
        match which % 4 {
            0 => super::slack_socket::fuzz_frame(&text),
            1 => super::discord_gateway::fuzz_dispatch(&text),
            2 => serde_json::from_str::<Value>(&text).map_or(0, |v| self.telegram.fuzz_updates(&v)),
            _ => serde_json::from_str::<Value>(&text).map_or(0, |v| self.matrix.fuzz_sync(&v)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Positive controls: a real-shaped event of each channel yields its message, so a fuzz run
    /// reaches the parsers rather than stopping at the first check.
    #[test]
    fn each_channel_reports_a_well_formed_message() {
        let f = InboundFuzz::new().unwrap();
        let slack = r#"{"envelope_id":"e1","type":"events_api","payload":{"type":"event_callback","event":{"type":"message","channel":"D1","channel_type":"im","user":"U1","text":"hi","ts":"1712345678.000100"}}}"#;
        // Never, Mentions and Always: a person's message is reported under each.
        assert_eq!(f.run(0, slack.as_bytes()), 3);
        let discord = r#"{"op":0,"s":2,"t":"MESSAGE_CREATE","d":{"id":"1200000000000000000","channel_id":"111","type":0,"content":"hello","author":{"id":"42","username":"alice"},"mentions":[],"mention_roles":[],"attachments":[]}}"#;
        assert_eq!(f.run(1, discord.as_bytes()), 3);
        let telegram = r#"{"ok":true,"result":[{"update_id":1,"message":{"message_id":5,"date":1712345678,"chat":{"id":42,"type":"private"},"from":{"id":42,"first_name":"Alice"},"text":"hi"}}]}"#;
        assert_eq!(f.run(2, telegram.as_bytes()), 1);
        let matrix = r#"{"next_batch":"s1","rooms":{"join":{"!r:example.org":{"timeline":{"events":[{"type":"m.room.message","event_id":"$e1","sender":"@alice:example.org","origin_server_ts":1712345678000,"content":{"msgtype":"m.text","body":"hi"}}]}}}}}"#;
        // Unencrypted with 2 and with 3 members; the encrypted room is not answered.
        assert_eq!(f.run(3, matrix.as_bytes()), 2);
        for which in 0..4 {
            assert_eq!(f.run(which, b"\xff{not json"), 0);
        }
    }
}
