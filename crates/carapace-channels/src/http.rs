//! The HTTP plumbing every adapter shares: streaming a verified fd as a request body, sending
//! one attempt, and classifying what came back into a [`DeliveryOutcome`].
//!
//! Token hygiene: reqwest errors carry the URL (Telegram puts the token in the path), so every
//! error string here is built from `without_url()` and the error kind only.

use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use reqwest::multipart::Part;
use serde_json::Value;

use crate::{Attachment, ChannelError, DeliveryOutcome, Progress, ProgressUpdate};

/// Size of one positional read from the attachment fd.
const CHUNK: usize = 256 * 1024;
/// Largest response body we read (API answers are small; anything bigger is cut).
const MAX_RESPONSE: usize = 1024 * 1024;

/// An attachment ready to be streamed, any number of times, from offset 0 of its fd.
#[derive(Debug)]
pub(crate) struct FileSource {
    file: Arc<std::fs::File>,
    pub size: u64,
    pub filename: String,
    pub mime: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    failure: Arc<Mutex<Option<String>>>,
    index: usize,
    progress: Option<Progress>,
}

/// Turns a message's attachments into streamable sources.
pub(crate) fn sources(attachments: Vec<Attachment>, progress: Option<Progress>) -> Vec<FileSource> {
    attachments
        .into_iter()
        .enumerate()
        .map(|(i, a)| FileSource::new(a, i, progress.clone()))
        .collect()
}

impl FileSource {
    pub fn new(a: Attachment, index: usize, progress: Option<Progress>) -> FileSource {
        FileSource {
            file: Arc::new(a.file),
            size: a.size,
            filename: a.filename,
            mime: a.mime,
            width: a.width,
            height: a.height,
            failure: Arc::new(Mutex::new(None)),
            index,
            progress,
        }
    }

    /// A fresh body streaming exactly `size` bytes with `pread` from offset 0 (the fd's own
    /// offset is neither used nor moved, so retries and clones never interfere).
    pub fn body(&self) -> reqwest::Body {
        let file = Arc::clone(&self.file);
        let failure = Arc::clone(&self.failure);
        let size = self.size;
        let (index, progress) = (self.index, self.progress.clone());
        if let Some(p) = &progress {
            p.report(ProgressUpdate {
                index,
                sent: 0,
                total: size,
            });
        }
        let stream = futures_util::stream::try_unfold(0u64, move |offset| {
            let file = Arc::clone(&file);
            let failure = Arc::clone(&failure);
            let progress = progress.clone();
            async move {
                if offset >= size {
                    return Ok(None);
                }
                let want = usize::try_from((size - offset).min(CHUNK as u64)).unwrap_or(CHUNK);
                let read = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; want];
                    let mut got = 0;
                    while got < want {
                        match file.read_at(&mut buf[got..], offset + got as u64) {
                            Ok(0) => break,
                            Ok(n) => got += n,
                            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(e),
                        }
                    }
                    buf.truncate(got);
                    Ok(buf)
                })
                .await
                .map_err(std::io::Error::other)
                .and_then(|r| r);
                let err = match read {
                    Ok(buf) if buf.is_empty() => std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!(
                            "the file ended at byte {offset} of {size}: it shrank after it was checked"
                        ),
                    ),
                    Ok(buf) => {
                        let next = offset + buf.len() as u64;
                        if let Some(p) = &progress {
                            p.report(ProgressUpdate {
                                index,
                                sent: next,
                                total: size,
                            });
                        }
                        return Ok(Some((Bytes::from(buf), next)));
                    }
                    Err(e) => e,
                };
                if let Ok(mut slot) = failure.lock() {
                    *slot = Some(err.to_string());
                }
                Err(err)
            }
        });
        reqwest::Body::wrap_stream(stream)
    }

    /// A multipart file part streaming this file, with its filename and content type.
    pub fn part(&self) -> Part {
        let mime = if valid_mime(&self.mime) {
            self.mime.as_str()
        } else {
            "application/octet-stream"
        };
        let part =
            Part::stream_with_length(self.body(), self.size).file_name(self.filename.clone());
        part.mime_str(mime).unwrap_or_else(|_| {
            Part::stream_with_length(self.body(), self.size).file_name(self.filename.clone())
        })
    }

    fn take_failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|mut s| s.take())
    }
}

/// What an HTTP attempt that got an answer saw.
#[derive(Debug)]
pub(crate) struct RawResponse {
    pub status: u16,
    /// `Retry-After` (seconds, integer or fractional).
    pub retry_after: Option<Duration>,
    pub text: String,
    pub json: Option<Value>,
}

impl RawResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// An attempt that got no usable answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Nothing was delivered; safe to try again.
    Retry(String),
    /// The request may have been delivered.
    Ambiguous(String),
    /// Stop now with this error.
    Fatal(ChannelError),
}

impl Failure {
    pub fn into_outcome<T>(self) -> DeliveryOutcome<T> {
        match self {
            Failure::Retry(reason) => DeliveryOutcome::Retryable {
                rate_limited: false,
                retry_after: None,
                reason,
            },
            Failure::Ambiguous(reason) => DeliveryOutcome::Ambiguous { reason },
            Failure::Fatal(e) => DeliveryOutcome::Permanent(e),
        }
    }
}

/// Timeouts of the shared transport.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    /// TCP + TLS connect.
    pub connect: Duration,
    /// A whole request without a file body; with files, the time allowed grows with their
    /// size at `min_upload_bytes_per_sec`.
    pub request: Duration,
    /// The slowest upload rate still considered alive.
    pub min_upload_bytes_per_sec: u64,
}

impl Default for Timeouts {
    /// 10 s connect, 30 s per request, plus 1 s per 64 KiB uploaded.
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(30),
            min_upload_bytes_per_sec: 64 * 1024,
        }
    }
}

/// The shared HTTP client of one adapter.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    pub client: reqwest::Client,
    pub channel: String,
    timeouts: Timeouts,
}

impl Transport {
    pub fn new(channel: &str, timeouts: &Timeouts) -> Result<Transport, ChannelError> {
        let client = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("carapace/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ChannelError::NotConfigured {
                channel: channel.to_string(),
                reason: format!("could not build the HTTP client: {}", e.without_url()),
            })?;
        Ok(Transport {
            client,
            channel: channel.to_string(),
            timeouts: timeouts.clone(),
        })
    }

    /// Sends one attempt. `idempotent`: repeating it cannot post anything twice (a lookup, a
    /// DM-channel open, an upload that is not shared yet), so a lost answer may be retried;
    /// otherwise a request that may have reached the platform is [`Failure::Ambiguous`].
    pub async fn send(
        &self,
        req: reqwest::RequestBuilder,
        idempotent: bool,
        files: &[&FileSource],
    ) -> Result<RawResponse, Failure> {
        let upload: u64 = files.iter().map(|f| f.size).sum();
        let extra = upload / self.timeouts.min_upload_bytes_per_sec.max(1);
        let timeout = self.timeouts.request + Duration::from_secs(extra);
        let result = req.timeout(timeout).send().await;
        let file_failure = || {
            files.iter().find_map(|f| {
                f.take_failure().map(|reason| {
                    Failure::Fatal(ChannelError::AttachmentRead {
                        channel: self.channel.clone(),
                        filename: f.filename.clone(),
                        reason,
                    })
                })
            })
        };
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                if let Some(f) = file_failure() {
                    return Err(f);
                }
                return Err(classify_transport(&self.channel, &e, idempotent));
            }
        };
        if let Some(f) = file_failure() {
            return Err(f);
        }
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_seconds);
        let text = match read_capped(resp).await {
            Ok(t) => t,
            Err(e) if idempotent || !(200..300).contains(&status) => {
                // A non-2xx status already tells what happened; a lost body of a lookup is
                // safe to ask again.
                tracing::debug!(channel = %self.channel, status, error = %e.without_url(), "response body lost");
                String::new()
            }
            Err(e) => {
                return Err(Failure::Ambiguous(format!(
                    "HTTP {status} but the response body was lost: {}",
                    describe(&e)
                )));
            }
        };
        let json = serde_json::from_str(&text).ok();
        tracing::debug!(channel = %self.channel, status, "channel request answered");
        Ok(RawResponse {
            status,
            retry_after,
            text,
            json,
        })
    }

    /// The common reading of a non-2xx status. `message` / `code` are the platform's error
    /// text and code when the adapter could parse them.
    pub fn classify_error<T>(
        &self,
        raw: &RawResponse,
        message: Option<String>,
        code: Option<String>,
    ) -> DeliveryOutcome<T> {
        let message = message.unwrap_or_else(|| short(&raw.text, raw.status));
        match raw.status {
            429 => DeliveryOutcome::Retryable {
                rate_limited: true,
                retry_after: raw.retry_after,
                reason: format!("HTTP 429: {message}"),
            },
            401 | 403 => DeliveryOutcome::Unauthorized {
                status: raw.status,
                message,
            },
            413 => DeliveryOutcome::Permanent(ChannelError::MediaTooLarge {
                channel: self.channel.clone(),
                filename: None,
                size: None,
                limit: None,
                status: Some(413),
            }),
            408 | 500..=599 => DeliveryOutcome::Retryable {
                rate_limited: false,
                retry_after: raw.retry_after,
                reason: format!("HTTP {}: {message}", raw.status),
            },
            status => DeliveryOutcome::Permanent(ChannelError::Rejected {
                channel: self.channel.clone(),
                status,
                message,
                platform_code: code,
            }),
        }
    }
}

fn short(text: &str, status: u16) -> String {
    let t = text.trim();
    if t.is_empty() {
        return format!("HTTP {status} with an empty body");
    }
    let mut s: String = t.chars().take(300).collect();
    if s.len() < t.len() {
        s.push('…');
    }
    s
}

async fn read_capped(mut resp: reqwest::Response) -> Result<String, reqwest::Error> {
    let mut buf = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        let room = MAX_RESPONSE.saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Parses a `Retry-After` / `retry_after` value in seconds (integer or fractional).
pub(crate) fn parse_seconds(s: &str) -> Option<Duration> {
    let v: f64 = s.trim().parse().ok()?;
    seconds(v)
}

/// A non-negative, finite number of seconds as a duration (capped at a day).
pub(crate) fn seconds(v: f64) -> Option<Duration> {
    (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v.min(86_400.0)))
}

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_body() {
        "the request or response body failed"
    } else if e.is_request() {
        "the request failed"
    } else if e.is_decode() {
        "the response could not be decoded"
    } else {
        "HTTP error"
    };
    // `without_url` drops the URL, which may carry a token (Telegram's /bot<token>/...).
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

fn classify_transport(channel: &str, e: &reqwest::Error, idempotent: bool) -> Failure {
    let reason = describe(e);
    if e.is_connect() {
        // The connection was never made: nothing was sent.
        Failure::Retry(reason)
    } else if e.is_builder() {
        Failure::Fatal(ChannelError::NotConfigured {
            channel: channel.to_string(),
            reason,
        })
    } else if idempotent {
        Failure::Retry(reason)
    } else {
        Failure::Ambiguous(reason)
    }
}

/// `type/subtype` made of token characters (parameters allowed after `;`).
pub(crate) fn valid_mime(m: &str) -> bool {
    let essence = m.split(';').next().unwrap_or("").trim();
    let tok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    matches!(essence.split_once('/'), Some((t, st)) if tok(t) && tok(st))
}
