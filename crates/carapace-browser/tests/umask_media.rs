//! Screenshot then send, end to end, under `umask 077` (process-wide, hence this test binary of its own):
//! a screenshot saved through the media store is 0644, passes the outbound checks, and goes
//! through the inbox channel byte for byte. The same bytes written the naive way are 0600 and
//! refused with OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use carapace_browser::{BrowserArgs, CaptureRequest, capture_to_media};
use carapace_channels::inbox::{InboxAdapter, InboxSettings};
use carapace_channels::{ChannelAdapter, OutboundMessage, Target};
use carapace_media::{AllowedRoot, MediaSettings, MediaStore, OutboundPolicy, open_outbound};
use carapace_policy::{CarapaceError, ErrorCode};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshot_is_0644_and_goes_through_the_inbox_byte_for_byte() {
    if !require_chromium() {
        return;
    }
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let tmp = tempfile::tempdir().unwrap();
    let media_dir = tmp.path().join("media");
    let store = MediaStore::open(MediaSettings {
        dir: media_dir.clone(),
        file_mode: 0o644,
        max_bytes: 5 * 1024 * 1024,
        ttl: Duration::from_secs(3600),
        allow_private_network: false,
    })
    .unwrap();

    let srv = serve().await;
    let svc = service(30);
    let req = CaptureRequest::from_args(
        Some("screenshot"),
        BrowserArgs {
            url: srv.url("/box"),
            width: Some(300),
            height: Some(200),
            ..BrowserArgs::default()
        },
    )
    .unwrap();
    let saved = capture_to_media(&svc, &store, &req, &svc.policy(None))
        .await
        .unwrap();
    assert_eq!(saved.mime, "image/png");
    assert_eq!((saved.width, saved.height), (300, 200));
    assert_eq!(saved.mode, "0644");
    assert!(saved.path.starts_with(&media_dir));
    let meta = std::fs::metadata(&saved.path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
    assert_eq!(meta.len(), saved.bytes);
    let bytes = std::fs::read(&saved.path).unwrap();
    let img = Image::decode(&bytes);
    assert_eq!((img.width, img.height), (300, 200));
    assert_eq!(img.pixel(150, 100), [255, 0, 0]);

    // A PDF too.
    let pdf = CaptureRequest::from_args(
        Some("pdf"),
        BrowserArgs {
            url: srv.url("/box"),
            ..BrowserArgs::default()
        },
    )
    .unwrap();
    let saved_pdf = capture_to_media(&svc, &store, &pdf, &svc.policy(None))
        .await
        .unwrap();
    assert_eq!(saved_pdf.mime, "application/pdf");
    assert_eq!(
        std::fs::metadata(&saved_pdf.path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o644
    );

    // Outbound: the media path as the browser tool returned it.
    let policy = OutboundPolicy {
        roots: vec![AllowedRoot {
            kind: "media".into(),
            host: media_dir.clone(),
        }],
        table: None,
        allow_owner_only: false,
    };
    let inbox_dir = tmp.path().join("inbox");
    let inbox = InboxAdapter::new(InboxSettings {
        dir: inbox_dir.clone(),
        media_max_bytes: None,
    });
    let path = saved.path.display().to_string();
    let file = open_outbound(&policy, &path, "inbox", inbox.max_attachment_bytes()).unwrap();
    let delivered = inbox
        .send(OutboundMessage {
            target: Target::parse("user:alice").unwrap(),
            text: Some("here is the page".into()),
            caption: None,
            attachments: vec![file.attachment],
            progress: None,
            thread: None,
        })
        .await
        .unwrap();
    assert_eq!(delivered.attachments.len(), 1);
    let dir = inbox_dir.join("user-alice");
    let copied: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    assert_eq!(copied.len(), 1, "{copied:?}");
    assert_eq!(std::fs::read(&copied[0]).unwrap(), bytes, "byte for byte");

    // The seed's failure, for contrast: the same bytes written with the umask's 0600.
    let naive = media_dir.join("naive.png");
    std::fs::write(&naive, &bytes).unwrap();
    assert_eq!(
        std::fs::metadata(&naive).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let e = open_outbound(&policy, &naive.display().to_string(), "inbox", u64::MAX).unwrap_err();
    assert_eq!(e.code(), ErrorCode::OutboundMediaPermsTooRestrictive);
    svc.shutdown().await;
}
