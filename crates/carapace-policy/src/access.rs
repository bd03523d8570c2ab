//! Who may talk to a channel's bot: the decision for one inbound message, from the channel's
//! `dmPolicy` / `allowFrom` / `groupPolicy` / `groupAllowFrom` / `groups` / `requireMention`
//! settings and whether the sender was approved by pairing.
//!
//! Direct messages:
//! - `disabled` (or `dm.enabled: false`): dropped.
//! - `open`: allowed (the config must confirm it with `"*"` in `allowFrom`).
//! - `allowlist`: allowed when the sender is in `allowFrom` or was approved by pairing.
//! - `pairing` (default): the same, else the sender is offered a pairing code and nothing
//!   reaches the model.
//!
//! Groups (pairing approvals never count here):
//! 1. `groupPolicy: "disabled"`: dropped.
//! 2. A group blocked in `groups` (`enabled: false` / `allow: false`) is dropped under any policy.
//! 3. `allowlist` (default): the group must be admitted — listed in `groups` (by id, or `"*"`
//!    for all) — or, when `groups` lists nothing, the sender must be in `groupAllowFrom`
//!    (falling back to `allowFrom` without its `"*"` when `groupAllowFrom` is unset).
//!    A non-empty `groupAllowFrom` also restricts the senders of admitted groups.
//! 4. A group's own `users` / `allowFrom` (and a topic's) restrict its senders further.
//! 5. Mention gating: `requireMention` of the topic, else the group, else `"*"`, else the
//!    channel, else true. A reply to the bot counts as a mention (the source reports it).
//!
//! `allowlistOnly: true` turns `pairing` and `open` into `allowlist` (and `open` groups into
//! `allowlist`). Ids are compared trimmed and case-insensitively, with a `<channel>:` prefix
//! (and Telegram's `tg:`) ignored. Display names never decide anything.

use std::collections::BTreeMap;

use crate::config::{ChannelConfig, DmPolicy, GroupPolicy, GroupRule, IdList};
use crate::routing::PeerKind;

/// A channel's access settings, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelAccess {
    /// Channel id.
    pub channel: String,
    /// Effective DM policy.
    pub dm: DmPolicy,
    /// Normalised DM allowlist (without `"*"`).
    pub allow_from: Vec<String>,
    /// `"*"` was in `allowFrom`.
    pub allow_any_dm: bool,
    /// Effective group policy.
    pub group: GroupPolicy,
    /// Normalised group sender allowlist (explicit or the `allowFrom` fallback).
    pub group_allow_from: Vec<String>,
    /// `groupAllowFrom` was given explicitly (it then restricts admitted groups too).
    pub group_allow_from_explicit: bool,
    /// Per-group rules by normalised chat id (`groups` merged with Matrix's `rooms`).
    pub groups: BTreeMap<String, GroupRule>,
    /// The `"*"` rule.
    pub any_group: Option<GroupRule>,
    /// Channel-level `requireMention` (default true).
    pub require_mention: bool,
}

/// One message, as the access decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Incoming<'a> {
    /// Direct or group.
    pub kind: PeerKind,
    /// Sender id.
    pub sender: &'a str,
    /// Chat id (the group; for a DM the platform's DM id).
    pub chat: &'a str,
    /// Thread / topic id inside a group.
    pub thread: Option<&'a str>,
    /// The bot was mentioned or replied to.
    pub mentioned: bool,
}

/// Why a message was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// `dmPolicy: "disabled"`.
    DmDisabled,
    /// `dmPolicy: "allowlist"` and the sender is neither listed nor paired.
    DmNotAllowed,
    /// `groupPolicy: "disabled"`.
    GroupsDisabled,
    /// The group is blocked, or not admitted by the allowlist.
    GroupNotAllowed,
    /// The sender may not trigger the bot in this group.
    SenderNotAllowed,
    /// The group requires a mention and there was none.
    NotMentioned,
}

impl DenyReason {
    /// A short, stable name for logs and status (`dm-disabled`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::DmDisabled => "dm-disabled",
            DenyReason::DmNotAllowed => "dm-not-allowed",
            DenyReason::GroupsDisabled => "groups-disabled",
            DenyReason::GroupNotAllowed => "group-not-allowed",
            DenyReason::SenderNotAllowed => "sender-not-allowed",
            DenyReason::NotMentioned => "not-mentioned",
        }
    }
}

/// The decision for one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Hand it to the agent.
    Allow,
    /// A DM from an unknown sender under `pairing`: offer (or remind of) a pairing code; the
    /// message itself goes nowhere.
    Pair,
    /// Drop it.
    Deny(DenyReason),
}

/// An id as compared: trimmed, lower-cased, without a `<channel>:` (or Telegram `tg:`) prefix.
pub fn normalize_id(channel: &str, id: &str) -> String {
    let t = id.trim();
    let lower = t.to_lowercase();
    let mut prefixes = vec![format!("{}:", channel.to_lowercase())];
    if channel == "telegram" {
        prefixes.push("tg:".into());
    }
    for p in prefixes {
        if let Some(rest) = lower.strip_prefix(&p) {
            return rest.trim().to_string();
        }
    }
    lower
}

fn norm_list(channel: &str, l: Option<&IdList>) -> (Vec<String>, bool) {
    let mut any = false;
    let mut out = Vec::new();
    for e in l.into_iter().flat_map(IdList::iter) {
        if e.trim() == "*" {
            any = true;
        } else {
            let n = normalize_id(channel, e);
            if !n.is_empty() && !out.contains(&n) {
                out.push(n);
            }
        }
    }
    (out, any)
}

impl ChannelAccess {
    /// Resolves `channels.<channel>` (absent: all defaults: pairing, allowlist, mentions).
    pub fn from_config(channel: &str, c: Option<&ChannelConfig>) -> ChannelAccess {
        let default = ChannelConfig::default();
        let c = c.unwrap_or(&default);
        let only = c.allowlist_only == Some(true);
        let dm_section = c.dm.as_ref();
        let mut dm = c
            .dm_policy
            .or(dm_section.and_then(|d| d.policy))
            .unwrap_or(DmPolicy::Pairing);
        if dm_section.and_then(|d| d.enabled) == Some(false) {
            dm = DmPolicy::Disabled;
        }
        if only && matches!(dm, DmPolicy::Pairing | DmPolicy::Open) {
            dm = DmPolicy::Allowlist;
        }
        let (allow_from, allow_any_dm) = norm_list(
            channel,
            c.allow_from
                .as_ref()
                .or(dm_section.and_then(|d| d.allow_from.as_ref())),
        );
        let mut group = c.group_policy.unwrap_or(GroupPolicy::Allowlist);
        if only && group == GroupPolicy::Open {
            group = GroupPolicy::Allowlist;
        }
        let explicit = c.group_allow_from.is_some();
        let group_allow_from = if explicit {
            norm_list(channel, c.group_allow_from.as_ref()).0
        } else {
            allow_from.clone()
        };
        let mut groups = BTreeMap::new();
        let mut any_group = None;
        for (k, rule) in c.rooms.iter().flatten().chain(c.groups.iter().flatten()) {
            if k.trim() == "*" {
                any_group = Some(rule.clone());
            } else {
                groups.insert(normalize_id(channel, k), rule.clone());
            }
        }
        ChannelAccess {
            channel: channel.to_string(),
            dm,
            allow_from,
            allow_any_dm,
            group,
            group_allow_from,
            group_allow_from_explicit: explicit,
            groups,
            any_group,
            require_mention: c.require_mention.unwrap_or(true),
        }
    }

    fn listed(&self, list: &[String], sender: &str) -> bool {
        let s = normalize_id(&self.channel, sender);
        list.contains(&s)
    }

    /// Whether a DM from `sender` is admitted by the config alone (not counting pairing).
    pub fn dm_allowed_by_config(&self, sender: &str) -> bool {
        self.allow_any_dm && self.dm == DmPolicy::Open || self.listed(&self.allow_from, sender)
    }

    /// The decision for `m`. `paired`: the sender is in the channel's pairing allow store.
    pub fn decide(&self, m: &Incoming<'_>, paired: bool) -> Decision {
        match m.kind {
            PeerKind::Direct => self.decide_dm(m.sender, paired),
            PeerKind::Group => self.decide_group(m),
        }
    }

    fn decide_dm(&self, sender: &str, paired: bool) -> Decision {
        match self.dm {
            DmPolicy::Disabled => Decision::Deny(DenyReason::DmDisabled),
            DmPolicy::Open if self.allow_any_dm => Decision::Allow,
            // `open` without "*" is refused at load; should it get here, it is an allowlist.
            DmPolicy::Open | DmPolicy::Allowlist => {
                if paired || self.listed(&self.allow_from, sender) {
                    Decision::Allow
                } else {
                    Decision::Deny(DenyReason::DmNotAllowed)
                }
            }
            DmPolicy::Pairing => {
                if paired || self.listed(&self.allow_from, sender) {
                    Decision::Allow
                } else {
                    Decision::Pair
                }
            }
        }
    }

    fn decide_group(&self, m: &Incoming<'_>) -> Decision {
        if self.group == GroupPolicy::Disabled {
            return Decision::Deny(DenyReason::GroupsDisabled);
        }
        let rule = self.groups.get(&normalize_id(&self.channel, m.chat));
        let topic = rule
            .and_then(|r| r.topics.as_ref())
            .zip(m.thread)
            .and_then(|(t, id)| t.get(id.trim()));
        // The most specific rule decides: a topic over its group, a group over "*".
        let blocked = match (topic, rule) {
            (Some(t), _) if t.enabled.is_some() || t.allow.is_some() => t.blocked(),
            (_, Some(r)) => r.blocked(),
            (_, None) => self.any_group.as_ref().is_some_and(GroupRule::blocked),
        };
        if blocked {
            return Decision::Deny(DenyReason::GroupNotAllowed);
        }
        if self.group == GroupPolicy::Allowlist {
            let admitted_group = rule.is_some() || self.any_group.is_some();
            let sender_listed = self.listed(&self.group_allow_from, m.sender);
            if admitted_group {
                if self.group_allow_from_explicit
                    && !self.group_allow_from.is_empty()
                    && !sender_listed
                {
                    return Decision::Deny(DenyReason::SenderNotAllowed);
                }
            } else if !sender_listed {
                return Decision::Deny(DenyReason::GroupNotAllowed);
            }
        }
        for r in [rule, topic].into_iter().flatten() {
            let (list, _) = norm_list(&self.channel, r.users.as_ref().or(r.allow_from.as_ref()));
            if (r.users.is_some() || r.allow_from.is_some()) && !self.listed(&list, m.sender) {
                return Decision::Deny(DenyReason::SenderNotAllowed);
            }
        }
        let require = topic
            .and_then(|t| t.require_mention)
            .or(rule.and_then(|r| r.require_mention))
            .or(self.any_group.as_ref().and_then(|r| r.require_mention))
            .unwrap_or(self.require_mention);
        if require && !m.mentioned {
            return Decision::Deny(DenyReason::NotMentioned);
        }
        Decision::Allow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(json: &str) -> ChannelAccess {
        let c: ChannelConfig = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        ChannelAccess::from_config("telegram", Some(&c))
    }

    fn dm(sender: &str) -> Incoming<'_> {
        Incoming {
            kind: PeerKind::Direct,
            sender,
            chat: sender,
            thread: None,
            mentioned: false,
        }
    }

    fn group<'a>(chat: &'a str, sender: &'a str, mentioned: bool) -> Incoming<'a> {
        Incoming {
            kind: PeerKind::Group,
            sender,
            chat,
            thread: None,
            mentioned,
        }
    }

    #[test]
    fn dm_policies() {
        let a = ChannelAccess::from_config("telegram", None);
        assert_eq!(a.decide(&dm("42"), false), Decision::Pair);
        assert_eq!(a.decide(&dm("42"), true), Decision::Allow);
        let a = access(r#"{"dmPolicy": "allowlist", "allowFrom": ["tg:42", 43]}"#);
        assert_eq!(a.decide(&dm("42"), false), Decision::Allow);
        assert_eq!(a.decide(&dm("43"), false), Decision::Allow);
        assert_eq!(
            a.decide(&dm("44"), false),
            Decision::Deny(DenyReason::DmNotAllowed)
        );
        assert_eq!(a.decide(&dm("44"), true), Decision::Allow, "paired counts");
        let a = access(r#"{"dmPolicy": "open", "allowFrom": ["*"]}"#);
        assert_eq!(a.decide(&dm("anyone"), false), Decision::Allow);
        let a = access(r#"{"dmPolicy": "disabled", "allowFrom": ["42"]}"#);
        assert_eq!(
            a.decide(&dm("42"), true),
            Decision::Deny(DenyReason::DmDisabled)
        );
        let a = access(r#"{"dm": {"policy": "open", "allowFrom": ["*"]}, "allowlistOnly": true}"#);
        assert_eq!(
            a.decide(&dm("x"), false),
            Decision::Deny(DenyReason::DmNotAllowed)
        );
        let a = access(r#"{"dm": {"enabled": false}}"#);
        assert_eq!(
            a.decide(&dm("x"), true),
            Decision::Deny(DenyReason::DmDisabled)
        );
    }

    #[test]
    fn groups_default_to_allowlist_with_mentions() {
        let a = ChannelAccess::from_config("telegram", None);
        assert_eq!(
            a.decide(&group("-1", "42", true), false),
            Decision::Deny(DenyReason::GroupNotAllowed)
        );
        // Pairing approvals do not open groups.
        assert_eq!(
            a.decide(&group("-1", "42", true), true),
            Decision::Deny(DenyReason::GroupNotAllowed)
        );
        let a = access(r#"{"groups": {"*": {"requireMention": true}}}"#);
        assert_eq!(a.decide(&group("-1", "42", true), false), Decision::Allow);
        assert_eq!(
            a.decide(&group("-1", "42", false), false),
            Decision::Deny(DenyReason::NotMentioned)
        );
        let a =
            access(r#"{"groups": {"-1": {"requireMention": false}, "-2": {"enabled": false}}}"#);
        assert_eq!(a.decide(&group("-1", "42", false), false), Decision::Allow);
        assert_eq!(
            a.decide(&group("-2", "42", true), false),
            Decision::Deny(DenyReason::GroupNotAllowed)
        );
        assert_eq!(
            a.decide(&group("-3", "42", true), false),
            Decision::Deny(DenyReason::GroupNotAllowed)
        );
    }

    #[test]
    fn group_sender_lists() {
        // No groups listed: groupAllowFrom admits its senders anywhere.
        let a = access(r#"{"groupAllowFrom": ["42"]}"#);
        assert_eq!(a.decide(&group("-9", "42", true), false), Decision::Allow);
        assert_eq!(
            a.decide(&group("-9", "43", true), false),
            Decision::Deny(DenyReason::GroupNotAllowed)
        );
        // Fallback to allowFrom, never to its "*".
        let a = access(r#"{"dmPolicy": "open", "allowFrom": ["*", "7"]}"#);
        assert_eq!(a.decide(&group("-9", "7", true), false), Decision::Allow);
        assert_eq!(
            a.decide(&group("-9", "8", true), false),
            Decision::Deny(DenyReason::GroupNotAllowed)
        );
        // Listed group + explicit groupAllowFrom: both must hold.
        let a = access(r#"{"groups": {"-1": {}}, "groupAllowFrom": ["42"]}"#);
        assert_eq!(a.decide(&group("-1", "42", true), false), Decision::Allow);
        assert_eq!(
            a.decide(&group("-1", "43", true), false),
            Decision::Deny(DenyReason::SenderNotAllowed)
        );
        // Per-group users.
        let a = access(r#"{"groupPolicy": "open", "groups": {"-1": {"users": ["5"]}}}"#);
        assert_eq!(a.decide(&group("-1", "5", true), false), Decision::Allow);
        assert_eq!(
            a.decide(&group("-1", "6", true), false),
            Decision::Deny(DenyReason::SenderNotAllowed)
        );
        assert_eq!(a.decide(&group("-2", "6", true), false), Decision::Allow);
        let a = access(r#"{"groupPolicy": "disabled", "groups": {"*": {}}}"#);
        assert_eq!(
            a.decide(&group("-1", "5", true), false),
            Decision::Deny(DenyReason::GroupsDisabled)
        );
    }

    #[test]
    fn topics_override_their_group() {
        let a = access(
            r#"{"groups": {"-1": {"requireMention": true, "topics": {"7": {"requireMention": false}, "8": {"enabled": false}}}}}"#,
        );
        let mut m = group("-1", "42", false);
        m.thread = Some("7");
        assert_eq!(a.decide(&m, false), Decision::Allow);
        m.thread = Some("8");
        assert_eq!(
            a.decide(&{ m }, false),
            Decision::Deny(DenyReason::GroupNotAllowed)
        );
        m.thread = None;
        assert_eq!(
            a.decide(&m, false),
            Decision::Deny(DenyReason::NotMentioned)
        );
    }

    #[test]
    fn ids_normalise() {
        assert_eq!(normalize_id("telegram", " TG:42 "), "42");
        assert_eq!(normalize_id("telegram", "telegram:42"), "42");
        assert_eq!(normalize_id("matrix", "matrix:@Alice:HS"), "@alice:hs");
        assert_eq!(normalize_id("matrix", "@alice:hs"), "@alice:hs");
    }
}
