//! Webhook: one multipart POST per message to a configured URL with configured headers.
//!
//! Form fields: `target` (`user:<id>` / `channel:<id>` / `room:<id>`, passed through), `text`
//! and `caption` when present, and one `files[n]` part per attachment (filename and content
//! type set). A 2xx answer is success; its JSON `id` (string or number), if any, is the remote
//! id, and `attachments[n].id` the attachment ids (else `files[n]`).

use reqwest::header::{HeaderName, HeaderValue};
use reqwest::multipart::Form;
use serde_json::Value;

use crate::http::{FileSource, Transport};
use crate::{
    ChannelAdapter, ChannelError, Delivered, DeliveredAttachment, DeliveryOutcome, OutboundMessage,
    RetryPolicy, SecretString, Timeouts, check_message,
};

/// Default per-file limit: 25 MiB (a webhook's receiver sets the real one: `mediaMaxMb`).
pub const WEBHOOK_DEFAULT_MAX_BYTES: u64 = 25 * 1024 * 1024;

/// Settings of the webhook adapter.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Where to POST (`http` or `https`).
    pub url: String,
    /// Extra headers; values are secrets (they often carry a token).
    pub headers: Vec<(String, SecretString)>,
    /// Per-file limit in bytes, default [`WEBHOOK_DEFAULT_MAX_BYTES`] (`mediaMaxMb`).
    pub media_max_bytes: Option<u64>,
    /// Retries.
    pub retry: RetryPolicy,
    /// Timeouts.
    pub timeouts: Timeouts,
}

impl WebhookSettings {
    /// Defaults for this URL, no extra headers.
    pub fn new(url: impl Into<String>) -> Self {
        WebhookSettings {
            url: url.into(),
            headers: Vec::new(),
            media_max_bytes: None,
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
        }
    }
}

/// The webhook adapter.
pub struct WebhookAdapter {
    settings: WebhookSettings,
    url: reqwest::Url,
    headers: Vec<(HeaderName, HeaderValue)>,
    http: Transport,
}

impl std::fmt::Debug for WebhookAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may embed a secret (query token, path key): print only scheme and host.
        f.debug_struct("WebhookAdapter")
            .field("scheme", &self.url.scheme())
            .field("host", &self.url.host_str())
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(n, _)| n.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl WebhookAdapter {
    /// Builds the adapter; a missing or malformed URL or header is `CHANNEL_NOT_CONFIGURED`.
    pub fn new(settings: WebhookSettings) -> Result<Self, ChannelError> {
        let not_configured = |reason: String| ChannelError::NotConfigured {
            channel: "webhook".into(),
            reason,
        };
        let url = reqwest::Url::parse(&settings.url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| not_configured("channels.webhook.url is not an http(s) URL".into()))?;
        let mut headers = Vec::new();
        for (name, value) in &settings.headers {
            let n = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| not_configured(format!("invalid header name {name:?}")))?;
            let mut v = HeaderValue::from_str(value.expose())
                .map_err(|_| not_configured(format!("invalid value for header {name:?}")))?;
            v.set_sensitive(true);
            headers.push((n, v));
        }
        let http = Transport::new("webhook", &settings.timeouts)?;
        Ok(WebhookAdapter {
            settings,
            url,
            headers,
            http,
        })
    }

    async fn post(
        &self,
        target: &str,
        text: Option<&str>,
        caption: Option<&str>,
        files: &[&FileSource],
    ) -> DeliveryOutcome<Delivered> {
        let mut form = Form::new().text("target", target.to_string());
        if let Some(t) = text {
            form = form.text("text", t.to_string());
        }
        if let Some(c) = caption {
            form = form.text("caption", c.to_string());
        }
        for (i, f) in files.iter().enumerate() {
            form = form.part(format!("files[{i}]"), f.part());
        }
        let mut req = self.http.client.post(self.url.clone());
        for (n, v) in &self.headers {
            req = req.header(n.clone(), v.clone());
        }
        let raw = match self.http.send(req.multipart(form), false, files).await {
            Ok(r) => r,
            Err(f) => return f.into_outcome(),
        };
        if !raw.is_success() {
            let message = raw.json.as_ref().and_then(|j| {
                j.get("error").or_else(|| j.get("message")).and_then(|e| {
                    e.as_str()
                        .map(str::to_string)
                        .or_else(|| Some(e.to_string()))
                })
            });
            return match self.http.classify_error(&raw, message, None) {
                DeliveryOutcome::Permanent(ChannelError::MediaTooLarge { status, .. }) => {
                    let one = (files.len() == 1).then(|| files[0]);
                    DeliveryOutcome::Permanent(ChannelError::MediaTooLarge {
                        channel: "webhook".into(),
                        filename: one.map(|f| f.filename.clone()),
                        size: one.map(|f| f.size),
                        limit: Some(self.max_attachment_bytes()),
                        status,
                    })
                }
                other => other,
            };
        }
        let j = raw.json.unwrap_or(Value::Null);
        let id_of = |v: Option<&Value>| match v {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let remote_atts = j.get("attachments").and_then(Value::as_array);
        DeliveryOutcome::Sent(Delivered {
            remote_id: id_of(j.get("id")).unwrap_or_default(),
            extra_message_ids: Vec::new(),
            attachments: files
                .iter()
                .enumerate()
                .map(|(i, f)| DeliveredAttachment {
                    remote_id: id_of(remote_atts.and_then(|a| a.get(i)).and_then(|a| a.get("id")))
                        .unwrap_or_else(|| format!("files[{i}]")),
                    filename: f.filename.clone(),
                    bytes: f.size,
                })
                .collect(),
        })
    }
}

#[async_trait::async_trait]
impl ChannelAdapter for WebhookAdapter {
    fn id(&self) -> &str {
        "webhook"
    }

    fn max_attachment_bytes(&self) -> u64 {
        self.settings
            .media_max_bytes
            .unwrap_or(WEBHOOK_DEFAULT_MAX_BYTES)
    }

    async fn send(&self, msg: OutboundMessage) -> Result<Delivered, ChannelError> {
        check_message("webhook", self.max_attachment_bytes(), &msg)?;
        let target = msg.target.to_string();
        let files = crate::http::sources(msg.attachments, msg.progress);
        let refs: Vec<&FileSource> = files.iter().collect();
        let text = msg.text.as_deref().filter(|s| !s.is_empty());
        let caption = msg.caption.as_deref().filter(|s| !s.is_empty());
        self.settings
            .retry
            .run("webhook", |_| self.post(&target, text, caption, &refs))
            .await
    }
}
