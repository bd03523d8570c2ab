//! [`BrowserError`]: every refusal and failure of the browser tool, with its docs/errors.md code and
//! the facts behind it.

use std::path::PathBuf;
use std::time::Duration;

use carapace_fs::FsError;
use carapace_policy::{CarapaceError, ErrorCode};
use serde_json::{Map, Value, json};

/// The install hint carried by [`BrowserError::ChromiumMissing`].
pub const INSTALL_HINT: &str = "Install Chromium (Debian/Ubuntu: `apt-get install -y chromium`, or run scripts/chromium.sh), \
or point browser.executablePath at a Chromium or Chrome binary.";

/// A typed browser-tool error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrowserError {
    /// No Chromium binary: `browser.executablePath` is missing, or nothing on PATH.
    #[error("Chromium is not available: {reason}")]
    ChromiumMissing {
        /// The configured or searched binary.
        path: Option<PathBuf>,
        /// What was looked for and not found.
        reason: String,
    },
    /// Chromium exists but did not start (or died while starting, twice).
    #[error("Chromium at {path} did not start: {reason}")]
    LaunchFailed {
        /// The binary.
        path: PathBuf,
        /// What happened (the tail of its stderr when there is one).
        reason: String,
    },
    /// Malformed arguments: unparsable URL, width out of range, empty selector...
    #[error("{0}")]
    BadRequest(String),
    /// A URL whose scheme the browser tool never loads (`javascript:`, `ftp:`, `data:`...).
    #[error("URL {url} is refused: scheme {scheme:?} is not allowed (only http, https and file)")]
    SchemeRefused {
        /// The URL.
        url: String,
        /// Its scheme.
        scheme: String,
    },
    /// A `file:` URL outside the session's workspace, or one the safe filesystem layer refused
    /// (symlink out, `..`, not a regular file, missing).
    #[error("URL {url} is refused: {source}")]
    FileRefused {
        /// The URL as given.
        url: String,
        /// The refusal from carapace-fs (or the containment check).
        #[source]
        source: FsError,
    },
    /// A target on a loopback, private, link-local (…) address while
    /// `browser.allowPrivateNetwork` is off.
    #[error("URL {url} is refused: {host} resolves to the non-public address {address}")]
    PrivateNetworkRefused {
        /// The URL (of the request that was refused: the page, a redirect or a subresource).
        url: String,
        /// Its host.
        host: String,
        /// The first non-public address it resolved to.
        address: String,
    },
    /// The host did not resolve.
    #[error("URL {url} is refused: host {host} does not resolve ({reason})")]
    Unresolvable {
        /// The URL.
        url: String,
        /// Its host.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
    /// Chromium could not load the page (connection refused, TLS error...).
    #[error("loading {url} failed: {reason}")]
    NavigationFailed {
        /// The URL.
        url: String,
        /// Chromium's net error (`net::ERR_CONNECTION_REFUSED`...).
        reason: String,
    },
    /// `selector` matched nothing (or only invisible elements).
    #[error("selector {selector:?} matches no visible element on {url}")]
    SelectorNotFound {
        /// The URL.
        url: String,
        /// The selector.
        selector: String,
    },
    /// The call ran past `browser.timeoutSeconds` (waiting for a page slot included).
    #[error("browser {action} of {url} did not finish within {}s ({phase})", .timeout.as_secs_f64())]
    Timeout {
        /// `screenshot` or `pdf`.
        action: &'static str,
        /// The URL.
        url: String,
        /// The budget.
        timeout: Duration,
        /// Where it was when time ran out (`waiting for a page slot`, `loading`, `capturing`).
        phase: &'static str,
    },
    /// The result could not be saved (the media store's own error, already an envelope).
    #[error("{0}")]
    Save(carapace_policy::ErrorEnvelope),
    /// A DevTools protocol failure that is not one of the above (a bug, or Chromium crashed
    /// twice in one call).
    #[error("browser failure: {0}")]
    Internal(String),
}

impl CarapaceError for BrowserError {
    fn code(&self) -> ErrorCode {
        match self {
            // Missing or broken Chromium is an unavailable backend: 503 / exit 4, like a missing
            // bwrap or Docker. NOT_FOUND (404 / exit 3) would blame the caller's input.
            BrowserError::ChromiumMissing { .. } | BrowserError::LaunchFailed { .. } => {
                ErrorCode::SandboxBackendUnavailable
            }
            // Same codes as the media store's refused downloads: a private address is the
            // network policy's refusal, a refused scheme a bad request.
            BrowserError::PrivateNetworkRefused { .. } => ErrorCode::NetworkPolicyRefused,
            BrowserError::BadRequest(_)
            | BrowserError::SchemeRefused { .. }
            | BrowserError::Unresolvable { .. }
            | BrowserError::NavigationFailed { .. } => ErrorCode::BadRequest,
            BrowserError::FileRefused { source, .. } => source.code(),
            BrowserError::SelectorNotFound { .. } => ErrorCode::NotFound,
            BrowserError::Timeout { .. } => ErrorCode::Timeout,
            BrowserError::Save(e) => e.code,
            BrowserError::Internal(_) => ErrorCode::Internal,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            BrowserError::ChromiumMissing { .. } => Some(INSTALL_HINT.into()),
            BrowserError::LaunchFailed { .. } => Some(
                "Check that the binary runs: `chromium --headless --no-sandbox --dump-dom about:blank`."
                    .into(),
            ),
            BrowserError::SchemeRefused { .. } => {
                Some("Use an http://, https:// or file:// URL.".into())
            }
            BrowserError::FileRefused { .. } => Some(
                "file:// URLs must name a regular file inside the session's workspace (/workspace/...), \
                 without symlinks that lead out."
                    .into(),
            ),
            BrowserError::PrivateNetworkRefused { .. } => Some(
                "Loopback and private-network targets need browser.allowPrivateNetwork: true in the config."
                    .into(),
            ),
            BrowserError::SelectorNotFound { .. } => {
                Some("Check the CSS selector, or add waitMs if the element appears late.".into())
            }
            BrowserError::Timeout { .. } => Some(
                "The page did not finish loading in time; raise browser.timeoutSeconds, or check the URL."
                    .into(),
            ),
            BrowserError::Save(e) => e.hint.clone(),
            BrowserError::BadRequest(_)
            | BrowserError::Unresolvable { .. }
            | BrowserError::NavigationFailed { .. }
            | BrowserError::Internal(_) => None,
        }
    }

    fn details(&self) -> Map<String, Value> {
        let v = match self {
            BrowserError::ChromiumMissing { path, .. } => {
                json!({ "executablePath": path.as_ref().map(|p| p.display().to_string()) })
            }
            BrowserError::LaunchFailed { path, .. } => {
                json!({ "executablePath": path.display().to_string() })
            }
            BrowserError::BadRequest(_) | BrowserError::Internal(_) => json!({}),
            BrowserError::SchemeRefused { url, scheme } => json!({ "url": url, "scheme": scheme }),
            BrowserError::FileRefused { url, source } => {
                let mut m = source.details();
                m.insert("url".into(), json!(url));
                Value::Object(m)
            }
            BrowserError::PrivateNetworkRefused { url, host, address } => {
                json!({ "url": url, "host": host, "address": address, "setting": "browser.allowPrivateNetwork" })
            }
            BrowserError::Unresolvable { url, host, .. } => json!({ "url": url, "host": host }),
            BrowserError::NavigationFailed { url, reason } => {
                json!({ "url": url, "error": reason })
            }
            BrowserError::SelectorNotFound { url, selector } => {
                json!({ "url": url, "selector": selector })
            }
            BrowserError::Timeout {
                action,
                url,
                timeout,
                phase,
            } => json!({
                "action": action,
                "url": url,
                "timeoutSeconds": timeout.as_secs_f64(),
                "phase": phase,
            }),
            BrowserError::Save(e) => Value::Object(e.details.clone()),
        };
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }
}
