//! With a real Chromium: workspace files render; everything a page pulls in by itself
//! (subresources, frames, script navigations) is held to the same policy as the URL.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use carapace_browser::{
    BrowserArgs, BrowserError, BrowserService, BrowserSettings, CaptureRequest, UrlPolicy,
    WorkspaceScope,
};
use carapace_fs::Root;
use carapace_policy::{CarapaceError, ErrorCode};
use common::*;

fn shot(url: String) -> CaptureRequest {
    CaptureRequest::from_args(
        None,
        BrowserArgs {
            url,
            width: Some(400),
            height: Some(300),
            ..BrowserArgs::default()
        },
    )
    .unwrap()
}

struct Fx {
    _tmp: tempfile::TempDir,
    ws: PathBuf,
    outside: PathBuf,
}

fn fixture() -> Fx {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(ws.join("box.html"), BOX_PAGE).unwrap();
    std::fs::write(ws.join("red.png"), red_png()).unwrap();
    std::fs::write(outside.join("red.png"), red_png()).unwrap();
    std::fs::write(
        outside.join("secret.html"),
        "<body style='margin:0;background:rgb(255,0,0)'></body>",
    )
    .unwrap();
    std::os::unix::fs::symlink(&outside, ws.join("out")).unwrap();
    Fx {
        _tmp: tmp,
        ws,
        outside,
    }
}

fn policy(svc: &BrowserService, ws: &std::path::Path) -> UrlPolicy {
    svc.policy(Some(WorkspaceScope::new(
        Root::open(ws).unwrap(),
        Some(PathBuf::from("/workspace")),
    )))
}

fn closed_service() -> BrowserService {
    BrowserService::new(BrowserSettings {
        allow_private_network: false,
        timeout: Duration::from_secs(20),
        ..BrowserSettings::default()
    })
}

/// A page whose whole viewport is a 400×300 image (or frame) from `src`.
fn embedding(kind: &str, src: &str) -> String {
    let el = match kind {
        "img" => format!("<img src='{src}' style='display:block;width:400px;height:300px'>"),
        _ => format!(
            "<iframe src='{src}' style='display:block;border:0;width:400px;height:300px'></iframe>"
        ),
    };
    format!("<!doctype html><body style='margin:0;background:#fff'>{el}</body>")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_files_render_by_container_and_host_path() {
    if !require_chromium() {
        return;
    }
    let fx = fixture();
    let svc = closed_service();
    let p = policy(&svc, &fx.ws);
    for url in [
        "file:///workspace/box.html".to_string(),
        format!("file://{}/box.html", fx.ws.display()),
    ] {
        let cap = svc.capture(&shot(url.clone()), &p).await.unwrap();
        assert_eq!(Image::decode(&cap.bytes).pixel(5, 5), [255, 0, 0], "{url}");
    }
    // An image inside the workspace, referenced relatively, loads.
    std::fs::write(fx.ws.join("img-in.html"), embedding("img", "red.png")).unwrap();
    let cap = svc
        .capture(&shot("file:///workspace/img-in.html".into()), &p)
        .await
        .unwrap();
    assert_eq!(Image::decode(&cap.bytes).pixel(200, 150), [255, 0, 0]);
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_is_served_workspace_files_from_the_checked_fd() {
    if !require_chromium() {
        return;
    }
    // The workspace Root is pinned to a directory fd. Move the directory away: the host path
    // Chromium is given no longer exists, so the page renders only if the bytes come from
    // carapace (read through the fd), not from Chromium opening the path.
    let fx = fixture();
    std::fs::write(fx.ws.join("img-in.html"), embedding("img", "red.png")).unwrap();
    let svc = closed_service();
    let p = policy(&svc, &fx.ws);
    std::fs::rename(&fx.ws, fx.ws.with_file_name("moved")).unwrap();
    let cap = svc
        .capture(&shot("file:///workspace/img-in.html".into()), &p)
        .await
        .unwrap();
    assert_eq!(Image::decode(&cap.bytes).pixel(200, 150), [255, 0, 0]);
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_urls_outside_the_workspace_are_refused_before_chromium_sees_them() {
    if !require_chromium() {
        return;
    }
    let fx = fixture();
    let svc = closed_service();
    let p = policy(&svc, &fx.ws);
    for (url, want) in [
        (
            format!("file://{}", fx.outside.join("secret.html").display()),
            ErrorCode::PathOutsideRoot,
        ),
        (
            "file:///workspace/../outside/secret.html".to_string(),
            ErrorCode::PathOutsideRoot,
        ),
        (
            "file:///workspace/out/secret.html".to_string(),
            ErrorCode::PathOutsideRoot,
        ),
        (
            "file:///etc/hostname".to_string(),
            ErrorCode::PathOutsideRoot,
        ),
    ] {
        let e = svc.capture(&shot(url.clone()), &p).await.unwrap_err();
        assert_eq!(e.code(), want, "{url}: {e}");
        assert!(matches!(e, BrowserError::FileRefused { .. }));
    }
    assert_eq!(svc.chromium_pid().await, None, "refusals need no browser");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workspace_page_cannot_pull_in_files_from_outside() {
    if !require_chromium() {
        return;
    }
    let fx = fixture();
    let svc = closed_service();
    let p = policy(&svc, &fx.ws);
    let secret_png = format!("file://{}", fx.outside.join("red.png").display());
    let secret_html = format!("file://{}", fx.outside.join("secret.html").display());
    for (name, html) in [
        ("img-abs.html", embedding("img", &secret_png)),
        ("img-link.html", embedding("img", "out/red.png")),
        ("img-dotdot.html", embedding("img", "../outside/red.png")),
        ("frame-abs.html", embedding("iframe", &secret_html)),
        ("frame-link.html", embedding("iframe", "out/secret.html")),
    ] {
        std::fs::write(fx.ws.join(name), html).unwrap();
        let cap = svc
            .capture(&shot(format!("file:///workspace/{name}")), &p)
            .await
            .unwrap();
        let px = Image::decode(&cap.bytes).pixel(200, 150);
        assert_ne!(
            px,
            [255, 0, 0],
            "{name}: content from outside the workspace was rendered"
        );
    }
    svc.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_network_is_refused_for_pages_subresources_and_navigations() {
    if !require_chromium() {
        return;
    }
    let srv = serve().await;
    let fx = fixture();
    let svc = closed_service();
    let p = policy(&svc, &fx.ws);

    // The page itself.
    let e = svc.capture(&shot(srv.url("/box")), &p).await.unwrap_err();
    assert!(
        matches!(e, BrowserError::PrivateNetworkRefused { .. }),
        "{e}"
    );
    assert_eq!(e.code(), ErrorCode::NetworkPolicyRefused);
    assert_eq!(e.code().http_status(), 403);
    assert_eq!(e.details()["address"], "127.0.0.1");

    // An image and a frame of a workspace page, and a script navigation: never fetched.
    let hit = srv.url("/hit.png");
    std::fs::write(fx.ws.join("img.html"), embedding("img", &hit)).unwrap();
    std::fs::write(fx.ws.join("frame.html"), embedding("iframe", &hit)).unwrap();
    std::fs::write(
        fx.ws.join("nav.html"),
        format!("<body><script>location.href = '{hit}';</script></body>"),
    )
    .unwrap();
    let ws_url = srv.url("/ws").replace("http://", "ws://");
    std::fs::write(
        fx.ws.join("socket.html"),
        format!("<body><script>new WebSocket('{ws_url}');</script></body>"),
    )
    .unwrap();
    let fetch_url = srv.url("/ws");
    std::fs::write(
        fx.ws.join("fetch.html"),
        format!("<body><script>fetch('{fetch_url}').catch(() => {{}}); navigator.sendBeacon('{fetch_url}', 'x');</script></body>"),
    )
    .unwrap();
    for name in [
        "img.html",
        "frame.html",
        "nav.html",
        "socket.html",
        "fetch.html",
    ] {
        let before = srv.hits();
        let r = svc
            .capture(&shot(format!("file:///workspace/{name}")), &p)
            .await;
        if let Ok(cap) = r {
            assert_ne!(
                Image::decode(&cap.bytes).pixel(200, 150),
                [255, 0, 0],
                "{name}"
            );
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(srv.hits(), before, "{name} contacted a refused address");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(srv.hits(), 0, "a refused address was contacted");

    // The same pages with the switch on do reach the server (the test is not vacuous).
    let open = BrowserService::new(BrowserSettings {
        allow_private_network: true,
        timeout: Duration::from_secs(20),
        ..BrowserSettings::default()
    });
    let po = policy(&open, &fx.ws);
    let cap = open
        .capture(&shot("file:///workspace/img.html".into()), &po)
        .await
        .unwrap();
    assert_eq!(Image::decode(&cap.bytes).pixel(200, 150), [255, 0, 0]);
    assert!(srv.hits() >= 1);
    // …and so does the WebSocket (which the Fetch domain never sees: the proxy decides).
    let before = srv.hits();
    open.capture(&shot("file:///workspace/socket.html".into()), &po)
        .await
        .unwrap();
    let mut reached = false;
    for _ in 0..20 {
        if srv.hits() > before {
            reached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        reached,
        "the WebSocket did not reach the server with the switch on"
    );
    svc.shutdown().await;
    open.shutdown().await;
}
