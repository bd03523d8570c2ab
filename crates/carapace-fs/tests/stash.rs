//! Stashes on real files: replace or remove a file, then restore gives back the very inode
//! (content, mode, owner); discard commits; a held stash survives sweeps and a dropped one is
//! swept; symlinks and directories are refused; the copy route (a file whose owner forbids
//! hard links, under `protected_hardlinks`) keeps content and mode.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use carapace_fs::*;
use common::*;

fn p(s: &str) -> &Path {
    Path::new(s)
}

fn staging_count(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(STAGING_PREFIX)
        })
        .count()
}

#[test]
fn replace_remove_restore_discard() {
    for r in resolvers() {
        let fx = Fixture::new();
        let root = fx.root(r);
        std::fs::create_dir(fx.root_path.join("d")).unwrap();
        let f = fx.root_path.join("d/f.txt");
        std::fs::write(&f, b"original").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        let ino = std::fs::metadata(&f).unwrap().ino();

        // Replace, then roll back: the original inode is back.
        let s = root.stash(p("d/f.txt")).unwrap();
        assert!(s.is_link());
        root.write(p("d/f.txt"), b"new", &WriteOptions::default())
            .unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"new");
        // A sweep never takes a held stash.
        let rep = root
            .sweep_staging_tree(p(""), &SweepOptions::default())
            .unwrap();
        assert_eq!((rep.removed, rep.busy), (0, 1), "{rep:?}");
        root.restore(s).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"original");
        let md = std::fs::metadata(&f).unwrap();
        assert_eq!((md.ino(), md.nlink(), mode_of(&f)), (ino, 1, 0o640));
        assert_eq!(staging_count(&fx.root_path.join("d")), 0);

        // Remove, then roll back.
        let s = root.stash(p("d/f.txt")).unwrap();
        root.remove(p("d/f.txt"), &RemoveOptions::default())
            .unwrap();
        assert!(!f.exists());
        root.restore(s).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"original");

        // Commit: the stash goes, the change stays.
        let s = root.stash(p("d/f.txt")).unwrap();
        root.write(p("d/f.txt"), b"committed", &WriteOptions::default())
            .unwrap();
        root.discard(s).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"committed");
        assert_eq!(mode_of(&f), 0o640);
        assert_eq!(staging_count(&fx.root_path.join("d")), 0);

        // A stash that was dropped (its process died) is an ordinary leftover.
        let s = root.stash(p("d/f.txt")).unwrap();
        drop(s);
        assert_eq!(staging_count(&fx.root_path.join("d")), 1);
        assert_eq!(root.sweep_staging(p("d"), Duration::ZERO).unwrap(), 1);
        assert_eq!(std::fs::read(&f).unwrap(), b"committed");

        // Not for symlinks, directories, missing files or escapes.
        std::os::unix::fs::symlink("f.txt", fx.root_path.join("d/l")).unwrap();
        assert_eq!(
            code(root.stash(p("d/l"))),
            carapace_policy::ErrorCode::SymlinkRefused
        );
        assert_eq!(
            code(root.stash(p("d"))),
            carapace_policy::ErrorCode::NotRegularFile
        );
        assert_eq!(
            code(root.stash(p("d/missing"))),
            carapace_policy::ErrorCode::NotFound
        );
        assert_eq!(
            code(root.stash(p("../outside/secret.txt"))),
            carapace_policy::ErrorCode::PathOutsideRoot
        );
    }
}

#[test]
fn copy_route_when_links_are_forbidden() {
    // Under protected_hardlinks an unprivileged process may not link another user's file it
    // cannot write: the stash is then a copy at the same mode.
    let protected = std::fs::read_to_string("/proc/sys/fs/protected_hardlinks")
        .map(|s| s.trim() == "1")
        .unwrap_or(false);
    if !protected {
        carapace_testkit::require(
            "fs.protected_hardlinks=1",
            false,
            "sysctl -w fs.protected_hardlinks=1",
        );
        return;
    }
    let fx = Fixture::new();
    let d = fx.root_path.join("shared");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(&fx.root_path, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(fx.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let f = d.join("theirs.txt");
    std::fs::write(&f, b"root's bytes").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let root = fx.root(Resolver::Auto);
    let restored = std::thread::scope(|s| {
        s.spawn(|| {
            let nobody = rustix::process::Uid::from_raw(65534);
            rustix::thread::set_thread_res_uid(nobody, nobody, nobody).unwrap();
            let st = root.stash(p("shared/theirs.txt")).unwrap();
            assert!(!st.is_link(), "linked another user's file");
            root.remove(p("shared/theirs.txt"), &RemoveOptions::default())
                .unwrap();
            root.restore(st).unwrap();
        })
        .join()
    });
    restored.unwrap();
    assert_eq!(std::fs::read(&f).unwrap(), b"root's bytes");
    assert_eq!(mode_of(&f), 0o644);
}
