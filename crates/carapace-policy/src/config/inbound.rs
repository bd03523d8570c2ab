//! The configuration of receiving: who may talk to a channel's bot (`channels.<id>.dmPolicy`,
//! `allowFrom`, `groupPolicy`, `groupAllowFrom`, `groups`, `requireMention`, Matrix's
//! `autoJoin`), how conversations map to sessions (top-level `session`), and the webhook
//! ingress (top-level `hooks`). Key names and shapes are OpenClaw's; what carapace does not
//! implement is listed in docs/inbound.md.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

use super::values::{DmPolicy, DmScope, Secret};

/// A list of sender or chat ids. Entries may be JSON strings or integers (Telegram ids are
/// often written as numbers); both become strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IdList(pub Vec<String>);

impl IdList {
    /// The entries.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Contains the wildcard `"*"`.
    pub fn has_wildcard(&self) -> bool {
        self.0.iter().any(|e| e.trim() == "*")
    }
}

impl<'de> Deserialize<'de> for IdList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let items = match v {
            serde_json::Value::Array(a) => a,
            other => {
                return Err(serde::de::Error::custom(format!(
                    "{other} is not a list of ids; write [\"id\", ...]"
                )));
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                serde_json::Value::String(s) => out.push(s),
                serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => out.push(n.to_string()),
                other => {
                    return Err(serde::de::Error::custom(format!(
                        "{other} is not an id (a string or an integer)"
                    )));
                }
            }
        }
        Ok(IdList(out))
    }
}

/// One entry of `channels.<id>.groups` (or Matrix's legacy `rooms`): a group chat by id, or
/// `"*"` for every group. Telegram forum topics nest the same shape under `topics`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GroupRule {
    /// `false` blocks the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Legacy form of `enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<bool>,
    /// Answer only when the bot is mentioned (or replied to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_mention: Option<bool>,
    /// Only these senders may trigger the bot in this group (Matrix's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<IdList>,
    /// Only these senders may trigger the bot in this group (Telegram's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_from: Option<IdList>,
    /// Per-topic overrides (Telegram forum topics), keyed by topic id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<BTreeMap<String, GroupRule>>,
}

impl GroupRule {
    /// `enabled: false` or `allow: false`.
    pub fn blocked(&self) -> bool {
        self.enabled == Some(false) || self.allow == Some(false)
    }
}

/// `channels.<id>.dm` (OpenClaw's older nesting of the DM settings).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DmSettings {
    /// `false` ignores every direct message (`dmPolicy: "disabled"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The DM policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<DmPolicy>,
    /// The DM allowlist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_from: Option<IdList>,
}

/// Top-level `session`: how conversations map to session keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SessionConfig {
    /// How direct messages are grouped into sessions. carapace's default is
    /// `per-channel-peer` (OpenClaw's is `main`): two people never share a session unless the
    /// config says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dm_scope: Option<DmScope>,
    /// The main session's key suffix (`agent:<id>:<mainKey>`), default `main`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_key: Option<String>,
    /// One person's ids on several channels (`{"alice": ["telegram:42", "matrix:@alice:hs"]}`),
    /// so they share one DM session under the per-peer scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_links: Option<BTreeMap<String, Vec<String>>>,
    /// OpenClaw's delivery rules: not implemented, and refused (they restrict delivery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_policy: Option<serde_json::Value>,
}

/// Top-level `hooks`: the authenticated webhook ingress (`POST <path>/agent`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HooksConfig {
    /// Serve the endpoints (default false). Requires `token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The shared secret callers present (`Authorization: Bearer`, or `x-openclaw-token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// Base path, default `/hooks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Agents a request may name (`agentId`); absent or `"*"`: any; `[]`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_agent_ids: Option<Vec<String>>,
    /// The session key when a request names none (else a fresh `hook:<uuid>` per request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_session_key: Option<String>,
    /// Let a request name its `sessionKey` (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_request_session_key: Option<bool>,
    /// With `allowRequestSessionKey`: the prefixes a requested key must start with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_session_key_prefixes: Option<Vec<String>>,
    /// Largest request body (default 256 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
}

/// Default `hooks.path`.
pub const DEFAULT_HOOKS_PATH: &str = "/hooks";
/// Default `hooks.maxBodyBytes`.
pub const DEFAULT_HOOKS_MAX_BODY: u64 = 256 * 1024;

impl HooksConfig {
    /// `hooks.enabled`.
    pub fn is_enabled(&self) -> bool {
        self.enabled == Some(true)
    }
    /// The base path, normalised: a leading `/`, no trailing `/`.
    pub fn base_path(&self) -> String {
        normalize_hooks_path(self.path.as_deref().unwrap_or(DEFAULT_HOOKS_PATH))
    }
}

/// `"hooks/"` → `"/hooks"`.
pub fn normalize_hooks_path(p: &str) -> String {
    let t = p.trim().trim_end_matches('/');
    if t.starts_with('/') {
        t.to_string()
    } else {
        format!("/{t}")
    }
}

/// One element of top-level `bindings`: messages matching `match` go to agent `agentId`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Binding {
    /// The agent that handles matching messages.
    pub agent_id: String,
    /// What a message must match.
    #[serde(rename = "match")]
    pub matches: BindingMatch,
    /// A note (ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `bindings[].match`: every key given must match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BindingMatch {
    /// Channel id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Account id (`"default"` for a single-account channel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    /// One conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<BindingPeer>,
    /// Discord guild: not known to carapace's sources, so refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<serde_json::Value>,
    /// Slack team: not known to carapace's sources, so refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<serde_json::Value>,
}

/// `bindings[].match.peer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BindingPeer {
    /// `direct` (or `dm`), `group` or `channel`.
    pub kind: String,
    /// The sender id (direct) or the chat id (group, channel).
    pub id: String,
}

/// `channels.discord.intents`: the privileged Gateway intents asked for besides Message
/// Content (each must also be switched on in Discord's developer portal).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DiscordIntentsConfig {
    /// `GUILD_MEMBERS` ("Server Members Intent"), default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_members: Option<bool>,
    /// `GUILD_PRESENCES` ("Presence Intent"), default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<bool>,
    /// `GUILD_VOICE_STATES`, default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice_states: Option<bool>,
}

/// `channels.{discord,slack}.allowBots`: which messages of other bots are handed over
/// (`false`, the default; `true`; or `"mentions"`: only those that mention this bot).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AllowBotsSetting {
    /// `false`
    #[default]
    Never,
    /// `"mentions"`
    Mentions,
    /// `true`
    Always,
}

impl Serialize for AllowBotsSetting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            AllowBotsSetting::Never => s.serialize_bool(false),
            AllowBotsSetting::Always => s.serialize_bool(true),
            AllowBotsSetting::Mentions => s.serialize_str("mentions"),
        }
    }
}

impl<'de> Deserialize<'de> for AllowBotsSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Bool(false) => Ok(AllowBotsSetting::Never),
            serde_json::Value::Bool(true) => Ok(AllowBotsSetting::Always),
            serde_json::Value::String(s) if s == "mentions" => Ok(AllowBotsSetting::Mentions),
            other => Err(serde::de::Error::custom(format!(
                "{other} is not an allowBots value; use false, true or \"mentions\""
            ))),
        }
    }
}
