//! [`RotatingLog`]: an append-only log beneath a [`Root`] that is renamed aside when it passes
//! a size limit (`name` → `name.1`, older ones shift up to `name.<keep>`, the oldest is
//! dropped). The audit log is one.
//!
//! Every append opens the current file with [`Root::open_append`] (so a rotation by another
//! process is seen at once, and every check of that open applies: no symlink, no hard link, a
//! regular file), enforces the decided mode on it, rotates first when the file is at or over
//! the limit, and writes the record with one `write(2)`. Renames and removals go through the
//! root, never following links.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::append::AppendOptions;
use crate::error::FsError;
use crate::options::RemoveOptions;
use crate::root::Root;

/// A size-rotated log file; see the module docs. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct RotatingLog {
    root: Root,
    name: String,
    max_bytes: u64,
    keep: u32,
    opts: AppendOptions,
    lock: Mutex<()>,
}

impl RotatingLog {
    /// A log `name` in `root`, rotated at `max_bytes`, keeping `keep` (at least 1) old files.
    /// Files are created (and kept) at `opts.new_file_mode`.
    pub fn new(root: Root, name: &str, max_bytes: u64, keep: u32, opts: AppendOptions) -> Self {
        RotatingLog {
            root,
            name: name.to_string(),
            max_bytes,
            keep: keep.max(1),
            opts,
            lock: Mutex::new(()),
        }
    }

    /// The current file's host path.
    pub fn path(&self) -> PathBuf {
        self.root.host_path().join(&self.name)
    }

    /// Appends one record (no `\n` in it); returns the bytes written.
    pub fn append(&self, record: &[u8]) -> Result<u64, FsError> {
        let _guard = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut f = self.open_current()?;
        if self.max_bytes > 0 && f.len()? >= self.max_bytes {
            drop(f);
            self.rotate()?;
            f = self.open_current()?;
        }
        f.append(record)
    }

    fn open_current(&self) -> Result<crate::AppendFile, FsError> {
        let rel = Path::new(&self.name);
        let f = self.root.open_append(rel, &self.opts)?;
        if f.mode() != self.opts.new_file_mode & 0o7777 {
            self.root.set_mode(rel, self.opts.new_file_mode)?;
        }
        Ok(f)
    }

    fn old(&self, i: u32) -> PathBuf {
        PathBuf::from(format!("{}.{i}", self.name))
    }

    fn rotate(&self) -> Result<(), FsError> {
        let missing_ok = RemoveOptions {
            missing_ok: true,
            ..RemoveOptions::default()
        };
        self.root.remove(&self.old(self.keep), &missing_ok)?;
        for i in (1..self.keep).rev() {
            match self.root.rename(&self.old(i), &self.old(i + 1), true) {
                Ok(()) | Err(FsError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        self.root.rename(Path::new(&self.name), &self.old(1), true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn rotates_at_the_limit_and_keeps_the_decided_mode() {
        let t = tempfile::tempdir().unwrap();
        let log = RotatingLog::new(
            Root::open(t.path()).unwrap(),
            "audit.jsonl",
            5,
            2,
            AppendOptions::default(),
        );
        for i in 0..4 {
            log.append(format!("record-{i}").as_bytes()).unwrap();
        }
        let read = |n: &str| std::fs::read_to_string(t.path().join(n)).unwrap();
        assert_eq!(read("audit.jsonl"), "record-3\n");
        assert_eq!(read("audit.jsonl.1"), "record-2\n");
        assert_eq!(read("audit.jsonl.2"), "record-1\n");
        assert!(!t.path().join("audit.jsonl.3").exists());
        std::fs::set_permissions(
            t.path().join("audit.jsonl"),
            PermissionsExt::from_mode(0o644),
        )
        .unwrap();
        log.append(b"x").unwrap();
        let mode = std::fs::metadata(t.path().join("audit.jsonl"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_symlinked_log_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::write(&outside, b"").unwrap();
        std::fs::create_dir(t.path().join("audit")).unwrap();
        std::os::unix::fs::symlink(&outside, t.path().join("audit/audit.jsonl")).unwrap();
        let log = RotatingLog::new(
            Root::open(&t.path().join("audit")).unwrap(),
            "audit.jsonl",
            1 << 20,
            2,
            AppendOptions::default(),
        );
        assert!(log.append(b"secret").is_err());
        assert_eq!(std::fs::read(&outside).unwrap(), b"");
    }
}
