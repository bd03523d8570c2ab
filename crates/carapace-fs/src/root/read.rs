//! Reading regular files: whole (capped) or as a verified fd to stream.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use rustix::fs::OFlags;

use super::{Root, io_error};
use crate::error::{FsError, from_errno};
use crate::meta::{FileKind, FileMeta};
use crate::options::{HardlinkPolicy, ReadOptions, SymlinkPolicy, VerifiedFile};

impl Root {
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
