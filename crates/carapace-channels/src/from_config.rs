//! Builds a channel adapter from the configuration (`channels.<id>`): tokens from the config's
//! secrets, `apiBaseUrl` (matrix: `homeserver`), `mediaMaxMb`. `inbox` is always available.

use std::sync::Arc;

use carapace_policy::Config;
use carapace_policy::config::{ChannelConfig, Secret};

use crate::inbox::{InboxAdapter, InboxSettings};
use crate::matrix::{MatrixAdapter, MatrixSettings};
use crate::{
    ChannelAdapter, ChannelError, DiscordAdapter, DiscordSettings, SlackAdapter, SlackSettings,
    TelegramAdapter, TelegramSettings, WebhookAdapter, WebhookSettings,
};

/// Channel ids carapace has an adapter for.
pub const KNOWN_CHANNELS: &[&str] = &["discord", "inbox", "matrix", "slack", "telegram", "webhook"];

fn not_configured(channel: &str, reason: impl Into<String>) -> ChannelError {
    ChannelError::NotConfigured {
        channel: channel.to_string(),
        reason: reason.into(),
    }
}

fn secret(channel: &str, key: &str, s: Option<&Secret>) -> Result<String, ChannelError> {
    let s =
        s.ok_or_else(|| not_configured(channel, format!("channels.{channel}.{key} is not set")))?;
    match s.expose() {
        Some(v) if !v.is_empty() => Ok(v.to_string()),
        _ => Err(not_configured(
            channel,
            format!(
                "channels.{channel}.{key} references {}, which is not set in the environment",
                s.env_refs()
                    .iter()
                    .map(|r| format!("${{{r}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

fn max_bytes(c: &ChannelConfig) -> Option<u64> {
    c.media_max_mb.map(|mb| (mb * 1024.0 * 1024.0) as u64)
}

/// The adapter for `channel`. A channel that is not configured (or disabled, or lacks its
/// token) is `CHANNEL_NOT_CONFIGURED`, naming what is missing.
pub fn adapter_from_config(
    config: &Config,
    channel: &str,
) -> Result<Arc<dyn ChannelAdapter>, ChannelError> {
    let entry = config.file.channels.get(channel);
    if let Some(c) = entry
        && c.enabled == Some(false)
    {
        return Err(not_configured(
            channel,
            format!("channels.{channel}.enabled is false"),
        ));
    }
    if channel == "inbox" {
        return Ok(Arc::new(InboxAdapter::new(InboxSettings {
            dir: config.inbox_dir(),
            media_max_bytes: entry.and_then(max_bytes),
        })));
    }
    let Some(c) = entry else {
        return Err(not_configured(
            channel,
            format!(
                "there is no channels.{channel} in the config (configured: {})",
                config.channel_ids().join(", ")
            ),
        ));
    };
    let adapter: Arc<dyn ChannelAdapter> = match channel {
        "matrix" => {
            let hs = c
                .api_base_url
                .clone()
                .or_else(|| c.homeserver.clone())
                .ok_or_else(|| not_configured(channel, "channels.matrix.homeserver is not set"))?;
            let token = secret(channel, "accessToken", c.access_token.as_ref())?;
            let mut s = MatrixSettings::new(hs, token);
            s.user_id = c.user_id.clone();
            s.media_max_bytes = max_bytes(c);
            Arc::new(MatrixAdapter::new(s)?)
        }
        "discord" => {
            let token = secret(channel, "token", c.token.as_ref().or(c.bot_token.as_ref()))?;
            let mut s = DiscordSettings::new(token);
            if let Some(u) = &c.api_base_url {
                s.api_base_url = u.clone();
            }
            s.media_max_bytes = max_bytes(c);
            Arc::new(DiscordAdapter::new(s)?)
        }
        "telegram" => {
            let token = secret(
                channel,
                "botToken",
                c.bot_token.as_ref().or(c.token.as_ref()),
            )?;
            let mut s = TelegramSettings::new(token);
            if let Some(u) = &c.api_base_url {
                s.api_base_url = u.clone();
            }
            s.media_max_bytes = max_bytes(c);
            Arc::new(TelegramAdapter::new(s)?)
        }
        "slack" => {
            let token = secret(
                channel,
                "botToken",
                c.bot_token.as_ref().or(c.token.as_ref()),
            )?;
            let mut s = SlackSettings::new(token);
            if let Some(u) = &c.api_base_url {
                s.api_base_url = u.clone();
            }
            s.media_max_bytes = max_bytes(c);
            Arc::new(SlackAdapter::new(s)?)
        }
        "webhook" => {
            let url = match (&c.api_base_url, &c.url) {
                (Some(u), _) => u.clone(),
                (None, Some(_)) => secret(channel, "url", c.url.as_ref())?,
                (None, None) => {
                    return Err(not_configured(channel, "channels.webhook.url is not set"));
                }
            };
            let mut s = WebhookSettings::new(url);
            for (name, v) in c.headers.iter().flatten() {
                let value = secret(channel, &format!("headers.{name}"), Some(v))?;
                s.headers.push((name.clone(), value.into()));
            }
            s.media_max_bytes = max_bytes(c);
            Arc::new(WebhookAdapter::new(s)?)
        }
        other => {
            return Err(not_configured(
                other,
                format!(
                    "carapace has no adapter for channel {other:?} (it has: {})",
                    KNOWN_CHANNELS.join(", ")
                ),
            ));
        }
    };
    Ok(adapter)
}
