//! Dispatch between the two resolvers, and the vocabulary they share.
//!
//! Both resolvers answer the same question — "open this relative path beneath this directory fd,
//! following symlinks only while they stay beneath it" — and both report refusals with
//! [`Denied`], which `Root` turns into a typed [`crate::FsError`] carrying the caller's path.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::options::Mechanism;
use crate::{resolve_fallback, resolve_openat2};

/// Why a resolver refused or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Denied {
    /// The OS said no, for a reason that is not about containment.
    Errno(Errno),
    /// The path leads (or tries to lead) out of the root.
    Escape(&'static str),
    /// The final component is a symlink and the call does not follow it.
    Symlink,
}

/// Opens `comps` beneath `root` with `oflags` (`O_CLOEXEC` is always added). Symlinks in
/// intermediate components are followed while they stay beneath `root`; the final component is
/// followed only when `follow_final`.
pub(crate) fn open(
    mech: Mechanism,
    root: BorrowedFd<'_>,
    comps: &[&OsStr],
    oflags: OFlags,
    follow_final: bool,
) -> Result<OwnedFd, Denied> {
    match mech {
        Mechanism::Openat2 => resolve_openat2::open(root, comps, oflags, follow_final),
        Mechanism::Fallback => resolve_fallback::open(root, comps, oflags, follow_final),
    }
}

/// True when this kernel lets us use `openat2` with `RESOLVE_BENEATH`, probed on `dir` (a root
/// being opened). Definite answers are cached for the process: success, or `ENOSYS`/`EPERM`
/// (old kernels, seccomp filters); any other error is not cached and counts as "no" this once.
pub(crate) fn openat2_available(dir: BorrowedFd<'_>) -> bool {
    static PROBE: OnceLock<bool> = OnceLock::new();
    if let Some(v) = PROBE.get() {
        return *v;
    }
    match rustix::fs::openat2(
        dir,
        ".",
        OFlags::PATH | OFlags::CLOEXEC | OFlags::DIRECTORY,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(_) => *PROBE.get_or_init(|| true),
        Err(Errno::NOSYS | Errno::PERM) => *PROBE.get_or_init(|| false),
        Err(_) => false,
    }
}

/// A directory fd that is either the root's own (borrowed) or one we opened.
pub(crate) enum DirFd<'a> {
    /// The root itself.
    Root(BorrowedFd<'a>),
    /// A directory beneath it.
    Owned(OwnedFd),
}

impl AsFd for DirFd<'_> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            DirFd::Root(b) => *b,
            DirFd::Owned(o) => o.as_fd(),
        }
    }
}
