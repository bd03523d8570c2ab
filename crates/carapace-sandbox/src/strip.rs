//! The second layer against set-uid files: after every command, the set-uid and set-gid bits of
//! every regular file on the session's writable mounts are cleared, so what sandboxed code
//! left behind cannot raise a local user's privileges (the first layer: sandboxes never run as
//! root, see `user.rs`; bwrap's binds are `nosuid` inside the sandbox; Docker's containers have
//! `no-new-privileges`).
//!
//! The walk goes through carapace-fs from the pinned mount root: directories are opened one
//! level at a time with a final symlink refused, so a link planted in the workspace is never
//! followed; the mode is changed with `Root::set_mode` on the pinned inode. A set-uid file with
//! several hard links (its mode cannot be changed without changing its other names) is removed
//! instead. The walk is bounded ([`MAX_ENTRIES`]); a tree larger than that is logged.

use std::path::Path;

use carapace_fs::{FileKind, FsError, RemoveOptions, Root};

/// Most directory entries one walk looks at.
pub const MAX_ENTRIES: usize = 200_000;

/// What a walk did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StripReport {
    /// Entries looked at.
    pub entries: usize,
    /// Files whose set-uid/set-gid bits were cleared (relative paths).
    pub cleared: Vec<String>,
    /// Hardlinked set-uid files removed.
    pub removed: Vec<String>,
    /// The walk stopped at [`MAX_ENTRIES`].
    pub truncated: bool,
}

/// Clears set-uid/set-gid bits beneath `root` (see the module docs).
pub fn strip_setid(root: &Root) -> StripReport {
    let mut report = StripReport::default();
    let Ok(top) = root.try_clone() else {
        return report;
    };
    let mut stack: Vec<(Root, String)> = vec![(top, String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let Ok(entries) = dir.list(Path::new("")) else {
            continue;
        };
        for e in entries {
            report.entries += 1;
            if report.entries > MAX_ENTRIES {
                report.truncated = true;
                return report;
            }
            let shown = format!("{prefix}{}", e.name);
            match e.meta.kind {
                FileKind::Dir => {
                    if let Ok(sub) = dir.open_subdir(Path::new(&e.name)) {
                        stack.push((sub, format!("{shown}/")));
                    }
                }
                FileKind::File if e.meta.mode & 0o6000 != 0 => {
                    let name = Path::new(&e.name);
                    match dir.set_mode(name, e.meta.mode & !0o6000) {
                        Ok(()) => report.cleared.push(shown),
                        Err(FsError::HardlinkRefused { .. }) => {
                            if dir.remove(name, &RemoveOptions::default()).is_ok() {
                                report.removed.push(shown);
                            }
                        }
                        Err(err) => tracing::warn!("cannot clear set-uid bits of {shown}: {err}"),
                    }
                }
                _ => {}
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn clears_bits_without_following_links() {
        let d = tempfile::tempdir().unwrap();
        let ws = d.path().join("ws");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(ws.join("a/b")).unwrap();
        std::fs::write(ws.join("a/b/suid"), "x").unwrap();
        std::fs::set_permissions(ws.join("a/b/suid"), PermissionsExt::from_mode(0o4755)).unwrap();
        std::fs::write(ws.join("sgid"), "x").unwrap();
        std::fs::set_permissions(ws.join("sgid"), PermissionsExt::from_mode(0o2755)).unwrap();
        std::fs::write(ws.join("hard"), "x").unwrap();
        std::fs::set_permissions(ws.join("hard"), PermissionsExt::from_mode(0o4755)).unwrap();
        std::fs::hard_link(ws.join("hard"), ws.join("a/hard2")).unwrap();
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        std::fs::set_permissions(outside.join("keep"), PermissionsExt::from_mode(0o4755)).unwrap();
        std::os::unix::fs::symlink(&outside, ws.join("link")).unwrap();
        let r = strip_setid(&Root::open(&ws).unwrap());
        assert_eq!(mode(&ws.join("a/b/suid")), 0o755);
        assert_eq!(mode(&ws.join("sgid")), 0o755);
        // The first name of the hardlinked file is removed; the second, alone now, is cleared.
        assert!(!ws.join("hard").exists(), "{r:?}");
        assert_eq!(mode(&ws.join("a/hard2")), 0o755);
        assert_eq!(mode(&outside.join("keep")), 0o4755, "followed a link out");
        assert_eq!(r.cleared.len(), 3, "{r:?}");
        assert_eq!(r.removed, vec!["hard".to_string()]);
    }
}
