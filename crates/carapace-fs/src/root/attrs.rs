//! Modes and owners: `set_mode` / `set_owner` on a pinned inode, and the owner a new object
//! takes when carapace runs as root.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::Root;
use crate::error::{FsError, from_errno};
use crate::meta::{FileKind, FileMeta};

impl Root {
    /// Sets the permission bits of the object at `rel` exactly (the umask plays no part). The
    /// object is pinned with an `O_PATH | O_NOFOLLOW` open first; a final symlink is refused,
    /// so is a non-directory with more than one hard link (its other names may be outside the
    /// root), and the mode is applied to that very inode (`/proc/self/fd`, or an fd re-open checked
    /// against the pinned inode when `/proc` is missing).
    pub fn set_mode(&self, rel: &Path, mode: u32) -> Result<(), FsError> {
        let comps = self.comps(rel)?;
        let (pinned, st) = self.pin_for_attrs(rel, &comps, "chmod")?;
        let mode = Mode::from_raw_mode(mode & 0o7777);
        let proc_path = format!("/proc/self/fd/{}", pinned.as_raw_fd());
        match rustix::fs::chmodat(rustix::fs::CWD, proc_path.as_str(), mode, AtFlags::empty()) {
            Ok(()) => Ok(()),
            Err(Errno::NOENT) => {
                // No /proc: open the object for real, check it is the pinned inode, fchmod.
                let fd = self.resolve(
                    rel,
                    &comps,
                    OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
                    false,
                    "chmod",
                )?;
                let st2 = rustix::fs::fstat(&fd).map_err(|e| from_errno("fstat", rel, e))?;
                if st2.st_ino != st.st_ino || st2.st_dev != st.st_dev {
                    return Err(from_errno("chmod", rel, Errno::AGAIN));
                }
                rustix::fs::fchmod(&fd, mode).map_err(|e| self.err("chmod", rel, e))
            }
            Err(e) => Err(self.err("chmod", rel, e)),
        }
    }

    /// Sets the owner and group of the object at `rel` (the root itself for `""`). Pinned like
    /// [`Root::set_mode`]: an `O_PATH | O_NOFOLLOW` open, a final symlink refused, a hardlinked
    /// non-directory refused, then `fchownat(AT_EMPTY_PATH)` on that very inode.
    pub fn set_owner(&self, rel: &Path, uid: u32, gid: u32) -> Result<(), FsError> {
        let comps = self.comps(rel)?;
        let (pinned, _) = self.pin_for_attrs(rel, &comps, "chown")?;
        rustix::fs::chownat(
            &pinned,
            "",
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            AtFlags::EMPTY_PATH,
        )
        .map_err(|e| self.err("chown", rel, e))
    }

    /// The object at `rel` pinned for a mode or owner change (`op`): an `O_PATH | O_NOFOLLOW`
    /// open and its stat. A final symlink is refused, and so is a non-directory with more than
    /// one hard link: mode and owner belong to the inode, so the change would reach its other
    /// names, which may be outside the root.
    fn pin_for_attrs(
        &self,
        rel: &Path,
        comps: &[&OsStr],
        op: &'static str,
    ) -> Result<(OwnedFd, Stat), FsError> {
        let pinned = self.resolve(rel, comps, OFlags::PATH, false, op)?;
        let st = rustix::fs::fstat(&pinned).map_err(|e| from_errno("fstat", rel, e))?;
        let meta = FileMeta::from_stat(&st);
        if meta.kind == FileKind::Symlink {
            return Err(FsError::SymlinkRefused {
                path: rel.to_path_buf(),
            });
        }
        if meta.kind != FileKind::Dir && meta.nlink > 1 {
            return Err(FsError::HardlinkRefused {
                path: rel.to_path_buf(),
                nlink: meta.nlink,
            });
        }
        Ok((pinned, st))
    }
}

/// carapace's effective uid.
pub(crate) fn process_uid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// When carapace runs as root: the owner of `dir` if it is not root's, which an object created
/// in it then takes. `None` otherwise (nothing to change).
pub(crate) fn inherited_owner(dir: &impl AsFd) -> Option<(u32, u32)> {
    static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if !*ROOT.get_or_init(|| process_uid() == 0) {
        return None;
    }
    let st = rustix::fs::fstat(dir).ok()?;
    let m = FileMeta::from_stat(&st);
    (m.uid != 0 || m.gid != 0).then_some((m.uid, m.gid))
}
