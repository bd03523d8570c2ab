//! Argument validation, settings from the config, and the Chromium argv — all pure.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use carapace_browser::{
    Action, BrowserArgs, BrowserSettings, CHROMIUM_FLAGS, CaptureRequest, DEFAULT_HEIGHT,
    DEFAULT_WIDTH, chromium_args, png_dimensions,
};
use carapace_policy::{CarapaceError, Config, ErrorCode, LoadEnv};
use serde_json::json;

fn parse(action: Option<&str>, v: serde_json::Value) -> Result<CaptureRequest, ErrorCode> {
    let args: BrowserArgs = serde_json::from_value(v).map_err(|_| ErrorCode::BadRequest)?;
    CaptureRequest::from_args(action, args).map_err(|e| e.code())
}

#[test]
fn screenshot_arguments() {
    let r = parse(None, json!({"url": "http://x/"})).unwrap();
    match r.action {
        Action::Screenshot(o) => {
            assert_eq!((o.width, o.height), (DEFAULT_WIDTH, DEFAULT_HEIGHT));
            assert!(!o.full_page && o.selector.is_none() && o.wait_ms == 0);
        }
        other => panic!("{other:?}"),
    }
    let r = parse(
        Some("screenshot"),
        json!({"url": "http://x/", "width": 4096, "height": 1, "fullPage": true, "waitMs": 60000}),
    )
    .unwrap();
    assert!(matches!(r.action, Action::Screenshot(ref o) if o.full_page && o.width == 4096));
    // `action` inside the arguments is accepted; the one beside them wins.
    assert_eq!(
        parse(None, json!({"url": "http://x/", "action": "pdf"}))
            .unwrap()
            .action,
        Action::Pdf
    );
    assert!(matches!(
        parse(
            Some("screenshot"),
            json!({"url": "http://x/", "action": "pdf"})
        )
        .unwrap()
        .action,
        Action::Screenshot(_)
    ));
    for (action, bad) in [
        (None, json!({"url": "http://x/", "width": 0})),
        (None, json!({"url": "http://x/", "width": 4097})),
        (None, json!({"url": "http://x/", "height": 100000})),
        (None, json!({"url": "http://x/", "width": -1})),
        (None, json!({"url": "http://x/", "waitMs": 60001})),
        (None, json!({"url": "http://x/", "selector": "  "})),
        (
            None,
            json!({"url": "http://x/", "selector": "#a", "fullPage": true}),
        ),
        (None, json!({"url": "http://x/", "fullpage": true})),
        (None, json!({"url": ""})),
        (None, json!({})),
        (None, json!({"url": 3})),
        (Some("click"), json!({"url": "http://x/"})),
        (Some("pdf"), json!({"url": "http://x/", "width": 100})),
        (Some("pdf"), json!({"url": "http://x/", "selector": "a"})),
    ] {
        assert_eq!(
            parse(action, bad.clone()).unwrap_err(),
            ErrorCode::BadRequest,
            "{bad}"
        );
    }
}

#[test]
fn settings_from_config() {
    let var = |_: &str| None;
    let env = LoadEnv {
        var: &var,
        home: "/home/x",
        state_dir: PathBuf::from("/tmp/state"),
    };
    let c = Config::parse(
        r#"{ browser: { executablePath: "/opt/chrome", allowPrivateNetwork: true, maxPages: 2, timeoutSeconds: 7 } }"#,
        "t.json5",
        &env,
    )
    .unwrap();
    let s = BrowserSettings::from_config(&c);
    assert_eq!(s.executable_path.as_deref(), Some(Path::new("/opt/chrome")));
    assert!(s.allow_private_network);
    assert_eq!(s.max_pages, 2);
    assert_eq!(s.timeout, Duration::from_secs(7));

    let d = BrowserSettings::from_config(&Config::parse("{}", "t.json5", &env).unwrap());
    assert_eq!(d, BrowserSettings::default());
    assert!(!d.allow_private_network);
    assert_eq!(d.max_pages, 4);
    assert_eq!(d.timeout, Duration::from_secs(30));

    let z = Config::parse(
        "{ browser: { maxPages: 0, timeoutSeconds: 0 } }",
        "t.json5",
        &env,
    );
    if let Ok(z) = z {
        let s = BrowserSettings::from_config(&z);
        assert_eq!(s.max_pages, 1, "at least one page");
        assert_eq!(s.timeout, Duration::from_secs(1), "at least one second");
    }
}

#[test]
fn chromium_argv() {
    let args = chromium_args(Path::new("/tmp/profile"), "socks5://127.0.0.1:1080");
    for must in [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--force-device-scale-factor=1",
        "--user-data-dir=/tmp/profile",
        "--remote-debugging-port=0",
        "--proxy-server=socks5://127.0.0.1:1080",
        "--proxy-bypass-list=<-loopback>",
        "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    ] {
        assert!(args.iter().any(|a| a == must), "missing {must}");
    }
    assert!(CHROMIUM_FLAGS.iter().all(|f| f.starts_with("--")));
    // No flag that would widen what a page may reach.
    for never in [
        "--allow-file-access-from-files",
        "--disable-web-security",
        "--remote-allow-origins=*",
    ] {
        assert!(!args.iter().any(|a| a == never), "{never}");
    }
}

#[test]
fn png_header() {
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend_from_slice(&300u32.to_be_bytes());
    png.extend_from_slice(&200u32.to_be_bytes());
    assert_eq!(png_dimensions(&png), Some((300, 200)));
    assert_eq!(png_dimensions(b"%PDF-1.7"), None);
    assert_eq!(png_dimensions(&png[..20]), None);
}

#[test]
fn error_envelopes_carry_code_hint_details() {
    let e = CaptureRequest::from_args(
        None,
        BrowserArgs {
            url: "http://x/".into(),
            width: Some(0),
            ..BrowserArgs::default()
        },
    )
    .unwrap_err();
    let v = e.to_envelope().to_response_json();
    assert_eq!(v["ok"], false);
    assert_eq!(v["error"]["code"], "BAD_REQUEST");
    assert!(v["error"]["message"].as_str().unwrap().contains("width"));
}
