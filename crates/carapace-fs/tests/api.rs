//! The public API on real files, under both resolvers.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::time::{Duration, Instant};

use carapace_fs::*;
use carapace_policy::{CarapaceError, ErrorCode};
use common::*;

fn p(s: &str) -> &Path {
    Path::new(s)
}

#[test]
fn read_write_create_stat_list() {
    for r in resolvers() {
        let fx = Fixture::new();
        let root = fx.root(r);
        let o = root
            .write(p("a.txt"), b"hello", &WriteOptions::default())
            .unwrap();
        assert_eq!(
            o,
            WriteOutcome {
                bytes: 5,
                mode: 0o644,
                created: true
            }
        );
        assert_eq!(
            root.read(p("a.txt"), &ReadOptions::default()).unwrap(),
            b"hello"
        );
        let o = root
            .write(p("a.txt"), b"bye", &WriteOptions::default())
            .unwrap();
        assert!(!o.created);
        assert_eq!(std::fs::read(fx.root_path.join("a.txt")).unwrap(), b"bye");

        assert_eq!(
            code(root.create(p("a.txt"), b"x", &WriteOptions::default())),
            ErrorCode::AlreadyExists
        );
        root.mkdir_all(p("d/e/f"), 0o750).unwrap();
        root.create(p("d/e/f/new.bin"), &[1, 2, 3], &WriteOptions::default())
            .unwrap();
        let m = root.stat(p("d/e/f/new.bin")).unwrap();
        assert_eq!((m.kind, m.size, m.mode), (FileKind::File, 3, 0o644));
        assert_eq!(root.stat(p("d")).unwrap().kind, FileKind::Dir);
        assert_eq!(root.stat(p("")).unwrap().kind, FileKind::Dir);
        assert_eq!(mode_of(&fx.root_path.join("d/e")), 0o750);

        let names: Vec<_> = root
            .list(p(""))
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, vec!["a.txt", "d"]);
        assert_eq!(code(root.list(p("a.txt"))), ErrorCode::BadRequest);
        assert_eq!(
            code(root.read(p("nope"), &ReadOptions::default())),
            ErrorCode::NotFound
        );
        assert_eq!(
            code(root.read(p("d"), &ReadOptions::default())),
            ErrorCode::NotRegularFile
        );
        assert_eq!(
            code(root.read(p("a.txt/x"), &ReadOptions::default())),
            ErrorCode::NotFound
        );
        assert!(root.exists(p("a.txt")).unwrap());
        assert!(!root.exists(p("zz")).unwrap());
    }
}

#[test]
fn sizes_are_capped_while_reading() {
    for r in resolvers() {
        let fx = Fixture::new();
        let root = fx.root(r);
        root.write(p("big"), &[7u8; 1000], &WriteOptions::default())
            .unwrap();
        let e = root
            .read(p("big"), &ReadOptions::default().with_max(999))
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::TooLarge);
        assert_eq!(e.details()["size"], 1000);
        assert_eq!(e.details()["limit"], 999);
        assert_eq!(
            root.read(p("big"), &ReadOptions::default().with_max(1000))
                .unwrap()
                .len(),
            1000
        );
        // A streaming write over the cap leaves nothing behind.
        let opts = WriteOptions {
            max_bytes: Some(10),
            ..WriteOptions::default()
        };
        let mut src: &[u8] = &[1u8; 11];
        assert_eq!(
            code(root.write_from(p("s"), &mut src, &opts)),
            ErrorCode::TooLarge
        );
        assert_eq!(
            code(root.write(p("s"), &[1u8; 11], &opts)),
            ErrorCode::TooLarge
        );
        assert_eq!(std::fs::read_dir(&fx.root_path).unwrap().count(), 1);
        let mut src: &[u8] = &[1u8; 10];
        assert_eq!(root.write_from(p("s"), &mut src, &opts).unwrap().bytes, 10);
    }
}

#[test]
fn fifo_named_like_an_image_is_refused_without_blocking() {
    for r in resolvers() {
        let fx = Fixture::new();
        let root = fx.root(r);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            fx.root_path.join("shot.png"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let t = Instant::now();
        let e = root
            .read(p("shot.png"), &ReadOptions::outbound(1 << 20))
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::NotRegularFile);
        assert_eq!(e.details()["kind"], "fifo");
        assert_eq!(
            code(root.open_file(p("shot.png"), &ReadOptions::default())),
            ErrorCode::NotRegularFile
        );
        // A write must not open the FIFO either.
        assert_eq!(
            code(root.write(p("shot.png"), b"x", &WriteOptions::default())),
            ErrorCode::NotRegularFile
        );
        assert!(t.elapsed() < Duration::from_secs(5));
        assert_eq!(root.stat(p("shot.png")).unwrap().kind, FileKind::Fifo);
    }
}

#[test]
fn unix_socket_and_device_are_not_regular_files() {
    for r in resolvers() {
        let fx = Fixture::new();
        let root = fx.root(r);
        let _l = std::os::unix::net::UnixListener::bind(fx.root_path.join("sock")).unwrap();
        let e = root.read(p("sock"), &ReadOptions::default()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::NotRegularFile, "{e}");
        assert_eq!(e.details()["kind"], "socket");
        let dev = Root::open_with(Path::new("/dev"), r).unwrap();
        let e = dev.read(p("null"), &ReadOptions::default()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::NotRegularFile);
        assert_eq!(e.details()["kind"], "char_device");
    }
}

#[test]
fn hardlink_to_an_outside_file_is_refusable() {
    for r in resolvers() {
        let fx = Fixture::new();
        let root = fx.root(r);
        std::fs::hard_link(fx.outside.join("secret.txt"), fx.root_path.join("link.txt")).unwrap();
        let e = root
            .read(p("link.txt"), &ReadOptions::outbound(1 << 20))
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::HardlinkRefused);
        assert_eq!(e.details()["nlink"], 2);
        // Local tools may allow it (it is the same inode, there is no escape to refuse)...
        assert_eq!(
            root.read(p("link.txt"), &ReadOptions::default()).unwrap(),
            b"TOP SECRET"
        );
        // chmod would change the outside name too: refused.
        let e = root.set_mode(p("link.txt"), 0o777).unwrap_err();
        assert_eq!(e.code(), ErrorCode::HardlinkRefused);
        assert_eq!(mode_of(&fx.outside.join("secret.txt")), 0o644);
        // ...and a write replaces the link inside the root, never the outside inode.
        root.write(p("link.txt"), b"mine", &WriteOptions::default())
            .unwrap();
        assert_eq!(
            std::fs::read(fx.outside.join("secret.txt")).unwrap(),
            b"TOP SECRET"
        );
    }
}

#[test]
fn final_symlink_policy() {
    for r in resolvers() {
        let fx = Fixture::new();
        let root = fx.root(r);
        root.mkdir_all(p("real"), 0o755).unwrap();
        root.write(p("real/f.txt"), b"data", &WriteOptions::default())
            .unwrap();
        symlink("real/f.txt", fx.root_path.join("ln")).unwrap();
        symlink("real", fx.root_path.join("dirln")).unwrap();
        assert_eq!(
            code(root.read(p("ln"), &ReadOptions::default())),
            ErrorCode::SymlinkRefused
        );
        let follow = ReadOptions {
            symlinks: SymlinkPolicy::FollowInside,
            ..ReadOptions::default()
        };
        assert_eq!(root.read(p("ln"), &follow).unwrap(), b"data");
        // Parents that are symlinks inside the root are followed.
        assert_eq!(
            root.read(p("dirln/f.txt"), &ReadOptions::default())
                .unwrap(),
            b"data"
        );
        assert_eq!(root.stat(p("ln")).unwrap().kind, FileKind::Symlink);
        assert_eq!(code(root.list(p("dirln"))), ErrorCode::SymlinkRefused);
        assert_eq!(
            code(root.open_subdir(p("dirln"))),
            ErrorCode::SymlinkRefused
        );
        // Writing through a final symlink: refused by default, follows inside when asked.
        assert_eq!(
            code(root.write(p("ln"), b"new", &WriteOptions::default())),
            ErrorCode::SymlinkRefused
        );
        let wf = WriteOptions {
            symlinks: SymlinkPolicy::FollowInside,
            ..WriteOptions::default()
        };
        root.write(p("ln"), b"new", &wf).unwrap();
        assert_eq!(
            std::fs::read(fx.root_path.join("real/f.txt")).unwrap(),
            b"new"
        );
        assert!(
            std::fs::symlink_metadata(fx.root_path.join("ln"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            code(root.set_mode(p("ln"), 0o600)),
            ErrorCode::SymlinkRefused
        );
        // Removing a symlink removes the link, not the target.
        assert_eq!(
            root.remove(p("dirln"), &RemoveOptions::recursive())
                .unwrap(),
            1
        );
        assert!(fx.root_path.join("real/f.txt").exists());
    }
}

#[test]
fn mkdir_remove_rename_copy() {
    for r in resolvers() {
        let fx = Fixture::new();
        let root = fx.root(r);
        root.mkdir_all(p("a/b/c"), 0o700).unwrap();
        root.mkdir_all(p("a/b/c"), 0o700).unwrap();
        for i in 0..5 {
            root.write(
                Path::new(&format!("a/b/c/f{i}")),
                b"x",
                &WriteOptions::default(),
            )
            .unwrap();
        }
        root.write(p("a/top"), b"x", &WriteOptions::default())
            .unwrap();
        assert_eq!(
            code(root.remove(p("a"), &RemoveOptions::default())),
            ErrorCode::BadRequest
        );
        let bounded = RemoveOptions {
            recursive: true,
            max_entries: 5,
            missing_ok: false,
        };
        let e = root.remove(p("a"), &bounded).unwrap_err();
        assert_eq!(e.code(), ErrorCode::TooLarge);
        assert_eq!(
            std::fs::read_dir(fx.root_path.join("a/b/c"))
                .unwrap()
                .count(),
            5,
            "nothing removed"
        );

        root.rename(p("a/top"), p("top"), false).unwrap();
        root.write(p("other"), b"o", &WriteOptions::default())
            .unwrap();
        assert_eq!(
            code(root.rename(p("top"), p("other"), false)),
            ErrorCode::AlreadyExists
        );
        root.rename(p("top"), p("other"), true).unwrap();
        assert_eq!(
            code(root.rename(p("nope"), p("x"), false)),
            ErrorCode::NotFound
        );

        assert_eq!(root.remove(p("a"), &RemoveOptions::recursive()).unwrap(), 8);
        assert!(!fx.root_path.join("a").exists());
        assert_eq!(
            code(root.remove(p("a"), &RemoveOptions::default())),
            ErrorCode::NotFound
        );
        let ok_missing = RemoveOptions {
            missing_ok: true,
            ..RemoveOptions::default()
        };
        assert_eq!(root.remove(p("a"), &ok_missing).unwrap(), 0);
        assert_eq!(
            code(root.remove(p(""), &RemoveOptions::recursive())),
            ErrorCode::BadRequest
        );

        // copy_in from another root: the copy gets the new-file mode, not the source's 0600.
        let src_dir = fx.tmp.path().join("src");
        std::fs::create_dir(&src_dir).unwrap();
        std::fs::write(src_dir.join("private.png"), b"png").unwrap();
        std::fs::set_permissions(
            src_dir.join("private.png"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        let src = Root::open_with(&src_dir, r).unwrap();
        let o = root
            .copy_in(
                &src,
                p("private.png"),
                p("media.png"),
                &WriteOptions::default(),
            )
            .unwrap();
        assert_eq!((o.bytes, o.mode), (3, 0o644));
        assert_eq!(mode_of(&fx.root_path.join("media.png")), 0o644);

        let sub = root.open_subdir(p("")).unwrap();
        sub.mkdir_all(p("s"), 0o755).unwrap();
        let s = root.open_subdir(p("s")).unwrap();
        assert_eq!(s.host_path(), fx.root_path.join("s"));
        s.write(p("in-sub"), b"1", &WriteOptions::default())
            .unwrap();
        assert!(fx.root_path.join("s/in-sub").exists());
    }
}

#[test]
fn set_mode_and_sweep() {
    for r in resolvers() {
        let fx = Fixture::new();
        let root = fx.root(r);
        root.write(p("f"), b"x", &WriteOptions::default()).unwrap();
        root.set_mode(p("f"), 0o600).unwrap();
        assert_eq!(mode_of(&fx.root_path.join("f")), 0o600);
        // Replacing keeps the (now 0600) mode; force_mode wins.
        assert_eq!(
            root.write(p("f"), b"y", &WriteOptions::default())
                .unwrap()
                .mode,
            0o600
        );
        root.set_mode(p("f"), 0o644).unwrap();
        assert_eq!(
            root.write(p("f"), b"z", &WriteOptions::secret())
                .unwrap()
                .mode,
            0o600
        );
        assert_eq!(mode_of(&fx.root_path.join("f")), 0o600);

        // Stale staging files are swept; fresh ones and other names are kept.
        let stale = fx.root_path.join(format!("{STAGING_PREFIX}f-0123456789ab"));
        std::fs::write(&stale, b"partial").unwrap();
        std::fs::write(fx.root_path.join("keep"), b"k").unwrap();
        assert_eq!(
            root.sweep_staging(p(""), Duration::from_secs(3600))
                .unwrap(),
            0
        );
        assert_eq!(root.sweep_staging(p(""), Duration::ZERO).unwrap(), 1);
        assert!(!stale.exists());
        assert!(fx.root_path.join("keep").exists());
    }
}

#[test]
fn errors_carry_facts() {
    let fx = Fixture::new();
    let root = fx.root(Resolver::Auto);
    let e = root
        .read(p("../outside/secret.txt"), &ReadOptions::default())
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::PathOutsideRoot);
    let env = e.to_envelope();
    assert_eq!(env.details["path"], "../outside/secret.txt");
    assert!(env.hint.is_some());
    let e = root
        .read(p("missing"), &ReadOptions::default())
        .unwrap_err();
    assert_eq!(
        e.to_envelope().to_response_json()["error"]["code"],
        "NOT_FOUND"
    );
    assert_eq!(
        code(Root::open(&fx.root_path.join("nope"))),
        ErrorCode::NotFound
    );
    std::fs::write(fx.root_path.join("file"), b"").unwrap();
    assert_eq!(
        code(Root::open(&fx.root_path.join("file"))),
        ErrorCode::BadRequest
    );
}

#[test]
fn permission_denied_names_owner_mode_and_uid() {
    if !carapace_testkit::require_root() {
        return;
    }
    let fx = Fixture::new();
    std::fs::set_permissions(fx.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&fx.root_path, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(fx.root_path.join("private.png"), b"x").unwrap();
    std::fs::set_permissions(
        fx.root_path.join("private.png"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    for r in resolvers() {
        let root = fx.root(r);
        // Drop privileges in this thread only (the raw syscall is per-thread).
        let e = std::thread::scope(|s| {
            s.spawn(|| {
                let nobody = rustix::process::Uid::from_raw(65534);
                rustix::thread::set_thread_res_uid(nobody, nobody, nobody).unwrap();
                root.read(p("private.png"), &ReadOptions::default())
                    .unwrap_err()
            })
            .join()
            .unwrap()
        });
        assert_eq!(e.code(), ErrorCode::PermissionDenied, "{e}");
        let d = e.details();
        assert_eq!(d["mode"], "0600");
        assert_eq!(d["ownerUid"], 0);
        assert_eq!(d["processUid"], 65534);
        assert!(e.hint().unwrap().contains("0600"));
    }
}

#[test]
fn edit_keeps_mode_and_reports_no_change() {
    for r in resolvers() {
        let fx = Fixture::new();
        let root = fx.root(r);
        std::fs::write(fx.root_path.join("e.txt"), b"hello world").unwrap();
        std::fs::set_permissions(
            fx.root_path.join("e.txt"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        let o = root
            .edit(
                p("e.txt"),
                &ReadOptions::default(),
                &WriteOptions::default(),
                |b| {
                    Ok::<_, FsError>(Some(
                        String::from_utf8(b)
                            .unwrap()
                            .replace("world", "there")
                            .into_bytes(),
                    ))
                },
            )
            .unwrap()
            .unwrap();
        assert_eq!((o.mode, o.created), (0o640, false));
        assert_eq!(
            std::fs::read(fx.root_path.join("e.txt")).unwrap(),
            b"hello there"
        );
        let none = root
            .edit(
                p("e.txt"),
                &ReadOptions::default(),
                &WriteOptions::default(),
                |_| Ok::<_, FsError>(None),
            )
            .unwrap();
        assert!(none.is_none());
        assert_eq!(
            code(root.edit(
                p("missing"),
                &ReadOptions::default(),
                &WriteOptions::default(),
                |_| Ok::<_, FsError>(None)
            )),
            ErrorCode::NotFound
        );
    }
}

#[test]
fn privileged_replace_keeps_the_owner() {
    if !carapace_testkit::require_root() {
        return;
    }
    use std::os::unix::fs::MetadataExt;
    for r in resolvers() {
        let fx = Fixture::new();
        let root = fx.root(r);
        let f = fx.root_path.join("theirs");
        std::fs::write(&f, b"old").unwrap();
        std::os::unix::fs::chown(&f, Some(65534), Some(65534)).unwrap();
        root.write(p("theirs"), b"new", &WriteOptions::default())
            .unwrap();
        let md = std::fs::metadata(&f).unwrap();
        assert_eq!((md.uid(), md.gid()), (65534, 65534));
        // A new file is ours.
        root.write(p("mine"), b"new", &WriteOptions::default())
            .unwrap();
        assert_eq!(
            std::fs::metadata(fx.root_path.join("mine")).unwrap().uid(),
            0
        );
    }
}

#[test]
fn mechanism_is_reported() {
    let fx = Fixture::new();
    let fallback = Root::open_with(&fx.root_path, Resolver::Fallback).unwrap();
    assert_eq!(fallback.mechanism(), Mechanism::Fallback);
    assert_eq!(fallback.mechanism().as_str(), "fallback");
    let auto = Root::open(&fx.root_path).unwrap();
    match Root::open_with(&fx.root_path, Resolver::Openat2) {
        Ok(k) => {
            assert_eq!(k.mechanism(), Mechanism::Openat2);
            assert_eq!(
                auto.mechanism(),
                Mechanism::Openat2,
                "Auto must prefer openat2"
            );
        }
        Err(e) => {
            assert!(matches!(e, FsError::ResolverUnavailable("openat2")));
            assert_eq!(auto.mechanism(), Mechanism::Fallback);
            // Fails under strict mode: CI's kernel must exercise the openat2 branch above.
            assert!(!common::openat2_available());
        }
    }
    assert_eq!(auto.host_path(), fx.root_path);
    // A subdirectory root inherits the mechanism; a file cannot be a root.
    std::fs::create_dir(fx.root_path.join("sub")).unwrap();
    assert_eq!(
        fallback.open_subdir(p("sub")).unwrap().mechanism(),
        Mechanism::Fallback
    );
    // Writing below a missing directory is NOT_FOUND (callers mkdir_all first).
    assert_eq!(
        code(auto.write(p("no/such/dir/f"), b"x", &WriteOptions::default())),
        ErrorCode::NotFound
    );
}
