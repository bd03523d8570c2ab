//! Inbox adapter under `umask 077`: messages and attachments land under
//! `<dir>/<kind>-<id>/`, byte-identical, 0644 files in 0755 dirs, JSON written last.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::os::unix::fs::PermissionsExt;

use carapace_channels::inbox::{InboxAdapter, InboxSettings};
use carapace_channels::{ChannelAdapter, OutboundMessage, Target};
use carapace_policy::{CarapaceError, ErrorCode};
use carapace_testkit::png::png_of_len;
use common::*;
use serde_json::Value;

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[tokio::test]
async fn writes_message_and_attachments_atomically_with_fixed_modes() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("state/inbox");
    let a = InboxAdapter::new(InboxSettings {
        dir: dir.clone(),
        media_max_bytes: None,
    });
    let body = png_of_len(100_000, 1);
    let doc = content(5000);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let d = a
        .send(OutboundMessage {
            target: Target::parse("user:alice/../../x").unwrap(),
            text: Some("hello".into()),
            caption: Some("cap".into()),
            attachments: vec![
                attachment(&body, "shot.png", "image/png"),
                attachment(&doc, "../notes.txt", "text/plain"),
            ],
            progress: Some(carapace_channels::Progress::new(move |u| {
                s2.lock().unwrap().push(u);
            })),
            thread: None,
        })
        .await
        .unwrap();
    let tdir = dir.join("user-alice_.._.._x");
    assert!(tdir.is_dir());
    for p in [&dir, &tdir, &t.path().join("state")] {
        assert_eq!(mode(p), 0o755, "{}", p.display());
    }
    assert_eq!(d.attachments.len(), 2);
    let f1 = dir.join(&d.attachments[0].remote_id);
    let f2 = dir.join(&d.attachments[1].remote_id);
    assert_eq!(std::fs::read(&f1).unwrap(), body);
    assert_eq!(std::fs::read(&f2).unwrap(), doc);
    assert!(
        f2.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .ends_with("-2-notes.txt")
    );
    assert_eq!(mode(&f1), 0o644);
    let j: Value =
        serde_json::from_slice(&std::fs::read(tdir.join(format!("{}.json", d.remote_id))).unwrap())
            .unwrap();
    assert_eq!(j["text"], "hello");
    assert_eq!(j["caption"], "cap");
    assert_eq!(j["target"], "user:alice/../../x");
    assert_eq!(j["attachments"][0]["bytes"], body.len());
    assert_eq!(j["attachments"][0]["mime"], "image/png");
    assert_eq!(mode(&tdir.join(format!("{}.json", d.remote_id))), 0o644);
    let last = *seen.lock().unwrap().last().unwrap();
    assert_eq!((last.index, last.sent, last.total), (1, 5000, 5000));
    let names: Vec<String> = std::fs::read_dir(&tdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "no staging files left: {names:?}");
}

#[tokio::test]
async fn limits_and_shrunk_files() {
    let t = tempfile::tempdir().unwrap();
    let a = InboxAdapter::new(InboxSettings {
        dir: t.path().join("inbox"),
        media_max_bytes: Some(10),
    });
    let e = a
        .send(OutboundMessage {
            target: Target::parse("room:r").unwrap(),
            text: None,
            caption: None,
            attachments: vec![attachment(
                &content(11),
                "a.bin",
                "application/octet-stream",
            )],
            progress: None,
            thread: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::OutboundMediaTooLarge);
    let mut att = attachment(&content(5), "a.bin", "application/octet-stream");
    att.size = 8; // the file "shrank" after it was checked
    let e = a
        .send(OutboundMessage {
            target: Target::parse("room:r").unwrap(),
            text: None,
            caption: None,
            attachments: vec![att],
            progress: None,
            thread: None,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::BadRequest);
    assert!(e.to_string().contains("shrank"), "{e}");
    let left: Vec<_> = std::fs::read_dir(t.path().join("inbox/room-r"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "nothing half-written: {left:?}");
}
