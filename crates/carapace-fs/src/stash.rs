//! Keeping a file's original until a multi-file change commits: [`Root::stash`] gives the
//! regular file at a path a second name (a hard link) under a staging name in the same
//! directory, so the path can then be replaced or removed while the original inode lives on;
//! [`Root::restore`] puts it back with one `renameat` (atomic for readers), [`Root::discard`]
//! drops it. `apply_patch` uses this to roll back a patch that fails halfway.
//!
//! - The link is made to the very inode that was opened and checked (`linkat` of
//!   `/proc/self/fd/N`), not to whatever the name points to a moment later. Without `/proc`,
//!   the name is linked and the result compared with the opened inode.
//! - Where a hard link is not possible (another owner's file under `protected_hardlinks`, a
//!   filesystem without links), the stash is a copy at the same mode.
//! - The stash holds a shared `flock` on its file, so a sweep never removes it while this
//!   process lives; if the process dies, the stash is an ordinary leftover staging file (the
//!   original, if it was never replaced, is untouched at its own name).

use std::ffi::OsString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FlockOperation, Gid, Mode, OFlags, Uid};
use rustix::io::Errno;

use crate::atomic_write::{create_staging, staging_name};
use crate::error::FsError;
use crate::meta::{FileKind, FileMeta};
use crate::resolve::DirFd;
use crate::root::{Root, io_error, process_uid};

/// A file's original kept under a second name; see the module docs. Give it back to
/// [`Root::restore`] or [`Root::discard`] (dropping it leaves the staging name for a sweep).
#[derive(Debug)]
pub struct Stash {
    parent: OwnedFd,
    name: OsString,
    stash: OsString,
    /// Holds the shared lock (and pins the inode).
    _lock: OwnedFd,
    rel: PathBuf,
    meta: FileMeta,
    linked: bool,
}

impl Stash {
    /// The path as given to [`Root::stash`].
    pub fn rel(&self) -> &Path {
        &self.rel
    }

    /// The original's metadata.
    pub fn meta(&self) -> &FileMeta {
        &self.meta
    }

    /// True when the stash is a hard link to the original inode (not a copy).
    pub fn is_link(&self) -> bool {
        self.linked
    }
}

impl Root {
    /// Keeps the regular file at `rel` (never a final symlink) until [`Root::restore`] or
    /// [`Root::discard`].
    pub fn stash(&self, rel: &Path) -> Result<Stash, FsError> {
        let comps = self.comps(rel)?;
        let (parent, name) = self.parent(rel, &comps, "stash", false)?;
        let fd = rustix::fs::openat(
            &parent,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::LOOP => FsError::SymlinkRefused {
                path: rel.to_path_buf(),
            },
            e => self.err("stash", rel, e),
        })?;
        let st = rustix::fs::fstat(&fd).map_err(|e| self.err("stash", rel, e))?;
        let meta = FileMeta::from_stat(&st);
        if meta.kind != FileKind::File {
            return Err(FsError::NotRegularFile {
                path: rel.to_path_buf(),
                kind: meta.kind,
            });
        }
        // Best effort: without flock the stash is only protected by the sweep's age rule.
        let _ = rustix::fs::flock(&fd, FlockOperation::NonBlockingLockShared);
        let parent: OwnedFd = match parent {
            DirFd::Root(b) => b
                .try_clone_to_owned()
                .map_err(|e| io_error("stash", rel, e))?,
            DirFd::Owned(o) => o,
        };
        for _ in 0..32 {
            let candidate = staging_name(name);
            match link_inode(&fd, &parent, name, &candidate, &st) {
                Ok(()) => {
                    return Ok(Stash {
                        parent,
                        name: name.to_os_string(),
                        stash: candidate,
                        _lock: fd,
                        rel: rel.to_path_buf(),
                        meta,
                        linked: true,
                    });
                }
                Err(Errno::EXIST) => continue,
                Err(Errno::PERM | Errno::MLINK | Errno::OPNOTSUPP | Errno::XDEV) => {
                    return self.stash_copy(rel, parent, name.to_os_string(), fd, meta);
                }
                Err(e) => return Err(self.err("stash", rel, e)),
            }
        }
        Err(self.err("stash", rel, Errno::EXIST))
    }

    /// The copy route of [`Root::stash`]: a staging file with the original's bytes and mode.
    fn stash_copy(
        &self,
        rel: &Path,
        parent: OwnedFd,
        name: OsString,
        original: OwnedFd,
        meta: FileMeta,
    ) -> Result<Stash, FsError> {
        let (stash, wfd) =
            create_staging(&parent, &name, true).map_err(|e| self.err("stash", rel, e))?;
        let copied = (|| {
            let mut src = File::from(
                original
                    .try_clone()
                    .map_err(|e| io_error("stash", rel, e))?,
            );
            let mut dst = File::from(wfd.try_clone().map_err(|e| io_error("stash", rel, e))?);
            std::io::copy(&mut src, &mut dst).map_err(|e| io_error("stash", rel, e))?;
            if process_uid() == 0 {
                let _ = rustix::fs::fchown(
                    &wfd,
                    Some(Uid::from_raw(meta.uid)),
                    Some(Gid::from_raw(meta.gid)),
                );
            }
            rustix::fs::fchmod(&wfd, Mode::from_raw_mode(meta.mode & 0o1777))
                .map_err(|e| self.err("stash", rel, e))
        })();
        if let Err(e) = copied {
            let _ = rustix::fs::unlinkat(&parent, &stash, AtFlags::empty());
            return Err(e);
        }
        Ok(Stash {
            parent,
            name,
            stash,
            _lock: wfd,
            rel: rel.to_path_buf(),
            meta,
            linked: false,
        })
    }

    /// Puts the original back at its path (one `renameat`, replacing whatever is there now).
    pub fn restore(&self, s: Stash) -> Result<(), FsError> {
        rustix::fs::renameat(&s.parent, &s.stash, &s.parent, &s.name)
            .map_err(|e| self.err("restore", &s.rel, e))
    }

    /// Drops the kept original (the change it guarded is committed).
    pub fn discard(&self, s: Stash) -> Result<(), FsError> {
        match rustix::fs::unlinkat(&s.parent, &s.stash, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(self.err("discard", &s.rel, e)),
        }
    }
}

/// Links the inode open at `fd` as `dir/new` (no-clobber).
fn link_inode(
    fd: &OwnedFd,
    dir: &OwnedFd,
    name: &std::ffi::OsStr,
    new: &std::ffi::OsStr,
    st: &rustix::fs::Stat,
) -> Result<(), Errno> {
    let proc_path = format!("/proc/self/fd/{}", fd.as_raw_fd());
    match rustix::fs::linkat(
        rustix::fs::CWD,
        proc_path.as_str(),
        dir,
        new,
        AtFlags::SYMLINK_FOLLOW,
    ) {
        Err(Errno::NOENT) if !Path::new("/proc/self/fd").is_dir() => {
            // No /proc: link the name, then make sure it is the inode we checked.
            rustix::fs::linkat(dir.as_fd(), name, dir.as_fd(), new, AtFlags::empty())?;
            match rustix::fs::statat(dir.as_fd(), new, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(l) if l.st_dev == st.st_dev && l.st_ino == st.st_ino => Ok(()),
                _ => {
                    let _ = rustix::fs::unlinkat(dir.as_fd(), new, AtFlags::empty());
                    Err(Errno::AGAIN)
                }
            }
        }
        r => r,
    }
}
