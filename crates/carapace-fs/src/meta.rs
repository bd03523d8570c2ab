//! File metadata as carapace reports it: [`FileMeta`], [`FileKind`], [`DirEntryMeta`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::{FileType, Stat};

/// What kind of object a path names (from `st_mode`, never from the name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (only seen with lstat semantics).
    Symlink,
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
}

impl FileKind {
    /// The stable lower-case name used in error details and tool output.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::File => "file",
            FileKind::Dir => "dir",
            FileKind::Symlink => "symlink",
            FileKind::Fifo => "fifo",
            FileKind::Socket => "socket",
            FileKind::CharDevice => "char_device",
            FileKind::BlockDevice => "block_device",
        }
    }

    pub(crate) fn from_mode(st_mode: u32) -> FileKind {
        match FileType::from_raw_mode(st_mode as _) {
            FileType::RegularFile => FileKind::File,
            FileType::Directory => FileKind::Dir,
            FileType::Symlink => FileKind::Symlink,
            FileType::Fifo => FileKind::Fifo,
            FileType::Socket => FileKind::Socket,
            FileType::CharacterDevice => FileKind::CharDevice,
            FileType::BlockDevice => FileKind::BlockDevice,
            // Unknown types are treated as devices: never a regular file.
            _ => FileKind::CharDevice,
        }
    }
}

impl std::fmt::Display for FileKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FileKind::File => "regular file",
            FileKind::Dir => "directory",
            FileKind::Symlink => "symlink",
            FileKind::Fifo => "FIFO",
            FileKind::Socket => "socket",
            FileKind::CharDevice => "character device",
            FileKind::BlockDevice => "block device",
        })
    }
}

/// Metadata of one object, from fstat / fstatat. `mode` is the permission bits only
/// (`& 0o7777`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMeta {
    /// What it is.
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits (`0o644`), without the file type.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Hard link count.
    pub nlink: u64,
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Last modification.
    pub mtime: SystemTime,
}

impl FileMeta {
    #[allow(clippy::unnecessary_cast, clippy::cast_sign_loss)]
    pub(crate) fn from_stat(st: &Stat) -> FileMeta {
        let mode = st.st_mode as u32;
        let secs = st.st_mtime as i64;
        let nsec = st.st_mtime_nsec as u32;
        let mtime = if secs >= 0 {
            UNIX_EPOCH + Duration::new(secs as u64, nsec)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
                + Duration::from_nanos(nsec.into())
        };
        FileMeta {
            kind: FileKind::from_mode(mode),
            size: st.st_size.max(0) as u64,
            mode: mode & 0o7777,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            nlink: st.st_nlink as u64,
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            mtime,
        }
    }

    /// True for a regular file.
    pub fn is_file(&self) -> bool {
        self.kind == FileKind::File
    }

    /// True for a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }
}

/// One entry of [`crate::Root::list`]: the name and lstat-style metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntryMeta {
    /// The entry name (lossily converted to UTF-8 if it is not valid UTF-8).
    pub name: String,
    /// Its metadata; a symlink is reported as [`FileKind::Symlink`], never followed.
    pub meta: FileMeta,
}
