//! What the file tools share: agent path → (root, rel) through the mount table, and the
//! write path (parents at `newDirMode`, file at `newFileMode`, atomic, never through a final
//! symlink).

use std::path::PathBuf;

use carapace_fs::{FsError, ReadOptions, Root, SymlinkPolicy, WriteOptions, WriteOutcome};
use carapace_policy::mounts::Access;
use carapace_sandbox::Session;

use crate::ToolError;

/// An agent path opened for a file operation.
pub(crate) struct Target {
    /// The mount's root.
    pub root: Root,
    /// Path beneath it (empty = the mount point).
    pub rel: PathBuf,
    /// Normalised container path, for results.
    pub container_path: String,
}

/// Maps `path` and opens its mount as a root: the root is the pinned fd of the mount source
/// (no symlink in its path, the directory validated at load), so a source swapped for a link
/// by sandboxed code is refused, never followed.
pub(crate) fn target(session: &Session, path: &str, access: Access) -> Result<Target, ToolError> {
    let r = session.resolve(path, access)?;
    let root = session.open_mount(r.mount)?;
    Ok(Target {
        root,
        rel: r.rel,
        container_path: r.container_path,
    })
}

/// Reads for tools: a final symlink is followed only while it stays beneath the mount (the
/// kernel refuses one that leads out: `PATH_OUTSIDE_ROOT`).
pub(crate) fn read_options(max: Option<u64>) -> ReadOptions {
    ReadOptions {
        max_bytes: max,
        symlinks: SymlinkPolicy::FollowInside,
        ..ReadOptions::default()
    }
}

/// Writes `data` at the target: missing parents created at `newDirMode`, the file replaced
/// atomically (a new file gets `newFileMode`, an existing one keeps its mode), a final
/// symlink refused.
pub(crate) fn write(session: &Session, t: &Target, data: &[u8]) -> Result<WriteOutcome, ToolError> {
    if t.rel.as_os_str().is_empty() {
        return Err(ToolError::from(FsError::NotRegularFile {
            path: PathBuf::from(&t.container_path),
            kind: carapace_fs::FileKind::Dir,
        }));
    }
    if let Some(parent) = t.rel.parent().filter(|p| !p.as_os_str().is_empty()) {
        t.root
            .mkdir_all(parent, session.new_dir_mode)
            .at(&t.container_path)?;
    }
    let opts = WriteOptions::default().with_new_file_mode(session.new_file_mode);
    t.root.write(&t.rel, data, &opts).at(&t.container_path)
}

/// File-tool errors name the path the agent used: carapace-fs reports the path beneath the
/// mount (`a.txt`), the agent said `/workspace/a.txt` (or `a.txt`, relative to it).
pub(crate) trait AtPath<T> {
    /// Maps an [`FsError`] to a [`ToolError`] naming `container_path`.
    fn at(self, container_path: &str) -> Result<T, ToolError>;
}

impl<T> AtPath<T> for Result<T, FsError> {
    fn at(self, container_path: &str) -> Result<T, ToolError> {
        self.map_err(|e| ToolError::from(e.with_path(container_path)))
    }
}
