//! Opening roots: at a host path, as a second handle, at a subdirectory; the accessors.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use super::{Root, io_error, process_uid};
use crate::error::{FsError, from_errno};
use crate::meta::FileMeta;
use crate::options::{Mechanism, Resolver};
use crate::relpath;
use crate::resolve;

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
}
