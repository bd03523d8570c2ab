//! Real Chromium against a loopback server with known pages: sizes, pixels, selector, full
//! page, PDF, redirects, timeouts, the page cap, concurrent calls.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use carapace_browser::{BrowserArgs, BrowserService, BrowserSettings, CaptureRequest};
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

fn with(url: String, f: impl FnOnce(&mut BrowserArgs)) -> CaptureRequest {
    let mut a = BrowserArgs {
        url,
        ..BrowserArgs::default()
    };
    f(&mut a);
    CaptureRequest::from_args(None, a).unwrap()
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

    // Defaults: 1280×800. The same Chromium serves the second call.
    let pid = svc.chromium_pid().await.unwrap();
    let cap = svc
        .capture(&shot(srv.url("/box"), None, None), &policy)
        .await
        .unwrap();
    assert_eq!((cap.width, cap.height), (1280, 800));
    assert_eq!(
        svc.chromium_pid().await,
        Some(pid),
        "one browser process for every call"
    );
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selector_full_page_and_redirect() {
    if !require_chromium() {
        return;
    }
    let srv = serve().await;
    let svc = service(30);
    let policy = svc.policy(None);

    // The element alone: exactly the green 120×80 box.
    let cap = svc
        .capture(
            &with(srv.url("/box"), |a| a.selector = Some("#green".into())),
            &policy,
        )
        .await
        .unwrap();
    assert_eq!((cap.width, cap.height), (120, 80));
    let img = Image::decode(&cap.bytes);
    assert_eq!(img.pixel(0, 0), [0, 128, 0]);
    assert_eq!(img.pixel(119, 79), [0, 128, 0]);

    // A selector that matches nothing: NOT_FOUND, with the selector.
    let e = svc
        .capture(
            &with(srv.url("/box"), |a| a.selector = Some("#nope".into())),
            &policy,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound, "{e}");
    assert_eq!(e.details()["selector"], "#nope");
    let e = svc
        .capture(
            &with(srv.url("/box"), |a| a.selector = Some("div[".into())),
            &policy,
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadRequest, "{e}");

    // Full page: the whole 3000px, with the blue band at the bottom.
    let cap = svc
        .capture(
            &with(srv.url("/tall"), |a| {
                a.full_page = Some(true);
                a.width = Some(400);
                a.height = Some(300);
            }),
            &policy,
        )
        .await
        .unwrap();
    assert_eq!((cap.width, cap.height), (400, 3000));
    let img = Image::decode(&cap.bytes);
    assert_eq!(img.pixel(200, 2950), [0, 0, 255]);
    assert_eq!(img.pixel(200, 100), [255, 255, 255]);

    // Without fullPage only the viewport.
    let cap = svc
        .capture(&shot(srv.url("/tall"), Some(400), Some(300)), &policy)
        .await
        .unwrap();
    assert_eq!((cap.width, cap.height), (400, 300));

    // A redirect is followed (and checked: see the policy tests).
    let cap = svc
        .capture(
            &shot(srv.url("/redirect-box"), Some(320), Some(240)),
            &policy,
        )
        .await
        .unwrap();
    assert_eq!(Image::decode(&cap.bytes).pixel(5, 5), [255, 0, 0]);
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdf_is_a_pdf_on_letter_paper() {
    if !require_chromium() {
        return;
    }
    let srv = serve().await;
    let svc = service(30);
    let req = CaptureRequest::from_args(
        Some("pdf"),
        BrowserArgs {
            url: srv.url("/box"),
            ..BrowserArgs::default()
        },
    )
    .unwrap();
    let cap = svc.capture(&req, &svc.policy(None)).await.unwrap();
    assert_eq!(cap.mime, "application/pdf");
    assert!(cap.bytes.starts_with(b"%PDF-"));
    assert_eq!((cap.width, cap.height), (612, 792));
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_page_times_out_and_the_browser_stays_usable() {
    if !require_chromium() {
        return;
    }
    let srv = serve().await;
    let svc = service(3);
    let policy = svc.policy(None);
    let t0 = Instant::now();
    let e = svc
        .capture(&shot(srv.url("/hang"), Some(200), Some(100)), &policy)
        .await
        .unwrap_err();
    let took = t0.elapsed();
    assert_eq!(e.code(), ErrorCode::Timeout, "{e}");
    assert_eq!(e.code().http_status(), 504);
    assert_eq!(e.details()["phase"], "loading");
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_secs(10),
        "{took:?}"
    );
    // The next call is served normally.
    let cap = svc
        .capture(&shot(srv.url("/box"), Some(200), Some(100)), &policy)
        .await
        .unwrap();
    assert_eq!(Image::decode(&cap.bytes).pixel(5, 5), [255, 0, 0]);
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_pages_caps_concurrent_pages() {
    if !require_chromium() {
        return;
    }
    let srv = serve().await;
    // Three calls of a page the server answers only when the test opens its gate: with 1 and
    // then 3 page slots, exactly that many requests reach the server while the gate is closed.
    for slots in [1usize, 3] {
        srv.reset_slow();
        srv.set_gate(false);
        let svc = Arc::new(BrowserService::new(BrowserSettings {
            allow_private_network: true,
            max_pages: slots,
            timeout: Duration::from_secs(300),
            ..BrowserSettings::default()
        }));
        let mut tasks = Vec::new();
        for i in 0..3u32 {
            let svc = svc.clone();
            let policy = svc.policy(None);
            let url = srv.url("/slow");
            tasks.push(tokio::spawn(async move {
                svc.capture(&shot(url, Some(300 + i), Some(200 + i)), &policy)
                    .await
            }));
        }
        srv.wait_for(&srv.slow_now, slots).await;
        assert_eq!(
            srv.slow_max(),
            slots,
            "maxPages {slots} while the gate is closed"
        );
        srv.set_gate(true);
        for (i, t) in tasks.into_iter().enumerate() {
            let cap = t.await.unwrap().unwrap();
            assert_eq!((cap.width, cap.height), (300 + i as u32, 200 + i as u32));
        }
        assert_eq!(srv.slow_max(), slots, "maxPages {slots}");
        svc.shutdown().await;
    }

    // A call that waits for the only slot while another holds it past the deadline: TIMEOUT.
    // Which phase it reaches depends on when the holder gives the slot up (its deadline comes
    // first), so any phase is accepted, and on an idle machine the probe may even finish in the
    // time left after the holder timed out. The cap itself is proven above.
    let svc = Arc::new(BrowserService::new(BrowserSettings {
        allow_private_network: true,
        max_pages: 1,
        timeout: Duration::from_secs(5),
        ..BrowserSettings::default()
    }));
    let policy = svc.policy(None);
    let before = srv.hangs.load(std::sync::atomic::Ordering::SeqCst);
    let hung = {
        let (svc, policy, url) = (svc.clone(), policy.clone(), srv.url("/hang"));
        tokio::spawn(async move { svc.capture(&shot(url, Some(100), Some(100)), &policy).await })
    };
    srv.wait_for(&srv.hangs, before + 1).await;
    let probe = svc
        .capture(&shot(srv.url("/box"), Some(100), Some(100)), &policy)
        .await;
    if let Err(e) = probe {
        assert_eq!(e.code(), ErrorCode::Timeout, "{e}");
    }
    assert_eq!(hung.await.unwrap().unwrap_err().code(), ErrorCode::Timeout);
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn navigation_errors_are_typed() {
    if !require_chromium() {
        return;
    }
    // A port nobody listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let svc = service(10);
    let e = svc
        .capture(
            &shot(format!("http://127.0.0.1:{port}/"), None, None),
            &svc.policy(None),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadRequest, "{e}");
    assert!(
        e.details()["error"]
            .as_str()
            .unwrap()
            // Through carapace's connection proxy a refused upstream is a SOCKS failure.
            .starts_with("net::ERR_"),
        "{e}"
    );
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_is_a_typed_error_and_saves_nothing() {
    if !require_chromium() {
        return;
    }
    let srv = serve().await;
    let svc = service(15);
    let e = svc
        .capture(&shot(srv.url("/download"), None, None), &svc.policy(None))
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadRequest, "{e}");
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    for dir in [format!("{home}/Downloads"), "/tmp".to_string()] {
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for f in rd {
                let name = f.unwrap().file_name();
                assert!(
                    !name.to_string_lossy().contains("carapace-dl-test"),
                    "download saved in {dir}"
                );
            }
        }
    }
    svc.shutdown().await;
}
