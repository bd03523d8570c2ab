//! Without a usable Chromium the tool answers with a typed error and the install hint — and
//! URL refusals still work, since they need no browser.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::PathBuf;
use std::time::Duration;

use carapace_browser::{
    BrowserArgs, BrowserError, BrowserService, BrowserSettings, CaptureRequest, find_chromium,
};
use carapace_policy::{CarapaceError, ErrorCode};

fn req(url: &str) -> CaptureRequest {
    CaptureRequest::from_args(
        None,
        BrowserArgs {
            url: url.into(),
            ..BrowserArgs::default()
        },
    )
    .unwrap()
}

fn svc(path: &str) -> BrowserService {
    BrowserService::new(BrowserSettings {
        executable_path: Some(PathBuf::from(path)),
        allow_private_network: true,
        timeout: Duration::from_secs(10),
        ..BrowserSettings::default()
    })
}

#[tokio::test]
async fn missing_binary_is_backend_unavailable_with_the_install_hint() {
    let s = svc("/nonexistent/chromium");
    let e = s
        .capture(&req("http://127.0.0.1:9/"), &s.policy(None))
        .await
        .unwrap_err();
    assert!(matches!(e, BrowserError::ChromiumMissing { .. }), "{e}");
    assert_eq!(e.code(), ErrorCode::SandboxBackendUnavailable);
    assert_eq!(e.code().http_status(), 503);
    assert_eq!(e.code().exit_code(), 4);
    assert!(e.hint().unwrap().contains("apt-get install -y chromium"));
    assert_eq!(e.details()["executablePath"], "/nonexistent/chromium");
    let env = e.to_envelope();
    assert_eq!(
        env.to_response_json()["error"]["code"],
        "SANDBOX_BACKEND_UNAVAILABLE"
    );

    assert!(matches!(
        find_chromium(Some(std::path::Path::new("/nonexistent/chromium"))),
        Err(BrowserError::ChromiumMissing { .. })
    ));
}

#[tokio::test]
async fn a_binary_that_does_not_start_is_backend_unavailable() {
    let s = svc("/bin/false");
    let e = s
        .capture(&req("http://127.0.0.1:9/"), &s.policy(None))
        .await
        .unwrap_err();
    assert!(matches!(e, BrowserError::LaunchFailed { .. }), "{e}");
    assert_eq!(e.code(), ErrorCode::SandboxBackendUnavailable);
}

#[tokio::test]
async fn refusals_come_first_and_need_no_browser() {
    let s = BrowserService::new(BrowserSettings {
        executable_path: Some(PathBuf::from("/nonexistent/chromium")),
        ..BrowserSettings::default()
    });
    let e = s
        .capture(&req("http://127.0.0.1/"), &s.policy(None))
        .await
        .unwrap_err();
    assert!(
        matches!(e, BrowserError::PrivateNetworkRefused { .. }),
        "{e}"
    );
    let e = s
        .capture(&req("javascript:alert(1)"), &s.policy(None))
        .await
        .unwrap_err();
    assert!(matches!(e, BrowserError::SchemeRefused { .. }), "{e}");
}
