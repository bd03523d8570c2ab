//! The URL policy without a browser: schemes, addresses (every one must be public), and
//! `file:` URLs mapped through the workspace's carapace-fs Root.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use carapace_browser::url_policy::{Target, address_error, parse_target};
use carapace_browser::{BrowserError, Origin, UrlPolicy, WorkspaceScope};
use carapace_fs::Root;
use carapace_media::netguard::AddressRefused;
use carapace_policy::{CarapaceError, ErrorCode};

fn code(r: Result<impl std::fmt::Debug, BrowserError>) -> ErrorCode {
    r.unwrap_err().code()
}

#[test]
fn schemes() {
    for ok in [
        "http://example.com/",
        "https://example.com:8443/a?b#c",
        "HTTP://EXAMPLE.COM",
        "http://127.0.0.1:9/",
        "http://[::1]/",
        "file:///workspace/a.html",
        "file://localhost/workspace/a.html",
    ] {
        assert!(parse_target(ok, Origin::Caller).is_ok(), "{ok}");
    }
    for (bad, want) in [
        ("javascript:alert(1)", ErrorCode::BadRequest),
        ("data:text/html,<h1>x</h1>", ErrorCode::BadRequest),
        ("ftp://example.com/x", ErrorCode::BadRequest),
        ("chrome://settings", ErrorCode::BadRequest),
        ("view-source:http://example.com", ErrorCode::BadRequest),
        ("about:blank", ErrorCode::BadRequest),
        ("blob:http://example.com/uuid", ErrorCode::BadRequest),
        ("ws://example.com/", ErrorCode::BadRequest),
        ("example.com", ErrorCode::BadRequest),
        ("", ErrorCode::BadRequest),
        ("http://", ErrorCode::BadRequest),
    ] {
        assert_eq!(code(parse_target(bad, Origin::Caller)), want, "{bad}");
    }
    assert!(matches!(
        parse_target("javascript:1", Origin::Caller).unwrap_err(),
        BrowserError::SchemeRefused { .. }
    ));
    // A page may use inert schemes for its own subresources; never for network or files.
    for inert in [
        "data:image/png;base64,AAAA",
        "blob:http://x/1",
        "about:blank",
    ] {
        assert_eq!(parse_target(inert, Origin::Page).unwrap(), Target::Inert);
    }
    assert_eq!(
        code(parse_target("ftp://x/", Origin::Page)),
        ErrorCode::BadRequest
    );
    // file URLs on another host are never local files.
    assert_eq!(
        code(parse_target(
            "file://fileserver/share/a.html",
            Origin::Caller
        )),
        ErrorCode::BadRequest
    );
}

#[test]
fn ip_literals_are_normalised_before_the_check() {
    for (raw, ip) in [
        ("http://0x7f.1/", "127.0.0.1"),
        ("http://2130706433/", "127.0.0.1"),
        ("http://0177.0.0.1/", "127.0.0.1"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:7f00:1"),
        ("http://[0:0:0:0:0:0:0:1]/", "::1"),
    ] {
        match parse_target(raw, Origin::Caller).unwrap() {
            Target::Net { literal, .. } => {
                assert_eq!(literal, Some(ip.parse().unwrap()), "{raw}")
            }
            other => panic!("{raw}: {other:?}"),
        }
    }
}

/// The address rule itself (which ranges are refused) is tested once, in
/// `carapace_media::netguard`; here: the browser reports its refusals with the shared code and
/// facts, for IP literals (no resolver involved).
#[tokio::test]
async fn non_public_literals_are_network_policy_refused() {
    let closed = UrlPolicy {
        allow_private_network: false,
        workspace: None,
    };
    for (url, address) in [
        ("http://10.0.0.1/", "10.0.0.1"),
        ("http://[fd12::1]:8080/x", "fd12::1"),
        ("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1"),
        ("http://100.64.0.1/", "100.64.0.1"),
    ] {
        let e = closed.check(url, Origin::Caller).await.unwrap_err();
        assert_eq!(e.code(), ErrorCode::NetworkPolicyRefused, "{url}");
        assert_eq!(e.details()["address"], address, "{url}");
        assert_eq!(e.details()["url"], url);
        assert_eq!(e.details()["setting"], "browser.allowPrivateNetwork");
        assert!(e.hint().unwrap().contains("allowPrivateNetwork"));
    }
    closed
        .check("http://1.1.1.1/", Origin::Caller)
        .await
        .unwrap();
    let e = address_error(
        "http://h/",
        AddressRefused::Unresolvable {
            host: "h".into(),
            reason: "no addresses".into(),
        },
    );
    assert!(matches!(e, BrowserError::Unresolvable { .. }), "{e}");
}

#[tokio::test]
async fn loopback_and_private_targets_are_refused_without_the_switch() {
    let closed = UrlPolicy {
        allow_private_network: false,
        workspace: None,
    };
    let open = UrlPolicy {
        allow_private_network: true,
        workspace: None,
    };
    for url in [
        "http://127.0.0.1:8080/",
        "http://localhost/",
        "http://[::1]:9/",
        "http://0x7f.1/",
        "http://10.1.2.3/",
        "https://169.254.169.254/latest/meta-data/",
        "http://[::ffff:192.168.1.1]/",
    ] {
        let e = closed.check(url, Origin::Caller).await.unwrap_err();
        assert!(
            matches!(e, BrowserError::PrivateNetworkRefused { .. }),
            "{url}: {e}"
        );
        assert!(open.check(url, Origin::Caller).await.is_ok(), "{url}");
        // Subresources and redirects go through the same check.
        assert!(closed.check(url, Origin::Page).await.is_err(), "{url}");
    }
    let e = closed
        .check("http://no-such-host.invalid/", Origin::Caller)
        .await
        .unwrap_err();
    assert!(matches!(e, BrowserError::Unresolvable { .. }), "{e}");
}

struct Ws {
    _tmp: tempfile::TempDir,
    ws: PathBuf,
    outside: PathBuf,
}

fn workspace() -> Ws {
    let tmp = tempfile::tempdir().unwrap();
    let ws = tmp.path().join("ws");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(ws.join("sub")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(ws.join("page.html"), "<p>in</p>").unwrap();
    std::fs::write(ws.join("sub/inner.html"), "<p>in</p>").unwrap();
    std::fs::write(outside.join("secret.html"), "<p>secret</p>").unwrap();
    symlink(&outside, ws.join("out-dir")).unwrap();
    symlink(outside.join("secret.html"), ws.join("out-file.html")).unwrap();
    symlink("page.html", ws.join("in-link.html")).unwrap();
    symlink("../page.html", ws.join("sub/back-in.html")).unwrap();
    std::fs::hard_link(outside.join("secret.html"), ws.join("hard.html")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        ws.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    Ws {
        _tmp: tmp,
        ws,
        outside,
    }
}

fn policy(ws: &Path) -> UrlPolicy {
    UrlPolicy {
        allow_private_network: false,
        workspace: Some(WorkspaceScope::new(
            Root::open(ws).unwrap(),
            Some(PathBuf::from("/workspace")),
        )),
    }
}

#[tokio::test]
async fn file_urls_inside_the_workspace_only() {
    let w = workspace();
    let p = policy(&w.ws);
    let host = |rel: &str| format!("file://{}", w.ws.join(rel).display());
    let want = |rel: &str| {
        url::Url::from_file_path(w.ws.join(rel))
            .unwrap()
            .to_string()
    };

    // Inside: by container path, by host path, through a symlink that stays inside.
    for (raw, rel) in [
        ("file:///workspace/page.html".to_string(), "page.html"),
        (
            "file://localhost/workspace/sub/inner.html".to_string(),
            "sub/inner.html",
        ),
        (host("page.html"), "page.html"),
        (host("in-link.html"), "in-link.html"),
        (host("sub/back-in.html"), "sub/back-in.html"),
        (
            "file:///workspace/sub/../page.html".to_string(),
            "page.html",
        ),
        ("file:///workspace/%70age.html".to_string(), "page.html"),
    ] {
        let a = p.check(&raw, Origin::Caller).await.unwrap();
        assert_eq!(a.url, want(rel), "{raw}");
    }

    // Outside, in every spelling.
    let outside_secret = format!("file://{}", w.outside.join("secret.html").display());
    let dotdot_host = format!("file://{}/../outside/secret.html", w.ws.display());
    for (raw, want) in [
        ("file:///etc/passwd".to_string(), ErrorCode::PathOutsideRoot),
        (outside_secret, ErrorCode::PathOutsideRoot),
        (
            "file:///workspace/../etc/passwd".to_string(),
            ErrorCode::PathOutsideRoot,
        ),
        (
            "file:///workspace/%2e%2e/etc/passwd".to_string(),
            ErrorCode::PathOutsideRoot,
        ),
        (
            "file:///workspace/.%2E/etc/passwd".to_string(),
            ErrorCode::PathOutsideRoot,
        ),
        (dotdot_host, ErrorCode::PathOutsideRoot),
        (
            "file:///workspace/out-dir/secret.html".to_string(),
            ErrorCode::PathOutsideRoot,
        ),
        (
            "file:///workspace/out-file.html".to_string(),
            ErrorCode::PathOutsideRoot,
        ),
        (
            "file:///workspace/hard.html".to_string(),
            ErrorCode::HardlinkRefused,
        ),
        (
            "file:///workspace/fifo".to_string(),
            ErrorCode::NotRegularFile,
        ),
        (
            "file:///workspace/sub".to_string(),
            ErrorCode::NotRegularFile,
        ),
        (
            "file:///workspace/missing.html".to_string(),
            ErrorCode::NotFound,
        ),
        ("file:///workspace".to_string(), ErrorCode::NotRegularFile),
        (
            "file:///workspacefoo/page.html".to_string(),
            ErrorCode::PathOutsideRoot,
        ),
        (
            "file:///proc/self/root/etc/passwd".to_string(),
            ErrorCode::PathOutsideRoot,
        ),
    ] {
        let e = p.check(&raw, Origin::Caller).await.unwrap_err();
        assert_eq!(e.code(), want, "{raw}: {e}");
        assert!(matches!(e, BrowserError::FileRefused { .. }), "{raw}");
        assert_eq!(e.details()["url"], raw.as_str());
        // The same for a page's own subresources.
        assert!(p.check(&raw, Origin::Page).await.is_err());
    }

    // No workspace: no file URLs at all.
    let none = UrlPolicy {
        allow_private_network: true,
        workspace: None,
    };
    let e = none
        .check(&host("page.html"), Origin::Caller)
        .await
        .unwrap_err();
    assert!(matches!(e, BrowserError::FileRefused { .. }), "{e}");
}
