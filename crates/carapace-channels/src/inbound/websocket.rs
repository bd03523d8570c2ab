//! What the two WebSocket sources (Discord Gateway, Slack Socket Mode) share: opening a
//! `ws://` / `wss://` connection (TLS by rustls with the webpki roots, like the HTTP client),
//! the reconnect backoff, the connection counters shown by `carapace channels status` and the
//! metrics, and the capped download of an inbound attachment.
//!
//! Token hygiene: WebSocket URLs can carry a credential (Slack's ticket), so no error text here
//! contains a URL; HTTP errors are described from `reqwest::Error::without_url()` and its kind.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use serde::Serialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use super::{ConnectionState, FetchedMedia, InboundSink};
use crate::ChannelError;

/// One open WebSocket connection.
pub(crate) type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Largest WebSocket message accepted (a Discord `GUILD_CREATE` of a big guild is a few MiB).
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// How long to wait between reconnect attempts. The delay before attempt `n` is
/// `min(base · 2^(n-1), max)` with "equal jitter" (half fixed, half random), so many clients
/// that lost the platform at once do not come back at once.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectPolicy {
    /// Delay before the first retry.
    pub base: Duration,
    /// Ceiling of one delay.
    pub max: Duration,
}

impl Default for ReconnectPolicy {
    /// 1 s doubling to 60 s.
    fn default() -> Self {
        ReconnectPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

impl ReconnectPolicy {
    /// The jittered delay before reconnect attempt `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let full = self.base.saturating_mul(1u32 << exp).min(self.max);
        let half = full / 2;
        half + random_up_to(half)
    }
}

/// Which messages written by other bots (and webhooks) are reported. The bot's own messages
/// are never reported: answering them would loop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AllowBots {
    /// None (the default, OpenClaw's `allowBots: false`).
    #[default]
    Never,
    /// Only those that mention this bot (`allowBots: "mentions"`).
    Mentions,
    /// All (`allowBots: true`).
    Always,
}

/// A uniformly random duration in `[0, d]`.
pub(crate) fn random_up_to(d: Duration) -> Duration {
    let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(fastrand::u64(0..=ms))
}

/// A uniformly random duration in `[lo, hi]`.
pub(crate) fn random_between(lo: Duration, hi: Duration) -> Duration {
    lo + random_up_to(hi.saturating_sub(lo))
}

/// A WebSocket source's connection counters, for `carapace channels status` and the metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStats {
    /// The state last reported to the sink.
    pub state: ConnectionState,
    /// Connections that reached the platform's "ready" point (Discord `READY` or `RESUMED`,
    /// Slack `hello`).
    pub connects: u64,
    /// Times a connection was lost or refreshed and opened again.
    pub reconnects: u64,
    /// Of those, sessions resumed without a new login (Discord `RESUME` → `RESUMED`; Slack has
    /// no resume, so always 0 there).
    pub resumes: u64,
    /// Messages handed to the sink and accepted.
    pub delivered: u64,
    /// The last connection error (no secrets), kept after recovery for diagnosis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Default for ConnectionStats {
    fn default() -> Self {
        ConnectionStats {
            state: ConnectionState::Connecting,
            connects: 0,
            reconnects: 0,
            resumes: 0,
            delivered: 0,
            last_error: None,
        }
    }
}

/// The shared, updatable counters of one source.
#[derive(Debug, Default)]
pub(crate) struct Stats(Mutex<ConnectionStats>);

impl Stats {
    pub fn snapshot(&self) -> ConnectionStats {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn update(&self, f: impl FnOnce(&mut ConnectionStats)) {
        if let Ok(mut s) = self.0.lock() {
            f(&mut s);
        }
    }

    /// Records `state` and reports it to the sink.
    pub fn report(&self, sink: &dyn InboundSink, channel: &str, state: ConnectionState) {
        self.update(|s| {
            if let ConnectionState::Reconnecting { error, .. }
            | ConnectionState::Stopped { error: Some(error) } = &state
            {
                s.last_error = Some(error.clone());
            }
            s.state = state.clone();
        });
        tracing::info!(channel, state = ?state, "inbound connection state");
        sink.state(channel, state);
    }
}

/// The TLS settings every WebSocket connection uses: rustls with the ring provider and the
/// webpki roots (the same trust as the HTTP client).
pub(crate) fn tls_connector() -> Result<Connector, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup failed: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Connector::Rustls(Arc::new(config)))
}

/// Opens a WebSocket to `url` (`ws://` or `wss://`) within `timeout`. The error never contains
/// the URL.
pub(crate) async fn connect(
    url: &str,
    connector: &Connector,
    timeout: Duration,
) -> Result<WsStream, String> {
    if !(url.starts_with("wss://") || url.starts_with("ws://")) {
        return Err("the platform gave a WebSocket URL that is not ws:// or wss://".into());
    }
    let request = url
        .into_client_request()
        .map_err(|_| "the platform gave an invalid WebSocket URL".to_string())?;
    let config = WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES));
    let open = tokio_tungstenite::connect_async_tls_with_config(
        request,
        Some(config),
        true,
        Some(connector.clone()),
    );
    match tokio::time::timeout(timeout, open).await {
        Err(_) => Err(format!(
            "the WebSocket handshake did not finish within {} s",
            timeout.as_secs_f64()
        )),
        Ok(Err(e)) => Err(describe_ws_error(&e)),
        Ok(Ok((ws, _response))) => Ok(ws),
    }
}

/// A WebSocket error in words, without any URL.
pub(crate) fn describe_ws_error(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::ConnectionClosed | E::AlreadyClosed => "the connection was closed".into(),
        E::Io(io) => format!("network error: {}", io.kind()),
        E::Tls(t) => format!("TLS error: {t}"),
        E::Capacity(c) => format!("message too large: {c}"),
        E::Protocol(p) => format!("WebSocket protocol error: {p}"),
        E::Http(resp) => format!(
            "the server refused the WebSocket upgrade with HTTP {}",
            resp.status().as_u16()
        ),
        E::Url(_) => "invalid WebSocket URL".into(),
        other => format!("WebSocket error: {}", variant_name(other)),
    }
}

fn variant_name(e: &tokio_tungstenite::tungstenite::Error) -> &'static str {
    use tokio_tungstenite::tungstenite::Error as E;
    match e {
        E::WriteBufferFull(_) => "write buffer full",
        E::Utf8(_) => "invalid UTF-8 in a text message",
        E::AttackAttempt => "the server sent an invalid handshake",
        E::HttpFormat(_) => "invalid HTTP in the handshake",
        _ => "unexpected error",
    }
}

/// A reqwest error in words, without the URL.
pub(crate) fn describe_http_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() {
        "the response body failed"
    } else if e.is_decode() {
        "the response could not be decoded"
    } else {
        "HTTP request failed"
    };
    let mut msg = kind.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let t = s.to_string();
        if !t.is_empty() && !msg.contains(&t) {
            msg.push_str(": ");
            msg.push_str(&t);
        }
        src = s.source();
    }
    msg
}

/// An HTTP client for inbound downloads and the sources' own small API calls: no more than 5
/// redirects (reqwest drops `Authorization` when a redirect leaves the host), the transport
/// timeouts of the channel.
pub(crate) fn http_client(
    channel: &str,
    timeouts: &crate::Timeouts,
) -> Result<reqwest::Client, ChannelError> {
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .redirect(reqwest::redirect::Policy::limited(5))
        .user_agent(concat!("carapace/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ChannelError::NotConfigured {
            channel: channel.to_string(),
            reason: format!("could not build the HTTP client: {}", e.without_url()),
        })
}

/// Downloads one attachment, reading at most `max_bytes`: a declared size, a `Content-Length`
/// or a body over the cap is `OUTBOUND_MEDIA_TOO_LARGE`-coded [`ChannelError::MediaTooLarge`]
/// (with the limit), never a partial file. `request_timeout` bounds the whole download.
pub(crate) async fn fetch_capped(
    channel: &str,
    req: reqwest::RequestBuilder,
    filename: Option<&str>,
    declared_size: Option<u64>,
    max_bytes: u64,
    request_timeout: Duration,
) -> Result<FetchedMedia, ChannelError> {
    let too_large = |size: Option<u64>| ChannelError::MediaTooLarge {
        channel: channel.to_string(),
        filename: filename.map(str::to_string),
        size,
        limit: Some(max_bytes),
        status: None,
    };
    if let Some(size) = declared_size
        && size > max_bytes
    {
        return Err(too_large(Some(size)));
    }
    let resp =
        req.timeout(request_timeout)
            .send()
            .await
            .map_err(|e| ChannelError::Unreachable {
                channel: channel.to_string(),
                attempts: 1,
                reason: format!(
                    "the attachment download failed: {}",
                    describe_http_error(&e.without_url())
                ),
            })?;
    let status = resp.status().as_u16();
    if !resp.status().is_success() {
        let message = format!("the attachment download answered HTTP {status}");
        return Err(match status {
            401 | 403 => ChannelError::Unauthorized {
                channel: channel.to_string(),
                status,
                message,
            },
            500..=599 => ChannelError::Unreachable {
                channel: channel.to_string(),
                attempts: 1,
                reason: message,
            },
            _ => ChannelError::Rejected {
                channel: channel.to_string(),
                status,
                message,
                platform_code: None,
            },
        });
    }
    if let Some(len) = resp.content_length()
        && len > max_bytes
    {
        return Err(too_large(Some(len)));
    }
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut bytes = Vec::new();
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| ChannelError::Unreachable {
            channel: channel.to_string(),
            attempts: 1,
            reason: format!(
                "the attachment download broke off: {}",
                describe_http_error(&e.without_url())
            ),
        })?;
        if bytes.len() as u64 + chunk.len() as u64 > max_bytes {
            return Err(too_large(None));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(FetchedMedia {
        bytes,
        content_type,
    })
}

/// Whether an attachment URL may be fetched: over https from one of `hosts` (an entry
/// starting with `.` matches any subdomain), or from the host and port of `api_base` (a
/// proxy or a test stand-in, any scheme). Anything else (another host, `file:`, a link-local
/// address) is refused, so a handle can never aim a request (or a token) elsewhere.
pub(crate) fn media_url_allowed(url: &str, api_base: &str, hosts: &[&str]) -> bool {
    let Ok(u) = reqwest::Url::parse(url) else {
        return false;
    };
    let Some(host) = u.host_str() else {
        return false;
    };
    let same_as_api = reqwest::Url::parse(api_base).is_ok_and(|b| {
        b.host_str() == Some(host) && b.port_or_known_default() == u.port_or_known_default()
    });
    let listed = hosts.iter().any(|h| match h.strip_prefix('.') {
        Some(suffix) => host.ends_with(&format!(".{suffix}")),
        None => host == *h,
    });
    same_as_api || (u.scheme() == "https" && listed)
}

/// The kind of an attachment from its declared MIME type.
pub(crate) fn kind_from_mime(mime: Option<&str>) -> super::AttachmentKind {
    use super::AttachmentKind as K;
    match mime.and_then(|m| m.split('/').next()) {
        Some("image") => K::Image,
        Some("audio") => K::Audio,
        Some("video") => K::Video,
        _ => K::File,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delay_doubles_within_bounds() {
        let p = ReconnectPolicy {
            base: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        for _ in 0..200 {
            let d1 = p.delay(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = p.delay(3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d30 = p.delay(30);
            assert!(d30 >= Duration::from_millis(500) && d30 <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn random_between_stays_in_range() {
        for _ in 0..200 {
            let d = random_between(Duration::from_secs(1), Duration::from_secs(5));
            assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(5));
        }
    }

    #[test]
    fn kinds_from_mime() {
        use super::super::AttachmentKind as K;
        assert_eq!(kind_from_mime(Some("image/png")), K::Image);
        assert_eq!(kind_from_mime(Some("audio/ogg")), K::Audio);
        assert_eq!(kind_from_mime(Some("video/mp4")), K::Video);
        assert_eq!(kind_from_mime(Some("application/pdf")), K::File);
        assert_eq!(kind_from_mime(None), K::File);
    }

    #[tokio::test]
    async fn connect_refuses_other_schemes_without_echoing_the_url() {
        let c = tls_connector().unwrap();
        let e = connect(
            "https://example.invalid/?ticket=SECRET",
            &c,
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(!e.contains("SECRET"), "{e}");
    }
}
