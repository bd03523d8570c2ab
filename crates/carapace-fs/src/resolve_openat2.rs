//! Kernel-resolved opens: `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`.
//!
//! The kernel guarantees that no step of the lookup (`..`, absolute symlinks, symlinks with `..`
//! in them, mount crossings through magic links) leaves the starting directory; it answers
//! `EXDEV` when one would. A final symlink is refused with `O_NOFOLLOW` (`ELOOP`), which we
//! tell apart from a magic link or a loop with one extra lstat on the cold path.

use std::ffi::OsStr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::relpath::joined;
use crate::resolve::Denied;

const RESOLVE: ResolveFlags = ResolveFlags::BENEATH.union(ResolveFlags::NO_MAGICLINKS);

fn openat2(dir: BorrowedFd<'_>, path: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
    loop {
        match rustix::fs::openat2(dir, path, flags, Mode::empty(), RESOLVE) {
            // A concurrent rename or mount: the kernel asks us to retry the whole lookup.
            Err(Errno::AGAIN) => continue,
            r => return r,
        }
    }
}

/// See [`crate::resolve::open`].
pub(crate) fn open(
    root: BorrowedFd<'_>,
    comps: &[&OsStr],
    oflags: OFlags,
    follow_final: bool,
) -> Result<OwnedFd, Denied> {
    open_path(root, &joined(comps), oflags, follow_final)
}

/// [`open`] with the path as given; the caller has checked it lexically (relative, no `..`,
/// no NUL, see `relpath::is_plain`).
pub(crate) fn open_path(
    root: BorrowedFd<'_>,
    path: &Path,
    oflags: OFlags,
    follow_final: bool,
) -> Result<OwnedFd, Denied> {
    let mut flags = oflags | OFlags::CLOEXEC;
    if !follow_final {
        flags |= OFlags::NOFOLLOW;
    }
    match openat2(root, path, flags) {
        Ok(fd) => Ok(fd),
        Err(Errno::XDEV) => Err(Denied::Escape("the path resolves outside the root")),
        Err(e @ (Errno::LOOP | Errno::NOTDIR)) => Err(classify(root, path, follow_final, e)),
        Err(e) => Err(Denied::Errno(e)),
    }
}

/// Cold: why did an open fail with `ELOOP`/`ENOTDIR`? A final symlink under `O_NOFOLLOW`, a
/// magic link or loop, or simply a non-directory.
#[cold]
fn classify(root: BorrowedFd<'_>, path: &Path, follow_final: bool, e: Errno) -> Denied {
    if !follow_final
        && let Ok(fd) = openat2(
            root,
            path,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        )
        && let Ok(st) = rustix::fs::fstat(&fd)
        && FileType::from_raw_mode(st.st_mode) == FileType::Symlink
    {
        return Denied::Symlink;
    }
    if e == Errno::LOOP {
        Denied::Escape("too many levels of symlinks, or a /proc magic link")
    } else {
        Denied::Errno(e)
    }
}
