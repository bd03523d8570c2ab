//! [`FsError`]: every refusal and failure of the safe filesystem layer, with its docs/errors.md code
//! and the facts behind it.
//!
//! Escape attempts are built in exactly one place, [`escape`], so there is one message, one
//! code and one behaviour to grep for and test.

use std::path::{Path, PathBuf};

use carapace_policy::{CarapaceError, ErrorCode, mode_string};
use rustix::io::Errno;
use serde_json::{Map, Value};

use crate::meta::FileKind;

/// A typed filesystem error. `path` is always the path as the caller gave it (relative to the
/// root); `root` is the host path the [`crate::Root`] was opened at.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FsError {
    /// The path is malformed: empty where a file is required, a NUL byte, too long.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The path as given.
        path: PathBuf,
        /// Why it is invalid.
        reason: &'static str,
    },
    /// The path resolves (or tries to resolve) outside the root. Built only by [`escape`].
    #[error("path {path:?} is outside the root: {reason}")]
    OutsideRoot {
        /// The path as given.
        path: PathBuf,
        /// The host root.
        root: PathBuf,
        /// What kind of escape: `..`, absolute path, symlink leading out, magic link.
        reason: &'static str,
    },
    /// A symlink was met where the call's [`crate::SymlinkPolicy`] allows none.
    #[error("{path:?} is a symlink, which is refused here")]
    SymlinkRefused {
        /// The path as given.
        path: PathBuf,
    },
    /// A hardlinked file (nlink > 1) was refused by [`crate::HardlinkPolicy::Refuse`].
    #[error("{path:?} has {nlink} hard links, which is refused here")]
    HardlinkRefused {
        /// The path as given.
        path: PathBuf,
        /// The link count seen by fstat.
        nlink: u64,
    },
    /// A FIFO, socket, device or directory where a regular file is required.
    #[error("{path:?} is a {kind}, not a regular file")]
    NotRegularFile {
        /// The path as given.
        path: PathBuf,
        /// What it is.
        kind: FileKind,
    },
    /// A directory was required and something else is there.
    #[error("{path:?} is a {kind}, not a directory")]
    NotADirectory {
        /// The path as given.
        path: PathBuf,
        /// What it is.
        kind: FileKind,
    },
    /// A non-recursive remove of a directory that has entries.
    #[error("directory {path:?} is not empty")]
    DirectoryNotEmpty {
        /// The path as given.
        path: PathBuf,
    },
    /// Nothing at that path (or a parent is missing).
    #[error("{path:?} does not exist")]
    NotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// No-clobber create or rename found something already there.
    #[error("{path:?} already exists")]
    AlreadyExists {
        /// The path as given.
        path: PathBuf,
    },
    /// Larger than the limit of the call. `size` is known when fstat said so; when the limit
    /// was hit while streaming it is `None` (at least `limit + 1` bytes were seen).
    #[error("{path:?} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The path as given.
        path: PathBuf,
        /// The size, when known.
        size: Option<u64>,
        /// The limit in bytes.
        limit: u64,
    },
    /// The operating system refused access (EACCES / EPERM).
    #[error("permission denied for {path:?} ({op})")]
    PermissionDenied {
        /// The path as given.
        path: PathBuf,
        /// The host path, for the operator.
        host_path: PathBuf,
        /// The operation that was refused.
        op: &'static str,
        /// The file's owner, when an `O_PATH` open + fstat could see it.
        owner_uid: Option<u32>,
        /// The file's permission bits, when visible.
        mode: Option<u32>,
        /// carapace's effective uid.
        process_uid: u32,
    },
    /// A line window (`VerifiedFile::read_lines`) whose first line alone is longer than the
    /// byte cap: nothing of it fits.
    #[error("line {line} of {path:?} is longer than the limit of {limit} bytes")]
    LineTooLong {
        /// The path as given.
        path: PathBuf,
        /// The 1-based line number.
        line: u64,
        /// The byte cap.
        limit: u64,
    },
    /// A line window that starts further into the file than the scan budget reaches.
    #[error("line {line} of {path:?} is beyond the first {scanned} bytes, the most one read scans")]
    ScanLimit {
        /// The path as given.
        path: PathBuf,
        /// The line the window was to start at.
        line: u64,
        /// Bytes scanned before giving up (the budget).
        scanned: u64,
    },
    /// A bounded operation (recursive remove) met more than its limit.
    #[error("{path:?} has more than {limit} entries to remove")]
    TooManyEntries {
        /// The path as given.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// The requested resolution mechanism is not available on this kernel.
    #[error("resolver {0} is not available on this system")]
    ResolverUnavailable(&'static str),
    /// Any other I/O failure: a bug or an environment problem (disk full, EIO...).
    #[error("{op} {path:?} failed: {source}")]
    Io {
        /// The operation.
        op: &'static str,
        /// The path as given.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl FsError {
    /// The path the error names (as the caller gave it), if it names one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            FsError::InvalidPath { path, .. }
            | FsError::OutsideRoot { path, .. }
            | FsError::SymlinkRefused { path }
            | FsError::HardlinkRefused { path, .. }
            | FsError::NotRegularFile { path, .. }
            | FsError::NotADirectory { path, .. }
            | FsError::DirectoryNotEmpty { path }
            | FsError::NotFound { path }
            | FsError::AlreadyExists { path }
            | FsError::TooLarge { path, .. }
            | FsError::LineTooLong { path, .. }
            | FsError::ScanLimit { path, .. }
            | FsError::PermissionDenied { path, .. }
            | FsError::TooManyEntries { path, .. }
            | FsError::Io { path, .. } => Some(path),
            FsError::ResolverUnavailable(_) => None,
        }
    }

    /// The same error naming `shown` instead of the path given to the [`crate::Root`]: callers
    /// that map their own paths to a root (the tools map `/workspace/a.txt` to `a.txt` beneath
    /// a mount) report the path their caller used. Host-side facts (`root`, `hostPath`) stay.
    pub fn with_path(mut self, shown: impl Into<PathBuf>) -> FsError {
        let shown = shown.into();
        match &mut self {
            FsError::InvalidPath { path, .. }
            | FsError::OutsideRoot { path, .. }
            | FsError::SymlinkRefused { path }
            | FsError::HardlinkRefused { path, .. }
            | FsError::NotRegularFile { path, .. }
            | FsError::NotADirectory { path, .. }
            | FsError::DirectoryNotEmpty { path }
            | FsError::NotFound { path }
            | FsError::AlreadyExists { path }
            | FsError::TooLarge { path, .. }
            | FsError::LineTooLong { path, .. }
            | FsError::ScanLimit { path, .. }
            | FsError::PermissionDenied { path, .. }
            | FsError::TooManyEntries { path, .. }
            | FsError::Io { path, .. } => *path = shown,
            FsError::ResolverUnavailable(_) => {}
        }
        self
    }
}

/// The one constructor of [`FsError::OutsideRoot`]. Cold: an escape attempt is never the
/// fast path.
#[cold]
#[inline(never)]
pub(crate) fn escape(path: &Path, root: &Path, reason: &'static str) -> FsError {
    FsError::OutsideRoot {
        path: path.to_path_buf(),
        root: root.to_path_buf(),
        reason,
    }
}

/// Maps an errno with no more specific meaning to an [`FsError`]. `EACCES`/`EPERM` are not
/// handled here (they need the file's owner and mode, see `Root::denied`).
#[cold]
pub(crate) fn from_errno(op: &'static str, path: &Path, e: Errno) -> FsError {
    let path = path.to_path_buf();
    match e {
        Errno::NOENT => FsError::NotFound { path },
        // A parent component is not a directory: nothing can exist at that path.
        Errno::NOTDIR => FsError::NotFound { path },
        Errno::EXIST => FsError::AlreadyExists { path },
        Errno::NAMETOOLONG => FsError::InvalidPath {
            path,
            reason: "a component or the whole path is too long",
        },
        Errno::NOTEMPTY => FsError::DirectoryNotEmpty { path },
        _ => FsError::Io {
            op,
            path,
            source: std::io::Error::from_raw_os_error(e.raw_os_error()),
        },
    }
}

/// The code of an I/O error the environment caused (full disk, read-only filesystem, a
/// failing device, no descriptors left); `None` for everything else, which stays `INTERNAL`.
/// The one place carapace maps an OS error to an environment code: every crate that meets an
/// `io::Error` outside carapace-fs (spawning, sockets) asks here too.
pub fn environment_code(e: &std::io::Error) -> Option<ErrorCode> {
    let n = e.raw_os_error()?;
    let is = |x: Errno| n == x.raw_os_error();
    if is(Errno::NOSPC) || is(Errno::DQUOT) {
        Some(ErrorCode::StorageFull)
    } else if is(Errno::ROFS) {
        Some(ErrorCode::ReadOnlyFilesystem)
    } else if is(Errno::IO) {
        Some(ErrorCode::IoError)
    } else if is(Errno::MFILE) || is(Errno::NFILE) || is(Errno::NOMEM) {
        Some(ErrorCode::ResourceExhausted)
    } else {
        None
    }
}

/// The symbolic name of the environment errors [`environment_code`] knows (`ENOSPC`, ...).
pub fn errno_name(e: &std::io::Error) -> Option<&'static str> {
    let n = e.raw_os_error()?;
    [
        (Errno::NOSPC, "ENOSPC"),
        (Errno::DQUOT, "EDQUOT"),
        (Errno::ROFS, "EROFS"),
        (Errno::IO, "EIO"),
        (Errno::MFILE, "EMFILE"),
        (Errno::NFILE, "ENFILE"),
        (Errno::NOMEM, "ENOMEM"),
        (Errno::NOENT, "ENOENT"),
        (Errno::NOTDIR, "ENOTDIR"),
    ]
    .into_iter()
    .find(|(x, _)| x.raw_os_error() == n)
    .map(|(_, name)| name)
}

impl CarapaceError for FsError {
    fn code(&self) -> ErrorCode {
        match self {
            FsError::InvalidPath { .. } => ErrorCode::BadRequest,
            FsError::OutsideRoot { .. } => ErrorCode::PathOutsideRoot,
            FsError::SymlinkRefused { .. } => ErrorCode::SymlinkRefused,
            FsError::HardlinkRefused { .. } => ErrorCode::HardlinkRefused,
            FsError::NotRegularFile { .. } => ErrorCode::NotRegularFile,
            FsError::NotADirectory { .. } => ErrorCode::BadRequest,
            FsError::DirectoryNotEmpty { .. } => ErrorCode::BadRequest,
            FsError::NotFound { .. } => ErrorCode::NotFound,
            FsError::AlreadyExists { .. } => ErrorCode::AlreadyExists,
            FsError::TooLarge { .. } => ErrorCode::TooLarge,
            FsError::TooManyEntries { .. } => ErrorCode::TooLarge,
            FsError::LineTooLong { .. } | FsError::ScanLimit { .. } => ErrorCode::TooLarge,
            FsError::PermissionDenied { .. } => ErrorCode::PermissionDenied,
            FsError::ResolverUnavailable(_) => ErrorCode::Internal,
            FsError::Io { source, .. } => environment_code(source).unwrap_or(ErrorCode::Internal),
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            FsError::OutsideRoot { .. } => {
                Some("use a path relative to the workspace that stays inside it".into())
            }
            FsError::SymlinkRefused { .. } => {
                Some("name the file the link points to instead of the link".into())
            }
            FsError::HardlinkRefused { .. } => {
                Some("copy the file instead of hard-linking it".into())
            }
            FsError::TooLarge { .. } => {
                Some("read a window of the file (offset/limit) or raise the limit".into())
            }
            FsError::Io { source, path, .. } => match environment_code(source) {
                Some(ErrorCode::StorageFull) => Some(format!(
                    "the filesystem holding {} is full; free space (or raise the quota) and retry",
                    path.display()
                )),
                Some(ErrorCode::ReadOnlyFilesystem) => Some(
                    "the filesystem is mounted read-only; remount it read-write or use a writable directory"
                        .into(),
                ),
                Some(ErrorCode::IoError) => Some(
                    "the device reported an I/O error; check the disk (dmesg) before retrying"
                        .into(),
                ),
                Some(ErrorCode::ResourceExhausted) => Some(
                    "out of file descriptors or memory; raise `ulimit -n` or lower the concurrency"
                        .into(),
                ),
                _ => None,
            },
            FsError::LineTooLong { .. } => Some(
                "the line alone is over the cap; read it in byte ranges (e.g. `head -c`, `dd`) instead of by lines"
                    .into(),
            ),
            FsError::ScanLimit { .. } => Some(
                "extract the lines with a command (e.g. `sed -n 'N,Mp'`, `tail -n`) instead of reading that deep by line number"
                    .into(),
            ),
            FsError::PermissionDenied {
                owner_uid, mode, ..
            } => Some(match (owner_uid, mode) {
                (Some(uid), Some(m)) => format!(
                    "the file is owned by uid {uid} with mode {}; chmod/chown it so carapace can access it",
                    mode_string(*m)
                ),
                _ => "check the ownership and mode of the file and its parent directories".into(),
            }),
            _ => None,
        }
    }

    fn details(&self) -> Map<String, Value> {
        let mut d = Map::new();
        let mut put = |k: &str, v: Value| {
            d.insert(k.to_string(), v);
        };
        let p = |p: &Path| Value::from(p.to_string_lossy().into_owned());
        match self {
            FsError::InvalidPath { path, reason } => {
                put("path", p(path));
                put("reason", (*reason).into());
            }
            FsError::OutsideRoot { path, root, reason } => {
                put("path", p(path));
                put("root", p(root));
                put("reason", (*reason).into());
            }
            FsError::SymlinkRefused { path }
            | FsError::NotFound { path }
            | FsError::AlreadyExists { path }
            | FsError::DirectoryNotEmpty { path } => put("path", p(path)),
            FsError::HardlinkRefused { path, nlink } => {
                put("path", p(path));
                put("nlink", (*nlink).into());
            }
            FsError::NotRegularFile { path, kind } | FsError::NotADirectory { path, kind } => {
                put("path", p(path));
                put("kind", kind.as_str().into());
            }
            FsError::TooLarge { path, size, limit } => {
                put("path", p(path));
                if let Some(s) = size {
                    put("size", (*s).into());
                }
                put("limit", (*limit).into());
            }
            FsError::TooManyEntries { path, limit } => {
                put("path", p(path));
                put("limit", (*limit).into());
            }
            FsError::LineTooLong { path, line, limit } => {
                put("path", p(path));
                put("line", (*line).into());
                put("limit", (*limit).into());
            }
            FsError::ScanLimit {
                path,
                line,
                scanned,
            } => {
                put("path", p(path));
                put("line", (*line).into());
                put("scanned", (*scanned).into());
            }
            FsError::PermissionDenied {
                path,
                host_path,
                op,
                owner_uid,
                mode,
                process_uid,
            } => {
                put("path", p(path));
                put("hostPath", p(host_path));
                put("op", (*op).into());
                if let Some(u) = owner_uid {
                    put("ownerUid", (*u).into());
                }
                if let Some(m) = mode {
                    put("mode", mode_string(*m).into());
                }
                put("processUid", (*process_uid).into());
            }
            FsError::ResolverUnavailable(r) => put("resolver", (*r).into()),
            FsError::Io { op, path, source } => {
                put("path", p(path));
                put("op", (*op).into());
                put("osError", source.to_string().into());
                if let Some(name) = errno_name(source) {
                    put("errno", name.into());
                }
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn p() -> PathBuf {
        PathBuf::from("media/shot.png")
    }

    #[test]
    fn codes_and_facts() {
        let cases: Vec<(FsError, ErrorCode)> = vec![
            (
                FsError::InvalidPath {
                    path: p(),
                    reason: "x",
                },
                ErrorCode::BadRequest,
            ),
            (
                escape(&p(), Path::new("/ws"), "`..`"),
                ErrorCode::PathOutsideRoot,
            ),
            (
                FsError::SymlinkRefused { path: p() },
                ErrorCode::SymlinkRefused,
            ),
            (
                FsError::HardlinkRefused {
                    path: p(),
                    nlink: 2,
                },
                ErrorCode::HardlinkRefused,
            ),
            (
                FsError::NotRegularFile {
                    path: p(),
                    kind: FileKind::Fifo,
                },
                ErrorCode::NotRegularFile,
            ),
            (
                FsError::NotADirectory {
                    path: p(),
                    kind: FileKind::File,
                },
                ErrorCode::BadRequest,
            ),
            (
                FsError::DirectoryNotEmpty { path: p() },
                ErrorCode::BadRequest,
            ),
            (FsError::NotFound { path: p() }, ErrorCode::NotFound),
            (
                FsError::AlreadyExists { path: p() },
                ErrorCode::AlreadyExists,
            ),
            (
                FsError::TooLarge {
                    path: p(),
                    size: Some(11),
                    limit: 10,
                },
                ErrorCode::TooLarge,
            ),
            (
                FsError::TooManyEntries {
                    path: p(),
                    limit: 10,
                },
                ErrorCode::TooLarge,
            ),
            (
                FsError::PermissionDenied {
                    path: p(),
                    host_path: PathBuf::from("/ws/media/shot.png"),
                    op: "open",
                    owner_uid: Some(1000),
                    mode: Some(0o100600),
                    process_uid: 0,
                },
                ErrorCode::PermissionDenied,
            ),
            (FsError::ResolverUnavailable("openat2"), ErrorCode::Internal),
            (
                from_errno("write", &p(), Errno::NOSPC),
                ErrorCode::StorageFull,
            ),
            (from_errno("open", &p(), Errno::NOENT), ErrorCode::NotFound),
            (
                from_errno("open", &p(), Errno::NAMETOOLONG),
                ErrorCode::BadRequest,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(e.code(), code, "{e}");
            let env = e.to_envelope();
            assert!(!env.message.is_empty());
            if !matches!(e, FsError::ResolverUnavailable(_)) {
                assert_eq!(env.details["path"], "media/shot.png", "{e}");
            }
        }
        let e = FsError::PermissionDenied {
            path: p(),
            host_path: PathBuf::from("/ws/media/shot.png"),
            op: "open",
            owner_uid: Some(1000),
            mode: Some(0o100600),
            process_uid: 0,
        };
        let d = e.details();
        assert_eq!(d["mode"], "0600");
        assert_eq!(d["ownerUid"], 1000);
        assert_eq!(d["processUid"], 0);
        assert_eq!(d["hostPath"], "/ws/media/shot.png");
        assert!(e.hint().unwrap().contains("uid 1000 with mode 0600"));
        let e = FsError::NotRegularFile {
            path: p(),
            kind: FileKind::Fifo,
        };
        assert_eq!(e.details()["kind"], "fifo");
        assert_eq!(
            e.to_string(),
            "\"media/shot.png\" is a FIFO, not a regular file"
        );
    }
}
