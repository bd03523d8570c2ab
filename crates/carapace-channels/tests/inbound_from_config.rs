//! `inbound::from_config`: a configured Discord or Slack channel gets its WebSocket source
//! (with the intents and `allowBots` of the config), a missing token is named, and a Slack
//! channel with a transport carapace does not implement gets no source.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use carapace_channels::inbound::from_config::{
    RECEIVING, source_from_config, sources_from_config, wants_source,
};
use carapace_policy::{CarapaceError, Config, ErrorCode, LoadEnv};

fn err(c: &Config, channel: &str) -> carapace_channels::ChannelError {
    match source_from_config(c, channel) {
        Ok(_) => panic!("{channel}: built"),
        Err(e) => e,
    }
}

fn parse(text: &str) -> Config {
    let var = |n: &str| match n {
        "DT" => Some("discord-token".to_string()),
        "SA" => Some("xapp-1-A1-app".to_string()),
        "SB" => Some("xoxb-bot".to_string()),
        _ => None,
    };
    Config::parse(
        text,
        "test.json5",
        &LoadEnv {
            var: &var,
            home: "/nonexistent-home",
            state_dir: "/nonexistent-state".into(),
        },
    )
    .unwrap()
}

#[test]
fn discord_and_slack_are_built_from_the_config() {
    assert!(RECEIVING.contains(&"discord") && RECEIVING.contains(&"slack"));
    let c = parse(
        r#"{ channels: {
            discord: { token: "${DT}", intents: { guildMembers: true }, allowBots: "mentions" },
            slack: { botToken: "${SB}", appToken: "${SA}", mode: "socket" },
            webhook: { url: "https://example.invalid/hook" },
        } }"#,
    );
    let built = sources_from_config(&c);
    let mut names: Vec<&str> = built.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    assert_eq!(names, ["discord", "slack"]);
    for (name, b) in &built {
        let s = b.as_ref().unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(s.channel(), name);
        let stats = s
            .connection_stats()
            .expect("WebSocket sources keep counters");
        assert_eq!(stats.connects, 0);
    }
    let c = parse(r#"{ channels: { discord: { token: "${DT}", receive: false } } }"#);
    assert!(!wants_source(&c, "discord"));
}

#[test]
fn a_missing_token_names_its_key() {
    let c = parse(r#"{ channels: { slack: { botToken: "${SB}" } } }"#);
    let e = err(&c, "slack");
    assert_eq!(e.code(), ErrorCode::ChannelNotConfigured);
    assert!(e.to_string().contains("channels.slack.appToken"), "{e}");
    let c = parse(r#"{ channels: { slack: { botToken: "${SB}", appToken: "${UNSET}" } } }"#);
    let e = err(&c, "slack");
    assert!(e.to_string().contains("${UNSET}"), "{e}");
    assert!(!e.to_string().contains("xoxb-bot"), "{e}");
    let c = parse(r#"{ channels: { discord: { } } }"#);
    let e = err(&c, "discord");
    assert!(e.to_string().contains("channels.discord.token"), "{e}");
}
