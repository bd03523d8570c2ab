//! Small value types of the configuration: enums with precise messages, octal modes, secrets.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Declares a string enum whose deserialization error names the value and the allowed values:
/// `"sesion" is not one of none, ro, rw, session`.
macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident { $( $(#[$vdoc:meta])* $variant:ident = $text:literal ),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $( $(#[$vdoc])* #[doc = concat!("`", $text, "`")] $variant, )+ }

        impl $name {
            /// Allowed wire values.
            pub const VALUES: &'static [&'static str] = &[$($text),+];
            /// Wire value.
            pub fn as_str(self) -> &'static str { match self { $( $name::$variant => $text, )+ } }
            /// Parses the wire value.
            pub fn parse(s: &str) -> Option<Self> { match s { $( $text => Some($name::$variant), )+ _ => None } }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> { s.serialize_str(self.as_str()) }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = serde_json::Value::deserialize(d)?;
                match v.as_str().and_then($name::parse) {
                    Some(x) => Ok(x),
                    None => Err(serde::de::Error::custom(format!(
                        "{} is not one of {}", v, $name::VALUES.join(", ")
                    ))),
                }
            }
        }
    };
}

string_enum! {
    /// When sessions are sandboxed.
    SandboxMode { Off = "off", NonMain = "non-main", All = "all" }
}
string_enum! {
    /// Which runtime runs sandboxes.
    Backend { Auto = "auto", Bwrap = "bwrap", Docker = "docker" }
}
string_enum! {
    /// How many sandboxes: one per session, per agent, or one shared.
    Scope { Session = "session", Agent = "agent", Shared = "shared" }
}
string_enum! {
    /// What the sandbox sees of the agent workspace (docs/sandbox.md).
    WorkspaceAccess { None = "none", Ro = "ro", Rw = "rw", Session = "session" }
}
string_enum! {
    /// With `workspaceAccess: "session"`: what `/agent` shows.
    SessionAgentAccess { Ro = "ro", None = "none" }
}
string_enum! {
    /// Who may send a channel's bot a direct message (`channels.<id>.dmPolicy`).
    DmPolicy { Pairing = "pairing", Allowlist = "allowlist", Open = "open", Disabled = "disabled" }
}
string_enum! {
    /// Which group chats a channel's bot answers in (`channels.<id>.groupPolicy`).
    GroupPolicy { Allowlist = "allowlist", Open = "open", Disabled = "disabled" }
}
string_enum! {
    /// Which Matrix room invites the bot accepts (`channels.matrix.autoJoin`).
    AutoJoin { Always = "always", Allowlist = "allowlist", Off = "off" }
}
string_enum! {
    /// How direct messages map to sessions (`session.dmScope`).
    DmScope {
        Main = "main",
        PerPeer = "per-peer",
        PerChannelPeer = "per-channel-peer",
        PerAccountChannelPeer = "per-account-channel-peer",
    }
}

/// A permission mode written as an octal string ("0644"). Only the permission bits (0o7777).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl Mode {
    /// Parses "0644" / "644" / "0o644".
    pub fn parse(s: &str) -> Option<Mode> {
        let digits = s.strip_prefix("0o").unwrap_or(s);
        if digits.is_empty()
            || digits.len() > 4
            || !digits.chars().all(|c| ('0'..='7').contains(&c))
        {
            return None;
        }
        u32::from_str_radix(digits, 8).ok().map(Mode)
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::mode_string(self.0))
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        v.as_str().and_then(Mode::parse).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{v} is not an octal mode string; write it like \"0644\" (a JSON number is refused because 644 and 0o644 differ)"
            ))
        })
    }
}

/// A secret value from the config (token, password). Display, Debug and Serialize print the
/// reference as written (`${TELEGRAM_BOT_TOKEN}`) or `"***"`, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    /// The text as written in the config.
    raw: String,
    /// The value after `${ENV}` expansion; `None` when a referenced variable is unset.
    value: Option<String>,
}

impl Secret {
    /// Builds a secret from the config text, expanding `${VAR}` references with `env`.
    pub fn resolve(raw: &str, env: &dyn Fn(&str) -> Option<String>) -> Secret {
        let value = super::expand::expand_env(raw, env).ok();
        Secret {
            raw: raw.to_string(),
            value,
        }
    }

    /// A literal secret (tests, generated tokens).
    pub fn literal(value: impl Into<String>) -> Secret {
        Secret {
            raw: "***".to_string(),
            value: Some(value.into()),
        }
    }

    /// The resolved value, if every referenced variable was set.
    pub fn expose(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// The variables this secret references (for "set X" hints).
    pub fn env_refs(&self) -> Vec<String> {
        super::expand::env_refs(&self.raw)
    }

    /// The text as written in the config (crate-internal: used to re-resolve references).
    pub(crate) fn shown_raw(&self) -> String {
        self.raw.clone()
    }

    /// How it is shown: the `${VAR}` reference, or `***` for a literal.
    pub fn shown(&self) -> String {
        if self.raw.contains("${") {
            self.raw.clone()
        } else {
            "***".to_string()
        }
    }
}

impl Secret {
    /// How a secret URL is shown: the `${VAR}` reference, or `scheme://host/***`.
    pub fn shown_as_url(&self) -> String {
        if self.raw.contains("${") {
            self.raw.clone()
        } else {
            super::redact::redact_secret_url(&self.raw)
        }
    }
}

/// Serializes an optional secret URL as [`Secret::shown_as_url`].
pub(crate) fn serialize_secret_url<S: Serializer>(
    v: &Option<Secret>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(secret) => s.serialize_str(&secret.shown_as_url()),
        None => s.serialize_none(),
    }
}

/// Serializes an optional URL without its userinfo and query.
pub(crate) fn serialize_redacted_url<S: Serializer>(
    v: &Option<String>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(u) => s.serialize_str(&super::redact::redact_url(u)),
        None => s.serialize_none(),
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({})", self.shown())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.shown())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Secrets are expanded after deserialization (see `Config::parse`); here keep the text.
        let raw = String::deserialize(d)?;
        Ok(Secret {
            value: Some(raw.clone()),
            raw,
        })
    }
}
