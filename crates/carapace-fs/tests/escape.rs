//! The escape corpus: `..` everywhere, absolute paths, symlinks (absolute, relative, chained,
//! dangling, looping), `/proc/self/root`, `/proc/self/fd/N`, NUL bytes, very long paths and
//! unicode look-alikes, through every operation, under both resolvers. Nothing outside the
//! root may be read, written, created, chmodded or removed.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::ffi::OsStr;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use carapace_fs::*;
use carapace_policy::{CarapaceError, ErrorCode};
use common::*;

/// Lays out the hostile links inside a fresh fixture. Returns the fixture and an fd kept open
/// on the outside directory (for the `/proc/self/fd/N` link).
fn hostile() -> (Fixture, std::fs::File) {
    let fx = Fixture::new();
    let r = &fx.root_path;
    let outside_fd = std::fs::File::open(&fx.outside).unwrap();
    std::fs::create_dir_all(r.join("sub/deeper")).unwrap();
    symlink(fx.outside.join("secret.txt"), r.join("abs_link")).unwrap();
    symlink("../outside/secret.txt", r.join("rel_link")).unwrap();
    symlink(&fx.outside, r.join("dir_abs")).unwrap();
    symlink("../outside", r.join("dir_rel")).unwrap();
    symlink("chain2", r.join("chain1")).unwrap();
    symlink("sub/chain3", r.join("chain2")).unwrap();
    symlink("../../outside/secret.txt", r.join("sub/chain3")).unwrap();
    symlink("../../../outside", r.join("sub/deeper/up")).unwrap();
    symlink("../outside/not-yet", r.join("dangling_out")).unwrap();
    symlink(
        "/tmp/carapace-escape-should-not-exist",
        r.join("dangling_abs"),
    )
    .unwrap();
    symlink("/proc/self/root", r.join("proc_root")).unwrap();
    symlink(
        format!("/proc/self/fd/{}", outside_fd.as_raw_fd()),
        r.join("proc_fd"),
    )
    .unwrap();
    symlink("loop2", r.join("loop1")).unwrap();
    symlink("loop1", r.join("loop2")).unwrap();
    symlink("..", r.join("dotdot")).unwrap();
    symlink("sub/../..", r.join("mid_dotdot")).unwrap();
    (fx, outside_fd)
}

/// Paths that try to leave the root. Every one must fail to read.
fn corpus(fx: &Fixture) -> Vec<PathBuf> {
    let abs_secret = fx.outside.join("secret.txt");
    let mut v: Vec<PathBuf> = [
        "..",
        "../outside/secret.txt",
        "./../outside/secret.txt",
        "sub/../../outside/secret.txt",
        "sub/deeper/../../../outside/secret.txt",
        "sub/..",
        "a/b/c/../../../../outside/secret.txt",
        "/etc/passwd",
        "/",
        "//etc/passwd",
        "abs_link",
        "rel_link",
        "dir_abs/secret.txt",
        "dir_rel/secret.txt",
        "chain1",
        "sub/deeper/up/secret.txt",
        "dangling_out",
        "dangling_abs",
        "proc_root/etc/passwd",
        "proc_root",
        "proc_fd/secret.txt",
        "proc_fd",
        "loop1",
        "loop1/x",
        "dotdot/outside/secret.txt",
        "mid_dotdot/outside/secret.txt",
        "sub/deeper/up",
        "dir_rel",
        // Unicode look-alikes: plain names inside the root, never `..` or `/`.
        "\u{2025}/outside/secret.txt",
        "\u{ff0e}\u{ff0e}/outside/secret.txt",
        "..\u{2215}outside\u{2215}secret.txt",
        "\u{2024}\u{2024}/outside/secret.txt",
    ]
    .iter()
    .map(PathBuf::from)
    .collect();
    v.push(abs_secret);
    v.push(PathBuf::from(OsStr::from_bytes(
        b"sub\0/../../outside/secret.txt",
    )));
    v.push(PathBuf::from(OsStr::from_bytes(b"abs_link\0")));
    v.push(PathBuf::from("a/".repeat(2100)));
    v.push(PathBuf::from("x".repeat(300)));
    v
}

fn allowed_read_code(c: ErrorCode) -> bool {
    matches!(
        c,
        ErrorCode::PathOutsideRoot
            | ErrorCode::SymlinkRefused
            | ErrorCode::NotFound
            | ErrorCode::BadRequest
            | ErrorCode::NotRegularFile
    )
}

#[test]
fn corpus_never_reads_outside() {
    for r in resolvers() {
        let (fx, _fd) = hostile();
        let root = fx.root(r);
        let before = fx.outside_snapshot();
        let follow = ReadOptions {
            symlinks: SymlinkPolicy::FollowInside,
            ..ReadOptions::default()
        };
        for path in corpus(&fx) {
            for opts in [ReadOptions::default(), follow.clone()] {
                match root.read(&path, &opts) {
                    Ok(bytes) => panic!(
                        "{r:?} read {path:?} ({opts:?}) = {:?}",
                        String::from_utf8_lossy(&bytes)
                    ),
                    Err(e) => assert!(allowed_read_code(e.code()), "{r:?} {path:?}: {e}"),
                }
                assert!(
                    root.open_file(&path, &opts).is_err(),
                    "{r:?} open_file {path:?}"
                );
            }
            // Directories: never list or pin anything outside.
            if let Ok(entries) = root.list(&path) {
                assert!(
                    entries.iter().all(|e| e.name != "secret.txt"),
                    "{r:?} list {path:?}"
                );
            }
            if let Ok(sub) = root.open_subdir(&path) {
                assert!(
                    sub.read(Path::new("secret.txt"), &ReadOptions::default())
                        .is_err(),
                    "{r:?} subdir {path:?}"
                );
            }
            if let Ok(m) = root.stat(&path) {
                // lstat of a link inside the root is fine; it must not be the outside file.
                let outside = std::fs::metadata(fx.outside.join("secret.txt")).unwrap();
                use std::os::unix::fs::MetadataExt;
                assert!(
                    m.ino != outside.ino() || m.dev != outside.dev(),
                    "{r:?} stat {path:?}"
                );
            }
        }
        assert_eq!(before, fx.outside_snapshot());
    }
}

#[test]
fn corpus_never_writes_outside() {
    for r in resolvers() {
        let (fx, _fd) = hostile();
        let root = fx.root(r);
        let before = fx.outside_snapshot();
        let src_root = fx.root(r);
        std::fs::write(fx.root_path.join("payload"), b"PAYLOAD").unwrap();
        let follow = WriteOptions {
            symlinks: SymlinkPolicy::FollowInside,
            ..WriteOptions::default()
        };
        for path in corpus(&fx) {
            for opts in [WriteOptions::default(), follow.clone()] {
                let _ = root.write(&path, b"PWNED", &opts);
                let _ = root.create(&path, b"PWNED", &opts);
                let _ = root.write_from(&path, &mut &b"PWNED"[..], &opts);
                let _ = root.copy_in(&src_root, Path::new("payload"), &path, &opts);
            }
            let _ = root.mkdir_all(&path.join("made"), 0o777);
            let _ = root.set_mode(&path, 0o777);
            let _ = root.rename(Path::new("payload"), &path, false);
            let _ = root.rename(Path::new("payload"), &path.join("moved"), false);
            assert_eq!(
                before,
                fx.outside_snapshot(),
                "{r:?} after writing {path:?}"
            );
            // The payload may have been moved inside the root; put it back.
            std::fs::write(fx.root_path.join("payload"), b"PAYLOAD").unwrap();
        }
        for path in corpus(&fx) {
            let _ = root.remove(&path, &RemoveOptions::recursive());
            let _ = root.sweep_staging(&path, std::time::Duration::ZERO);
        }
        assert_eq!(before, fx.outside_snapshot(), "{r:?} after removing");
        assert!(!Path::new("/tmp/carapace-escape-should-not-exist").exists());
    }
}

#[test]
fn specific_codes() {
    for r in resolvers() {
        let (fx, _fd) = hostile();
        let root = fx.root(r);
        let d = ReadOptions::default();
        let f = ReadOptions {
            symlinks: SymlinkPolicy::FollowInside,
            ..ReadOptions::default()
        };
        let c = |p: &str, o: &ReadOptions| code(root.read(Path::new(p), o));
        assert_eq!(c("../outside/secret.txt", &d), ErrorCode::PathOutsideRoot);
        assert_eq!(c("/etc/passwd", &d), ErrorCode::PathOutsideRoot);
        assert_eq!(c("abs_link", &d), ErrorCode::SymlinkRefused);
        assert_eq!(c("abs_link", &f), ErrorCode::PathOutsideRoot);
        assert_eq!(c("rel_link", &f), ErrorCode::PathOutsideRoot);
        assert_eq!(c("chain1", &f), ErrorCode::PathOutsideRoot);
        assert_eq!(c("dir_abs/secret.txt", &d), ErrorCode::PathOutsideRoot);
        assert_eq!(c("dir_rel/secret.txt", &d), ErrorCode::PathOutsideRoot);
        assert_eq!(
            c("sub/deeper/up/secret.txt", &d),
            ErrorCode::PathOutsideRoot
        );
        assert_eq!(c("proc_root/etc/passwd", &d), ErrorCode::PathOutsideRoot);
        assert_eq!(c("proc_fd/secret.txt", &d), ErrorCode::PathOutsideRoot);
        assert_eq!(
            c("loop1", &f),
            ErrorCode::PathOutsideRoot,
            "{r:?} {:?}",
            root.read(Path::new("loop1"), &f)
        );
        assert_eq!(
            c("dotdot/outside/secret.txt", &d),
            ErrorCode::PathOutsideRoot
        );
        assert_eq!(
            c("mid_dotdot/outside/secret.txt", &d),
            ErrorCode::PathOutsideRoot
        );
        assert_eq!(c("\u{2025}/outside/secret.txt", &d), ErrorCode::NotFound);
        assert_eq!(
            code(root.read(Path::new(OsStr::from_bytes(b"a\0b")), &d)),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(root.read(&PathBuf::from("a/".repeat(2100)), &d)),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(root.read(&PathBuf::from("x".repeat(300)), &d)),
            ErrorCode::BadRequest
        );
        assert_eq!(
            code(root.write(Path::new("dangling_out"), b"x", &WriteOptions::default())),
            ErrorCode::SymlinkRefused
        );
        let wf = WriteOptions {
            symlinks: SymlinkPolicy::FollowInside,
            ..WriteOptions::default()
        };
        assert_eq!(
            code(root.write(Path::new("dangling_out"), b"x", &wf)),
            ErrorCode::PathOutsideRoot
        );
        assert_eq!(
            code(root.write(Path::new("dangling_abs"), b"x", &wf)),
            ErrorCode::PathOutsideRoot
        );
        // `link/.` means `link` (std's normalisation) under both resolvers: found by proptest.
        assert_eq!(
            root.stat(Path::new("dir_abs/.")).unwrap().kind,
            FileKind::Symlink
        );
        assert_eq!(
            root.stat(Path::new("dir_abs")).unwrap().kind,
            FileKind::Symlink
        );
        // Look-alike names are ordinary names inside the root.
        root.mkdir_all(Path::new("\u{2025}/outside"), 0o755)
            .unwrap();
        root.write(
            Path::new("\u{2025}/outside/secret.txt"),
            b"inside",
            &WriteOptions::default(),
        )
        .unwrap();
        assert!(fx.root_path.join("\u{2025}/outside/secret.txt").exists());
    }
}

/// A root opened on procfs itself: the magic links in it must not be walked.
#[test]
fn proc_magic_links_are_refused() {
    for r in resolvers() {
        let root = Root::open_with(Path::new("/proc/self"), r).unwrap();
        for p in ["root/etc/hostname", "cwd/Cargo.toml", "exe", "fd/0", "root"] {
            let e = root.read(
                Path::new(p),
                &ReadOptions {
                    symlinks: SymlinkPolicy::FollowInside,
                    ..ReadOptions::default()
                },
            );
            let e = e.unwrap_err();
            assert!(
                matches!(e.code(), ErrorCode::PathOutsideRoot | ErrorCode::NotFound),
                "{r:?} {p}: {e}"
            );
        }
        let e = root
            .read(Path::new("root/etc/hostname"), &ReadOptions::default())
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::PathOutsideRoot, "{r:?}: {e}");
    }
}
