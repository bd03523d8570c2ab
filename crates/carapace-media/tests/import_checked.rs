//! `media_save` of a path ([`MediaStore::import_checked`]) applies the outbound reader's rule
//! (the same function): what a send refuses — a private file, a hard link, a file on a user
//! bind, a symlink, a FIFO, a path outside the roots — is refused with the same code, and
//! nothing lands in the media store; what a send accepts is copied (0644, whatever the umask).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use carapace_media::{AllowedRoot, MediaSettings, MediaStore, OutboundPolicy, open_outbound};
use carapace_policy::mounts::{Mount, MountKind, MountTable};
use carapace_policy::{CarapaceError, ErrorCode};
use common::*;

struct Fx {
    _t: tempfile::TempDir,
    media: PathBuf,
    ws: PathBuf,
    bind: PathBuf,
    outside: PathBuf,
}

fn fx() -> Fx {
    umask_077();
    let t = tempfile::tempdir().unwrap();
    let media = t.path().join("media");
    let ws = t.path().join("ws");
    let bind = t.path().join("bind");
    let outside = t.path().join("outside");
    for d in [&media, &ws, &bind, &outside] {
        std::fs::create_dir_all(d).unwrap();
    }
    Fx {
        media,
        ws,
        bind,
        outside,
        _t: t,
    }
}

fn policy(f: &Fx) -> OutboundPolicy {
    let m = |host: &PathBuf, c: &str, kind| Mount {
        host_path: host.clone(),
        container_path: c.into(),
        writable: true,
        kind,
    };
    OutboundPolicy {
        roots: vec![
            AllowedRoot {
                kind: "media".into(),
                host: f.media.clone(),
            },
            AllowedRoot {
                kind: "workspace".into(),
                host: f.ws.clone(),
            },
        ],
        table: Some(MountTable {
            sandboxed: false,
            mounts: vec![
                m(&f.ws, "/workspace", MountKind::Workspace),
                m(&f.bind, "/data", MountKind::Bind),
            ],
        }),
        allow_owner_only: false,
    }
}

fn store(f: &Fx, max_bytes: u64) -> MediaStore {
    MediaStore::open(MediaSettings {
        dir: f.media.clone(),
        file_mode: 0o644,
        max_bytes,
        ttl: Duration::from_secs(3600),
        allow_private_network: false,
    })
    .unwrap()
}

fn media_files(f: &Fx) -> usize {
    std::fs::read_dir(&f.media).unwrap().count()
}

#[test]
fn what_a_send_refuses_media_save_refuses() {
    let f = fx();
    let shared = |p: &PathBuf| {
        std::fs::write(p, png(2, 2, 1)).unwrap();
        chmod(p, 0o644);
    };
    shared(&f.ws.join("ok.png"));
    std::fs::write(f.ws.join("private.png"), png(2, 2, 2)).unwrap(); // 0600 (umask 077)
    shared(&f.outside.join("secret.png"));
    std::fs::hard_link(f.outside.join("secret.png"), f.ws.join("hard.png")).unwrap();
    shared(&f.bind.join("on-bind.png"));
    std::os::unix::fs::symlink(f.outside.join("secret.png"), f.ws.join("link.png")).unwrap();
    mkfifo(&f.ws.join("fifo.png"));
    std::fs::write(f.ws.join("big.png"), vec![1u8; 5000]).unwrap();
    chmod(&f.ws.join("big.png"), 0o644);

    let pol = policy(&f);
    let st = store(&f, 4096);
    let outside = f.outside.join("secret.png");
    let cases: Vec<(&str, ErrorCode)> = vec![
        ("private.png", ErrorCode::OutboundMediaPermsTooRestrictive),
        ("/workspace/hard.png", ErrorCode::HardlinkRefused),
        ("/data/on-bind.png", ErrorCode::OutboundMediaOutsideRoots),
        ("link.png", ErrorCode::SymlinkRefused),
        ("fifo.png", ErrorCode::NotRegularFile),
        (
            outside.to_str().unwrap(),
            ErrorCode::OutboundMediaOutsideRoots,
        ),
        (
            "../outside/secret.png",
            ErrorCode::OutboundMediaOutsideRoots,
        ),
        ("missing.png", ErrorCode::NotFound),
    ];
    for (p, want) in &cases {
        let e = st.import_checked(&pol, p).unwrap_err();
        assert_eq!(e.code(), *want, "media_save {p}: {e}");
        // The same verdict as a send of that path.
        let s = open_outbound(&pol, p, "matrix", 1 << 30).unwrap_err();
        assert_eq!(s.code(), e.code(), "send {p}: {s}");
        assert_eq!(e.details()["path"], *p);
    }
    // The store's own cap.
    let e = st.import_checked(&pol, "big.png").unwrap_err();
    assert_eq!(e.code(), ErrorCode::TooLarge);
    assert_eq!(e.details()["limit"], 4096);
    assert_eq!(media_files(&f), 0, "a refused import left a file");

    // What a send accepts is copied, at 0644 under umask 077.
    let saved = st.import_checked(&pol, "/workspace/ok.png").unwrap();
    assert_eq!(saved.mode, "0644");
    assert_eq!(saved.mime, "image/png");
    assert_eq!(std::fs::read(&saved.path).unwrap(), png(2, 2, 1));
    assert!(saved.name.starts_with("ok---"));

    // allowOwnerOnly lets a private file through both ways.
    let mut lenient = policy(&f);
    lenient.allow_owner_only = true;
    open_outbound(&lenient, "private.png", "matrix", 1 << 30).unwrap();
    let saved = st.import_checked(&lenient, "private.png").unwrap();
    assert_eq!(mode_of(&saved.path), 0o644);
}
