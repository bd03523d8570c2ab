//! The Discord Gateway and Slack Socket Mode settings: OpenClaw's key names load, the app
//! token is a secret that never shows, and a Slack transport carapace does not implement is
//! `CONFIG_INVALID` naming the key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use carapace_policy::config::AllowBotsSetting;
use carapace_policy::{CarapaceError, Config, ConfigError, ErrorCode, LoadEnv};

fn env_var(name: &str) -> Option<String> {
    (name == "SLACK_APP_TOKEN").then(|| "xapp-1-A0-123-envsecretvalue".to_string())
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

fn refused_at(text: &str, path: &str, says: &str) {
    let e = parse(text)
        .err()
        .unwrap_or_else(|| panic!("accepted: {text}"));
    assert_eq!(e.code(), ErrorCode::ConfigInvalid);
    match &e {
        ConfigError::Invalid {
            path: p, message, ..
        } => {
            assert_eq!(p, path, "{message}");
            assert!(message.contains(says), "{message:?} lacks {says:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn discord_and_slack_keys_load_with_their_defaults() {
    let c = parse(
        r#"{ channels: {
            discord: { token: "d", intents: { guildMembers: true, presence: false }, allowBots: "mentions" },
            slack: { botToken: "xoxb-1", appToken: "${SLACK_APP_TOKEN}", mode: "socket", allowBots: true, mediaMaxMb: 2 },
        } }"#,
    )
    .unwrap();
    let d = &c.file.channels["discord"];
    let i = d.intents.clone().unwrap();
    assert_eq!(
        (i.guild_members, i.presence, i.voice_states),
        (Some(true), Some(false), None)
    );
    assert_eq!(d.allow_bots, Some(AllowBotsSetting::Mentions));
    let s = &c.file.channels["slack"];
    assert_eq!(
        s.app_token.as_ref().and_then(|t| t.expose()),
        Some("xapp-1-A0-123-envsecretvalue")
    );
    assert_eq!(s.allow_bots, Some(AllowBotsSetting::Always));
    assert_eq!(s.media_max_mb, Some(2.0));
    // Nothing set: no privileged intents, no other bots.
    let c = parse(r#"{ channels: { discord: { token: "d" } } }"#).unwrap();
    assert_eq!(c.file.channels["discord"].intents, None);
    assert_eq!(c.file.channels["discord"].allow_bots, None);
    assert_eq!(AllowBotsSetting::default(), AllowBotsSetting::Never);
}

#[test]
fn the_app_token_is_redacted_when_shown() {
    let c = parse(
        r#"{ channels: { slack: { botToken: "xoxb-1", appToken: "xapp-1-literal-secret-value" } } }"#,
    )
    .unwrap();
    let shown = serde_json::to_string(&c.file).unwrap();
    assert!(!shown.contains("literal-secret-value"), "{shown}");
    assert!(shown.contains("\"appToken\":\"***\""), "{shown}");
    let debug = format!("{:?}", c.file.channels["slack"]);
    assert!(!debug.contains("literal-secret-value"), "{debug}");
    // A reference is shown as written, never expanded.
    let c = parse(r#"{ channels: { slack: { botToken: "x", appToken: "${SLACK_APP_TOKEN}" } } }"#)
        .unwrap();
    let shown = serde_json::to_string(&c.file).unwrap();
    assert!(!shown.contains("envsecretvalue"), "{shown}");
    assert!(shown.contains("${SLACK_APP_TOKEN}"), "{shown}");
}

#[test]
fn slack_http_mode_is_refused_naming_the_key() {
    refused_at(
        r#"{ channels: { slack: { botToken: "x", mode: "http", signingSecret: "s" } } }"#,
        "channels.slack.mode",
        "Socket Mode",
    );
    refused_at(
        r#"{ channels: { slack: { botToken: "x", mode: "webhooks" } } }"#,
        "channels.slack.mode",
        "socket",
    );
    refused_at(
        r#"{ channels: { telegram: { botToken: "x", mode: "socket" } } }"#,
        "channels.telegram.mode",
        "slack",
    );
}

#[test]
fn malformed_values_are_refused() {
    let e = parse(r#"{ channels: { discord: { token: "d", allowBots: "sometimes" } } }"#)
        .err()
        .unwrap();
    assert_eq!(e.code(), ErrorCode::ConfigInvalid);
    assert!(
        e.to_string().contains("allowBots") || format!("{e:?}").contains("allowBots"),
        "{e:?}"
    );
    let e =
        parse(r#"{ channels: { discord: { token: "d", intents: { messageContent: true } } } }"#)
            .err()
            .unwrap();
    assert_eq!(e.code(), ErrorCode::ConfigInvalid);
    refused_at(
        r#"{ channels: { telegram: { botToken: "x", intents: { presence: true } } } }"#,
        "channels.telegram.intents",
        "Discord",
    );
    refused_at(
        r#"{ channels: { discord: { token: "x", appToken: "xapp-1" } } }"#,
        "channels.discord.appToken",
        "Slack",
    );
}
