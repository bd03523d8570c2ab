//! Socket Mode frames and Events API payloads → what carapace receives. Pure: no I/O.
//!
//! Frames: `hello` (the connection is ready), `disconnect` (with a `reason`), and envelopes
//! (`envelope_id`, `type`: `events_api`, `slash_commands`, `interactive`, with `payload`,
//! `retry_attempt`, `retry_reason`), each to be acknowledged by sending back
//! `{"envelope_id"}`.

use serde_json::{Value, json};

use crate::inbound::websocket::{AllowBots, kind_from_mime};
use crate::inbound::{ChatKind, ChatRef, InboundAttachment, InboundMessage, SenderRef};

/// One Socket Mode frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// The connection is ready.
    Hello,
    /// Slack will close (or has closed) this connection.
    Disconnect {
        /// `warning`, `refresh_requested`, `link_disabled`, …
        reason: String,
    },
    /// Something to acknowledge.
    Envelope {
        /// To send back.
        envelope_id: String,
        /// `events_api`, `slash_commands`, `interactive`, …
        kind: String,
        /// The Events API payload (`event_callback`) or the interaction.
        payload: Value,
        /// 0 the first time; Slack counts up when it sends an unacknowledged envelope again.
        retry_attempt: u64,
        /// Why it was sent again (`timeout`, …), if it was.
        retry_reason: Option<String>,
    },
    /// Any other frame type (ignored).
    Other(String),
}

/// Parses one text frame.
pub fn parse_frame(text: &str) -> Result<Frame, String> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| format!("Slack sent a frame that is not JSON: {e}"))?;
    let kind = v.get("type").and_then(Value::as_str).unwrap_or_default();
    if let Some(id) = v.get("envelope_id").and_then(Value::as_str) {
        return Ok(Frame::Envelope {
            envelope_id: id.to_string(),
            kind: kind.to_string(),
            payload: v.get("payload").cloned().unwrap_or(Value::Null),
            retry_attempt: v.get("retry_attempt").and_then(Value::as_u64).unwrap_or(0),
            retry_reason: v
                .get("retry_reason")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
                .map(str::to_string),
        });
    }
    Ok(match kind {
        "hello" => Frame::Hello,
        "disconnect" => Frame::Disconnect {
            reason: v
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("unspecified")
                .to_string(),
        },
        other => Frame::Other(other.to_string()),
    })
}

/// The acknowledgement of an envelope.
pub fn ack(envelope_id: &str) -> Value {
    json!({ "envelope_id": envelope_id })
}

/// Who the bot is (from `auth.test` with the bot token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotIdentity {
    /// The bot user's id (`U…`): what mentions name.
    pub user_id: String,
    /// The bot's id (`B…`): what its own messages carry as `bot_id`.
    pub bot_id: Option<String>,
}

/// Message subtypes that are something someone said (plain messages have none).
const SPOKEN_SUBTYPES: [&str; 2] = ["file_share", "thread_broadcast"];

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Milliseconds since the epoch of a Slack `ts` (`"1712345678.000100"`): digits, an optional
/// `.` and more digits; anything else, or a time past `i64` milliseconds, is `None`.
pub fn ts_ms(ts: &str) -> Option<i64> {
    let (secs, frac) = ts.split_once('.').unwrap_or((ts, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(secs) || !digits(frac) {
        return None;
    }
    let secs: i64 = secs.parse().ok()?;
    let micros: i64 = format!("{frac:0<6}").get(..6)?.parse().ok()?;
    secs.checked_mul(1000)?.checked_add(micros / 1000)
}

/// An `events_api` payload as an inbound message, or `None` for what is not reported: other
/// event types, edits / deletes / joins and other subtypes, the bot's own messages, other
/// bots' unless `allow_bots` says so.
///
/// `event_id` is `<channel>:<ts>`, the message's identity in Slack. The same message can
/// arrive twice — as `message` and as `app_mention` when the bot is mentioned in a channel,
/// or again when Slack retries an envelope — and this key makes the sink's de-duplication
/// collapse them.
pub fn message(
    payload: &Value,
    me: &BotIdentity,
    account: Option<&str>,
    allow_bots: AllowBots,
) -> Option<InboundMessage> {
    let ev = payload.get("event")?;
    let event_type = str_of(ev, "type")?;
    if event_type != "message" && event_type != "app_mention" {
        return None;
    }
    if let Some(sub) = str_of(ev, "subtype")
        && !SPOKEN_SUBTYPES.contains(&sub)
    {
        return None;
    }
    if ev.get("hidden").and_then(Value::as_bool) == Some(true) {
        return None;
    }
    let user = str_of(ev, "user")?;
    let channel = str_of(ev, "channel")?;
    let ts = str_of(ev, "ts")?;
    let bot_id = str_of(ev, "bot_id");
    if user == me.user_id || (bot_id.is_some() && bot_id == me.bot_id.as_deref()) {
        return None;
    }
    let text = str_of(ev, "text").unwrap_or_default();
    let mention = format!("<@{}", me.user_id);
    let mentions_bot = event_type == "app_mention"
        || text
            .match_indices(&mention)
            .any(|(i, m)| matches!(text[i + m.len()..].chars().next(), Some('>' | '|')))
        || str_of(ev, "parent_user_id") == Some(me.user_id.as_str());
    if bot_id.is_some() || ev.get("bot_profile").is_some() {
        match allow_bots {
            AllowBots::Never => return None,
            AllowBots::Mentions if !mentions_bot => return None,
            _ => {}
        }
    }
    let direct = match str_of(ev, "channel_type") {
        Some(t) => t == "im",
        None => event_type == "message" && channel.starts_with('D'),
    };
    let name = ev
        .get("user_profile")
        .and_then(|p| {
            str_of(p, "display_name")
                .filter(|n| !n.is_empty())
                .or_else(|| str_of(p, "real_name"))
        })
        .map(str::to_string);
    let attachments = ev
        .get("files")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|f| {
            !matches!(str_of(f, "mode"), Some("tombstone" | "hidden_by_limit"))
                && str_of(f, "file_access") != Some("check_file_info")
        })
        .filter_map(|f| {
            let url = str_of(f, "url_private_download").or_else(|| str_of(f, "url_private"))?;
            let mime = str_of(f, "mimetype").map(str::to_string);
            Some(InboundAttachment {
                kind: kind_from_mime(mime.as_deref()),
                filename: str_of(f, "name").map(str::to_string),
                mime,
                size: f.get("size").and_then(Value::as_u64),
                fetch: url.to_string(),
            })
        })
        .collect();
    Some(InboundMessage {
        channel: "slack".into(),
        account: account.map(str::to_string),
        event_id: format!("{channel}:{ts}"),
        chat: ChatRef {
            kind: if direct {
                ChatKind::Direct
            } else {
                ChatKind::Group
            },
            id: channel.to_string(),
            thread: str_of(ev, "thread_ts").map(str::to_string),
        },
        sender: SenderRef {
            id: user.to_string(),
            name,
        },
        text: text.to_string(),
        mentions_bot,
        attachments,
        timestamp_ms: ts_ms(ts),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::inbound::AttachmentKind;

    fn me() -> BotIdentity {
        BotIdentity {
            user_id: "UBOT".into(),
            bot_id: Some("BBOT".into()),
        }
    }

    fn payload(event: Value) -> Value {
        json!({"type": "event_callback", "event_id": "Ev1", "team_id": "T1", "event": event})
    }

    #[test]
    fn frames() {
        assert_eq!(
            parse_frame(r#"{"type":"hello","num_connections":1,"debug_info":{"host":"h"}}"#)
                .unwrap(),
            Frame::Hello
        );
        assert_eq!(
            parse_frame(r#"{"type":"disconnect","reason":"refresh_requested"}"#).unwrap(),
            Frame::Disconnect {
                reason: "refresh_requested".into()
            }
        );
        let f = parse_frame(
            r#"{"envelope_id":"e1","type":"events_api","payload":{"a":1},"accepts_response_payload":false,"retry_attempt":2,"retry_reason":"timeout"}"#,
        )
        .unwrap();
        assert_eq!(
            f,
            Frame::Envelope {
                envelope_id: "e1".into(),
                kind: "events_api".into(),
                payload: json!({"a": 1}),
                retry_attempt: 2,
                retry_reason: Some("timeout".into()),
            }
        );
        assert!(parse_frame("nope").is_err());
        assert_eq!(ack("e1"), json!({"envelope_id": "e1"}));
    }

    #[test]
    fn a_dm_with_a_file() {
        let m = message(
            &payload(json!({
                "type": "message", "subtype": "file_share", "channel": "D1", "channel_type": "im",
                "user": "U1", "text": "look", "ts": "1712345678.000100",
                "files": [{"id": "F1", "name": "cat.png", "mimetype": "image/png", "size": 10,
                           "url_private": "https://files.slack.com/files-pri/T1-F1/cat.png",
                           "url_private_download": "https://files.slack.com/files-pri/T1-F1/download/cat.png"}],
                "user_profile": {"display_name": "", "real_name": "Alice"}
            })),
            &me(),
            None,
            AllowBots::Never,
        )
        .unwrap();
        assert_eq!(m.channel, "slack");
        assert_eq!(m.event_id, "D1:1712345678.000100");
        assert_eq!(m.chat.kind, ChatKind::Direct);
        assert_eq!(m.chat.thread, None);
        assert_eq!(m.sender.name.as_deref(), Some("Alice"));
        assert_eq!(m.attachments.len(), 1);
        assert_eq!(m.attachments[0].kind, AttachmentKind::Image);
        assert!(m.attachments[0].fetch.ends_with("/download/cat.png"));
        assert_eq!(m.timestamp_ms, Some(1_712_345_678_000));
    }

    #[test]
    fn threads_mentions_and_twins() {
        let ev = json!({"type": "message", "channel": "C1", "channel_type": "channel", "user": "U1",
                        "text": "hi <@UBOT> there", "ts": "2.5", "thread_ts": "1.0"});
        let m = message(&payload(ev), &me(), Some("a"), AllowBots::Never).unwrap();
        assert_eq!(m.chat.kind, ChatKind::Group);
        assert_eq!(m.chat.thread.as_deref(), Some("1.0"));
        assert!(m.mentions_bot);
        let twin = json!({"type": "app_mention", "channel": "C1", "user": "U1",
                          "text": "hi <@UBOT> there", "ts": "2.5", "thread_ts": "1.0"});
        let t = message(&payload(twin), &me(), Some("a"), AllowBots::Never).unwrap();
        assert_eq!(t.event_id, m.event_id);
        assert_eq!(t.chat, m.chat);
        assert_eq!(t.timestamp_ms, Some(2500));

        let other = json!({"type": "message", "channel": "C1", "user": "U1", "text": "<@UBOTX> <@UB>", "ts": "3.0"});
        assert!(
            !message(&payload(other), &me(), None, AllowBots::Never)
                .unwrap()
                .mentions_bot
        );
        let labelled = json!({"type": "message", "channel": "C1", "user": "U1", "text": "<@UBOT|carapace> hi", "ts": "3.0"});
        assert!(
            message(&payload(labelled), &me(), None, AllowBots::Never)
                .unwrap()
                .mentions_bot
        );
        let reply = json!({"type": "message", "channel": "C1", "user": "U1", "text": "and?", "ts": "4.0",
                           "thread_ts": "1.0", "parent_user_id": "UBOT"});
        assert!(
            message(&payload(reply), &me(), None, AllowBots::Never)
                .unwrap()
                .mentions_bot
        );
    }

    #[test]
    fn what_is_not_reported() {
        let none =
            |ev: Value, allow: AllowBots| message(&payload(ev), &me(), None, allow).is_none();
        assert!(none(
            json!({"type": "message", "subtype": "message_changed", "channel": "C1", "user": "U1", "ts": "1.0"}),
            AllowBots::Always
        ));
        assert!(none(
            json!({"type": "message", "subtype": "channel_join", "channel": "C1", "user": "U1", "ts": "1.0"}),
            AllowBots::Always
        ));
        assert!(none(
            json!({"type": "reaction_added", "user": "U1"}),
            AllowBots::Always
        ));
        assert!(none(
            json!({"type": "message", "channel": "C1", "user": "UBOT", "ts": "1.0"}),
            AllowBots::Always
        ));
        assert!(none(
            json!({"type": "message", "channel": "C1", "user": "U9", "bot_id": "BBOT", "ts": "1.0"}),
            AllowBots::Always
        ));
        let other_bot = json!({"type": "message", "channel": "C1", "user": "U9", "bot_id": "B9", "ts": "1.0", "text": "x"});
        assert!(none(other_bot.clone(), AllowBots::Never));
        assert!(none(other_bot.clone(), AllowBots::Mentions));
        assert!(!none(other_bot, AllowBots::Always));
        let mentioning = json!({"type": "message", "channel": "C1", "user": "U9", "bot_id": "B9", "ts": "1.0", "text": "<@UBOT>"});
        assert!(!none(mentioning, AllowBots::Mentions));
    }

    #[test]
    fn ts_to_ms() {
        assert_eq!(ts_ms("1712345678.000100"), Some(1_712_345_678_000));
        assert_eq!(ts_ms("1712345678.123456"), Some(1_712_345_678_123));
        assert_eq!(ts_ms("1712345678.5"), Some(1_712_345_678_500));
        assert_eq!(ts_ms("1712345678"), Some(1_712_345_678_000));
        assert_eq!(ts_ms("x.1"), None);
        // Found by fuzzing: a huge `ts` overflowed the multiplication (a panic in debug
        // builds, a wrapped timestamp in release ones).
        assert_eq!(ts_ms("9223372036854775807.1"), None);
        assert_eq!(ts_ms("9223372036854775"), Some(9_223_372_036_854_775_000));
        for bad in ["-5.1", "+5", "5.-1", "5.", ".5", "", "5.1.2", "٣.1"] {
            assert_eq!(ts_ms(bad), None, "{bad:?}");
        }
    }
}
