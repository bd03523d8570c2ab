//! Sweeping the staging files of killed writers.
//!
//! **Which files.** A regular file whose name has carapace's exact staging shape
//! (`.carapace-tmp-<name>-<12 hex digits>`) and whose writer is gone. Nothing else is ever
//! removed: not other names, not symlinks, FIFOs or directories with that name.
//!
//! **How a live writer is told from a dead one.** A writer streaming its content (which it
//! could not produce again) holds a shared `flock` on its staging file from the moment the
//! file exists until it is renamed into place (see `atomic_write.rs`; a writer that finds the
//! lock already taken by a sweeper, or once locked finds its name gone — a sweep that ran
//! between its create and its lock — gives the name up and stages under another one). A sweeper
//! removes a file only after it obtained the exclusive lock without waiting — which no such
//! writer allows — and only while the name still names the file it locked. A writer of
//! in-memory content first stages unlocked (one syscall less on the hot path): if a sweep
//! takes that staging file, its rename fails with `ENOENT` and it writes again, locked, so it
//! loses nothing either. A process that is killed drops its locks with its fds, so its
//! leftovers are removable at once, at the next start. Age alone is not the test, because a
//! slow writer (a stalled stream) can outlive any grace period. Where the filesystem has no
//! `flock`, age is the fallback: a file untouched (mtime) for [`UNLOCKED_GRACE`]. Callers may
//! ask for a minimum age on top (`older_than`).
//!
//! **Never follows links.** Directories are opened one component at a time with
//! `O_DIRECTORY | O_NOFOLLOW` beneath the root; candidates are opened `O_NOFOLLOW |
//! O_NONBLOCK` and checked with fstat; mount points (another device) are not entered.
//!
//! **Bounded.** A tree sweep visits at most `max_entries` directory entries and descends at
//! most `max_depth` levels; the report says whether it covered everything.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, SystemTime};

use rustix::fs::{AtFlags, FileType, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::atomic_write::STAGING_PREFIX;
use crate::error::{FsError, from_errno};
use crate::meta::{FileKind, FileMeta};
use crate::root::Root;

/// How long a staging file must be untouched before it is removed on a filesystem without
/// `flock` (where a live writer cannot be told from a dead one otherwise).
pub const UNLOCKED_GRACE: Duration = Duration::from_secs(3600);

/// Bounds of [`Root::sweep_staging_tree`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepOptions {
    /// Remove only staging files last modified longer ago than this (on top of the lock
    /// test). Zero: any whose writer is gone.
    pub older_than: Duration,
    /// Most directory entries looked at.
    pub max_entries: u64,
    /// Deepest level descended into (the swept directory is level 0).
    pub max_depth: u32,
}

impl Default for SweepOptions {
    fn default() -> Self {
        SweepOptions {
            older_than: Duration::ZERO,
            max_entries: 100_000,
            max_depth: 64,
        }
    }
}

/// What a sweep did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SweepReport {
    /// Staging files removed.
    pub removed: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Staging files kept because a live writer holds them.
    pub busy: u64,
    /// Directory entries looked at.
    pub visited: u64,
    /// False when a bound stopped the sweep before it saw the whole tree.
    pub complete: bool,
}

/// True for carapace's own staging names: `.carapace-tmp-<name>-<12 lowercase hex>`.
pub(crate) fn is_staging_name(name: &[u8]) -> bool {
    let Some(rest) = name.strip_prefix(STAGING_PREFIX.as_bytes()) else {
        return false;
    };
    if rest.len() < 14 {
        return false;
    }
    let (stem, tail) = rest.split_at(rest.len() - 13);
    !stem.is_empty()
        && tail[0] == b'-'
        && tail[1..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

/// The outcome for one candidate.
enum Reap {
    Removed(u64),
    Busy,
    Kept,
}

/// Removes the staging file `name` in `dir` if its writer is gone (see the module docs).
fn reap(dir: BorrowedFd<'_>, name: &CStr, older_than: Duration) -> Reap {
    let Ok(fd) = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    ) else {
        return Reap::Kept; // a symlink (ELOOP), gone, or not ours to open
    };
    let Ok(st) = rustix::fs::fstat(&fd) else {
        return Reap::Kept;
    };
    let meta = FileMeta::from_stat(&st);
    if meta.kind != FileKind::File {
        return Reap::Kept;
    }
    let now = SystemTime::now();
    let age = now.duration_since(meta.mtime).unwrap_or(Duration::ZERO);
    if age < older_than {
        return Reap::Kept;
    }
    match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(Errno::WOULDBLOCK) => return Reap::Busy,
        // No flock here: a live writer cannot be told from a dead one but by age.
        Err(_) if age >= UNLOCKED_GRACE => {}
        Err(_) => return Reap::Kept,
    }
    // The name must still name the file we hold (not renamed away and replaced).
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(now) if now.st_dev == st.st_dev && now.st_ino == st.st_ino => {}
        _ => return Reap::Kept,
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) => Reap::Removed(meta.size),
        Err(_) => Reap::Kept,
    }
}

/// One directory being walked: its fd and the subdirectories still to visit.
struct Frame {
    fd: OwnedFd,
    pending: Vec<CString>,
    depth: u32,
}

impl Root {
    /// Removes the staging files of dead writers (see the module docs) from the directory
    /// `rel_dir` itself, not descending, that were last modified longer ago than
    /// `older_than`. Returns how many were removed.
    pub fn sweep_staging(&self, rel_dir: &Path, older_than: Duration) -> Result<u64, FsError> {
        let r = self.sweep_staging_tree(
            rel_dir,
            &SweepOptions {
                older_than,
                max_entries: u64::MAX,
                max_depth: 0,
            },
        )?;
        Ok(r.removed)
    }

    /// Removes the staging files of dead writers (see the module docs) anywhere beneath
    /// `rel_dir`, within the bounds of `opts`. A final symlink at `rel_dir` is refused; links
    /// below it are never followed and mount points are not entered.
    pub fn sweep_staging_tree(
        &self,
        rel_dir: &Path,
        opts: &SweepOptions,
    ) -> Result<SweepReport, FsError> {
        let comps = self.comps(rel_dir)?;
        let top = self.resolve(
            rel_dir,
            &comps,
            OFlags::RDONLY | OFlags::DIRECTORY,
            false,
            "sweep",
        )?;
        let dev = rustix::fs::fstat(&top)
            .map_err(|e| from_errno("sweep", rel_dir, e))?
            .st_dev;
        let mut report = SweepReport {
            complete: true,
            ..SweepReport::default()
        };
        let mut stack = vec![Frame {
            fd: top,
            pending: Vec::new(),
            depth: 0,
        }];
        // Lists the frame on top, then descends into its subdirectories one by one.
        let mut listed = false;
        while let Some(frame) = stack.last_mut() {
            if !listed {
                let descend = frame.depth < opts.max_depth;
                match list_dir(frame, descend, opts, &mut report) {
                    Ok(()) => {}
                    Err(e) if stack.len() == 1 => return Err(self.err("sweep", rel_dir, e)),
                    Err(_) => report.complete = false,
                }
                listed = true;
                if report.visited >= opts.max_entries {
                    report.complete = false;
                    break;
                }
            }
            let Some(frame) = stack.last_mut() else { break };
            let Some(child) = frame.pending.pop() else {
                stack.pop();
                continue;
            };
            let depth = frame.depth + 1;
            let opened = rustix::fs::openat(
                &frame.fd,
                &child,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            );
            let Ok(fd) = opened else {
                continue; // replaced by a symlink or removed since the listing
            };
            match rustix::fs::fstat(&fd) {
                Ok(st) if st.st_dev == dev => {
                    stack.push(Frame {
                        fd,
                        pending: Vec::new(),
                        depth,
                    });
                    listed = false;
                }
                _ => {} // another filesystem: not ours to walk
            }
        }
        Ok(report)
    }
}

/// Reads one directory: reaps staging files, remembers subdirectories (when `descend`).
fn list_dir(
    frame: &mut Frame,
    descend: bool,
    opts: &SweepOptions,
    report: &mut SweepReport,
) -> Result<(), Errno> {
    let dir = rustix::fs::Dir::read_from(&frame.fd)?;
    for entry in dir {
        let entry = entry?;
        let name = entry.file_name();
        let bytes = name.to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        report.visited += 1;
        if report.visited > opts.max_entries {
            report.complete = false;
            return Ok(());
        }
        let kind = match entry.file_type() {
            FileType::Unknown => {
                match rustix::fs::statat(frame.fd.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => FileType::from_raw_mode(st.st_mode),
                    Err(_) => continue,
                }
            }
            t => t,
        };
        match kind {
            FileType::Directory if descend => frame.pending.push(name.to_owned()),
            FileType::Directory => report.complete = false,
            FileType::RegularFile if is_staging_name(bytes) => {
                match reap(frame.fd.as_fd(), name, opts.older_than) {
                    Reap::Removed(n) => {
                        report.removed += 1;
                        report.bytes += n;
                    }
                    Reap::Busy => report.busy += 1,
                    Reap::Kept => {}
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_names() {
        for ok in [
            ".carapace-tmp-a-0123456789ab",
            ".carapace-tmp-shot.png-ffffffffffff",
            ".carapace-tmp-a-b-000000000000",
        ] {
            assert!(is_staging_name(ok.as_bytes()), "{ok}");
        }
        for bad in [
            ".carapace-tmp--0123456789ab",
            ".carapace-tmp-a-0123456789AB",
            ".carapace-tmp-a-0123456789a",
            ".carapace-tmp-a_0123456789ab",
            ".carapace-tmp-a-0123456789abc",
            "carapace-tmp-a-0123456789ab",
            "a.txt",
        ] {
            assert!(!is_staging_name(bad.as_bytes()), "{bad}");
        }
    }
}
