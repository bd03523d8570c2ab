//! The arguments of a browser call, validated (pure), and the capture it produces.

use serde::Deserialize;

use crate::error::BrowserError;

/// Viewport width when `width` is not given (CSS px = image px).
pub const DEFAULT_WIDTH: u32 = 1280;
/// Viewport height when `height` is not given.
pub const DEFAULT_HEIGHT: u32 = 800;
/// Largest `width` / `height` accepted.
pub const MAX_DIMENSION: u32 = 4096;
/// A full-page screenshot is cut at this height.
pub const MAX_FULL_PAGE_HEIGHT: u32 = 16384;
/// Largest `waitMs` accepted (the call's timeout bounds it anyway).
pub const MAX_WAIT_MS: u64 = 60_000;
/// PDF paper: US Letter, Chromium's default, in inches.
pub const PDF_PAPER_INCHES: (f64, f64) = (8.5, 11.0);

/// What to do with the page.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A PNG of the viewport, the whole page, or one element.
    Screenshot(ScreenshotOptions),
    /// A PDF of the page, printed on [`PDF_PAPER_INCHES`] with backgrounds.
    Pdf,
}

impl Action {
    /// `"screenshot"` or `"pdf"`.
    pub fn name(&self) -> &'static str {
        match self {
            Action::Screenshot(_) => "screenshot",
            Action::Pdf => "pdf",
        }
    }
}

/// Screenshot options, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ScreenshotOptions {
    /// Viewport width.
    pub width: u32,
    /// Viewport height.
    pub height: u32,
    /// Capture the whole scrollable page (cut at [`MAX_FULL_PAGE_HEIGHT`]).
    pub full_page: bool,
    /// Capture only the first element matching this CSS selector.
    pub selector: Option<String>,
    /// Wait this long after the page loaded before capturing.
    pub wait_ms: u64,
}

/// One browser call.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureRequest {
    /// The URL as the caller gave it.
    pub url: String,
    /// What to produce.
    pub action: Action,
}

/// The tool's wire arguments (docs/gateway.md, OpenClaw names).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BrowserArgs {
    /// `screenshot` (default) or `pdf`. Usually given beside the arguments, accepted inside.
    #[serde(default)]
    pub action: Option<String>,
    /// The page.
    pub url: String,
    /// Viewport width.
    #[serde(default)]
    pub width: Option<u32>,
    /// Viewport height.
    #[serde(default)]
    pub height: Option<u32>,
    /// Whole page.
    #[serde(default)]
    pub full_page: Option<bool>,
    /// One element.
    #[serde(default)]
    pub selector: Option<String>,
    /// Extra wait.
    #[serde(default)]
    pub wait_ms: Option<u64>,
}

impl CaptureRequest {
    /// Validates wire arguments. `action` (from beside the arguments) wins over `args.action`.
    pub fn from_args(
        action: Option<&str>,
        args: BrowserArgs,
    ) -> Result<CaptureRequest, BrowserError> {
        let action = action.or(args.action.as_deref()).unwrap_or("screenshot");
        if args.url.trim().is_empty() {
            return Err(BrowserError::BadRequest("url is required".into()));
        }
        let action = match action {
            "screenshot" => {
                let dim = |name: &str, v: Option<u32>, default: u32| match v {
                    None => Ok(default),
                    Some(v) if (1..=MAX_DIMENSION).contains(&v) => Ok(v),
                    Some(v) => Err(BrowserError::BadRequest(format!(
                        "{name} must be between 1 and {MAX_DIMENSION}, got {v}"
                    ))),
                };
                let selector = match args.selector {
                    Some(s) if s.trim().is_empty() => {
                        return Err(BrowserError::BadRequest("selector is empty".into()));
                    }
                    s => s,
                };
                let wait_ms = args.wait_ms.unwrap_or(0);
                if wait_ms > MAX_WAIT_MS {
                    return Err(BrowserError::BadRequest(format!(
                        "waitMs must be at most {MAX_WAIT_MS}, got {wait_ms}"
                    )));
                }
                let full_page = args.full_page.unwrap_or(false);
                if full_page && selector.is_some() {
                    return Err(BrowserError::BadRequest(
                        "fullPage and selector cannot be combined".into(),
                    ));
                }
                Action::Screenshot(ScreenshotOptions {
                    width: dim("width", args.width, DEFAULT_WIDTH)?,
                    height: dim("height", args.height, DEFAULT_HEIGHT)?,
                    full_page,
                    selector,
                    wait_ms,
                })
            }
            "pdf" => {
                if args.width.is_some()
                    || args.height.is_some()
                    || args.full_page.is_some()
                    || args.selector.is_some()
                    || args.wait_ms.is_some()
                {
                    return Err(BrowserError::BadRequest("action pdf takes only url".into()));
                }
                Action::Pdf
            }
            other => {
                return Err(BrowserError::BadRequest(format!(
                    "unknown browser action {other:?} (screenshot, pdf)"
                )));
            }
        };
        Ok(CaptureRequest {
            url: args.url,
            action,
        })
    }
}

/// What a call produced, before it is saved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    /// The PNG or PDF bytes.
    pub bytes: Vec<u8>,
    /// `image/png` or `application/pdf`.
    pub mime: &'static str,
    /// PNG: pixels. PDF: page width in points (1/72 in).
    pub width: u32,
    /// PNG: pixels. PDF: page height in points.
    pub height: u32,
}

/// Width and height from a PNG's IHDR chunk, or `None` when `bytes` is not a PNG.
pub fn png_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIG: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || !bytes.starts_with(SIG) || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
    let h = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
    Some((w, h))
}
