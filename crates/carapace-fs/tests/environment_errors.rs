//! Errors the environment causes get codes of their own, never `INTERNAL` (which means a bug):
//! a full filesystem is `STORAGE_FULL`, a read-only one `READ_ONLY_FILESYSTEM`, a failing device
//! `IO_ERROR`, no descriptors left `RESOURCE_EXHAUSTED`, each with the path, the operation and
//! the errno name as facts. The full and read-only cases run against real tmpfs mounts (root
//! only; under `CARAPACE_TEST_STRICT=1` a non-root run fails instead of skipping); every errno
//! also goes through the same mapping as an injected `io::Error`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use carapace_fs::{FsError, Root, WriteOptions};
use carapace_policy::{CarapaceError, ErrorCode};

/// A tmpfs of `size` mounted (with `opts`) on a fresh directory; unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(opts: &str) -> Option<Tmpfs> {
        let is_root = rustix::process::geteuid().is_root();
        if !carapace_testkit::require("root (to mount a tmpfs)", is_root, "run the test as root") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount -t tmpfs -o {opts} failed");
        Some(Tmpfs { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn facts(e: &FsError) -> serde_json::Map<String, serde_json::Value> {
    e.details()
}

#[test]
fn a_full_filesystem_is_storage_full_with_the_facts() {
    let Some(fs) = Tmpfs::mount("size=64k") else {
        return;
    };
    let root = Root::open(&fs.path()).unwrap();
    let big = vec![7u8; 1 << 20];
    let e = root
        .write(Path::new("big.bin"), &big, &WriteOptions::default())
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::StorageFull, "{e}");
    assert_eq!(e.code().http_status(), 507);
    let d = facts(&e);
    assert_eq!(d["errno"], "ENOSPC", "{d:?}");
    assert_eq!(d["path"], "big.bin");
    assert!(e.hint().unwrap().contains("full"), "{:?}", e.hint());
    // Nothing half-written is left under the final name.
    assert!(!fs.path().join("big.bin").exists());
}

#[test]
fn a_read_only_filesystem_is_read_only_filesystem() {
    let Some(fs) = Tmpfs::mount("size=64k,ro") else {
        return;
    };
    let root = Root::open(&fs.path()).unwrap();
    let e = root
        .write(Path::new("a.txt"), b"x", &WriteOptions::default())
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::ReadOnlyFilesystem, "{e}");
    assert_eq!(facts(&e)["errno"], "EROFS");
    let e = Root::open_or_create(&fs.path().join("new/dir"), 0o700).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ReadOnlyFilesystem, "{e}");
}

/// Every environment errno, injected as the `io::Error` an operation would have met.
#[test]
fn every_environment_errno_has_its_code_and_none_is_internal() {
    for (errno, code, name) in [
        (libc_errno::ENOSPC, ErrorCode::StorageFull, "ENOSPC"),
        (libc_errno::EDQUOT, ErrorCode::StorageFull, "EDQUOT"),
        (libc_errno::EROFS, ErrorCode::ReadOnlyFilesystem, "EROFS"),
        (libc_errno::EIO, ErrorCode::IoError, "EIO"),
        (libc_errno::EMFILE, ErrorCode::ResourceExhausted, "EMFILE"),
        (libc_errno::ENFILE, ErrorCode::ResourceExhausted, "ENFILE"),
    ] {
        let e = FsError::Io {
            op: "write",
            path: PathBuf::from("notes.txt"),
            source: std::io::Error::from_raw_os_error(errno),
        };
        assert_eq!(e.code(), code, "{name}");
        assert_ne!(e.code().http_status(), 500, "{name}");
        assert!(
            e.code().http_status() >= 500,
            "{name}: an environment problem is 5xx"
        );
        let d = facts(&e);
        assert_eq!(d["errno"], name);
        assert_eq!(d["op"], "write");
        assert!(e.hint().is_some(), "{name} has no hint");
    }
    // An errno that is not about the environment stays a bug.
    let e = FsError::Io {
        op: "write",
        path: PathBuf::from("x"),
        source: std::io::Error::from_raw_os_error(libc_errno::EBADF),
    };
    assert_eq!(e.code(), ErrorCode::Internal);
}

/// Raw errno values (Linux), so the test needs no libc dependency.
mod libc_errno {
    pub const EIO: i32 = 5;
    pub const EBADF: i32 = 9;
    pub const ENFILE: i32 = 23;
    pub const EMFILE: i32 = 24;
    pub const ENOSPC: i32 = 28;
    pub const EROFS: i32 = 30;
    pub const EDQUOT: i32 = 122;
}
