//! Routing an inbound conversation to an agent and a session key, in OpenClaw's grammar.
//!
//! - Direct messages follow `session.dmScope`:
//!   - `main`: `agent:<agentId>:<mainKey>` (every DM of the agent in one session);
//!   - `per-peer`: `agent:<agentId>:direct:<peerId>`;
//!   - `per-channel-peer` (carapace's default): `agent:<agentId>:<channel>:direct:<peerId>`;
//!   - `per-account-channel-peer`: `agent:<agentId>:<channel>:<accountId>:direct:<peerId>`
//!     (account `default` when a channel has one account).
//!
//!   `session.identityLinks` replaces `<peerId>` with a canonical name when the sender's
//!   `<channel>:<id>` (or bare id) is listed, so one person shares a DM session across channels.
//! - Groups: `agent:<agentId>:<channel>:group:<chatId>` (Discord and Slack channels:
//!   `…:channel:<chatId>`); threads append `:thread:<threadId>`, Telegram forum topics
//!   `:topic:<topicId>`.
//! - Ids are trimmed and lower-cased, as OpenClaw does.
//! - The agent: the first of `bindings` that matches (peer, account, channel, in that order of
//!   specificity), else the default agent (`agents.list[]` with `default: true`, else the
//!   first of the list, else `main`).
//!
//! Pure: no I/O. The conversation service calls [`route`] for every message it accepts.

use crate::config::{Binding, ConfigFile, DmScope};
use crate::session::{DEFAULT_AGENT_ID, normalize_agent_id};

/// The account id of a channel that has one account.
pub const DEFAULT_ACCOUNT_ID: &str = "default";
/// The main session's default suffix.
pub const DEFAULT_MAIN_KEY: &str = "main";
/// carapace's default DM scope: two different people never share a session.
pub const DEFAULT_DM_SCOPE: DmScope = DmScope::PerChannelPeer;

/// Direct or group, as routing sees a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerKind {
    /// A direct message (the peer is the sender).
    Direct,
    /// A group chat or channel (the peer is the chat).
    Group,
}

/// One conversation to route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer<'a> {
    /// Channel id (`matrix`, `telegram`, …).
    pub channel: &'a str,
    /// The channel account, when the channel has several.
    pub account: Option<&'a str>,
    /// Direct or group.
    pub kind: PeerKind,
    /// The sender id (direct) or the chat id (group).
    pub id: &'a str,
    /// The thread or topic inside a group, if any.
    pub thread: Option<&'a str>,
}

/// Where a conversation goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The agent id.
    pub agent_id: String,
    /// The session key.
    pub session_key: String,
    /// Which rule chose the agent (`bindings[2]`, `default agent`).
    pub matched_by: String,
}

/// The session settings routing uses, resolved from `session`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingSettings {
    /// `session.dmScope` (default [`DEFAULT_DM_SCOPE`]).
    pub dm_scope: DmScope,
    /// `session.mainKey` (default `main`), lower-cased.
    pub main_key: String,
    /// `session.identityLinks`: canonical name → provider-prefixed ids, lower-cased.
    pub identity_links: Vec<(String, Vec<String>)>,
}

impl Default for RoutingSettings {
    fn default() -> Self {
        RoutingSettings {
            dm_scope: DEFAULT_DM_SCOPE,
            main_key: DEFAULT_MAIN_KEY.to_string(),
            identity_links: Vec::new(),
        }
    }
}

impl RoutingSettings {
    /// From the `session` section.
    pub fn from_config(file: &ConfigFile) -> RoutingSettings {
        let s = &file.session;
        RoutingSettings {
            dm_scope: s.dm_scope.unwrap_or(DEFAULT_DM_SCOPE),
            main_key: s
                .main_key
                .as_deref()
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .unwrap_or(DEFAULT_MAIN_KEY)
                .to_lowercase(),
            identity_links: s
                .identity_links
                .iter()
                .flatten()
                .map(|(k, v)| {
                    (
                        k.trim().to_string(),
                        v.iter().map(|i| i.trim().to_lowercase()).collect(),
                    )
                })
                .collect(),
        }
    }
}

/// `group` or `channel`: the word OpenClaw uses for a multi-person conversation of `channel`.
pub fn group_word(channel: &str) -> &'static str {
    match channel {
        "discord" | "slack" => "channel",
        _ => "group",
    }
}

/// `topic` for Telegram forum topics, `thread` elsewhere.
pub fn thread_word(channel: &str) -> &'static str {
    if channel == "telegram" {
        "topic"
    } else {
        "thread"
    }
}

fn norm(s: &str) -> String {
    s.trim().to_lowercase()
}

fn linked(settings: &RoutingSettings, channel: &str, peer: &str) -> Option<String> {
    let bare = norm(peer);
    let scoped = format!("{}:{bare}", norm(channel));
    settings
        .identity_links
        .iter()
        .find(|(_, ids)| ids.iter().any(|i| *i == bare || *i == scoped))
        .map(|(name, _)| name.to_lowercase())
}

/// The session key of `peer` for agent `agent_id`.
pub fn session_key(agent_id: &str, settings: &RoutingSettings, peer: &Peer<'_>) -> String {
    let agent = normalize_agent_id(agent_id);
    let channel = {
        let c = norm(peer.channel);
        if c.is_empty() {
            "unknown".to_string()
        } else {
            c
        }
    };
    match peer.kind {
        PeerKind::Direct => {
            let id = match settings.dm_scope {
                DmScope::Main => None,
                _ => Some(linked(settings, &channel, peer.id).unwrap_or_else(|| norm(peer.id))),
            }
            .filter(|i| !i.is_empty());
            match (settings.dm_scope, id) {
                (DmScope::PerAccountChannelPeer, Some(id)) => {
                    let account = peer
                        .account
                        .map(norm)
                        .filter(|a| !a.is_empty())
                        .unwrap_or_else(|| DEFAULT_ACCOUNT_ID.to_string());
                    format!("agent:{agent}:{channel}:{account}:direct:{id}")
                }
                (DmScope::PerChannelPeer, Some(id)) => {
                    format!("agent:{agent}:{channel}:direct:{id}")
                }
                (DmScope::PerPeer, Some(id)) => format!("agent:{agent}:direct:{id}"),
                _ => format!("agent:{agent}:{}", settings.main_key),
            }
        }
        PeerKind::Group => {
            let id = {
                let i = norm(peer.id);
                if i.is_empty() {
                    "unknown".to_string()
                } else {
                    i
                }
            };
            let mut key = format!("agent:{agent}:{channel}:{}:{id}", group_word(&channel));
            if let Some(t) = peer.thread.map(norm).filter(|t| !t.is_empty()) {
                key.push_str(&format!(":{}:{t}", thread_word(&channel)));
            }
            key
        }
    }
}

/// The default agent: `agents.list[]` with `default: true`, else the first of the list, else
/// `main`.
pub fn default_agent(file: &ConfigFile) -> String {
    let list = &file.agents.list;
    list.iter()
        .find(|a| a.default == Some(true))
        .or_else(|| list.first())
        .and_then(|a| a.id.as_deref())
        .map(normalize_agent_id)
        .unwrap_or_else(|| DEFAULT_AGENT_ID.to_string())
}

fn peer_kind_matches(kind: &str, peer: &Peer<'_>) -> bool {
    match peer.kind {
        PeerKind::Direct => kind == "direct" || kind == "dm",
        PeerKind::Group => kind == "group" || kind == "channel",
    }
}

/// How specific a binding is for `peer` (higher wins), or `None` when it does not match.
fn specificity(b: &Binding, peer: &Peer<'_>) -> Option<u8> {
    let m = &b.matches;
    if m.guild_id.is_some() || m.team_id.is_some() {
        return None; // refused at load; never matches
    }
    if let Some(c) = &m.channel
        && norm(c) != norm(peer.channel)
    {
        return None;
    }
    let account = peer
        .account
        .map(norm)
        .unwrap_or_else(|| DEFAULT_ACCOUNT_ID.to_string());
    if let Some(a) = &m.account_id
        && norm(a) != account
        && a.trim() != "*"
    {
        return None;
    }
    if let Some(p) = &m.peer {
        if !peer_kind_matches(&norm(&p.kind), peer) || norm(&p.id) != norm(peer.id) {
            return None;
        }
        return Some(3);
    }
    if m.account_id.as_deref().is_some_and(|a| a.trim() != "*") {
        return Some(2);
    }
    Some(1)
}

/// The agent and session key of `peer`.
pub fn route(file: &ConfigFile, settings: &RoutingSettings, peer: &Peer<'_>) -> Route {
    let best = file
        .bindings
        .iter()
        .enumerate()
        .filter_map(|(i, b)| specificity(b, peer).map(|s| (s, i, b)))
        // Most specific first; at equal specificity the earlier binding wins.
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let (agent_id, matched_by) = match best {
        Some((_, i, b)) => (normalize_agent_id(&b.agent_id), format!("bindings[{i}]")),
        None => (default_agent(file), "default agent".to_string()),
    };
    Route {
        session_key: session_key(&agent_id, settings, peer),
        agent_id,
        matched_by,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BindingMatch, BindingPeer};

    fn peer<'a>(channel: &'a str, kind: PeerKind, id: &'a str) -> Peer<'a> {
        Peer {
            channel,
            account: None,
            kind,
            id,
            thread: None,
        }
    }

    fn with_scope(s: DmScope) -> RoutingSettings {
        RoutingSettings {
            dm_scope: s,
            ..RoutingSettings::default()
        }
    }

    #[test]
    fn dm_scopes_follow_openclaw() {
        let p = peer("Matrix", PeerKind::Direct, "@Alice:Example.org");
        let cases = [
            (DmScope::Main, "agent:main:main"),
            (DmScope::PerPeer, "agent:main:direct:@alice:example.org"),
            (
                DmScope::PerChannelPeer,
                "agent:main:matrix:direct:@alice:example.org",
            ),
            (
                DmScope::PerAccountChannelPeer,
                "agent:main:matrix:default:direct:@alice:example.org",
            ),
        ];
        for (scope, want) in cases {
            assert_eq!(session_key("main", &with_scope(scope), &p), want);
        }
        let mut acct = p.clone();
        acct.account = Some("Work");
        assert_eq!(
            session_key("ops", &with_scope(DmScope::PerAccountChannelPeer), &acct),
            "agent:ops:matrix:work:direct:@alice:example.org"
        );
        let mut s = with_scope(DmScope::Main);
        s.main_key = "home".into();
        assert_eq!(session_key("main", &s, &p), "agent:main:home");
    }

    #[test]
    fn the_default_never_shares_a_session_between_two_people() {
        let s = RoutingSettings::default();
        let a = session_key("main", &s, &peer("telegram", PeerKind::Direct, "42"));
        let b = session_key("main", &s, &peer("telegram", PeerKind::Direct, "43"));
        let c = session_key("main", &s, &peer("discord", PeerKind::Direct, "42"));
        assert_eq!(a, "agent:main:telegram:direct:42");
        assert_ne!(a, b);
        assert_ne!(a, c, "the same id on two platforms is two people");
    }

    #[test]
    fn groups_threads_and_topics() {
        let s = RoutingSettings::default();
        let mut g = peer("telegram", PeerKind::Group, "-1001234567890");
        g.thread = Some("42");
        assert_eq!(
            session_key("main", &s, &g),
            "agent:main:telegram:group:-1001234567890:topic:42"
        );
        let mut d = peer("discord", PeerKind::Group, "123456");
        d.thread = Some("987654");
        assert_eq!(
            session_key("main", &s, &d),
            "agent:main:discord:channel:123456:thread:987654"
        );
        let m = peer("matrix", PeerKind::Group, "!Room:hs");
        assert_eq!(
            session_key("main", &s, &m),
            "agent:main:matrix:group:!room:hs"
        );
        // dmScope never merges groups.
        assert_eq!(
            session_key("main", &with_scope(DmScope::Main), &m),
            "agent:main:matrix:group:!room:hs"
        );
    }

    #[test]
    fn identity_links_join_one_person_across_channels() {
        let s = RoutingSettings {
            identity_links: vec![(
                "alice".into(),
                vec!["telegram:42".into(), "matrix:@alice:hs".into()],
            )],
            ..with_scope(DmScope::PerPeer)
        };
        let t = session_key("main", &s, &peer("telegram", PeerKind::Direct, "42"));
        let m = session_key("main", &s, &peer("matrix", PeerKind::Direct, "@Alice:hs"));
        assert_eq!(t, "agent:main:direct:alice");
        assert_eq!(t, m);
        let other = session_key("main", &s, &peer("discord", PeerKind::Direct, "42"));
        assert_eq!(other, "agent:main:direct:42");
    }

    fn binding(agent: &str, m: BindingMatch) -> Binding {
        Binding {
            agent_id: agent.into(),
            matches: m,
            comment: None,
        }
    }

    #[test]
    fn bindings_most_specific_wins() {
        let f = ConfigFile {
            bindings: vec![
                binding(
                    "chan",
                    BindingMatch {
                        channel: Some("telegram".into()),
                        ..Default::default()
                    },
                ),
                binding(
                    "peer",
                    BindingMatch {
                        channel: Some("telegram".into()),
                        peer: Some(BindingPeer {
                            kind: "group".into(),
                            id: "-100".into(),
                        }),
                        ..Default::default()
                    },
                ),
            ],
            ..ConfigFile::default()
        };
        let s = RoutingSettings::default();
        let r = route(&f, &s, &peer("telegram", PeerKind::Group, "-100"));
        assert_eq!(
            (r.agent_id.as_str(), r.matched_by.as_str()),
            ("peer", "bindings[1]")
        );
        assert_eq!(r.session_key, "agent:peer:telegram:group:-100");
        let r = route(&f, &s, &peer("telegram", PeerKind::Direct, "7"));
        assert_eq!(r.agent_id, "chan");
        let r = route(&f, &s, &peer("matrix", PeerKind::Direct, "@a:b"));
        assert_eq!(
            (r.agent_id.as_str(), r.matched_by.as_str()),
            ("main", "default agent")
        );
    }
}
