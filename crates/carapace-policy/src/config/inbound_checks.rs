//! Checks of the receiving settings (`channels.<id>` access keys, `session`, `hooks`). Fail
//! closed: a setting that restricts something and that carapace cannot honour is an error, and
//! so is an access setting OpenClaw itself refuses (`dmPolicy: "open"` without `"*"`).

use super::inbound::{HooksConfig, IdList, normalize_hooks_path};
use super::model::{ChannelConfig, ConfigFile};
use super::values::{DmPolicy, DmScope, SandboxMode};

type Check = Result<(), (String, String)>;

/// Channels that have an inbound source in carapace.
pub const RECEIVING_CHANNELS: &[&str] = &["matrix", "telegram", "discord", "slack"];

/// Gateway routes a `hooks.path` must not shadow.
const GATEWAY_PATHS: &[&str] = &["/tools", "/mcp", "/v1", "/healthz", "/metrics"];

pub(super) fn file(f: &ConfigFile) -> Check {
    for (id, ch) in &f.channels {
        channel(id, ch)?;
    }
    session(f)?;
    bindings(f)?;
    hooks(&f.hooks)
}

fn bindings(f: &ConfigFile) -> Check {
    for (i, b) in f.bindings.iter().enumerate() {
        let at = format!("bindings[{i}]");
        if crate::session::normalize_agent_id(&b.agent_id) != b.agent_id {
            return Err((
                format!("{at}.agentId"),
                format!("{:?} is not a valid agent id", b.agent_id),
            ));
        }
        for (key, v) in [
            ("guildId", &b.matches.guild_id),
            ("teamId", &b.matches.team_id),
        ] {
            if v.is_some() {
                return Err((
                    format!("{at}.match.{key}"),
                    "not supported: carapace's sources do not report guilds or teams, so this binding could not be honoured; match on channel, accountId or peer instead".into(),
                ));
            }
        }
        if let Some(p) = &b.matches.peer {
            if !["direct", "dm", "group", "channel"].contains(&p.kind.as_str()) {
                return Err((
                    format!("{at}.match.peer.kind"),
                    format!("{:?} is not one of direct, dm, group, channel", p.kind),
                ));
            }
            if p.id.trim().is_empty() {
                return Err((
                    format!("{at}.match.peer.id"),
                    "an empty id matches nothing".into(),
                ));
            }
        }
    }
    Ok(())
}

fn differ(a: Option<&IdList>, b: Option<&IdList>) -> bool {
    matches!((a, b), (Some(x), Some(y)) if x != y)
}

fn channel(id: &str, ch: &ChannelConfig) -> Check {
    let at = |k: &str| format!("channels.{id}.{k}");
    if ch.encryption == Some(true) {
        return Err((
            at("encryption"),
            "true is not supported: carapace has no end-to-end encryption, so it cannot read or answer in encrypted rooms (and never sends plaintext into them); remove the key or set it to false".into(),
        ));
    }
    if let Some(m) = ch.mode.as_deref() {
        match (id, m) {
            ("slack", "socket") => {}
            ("slack", "http") => {
                return Err((
                    at("mode"),
                    "\"http\" (the Events API over HTTP request URLs) is not implemented: carapace receives Slack over Socket Mode only; set \"socket\" (or remove the key) and set channels.slack.appToken".into(),
                ));
            }
            ("slack", other) => {
                return Err((
                    at("mode"),
                    format!("{other:?} is not a Slack mode; carapace implements \"socket\""),
                ));
            }
            _ => {
                return Err((
                    at("mode"),
                    format!("channel {id} has no mode (only channels.slack.mode exists)"),
                ));
            }
        }
    }
    if ch.intents.is_some() && id != "discord" {
        return Err((
            at("intents"),
            format!("Gateway intents are a Discord setting; channel {id} has none"),
        ));
    }
    if ch.app_token.is_some() && id != "slack" {
        return Err((
            at("appToken"),
            format!("an app-level token is a Slack setting; channel {id} has none"),
        ));
    }
    if ch.receive == Some(true) && !RECEIVING_CHANNELS.contains(&id) {
        return Err((
            at("receive"),
            format!(
                "channel {id} cannot receive messages in carapace (receiving channels: {}; inbound webhooks are configured under \"hooks\")",
                RECEIVING_CHANNELS.join(", ")
            ),
        ));
    }
    if let Some(dm) = &ch.dm {
        if let (Some(a), Some(b)) = (ch.dm_policy, dm.policy)
            && a != b
        {
            return Err((
                at("dm.policy"),
                format!("\"{b}\" contradicts channels.{id}.dmPolicy \"{a}\"; set one of them"),
            ));
        }
        if differ(ch.allow_from.as_ref(), dm.allow_from.as_ref()) {
            return Err((
                at("dm.allowFrom"),
                format!("contradicts channels.{id}.allowFrom; set one of them"),
            ));
        }
    }
    let policy = ch
        .dm_policy
        .or(ch.dm.as_ref().and_then(|d| d.policy))
        .unwrap_or(DmPolicy::Pairing);
    let allow = ch
        .allow_from
        .as_ref()
        .or(ch.dm.as_ref().and_then(|d| d.allow_from.as_ref()));
    let dm_on = ch.dm.as_ref().and_then(|d| d.enabled) != Some(false);
    if dm_on && ch.allowlist_only != Some(true) {
        match policy {
            DmPolicy::Open if !allow.is_some_and(IdList::has_wildcard) => {
                return Err((
                    at("dmPolicy"),
                    format!(
                        "\"open\" lets anyone DM the bot and must be confirmed with \"*\" in channels.{id}.allowFrom (as in OpenClaw); add \"*\", or use \"pairing\" / \"allowlist\""
                    ),
                ));
            }
            DmPolicy::Allowlist if allow.is_none_or(IdList::is_empty) => {
                return Err((
                    at("allowFrom"),
                    format!(
                        "dmPolicy \"allowlist\" needs at least one sender id in channels.{id}.allowFrom (an empty allowlist blocks every DM: use dmPolicy \"disabled\" for that)"
                    ),
                ));
            }
            _ => {}
        }
    }
    for (list, key) in [
        (allow, "allowFrom"),
        (ch.group_allow_from.as_ref(), "groupAllowFrom"),
    ] {
        for (i, e) in list.into_iter().flat_map(|l| l.0.iter()).enumerate() {
            if e.trim().is_empty() || e.chars().any(char::is_control) {
                return Err((
                    format!("{}[{i}]", at(key)),
                    "an id must be a non-empty string without control characters".into(),
                ));
            }
        }
    }
    for (key, map) in [("groups", &ch.groups), ("rooms", &ch.rooms)] {
        for k in map.iter().flat_map(|m| m.keys()) {
            if k.trim().is_empty() {
                return Err((at(key), "a group key must be a chat id or \"*\"".into()));
            }
        }
    }
    if let Some(n) = ch.text_chunk_limit
        && !(1..=65_536).contains(&n)
    {
        return Err((
            at("textChunkLimit"),
            format!("{n} is out of range; allowed: 1 to 65536 characters"),
        ));
    }
    Ok(())
}

fn agent_layers_non_main(f: &ConfigFile) -> Option<String> {
    let layers = std::iter::once(("agents.defaults".to_string(), &f.agents.defaults))
        .chain(
            f.agents
                .entries
                .iter()
                .map(|(k, a)| (format!("agents.entries.{k}"), a)),
        )
        .chain(
            f.agents
                .list
                .iter()
                .enumerate()
                .map(|(i, a)| (format!("agents.list[{i}]"), a)),
        );
    for (path, a) in layers {
        if a.sandbox.as_ref().and_then(|s| s.mode) == Some(SandboxMode::NonMain) {
            return Some(format!("{path}.sandbox.mode"));
        }
    }
    None
}

fn session(f: &ConfigFile) -> Check {
    let s = &f.session;
    if s.send_policy.is_some() {
        return Err((
            "session.sendPolicy".into(),
            "not implemented by carapace; it restricts where replies may go, so carapace refuses the file rather than ignore it (remove it, or block the channel with its dmPolicy/groupPolicy)".into(),
        ));
    }
    if s.dm_scope == Some(DmScope::Main)
        && let Some(path) = agent_layers_non_main(f)
    {
        return Err((
            "session.dmScope".into(),
            format!(
                "\"main\" puts every direct message into the agent's main session, which {path} \"non-main\" leaves unsandboxed: messages from chat users would run commands on the host. Use \"per-channel-peer\" (carapace's default), or sandbox mode \"all\""
            ),
        ));
    }
    if let Some(k) = &s.main_key
        && !valid_key_part(k)
    {
        return Err((
            "session.mainKey".into(),
            format!("{k:?} is not a valid key (letters, digits, '-', '_' and '.', at most 64)"),
        ));
    }
    for (name, ids) in s.identity_links.iter().flatten() {
        if !valid_key_part(name) {
            return Err((
                format!("session.identityLinks.{name}"),
                "a canonical name is letters, digits, '-', '_' and '.', at most 64".into(),
            ));
        }
        for (i, id) in ids.iter().enumerate() {
            if !id.contains(':') || id.trim().is_empty() {
                return Err((
                    format!("session.identityLinks.{name}[{i}]"),
                    format!(
                        "{id:?} is not a provider-prefixed id (\"telegram:42\", \"matrix:@alice:example.org\")"
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn valid_key_part(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 64
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

fn hooks(h: &HooksConfig) -> Check {
    if let Some(p) = &h.path {
        let n = normalize_hooks_path(p);
        if n.is_empty() || n == "/" {
            return Err((
                "hooks.path".into(),
                format!(
                    "{p:?} would take the whole gateway; use a dedicated path such as \"/hooks\""
                ),
            ));
        }
        if n.contains("..")
            || n.contains("//")
            || n.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
        {
            return Err((
                "hooks.path".into(),
                format!("{p:?} is not a plain URL path"),
            ));
        }
        if let Some(g) = GATEWAY_PATHS
            .iter()
            .find(|g| n == **g || n.starts_with(&format!("{g}/")))
        {
            return Err((
                "hooks.path".into(),
                format!("{p:?} overlaps the gateway's own {g} route"),
            ));
        }
    }
    if let Some(m) = h.max_body_bytes
        && !(1..=64 * 1024 * 1024).contains(&m)
    {
        return Err((
            "hooks.maxBodyBytes".into(),
            format!("{m} is out of range; allowed: 1 byte to 64 MiB"),
        ));
    }
    for (i, p) in h.allowed_session_key_prefixes.iter().flatten().enumerate() {
        if p.trim().is_empty() {
            return Err((
                format!("hooks.allowedSessionKeyPrefixes[{i}]"),
                "an empty prefix would allow every key; list real prefixes such as \"hook:\""
                    .into(),
            ));
        }
    }
    if h.is_enabled() {
        let has = h
            .token
            .as_ref()
            .map(|t| t.shown_raw())
            .is_some_and(|raw| !raw.trim().is_empty());
        if !has {
            return Err((
                "hooks.token".into(),
                "hooks.enabled is true but there is no token; set a long random secret (\"${CARAPACE_HOOKS_TOKEN}\")".into(),
            ));
        }
    }
    Ok(())
}
