//! The one check every mount source passes before it is used: **it is not a symlink and it is
//! what was validated**. bwrap (handed the pinned fd), Docker (checked right before a create or
//! start) and the host-side file tools (a `Root` built on the pinned fd) all go through
//! [`PinnedSource::verify`]; nothing else opens a mount source.
//!
//! Why: mount sources are validated as paths when the config is loaded and re-resolved at every
//! use. If code in a sandbox could replace a source (or a parent of it) with `ln -s / …`, the
//! next mount would show the host's root. The load-time rules (`carapace_policy::binds`) refuse
//! sources a sandbox can write; this is the second layer, at use:
//!
//! 1. The canonical path recorded at validation is walked from `/` one component at a time
//!    through carapace-fs (`Root::open_subdir`, which refuses a final symlink), so no component
//!    can be a symlink.
//! 2. The device and inode of what the walk reached must be the ones recorded at validation.
//!
//! The result is an open directory (or, for a file bind, an open file): the fd that passed the
//! checks is the fd that gets mounted or used.

use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Component, Path, PathBuf};

use carapace_fs::{FsError, ReadOptions, Root, SymlinkPolicy};
use serde::Serialize;

use crate::error::SandboxError;

/// Device and inode of a mount source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SourceId {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

/// A mount source as validated: the path as configured, the canonical path it resolved to
/// then, and what it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidatedSource {
    /// The host path as the mount table names it.
    pub configured: PathBuf,
    /// Absolute, symlink-free path recorded at validation.
    pub canonical: PathBuf,
    /// Device and inode recorded at validation.
    pub id: SourceId,
    /// A directory (`false`: a regular file bind).
    pub is_dir: bool,
}

/// What [`PinnedSource::verify`] hands out.
#[derive(Debug)]
pub enum Pinned {
    /// A directory source, as a carapace-fs root on the verified fd.
    Dir(Root),
    /// A regular-file bind source, opened read-only.
    File(File),
}

impl Pinned {
    /// The verified fd (what bwrap mounts with `--bind-fd`).
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        match self {
            Pinned::Dir(r) => r.as_fd(),
            Pinned::File(f) => f.as_fd(),
        }
    }
}

/// A source's pinned handle and its record.
#[derive(Debug)]
pub struct PinnedSource {
    /// What was validated.
    pub source: ValidatedSource,
    /// The handle that passed the checks.
    pub pinned: Pinned,
}

impl PinnedSource {
    /// Validates `configured` for the first time: canonicalises it (operator paths may contain
    /// symlinks; from now on only the real path counts), then walks and records it. With
    /// `final_must_be_real`, the last component of the *configured* path must not be a symlink
    /// either (carapace's own directories, such as a scope's sandbox directory).
    pub fn record(
        configured: &Path,
        final_must_be_real: bool,
    ) -> Result<PinnedSource, SandboxError> {
        if final_must_be_real
            && std::fs::symlink_metadata(configured).is_ok_and(|m| m.file_type().is_symlink())
        {
            return Err(changed(configured, "it is a symlink"));
        }
        let canonical = std::fs::canonicalize(configured).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                SandboxError::BindSourceMissing {
                    path: configured.to_path_buf(),
                }
            } else {
                changed(configured, "it cannot be resolved")
            }
        })?;
        let (pinned, id) = walk(configured, &canonical)?;
        Ok(PinnedSource {
            source: ValidatedSource {
                configured: configured.to_path_buf(),
                canonical,
                id,
                is_dir: matches!(pinned, Pinned::Dir(_)),
            },
            pinned,
        })
    }

    /// The check at use: `source.canonical` walked with no symlink in any component, and the
    /// same device and inode as recorded. `SANDBOX_MOUNT_CHANGED` otherwise.
    pub fn verify(source: &ValidatedSource) -> Result<PinnedSource, SandboxError> {
        let (pinned, id) = walk(&source.configured, &source.canonical)?;
        if id != source.id {
            return Err(changed(
                &source.configured,
                "it is no longer the directory validated at load (another device or inode)",
            ));
        }
        if source.is_dir != matches!(pinned, Pinned::Dir(_)) {
            return Err(changed(&source.configured, "its type changed"));
        }
        Ok(PinnedSource {
            source: source.clone(),
            pinned,
        })
    }

    /// The directory root (file binds have none: `NOT_A_DIRECTORY` through carapace-fs).
    pub fn into_root(self) -> Result<Root, SandboxError> {
        match self.pinned {
            Pinned::Dir(r) => Ok(r),
            Pinned::File(_) => Err(FsError::NotADirectory {
                path: self.source.configured,
                kind: carapace_fs::FileKind::File,
            }
            .into()),
        }
    }
}

/// Walks `canonical` from `/`, one component at a time, refusing a symlink anywhere.
fn walk(configured: &Path, canonical: &Path) -> Result<(Pinned, SourceId), SandboxError> {
    let comps: Vec<&std::ffi::OsStr> = canonical
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(Ok(n)),
            Component::RootDir => None,
            _ => Some(Err(())),
        })
        .collect::<Result<_, _>>()
        .map_err(|()| changed(configured, "its recorded path is not canonical"))?;
    if !canonical.is_absolute() {
        return Err(changed(configured, "its recorded path is not absolute"));
    }
    let mut dir = Root::open(Path::new("/"))?;
    let Some((last, parents)) = comps.split_last() else {
        return Err(changed(configured, "it is the host's root directory"));
    };
    for c in parents {
        dir = dir
            .open_subdir(Path::new(c))
            .map_err(|e| walk_error(configured, canonical, e))?;
    }
    let last = Path::new(last);
    let meta = dir
        .stat(last)
        .map_err(|e| walk_error(configured, canonical, e))?;
    if meta.kind == carapace_fs::FileKind::Symlink {
        return Err(changed(
            configured,
            "a component of its path is now a symlink",
        ));
    }
    let pinned = if meta.is_dir() {
        Pinned::Dir(
            dir.open_subdir(last)
                .map_err(|e| walk_error(configured, canonical, e))?,
        )
    } else {
        let opts = ReadOptions {
            symlinks: SymlinkPolicy::RefuseFinal,
            ..ReadOptions::default()
        };
        Pinned::File(
            dir.open_file(last, &opts)
                .map_err(|e| walk_error(configured, canonical, e))?
                .file,
        )
    };
    // Identity of what was actually opened (not of what the path named a moment ago).
    let st = match &pinned {
        Pinned::Dir(r) => r.stat(Path::new(""))?,
        Pinned::File(f) => {
            use std::os::unix::fs::MetadataExt;
            let m = f
                .metadata()
                .map_err(|_| changed(configured, "it cannot be inspected"))?;
            return Ok((
                pinned,
                SourceId {
                    dev: m.dev(),
                    ino: m.ino(),
                },
            ));
        }
    };
    Ok((
        pinned,
        SourceId {
            dev: st.dev,
            ino: st.ino,
        },
    ))
}

fn walk_error(configured: &Path, canonical: &Path, e: FsError) -> SandboxError {
    match e {
        FsError::SymlinkRefused { .. } | FsError::OutsideRoot { .. } => {
            changed(configured, "a component of its path is now a symlink")
        }
        FsError::NotFound { .. } => SandboxError::MountSourceChanged {
            path: configured.to_path_buf(),
            canonical: canonical.to_path_buf(),
            reason: "it no longer exists".into(),
        },
        e => e.into(),
    }
}

#[cold]
fn changed(path: &Path, reason: &str) -> SandboxError {
    SandboxError::MountSourceChanged {
        path: path.to_path_buf(),
        canonical: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use carapace_policy::{CarapaceError, ErrorCode};

    #[test]
    fn a_swapped_source_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("data");
        std::fs::create_dir(&src).unwrap();
        let rec = PinnedSource::record(&src, true).unwrap().source;
        assert!(PinnedSource::verify(&rec).is_ok());
        // Replaced by a symlink to /.
        std::fs::rename(&src, d.path().join("moved")).unwrap();
        std::os::unix::fs::symlink("/", &src).unwrap();
        let e = PinnedSource::verify(&rec).unwrap_err();
        assert_eq!(e.code(), ErrorCode::SandboxMountChanged, "{e}");
        // Replaced by another real directory.
        std::fs::remove_file(&src).unwrap();
        std::fs::create_dir(&src).unwrap();
        let e = PinnedSource::verify(&rec).unwrap_err();
        assert!(e.to_string().contains("inode"), "{e}");
        // A symlinked parent.
        std::fs::remove_dir(&src).unwrap();
        std::fs::rename(d.path().join("moved"), d.path().join("real")).unwrap();
        std::fs::create_dir(d.path().join("p")).unwrap();
        std::os::unix::fs::symlink(d.path().join("real"), d.path().join("p/data")).unwrap();
        let rec2 = ValidatedSource {
            canonical: d.path().join("p/data"),
            ..rec.clone()
        };
        assert_eq!(
            PinnedSource::verify(&rec2).unwrap_err().code(),
            ErrorCode::SandboxMountChanged
        );
        // Carapace's own directories must not be links even at validation.
        assert!(PinnedSource::record(&d.path().join("p/data"), true).is_err());
        // An operator's symlinked path is resolved once, at validation.
        let r = PinnedSource::record(&d.path().join("p/data"), false).unwrap();
        assert_eq!(
            r.source.canonical,
            std::fs::canonicalize(d.path().join("real")).unwrap()
        );
    }
}
