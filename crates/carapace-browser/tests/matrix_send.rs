//! The screenshot-and-send flow against a real Synapse (scripts/synapse.sh): screenshot → media store →
//! outbound checks → Matrix upload + m.image event; the bytes downloaded back from the
//! homeserver are the screenshot's, byte for byte. Gated on CARAPACE_TEST_SYNAPSE_URL (strict
//! in CI) and on Chromium.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::time::Duration;

use carapace_browser::{BrowserArgs, CaptureRequest, capture_to_media};
use carapace_channels::matrix::{MatrixAdapter, MatrixSettings};
use carapace_channels::{ChannelAdapter, OutboundMessage, Target};
use carapace_media::{AllowedRoot, MediaSettings, MediaStore, OutboundPolicy, open_outbound};
use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenshot_sent_to_a_matrix_room_arrives_byte_for_byte() {
    if !require_chromium() {
        return;
    }
    let Some(hs) = carapace_testkit::synapse::synapse() else {
        return;
    };

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
        None,
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
    let bytes = std::fs::read(&saved.path).unwrap();

    let room = hs
        .create_room(
            &hs.bot,
            json!({ "invite": [hs.alice.id], "name": "carapace browser test" }),
        )
        .await;

    let policy = OutboundPolicy {
        roots: vec![AllowedRoot {
            kind: "media".into(),
            host: media_dir.clone(),
        }],
        table: None,
        allow_owner_only: false,
    };
    let matrix =
        MatrixAdapter::new(MatrixSettings::new(hs.url.clone(), hs.bot.token.clone())).unwrap();
    let file = open_outbound(
        &policy,
        &saved.path.display().to_string(),
        "matrix",
        matrix.max_attachment_bytes(),
    )
    .unwrap();
    let delivered = matrix
        .send(OutboundMessage {
            target: Target::parse(&format!("room:{room}")).unwrap(),
            text: None,
            caption: Some("the page".into()),
            attachments: vec![file.attachment],
            progress: None,
            thread: None,
        })
        .await
        .unwrap();
    let mxc = &delivered.attachments[0].remote_id;
    let got = hs.download(&hs.alice, mxc).await;
    assert_eq!(got, bytes, "byte for byte");
    let img = Image::decode(&got);
    assert_eq!((img.width, img.height), (300, 200));
    svc.shutdown().await;
}
