//! Atomic, mode-exact writes (docs/fs.md): stage in the same directory with `O_EXCL`, write,
//! **fchmod the fd to the decided mode**, fsync when durable, `renameat` over the target
//! (`RENAME_NOREPLACE` for no-clobber create), fsync the directory when durable.
//!
//! The mode is decided here and nowhere else:
//! - `force_mode` when given (secrets: `0o600`), else
//! - the existing file's mode when replacing (set-uid/set-gid bits dropped), else
//! - `new_file_mode` (default `0o644`).
//!
//! The staging file is created `0o600` and reaches the decided mode through `fchmod` before it
//! gets its final name, so no process umask can change what appears at the path. A failed write
//! unlinks its staging file; a killed writer leaves one behind, which `sweep_staging` removes
//! (the writer's `flock` on it tells the sweeper it is alive).
//!
//! A no-clobber create uses an unnamed `O_TMPFILE` instead where the filesystem has it, and
//! publishes it with `linkat` (which refuses an existing name atomically): no staging name
//! exists at any time, so a killed creator leaves nothing at all.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FlockOperation, Gid, Mode, OFlags, RenameFlags, Uid};
use rustix::io::Errno;

use crate::error::{FsError, escape};
use crate::meta::{FileKind, FileMeta};
use crate::options::{SymlinkPolicy, WriteOptions, WriteOutcome};
use crate::root::{Root, io_error, process_uid};

/// Prefix of every staging file name.
pub const STAGING_PREFIX: &str = ".carapace-tmp-";

/// Longest part of the target name kept in a staging name (NAME_MAX is 255).
const STAGING_NAME_KEEP: usize = 200;

/// Symlinks followed for a `FollowInside` write before giving up.
const MAX_WRITE_LINKS: u32 = 40;

/// Where the content comes from.
pub(crate) enum Source<'a> {
    Bytes(&'a [u8]),
    Reader(&'a mut dyn Read),
}

/// Replace (`no_clobber == false`) or create.
pub(crate) fn write(
    root: &Root,
    rel: &Path,
    src: Source<'_>,
    opts: &WriteOptions,
    no_clobber: bool,
) -> Result<WriteOutcome, FsError> {
    if let (Source::Bytes(b), Some(limit)) = (&src, opts.max_bytes)
        && b.len() as u64 > limit
    {
        return Err(FsError::TooLarge {
            path: rel.to_path_buf(),
            size: Some(b.len() as u64),
            limit,
        });
    }
    match src {
        // Content in memory can be written again: the first attempt stages without a lock; if
        // a sweep removed that staging file before the rename, the write starts over under a
        // new name, locked this time (a sweep cannot take a locked file).
        Source::Bytes(b) => {
            for lock in [false, true] {
                let target = locate(root, rel, opts, no_clobber)?;
                match commit(root, rel, target, Source::Bytes(b), opts, no_clobber, lock)? {
                    Committed::Done(o) => return Ok(o),
                    Committed::StagingVanished => continue,
                }
            }
            Err(staging_vanished(root, rel))
        }
        // A stream cannot be replayed: its staging file is locked against sweeps from the start.
        src @ Source::Reader(_) => {
            let target = locate(root, rel, opts, no_clobber)?;
            match commit(root, rel, target, src, opts, no_clobber, true)? {
                Committed::Done(o) => Ok(o),
                Committed::StagingVanished => Err(staging_vanished(root, rel)),
            }
        }
    }
}

/// How a commit ended when it did not fail.
enum Committed {
    Done(WriteOutcome),
    /// The staging file was gone at the rename (a sweep took it): nothing was published.
    StagingVanished,
}

#[cold]
fn staging_vanished(root: &Root, rel: &Path) -> FsError {
    root.err("rename", rel, Errno::NOENT)
}

/// The directory and name a write lands at, and what is there now.
struct Located<'r> {
    parent: crate::resolve::DirFd<'r>,
    name: OsString,
    existing: Option<FileMeta>,
}

/// Finds the final directory and name, following a final symlink only under
/// [`SymlinkPolicy::FollowInside`] (its target is re-resolved beneath the root).
fn locate<'r>(
    root: &'r Root,
    rel: &Path,
    opts: &WriteOptions,
    no_clobber: bool,
) -> Result<Located<'r>, FsError> {
    let mut current: PathBuf = rel.to_path_buf();
    let mut links = 0u32;
    loop {
        let comps = root.comps(&current)?;
        let (parent, name) = root.parent(rel, &comps, "write", opts.durable)?;
        let existing = match rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Some(FileMeta::from_stat(&st)),
            Err(Errno::NOENT) => None,
            Err(e) => return Err(root.err("write", rel, e)),
        };
        let Some(meta) = existing else {
            return Ok(Located {
                parent,
                name: name.to_os_string(),
                existing: None,
            });
        };
        if no_clobber {
            return Err(FsError::AlreadyExists {
                path: rel.to_path_buf(),
            });
        }
        match meta.kind {
            FileKind::File => {
                return Ok(Located {
                    parent,
                    name: name.to_os_string(),
                    existing: Some(meta),
                });
            }
            FileKind::Symlink if opts.symlinks == SymlinkPolicy::FollowInside => {
                links += 1;
                if links > MAX_WRITE_LINKS {
                    return Err(escape(rel, &root.host, "too many levels of symlinks"));
                }
                let target = rustix::fs::readlinkat(&parent, name, Vec::new())
                    .map_err(|e| root.err("readlink", rel, e))?;
                current = join_link(root, rel, &comps[..comps.len() - 1], target.as_bytes())?;
            }
            FileKind::Symlink => {
                return Err(FsError::SymlinkRefused {
                    path: rel.to_path_buf(),
                });
            }
            kind => {
                return Err(FsError::NotRegularFile {
                    path: rel.to_path_buf(),
                    kind,
                });
            }
        }
    }
}

/// `dir/target`, normalised lexically: `..` pops a component, popping past the root is an
/// escape, an absolute target is an escape. The result is resolved beneath the root again, so
/// this only decides *which* path inside the root a link names, never whether it is inside.
fn join_link(root: &Root, rel: &Path, dir: &[&OsStr], target: &[u8]) -> Result<PathBuf, FsError> {
    if target.first() == Some(&b'/') {
        return Err(escape(
            rel,
            &root.host,
            "a symlink points to an absolute path",
        ));
    }
    let mut parts: Vec<&[u8]> = dir.iter().map(|c| c.as_bytes()).collect();
    for part in target.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if parts.pop().is_none() {
                    return Err(escape(
                        rel,
                        &root.host,
                        "`..` in a symlink leads above the root",
                    ));
                }
            }
            p => parts.push(p),
        }
    }
    let mut out = PathBuf::new();
    for p in parts {
        out.push(OsStr::from_bytes(p));
    }
    Ok(out)
}

/// Stages, writes, fchmods, (fsyncs), renames.
fn commit(
    root: &Root,
    rel: &Path,
    at: Located<'_>,
    src: Source<'_>,
    opts: &WriteOptions,
    no_clobber: bool,
    lock: bool,
) -> Result<Committed, FsError> {
    let mode = opts.force_mode.unwrap_or(match &at.existing {
        // Replace keeps the mode; set-uid/set-gid never survive new content.
        Some(m) => m.mode & !0o6000,
        None => opts.new_file_mode,
    }) & 0o7777;

    // A create publishes an anonymous O_TMPFILE with linkat (no-clobber by nature, and a crash
    // leaves nothing behind); a replace, or a filesystem without O_TMPFILE, uses a named
    // staging file and renameat.
    let anonymous = if no_clobber {
        create_anonymous(&at.parent).map_err(|e| root.err("write", rel, e))?
    } else {
        None
    };
    let mut guard = StagingGuard {
        dir: at.parent.as_fd(),
        name: None,
    };
    let fd = match anonymous {
        Some(fd) => fd,
        None => {
            let (staging, fd) = create_staging(&at.parent, &at.name, lock)
                .map_err(|e| root.err("write", rel, e))?;
            guard.name = Some(staging);
            fd
        }
    };
    let mut file = File::from(fd);
    let bytes = match src {
        Source::Bytes(b) => {
            file.write_all(b).map_err(|e| io_error("write", rel, e))?;
            b.len() as u64
        }
        Source::Reader(r) => copy_capped(r, &mut file, rel, opts.max_bytes)?,
    };
    // Ownership when carapace runs as root: a replace keeps the file's owner, a new file gets
    // the owner of its directory (a sandbox's directory belongs to the unprivileged uid the
    // sandbox runs as, so what the tools write there stays writable by the sandbox). Best
    // effort: failure (no CAP_CHOWN in a user namespace) leaves the file owned by us.
    let owner = match &at.existing {
        Some(m) if (m.uid != 0 || m.gid != 0) && process_uid() == 0 => Some((m.uid, m.gid)),
        Some(_) => None,
        None => crate::root::inherited_owner(&at.parent),
    };
    if let Some((uid, gid)) = owner {
        let _ = rustix::fs::fchown(&file, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
    }
    rustix::fs::fchmod(&file, Mode::from_raw_mode(mode)).map_err(|e| root.err("chmod", rel, e))?;
    if opts.durable {
        rustix::fs::fsync(&file).map_err(|e| root.err("fsync", rel, e))?;
    }

    let published = match guard.name.as_deref() {
        None => {
            // linkat through /proc/self/fd: AT_EMPTY_PATH would need CAP_DAC_READ_SEARCH.
            let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
            rustix::fs::linkat(
                rustix::fs::CWD,
                proc_path.as_str(),
                &at.parent,
                &at.name,
                AtFlags::SYMLINK_FOLLOW,
            )
        }
        Some(staging) => {
            if no_clobber {
                rename_noreplace(&at.parent, staging, &at.name)
            } else {
                rustix::fs::renameat(&at.parent, staging, &at.parent, &at.name)
            }
        }
    };
    drop(file);
    // ENOENT from the rename while the parent is still there: a sweep took the staging file.
    let vanished = |staging: &OsStr| {
        rustix::fs::statat(&at.parent, staging, AtFlags::SYMLINK_NOFOLLOW).is_err()
    };
    match published {
        Ok(()) => guard.name = None,
        Err(Errno::NOENT) if guard.name.as_deref().is_some_and(vanished) => {
            guard.name = None;
            return Ok(Committed::StagingVanished);
        }
        Err(Errno::EXIST) => {
            return Err(FsError::AlreadyExists {
                path: rel.to_path_buf(),
            });
        }
        Err(Errno::ISDIR) => {
            return Err(FsError::NotRegularFile {
                path: rel.to_path_buf(),
                kind: FileKind::Dir,
            });
        }
        Err(e) => return Err(root.err("rename", rel, e)),
    }
    if opts.durable {
        rustix::fs::fsync(&at.parent).map_err(|e| root.err("fsync directory", rel, e))?;
    }
    Ok(Committed::Done(WriteOutcome {
        bytes,
        mode,
        created: at.existing.is_none(),
    }))
}

/// Test switch: make `create` take the staging-file route (see `testing::force_staging`).
pub(crate) static FORCE_STAGING: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// An unnamed `O_TMPFILE` in `dir`, or `None` when the filesystem (or a missing `/proc`, which
/// the publication needs) rules it out.
fn create_anonymous(dir: &impl AsFd) -> Result<Option<OwnedFd>, Errno> {
    if FORCE_STAGING.load(std::sync::atomic::Ordering::Relaxed) {
        return Ok(None);
    }
    static PROC_FD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if !*PROC_FD.get_or_init(|| Path::new("/proc/self/fd").is_dir()) {
        return Ok(None);
    }
    match rustix::fs::openat(
        dir,
        ".",
        OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL | Errno::NOSYS) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `renameat2(RENAME_NOREPLACE)`, or `linkat` + `unlinkat` on filesystems without it (both
/// refuse atomically when the target exists).
pub(crate) fn rename_noreplace(dir: &impl AsFd, from: &OsStr, to: &OsStr) -> Result<(), Errno> {
    match rustix::fs::renameat_with(dir, from, dir, to, RenameFlags::NOREPLACE) {
        Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
            rustix::fs::linkat(dir, from, dir, to, AtFlags::empty())?;
            let _ = rustix::fs::unlinkat(dir, from, AtFlags::empty());
            Ok(())
        }
        r => r,
    }
}

/// Creates `.carapace-tmp-<name>-<random>` with `O_EXCL | O_NOFOLLOW`, mode `0o600`. With
/// `lock`, takes a shared `flock` on it, held until the fd is closed: that lock is how a sweeper
/// tells this live writer's file from a dead writer's leftover (`sweep.rs`). If a sweep came
/// between our create and our lock (it holds the lock, or it already removed the name), the
/// name is given up and another one is tried; a filesystem without `flock` stages unlocked (the sweeper then goes by age).
/// Writers of in-memory content first stage unlocked (one syscall less on the hot path): a
/// sweep may take that staging file, and they write again, locked (`write`).
pub(crate) fn create_staging(
    dir: &impl AsFd,
    name: &OsStr,
    lock: bool,
) -> Result<(OsString, OwnedFd), Errno> {
    for _ in 0..32 {
        let candidate = staging_name(name);
        match rustix::fs::openat(
            dir,
            &candidate,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) if !lock => return Ok((candidate, fd)),
            Ok(fd) => match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockShared) {
                // A sweeper holds it and will remove it.
                Err(Errno::WOULDBLOCK) => continue,
                // Locked: no sweep can take it from now on. But one may have taken it already,
                // between our create and our lock: then the name is gone (or another file's).
                Ok(()) if !names_fd(dir, &candidate, &fd) => continue,
                _ => return Ok((candidate, fd)),
            },
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Errno::EXIST)
}

/// True when `name` in `dir` is the file open at `fd`.
fn names_fd(dir: &impl AsFd, name: &OsStr, fd: &OwnedFd) -> bool {
    match (
        rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW),
        rustix::fs::fstat(fd),
    ) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

/// A fresh staging name for `name`: `.carapace-tmp-<name≤200 bytes>-<12 random hex>` (the shape
/// `sweep.rs` recognises).
pub(crate) fn staging_name(name: &OsStr) -> OsString {
    let kept = truncate_name(name.as_bytes());
    let mut s = Vec::with_capacity(STAGING_PREFIX.len() + kept.len() + 14);
    s.extend_from_slice(STAGING_PREFIX.as_bytes());
    s.extend_from_slice(kept);
    s.extend_from_slice(format!("-{:012x}", fastrand::u64(..) & 0xffff_ffff_ffff).as_bytes());
    OsString::from_vec(s)
}

/// At most [`STAGING_NAME_KEEP`] bytes of the name, cut on a UTF-8 boundary when it is UTF-8.
fn truncate_name(name: &[u8]) -> &[u8] {
    if name.len() <= STAGING_NAME_KEEP {
        return name;
    }
    let mut end = STAGING_NAME_KEEP;
    if std::str::from_utf8(name).is_ok() {
        while end > 0 && (name[end] & 0b1100_0000) == 0b1000_0000 {
            end -= 1;
        }
    }
    &name[..end]
}

/// Copies `src` into `dst`, refusing more than `max` bytes.
fn copy_capped(
    src: &mut dyn Read,
    dst: &mut File,
    rel: &Path,
    max: Option<u64>,
) -> Result<u64, FsError> {
    let limit = max.map_or(u64::MAX, |m| m.saturating_add(1));
    let n = std::io::copy(&mut src.take(limit), dst).map_err(|e| io_error("write", rel, e))?;
    if let Some(m) = max
        && n > m
    {
        return Err(FsError::TooLarge {
            path: rel.to_path_buf(),
            size: None,
            limit: m,
        });
    }
    Ok(n)
}

/// Unlinks the staging file unless the rename consumed it.
struct StagingGuard<'a> {
    dir: std::os::fd::BorrowedFd<'a>,
    name: Option<OsString>,
}

impl Drop for StagingGuard<'_> {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            let _ = rustix::fs::unlinkat(self.dir, &name, AtFlags::empty());
        }
    }
}
