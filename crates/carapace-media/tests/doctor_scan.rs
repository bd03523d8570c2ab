//! The doctor scan (shared by `carapace doctor` and the web page): each finding carries the
//! outbound reader's own code and message, a fix of one file changes that file only, and
//! secrets, hardlinked files and sendable files are left as they are.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use common::config;

use carapace_media::doctor::{Fix, scan};
use carapace_media::outbound::{AllowedRoot, OutboundPolicy, Purpose, check_file};
use carapace_policy::{CarapaceError, ErrorCode};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn put(p: &Path, m: u32) {
    std::fs::write(p, b"bytes").unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
}

#[test]
fn findings_use_the_outbound_readers_words_and_fixes_are_safe_and_targeted() {
    let t = tempfile::tempdir().unwrap();
    let ws = t.path().join("ws");
    std::fs::create_dir_all(ws.join("sub")).unwrap();
    let a = ws.join("a.png");
    let b = ws.join("sub/b.png");
    let key = ws.join("id_ed25519");
    let fine = ws.join("fine.png");
    let linked = ws.join("linked.png");
    put(&a, 0o600);
    put(&b, 0o640);
    put(&key, 0o600);
    put(&fine, 0o644);
    put(&linked, 0o644);
    std::fs::hard_link(&linked, t.path().join("other-name")).unwrap();
    let text = format!(
        r#"{{ agents: {{ defaults: {{ workspace: "{}" }} }} }}"#,
        ws.display()
    );
    let config = config(&text, &t.path().join("state"));
    let uid = rustix::process::geteuid().as_raw();

    let r = scan(&config, &Fix::None, uid);
    assert!(r.complete(), "{:?}", r.stopped);
    let by = |p: &Path| r.findings.iter().find(|f| f.path == p);
    // The reader's own answer for the same file, word for word.
    let policy = OutboundPolicy {
        roots: vec![AllowedRoot {
            kind: "workspace:main".into(),
            host: ws.clone(),
        }],
        table: None,
        allow_owner_only: false,
    };
    let reader = check_file(
        &policy,
        &a.to_string_lossy(),
        Purpose::Import { limit: u64::MAX },
    )
    .unwrap_err()
    .to_envelope();
    let fa = by(&a).expect("a.png is owner-only");
    assert_eq!(fa.code, ErrorCode::OutboundMediaPermsTooRestrictive);
    assert_eq!(fa.code, reader.code);
    assert_eq!(fa.reason, reader.message);
    assert!(fa.fixable && fa.fixed_mode.is_none());
    assert!(by(&b).unwrap().fixable);
    let fk = by(&key).unwrap();
    assert!(!fk.fixable);
    assert!(
        fk.not_fixed.as_deref().unwrap().contains("secret"),
        "{fk:?}"
    );
    let fl = by(&linked).unwrap();
    assert_eq!(fl.code, ErrorCode::HardlinkRefused);
    assert!(!fl.fixable);
    assert!(by(&fine).is_none());
    assert_eq!(r.unfixed(), 4);
    // Reporting changed nothing.
    assert_eq!((mode(&a), mode(&b), mode(&key)), (0o600, 0o640, 0o600));

    // One file: only that one.
    let r = scan(&config, &Fix::One(b.clone()), uid);
    assert_eq!(r.fixed, 1);
    assert_eq!(mode(&b), 0o644);
    assert_eq!(mode(&a), 0o600);

    // All: every safe one, never the key or the hardlinked file.
    let r = scan(&config, &Fix::All, uid);
    assert_eq!(r.fixed, 1, "{:?}", r.findings);
    assert_eq!(mode(&a), 0o644);
    assert_eq!(mode(&key), 0o600);
    assert_eq!(mode(&linked), 0o644);
    let r = scan(&config, &Fix::None, uid);
    assert_eq!(r.unfixed(), 2, "{:?}", r.findings);
}
