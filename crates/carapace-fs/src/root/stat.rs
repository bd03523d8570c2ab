//! Metadata and listings: lstat-style `stat`, `exists`, sorted `list`.

use std::path::Path;

use rustix::fs::{AtFlags, OFlags};
use rustix::io::Errno;

use super::Root;
use crate::error::{FsError, from_errno};
use crate::meta::{DirEntryMeta, FileMeta};
use crate::relpath;

impl Root {
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
}
