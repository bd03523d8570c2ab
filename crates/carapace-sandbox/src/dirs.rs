//! Sandbox directories: created on first use (mode `tools.fs.newDirMode`, 0755 by default,
//! whatever the umask) and seeded the way OpenClaw seeds them (`ensureSandboxWorkspace`): each
//! bootstrap file of the agent workspace is copied into the sandbox directory **if it is
//! missing there**, never overwriting. Everything goes through carapace-fs: the source is opened
//! beneath the agent workspace with a final symlink refused (a bootstrap file that is a link,
//! or that leads out, is skipped), the copy is a no-clobber create at the configured file mode.

use std::path::Path;

use carapace_fs::{FsError, ReadOptions, Root, SymlinkPolicy, WriteOptions};
use serde::Serialize;

use crate::error::SandboxError;

/// OpenClaw's bootstrap files, in its order.
pub const BOOTSTRAP_FILES: &[&str] = &[
    "AGENTS.md",
    "SOUL.md",
    "TOOLS.md",
    "IDENTITY.md",
    "USER.md",
    "BOOTSTRAP.md",
    "HEARTBEAT.md",
];

/// Largest bootstrap file copied.
const MAX_SEED_BYTES: u64 = 1024 * 1024;

/// Creates `dir` and missing parents with exactly `mode`, through carapace-fs
/// ([`Root::open_or_create`]): the nearest existing ancestor (an operator-configured path) is
/// opened as a root, the rest is created beneath it without following any link.
pub fn ensure_dir(dir: &Path, mode: u32) -> Result<(), SandboxError> {
    Root::open_or_create(dir, mode)?;
    Ok(())
}

/// Makes `dir` (a sandbox directory carapace created) belong to `uid:gid`, through
/// carapace-fs: its parent is opened as a root and the directory is changed with a final
/// symlink refused. Only the directory itself: its contents keep their owners.
pub fn set_owner(dir: &Path, uid: u32, gid: u32) -> Result<(), SandboxError> {
    use std::os::unix::fs::MetadataExt;
    if std::fs::symlink_metadata(dir).is_ok_and(|m| m.uid() == uid && m.gid() == gid) {
        return Ok(());
    }
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return Err(SandboxError::BadRequest(format!(
            "{} has no parent directory",
            dir.display()
        )));
    };
    Root::open(parent)?.set_owner(Path::new(name), uid, gid)?;
    Ok(())
}

/// What seeding did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedReport {
    /// Files copied.
    pub copied: Vec<String>,
    /// Files skipped, with why (already present, a symlink, outside, too large...).
    pub skipped: Vec<(String, String)>,
}

/// Copies missing bootstrap files from `agent_ws` into `sandbox_dir`. A missing agent
/// workspace seeds nothing.
pub fn seed(
    agent_ws: &Path,
    sandbox_dir: &Path,
    file_mode: u32,
) -> Result<SeedReport, SandboxError> {
    let mut report = SeedReport::default();
    let src = match Root::open(agent_ws) {
        Ok(r) => r,
        Err(FsError::NotFound { .. }) => return Ok(report),
        Err(e) => return Err(e.into()),
    };
    let dst = Root::open(sandbox_dir)?;
    let ropts = ReadOptions {
        max_bytes: Some(MAX_SEED_BYTES),
        symlinks: SymlinkPolicy::RefuseFinal,
        ..ReadOptions::default()
    };
    let wopts = WriteOptions::default().with_new_file_mode(file_mode);
    for name in BOOTSTRAP_FILES {
        let rel = Path::new(name);
        if dst.exists(rel)? {
            report.skipped.push(((*name).into(), "present".into()));
            continue;
        }
        let mut vf = match src.open_file(rel, &ropts) {
            Ok(f) => f,
            Err(FsError::NotFound { .. }) => continue,
            Err(e) => {
                tracing::warn!("not seeding {name} from {}: {e}", agent_ws.display());
                report.skipped.push(((*name).into(), e.to_string()));
                continue;
            }
        };
        match dst.create_from(rel, &mut vf.file, &wopts) {
            Ok(_) => report.copied.push((*name).into()),
            Err(FsError::AlreadyExists { .. }) => {
                report.skipped.push(((*name).into(), "present".into()));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_with_mode_and_seeds_without_following_links() {
        let t = tempfile::tempdir().unwrap();
        let ws = t.path().join("ws");
        std::fs::create_dir(&ws).unwrap();
        std::fs::write(ws.join("AGENTS.md"), "agents").unwrap();
        std::fs::write(ws.join("SOUL.md"), "soul").unwrap();
        std::fs::write(t.path().join("secret"), "secret").unwrap();
        std::os::unix::fs::symlink(t.path().join("secret"), ws.join("TOOLS.md")).unwrap();
        let sbx = t.path().join("a/b/sbx");
        ensure_dir(&sbx, 0o755).unwrap();
        for d in ["a", "a/b", "a/b/sbx"] {
            let m = std::fs::metadata(t.path().join(d))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777;
            assert_eq!(m, 0o755, "{d}");
        }
        std::fs::write(sbx.join("SOUL.md"), "mine").unwrap();
        let r = seed(&ws, &sbx, 0o644).unwrap();
        assert_eq!(r.copied, vec!["AGENTS.md".to_string()]);
        assert_eq!(
            std::fs::read_to_string(sbx.join("AGENTS.md")).unwrap(),
            "agents"
        );
        assert_eq!(
            std::fs::read_to_string(sbx.join("SOUL.md")).unwrap(),
            "mine"
        );
        assert!(!sbx.join("TOOLS.md").exists());
        assert_eq!(
            std::fs::metadata(sbx.join("AGENTS.md"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o644
        );
        // Missing agent workspace: nothing to seed, no error.
        assert!(
            seed(&t.path().join("nope"), &sbx, 0o644)
                .unwrap()
                .copied
                .is_empty()
        );
    }
}
