//! carapace's browser engine (the `browser` tool, docs/gateway.md): a real headless Chromium driven
//! over the DevTools protocol, whose screenshots and PDFs land in the media store at 0644 —
//! a path the `message` tool can send as it is.
//!
//! - [`BrowserService`]: one Chromium process for every call (started by the first one, in
//!   its own process group, with a fresh profile dir and the flags of [`CHROMIUM_FLAGS`]); a
//!   fresh browser context and page per call; at most `browser.maxPages` pages at once; the
//!   whole call bounded by `browser.timeoutSeconds` (`TIMEOUT`); a dead Chromium is replaced
//!   by the next call, and a call that finds it dying mid-way is retried once.
//! - [`UrlPolicy`]: `http(s)` and `file` only; every address of every host public unless
//!   `browser.allowPrivateNetwork`; `file:` URLs opened through the workspace's
//!   [`carapace_fs::Root`]. Applied to the URL, every redirect and every subresource (requests
//!   are paused with the DevTools `Fetch` domain until the policy answers; workspace files are
//!   served from the checked fd). Below that, every connection goes through a loopback SOCKS5
//!   proxy that resolves, checks every address and connects only to a checked one.
//! - [`capture_to_media`]: capture, then save through [`carapace_media::MediaStore`].
//! - Missing Chromium is `SANDBOX_BACKEND_UNAVAILABLE` with the install hint
//!   ([`INSTALL_HINT`]).
//!
//! Errors are [`BrowserError`], which implements [`carapace_policy::CarapaceError`].

#![forbid(unsafe_code)]

mod capture;
mod error;
mod intercept;
mod process;
mod proxy;
mod request;
mod service;
pub mod url_policy;

pub use error::{BrowserError, INSTALL_HINT};
pub use process::{BrowserEnv, CHROMIUM_FLAGS, chromium_args, find_chromium};
pub use request::{
    Action, BrowserArgs, Capture, CaptureRequest, DEFAULT_HEIGHT, DEFAULT_WIDTH, MAX_DIMENSION,
    MAX_FULL_PAGE_HEIGHT, MAX_WAIT_MS, PDF_PAPER_INCHES, ScreenshotOptions, png_dimensions,
};
pub use service::{BrowserService, BrowserSettings, DEFAULT_MAX_PAGES, DEFAULT_TIMEOUT_SECONDS};
pub use url_policy::{Origin, UrlPolicy, WorkspaceScope};

use carapace_policy::CarapaceError;
use serde::Serialize;

/// A capture saved in the media store: the `browser` tool's result (docs/gateway.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedCapture {
    /// Host path of the saved file (what `message` accepts as an attachment).
    pub path: std::path::PathBuf,
    /// Sniffed MIME type (`image/png`, `application/pdf`).
    pub mime: String,
    /// Size in bytes.
    pub bytes: u64,
    /// PNG: pixels; PDF: page width in points.
    pub width: u32,
    /// PNG: pixels; PDF: page height in points.
    pub height: u32,
    /// The file's mode, `"0644"`.
    pub mode: String,
}

/// The narrow seam between the engine and the media store: bytes in, a saved file out.
pub fn save_capture(
    store: &carapace_media::MediaStore,
    capture: &Capture,
) -> Result<SavedCapture, BrowserError> {
    let name = match capture.mime {
        "application/pdf" => "page.pdf",
        _ => "screenshot.png",
    };
    let saved = store
        .save_bytes(&capture.bytes, Some(name), Some(capture.mime))
        .map_err(|e| BrowserError::Save(e.to_envelope()))?;
    Ok(SavedCapture {
        path: saved.path,
        mime: saved.mime,
        bytes: saved.bytes,
        width: capture.width,
        height: capture.height,
        mode: saved.mode,
    })
}

/// Captures `req` under `policy` and saves the result through `store`.
pub async fn capture_to_media(
    service: &BrowserService,
    store: &carapace_media::MediaStore,
    req: &CaptureRequest,
    policy: &UrlPolicy,
) -> Result<SavedCapture, BrowserError> {
    let capture = service.capture(req, policy).await?;
    save_capture(store, &capture)
}
