//! Path resolution shared by every operation: lexical checks, opens beneath the root fd through
//! the configured resolver, the parent directory of a final component.

use std::ffi::OsStr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::OFlags;

use super::Root;
use crate::error::{FsError, escape};
use crate::options::Mechanism;
use crate::relpath::{self, Lexical};
use crate::resolve::{self, DirFd};

impl Root {
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
}
