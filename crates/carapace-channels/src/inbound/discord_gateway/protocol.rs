//! The Discord Gateway v10 protocol as carapace uses it: opcodes, intents, the payload
//! envelope, and what each close code means. Pure: no I/O, tested exhaustively.

use serde::Deserialize;
use serde_json::{Value, json};

/// Gateway version in the connection URL.
pub const GATEWAY_VERSION: u8 = 10;

/// Opcodes (Discord's "Gateway Opcodes" table).
pub mod op {
    /// An event was dispatched (carries `s` and `t`).
    pub const DISPATCH: u8 = 0;
    /// Heartbeat (client → server; the server may also ask for one).
    pub const HEARTBEAT: u8 = 1;
    /// Starts a new session.
    pub const IDENTIFY: u8 = 2;
    /// Resumes a dropped session.
    pub const RESUME: u8 = 6;
    /// The server asks the client to reconnect and resume.
    pub const RECONNECT: u8 = 7;
    /// The session was invalidated; `d` says whether it may be resumed.
    pub const INVALID_SESSION: u8 = 9;
    /// First payload on a connection: `heartbeat_interval`.
    pub const HELLO: u8 = 10;
    /// The server received a heartbeat.
    pub const HEARTBEAT_ACK: u8 = 11;
}

/// Intent bits (Discord's "Gateway Intents").
pub mod intent {
    /// Guild, channel and thread lifecycle (`GUILD_CREATE`, `THREAD_CREATE`, …): needed to
    /// know which channel is a thread of which parent.
    pub const GUILDS: u64 = 1 << 0;
    /// Privileged: member events ("Server Members Intent").
    pub const GUILD_MEMBERS: u64 = 1 << 1;
    /// Voice states.
    pub const GUILD_VOICE_STATES: u64 = 1 << 7;
    /// Privileged: presences ("Presence Intent").
    pub const GUILD_PRESENCES: u64 = 1 << 8;
    /// `MESSAGE_CREATE` in guild channels.
    pub const GUILD_MESSAGES: u64 = 1 << 9;
    /// `MESSAGE_CREATE` in DMs.
    pub const DIRECT_MESSAGES: u64 = 1 << 12;
    /// Privileged: the `content`, `attachments`, `embeds` of messages that do not mention the
    /// bot ("Message Content Intent").
    pub const MESSAGE_CONTENT: u64 = 1 << 15;
    /// What carapace always asks for: DMs and guild messages with their content.
    pub const REQUIRED: u64 = GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT;
}

/// The privileged intents a bot may additionally ask for (OpenClaw's `intents` settings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiscordIntents {
    /// `intents.guildMembers`: Server Members Intent.
    pub guild_members: bool,
    /// `intents.presence`: Presence Intent.
    pub presence: bool,
    /// `intents.voiceStates`: voice state events (not privileged).
    pub voice_states: bool,
}

impl DiscordIntents {
    /// The intent bits of an IDENTIFY.
    pub fn bits(&self) -> u64 {
        let mut b = intent::REQUIRED;
        if self.guild_members {
            b |= intent::GUILD_MEMBERS;
        }
        if self.presence {
            b |= intent::GUILD_PRESENCES;
        }
        if self.voice_states {
            b |= intent::GUILD_VOICE_STATES;
        }
        b
    }

    /// The developer-portal names of the privileged intents asked for, for the 4014 error.
    pub fn privileged_names(&self) -> Vec<&'static str> {
        let mut v = vec!["Message Content Intent"];
        if self.guild_members {
            v.push("Server Members Intent");
        }
        if self.presence {
            v.push("Presence Intent");
        }
        v
    }
}

/// One gateway payload: `{op, d, s, t}`.
#[derive(Debug, Clone, Deserialize)]
pub struct Payload {
    /// Opcode.
    pub op: u8,
    /// Data.
    #[serde(default)]
    pub d: Value,
    /// Sequence number (dispatches only).
    #[serde(default)]
    pub s: Option<u64>,
    /// Event name (dispatches only).
    #[serde(default)]
    pub t: Option<String>,
}

/// `IDENTIFY` (op 2).
pub fn identify(token: &str, intents: u64) -> Value {
    json!({
        "op": op::IDENTIFY,
        "d": {
            "token": token,
            "intents": intents,
            "properties": {
                "os": std::env::consts::OS,
                "browser": "carapace",
                "device": "carapace",
            },
        },
    })
}

/// `RESUME` (op 6).
pub fn resume(token: &str, session_id: &str, seq: u64) -> Value {
    json!({
        "op": op::RESUME,
        "d": { "token": token, "session_id": session_id, "seq": seq },
    })
}

/// `HEARTBEAT` (op 1) with the last sequence number received (`null` before the first).
pub fn heartbeat(seq: Option<u64>) -> Value {
    json!({ "op": op::HEARTBEAT, "d": seq })
}

/// The connection URL for a gateway base URL (`/gateway/bot`'s `url`, or `READY`'s
/// `resume_gateway_url`): `?v=10&encoding=json` appended, any query the base had replaced.
pub fn connect_url(base: &str) -> String {
    match reqwest::Url::parse(base) {
        Ok(mut u) => {
            u.set_query(Some(&format!("v={GATEWAY_VERSION}&encoding=json")));
            u.to_string()
        }
        // Not a URL: connecting fails with a clear error.
        Err(_) => base.to_string(),
    }
}

/// The close code carapace sends when it drops a connection it means to resume. Discord
/// invalidates the session on 1000 / 1001, so any other code keeps it resumable; 4900 is in
/// the application range and is not one Discord itself uses.
pub const CLOSE_TO_RESUME: u16 = 4900;

/// What a close code from the server asks of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseAction {
    /// Reconnect and resume the session.
    Resume,
    /// Reconnect with a new session (a fresh IDENTIFY).
    Reidentify,
    /// Stop: reconnecting cannot help until someone changes something.
    Fatal(Fatal),
}

/// Why the gateway can never accept this bot as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fatal {
    /// 4004: the token is wrong, reset or revoked.
    AuthenticationFailed,
    /// 4010: an invalid shard was sent.
    InvalidShard,
    /// 4011: the bot is in too many guilds for one connection.
    ShardingRequired,
    /// 4012: an invalid gateway version was sent.
    InvalidApiVersion,
    /// 4013: the intents value was invalid.
    InvalidIntents,
    /// 4014: a privileged intent that is not enabled for this application.
    DisallowedIntents,
}

impl Fatal {
    /// The close code.
    pub fn code(self) -> u16 {
        match self {
            Fatal::AuthenticationFailed => 4004,
            Fatal::InvalidShard => 4010,
            Fatal::ShardingRequired => 4011,
            Fatal::InvalidApiVersion => 4012,
            Fatal::InvalidIntents => 4013,
            Fatal::DisallowedIntents => 4014,
        }
    }
}

/// Discord's "Gateway Close Event Codes" table: 4004 and 4010–4014 forbid reconnecting; 4007
/// (invalid sequence) and 4009 (session timed out) need a new session, and so does 4003 (not
/// authenticated, which Discord also sends for an invalidated session); every other code,
/// including a close without a code and the generic WebSocket ones, is a drop to resume from.
pub fn close_action(code: Option<u16>) -> CloseAction {
    match code {
        Some(4004) => CloseAction::Fatal(Fatal::AuthenticationFailed),
        Some(4010) => CloseAction::Fatal(Fatal::InvalidShard),
        Some(4011) => CloseAction::Fatal(Fatal::ShardingRequired),
        Some(4012) => CloseAction::Fatal(Fatal::InvalidApiVersion),
        Some(4013) => CloseAction::Fatal(Fatal::InvalidIntents),
        Some(4014) => CloseAction::Fatal(Fatal::DisallowedIntents),
        Some(4003 | 4007 | 4009) => CloseAction::Reidentify,
        _ => CloseAction::Resume,
    }
}

/// A short name of a close code, for states and logs.
pub fn close_name(code: u16) -> &'static str {
    match code {
        1000 => "normal closure",
        1001 => "going away",
        1006 => "abnormal closure",
        4000 => "unknown error",
        4001 => "unknown opcode",
        4002 => "decode error",
        4003 => "not authenticated",
        4004 => "authentication failed",
        4005 => "already authenticated",
        4007 => "invalid seq",
        4008 => "rate limited",
        4009 => "session timed out",
        4010 => "invalid shard",
        4011 => "sharding required",
        4012 => "invalid API version",
        4013 => "invalid intent(s)",
        4014 => "disallowed intent(s)",
        _ => "unlisted code",
    }
}

/// Milliseconds since the epoch of a Discord snowflake id (its top 42 bits count from the
/// Discord epoch, 2015-01-01).
pub fn snowflake_ms(id: &str) -> Option<i64> {
    const DISCORD_EPOCH_MS: u64 = 1_420_070_400_000;
    let n: u64 = id.parse().ok()?;
    i64::try_from((n >> 22) + DISCORD_EPOCH_MS).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_follow_discords_table() {
        for c in [4004u16, 4010, 4011, 4012, 4013, 4014] {
            match close_action(Some(c)) {
                CloseAction::Fatal(f) => assert_eq!(f.code(), c),
                other => panic!("{c}: {other:?}"),
            }
        }
        for c in [4003u16, 4007, 4009] {
            assert_eq!(close_action(Some(c)), CloseAction::Reidentify, "{c}");
        }
        for c in [
            4000u16, 4001, 4002, 4005, 4008, 1000, 1001, 1006, 1011, 4900,
        ] {
            assert_eq!(close_action(Some(c)), CloseAction::Resume, "{c}");
        }
        assert_eq!(close_action(None), CloseAction::Resume);
    }

    #[test]
    fn intents_include_dms_guild_messages_and_content() {
        let b = DiscordIntents::default().bits();
        assert_eq!(b, 1 | (1 << 9) | (1 << 12) | (1 << 15));
        assert_eq!(b, 37377);
        let all = DiscordIntents {
            guild_members: true,
            presence: true,
            voice_states: true,
        };
        assert_eq!(all.bits(), b | 2 | 256 | 128);
        assert_eq!(
            all.privileged_names(),
            vec![
                "Message Content Intent",
                "Server Members Intent",
                "Presence Intent"
            ]
        );
    }

    #[test]
    fn connect_url_sets_version_and_encoding() {
        assert_eq!(
            connect_url("wss://gateway.discord.gg"),
            "wss://gateway.discord.gg/?v=10&encoding=json"
        );
        assert_eq!(
            connect_url("wss://gateway-us-east1-b.discord.gg/?v=9"),
            "wss://gateway-us-east1-b.discord.gg/?v=10&encoding=json"
        );
        assert_eq!(
            connect_url("ws://127.0.0.1:9/gateway"),
            "ws://127.0.0.1:9/gateway?v=10&encoding=json"
        );
    }

    #[test]
    fn payloads() {
        let p: Payload =
            serde_json::from_str(r#"{"op":10,"d":{"heartbeat_interval":41250},"s":null,"t":null}"#)
                .unwrap();
        assert_eq!(p.op, op::HELLO);
        assert_eq!(p.d["heartbeat_interval"], 41250);
        assert_eq!(heartbeat(None).to_string(), r#"{"op":1,"d":null}"#);
        assert_eq!(heartbeat(Some(7))["d"], 7);
        let i = identify("T", 37377);
        assert_eq!(i["op"], 2);
        assert_eq!(i["d"]["intents"], 37377);
        assert_eq!(i["d"]["properties"]["browser"], "carapace");
        let r = resume("T", "abc", 12);
        assert_eq!(r["d"]["seq"], 12);
        assert_eq!(r["d"]["session_id"], "abc");
    }

    #[test]
    fn snowflake_time() {
        // Discord's documented example: 175928847299117063 → 2016-04-30 11:18:25.796 UTC.
        assert_eq!(snowflake_ms("175928847299117063"), Some(1_462_015_105_796));
        assert_eq!(snowflake_ms("x"), None);
    }
}
