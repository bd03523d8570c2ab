//! Message targets: `user:<id>`, `channel:<id>`, `room:<id>`.

use crate::ChannelError;

/// Where a message goes. The meaning of each kind is channel-specific (see `docs/channels.md`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A person: a DM / private chat is opened (or reused) for them.
    User(String),
    /// A channel, group or chat the bot can post in.
    Channel(String),
    /// A room (Matrix-style); channels without rooms refuse it.
    Room(String),
}

/// Longest target id, in bytes (Matrix's bound on room and user ids; every platform's ids are
/// shorter).
pub const MAX_TARGET_ID_BYTES: usize = 255;

impl Target {
    /// Parses `user:<id>`, `channel:<id>` or `room:<id>`. Anything else (no prefix, unknown
    /// prefix, empty id, an id over [`MAX_TARGET_ID_BYTES`], whitespace or control characters
    /// in the id) is `BAD_REQUEST`.
    pub fn parse(s: &str) -> Result<Target, ChannelError> {
        let shown: String = if s.len() > 80 {
            format!("{}…", s.chars().take(60).collect::<String>())
        } else {
            s.to_string()
        };
        let bad = |why: &str| ChannelError::BadRequest {
            message: format!(
                "invalid target {shown:?}: {why}; expected user:<id>, channel:<id> or room:<id>"
            ),
        };
        let (kind, id) = s.split_once(':').ok_or_else(|| bad("no kind prefix"))?;
        if id.is_empty() {
            return Err(bad("empty id"));
        }
        if id.len() > MAX_TARGET_ID_BYTES {
            return Err(bad(&format!(
                "the id is {} bytes, over the limit of {MAX_TARGET_ID_BYTES} bytes",
                id.len()
            )));
        }
        if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("the id contains whitespace or control characters"));
        }
        match kind {
            "user" => Ok(Target::User(id.to_string())),
            "channel" => Ok(Target::Channel(id.to_string())),
            "room" => Ok(Target::Room(id.to_string())),
            _ => Err(bad("unknown kind")),
        }
    }

    /// The id without its kind.
    pub fn id(&self) -> &str {
        match self {
            Target::User(id) | Target::Channel(id) | Target::Room(id) => id,
        }
    }

    /// `user`, `channel` or `room`.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::User(_) => "user",
            Target::Channel(_) => "channel",
            Target::Room(_) => "room",
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind(), self.id())
    }
}

impl std::str::FromStr for Target {
    type Err = ChannelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Target::parse(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use carapace_policy::{CarapaceError, ErrorCode};

    #[test]
    fn parses_the_three_kinds_and_round_trips() {
        for s in ["user:42", "channel:C0NF841BK", "room:!abc:example.org"] {
            let t = Target::parse(s).unwrap();
            assert_eq!(t.to_string(), s);
        }
        assert_eq!(Target::parse("room:!a:b").unwrap().id(), "!a:b");
    }

    #[test]
    fn anything_else_is_bad_request() {
        for s in [
            "",
            "42",
            "user:",
            "chan:1",
            "User:1",
            "user:a b",
            "user:a\nb",
            ":x",
            &format!("room:{}", "a".repeat(MAX_TARGET_ID_BYTES + 1)),
        ] {
            let e = Target::parse(s).unwrap_err();
            assert_eq!(e.code(), ErrorCode::BadRequest, "{s:?}");
        }
    }
}
