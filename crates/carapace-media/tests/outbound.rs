//! The outbound reader: the ordered checks of docs/channels.md on one pinned fd, under `umask 077`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use carapace_media::{AllowedRoot, OutboundPolicy, open_outbound};
use carapace_policy::mounts::{Mount, MountKind, MountTable};
use carapace_policy::{CarapaceError, ErrorCode};
use common::*;

struct Fx {
    _t: tempfile::TempDir,
    media: PathBuf,
    ws: PathBuf,
    home: PathBuf,
}

fn fx() -> Fx {
    umask_077();
    let t = tempfile::tempdir().unwrap();
    let media = t.path().join("media");
    let ws = t.path().join("ws");
    let home = t.path().join("home");
    for d in [&media, &ws, &home.join(".ssh")] {
        std::fs::create_dir_all(d).unwrap();
    }
    Fx {
        media,
        ws,
        home,
        _t: t,
    }
}

fn policy(f: &Fx) -> OutboundPolicy {
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
            mounts: vec![Mount {
                host_path: f.ws.clone(),
                container_path: "/workspace".into(),
                writable: true,
                kind: MountKind::Workspace,
            }],
        }),
        allow_owner_only: false,
    }
}

fn read_all(f: &std::fs::File, size: u64) -> Vec<u8> {
    let mut buf = vec![0u8; size as usize];
    f.read_exact_at(&mut buf, 0).unwrap();
    buf
}

#[test]
fn a_0644_png_passes_with_type_and_dimensions() {
    let f = fx();
    let png = png(7, 5, 4);
    std::fs::write(f.ws.join("shot.png"), &png).unwrap();
    chmod(&f.ws.join("shot.png"), 0o644);
    for p in [
        "shot.png",
        "/workspace/shot.png",
        f.ws.join("shot.png").to_str().unwrap(),
    ] {
        let o = open_outbound(&policy(&f), p, "matrix", 1 << 20).unwrap();
        assert_eq!(o.attachment.size, png.len() as u64);
        assert_eq!(o.attachment.mime, "image/png");
        assert_eq!(o.attachment.filename, "shot.png");
        assert_eq!(
            (o.attachment.width, o.attachment.height),
            (Some(7), Some(5))
        );
        assert_eq!(o.root_kind, "workspace");
        assert_eq!(read_all(&o.attachment.file, o.attachment.size), png);
    }
}

#[test]
fn a_0600_file_is_the_typed_permissions_error_unless_allow_owner_only() {
    let f = fx();
    let p = f.media.join("shot.png");
    std::fs::write(&p, png(2, 2, 1)).unwrap();
    assert_eq!(mode_of(&p), 0o600, "umask 077 made it private");
    let shown = p.to_str().unwrap();
    let e = open_outbound(&policy(&f), shown, "matrix", 1 << 20).unwrap_err();
    assert_eq!(e.code(), ErrorCode::OutboundMediaPermsTooRestrictive);
    assert_eq!(
        e.to_string(),
        format!("File {shown} has mode 0600 and cannot be sent over an outbound channel.")
    );
    let hint = e.hint().unwrap();
    for needle in ["chmod 644", "carapace media save", "allowOwnerOnly"] {
        assert!(hint.contains(needle), "{needle} in {hint}");
    }
    assert_eq!(e.details()["mode"], "0600");
    for mode in [0o640, 0o700, 0o604 & 0o600] {
        chmod(&p, mode);
        let e = open_outbound(&policy(&f), shown, "matrix", 1 << 20).unwrap_err();
        assert_eq!(e.code(), ErrorCode::OutboundMediaPermsTooRestrictive);
    }
    let mut pol = policy(&f);
    pol.allow_owner_only = true;
    chmod(&p, 0o600);
    let o = open_outbound(&pol, shown, "matrix", 1 << 20).unwrap();
    assert_eq!(o.mode, 0o600);
}

#[test]
fn paths_outside_the_roots_are_refused() {
    let f = fx();
    std::fs::write(
        f.home.join(".ssh/id_ed25519"),
        "-----BEGIN OPENSSH PRIVATE KEY-----",
    )
    .unwrap();
    chmod(&f.home.join(".ssh/id_ed25519"), 0o644);
    for p in [
        "/etc/hostname".to_string(),
        f.home
            .join(".ssh/id_ed25519")
            .to_string_lossy()
            .into_owned(),
        "/workspace/../home/.ssh/id_ed25519".to_string(),
        "../home/.ssh/id_ed25519".to_string(),
        format!("{}/../home/.ssh/id_ed25519", f.media.display()),
        "/agent/x.png".to_string(),
    ] {
        let e = open_outbound(&policy(&f), &p, "matrix", 1 << 20).unwrap_err();
        assert_eq!(e.code(), ErrorCode::OutboundMediaOutsideRoots, "{p}: {e}");
        assert!(e.details()["allowedRoots"].as_array().unwrap().len() == 2);
    }
    // A symlink inside a root that points out: refused, never followed.
    std::os::unix::fs::symlink(f.home.join(".ssh/id_ed25519"), f.ws.join("key.png")).unwrap();
    let e = open_outbound(&policy(&f), "key.png", "matrix", 1 << 20).unwrap_err();
    assert_eq!(e.code(), ErrorCode::SymlinkRefused);
    std::fs::create_dir(f.ws.join("d")).unwrap();
    std::os::unix::fs::symlink(f.home.join(".ssh"), f.ws.join("d/ssh")).unwrap();
    let e = open_outbound(&policy(&f), "d/ssh/id_ed25519", "matrix", 1 << 20).unwrap_err();
    assert_eq!(e.code(), ErrorCode::PathOutsideRoot, "{e}");
}

#[test]
fn a_fifo_named_shot_png_is_refused_without_hanging() {
    let f = fx();
    mkfifo(&f.ws.join("shot.png"));
    let start = Instant::now();
    let e = open_outbound(&policy(&f), "shot.png", "matrix", 1 << 20).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotRegularFile);
    assert_eq!(e.details()["kind"], "fifo");
    assert!(start.elapsed() < Duration::from_secs(2));
    std::fs::create_dir(f.ws.join("dir.png")).unwrap();
    let e = open_outbound(&policy(&f), "dir.png", "matrix", 1 << 20).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotRegularFile);
}

#[test]
fn hardlinks_size_and_missing_files() {
    let f = fx();
    std::fs::write(f.ws.join("a.png"), png(2, 2, 2)).unwrap();
    chmod(&f.ws.join("a.png"), 0o644);
    std::fs::hard_link(f.ws.join("a.png"), f.ws.join("b.png")).unwrap();
    let e = open_outbound(&policy(&f), "a.png", "matrix", 1 << 20).unwrap_err();
    assert_eq!(e.code(), ErrorCode::HardlinkRefused);
    std::fs::remove_file(f.ws.join("b.png")).unwrap();
    let e = open_outbound(&policy(&f), "a.png", "discord", 10).unwrap_err();
    assert_eq!(e.code(), ErrorCode::OutboundMediaTooLarge);
    assert_eq!(e.details()["limit"], 10);
    assert_eq!(e.details()["channel"], "discord");
    // Order: size is checked before permissions.
    chmod(&f.ws.join("a.png"), 0o600);
    let e = open_outbound(&policy(&f), "a.png", "discord", 10).unwrap_err();
    assert_eq!(e.code(), ErrorCode::OutboundMediaTooLarge);
    let e = open_outbound(&policy(&f), "nope.png", "matrix", 10).unwrap_err();
    assert_eq!(e.code(), ErrorCode::NotFound);
}

#[test]
fn the_checked_fd_is_what_is_sent_even_if_the_path_is_swapped_for_a_symlink() {
    let f = fx();
    let secret = f.home.join(".ssh/id_ed25519");
    std::fs::write(&secret, "SECRET KEY").unwrap();
    chmod(&secret, 0o644);
    let good = png(3, 3, 3);
    // Race a thread that keeps swapping shot.png between a real file and a symlink to the
    // secret; whatever the interleaving, a send either is refused or carries the PNG.
    let ws = f.ws.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let good2 = good.clone();
    let secret2 = secret.clone();
    let swapper = std::thread::spawn(move || {
        let mut i = 0u64;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            let tmp = ws.join(format!(".tmp{i}"));
            if i.is_multiple_of(2) {
                std::fs::write(&tmp, &good2).unwrap();
                chmod(&tmp, 0o644);
            } else {
                std::os::unix::fs::symlink(&secret2, &tmp).unwrap();
            }
            std::fs::rename(&tmp, ws.join("shot.png")).unwrap();
            i += 1;
        }
    });
    let (mut sent, mut refused) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        match open_outbound(&policy(&f), "shot.png", "matrix", 1 << 20) {
            Ok(o) => {
                // Let the swapper replace the path several times before "sending".
                std::thread::sleep(Duration::from_micros(200));
                let mut body = Vec::new();
                let mut file = &o.attachment.file;
                file.read_to_end(&mut body).unwrap();
                assert_eq!(body, good, "only the checked PNG is ever sent");
                sent += 1;
            }
            Err(e) => {
                assert!(
                    matches!(
                        e.code(),
                        ErrorCode::SymlinkRefused
                            | ErrorCode::NotFound
                            | ErrorCode::PathOutsideRoot
                    ),
                    "{e}"
                );
                refused += 1;
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(sent > 0, "sent {sent}, refused {refused}");
}

#[test]
fn media_store_names_are_shown_without_their_uuid() {
    let f = fx();
    let name = "shot---0b7f1b7e-8f0a-4c56-9d1e-2a3b4c5d6e7f.png";
    std::fs::write(f.media.join(name), png(1, 1, 1)).unwrap();
    chmod(&f.media.join(name), 0o644);
    let o = open_outbound(
        &policy(&f),
        f.media.join(name).to_str().unwrap(),
        "matrix",
        1 << 20,
    )
    .unwrap();
    assert_eq!(o.attachment.filename, "shot.png");
    assert_eq!(o.root_kind, "media");
    let _ = Path::new("");
}

#[test]
fn a_sandboxed_session_sends_only_from_what_it_mounts() {
    use carapace_policy::ResolveInput;
    let t = tempfile::tempdir().unwrap();
    let ws = t.path().join("ws");
    let text = format!(
        r#"{{ agents: {{ defaults: {{ workspace: "{}", sandbox: {{ mode: "all", workspaceAccess: "none", workspaceRoot: "{}" }} }} }} }}"#,
        ws.display(),
        t.path().join("sb").display()
    );
    let config = config(&text, &t.path().join("state"));
    let eff = config
        .resolve(&ResolveInput {
            session_key: Some("agent:main:x:1"),
            ..ResolveInput::default()
        })
        .unwrap();
    let p = OutboundPolicy::for_session(&config, &eff);
    let kinds: Vec<&str> = p.roots.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, vec!["media", "sandbox"]);
    assert!(
        p.root_of(&ws.join("secret.png")).is_none(),
        "agent workspace not mounted"
    );
    assert!(p.root_of(&eff.sandbox_dir.join("a.png")).is_some());
}
