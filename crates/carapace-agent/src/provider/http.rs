//! What both wire formats share: the reqwest client, sending a JSON body, turning an error
//! answer into a [`ProviderError`], `Retry-After`, and keeping the key out of every message.

use std::time::Duration;

use carapace_policy::models::ProviderConfig;
use futures_util::StreamExt;
use serde_json::Value;

use super::ProviderError;
use crate::provider::EventStream;

/// HTTP settings of every provider client.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Longest silence while reading an answer (a stalled stream fails after this).
    pub read_timeout: Duration,
    /// `models.proxy`.
    pub proxy: Option<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(120),
            proxy: None,
        }
    }
}

pub(crate) fn client(
    s: &HttpSettings,
    p: &ProviderConfig,
) -> Result<reqwest::Client, ProviderError> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(s.connect_timeout)
        .read_timeout(s.read_timeout)
        .user_agent(concat!("carapace/", env!("CARGO_PKG_VERSION")));
    if let Some(proxy) = &s.proxy {
        let px = reqwest::Proxy::all(proxy).map_err(|e| ProviderError::NotConfigured {
            message: format!("models.proxy is not usable: {}", e.without_url()),
        })?;
        b = b.proxy(px);
    }
    b.build().map_err(|e| ProviderError::NotConfigured {
        message: format!("cannot build the HTTP client for {}: {e}", p.id),
    })
}

/// Removes `secret` (and nothing else) from `s`.
pub(crate) fn redact(s: &str, secrets: &[String]) -> String {
    let mut out = s.to_string();
    for k in secrets {
        if k.len() >= 4 {
            out = out.replace(k.as_str(), "***");
        }
    }
    out
}

/// Seconds or an HTTP date; only the seconds form is read (the date form is rare on model
/// APIs and would need a clock parse), anything else is ignored.
pub(crate) fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    v.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite() && *f >= 0.0)
        .map(Duration::from_secs_f64)
}

/// Everything a request needs to go out.
pub(crate) struct Outgoing<'a> {
    pub provider: &'a str,
    pub client: &'a reqwest::Client,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub secrets: &'a [String],
}

/// Sends the body; an error status becomes [`ProviderError::Http`] with the provider's message.
pub(crate) async fn post(o: Outgoing<'_>) -> Result<reqwest::Response, ProviderError> {
    let mut rb = o.client.post(&o.url).json(&o.body);
    for (k, v) in &o.headers {
        rb = rb.header(k.as_str(), v.as_str());
    }
    let resp = rb
        .send()
        .await
        .map_err(|e| transport(o.provider, &e, o.secrets))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let retry_after = retry_after(resp.headers());
    let text = String::from_utf8_lossy(&read_capped(resp, 64 << 10).await.unwrap_or_default())
        .into_owned();
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| {
            v["error"]["message"]
                .as_str()
                .or_else(|| v["message"].as_str())
                .or_else(|| v["error"].as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| text.chars().take(300).collect());
    Err(ProviderError::Http {
        provider: o.provider.to_string(),
        status: status.as_u16(),
        retry_after,
        message: redact(&message, o.secrets).chars().take(500).collect(),
    })
}

pub(crate) fn transport(provider: &str, e: &reqwest::Error, secrets: &[String]) -> ProviderError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "the answer broke off"
    } else {
        "request failed"
    };
    let mut detail = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        src = s.source();
    }
    ProviderError::Transport {
        provider: provider.to_string(),
        message: format!("{kind}: {}", redact(&detail, secrets)),
    }
}

/// Longest non-streamed answer accepted.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// Reads at most `cap` bytes of a body (the rest is dropped).
async fn read_capped(mut resp: reqwest::Response, cap: usize) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = cap.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= cap {
            break;
        }
    }
    Ok(out)
}

/// The whole body of a non-streamed answer as JSON.
pub(crate) async fn json_body(
    provider: &str,
    resp: reqwest::Response,
    secrets: &[String],
) -> Result<Value, ProviderError> {
    let bytes = read_capped(resp, MAX_ANSWER_BYTES + 1)
        .await
        .map_err(|e| transport(provider, &e, secrets))?;
    if bytes.len() > MAX_ANSWER_BYTES {
        return Err(ProviderError::Protocol {
            provider: provider.to_string(),
            message: format!("the answer is larger than {MAX_ANSWER_BYTES} bytes"),
            truncated: false,
        });
    }
    serde_json::from_slice(&bytes).map_err(|e| ProviderError::Protocol {
        provider: provider.to_string(),
        message: format!("the answer is not JSON ({e})"),
        truncated: e.is_eof(),
    })
}

/// An SSE answer as a stream of `(event, data)` pairs.
pub(crate) fn sse_stream(
    provider: String,
    resp: reqwest::Response,
    secrets: Vec<String>,
) -> impl futures_util::Stream<Item = Result<super::sse::SseEvent, ProviderError>> + Send {
    let bytes = resp.bytes_stream();
    super::sse::events(bytes.map(move |r| r.map_err(|e| transport(&provider, &e, &secrets))))
}

/// A stream made of events already known (non-streamed answers).
pub(crate) fn ready(events: Vec<super::ModelEvent>) -> EventStream {
    Box::pin(futures_util::stream::iter(events.into_iter().map(Ok)))
}
