//! Appending whole records to a log file beneath a [`Root`] (JSONL transcripts, audit logs).
//!
//! [`Root::open_append`] opens `rel` with `O_RDWR | O_APPEND | O_NOFOLLOW | O_NONBLOCK |
//! O_NOCTTY | O_CLOEXEC` on the parent directory resolved beneath the root (so neither a
//! parent nor the final component can lead out, and a final symlink is `SYMLINK_REFUSED`), then
//! checks the fd with fstat: not a regular file is `NOT_REGULAR_FILE` (a FIFO never blocks the
//! open: `O_NONBLOCK`), more than one hard link is `HARDLINK_REFUSED` (a second name could be
//! outside the root, and the log's bytes and mode would be shared with it).
//!
//! A missing file is created with `O_CREAT | O_EXCL` at `0o600` and then **fchmod-ed on the fd
//! to the decided mode** ([`AppendOptions::new_file_mode`], default `0o600`), so the umask never
//! decides a log's mode. An existing file keeps its mode. A creator that loses a race with
//! another creator (`EEXIST`) opens the winner's file instead.
//!
//! ## What is atomic
//!
//! [`AppendFile::append`] writes one record (its bytes plus `\n`) with **one `write(2)` call**.
//! With `O_APPEND` the kernel moves the offset to the end and writes under the inode lock in
//! one step, so on local filesystems (ext4, xfs, btrfs, tmpfs) records from concurrent writers
//! — threads or processes — never interleave or overwrite each other. A `write` can still be
//! short (disk full, a file-size limit): then the record is reported as failed, and the next
//! record starts with a `\n` so the torn bytes stay on a line of their own. The same happens
//! when the file ends without `\n` at open time (a writer died mid-record): [`AppendFile::torn_tail`]
//! says so. A reader must therefore treat an unparsable *last* line as a torn record, and skip
//! empty lines: the open-time check is not atomic with other writers' records, so a writer that
//! opens while another is mid-record may take that record for a torn one and add a separator
//! (an empty line; never a torn record). Network filesystems (NFS) do not give these guarantees.
//!
//! With [`AppendOptions::durable`], every record is followed by `fsync` (and the directory is
//! fsynced after creating the file), so a record reported as appended survives power loss.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::error::{FsError, from_errno};
use crate::meta::{FileKind, FileMeta};
use crate::root::{Root, io_error};

/// Longest record [`AppendFile::append`] accepts by default (16 MiB): one `write` call.
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 16 << 20;

/// Options of [`Root::open_append`].
#[derive(Debug, Clone)]
pub struct AppendOptions {
    /// Mode of a file created by the open (default `0o600`: logs hold private content).
    /// Applied with fchmod on the fd: the umask never changes it. An existing file keeps its mode.
    pub new_file_mode: u32,
    /// Create the file when it is missing (default true); else a missing file is `NOT_FOUND`.
    pub create: bool,
    /// fsync after every record (and the directory after creating the file).
    pub durable: bool,
    /// Refuse records longer than this (`TOO_LARGE`), so one record is always one `write`.
    pub max_record_bytes: u64,
}

impl Default for AppendOptions {
    fn default() -> Self {
        AppendOptions {
            new_file_mode: 0o600,
            create: true,
            durable: false,
            max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        }
    }
}

impl AppendOptions {
    /// Same options, durable or not.
    pub fn with_durable(mut self, durable: bool) -> AppendOptions {
        self.durable = durable;
        self
    }

    /// Same options with another new-file mode.
    pub fn with_new_file_mode(mut self, mode: u32) -> AppendOptions {
        self.new_file_mode = mode;
        self
    }
}

/// A log file opened for appending by [`Root::open_append`]. Records are newline-terminated.
#[derive(Debug)]
pub struct AppendFile {
    file: File,
    rel: PathBuf,
    created: bool,
    mode: u32,
    torn_tail: bool,
    /// The next record must start with `\n` (torn tail, or an earlier short write).
    needs_separator: bool,
    durable: bool,
    max_record_bytes: u64,
}

impl Root {
    /// Opens (or creates) `rel` for appending records; see the module docs for the checks.
    pub fn open_append(&self, rel: &Path, opts: &AppendOptions) -> Result<AppendFile, FsError> {
        let comps = self.comps(rel)?;
        let (parent, name) = self.parent(rel, &comps, "append", opts.durable)?;
        let flags = OFlags::RDWR
            | OFlags::APPEND
            | OFlags::NOFOLLOW
            | OFlags::NONBLOCK
            | OFlags::NOCTTY
            | OFlags::CLOEXEC;
        let mut created = false;
        let fd: OwnedFd = loop {
            match rustix::fs::openat(&parent, name, flags, Mode::empty()) {
                Ok(fd) => break fd,
                Err(Errno::NOENT) if opts.create => {
                    match rustix::fs::openat(
                        &parent,
                        name,
                        flags | OFlags::CREATE | OFlags::EXCL,
                        Mode::from_raw_mode(0o600),
                    ) {
                        Ok(fd) => {
                            created = true;
                            break fd;
                        }
                        // Another creator won (or a symlink appeared): open what is there.
                        Err(Errno::EXIST) => continue,
                        Err(e) => return Err(self.append_error(rel, e)),
                    }
                }
                Err(e) => return Err(self.append_error(rel, e)),
            }
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| from_errno("fstat", rel, e))?;
        let meta = FileMeta::from_stat(&st);
        if meta.kind != FileKind::File {
            return Err(FsError::NotRegularFile {
                path: rel.to_path_buf(),
                kind: meta.kind,
            });
        }
        if meta.nlink > 1 {
            return Err(FsError::HardlinkRefused {
                path: rel.to_path_buf(),
                nlink: meta.nlink,
            });
        }
        let mut mode = meta.mode & 0o7777;
        if created {
            let decided = opts.new_file_mode & 0o7777;
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(decided))
                .map_err(|e| self.err("chmod", rel, e))?;
            mode = decided;
            if opts.durable {
                rustix::fs::fsync(&fd).map_err(|e| from_errno("fsync", rel, e))?;
                rustix::fs::fsync(parent.as_fd()).map_err(|e| from_errno("fsync", rel, e))?;
            }
        }
        let file = File::from(fd);
        let torn_tail = meta.size > 0 && {
            let mut last = [0u8; 1];
            file.read_exact_at(&mut last, meta.size - 1)
                .map_err(|e| io_error("read", rel, e))?;
            last[0] != b'\n'
        };
        Ok(AppendFile {
            file,
            rel: rel.to_path_buf(),
            created,
            mode,
            torn_tail,
            needs_separator: torn_tail,
            durable: opts.durable,
            max_record_bytes: opts.max_record_bytes,
        })
    }

    #[cold]
    fn append_error(&self, rel: &Path, e: Errno) -> FsError {
        match e {
            // O_NOFOLLOW on a final symlink.
            Errno::LOOP => FsError::SymlinkRefused {
                path: rel.to_path_buf(),
            },
            // O_NONBLOCK write-open of a FIFO without a reader; a device without a driver.
            Errno::NXIO | Errno::NODEV => FsError::NotRegularFile {
                path: rel.to_path_buf(),
                kind: self.stat(rel).map(|m| m.kind).unwrap_or(FileKind::Fifo),
            },
            Errno::ISDIR => FsError::NotRegularFile {
                path: rel.to_path_buf(),
                kind: FileKind::Dir,
            },
            e => self.err("append", rel, e),
        }
    }
}

impl AppendFile {
    /// Appends `record` and a `\n` with one `write(2)`; fsyncs when durable. Returns the bytes
    /// written. `record` must not contain `\n` (one record, one line); one that does is
    /// refused as [`FsError::InvalidPath`] (`BAD_REQUEST`) and nothing is written.
    pub fn append(&mut self, record: &[u8]) -> Result<u64, FsError> {
        if record.contains(&b'\n') {
            return Err(FsError::InvalidPath {
                path: self.rel.clone(),
                reason: "a log record must not contain a newline",
            });
        }
        if record.len() as u64 > self.max_record_bytes {
            return Err(FsError::TooLarge {
                path: self.rel.clone(),
                size: Some(record.len() as u64),
                limit: self.max_record_bytes,
            });
        }
        let sep = usize::from(self.needs_separator);
        let mut line = Vec::with_capacity(record.len() + 1 + sep);
        if self.needs_separator {
            line.push(b'\n');
        }
        line.extend_from_slice(record);
        line.push(b'\n');
        // One write call: O_APPEND places it whole at the end (see the module docs).
        let n = self
            .file
            .write(&line)
            .map_err(|e| io_error("append", &self.rel, e))?;
        if n != line.len() {
            self.needs_separator = true;
            return Err(FsError::Io {
                op: "append",
                path: self.rel.clone(),
                source: std::io::Error::other(format!(
                    "short write: {n} of {} bytes (the record is torn; the next one starts on a new line)",
                    line.len()
                )),
            });
        }
        self.needs_separator = false;
        if self.durable {
            self.file
                .sync_data()
                .map_err(|e| io_error("fsync", &self.rel, e))?;
        }
        Ok(n as u64)
    }

    /// fsync now (for callers that batch records and are not `durable`).
    pub fn sync(&self) -> Result<(), FsError> {
        self.file
            .sync_data()
            .map_err(|e| io_error("fsync", &self.rel, e))
    }

    /// The file's current size (fstat on the fd).
    pub fn len(&self) -> Result<u64, FsError> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| io_error("fstat", &self.rel, e))
    }

    /// True when the file is empty.
    pub fn is_empty(&self) -> Result<bool, FsError> {
        self.len().map(|n| n == 0)
    }

    /// True when this open created the file.
    pub fn created(&self) -> bool {
        self.created
    }

    /// The file's permission bits (the decided mode when created, else the existing mode).
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// True when the file did not end with `\n` at open time: its last record is torn (a
    /// writer died mid-record). The next record starts on a new line.
    pub fn torn_tail(&self) -> bool {
        self.torn_tail
    }

    /// The path as given.
    pub fn rel(&self) -> &Path {
        &self.rel
    }
}
