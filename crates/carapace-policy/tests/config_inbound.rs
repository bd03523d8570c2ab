//! The receiving settings: OpenClaw's shapes load and mean what they say; access settings
//! carapace cannot honour, or that OpenClaw itself refuses, are `CONFIG_INVALID` at the path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use carapace_policy::access::{ChannelAccess, Decision, DenyReason, Incoming};
use carapace_policy::config::{AutoJoin, DmPolicy, DmScope, GroupPolicy};
use carapace_policy::routing::{Peer, PeerKind, RoutingSettings, route};
use carapace_policy::{CarapaceError, Config, ConfigError, ErrorCode, LoadEnv};

fn env_var(name: &str) -> Option<String> {
    (name == "HOOKS_TOKEN").then(|| "hook-secret-value-0123456789".to_string())
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(
        text,
        "test.json5",
        &LoadEnv {
            var: &env_var,
            home: "/home/u",
            state_dir: "/home/u/.carapace".into(),
        },
    )
}

fn refused(text: &str, path: &str, says: &[&str]) {
    let e = match parse(text) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e,
    };
    assert_eq!(e.code(), ErrorCode::ConfigInvalid);
    match &e {
        ConfigError::Invalid {
            path: p, message, ..
        } => {
            assert_eq!(p, path, "{text}: {message}");
            for s in says {
                assert!(message.contains(s), "{path}: {message:?} lacks {s:?}");
            }
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn openclaw_shapes_load() {
    let c = parse(
        r#"{
          session: { dmScope: "per-account-channel-peer", identityLinks: { alice: ["telegram:42", "matrix:@alice:hs"] }, reset: { mode: "daily" } },
          hooks: { enabled: true, token: "${HOOKS_TOKEN}", path: "/ingest/", allowedAgentIds: ["main"], mappings: [] },
          bindings: [ { agentId: "ops", match: { channel: "telegram", peer: { kind: "group", id: "-100" } } } ],
          channels: {
            telegram: { botToken: "t", dmPolicy: "allowlist", allowFrom: [42, "tg:43"], groupAllowFrom: ["42"],
                        groups: { "*": { requireMention: true }, "-100": { requireMention: false, topics: { "7": { enabled: false } }, systemPrompt: "x" } } },
            matrix: { homeserver: "http://127.0.0.1:8008", accessToken: "m", dm: { policy: "pairing" }, groupPolicy: "open",
                      autoJoin: "allowlist", autoJoinAllowlist: ["!r:hs"], rooms: { "!r:hs": { allow: true, users: ["@a:hs"] } },
                      initialSyncLimit: 10, threadReplies: "inbound", encryption: false },
          },
        }"#,
    )
    .unwrap_or_else(|e| panic!("{}", e.to_envelope().message));
    let f = &c.file;
    assert_eq!(f.session.dm_scope, Some(DmScope::PerAccountChannelPeer));
    assert!(f.hooks.is_enabled());
    assert_eq!(f.hooks.base_path(), "/ingest");
    assert_eq!(
        f.hooks.token.as_ref().unwrap().expose(),
        Some("hook-secret-value-0123456789")
    );
    let shown = serde_json::to_string(f).unwrap();
    assert!(!shown.contains("hook-secret-value"), "{shown}");
    let tg = &f.channels["telegram"];
    assert_eq!(tg.dm_policy, Some(DmPolicy::Allowlist));
    assert_eq!(tg.allow_from.as_ref().unwrap().0, vec!["42", "tg:43"]);
    let mx = &f.channels["matrix"];
    assert_eq!(mx.auto_join, Some(AutoJoin::Allowlist));
    assert_eq!(mx.group_policy, Some(GroupPolicy::Open));
    for w in [
        "session.reset:",
        "hooks.mappings:",
        "channels.telegram.groups.-100.systemPrompt:",
        "channels.matrix.initialSyncLimit:",
        "channels.matrix.threadReplies:",
    ] {
        assert_eq!(
            c.warnings.iter().filter(|x| x.starts_with(w)).count(),
            1,
            "{w}: {:?}",
            c.warnings
        );
    }

    // The settings drive the decisions.
    let a = ChannelAccess::from_config("telegram", Some(tg));
    let g = |chat, thread, mentioned| Incoming {
        kind: PeerKind::Group,
        sender: "42",
        chat,
        thread,
        mentioned,
    };
    assert_eq!(a.decide(&g("-100", None, false), false), Decision::Allow);
    assert_eq!(
        a.decide(&g("-100", Some("7"), true), false),
        Decision::Deny(DenyReason::GroupNotAllowed)
    );
    assert_eq!(
        a.decide(&g("-5", None, false), false),
        Decision::Deny(DenyReason::NotMentioned)
    );
    let m = ChannelAccess::from_config("matrix", Some(mx));
    assert_eq!(m.dm, DmPolicy::Pairing);
    let r = route(
        f,
        &RoutingSettings::from_config(f),
        &Peer {
            channel: "telegram",
            account: None,
            kind: PeerKind::Group,
            id: "-100",
            thread: None,
        },
    );
    assert_eq!(r.agent_id, "ops");
    let r = route(
        f,
        &RoutingSettings::from_config(f),
        &Peer {
            channel: "matrix",
            account: None,
            kind: PeerKind::Direct,
            id: "@alice:hs",
            thread: None,
        },
    );
    assert_eq!(r.session_key, "agent:main:matrix:default:direct:alice");
}

#[test]
fn access_settings_carapace_cannot_honour_or_openclaw_refuses() {
    refused(
        r#"{channels: {telegram: {botToken: "t", dmPolicy: "open"}}}"#,
        "channels.telegram.dmPolicy",
        &["\"*\"", "allowFrom"],
    );
    refused(
        r#"{channels: {telegram: {botToken: "t", dmPolicy: "open", allowFrom: ["42"]}}}"#,
        "channels.telegram.dmPolicy",
        &["\"*\""],
    );
    refused(
        r#"{channels: {telegram: {botToken: "t", dmPolicy: "allowlist"}}}"#,
        "channels.telegram.allowFrom",
        &["at least one sender"],
    );
    refused(
        r#"{channels: {matrix: {homeserver: "http://h", accessToken: "x", encryption: true}}}"#,
        "channels.matrix.encryption",
        &["end-to-end encryption", "plaintext"],
    );
    refused(
        r#"{channels: {matrix: {homeserver: "http://h", accessToken: "x", dmPolicy: "open", allowFrom: ["*"], dm: {policy: "pairing"}}}}"#,
        "channels.matrix.dm.policy",
        &["\"pairing\" contradicts", "\"open\""],
    );
    refused(
        r#"{channels: {inbox: {receive: true}}}"#,
        "channels.inbox.receive",
        &["cannot receive"],
    );
    refused(
        r#"{channels: {telegram: {botToken: "t", groups: {"-1": {tools: {deny: ["exec"]}}}}}}"#,
        "channels.telegram.groups.-1.tools",
        &["unknown key \"tools\""],
    );
    refused(
        r#"{session: {sendPolicy: {default: "deny"}}}"#,
        "session.sendPolicy",
        &["restricts"],
    );
    refused(
        r#"{session: {dmScope: "main"}, agents: {defaults: {sandbox: {mode: "non-main"}}}}"#,
        "session.dmScope",
        &["unsandboxed", "per-channel-peer"],
    );
    refused(
        r#"{session: {dmScope: "main"}, agents: {list: [{id: "x", sandbox: {mode: "non-main"}}]}}"#,
        "session.dmScope",
        &["agents.list[0].sandbox.mode"],
    );
    refused(r#"{hooks: {enabled: true}}"#, "hooks.token", &["no token"]);
    refused(
        r#"{hooks: {enabled: true, token: "x", path: "/"}}"#,
        "hooks.path",
        &["whole gateway"],
    );
    refused(
        r#"{hooks: {enabled: true, token: "x", path: "/tools"}}"#,
        "hooks.path",
        &["/tools"],
    );
    refused(
        r#"{bindings: [{agentId: "ops", match: {channel: "discord", guildId: "1"}}]}"#,
        "bindings[0].match.guildId",
        &["not supported"],
    );
    refused(
        r#"{channels: {telegram: {botToken: "t", textChunkLimit: 0}}}"#,
        "channels.telegram.textChunkLimit",
        &["1 to 65536"],
    );
    // `main` is fine when nothing is unsandboxed by non-main.
    parse(r#"{session: {dmScope: "main"}, agents: {defaults: {sandbox: {mode: "all"}}}}"#).unwrap();
}
