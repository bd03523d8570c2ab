//! Slack: receiving over Socket Mode.
//!
//! - At start, `auth.test` with the bot token says who the bot is (mentions, its own
//!   messages); a refused bot token stops here with `CHANNEL_UNAUTHORIZED`.
//! - Each connection starts with `apps.connections.open` (app-level token, `xapp-…`), whose
//!   one-time URL is opened; `hello` makes it connected. A refused app token stops with a
//!   typed error; a rate limit waits `Retry-After`; anything transient backs off.
//! - Every envelope is acknowledged with its `envelope_id` (one carrying a message only after
//!   the sink accepted it). A `disconnect` (`warning`, `refresh_requested`, …) opens a new
//!   connection at once; `link_disabled` (Socket Mode turned off) stops with a typed error.
//!   A connection silent for `idle_timeout` (no frame, not even a ping, while carapace pings
//!   every `ping_interval`) is dropped and replaced.
//! - `message` events in DMs and channels and `app_mention` in channels become
//!   [`InboundMessage`](crate::inbound::InboundMessage)s with `event_id` `<channel>:<ts>` and
//!   `thread` = `thread_ts`; files are fetched from `url_private_download` with the bot
//!   token, which is sent to Slack's own hosts only.
//! - Slack has no typing indicator for bots: `typing` is a no-op.

mod connection;
mod events;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio_tungstenite::Connector;
use tokio_util::sync::CancellationToken;

pub use super::websocket::{AllowBots, ConnectionStats, ReconnectPolicy};
pub use events::BotIdentity;

use self::connection::Ended;
use super::websocket::{
    Stats, describe_http_error, fetch_capped, http_client, media_url_allowed, tls_connector,
};
use super::{
    ChatRef, ConnectionState, FetchedMedia, InboundAttachment, InboundSink, InboundSource,
};
use crate::slack::SLACK_API_BASE;
use crate::{ChannelError, SecretString, Timeouts};

pub(crate) const CHANNEL: &str = "slack";

/// Hosts the bot token is sent to for file downloads (besides the host of `apiBaseUrl`); a
/// leading `.` means any subdomain.
pub const SLACK_FILE_HOSTS: &[&str] = &["files.slack.com", ".slack.com"];

/// Slack `error` values that mean the token is wrong, expired or revoked.
const AUTH_ERRORS: &[&str] = &[
    "not_authed",
    "invalid_auth",
    "account_inactive",
    "token_revoked",
    "token_expired",
];
/// Slack `error` values that mean "try again later".
const TRANSIENT_ERRORS: &[&str] = &[
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "ratelimited",
];

/// Settings of the Socket Mode source (config parsing lives elsewhere).
#[derive(Debug, Clone)]
pub struct SlackSocketSettings {
    /// The app-level token (`xapp-…`, scope `connections:write`; `channels.slack.appToken`).
    pub app_token: SecretString,
    /// The bot token (`xoxb-…`; `channels.slack.botToken`): `auth.test` and file downloads.
    pub bot_token: SecretString,
    /// Web API base, default [`SLACK_API_BASE`] (`apiBaseUrl`).
    pub api_base_url: String,
    /// The account id reported on messages, when the channel has several.
    pub account: Option<String>,
    /// Messages of other bots (`allowBots`), default none.
    pub allow_bots: AllowBots,
    /// HTTP timeouts (`auth.test`, `apps.connections.open`, downloads).
    pub timeouts: Timeouts,
    /// Backoff between reconnects.
    pub reconnect: ReconnectPolicy,
    /// Time for the WebSocket handshake and the `hello`. Default 30 s.
    pub handshake_timeout: Duration,
    /// How often carapace pings the connection. Default 30 s.
    pub ping_interval: Duration,
    /// A connection silent this long is replaced. Default 90 s.
    pub idle_timeout: Duration,
}

impl SlackSocketSettings {
    /// Defaults with these tokens.
    pub fn new(app_token: impl Into<SecretString>, bot_token: impl Into<SecretString>) -> Self {
        SlackSocketSettings {
            app_token: app_token.into(),
            bot_token: bot_token.into(),
            api_base_url: SLACK_API_BASE.to_string(),
            account: None,
            allow_bots: AllowBots::Never,
            timeouts: Timeouts::default(),
            reconnect: ReconnectPolicy::default(),
            handshake_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
        }
    }
}

pub(crate) struct Inner {
    settings: SlackSocketSettings,
    base: String,
    http: reqwest::Client,
    connector: Connector,
    stats: Stats,
    running: AtomicBool,
}

/// The Socket Mode source. Cheap to share (`Arc<dyn InboundSource>`).
pub struct SlackSocketSource {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SlackSocketSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackSocketSource")
            .field("api_base_url", &self.inner.base)
            .field("stats", &self.inner.stats.snapshot())
            .finish_non_exhaustive()
    }
}

/// Why a Web API call gave no answer to use.
enum CallError {
    Fatal(ChannelError),
    Retry {
        reason: String,
        after: Option<Duration>,
    },
}

fn not_configured(reason: impl Into<String>) -> ChannelError {
    ChannelError::NotConfigured {
        channel: CHANNEL.into(),
        reason: reason.into(),
    }
}

impl SlackSocketSource {
    /// Builds the source. A missing token, or a bot / user token where the app-level token
    /// belongs, is `CHANNEL_NOT_CONFIGURED`.
    pub fn new(settings: SlackSocketSettings) -> Result<Self, ChannelError> {
        if settings.app_token.is_empty() {
            return Err(not_configured(
                "no app-level token (channels.slack.appToken, xapp-…) for Socket Mode",
            ));
        }
        let app = settings.app_token.expose();
        if app.starts_with("xoxb-") || app.starts_with("xoxp-") {
            return Err(not_configured(
                "channels.slack.appToken holds a bot or user token; Socket Mode needs the app-level token (xapp-…) from Basic Information → App-Level Tokens, with the connections:write scope",
            ));
        }
        if settings.bot_token.is_empty() {
            return Err(not_configured(
                "no bot token (channels.slack.botToken, xoxb-…)",
            ));
        }
        let connector = tls_connector().map_err(not_configured)?;
        let http = http_client(CHANNEL, &settings.timeouts)?;
        Ok(SlackSocketSource {
            inner: Arc::new(Inner {
                base: settings.api_base_url.trim_end_matches('/').to_string(),
                settings,
                http,
                connector,
                stats: Stats::default(),
                running: AtomicBool::new(false),
            }),
        })
    }

    /// Connection state and counters (for `carapace channels status` and the metrics).
    pub fn stats(&self) -> ConnectionStats {
        self.inner.stats.snapshot()
    }
}

impl Inner {
    /// Calls a Web API method with `token` and reads `{ok, error}`.
    async fn call(
        &self,
        method: &str,
        token: &SecretString,
        key: &str,
    ) -> Result<Value, CallError> {
        let resp = self
            .http
            .post(format!("{}/{method}", self.base))
            .timeout(self.settings.timeouts.request)
            .bearer_auth(token.expose())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body("")
            .send()
            .await
            .map_err(|e| CallError::Retry {
                reason: format!("{method} failed: {}", describe_http_error(&e.without_url())),
                after: None,
            })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(|s| Duration::from_secs_f64(s.min(3600.0)));
        let j: Value = resp.json().await.unwrap_or(Value::Null);
        if status == 429 || (500..=599).contains(&status) || status == 408 {
            return Err(CallError::Retry {
                reason: format!("{method} answered HTTP {status}"),
                after: retry_after,
            });
        }
        if j.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(j);
        }
        let error = j
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown_error")
            .to_string();
        if TRANSIENT_ERRORS.contains(&error.as_str()) {
            return Err(CallError::Retry {
                reason: format!("{method} answered {error}"),
                after: retry_after,
            });
        }
        let which = if key == "appToken" {
            "app-level token (xapp-…, scope connections:write)"
        } else {
            "bot token (xoxb-…)"
        };
        Err(CallError::Fatal(if AUTH_ERRORS.contains(&error.as_str()) {
            ChannelError::Unauthorized {
                channel: CHANNEL.into(),
                status,
                message: format!(
                    "Slack refused the {which} ({method}: {error}); put a current one in channels.slack.{key}"
                ),
            }
        } else if error == "not_allowed_token_type" || error == "missing_scope" {
            not_configured(format!(
                "{method} answered {error}: channels.slack.{key} must be the {which}"
            ))
        } else {
            ChannelError::Rejected {
                channel: CHANNEL.into(),
                status,
                message: format!("{method} answered {error}"),
                platform_code: Some(error),
            }
        }))
    }

    async fn identity(&self) -> Result<BotIdentity, CallError> {
        let j = self
            .call("auth.test", &self.settings.bot_token, "botToken")
            .await?;
        let user_id = j
            .get("user_id")
            .and_then(Value::as_str)
            .ok_or_else(|| CallError::Retry {
                reason: "auth.test answered without user_id".into(),
                after: None,
            })?;
        Ok(BotIdentity {
            user_id: user_id.to_string(),
            bot_id: j.get("bot_id").and_then(Value::as_str).map(str::to_string),
        })
    }

    async fn open_url(&self) -> Result<String, CallError> {
        let j = self
            .call(
                "apps.connections.open",
                &self.settings.app_token,
                "appToken",
            )
            .await?;
        j.get("url")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| CallError::Retry {
                reason: "apps.connections.open answered without a url".into(),
                after: None,
            })
    }
}

#[async_trait::async_trait]
impl InboundSource for SlackSocketSource {
    fn channel(&self) -> &str {
        CHANNEL
    }

    fn connection_stats(&self) -> Option<ConnectionStats> {
        Some(self.stats())
    }

    async fn run(
        &self,
        sink: Arc<dyn InboundSink>,
        shutdown: CancellationToken,
    ) -> Result<(), ChannelError> {
        let inner = &*self.inner;
        if inner.running.swap(true, Ordering::SeqCst) {
            return Err(ChannelError::BadRequest {
                message: "the Slack Socket Mode source is already running".into(),
            });
        }
        let result = run_loop(inner, &sink, &shutdown).await;
        let stopped = ConnectionState::Stopped {
            error: result.as_ref().err().map(ToString::to_string),
        };
        inner.stats.report(&*sink, CHANNEL, stopped);
        inner.running.store(false, Ordering::SeqCst);
        result
    }

    async fn fetch_attachment(
        &self,
        attachment: &InboundAttachment,
        max_bytes: u64,
    ) -> Result<FetchedMedia, ChannelError> {
        let inner = &*self.inner;
        if !media_url_allowed(&attachment.fetch, &inner.base, SLACK_FILE_HOSTS) {
            return Err(ChannelError::BadRequest {
                message: "this Slack file is not on Slack's file hosts; it was not fetched (the bot token is only sent to Slack)".into(),
            });
        }
        let req = inner
            .http
            .get(&attachment.fetch)
            .bearer_auth(inner.settings.bot_token.expose());
        let t = &inner.settings.timeouts;
        let budget = t.request + Duration::from_secs(max_bytes / t.min_upload_bytes_per_sec.max(1));
        let media = fetch_capped(
            CHANNEL,
            req,
            attachment.filename.as_deref(),
            attachment.size,
            max_bytes,
            budget,
        )
        .await?;
        let html = |m: Option<&str>| m.is_some_and(|m| m.starts_with("text/html"));
        if html(media.content_type.as_deref()) && !html(attachment.mime.as_deref()) {
            // Slack answers a download it will not serve with its sign-in page.
            return Err(ChannelError::Unauthorized {
                channel: CHANNEL.into(),
                status: 200,
                message: "Slack answered the file download with a web page instead of the file: the bot token lacks the files:read scope (OAuth & Permissions → Bot Token Scopes), or the file is not shared where the bot is".into(),
            });
        }
        Ok(media)
    }

    async fn typing(&self, _chat: &ChatRef, _on: bool) -> Result<(), ChannelError> {
        Ok(())
    }
}

async fn run_loop(
    inner: &Inner,
    sink: &Arc<dyn InboundSink>,
    shutdown: &CancellationToken,
) -> Result<(), ChannelError> {
    inner
        .stats
        .report(&**sink, CHANNEL, ConnectionState::Connecting);
    let mut attempt = 0u32;
    let mut wait: Option<Duration> = None;
    let mut me: Option<BotIdentity> = None;
    loop {
        if let Some(d) = wait.take() {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(d) => {}
            }
        }
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let step = async {
            let id = match me.clone() {
                Some(id) => id,
                None => inner.identity().await?,
            };
            let url = inner.open_url().await?;
            Ok::<_, CallError>((id, url))
        };
        let opened = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = step => r,
        };
        let (id, url) = match opened {
            Ok(v) => v,
            Err(CallError::Fatal(e)) => return Err(e),
            Err(CallError::Retry { reason, after }) => {
                attempt += 1;
                let state = ConnectionState::Reconnecting {
                    attempt,
                    error: reason,
                };
                inner.stats.report(&**sink, CHANNEL, state);
                wait = Some(after.unwrap_or_else(|| inner.settings.reconnect.delay(attempt)));
                continue;
            }
        };
        me = Some(id.clone());
        match connection::run(inner, sink, shutdown, &id, &url).await {
            Ended::Shutdown => return Ok(()),
            Ended::Fatal(e) => return Err(e),
            Ended::Lost {
                reason,
                requested,
                ready,
            } => {
                if ready {
                    attempt = 0;
                }
                attempt += 1;
                inner.stats.update(|s| s.reconnects += 1);
                if requested {
                    tracing::info!(channel = CHANNEL, %reason, "Socket Mode connection refresh");
                } else {
                    tracing::warn!(channel = CHANNEL, attempt, %reason, "Socket Mode connection lost");
                }
                let state = ConnectionState::Reconnecting {
                    attempt,
                    error: reason,
                };
                inner.stats.report(&**sink, CHANNEL, state);
                wait = if requested && attempt == 1 {
                    None
                } else {
                    Some(inner.settings.reconnect.delay(attempt))
                };
            }
        }
    }
}

/// Fuzzing: one text frame through the frame parser and, for an envelope, the event parser,
/// with every `allowBots` setting; the number of messages reported.
pub(crate) fn fuzz_frame(text: &str) -> usize {
    let me = BotIdentity {
        user_id: "UBOT".into(),
        bot_id: Some("BBOT".into()),
    };
    match events::parse_frame(text) {
        Ok(events::Frame::Envelope { payload, .. }) => {
            [AllowBots::Never, AllowBots::Mentions, AllowBots::Always]
                .into_iter()
                .filter_map(|allow| events::message(&payload, &me, Some("fuzz"), allow))
                .count()
        }
        _ => 0,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use carapace_policy::{CarapaceError, ErrorCode};

    #[test]
    fn tokens_in_the_wrong_place_are_not_configured() {
        for (app, bot) in [
            ("", "xoxb-1"),
            ("xoxb-1", "xoxb-1"),
            ("xoxp-1", "xoxb-1"),
            ("xapp-1", ""),
        ] {
            let e = SlackSocketSource::new(SlackSocketSettings::new(app, bot)).unwrap_err();
            assert_eq!(e.code(), ErrorCode::ChannelNotConfigured, "{app} {bot}");
            assert!(!e.to_string().contains("xoxb-1"), "{e}");
        }
        assert!(SlackSocketSource::new(SlackSocketSettings::new("xapp-1", "xoxb-1")).is_ok());
    }

    #[test]
    fn the_bot_token_goes_to_slack_hosts_only() {
        let b = "https://slack.com/api";
        let ok = |u: &str| media_url_allowed(u, b, SLACK_FILE_HOSTS);
        assert!(ok("https://files.slack.com/files-pri/T1-F1/download/a.png"));
        assert!(ok("https://files-origin.slack.com/files-pri/T1-F1/a.png"));
        assert!(!ok("http://files.slack.com/files-pri/T1-F1/a.png"));
        assert!(!ok("https://files.slack.com.evil.example/a.png"));
        assert!(!ok("https://evilslack.com/a.png"));
        assert!(!ok("https://127.0.0.1/a.png"));
    }
}
