//! Directories at a decided mode: the one way carapace creates the directories it owns (state
//! dir, `secrets/`, `audit/`, the media store, sandbox directories, the Docker registry).
//!
//! - [`Root::open_or_create`] starts from an operator-given absolute path: the part that
//!   exists is opened as [`Root::open`] opens a root (symlinks in the operator's own path are
//!   followed once, there); every component it has to create is made beneath that fd.
//! - [`Root::create_dir_all`] creates beneath a root carapace already holds, and refuses a
//!   symlink in **any** component, existing or not: a link planted inside the state dir never
//!   redirects where carapace creates its directories.
//!
//! Every directory created gets exactly `mode` (`fchmod` after `mkdirat`, whatever the
//! umask); directories that already exist keep theirs. As root, a new directory belongs to its
//! parent's owner (as files do, see `atomic_write`).

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::error::FsError;
use crate::meta::{FileKind, FileMeta};
use crate::options::Resolver;
use crate::relpath;
use crate::root::Root;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

impl Root {
    /// Opens the absolute, normalised `path` as a root, creating it and its missing parents at
    /// `mode` first. The existing part is the operator's path (followed as [`Root::open`]
    /// does); the created part never follows a symlink (one appearing there meanwhile is
    /// `SYMLINK_REFUSED`).
    pub fn open_or_create(path: &Path, mode: u32) -> Result<Root, FsError> {
        let invalid = |reason| FsError::InvalidPath {
            path: path.to_path_buf(),
            reason,
        };
        if !path.is_absolute() {
            return Err(invalid("not an absolute path"));
        }
        if path
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        {
            return Err(invalid("not a normalised path (`.` or `..` components)"));
        }
        let mut base = path.to_path_buf();
        let mut missing: Vec<PathBuf> = Vec::new();
        while std::fs::symlink_metadata(&base).is_err() {
            let Some(name) = base.file_name().map(PathBuf::from) else {
                break;
            };
            missing.push(name);
            if !base.pop() {
                break;
            }
        }
        let root = Root::open_with(&base, Resolver::Auto)?;
        if missing.is_empty() {
            return Ok(root);
        }
        let rel: PathBuf = missing.iter().rev().collect();
        root.create_dir_all(&rel, mode)
    }

    /// Creates `rel` and its missing parents beneath this root at `mode` and returns it as a
    /// root. A symlink in any component of `rel` is `SYMLINK_REFUSED`, something else than a
    /// directory is `NOT_A_DIRECTORY` (`BAD_REQUEST`).
    pub fn create_dir_all(&self, rel: &Path, mode: u32) -> Result<Root, FsError> {
        let comps: Vec<&OsStr> = self.comps(rel)?;
        let mut cur: Option<OwnedFd> = None;
        for c in &comps {
            let parent = match &cur {
                Some(fd) => fd.as_fd(),
                None => self.fd.as_fd(),
            };
            let created = match rustix::fs::mkdirat(parent, *c, Mode::from_raw_mode(0o700)) {
                Ok(()) => true,
                Err(Errno::EXIST) => false,
                Err(e) => return Err(self.err("mkdir", rel, e)),
            };
            let fd = match rustix::fs::openat(parent, *c, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    let st = rustix::fs::statat(parent, *c, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| self.err("mkdir", rel, e))?;
                    let kind = FileMeta::from_stat(&st).kind;
                    return Err(if kind == FileKind::Symlink {
                        FsError::SymlinkRefused {
                            path: rel.to_path_buf(),
                        }
                    } else {
                        FsError::NotADirectory {
                            path: rel.to_path_buf(),
                            kind,
                        }
                    });
                }
                Err(e) => return Err(self.err("mkdir", rel, e)),
            };
            if created {
                if let Some((uid, gid)) = crate::root::inherited_owner(&parent) {
                    let _ = rustix::fs::fchown(
                        &fd,
                        Some(rustix::fs::Uid::from_raw(uid)),
                        Some(rustix::fs::Gid::from_raw(gid)),
                    );
                }
                rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777))
                    .map_err(|e| self.err("chmod", rel, e))?;
            }
            cur = Some(fd);
        }
        let fd = match cur {
            Some(fd) => fd,
            None => self
                .fd
                .try_clone()
                .map_err(|e| crate::root::io_error("dup", rel, e))?,
        };
        let host = if comps.is_empty() {
            self.host.clone()
        } else {
            self.host.join(relpath::joined(&comps))
        };
        Ok(Root {
            fd,
            host,
            mech: self.mech,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use carapace_policy::{CarapaceError, ErrorCode};

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn creates_missing_parents_at_the_decided_mode_whatever_the_umask() {
        let t = tempfile::tempdir().unwrap();
        let want = t.path().join("a/b/c");
        let r = Root::open_or_create(&want, 0o750).unwrap();
        assert_eq!(r.host_path(), want);
        for d in ["a", "a/b", "a/b/c"] {
            assert_eq!(mode(&t.path().join(d)), 0o750, "{d}");
        }
        // Existing directories keep their mode.
        std::fs::set_permissions(t.path().join("a"), PermissionsExt::from_mode(0o711)).unwrap();
        Root::open_or_create(&t.path().join("a/d"), 0o700).unwrap();
        assert_eq!(mode(&t.path().join("a")), 0o711);
        assert_eq!(mode(&t.path().join("a/d")), 0o700);
    }

    #[test]
    fn a_symlink_in_any_component_beneath_a_root_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("real")).unwrap();
        std::os::unix::fs::symlink(outside.path(), t.path().join("real/link")).unwrap();
        let root = Root::open(t.path()).unwrap();
        let e = root
            .create_dir_all(Path::new("real/link/audit"), 0o700)
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::SymlinkRefused, "{e}");
        let e = root
            .create_dir_all(Path::new("real/link"), 0o700)
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::SymlinkRefused, "{e}");
        assert!(std::fs::read_dir(outside.path()).unwrap().next().is_none());
        std::fs::write(t.path().join("file"), b"x").unwrap();
        let e = root
            .create_dir_all(Path::new("file/sub"), 0o700)
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::BadRequest, "{e}");
    }

    #[test]
    fn relative_or_unnormalised_paths_are_refused() {
        for p in ["relative/dir", "/tmp/../etc"] {
            let e = Root::open_or_create(Path::new(p), 0o700).unwrap_err();
            assert_eq!(e.code(), ErrorCode::BadRequest, "{p}: {e}");
        }
    }
}
