//! Real Chromium against a loopback server with known pages: sizes, pixels, selector, full
//! page, PDF, redirects, timeouts.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use carapace_browser::{BrowserArgs, CaptureRequest};
use carapace_policy::{CarapaceError, ErrorCode};
use common::*;

fn shot(url: String, w: Option<u32>, h: Option<u32>) -> CaptureRequest {
    CaptureRequest::from_args(
        Some("screenshot"),
        BrowserArgs {
            url,
            width: w,
            height: h,
            ..BrowserArgs::default()
        },
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshot_has_requested_size_and_known_pixels() {
    if !require_chromium() {
        return;
    }
    let srv = serve().await;
    let svc = service(30);
    let policy = svc.policy(None);
    let cap = svc
        .capture(&shot(srv.url("/box"), Some(640), Some(480)), &policy)
        .await
        .unwrap();
    assert_eq!(cap.mime, "image/png");
    assert_eq!((cap.width, cap.height), (640, 480));
    let img = Image::decode(&cap.bytes);
    assert_eq!((img.width, img.height), (640, 480));
    assert_eq!(img.pixel(10, 10), [255, 0, 0]);
    assert_eq!(img.pixel(299, 199), [255, 0, 0]);
    assert_eq!(img.pixel(300, 100), [255, 255, 255]);
    assert_eq!(img.pixel(450, 340), [0, 128, 0]);
    assert_eq!(img.pixel(639, 479), [255, 255, 255]);
    svc.shutdown().await;
}
