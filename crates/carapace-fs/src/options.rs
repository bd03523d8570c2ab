//! Per-call options and outcomes: what a caller may choose, with safe defaults.

use std::fs::File;
use std::path::PathBuf;

use crate::meta::FileMeta;

/// Which resolution mechanism a [`crate::Root`] should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolver {
    /// `openat2` when the kernel has it (probed once per process), else the fallback.
    #[default]
    Auto,
    /// Kernel resolution only; an error if `openat2` is unavailable.
    Openat2,
    /// The component-by-component `O_NOFOLLOW` walk, even when `openat2` exists (tests).
    Fallback,
}

/// Which mechanism actually serves a [`crate::Root`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)`: the kernel keeps every lookup beneath.
    Openat2,
    /// One `openat(O_PATH | O_NOFOLLOW)` per component, symlinks read and re-walked in userspace.
    Fallback,
}

impl Mechanism {
    /// `"openat2"` or `"fallback"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mechanism::Openat2 => "openat2",
            Mechanism::Fallback => "fallback",
        }
    }
}

/// What to do with symlinks. Symlinks in *parent* components are followed under both policies
/// as long as they stay beneath the root (the kernel or the walk refuses any that lead out).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SymlinkPolicy {
    /// A symlink as the final component is `SYMLINK_REFUSED` (reads, writes, opens).
    #[default]
    RefuseFinal,
    /// A final symlink is followed too, if it resolves beneath the root.
    FollowInside,
}

/// What to do with a regular file that has more than one hard link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HardlinkPolicy {
    /// Accept it (local tools).
    #[default]
    Allow,
    /// `nlink > 1` is `HARDLINK_REFUSED` (reads whose bytes leave the process: outbound).
    Refuse,
}

/// Options of [`crate::Root::read`] and [`crate::Root::open_file`].
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Refuse files larger than this (checked with fstat and again while reading `max + 1`).
    pub max_bytes: Option<u64>,
    /// Final-symlink policy.
    pub symlinks: SymlinkPolicy,
    /// Hard-link policy.
    pub hardlinks: HardlinkPolicy,
}

impl ReadOptions {
    /// The strict profile for bytes that leave the process: no final symlink, no hardlink.
    pub fn outbound(max_bytes: u64) -> ReadOptions {
        ReadOptions {
            max_bytes: Some(max_bytes),
            symlinks: SymlinkPolicy::RefuseFinal,
            hardlinks: HardlinkPolicy::Refuse,
        }
    }

    /// Same options with a size cap.
    pub fn with_max(mut self, max_bytes: u64) -> ReadOptions {
        self.max_bytes = Some(max_bytes);
        self
    }
}

/// Options of the writing operations.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// Mode of a file that did not exist before (default `0o644`). Applied with fchmod, so the
    /// umask never changes it.
    pub new_file_mode: u32,
    /// When set, the file gets exactly this mode even when it replaces one (secrets: `0o600`).
    pub force_mode: Option<u32>,
    /// fsync the file before the rename and the directory after it. Without it a write is still
    /// atomic for readers and against a killed process, but not against power loss.
    pub durable: bool,
    /// Refuse (and leave nothing behind) when the content exceeds this many bytes.
    pub max_bytes: Option<u64>,
    /// Final-symlink policy for the target (and the source of `copy_in`).
    pub symlinks: SymlinkPolicy,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            new_file_mode: 0o644,
            force_mode: None,
            durable: false,
            max_bytes: None,
            symlinks: SymlinkPolicy::RefuseFinal,
        }
    }
}

impl WriteOptions {
    /// Secrets: always `0o600`, durable.
    pub fn secret() -> WriteOptions {
        WriteOptions {
            force_mode: Some(0o600),
            new_file_mode: 0o600,
            durable: true,
            ..WriteOptions::default()
        }
    }

    /// Same options with another new-file mode.
    pub fn with_new_file_mode(mut self, mode: u32) -> WriteOptions {
        self.new_file_mode = mode;
        self
    }

    /// Same options, durable or not.
    pub fn with_durable(mut self, durable: bool) -> WriteOptions {
        self.durable = durable;
        self
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Bytes written.
    pub bytes: u64,
    /// The mode the file now has (permission bits).
    pub mode: u32,
    /// True when no file existed at the path before.
    pub created: bool,
}

/// Options of [`crate::Root::remove`].
#[derive(Debug, Clone, Copy)]
pub struct RemoveOptions {
    /// Remove a directory and everything beneath it (never following symlinks).
    pub recursive: bool,
    /// Refuse (removing nothing) when a recursive remove would delete more entries than this.
    pub max_entries: u64,
    /// A missing path is not an error (returns 0).
    pub missing_ok: bool,
}

impl Default for RemoveOptions {
    fn default() -> Self {
        RemoveOptions {
            recursive: false,
            max_entries: 100_000,
            missing_ok: false,
        }
    }
}

impl RemoveOptions {
    /// Recursive, default bound.
    pub fn recursive() -> RemoveOptions {
        RemoveOptions {
            recursive: true,
            ..RemoveOptions::default()
        }
    }
}

/// A file that passed the checks of [`crate::Root::open_file`]. Stream **this** fd; never
/// re-open the path.
#[derive(Debug)]
pub struct VerifiedFile {
    /// The open file (read-only, opened `O_NONBLOCK`).
    pub file: File,
    /// fstat of the fd at check time.
    pub meta: FileMeta,
    /// The path as given.
    pub rel: PathBuf,
}

impl VerifiedFile {
    /// Reads the whole file, refusing more than `max` bytes (reads at most `max + 1`).
    pub fn read_capped(&mut self, max: Option<u64>) -> Result<Vec<u8>, crate::FsError> {
        crate::root::read_capped(&mut self.file, &self.rel, self.meta.size, max)
    }
}
