//! Ownership when carapace runs as root: `set_owner`, and new files and directories taking the
//! owner of the directory they are created in (a sandbox's directory belongs to the sandbox's
//! unprivileged uid, and what the tools write there must stay writable by it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use carapace_fs::{FsError, Root, WriteOptions};

#[test]
fn set_owner_is_pinned_and_refuses_links() {
    if !carapace_testkit::require_root() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("sbx")).unwrap();
    std::os::unix::fs::symlink("/etc", d.path().join("link")).unwrap();
    let root = Root::open(d.path()).unwrap();
    root.set_owner(Path::new("sbx"), 65534, 65534).unwrap();
    let m = std::fs::metadata(d.path().join("sbx")).unwrap();
    assert_eq!((m.uid(), m.gid()), (65534, 65534));
    assert!(matches!(
        root.set_owner(Path::new("link"), 65534, 65534),
        Err(FsError::SymlinkRefused { .. })
    ));
    assert_eq!(std::fs::metadata("/etc").unwrap().uid(), 0);
}

#[test]
fn new_entries_take_the_directory_owner_when_root() {
    if !carapace_testkit::require_root() {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let sbx = d.path().join("sbx");
    std::fs::create_dir(&sbx).unwrap();
    std::os::unix::fs::chown(&sbx, Some(65534), Some(65534)).unwrap();
    let root = Root::open(&sbx).unwrap();
    root.mkdir_all(Path::new("a/b"), 0o755).unwrap();
    root.write(Path::new("a/b/f.txt"), b"x", &WriteOptions::default())
        .unwrap();
    root.create(Path::new("new.txt"), b"y", &WriteOptions::default())
        .unwrap();
    for p in ["a", "a/b", "a/b/f.txt", "new.txt"] {
        let m = std::fs::metadata(sbx.join(p)).unwrap();
        assert_eq!((m.uid(), m.gid()), (65534, 65534), "{p}");
    }
    // A replace keeps the owner, in a root-owned directory too.
    let plain = Root::open(d.path()).unwrap();
    plain
        .write(Path::new("mine.txt"), b"1", &WriteOptions::default())
        .unwrap();
    assert_eq!(
        std::fs::metadata(d.path().join("mine.txt")).unwrap().uid(),
        0
    );
    std::os::unix::fs::chown(d.path().join("mine.txt"), Some(1234), Some(1234)).unwrap();
    plain
        .write(Path::new("mine.txt"), b"2", &WriteOptions::default())
        .unwrap();
    assert_eq!(
        std::fs::metadata(d.path().join("mine.txt")).unwrap().uid(),
        1234
    );
}
