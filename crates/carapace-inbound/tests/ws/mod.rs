//! The loopback Discord Gateway and Slack Socket Mode stand-ins of carapace-channels' tests,
//! shared here so the conversation tests run against the same protocol checks.
#![allow(dead_code)]

#[path = "../../../carapace-channels/tests/common/discord_gateway_standin.rs"]
pub mod discord;
#[path = "../../../carapace-channels/tests/common/recording_sink.rs"]
pub mod recording_sink;
#[path = "../../../carapace-channels/tests/common/slack_socket_standin.rs"]
pub mod slack;
