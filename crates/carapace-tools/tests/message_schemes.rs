//! URL schemes in `message` attachments are case-insensitive: `HTTP://` and `Https://` are
//! downloaded through the media store (here from a loopback server, with
//! `media.allowPrivateNetwork`) and sent; before, they were taken as file paths. Other schemes
//! (`file:`, `data:`, `ftp://`, …) are a typed `BAD_REQUEST` naming the scheme, in any case,
//! never read as paths — and nothing is sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;

use carapace_policy::ErrorCode;
use common::*;
use serde_json::json;

const S: &str = "agent:main:main";

/// Serves `body` as image/png to every connection, on a loopback port.
fn serve(body: Vec<u8>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let mut req = Vec::new();
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    port
}

fn inbox_files(e: &Env) -> usize {
    let inbox = e.dir.path().join("state/inbox");
    if !inbox.exists() {
        return 0;
    }
    let mut n = 0;
    for d in std::fs::read_dir(&inbox).unwrap() {
        let d = d.unwrap().path();
        if d.is_dir() {
            n += std::fs::read_dir(d).unwrap().count();
        }
    }
    n
}

#[tokio::test]
async fn upper_case_http_is_a_url_and_other_schemes_are_refused() {
    let e = env(r#"mode: "off""#, "media: { allowPrivateNetwork: true }");
    let png = carapace_testkit::png::png(1, 1, 1);
    let port = serve(png.clone());
    for url in [
        format!("HTTP://127.0.0.1:{port}/shot.png"),
        format!("hTTp://127.0.0.1:{port}/shot.png"),
    ] {
        let r = ok(&e, S, "message", json!({"target": "user:me", "media": url})).await;
        let a = &r["attachments"][0];
        assert_eq!(a["mime"], "image/png", "{url}: {r}");
        let got = std::fs::read(
            e.dir
                .path()
                .join("state/inbox")
                .join(a["remoteId"].as_str().unwrap()),
        )
        .unwrap();
        assert_eq!(got, png, "{url}");
    }
    // Also as a MEDIA: line.
    let r = ok(
        &e,
        S,
        "message",
        json!({"target": "user:me", "message": format!("look\nMEDIA:HTTP://127.0.0.1:{port}/a.png")}),
    )
    .await;
    assert_eq!(r["attachments"].as_array().unwrap().len(), 1);
    let sent = inbox_files(&e);

    // Other schemes, any case, in any argument: refused, nothing sent.
    std::fs::create_dir_all(e.ws.join("file:")).unwrap();
    std::fs::write(e.ws.join("file:/x.png"), b"not this").unwrap();
    for (arg, reference, scheme) in [
        ("media", "file:///etc/hostname", "file"),
        ("filePath", "FILE:/etc/hostname", "file"),
        ("path", "file:x.png", "file"),
        ("media", "data:image/png;base64,iVBORw0KGgo=", "data"),
        ("media", "ftp://127.0.0.1/a.png", "ftp"),
        ("media", "s3://bucket/a.png", "s3"),
        ("media", "JavaScript:alert(1)", "javascript"),
    ] {
        let er = call(
            &e,
            S,
            "message",
            json!({"target": "user:me", "message": "hi", arg: reference}),
        )
        .await
        .unwrap_err();
        assert_eq!(er.code(), ErrorCode::BadRequest, "{reference}: {er:?}");
        assert_eq!(er.0.details["scheme"], scheme, "{reference}");
        assert!(er.0.hint.as_deref().unwrap().contains("http"), "{er:?}");
    }
    assert_eq!(inbox_files(&e), sent, "a refused send delivered something");
    // A file whose name starts like a scheme is still reachable as ./name.
    std::fs::set_permissions(
        e.ws.join("file:/x.png"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    ok(
        &e,
        S,
        "message",
        json!({"target": "user:me", "path": "./file:/x.png"}),
    )
    .await;
    // media_save's `url` follows the same rule.
    let er = call(&e, S, "media_save", json!({"url": "file:///etc/hostname"}))
        .await
        .unwrap_err();
    assert_eq!(er.code(), ErrorCode::BadRequest);
    let v = ok(
        &e,
        S,
        "media_save",
        json!({"url": format!("HTTP://127.0.0.1:{port}/m.png")}),
    )
    .await;
    assert_eq!(v["mime"], "image/png");
}
