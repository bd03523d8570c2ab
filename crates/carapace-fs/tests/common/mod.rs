//! Shared helpers for the integration tests: real directories, both resolvers.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use carapace_fs::{FsError, Resolver, Root};
use carapace_policy::{CarapaceError, ErrorCode};

/// The resolvers every containment test runs against: both, or only the fallback on a kernel
/// (or seccomp profile) without `openat2` — which is exactly where the fallback is what serves.
/// Under `CARAPACE_TEST_STRICT=1` (CI, whose kernel has `openat2`) a missing `openat2` fails
/// the test instead of halving it.
pub fn resolvers() -> Vec<Resolver> {
    if openat2_available() {
        vec![Resolver::Openat2, Resolver::Fallback]
    } else {
        vec![Resolver::Fallback]
    }
}

/// Whether `openat2` serves here; missing, it is a skip line, or a failure under strict mode.
pub fn openat2_available() -> bool {
    carapace_testkit::require(
        "openat2 (Linux 5.6+, not filtered by seccomp)",
        Root::open_with(Path::new("/"), Resolver::Openat2).is_ok(),
        "run on a kernel with openat2; the fallback resolver is tested either way",
    )
}

/// A temp dir laid out as `<tmp>/root` (the Root) next to `<tmp>/outside` (must never change).
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub root_path: PathBuf,
    pub outside: PathBuf,
}

impl Fixture {
    pub fn new() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root_path = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&root_path).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("secret.txt"), b"TOP SECRET").unwrap();
        Fixture {
            tmp,
            root_path,
            outside,
        }
    }

    pub fn root(&self, r: Resolver) -> Root {
        let root = Root::open_with(&self.root_path, r).unwrap();
        match r {
            Resolver::Fallback => assert_eq!(root.mechanism(), carapace_fs::Mechanism::Fallback),
            Resolver::Openat2 => assert_eq!(root.mechanism(), carapace_fs::Mechanism::Openat2),
            Resolver::Auto => {}
        }
        root
    }

    /// A snapshot of everything outside the root (names, contents, modes).
    pub fn outside_snapshot(&self) -> Vec<(PathBuf, Vec<u8>, u32)> {
        snapshot(&self.outside)
    }
}

pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let md = std::fs::symlink_metadata(e.path()).unwrap();
            if md.is_dir() {
                stack.push(e.path());
                out.push((e.path(), vec![], md.permissions().mode()));
            } else if md.is_file() {
                out.push((
                    e.path(),
                    std::fs::read(e.path()).unwrap(),
                    md.permissions().mode(),
                ));
            } else {
                out.push((e.path(), vec![], md.permissions().mode()));
            }
        }
    }
    out.sort();
    out
}

pub fn code<T: std::fmt::Debug>(r: Result<T, FsError>) -> ErrorCode {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e.code(),
    }
}

pub fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}
