//! [`Root::list_bounded`]: a directory listing in bounded memory and time, for listings whose
//! result leaves the process (the `ls` tool).
//!
//! The directory is streamed (`getdents`), never collected whole: the `max_entries` smallest
//! names are kept in a heap while the rest are only counted, and only the kept entries are
//! stat-ed. Counting stops after `max_scan` entries (the total is then unknown). The result is
//! sorted by name, like [`Root::list`].

use std::collections::BinaryHeap;
use std::ffi::CString;
use std::path::Path;

use rustix::fs::{AtFlags, OFlags};
use rustix::io::Errno;

use crate::error::{FsError, from_errno};
use crate::meta::{DirEntryMeta, FileMeta};
use crate::root::Root;

/// Bounds of [`Root::list_bounded`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListOptions {
    /// Most entries returned.
    pub max_entries: usize,
    /// Most entries counted; past it the total is unknown.
    pub max_scan: u64,
    /// Leave out (and do not count) carapace's staging files (`.carapace-tmp-*`).
    pub hide_staging: bool,
}

/// A bounded listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// The first `max_entries` entries by name, with lstat metadata.
    pub entries: Vec<DirEntryMeta>,
    /// How many entries the directory has, when it was counted to the end.
    pub total: Option<u64>,
    /// True when entries were left out.
    pub truncated: bool,
}

impl Root {
    /// Lists the directory `rel` within `opts` (see the module docs). Symlinks are listed as
    /// symlinks, never followed; a final symlink to a directory is refused.
    pub fn list_bounded(&self, rel: &Path, opts: &ListOptions) -> Result<Listing, FsError> {
        let comps = self.comps(rel)?;
        let fd = self.resolve(
            rel,
            &comps,
            OFlags::RDONLY | OFlags::DIRECTORY,
            false,
            "list",
        )?;
        let dir = rustix::fs::Dir::read_from(&fd).map_err(|e| from_errno("list", rel, e))?;
        let mut kept: BinaryHeap<Vec<u8>> =
            BinaryHeap::with_capacity(opts.max_entries.min(4096) + 1);
        let mut count = 0u64;
        let mut counted_all = true;
        for entry in dir {
            let entry = entry.map_err(|e| from_errno("list", rel, e))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            if opts.hide_staging && name.starts_with(crate::atomic_write::STAGING_PREFIX.as_bytes())
            {
                continue;
            }
            if count >= opts.max_scan {
                counted_all = false;
                break;
            }
            count += 1;
            if kept.len() < opts.max_entries {
                kept.push(name.to_vec());
            } else if kept.peek().is_some_and(|top| name < top.as_slice()) {
                kept.pop();
                kept.push(name.to_vec());
            }
        }
        let mut names = kept.into_vec();
        names.sort();
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            let Ok(c) = CString::new(name) else { continue };
            let st = match rustix::fs::statat(&fd, &c, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                // Removed since getdents.
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(from_errno("list", rel, e)),
            };
            entries.push(DirEntryMeta {
                name: String::from_utf8_lossy(c.as_bytes()).into_owned(),
                meta: FileMeta::from_stat(&st),
            });
        }
        let truncated = !counted_all || count > opts.max_entries as u64;
        Ok(Listing {
            entries,
            total: counted_all.then_some(count),
            truncated,
        })
    }
}
