//! [`Root`]: a directory fd every operation is resolved beneath, and the read-side operations
//! (read, open, stat, list, subdirectories, modes). Writes live in `atomic_write.rs`,
//! removal and renames in `mutate.rs`.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{FsError, escape, from_errno};
use crate::meta::{DirEntryMeta, FileKind, FileMeta};
use crate::options::{
    HardlinkPolicy, Mechanism, ReadOptions, Resolver, SymlinkPolicy, VerifiedFile,
};
use crate::relpath::{self, Lexical};
use crate::resolve::{self, Denied, DirFd};

/// A directory pinned by an open fd. Every path given to its methods is relative and is
/// resolved beneath that fd, never through the host path again, so renaming or replacing the
/// host path after [`Root::open`] cannot redirect an operation.
#[derive(Debug)]
pub struct Root {
    pub(crate) fd: OwnedFd,
    pub(crate) host: PathBuf,
    pub(crate) mech: Mechanism,
}

impl Root {
    /// Opens `path` as a root with [`Resolver::Auto`].
    ///
    /// `path` is the operator's (config-given) host path: symlinks in it, including the final
    /// component, are followed once, here. Everything beneath is contained.
    pub fn open(path: &Path) -> Result<Root, FsError> {
        Root::open_with(path, Resolver::Auto)
    }

    /// Opens `path` as a root with an explicit resolver choice.
    pub fn open_with(path: &Path, resolver: Resolver) -> Result<Root, FsError> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::ACCESS | Errno::PERM => {
                let st = rustix::fs::stat(path).ok().map(|s| FileMeta::from_stat(&s));
                FsError::PermissionDenied {
                    path: path.to_path_buf(),
                    host_path: path.to_path_buf(),
                    op: "open root",
                    owner_uid: st.as_ref().map(|m| m.uid),
                    mode: st.map(|m| m.mode),
                    process_uid: process_uid(),
                }
            }
            Errno::NOTDIR => match rustix::fs::stat(path) {
                Ok(st) => FsError::NotADirectory {
                    path: path.to_path_buf(),
                    kind: FileMeta::from_stat(&st).kind,
                },
                Err(_) => FsError::NotFound {
                    path: path.to_path_buf(),
                },
            },
            e => from_errno("open root", path, e),
        })?;
        let mech = match resolver {
            Resolver::Auto if resolve::openat2_available(fd.as_fd()) => Mechanism::Openat2,
            Resolver::Auto | Resolver::Fallback => Mechanism::Fallback,
            Resolver::Openat2 if resolve::openat2_available(fd.as_fd()) => Mechanism::Openat2,
            Resolver::Openat2 => return Err(FsError::ResolverUnavailable("openat2")),
        };
        Ok(Root {
            fd,
            host: path.to_path_buf(),
            mech,
        })
    }

    /// Which resolver serves this root.
    pub fn mechanism(&self) -> Mechanism {
        self.mech
    }

    /// The host path the root was opened at (for messages; never used to resolve).
    pub fn host_path(&self) -> &Path {
        &self.host
    }

    /// The pinned directory fd.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// A second handle on the same directory (`dup`).
    pub fn try_clone(&self) -> Result<Root, FsError> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| io_error("dup", Path::new("."), e))?;
        Ok(Root {
            fd,
            host: self.host.clone(),
            mech: self.mech,
        })
    }

    /// A root for a directory beneath this one. A final symlink is refused; symlinked parents
    /// that stay inside are followed.
    pub fn open_subdir(&self, rel: &Path) -> Result<Root, FsError> {
        let comps = self.comps(rel)?;
        let fd = self.resolve(
            rel,
            &comps,
            OFlags::RDONLY | OFlags::DIRECTORY,
            false,
            "open directory",
        )?;
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

    /// Reads a whole regular file. With `max_bytes`, a file whose fstat size is over the limit
    /// is refused before reading and at most `max + 1` bytes are ever read.
    pub fn read(&self, rel: &Path, opts: &ReadOptions) -> Result<Vec<u8>, FsError> {
        let mut vf = self.open_file(rel, opts)?;
        read_capped(&mut vf.file, rel, vf.meta.size, opts.max_bytes)
    }

    /// Opens a regular file for streaming: `O_RDONLY | O_NONBLOCK | O_NOCTTY` (a FIFO or device
    /// never blocks the open), then fstat on the fd: not a regular file, too many links or over
    /// `max_bytes` are refused. The returned fd is the one that passed the checks.
    pub fn open_file(&self, rel: &Path, opts: &ReadOptions) -> Result<VerifiedFile, FsError> {
        let fd = self.resolve_fast(
            rel,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
            opts.symlinks == SymlinkPolicy::FollowInside,
            "open",
        )?;
        let st = rustix::fs::fstat(&fd).map_err(|e| from_errno("fstat", rel, e))?;
        let meta = FileMeta::from_stat(&st);
        if meta.kind != FileKind::File {
            return Err(FsError::NotRegularFile {
                path: rel.to_path_buf(),
                kind: meta.kind,
            });
        }
        if opts.hardlinks == HardlinkPolicy::Refuse && meta.nlink > 1 {
            return Err(FsError::HardlinkRefused {
                path: rel.to_path_buf(),
                nlink: meta.nlink,
            });
        }
        if let Some(limit) = opts.max_bytes
            && meta.size > limit
        {
            return Err(FsError::TooLarge {
                path: rel.to_path_buf(),
                size: Some(meta.size),
                limit,
            });
        }
        Ok(VerifiedFile {
            file: File::from(fd),
            meta,
            rel: rel.to_path_buf(),
        })
    }

    /// Metadata of the object at `rel`, lstat-style: a final symlink is reported as a symlink,
    /// not followed. `""`/`"."` is the root itself.
    pub fn stat(&self, rel: &Path) -> Result<FileMeta, FsError> {
        if relpath::is_single_name(rel) {
            // One normal component, not followed: fstatat on the root fd cannot leave it.
            return match rustix::fs::statat(&self.fd, rel, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => Ok(FileMeta::from_stat(&st)),
                Err(e) => Err(self.err("stat", rel, e)),
            };
        }
        let fd = self.resolve_fast(rel, OFlags::PATH, false, "stat")?;
        let st = rustix::fs::fstat(&fd).map_err(|e| from_errno("fstat", rel, e))?;
        Ok(FileMeta::from_stat(&st))
    }

    /// True when something (anything, including a dangling symlink) is at `rel`.
    pub fn exists(&self, rel: &Path) -> Result<bool, FsError> {
        match self.stat(rel) {
            Ok(_) => Ok(true),
            Err(FsError::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The entries of a directory, sorted by name, with lstat metadata (symlinks are listed as
    /// symlinks, never followed). A final symlink to a directory is refused.
    pub fn list(&self, rel: &Path) -> Result<Vec<DirEntryMeta>, FsError> {
        let comps = self.comps(rel)?;
        let fd = self.resolve(
            rel,
            &comps,
            OFlags::RDONLY | OFlags::DIRECTORY,
            false,
            "list",
        )?;
        let mut out = Vec::new();
        let dir = rustix::fs::Dir::read_from(&fd).map_err(|e| from_errno("list", rel, e))?;
        for entry in dir {
            let entry = entry.map_err(|e| from_errno("list", rel, e))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let st = match rustix::fs::statat(&fd, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Removed between getdents and fstatat.
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(from_errno("list", rel, e)),
            };
            out.push(DirEntryMeta {
                name: String::from_utf8_lossy(name).into_owned(),
                meta: FileMeta::from_stat(&st),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Sets the permission bits of the object at `rel` exactly (the umask plays no part). The
    /// object is pinned with an `O_PATH | O_NOFOLLOW` open first; a final symlink is refused,
    /// so is a non-directory with more than one hard link (its other names may be outside the
    /// root), and the mode is applied to that very inode (`/proc/self/fd`, or an fd re-open checked
    /// against the pinned inode when `/proc` is missing).
    pub fn set_mode(&self, rel: &Path, mode: u32) -> Result<(), FsError> {
        let comps = self.comps(rel)?;
        let pinned = self.resolve(rel, &comps, OFlags::PATH, false, "chmod")?;
        let st = rustix::fs::fstat(&pinned).map_err(|e| from_errno("fstat", rel, e))?;
        let meta = FileMeta::from_stat(&st);
        if meta.kind == FileKind::Symlink {
            return Err(FsError::SymlinkRefused {
                path: rel.to_path_buf(),
            });
        }
        // A mode belongs to the inode: chmod of a hardlinked file would also change its other
        // names, which may be outside the root.
        if meta.kind != FileKind::Dir && meta.nlink > 1 {
            return Err(FsError::HardlinkRefused {
                path: rel.to_path_buf(),
                nlink: meta.nlink,
            });
        }
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
        let pinned = self.resolve(rel, &comps, OFlags::PATH, false, "chown")?;
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
        rustix::fs::chownat(
            &pinned,
            "",
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            AtFlags::EMPTY_PATH,
        )
        .map_err(|e| self.err("chown", rel, e))
    }

    // ---- internals shared by every operation ----

    /// Lexical checks; refusals become typed errors.
    pub(crate) fn comps<'p>(&self, rel: &'p Path) -> Result<Vec<&'p OsStr>, FsError> {
        relpath::components(rel).map_err(|l| match l {
            Lexical::Nul => FsError::InvalidPath {
                path: rel.to_path_buf(),
                reason: "the path contains a NUL byte",
            },
            Lexical::TooLong => FsError::InvalidPath {
                path: rel.to_path_buf(),
                reason: "the path is longer than PATH_MAX",
            },
            Lexical::Absolute => escape(rel, &self.host, "absolute paths are not accepted"),
            Lexical::DotDot => escape(rel, &self.host, "`..` components are not accepted"),
        })
    }

    /// Opens `comps` beneath the root with the configured mechanism.
    pub(crate) fn resolve(
        &self,
        rel: &Path,
        comps: &[&OsStr],
        oflags: OFlags,
        follow_final: bool,
        op: &'static str,
    ) -> Result<OwnedFd, FsError> {
        resolve::open(self.mech, self.fd.as_fd(), comps, oflags, follow_final)
            .map_err(|d| self.denied_to_error(rel, comps, oflags, d, op))
    }

    /// [`Root::resolve`] without allocating when the path can go to `openat2` as is.
    pub(crate) fn resolve_fast(
        &self,
        rel: &Path,
        oflags: OFlags,
        follow_final: bool,
        op: &'static str,
    ) -> Result<OwnedFd, FsError> {
        if self.mech == Mechanism::Openat2 && relpath::is_plain(rel) {
            return crate::resolve_openat2::open_path(self.fd.as_fd(), rel, oflags, follow_final)
                .map_err(|d| match self.comps(rel) {
                    Ok(comps) => self.denied_to_error(rel, &comps, oflags, d, op),
                    Err(e) => e,
                });
        }
        let comps = self.comps(rel)?;
        self.resolve(rel, &comps, oflags, follow_final, op)
    }

    /// The directory holding the final component, and that component's name.
    ///
    /// The directory is opened `O_PATH` (enough for every `*at` call) unless `for_fsync`.
    pub(crate) fn parent<'p>(
        &self,
        rel: &Path,
        comps: &[&'p OsStr],
        op: &'static str,
        for_fsync: bool,
    ) -> Result<(DirFd<'_>, &'p OsStr), FsError> {
        let Some((name, parents)) = comps.split_last() else {
            return Err(FsError::InvalidPath {
                path: rel.to_path_buf(),
                reason: "the path names the root itself",
            });
        };
        if parents.is_empty() {
            return Ok((DirFd::Root(self.fd.as_fd()), name));
        }
        let access = if for_fsync {
            OFlags::RDONLY
        } else {
            OFlags::PATH
        };
        let fd = self.resolve(rel, parents, access | OFlags::DIRECTORY, true, op)?;
        Ok((DirFd::Owned(fd), name))
    }

    /// Maps an errno to a typed error; EACCES/EPERM get the owner and mode of the target.
    #[cold]
    pub(crate) fn err(&self, op: &'static str, rel: &Path, e: Errno) -> FsError {
        match e {
            Errno::ACCESS | Errno::PERM => self.permission_denied(op, rel),
            e => from_errno(op, rel, e),
        }
    }

    #[cold]
    fn denied_to_error(
        &self,
        rel: &Path,
        comps: &[&OsStr],
        oflags: OFlags,
        d: Denied,
        op: &'static str,
    ) -> FsError {
        match d {
            Denied::Escape(reason) => escape(rel, &self.host, reason),
            Denied::Symlink => FsError::SymlinkRefused {
                path: rel.to_path_buf(),
            },
            Denied::Errno(e @ (Errno::NOTDIR | Errno::NXIO | Errno::NODEV | Errno::OPNOTSUPP)) => {
                // Something is there but of the wrong kind: say what it is.
                match self.lstat_comps(comps) {
                    Some(m) if oflags.contains(OFlags::DIRECTORY) && m.kind != FileKind::Dir => {
                        FsError::NotADirectory {
                            path: rel.to_path_buf(),
                            kind: m.kind,
                        }
                    }
                    Some(m) if !oflags.contains(OFlags::DIRECTORY) && m.kind != FileKind::File => {
                        FsError::NotRegularFile {
                            path: rel.to_path_buf(),
                            kind: m.kind,
                        }
                    }
                    _ => from_errno(op, rel, e),
                }
            }
            Denied::Errno(e) => self.err(op, rel, e),
        }
    }

    /// lstat of `comps` through the resolver (parents followed inside), if visible.
    fn lstat_comps(&self, comps: &[&OsStr]) -> Option<FileMeta> {
        let fd = resolve::open(self.mech, self.fd.as_fd(), comps, OFlags::PATH, false).ok()?;
        rustix::fs::fstat(&fd)
            .ok()
            .map(|st| FileMeta::from_stat(&st))
    }

    /// PERMISSION_DENIED with the facts: owner and mode via an `O_PATH` open + fstat (which
    /// needs no permission on the file itself), carapace's uid.
    #[cold]
    fn permission_denied(&self, op: &'static str, rel: &Path) -> FsError {
        let meta = relpath::components(rel)
            .ok()
            .and_then(|c| self.lstat_comps(&c));
        FsError::PermissionDenied {
            path: rel.to_path_buf(),
            host_path: self.host.join(rel),
            op,
            owner_uid: meta.as_ref().map(|m| m.uid),
            mode: meta.map(|m| m.mode),
            process_uid: process_uid(),
        }
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

pub(crate) fn io_error(op: &'static str, rel: &Path, e: std::io::Error) -> FsError {
    match e.raw_os_error() {
        Some(n) if n == Errno::NOSPC.raw_os_error() || n == Errno::IO.raw_os_error() => {
            FsError::Io {
                op,
                path: rel.to_path_buf(),
                source: e,
            }
        }
        Some(n) => from_errno(op, rel, Errno::from_raw_os_error(n)),
        None => FsError::Io {
            op,
            path: rel.to_path_buf(),
            source: e,
        },
    }
}

/// Reads all of `file`, at most `max + 1` bytes when a cap is given.
pub(crate) fn read_capped(
    file: &mut File,
    rel: &Path,
    size_hint: u64,
    max: Option<u64>,
) -> Result<Vec<u8>, FsError> {
    const PREALLOC_CAP: u64 = 64 << 20;
    let want = match max {
        Some(m) => size_hint.min(m),
        None => size_hint,
    }
    .min(PREALLOC_CAP);
    let mut buf = Vec::with_capacity(usize::try_from(want).unwrap_or(0) + 1);
    match max {
        Some(m) => {
            file.by_ref()
                .take(m.saturating_add(1))
                .read_to_end(&mut buf)
                .map_err(|e| io_error("read", rel, e))?;
            if buf.len() as u64 > m {
                return Err(FsError::TooLarge {
                    path: rel.to_path_buf(),
                    size: None,
                    limit: m,
                });
            }
        }
        None => {
            file.read_to_end(&mut buf)
                .map_err(|e| io_error("read", rel, e))?;
        }
    }
    Ok(buf)
}
