//! Error mapping: errnos and resolver refusals to typed [`FsError`]s with the facts.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::OFlags;
use rustix::io::Errno;

use super::{Root, process_uid};
use crate::error::{FsError, escape, from_errno};
use crate::meta::{FileKind, FileMeta};
use crate::relpath;
use crate::resolve::{self, Denied};

impl Root {
    /// Maps an errno to a typed error; EACCES/EPERM get the owner and mode of the target.
    #[cold]
    pub(crate) fn err(&self, op: &'static str, rel: &Path, e: Errno) -> FsError {
        match e {
            Errno::ACCESS | Errno::PERM => self.permission_denied(op, rel),
            e => from_errno(op, rel, e),
        }
    }

    #[cold]
    pub(super) fn denied_to_error(
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
