//! Discord: receiving over the Gateway (WebSocket, API v10, JSON, no compression).
//!
//! - The gateway URL comes from `GET {apiBaseUrl}/gateway/bot` (asked again before every new
//!   session, which also honours `session_start_limit`: with no identifies left it waits
//!   `reset_after`). A 401 there is the revoked-token error, without a connection.
//! - `IDENTIFY` asks for `GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT` (plus
//!   the privileged intents the settings turn on). Close 4014 is `CHANNEL_NOT_CONFIGURED`
//!   naming the developer-portal switch; 4004 is `CHANNEL_UNAUTHORIZED`; 4010–4013 are
//!   `CHANNEL_NOT_CONFIGURED` too. None of them is retried.
//! - A dropped connection, op 7, op 9 `d: true`, a missed heartbeat ACK or a resumable close
//!   code resume the session on `resume_gateway_url` from the last handled sequence number;
//!   op 9 `d: false` and closes 4003 / 4007 / 4009 start a new session (after 1–5 s for op 9).
//! - `MESSAGE_CREATE` becomes an [`InboundMessage`](crate::inbound::InboundMessage): DMs are
//!   `direct` chats, guild channels `group` chats, a thread is its parent channel with
//!   `thread` = the thread's channel id (known from `GUILD_CREATE` / `THREAD_*`).
//! - Attachments are fetched from Discord's CDN (no token needed or sent), capped.
//! - Typing: `POST /channels/{id}/typing`, repeated every 8 s while on (Discord shows it for
//!   about 10 s).

mod connection;
mod events;
mod protocol;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio_tungstenite::Connector;
use tokio_util::sync::CancellationToken;

pub use protocol::{DiscordIntents, intent};

use self::connection::{Delay, Ended, Plan, Session};
use self::events::GatewayState;
pub use super::websocket::{AllowBots, ConnectionStats, ReconnectPolicy};
use super::websocket::{
    Stats, describe_http_error, fetch_capped, http_client, media_url_allowed, tls_connector,
};
use super::{
    ChatRef, ConnectionState, FetchedMedia, InboundAttachment, InboundSink, InboundSource,
};
use crate::discord::DISCORD_API_BASE;
use crate::{ChannelError, SecretString, Timeouts};

pub(crate) const CHANNEL: &str = "discord";

/// Hosts attachments are fetched from (besides the host of `apiBaseUrl`).
pub const DISCORD_MEDIA_HOSTS: &[&str] = &["cdn.discordapp.com", "media.discordapp.net"];

/// Settings of the Discord Gateway source (config parsing lives elsewhere).
#[derive(Debug, Clone)]
pub struct DiscordGatewaySettings {
    /// The bot token (`channels.discord.token`).
    pub token: SecretString,
    /// REST API base, default [`DISCORD_API_BASE`] (`apiBaseUrl`); the gateway URL is asked
    /// from `GET {base}/gateway/bot`.
    pub api_base_url: String,
    /// The account id reported on messages, when the channel has several.
    pub account: Option<String>,
    /// Privileged intents asked for besides Message Content (`intents.*`).
    pub intents: DiscordIntents,
    /// Messages of other bots (`allowBots`), default none.
    pub allow_bots: AllowBots,
    /// HTTP timeouts (`/gateway/bot`, typing, downloads).
    pub timeouts: Timeouts,
    /// Backoff between reconnects.
    pub reconnect: ReconnectPolicy,
    /// Time for the WebSocket handshake, for `HELLO`, and from `IDENTIFY` / `RESUME` to the
    /// first dispatch. Default 30 s.
    pub handshake_timeout: Duration,
    /// Wait before a new identify after op 9 `d: false`; Discord asks for a random 1–5 s.
    pub invalid_session_delay: (Duration, Duration),
    /// How often the typing indicator is sent again while on. Default 8 s.
    pub typing_refresh: Duration,
    /// A typing indicator left on stops by itself after this long. Default 10 min.
    pub typing_max: Duration,
}

impl DiscordGatewaySettings {
    /// Defaults with this token.
    pub fn new(token: impl Into<SecretString>) -> Self {
        DiscordGatewaySettings {
            token: token.into(),
            api_base_url: DISCORD_API_BASE.to_string(),
            account: None,
            intents: DiscordIntents::default(),
            allow_bots: AllowBots::Never,
            timeouts: Timeouts::default(),
            reconnect: ReconnectPolicy::default(),
            handshake_timeout: Duration::from_secs(30),
            invalid_session_delay: (Duration::from_secs(1), Duration::from_secs(5)),
            typing_refresh: Duration::from_secs(8),
            typing_max: Duration::from_secs(600),
        }
    }
}

pub(crate) struct Inner {
    settings: DiscordGatewaySettings,
    base: String,
    http: reqwest::Client,
    connector: Connector,
    stats: Stats,
    typing: Mutex<HashMap<String, CancellationToken>>,
    running: AtomicBool,
}

/// The Discord Gateway source. Cheap to share (`Arc<dyn InboundSource>`).
pub struct DiscordGatewaySource {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DiscordGatewaySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordGatewaySource")
            .field("api_base_url", &self.inner.base)
            .field("stats", &self.inner.stats.snapshot())
            .finish_non_exhaustive()
    }
}

/// What `GET /gateway/bot` said.
struct GatewayBot {
    url: String,
    /// Identifies left today, and when the count resets.
    remaining: Option<u64>,
    reset_after: Option<Duration>,
}

/// Why `GET /gateway/bot` gave no URL.
enum GatewayBotError {
    Fatal(ChannelError),
    Retry {
        reason: String,
        after: Option<Duration>,
    },
}

impl DiscordGatewaySource {
    /// Builds the source; an empty token is `CHANNEL_NOT_CONFIGURED`.
    pub fn new(settings: DiscordGatewaySettings) -> Result<Self, ChannelError> {
        if settings.token.is_empty() {
            return Err(ChannelError::NotConfigured {
                channel: CHANNEL.into(),
                reason: "no bot token (channels.discord.token)".into(),
            });
        }
        let connector = tls_connector().map_err(|reason| ChannelError::NotConfigured {
            channel: CHANNEL.into(),
            reason,
        })?;
        let http = http_client(CHANNEL, &settings.timeouts)?;
        Ok(DiscordGatewaySource {
            inner: Arc::new(Inner {
                base: settings.api_base_url.trim_end_matches('/').to_string(),
                settings,
                http,
                connector,
                stats: Stats::default(),
                typing: Mutex::new(HashMap::new()),
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
    fn rest(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .timeout(self.settings.timeouts.request)
            .header(
                reqwest::header::AUTHORIZATION,
                format!("Bot {}", self.settings.token.expose()),
            )
            .header(
                reqwest::header::USER_AGENT,
                concat!(
                    "DiscordBot (https://example.invalid/carapace, ",
                    env!("CARGO_PKG_VERSION"),
                    ")"
                ),
            )
    }

    async fn gateway_bot(&self) -> Result<GatewayBot, GatewayBotError> {
        let resp = self
            .rest(reqwest::Method::GET, "/gateway/bot")
            .send()
            .await
            .map_err(|e| GatewayBotError::Retry {
                reason: format!(
                    "GET /gateway/bot failed: {}",
                    describe_http_error(&e.without_url())
                ),
                after: None,
            })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok());
        let j: Value = resp.json().await.unwrap_or(Value::Null);
        match status {
            200..=299 => {}
            401 | 403 => {
                return Err(GatewayBotError::Fatal(ChannelError::Unauthorized {
                    channel: CHANNEL.into(),
                    status,
                    message: "Discord refused the bot token (GET /gateway/bot): it is wrong, or it was reset or revoked. Copy the current token (Discord Developer Portal → your application → Bot → Reset Token) into channels.discord.token".into(),
                }));
            }
            429 => {
                let secs = j.get("retry_after").and_then(Value::as_f64).or(retry_after);
                return Err(GatewayBotError::Retry {
                    reason: "GET /gateway/bot was rate-limited (HTTP 429)".into(),
                    after: secs
                        .filter(|s| s.is_finite() && *s >= 0.0)
                        .map(|s| Duration::from_secs_f64(s.min(3600.0))),
                });
            }
            408 | 500..=599 => {
                return Err(GatewayBotError::Retry {
                    reason: format!("GET /gateway/bot answered HTTP {status}"),
                    after: None,
                });
            }
            _ => {
                return Err(GatewayBotError::Fatal(ChannelError::Rejected {
                    channel: CHANNEL.into(),
                    status,
                    message: j
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("GET /gateway/bot was refused")
                        .to_string(),
                    platform_code: j.get("code").map(|c| c.to_string()),
                }));
            }
        }
        let Some(url) = j.get("url").and_then(Value::as_str) else {
            return Err(GatewayBotError::Retry {
                reason: "GET /gateway/bot answered without a url".into(),
                after: None,
            });
        };
        let limit = j.get("session_start_limit");
        Ok(GatewayBot {
            url: url.to_string(),
            remaining: limit
                .and_then(|l| l.get("remaining"))
                .and_then(Value::as_u64),
            reset_after: limit
                .and_then(|l| l.get("reset_after"))
                .and_then(Value::as_u64)
                .map(Duration::from_millis),
        })
    }

    async fn post_typing(&self, channel_id: &str) -> Result<(), ChannelError> {
        let resp = self
            .rest(
                reqwest::Method::POST,
                &format!("/channels/{channel_id}/typing"),
            )
            .header(reqwest::header::CONTENT_LENGTH, 0)
            .send()
            .await
            .map_err(|e| ChannelError::Unreachable {
                channel: CHANNEL.into(),
                attempts: 1,
                reason: format!(
                    "the typing indicator failed: {}",
                    describe_http_error(&e.without_url())
                ),
            })?;
        let status = resp.status().as_u16();
        match status {
            200..=299 | 429 => Ok(()),
            401 | 403 => Err(ChannelError::Unauthorized {
                channel: CHANNEL.into(),
                status,
                message: "Discord refused the typing indicator".into(),
            }),
            _ => Err(ChannelError::Rejected {
                channel: CHANNEL.into(),
                status,
                message: "Discord refused the typing indicator".into(),
                platform_code: None,
            }),
        }
    }
}

#[async_trait::async_trait]
impl InboundSource for DiscordGatewaySource {
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
                message: "the Discord Gateway source is already running".into(),
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
        if !media_url_allowed(&attachment.fetch, &inner.base, DISCORD_MEDIA_HOSTS) {
            return Err(ChannelError::BadRequest {
                message: "this Discord attachment is not on Discord's CDN; it was not fetched"
                    .into(),
            });
        }
        // CDN URLs are signed; the bot token is not needed there and is never sent.
        let req = inner.http.get(&attachment.fetch);
        let t = &inner.settings.timeouts;
        let budget = t.request + Duration::from_secs(max_bytes / t.min_upload_bytes_per_sec.max(1));
        fetch_capped(
            CHANNEL,
            req,
            attachment.filename.as_deref(),
            attachment.size,
            max_bytes,
            budget,
        )
        .await
    }

    async fn typing(&self, chat: &ChatRef, on: bool) -> Result<(), ChannelError> {
        let channel_id = chat.thread.as_deref().unwrap_or(&chat.id).to_string();
        let previous = self
            .inner
            .typing
            .lock()
            .ok()
            .and_then(|mut m| m.remove(&channel_id));
        if let Some(p) = previous {
            p.cancel();
        }
        if !on {
            return Ok(());
        }
        self.inner.post_typing(&channel_id).await?;
        let stop = CancellationToken::new();
        if let Ok(mut m) = self.inner.typing.lock() {
            m.insert(channel_id.clone(), stop.clone());
        }
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let until = tokio::time::Instant::now() + inner.settings.typing_max;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep_until(until) => break,
                    _ = tokio::time::sleep(inner.settings.typing_refresh) => {
                        if let Err(e) = inner.post_typing(&channel_id).await {
                            tracing::debug!(channel = CHANNEL, error = %e, "typing indicator refresh failed");
                        }
                    }
                }
            }
        });
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
    let mut gw = GatewayState::default();
    let mut session: Option<Session> = None;
    // Failed attempts since the last connection that got to READY / RESUMED.
    let mut attempt = 0u32;
    let mut wait: Option<Duration> = None;
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
        let plan = match session.take() {
            Some(s) => Plan::Resume(s),
            None => {
                let gb = tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    r = inner.gateway_bot() => r,
                };
                match gb {
                    Err(GatewayBotError::Fatal(e)) => return Err(e),
                    Err(GatewayBotError::Retry { reason, after }) => {
                        attempt += 1;
                        let state = ConnectionState::Reconnecting {
                            attempt,
                            error: reason,
                        };
                        inner.stats.report(&**sink, CHANNEL, state);
                        wait =
                            Some(after.unwrap_or_else(|| inner.settings.reconnect.delay(attempt)));
                        continue;
                    }
                    Ok(gb) if gb.remaining == Some(0) => {
                        let after = gb.reset_after.unwrap_or(Duration::from_secs(60));
                        attempt += 1;
                        let state = ConnectionState::Reconnecting {
                            attempt,
                            error: format!(
                                "Discord's daily limit of new sessions is used up; waiting {} s for it to reset",
                                after.as_secs()
                            ),
                        };
                        inner.stats.report(&**sink, CHANNEL, state);
                        wait = Some(after);
                        continue;
                    }
                    Ok(gb) => Plan::Identify(gb.url),
                }
            }
        };
        match connection::run(inner, sink, shutdown, &mut gw, plan).await {
            Ended::Shutdown => return Ok(()),
            Ended::Fatal(e) => return Err(e),
            Ended::Lost {
                reason,
                resume,
                delay,
                ready,
            } => {
                if ready {
                    attempt = 0;
                }
                attempt += 1;
                inner.stats.update(|s| s.reconnects += 1);
                tracing::warn!(channel = CHANNEL, attempt, resume = resume.is_some(), %reason, "gateway connection lost");
                session = resume;
                let state = ConnectionState::Reconnecting {
                    attempt,
                    error: reason,
                };
                inner.stats.report(&**sink, CHANNEL, state);
                wait = match delay {
                    // Asked to come back at once: do, unless that already failed.
                    Delay::Now if attempt == 1 => None,
                    Delay::Now | Delay::Backoff => Some(inner.settings.reconnect.delay(attempt)),
                    Delay::Exactly(d) => Some(d),
                };
            }
        }
    }
}

/// Fuzzing: one gateway payload (`{op, t, d, s}` as text) applied to a session that has seen
/// `READY`, then read as a `MESSAGE_CREATE` with every `allowBots` setting; the number of
/// messages reported.
pub(crate) fn fuzz_dispatch(text: &str) -> usize {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return 0;
    };
    let mut gw = GatewayState::default();
    gw.apply(
        "READY",
        &serde_json::json!({"session_id": "s", "user": {"id": "900000000000000001", "username": "carapace"}}),
    );
    let t = v.get("t").and_then(Value::as_str).unwrap_or_default();
    let d = v.get("d").cloned().unwrap_or(Value::Null);
    gw.apply(t, &d);
    [AllowBots::Never, AllowBots::Mentions, AllowBots::Always]
        .into_iter()
        .filter_map(|allow| gw.message(&d, Some("fuzz"), allow))
        .count()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use carapace_policy::{CarapaceError, ErrorCode};

    #[test]
    fn an_empty_token_is_not_configured() {
        let e = DiscordGatewaySource::new(DiscordGatewaySettings::new("")).unwrap_err();
        assert_eq!(e.code(), ErrorCode::ChannelNotConfigured);
    }

    #[test]
    fn media_only_from_the_cdn_or_the_api_host() {
        let mut s = DiscordGatewaySettings::new("t");
        s.api_base_url = "http://127.0.0.1:4000".into();
        let src = DiscordGatewaySource::new(s).unwrap();
        let b = &src.inner.base;
        let allowed = |u: &str| media_url_allowed(u, b, DISCORD_MEDIA_HOSTS);
        assert!(allowed(
            "https://cdn.discordapp.com/attachments/1/2/a.png?ex=1"
        ));
        assert!(allowed(
            "https://media.discordapp.net/attachments/1/2/a.png"
        ));
        assert!(allowed("http://127.0.0.1:4000/attachments/1/2/a.png"));
        assert!(!allowed("http://cdn.discordapp.com/attachments/1/2/a.png"));
        assert!(!allowed("http://127.0.0.1:4001/x"));
        assert!(!allowed("https://169.254.169.254/latest/meta-data"));
        assert!(!allowed("file:///etc/passwd"));
    }

    #[test]
    fn fatal_errors_name_the_fix_and_never_the_token() {
        use protocol::Fatal;
        let intents = DiscordIntents::default();
        let e = connection::fatal_error(Fatal::AuthenticationFailed, &intents);
        assert_eq!(e.code(), ErrorCode::ChannelUnauthorized);
        assert!(e.to_string().contains("4004"));
        assert!(e.to_string().contains("channels.discord.token"));
        let e = connection::fatal_error(
            Fatal::DisallowedIntents,
            &DiscordIntents {
                guild_members: true,
                ..Default::default()
            },
        );
        assert_eq!(e.code(), ErrorCode::ChannelNotConfigured);
        let m = e.to_string();
        assert!(m.contains("4014"), "{m}");
        assert!(m.contains("Message Content Intent"), "{m}");
        assert!(m.contains("Server Members Intent"), "{m}");
        assert!(m.contains("Privileged Gateway Intents"), "{m}");
    }
}
