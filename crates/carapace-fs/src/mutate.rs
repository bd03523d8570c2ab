//! The mutating operations of [`Root`]: write/create (see `atomic_write.rs`), mkdir -p,
//! bounded recursive remove, no-clobber rename, copy between roots.

use std::ffi::{CStr, CString};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::atomic_write::{self, Source};
use crate::error::{FsError, from_errno};
use crate::meta::{FileKind, FileMeta};
use crate::options::{HardlinkPolicy, ReadOptions, RemoveOptions, WriteOptions, WriteOutcome};
use crate::resolve::DirFd;
use crate::root::Root;

/// Deepest directory tree a recursive remove descends into.
const MAX_REMOVE_DEPTH: u32 = 256;

impl Root {
    /// Atomically replaces (or creates) the file at `rel` with `data`. Readers see the old or
    /// the new content, never a mix; the mode is decided as described in `WriteOptions`.
    pub fn write(
        &self,
        rel: &Path,
        data: &[u8],
        opts: &WriteOptions,
    ) -> Result<WriteOutcome, FsError> {
        atomic_write::write(self, rel, Source::Bytes(data), opts, false)
    }

    /// Like [`Root::write`], streaming from `src`; more than `opts.max_bytes` is `TOO_LARGE`
    /// and leaves nothing behind.
    pub fn write_from(
        &self,
        rel: &Path,
        src: &mut dyn Read,
        opts: &WriteOptions,
    ) -> Result<WriteOutcome, FsError> {
        atomic_write::write(self, rel, Source::Reader(src), opts, false)
    }

    /// Creates a new file; `ALREADY_EXISTS` if anything is at `rel` (decided atomically by
    /// `RENAME_NOREPLACE`, so two creators cannot both win).
    pub fn create(
        &self,
        rel: &Path,
        data: &[u8],
        opts: &WriteOptions,
    ) -> Result<WriteOutcome, FsError> {
        atomic_write::write(self, rel, Source::Bytes(data), opts, true)
    }

    /// Streaming [`Root::create`].
    pub fn create_from(
        &self,
        rel: &Path,
        src: &mut dyn Read,
        opts: &WriteOptions,
    ) -> Result<WriteOutcome, FsError> {
        atomic_write::write(self, rel, Source::Reader(src), opts, true)
    }

    /// Read-modify-write of a regular file: reads it with `read` (same checks as
    /// [`Root::read`]), hands the bytes to `f`, and when `f` returns new content writes it
    /// atomically with `write` (the file keeps its mode). `Ok(None)` when `f` changed nothing.
    /// Last writer wins: a concurrent writer between the read and the rename is not detected.
    pub fn edit<E: From<FsError>>(
        &self,
        rel: &Path,
        read: &ReadOptions,
        write: &WriteOptions,
        f: impl FnOnce(Vec<u8>) -> Result<Option<Vec<u8>>, E>,
    ) -> Result<Option<WriteOutcome>, E> {
        let old = self.read(rel, read)?;
        match f(old)? {
            Some(new) => Ok(Some(self.write(rel, &new, write)?)),
            None => Ok(None),
        }
    }

    /// Copies a regular file from `src` (another root, or this one) to `dst_rel` here, through
    /// the same checks as a read and the same atomic write. The copy gets the destination's
    /// mode policy (an existing file's mode, else `new_file_mode`), never the source's mode.
    pub fn copy_in(
        &self,
        src: &Root,
        src_rel: &Path,
        dst_rel: &Path,
        opts: &WriteOptions,
    ) -> Result<WriteOutcome, FsError> {
        let mut vf = src.open_file(
            src_rel,
            &ReadOptions {
                max_bytes: opts.max_bytes,
                symlinks: opts.symlinks,
                hardlinks: HardlinkPolicy::Allow,
            },
        )?;
        atomic_write::write(self, dst_rel, Source::Reader(&mut vf.file), opts, false)
    }

    /// Creates `rel` and any missing parents. Every directory this call creates gets exactly
    /// `mode` (fchmod after mkdir, whatever the umask); existing ones are left as they are.
    /// Symlinked components are followed only while they stay beneath the root.
    pub fn mkdir_all(&self, rel: &Path, mode: u32) -> Result<(), FsError> {
        let comps = self.comps(rel)?;
        let mut cur = DirFd::Root(self.fd.as_fd());
        for i in 0..comps.len() {
            let c = comps[i];
            let dir_flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let next = match rustix::fs::openat(&cur, c, dir_flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    let created = match rustix::fs::mkdirat(&cur, c, Mode::from_raw_mode(0o700)) {
                        Ok(()) => true,
                        Err(Errno::EXIST) => false,
                        Err(e) => return Err(self.err("mkdir", rel, e)),
                    };
                    let fd = rustix::fs::openat(&cur, c, dir_flags, Mode::empty())
                        .map_err(|e| self.err("mkdir", rel, e))?;
                    if created {
                        // As root, a new directory belongs to its parent's owner (see
                        // `atomic_write`); then the exact mode.
                        if let Some((uid, gid)) = crate::root::inherited_owner(&cur) {
                            let _ = rustix::fs::fchown(
                                &fd,
                                Some(rustix::fs::Uid::from_raw(uid)),
                                Some(rustix::fs::Gid::from_raw(gid)),
                            );
                        }
                        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777))
                            .map_err(|e| self.err("chmod", rel, e))?;
                    }
                    fd
                }
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    let st = rustix::fs::statat(&cur, c, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|e| self.err("mkdir", rel, e))?;
                    let meta = FileMeta::from_stat(&st);
                    if meta.kind != FileKind::Symlink {
                        return Err(FsError::NotADirectory {
                            path: rel.to_path_buf(),
                            kind: meta.kind,
                        });
                    }
                    // A symlinked directory: resolve the prefix beneath the root.
                    self.resolve(
                        rel,
                        &comps[..=i],
                        OFlags::RDONLY | OFlags::DIRECTORY,
                        true,
                        "mkdir",
                    )?
                }
                Err(e) => return Err(self.err("mkdir", rel, e)),
            };
            cur = DirFd::Owned(next);
        }
        Ok(())
    }

    /// Removes the object at `rel` (a symlink is removed itself, never followed). A directory
    /// needs `opts.recursive` unless empty; a recursive remove first counts what it would
    /// delete and refuses, deleting nothing, above `opts.max_entries`. Returns the number of
    /// entries removed.
    pub fn remove(&self, rel: &Path, opts: &RemoveOptions) -> Result<u64, FsError> {
        let comps = self.comps(rel)?;
        let (parent, name) = match self.parent(rel, &comps, "remove", false) {
            Err(FsError::NotFound { .. }) if opts.missing_ok => return Ok(0),
            r => r?,
        };
        let st = match rustix::fs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) if opts.missing_ok => return Ok(0),
            Err(e) => return Err(self.err("remove", rel, e)),
        };
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            rustix::fs::unlinkat(&parent, name, AtFlags::empty())
                .map_err(|e| self.err("remove", rel, e))?;
            return Ok(1);
        }
        if !opts.recursive {
            return match rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR) {
                Ok(()) => Ok(1),
                Err(e) => Err(self.err("remove", rel, e)),
            };
        }
        let dir = rustix::fs::openat(
            &parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.err("remove", rel, e))?;
        let mut count = 1u64;
        count_tree(dir.as_fd(), &mut count, opts.max_entries, 0)
            .map_err(|e| self.tree_err(rel, opts.max_entries, e))?;
        let mut removed = 0u64;
        remove_tree(dir.as_fd(), &mut removed, 0)
            .map_err(|e| self.tree_err(rel, opts.max_entries, e))?;
        rustix::fs::unlinkat(&parent, name, AtFlags::REMOVEDIR)
            .map_err(|e| self.err("remove", rel, e))?;
        Ok(removed + 1)
    }

    /// Renames `from` to `to` within this root. Without `overwrite` an existing `to` is
    /// `ALREADY_EXISTS` (`RENAME_NOREPLACE`). Symlinks are moved as themselves.
    pub fn rename(&self, from: &Path, to: &Path, overwrite: bool) -> Result<(), FsError> {
        let fc = self.comps(from)?;
        let tc = self.comps(to)?;
        let (fp, fname) = self.parent(from, &fc, "rename", false)?;
        let (tp, tname) = self.parent(to, &tc, "rename", false)?;
        let r = if overwrite {
            rustix::fs::renameat(&fp, fname, &tp, tname)
        } else {
            match rustix::fs::renameat_with(
                &fp,
                fname,
                &tp,
                tname,
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP)
                    if same_dir(fp.as_fd(), tp.as_fd()) =>
                {
                    atomic_write::rename_noreplace(&fp, fname, tname)
                }
                r => r,
            }
        };
        match r {
            Ok(()) => Ok(()),
            Err(Errno::NOENT) => Err(from_errno("rename", from, Errno::NOENT)),
            Err(Errno::EXIST) | Err(Errno::NOTEMPTY) => Err(FsError::AlreadyExists {
                path: to.to_path_buf(),
            }),
            Err(Errno::INVAL) => Err(FsError::InvalidPath {
                path: to.to_path_buf(),
                reason: "cannot move a directory inside itself",
            }),
            Err(e) => Err(self.err("rename", from, e)),
        }
    }

    #[cold]
    fn tree_err(&self, rel: &Path, limit: u64, e: TreeError) -> FsError {
        match e {
            TreeError::TooMany => FsError::TooManyEntries {
                path: rel.to_path_buf(),
                limit,
            },
            TreeError::TooDeep => FsError::InvalidPath {
                path: rel.to_path_buf(),
                reason: "the directory tree is too deep to remove",
            },
            TreeError::Errno(e) => self.err("remove", rel, e),
        }
    }
}

fn same_dir(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> bool {
    match (rustix::fs::fstat(a), rustix::fs::fstat(b)) {
        (Ok(x), Ok(y)) => x.st_dev == y.st_dev && x.st_ino == y.st_ino,
        _ => false,
    }
}

enum TreeError {
    TooMany,
    TooDeep,
    Errno(Errno),
}

impl From<Errno> for TreeError {
    fn from(e: Errno) -> Self {
        TreeError::Errno(e)
    }
}

/// Names in a directory (without `.`/`..`) and whether each is a directory (lstat).
fn entries(dir: BorrowedFd<'_>) -> Result<Vec<(CString, bool)>, Errno> {
    let mut out = Vec::new();
    for e in rustix::fs::Dir::read_from(dir)? {
        let e = e?;
        let name: &CStr = e.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        let is_dir = match e.file_type() {
            FileType::Directory => true,
            FileType::Unknown => match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => FileType::from_raw_mode(st.st_mode) == FileType::Directory,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e),
            },
            _ => false,
        };
        out.push((name.to_owned(), is_dir));
    }
    Ok(out)
}

fn open_child_dir(dir: BorrowedFd<'_>, name: &CStr) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn count_tree(dir: BorrowedFd<'_>, count: &mut u64, max: u64, depth: u32) -> Result<(), TreeError> {
    if depth > MAX_REMOVE_DEPTH {
        return Err(TreeError::TooDeep);
    }
    for (name, is_dir) in entries(dir)? {
        *count += 1;
        if *count > max {
            return Err(TreeError::TooMany);
        }
        if is_dir {
            let child = open_child_dir(dir, &name)?;
            count_tree(child.as_fd(), count, max, depth + 1)?;
        }
    }
    Ok(())
}

fn remove_tree(dir: BorrowedFd<'_>, removed: &mut u64, depth: u32) -> Result<(), TreeError> {
    if depth > MAX_REMOVE_DEPTH {
        return Err(TreeError::TooDeep);
    }
    for (name, is_dir) in entries(dir)? {
        if is_dir {
            let child = open_child_dir(dir, &name)?;
            remove_tree(child.as_fd(), removed, depth + 1)?;
            rustix::fs::unlinkat(dir, name.as_c_str(), AtFlags::REMOVEDIR)?;
        } else {
            match rustix::fs::unlinkat(dir, name.as_c_str(), AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
        *removed += 1;
    }
    Ok(())
}
