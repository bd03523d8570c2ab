//! carapace's safe filesystem layer (docs/fs.md): every file operation of carapace goes through a
//! [`Root`], a directory pinned by an fd beneath which every path is resolved.
//!
//! - **Containment** by the kernel (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`),
//!   or a component-by-component `O_NOFOLLOW` walk where `openat2` is missing
//!   ([`Root::mechanism`] says which). `..` components and absolute paths are refused before any
//!   syscall; symlinks that lead out, `/proc` magic links and loops are `PATH_OUTSIDE_ROOT`.
//! - **Symlinks**: a final symlink is refused unless [`SymlinkPolicy::FollowInside`];
//!   **hardlinks** are refusable per call ([`HardlinkPolicy::Refuse`]).
//! - **Opens never block**: `O_NONBLOCK`, then fstat on the fd: FIFOs, sockets, devices and
//!   directories are `NOT_REGULAR_FILE`. The fd that passed the checks is the one returned.
//! - **Atomic, mode-exact writes**: staged in the same directory, `fchmod` on the fd to the
//!   decided mode, fsync when durable, `renameat` (`RENAME_NOREPLACE` for create). A file never
//!   appears at a mode carapace did not decide, whatever the umask. A writer holds a `flock` on
//!   its staging file, so sweeps remove the leftovers of killed writers and never a live one's.
//! - **Bounded reads and listings**: line windows ([`VerifiedFile::read_lines`]) and listings
//!   ([`Root::list_bounded`]) take memory and time bounded by their caps whatever the file or
//!   directory looks like (sparse files, one endless line, 300 000 entries).
//!
//! Errors are [`FsError`], which implements [`carapace_policy::CarapaceError`].
//!
//! The resolvers are in `resolve_openat2.rs` (kernel) and `resolve_fallback.rs` (walk); the
//! write protocol in `atomic_write.rs`. This crate needs no `unsafe`: rustix wraps every
//! syscall.

#![forbid(unsafe_code)]

mod append;
mod atomic_write;
mod create_dir;
mod error;
mod list_bounded;
mod meta;
mod mutate;
mod options;
mod read_lines;
mod relpath;
mod resolve;
mod resolve_fallback;
mod resolve_openat2;
mod root;
mod rotate;
mod stash;
mod sweep;

pub use append::{AppendFile, AppendOptions, DEFAULT_MAX_RECORD_BYTES};
pub use atomic_write::STAGING_PREFIX;
pub use error::{FsError, environment_code, errno_name};
pub use list_bounded::{ListOptions, Listing};
pub use meta::{DirEntryMeta, FileKind, FileMeta};
pub use options::{
    HardlinkPolicy, Mechanism, ReadOptions, RemoveOptions, Resolver, SymlinkPolicy, VerifiedFile,
    WriteOptions, WriteOutcome,
};
pub use read_lines::{LineQuery, LineWindow};
pub use root::Root;
pub use rotate::RotatingLog;
pub use stash::Stash;
pub use sweep::{SweepOptions, SweepReport, UNLOCKED_GRACE};

/// Switches for tests of this crate; not part of the API.
#[doc(hidden)]
pub mod testing {
    /// Makes every `create` in this process use the named staging file + `RENAME_NOREPLACE`
    /// route instead of `O_TMPFILE` + `linkat`, as on filesystems without `O_TMPFILE`.
    pub fn force_staging(on: bool) {
        crate::atomic_write::FORCE_STAGING.store(on, std::sync::atomic::Ordering::Relaxed);
    }
}
