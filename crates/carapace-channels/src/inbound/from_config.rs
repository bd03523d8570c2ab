//! Builds the inbound sources of the configured channels: every channel under `channels` that
//! carapace can receive on, unless `enabled: false` or `receive: false`.

use std::sync::Arc;

use carapace_policy::Config;
use carapace_policy::config::{AllowBotsSetting, AutoJoin, ChannelConfig};

use super::InboundSource;
use super::discord_gateway::{DiscordGatewaySettings, DiscordGatewaySource, DiscordIntents};
use super::matrix_sync::{JoinPolicy, MatrixSource, MatrixSourceSettings};
use super::slack_socket::{SlackSocketSettings, SlackSocketSource};
use super::telegram_updates::{TelegramSource, TelegramSourceSettings};
use super::websocket::AllowBots;
use crate::ChannelError;

/// Channels with an inbound source in this crate.
pub const RECEIVING: &[&str] = &["matrix", "telegram", "discord", "slack"];

fn secret(channel: &str, key: &str, c: &ChannelConfig) -> Result<String, ChannelError> {
    let s = match key {
        "accessToken" => c.access_token.as_ref(),
        "appToken" => c.app_token.as_ref(),
        "token" => c.token.as_ref().or(c.bot_token.as_ref()),
        _ => c.bot_token.as_ref().or(c.token.as_ref()),
    };
    let nc = |reason: String| ChannelError::NotConfigured {
        channel: channel.to_string(),
        reason,
    };
    let s = s.ok_or_else(|| nc(format!("channels.{channel}.{key} is not set")))?;
    match s.expose() {
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => Err(nc(format!(
            "channels.{channel}.{key} references {}, which is not set in the environment",
            s.env_refs()
                .iter()
                .map(|r| format!("${{{r}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

fn allow_bots(c: &ChannelConfig) -> AllowBots {
    match c.allow_bots.unwrap_or_default() {
        AllowBotsSetting::Never => AllowBots::Never,
        AllowBotsSetting::Mentions => AllowBots::Mentions,
        AllowBotsSetting::Always => AllowBots::Always,
    }
}

/// Whether `channel` should receive: configured, enabled, `receive` not false, and a channel
/// this crate has a source for.
pub fn wants_source(config: &Config, channel: &str) -> bool {
    RECEIVING.contains(&channel)
        && config
            .file
            .channels
            .get(channel)
            .is_some_and(|c| c.enabled != Some(false) && c.receive != Some(false))
}

/// The source of one channel.
pub fn source_from_config(
    config: &Config,
    channel: &str,
) -> Result<Arc<dyn InboundSource>, ChannelError> {
    let c = config
        .file
        .channels
        .get(channel)
        .ok_or_else(|| ChannelError::NotConfigured {
            channel: channel.to_string(),
            reason: format!("there is no channels.{channel} in the config"),
        })?;
    match channel {
        "matrix" => {
            let hs = c
                .api_base_url
                .clone()
                .or_else(|| c.homeserver.clone())
                .ok_or_else(|| ChannelError::NotConfigured {
                    channel: channel.into(),
                    reason: "channels.matrix.homeserver is not set".into(),
                })?;
            let mut s = MatrixSourceSettings::new(
                hs,
                secret(channel, "accessToken", c)?,
                config.state_dir.clone(),
            );
            s.user_id = c.user_id.clone();
            s.join = match c.auto_join.unwrap_or(AutoJoin::Always) {
                AutoJoin::Always => JoinPolicy::Always,
                AutoJoin::Off => JoinPolicy::Off,
                AutoJoin::Allowlist => {
                    JoinPolicy::Allowlist(c.auto_join_allowlist.clone().unwrap_or_default())
                }
            };
            Ok(Arc::new(MatrixSource::new(s)?))
        }
        "telegram" => {
            let mut s = TelegramSourceSettings::new(
                secret(channel, "botToken", c)?,
                config.state_dir.clone(),
            );
            if let Some(u) = &c.api_base_url {
                s.api_base_url = u.clone();
            }
            Ok(Arc::new(TelegramSource::new(s)?))
        }
        "discord" => {
            let mut s = DiscordGatewaySettings::new(secret(channel, "token", c)?);
            if let Some(u) = &c.api_base_url {
                s.api_base_url = u.clone();
            }
            let i = c.intents.clone().unwrap_or_default();
            s.intents = DiscordIntents {
                guild_members: i.guild_members.unwrap_or(false),
                presence: i.presence.unwrap_or(false),
                voice_states: i.voice_states.unwrap_or(false),
            };
            s.allow_bots = allow_bots(c);
            Ok(Arc::new(DiscordGatewaySource::new(s)?))
        }
        "slack" => {
            // Only Socket Mode is implemented; the config check refuses `mode: "http"`, and
            // this refuses it again for configs built without that check.
            if let Some(m) = c.mode.as_deref().filter(|m| *m != "socket") {
                return Err(ChannelError::NotConfigured {
                    channel: channel.into(),
                    reason: format!(
                        "channels.slack.mode {m:?} is not implemented; carapace receives Slack over Socket Mode only"
                    ),
                });
            }
            let mut s = SlackSocketSettings::new(
                secret(channel, "appToken", c)?,
                secret(channel, "botToken", c)?,
            );
            if let Some(u) = &c.api_base_url {
                s.api_base_url = u.clone();
            }
            s.allow_bots = allow_bots(c);
            Ok(Arc::new(SlackSocketSource::new(s)?))
        }
        other => Err(ChannelError::NotConfigured {
            channel: other.to_string(),
            reason: format!(
                "carapace has no inbound source for channel {other:?} here (it has: {})",
                RECEIVING.join(", ")
            ),
        }),
    }
}

/// A channel's source, or why it cannot be built.
pub type BuiltSource = Result<Arc<dyn InboundSource>, ChannelError>;

/// The sources of every channel that should receive, each built or the error that stops it.
pub fn sources_from_config(config: &Config) -> Vec<(String, BuiltSource)> {
    config
        .file
        .channels
        .keys()
        .filter(|k| wants_source(config, k))
        .map(|k| (k.clone(), source_from_config(config, k)))
        .collect()
}
