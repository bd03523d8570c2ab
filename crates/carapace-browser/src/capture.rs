//! What a page call produces: the viewport, a PNG screenshot (viewport, full page or one
//! element) and a PDF, each checked to be what it claims before it is returned.

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::page::{
    CaptureScreenshotFormat, CaptureScreenshotParams, GetLayoutMetricsParams, PrintToPdfParams,
    Viewport,
};
use chromiumoxide::error::CdpError;

use crate::error::BrowserError;
use crate::request::{
    Capture, MAX_FULL_PAGE_HEIGHT, PDF_PAPER_INCHES, ScreenshotOptions, png_dimensions,
};
use crate::service::PageError;

pub(crate) async fn set_viewport(page: &Page, width: u32, height: u32) -> Result<(), CdpError> {
    page.execute(SetDeviceMetricsOverrideParams::new(
        i64::from(width),
        i64::from(height),
        1.0,
        false,
    ))
    .await?;
    Ok(())
}

#[derive(serde::Deserialize)]
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

pub(crate) async fn screenshot(
    page: &Page,
    url: &str,
    o: &ScreenshotOptions,
) -> Result<Capture, PageError> {
    let mut params = CaptureScreenshotParams {
        format: Some(CaptureScreenshotFormat::Png),
        ..CaptureScreenshotParams::default()
    };
    if o.full_page {
        let m = page.execute(GetLayoutMetricsParams::default()).await?;
        let content_h = m.result.css_content_size.height.ceil();
        let h = (content_h as u32).clamp(o.height, MAX_FULL_PAGE_HEIGHT);
        set_viewport(page, o.width, h).await?;
    } else if let Some(sel) = &o.selector {
        let sel_js = serde_json::to_string(sel).map_err(CdpError::from)?;
        let js = format!(
            "(() => {{ let e; try {{ e = document.querySelector({sel_js}); }} catch (_) {{ return 'invalid'; }} \
             if (!e) return 'null'; \
             e.scrollIntoView({{block: 'start', inline: 'start'}}); \
             const r = e.getBoundingClientRect(); \
             if (r.width < 1 || r.height < 1) return 'null'; \
             return JSON.stringify({{x: r.left + window.scrollX, y: r.top + window.scrollY, w: r.width, h: r.height}}); }})()"
        );
        // A string always: chromiumoxide reports a bare `null` result as an error.
        let text: String = page
            .evaluate(js)
            .await?
            .into_value()
            .map_err(CdpError::from)?;
        if text == "invalid" {
            return Err(PageError::Browser(BrowserError::BadRequest(format!(
                "selector {sel:?} is not a valid CSS selector"
            ))));
        }
        let rect: Option<Rect> = serde_json::from_str(&text).map_err(CdpError::from)?;
        let Some(r) = rect else {
            return Err(PageError::Browser(BrowserError::SelectorNotFound {
                url: url.to_string(),
                selector: sel.clone(),
            }));
        };
        params.clip = Some(Viewport {
            x: r.x,
            y: r.y,
            width: r.w,
            height: r.h.min(f64::from(MAX_FULL_PAGE_HEIGHT)),
            scale: 1.0,
        });
        params.capture_beyond_viewport = Some(true);
    }
    let res = page.execute(params).await?;
    let text: String = res.result.data.clone().into();
    let bytes = decode_b64(&text)?;
    let (width, height) = png_dimensions(&bytes).ok_or_else(|| {
        BrowserError::Internal("Chromium returned something that is not a PNG".into())
    })?;
    Ok(Capture {
        bytes,
        mime: "image/png",
        width,
        height,
    })
}

pub(crate) async fn pdf(page: &Page) -> Result<Capture, PageError> {
    let (pw, ph) = PDF_PAPER_INCHES;
    let params = PrintToPdfParams {
        print_background: Some(true),
        paper_width: Some(pw),
        paper_height: Some(ph),
        ..PrintToPdfParams::default()
    };
    let bytes = page.pdf(params).await?;
    if !bytes.starts_with(b"%PDF-") {
        return Err(
            BrowserError::Internal("Chromium returned something that is not a PDF".into()).into(),
        );
    }
    Ok(Capture {
        bytes,
        mime: "application/pdf",
        width: (pw * 72.0).round() as u32,
        height: (ph * 72.0).round() as u32,
    })
}

/// CDP `Binary` values are base64 text.
fn decode_b64(text: &str) -> Result<Vec<u8>, PageError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| PageError::Browser(BrowserError::Internal(format!("screenshot data: {e}"))))
}
