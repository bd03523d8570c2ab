//! The outbound reader (SPEC §6): a path as the agent names it → one verified, pinned fd that
//! is handed to a channel as an [`Attachment`]. The checks, in order:
//!
//! 1. **where**: a container path (`/workspace/…`, `/agent/…`, or relative to `/workspace`) is
//!    mapped through the session's mounts; any other absolute path is a host path. The host
//!    path must lie inside an allowed root (media dir, the session's workspace / sandbox dirs,
//!    `extraRoots`) — else `OUTBOUND_MEDIA_OUTSIDE_ROOTS`. `..` is never accepted.
//! 2. **what**: opened beneath that root by carapace-fs (`O_NONBLOCK`, fstat on the fd):
//!    a regular file (`NOT_REGULAR_FILE`: FIFOs never block), no final symlink and no symlink
//!    leading out (`SYMLINK_REFUSED` / `PATH_OUTSIDE_ROOT`), not hardlinked (`HARDLINK_REFUSED`).
//!    The OS refusing the open is `PERMISSION_DENIED` with owner, mode and carapace's uid.
//! 3. **size** within the channel's limit (`OUTBOUND_MEDIA_TOO_LARGE`).
//! 4. **permissions**: no others-read bit → `OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE` unless
//!    `tools.message.outboundMediaPolicy.allowOwnerOnly`.
//!
//! Every check is made on the one fd that is then streamed; nothing re-opens the path.

use std::path::{Component, Path, PathBuf};

use carapace_channels::Attachment;
use carapace_fs::{FsError, ReadOptions, Root};
use carapace_policy::{Config, EffectiveSandbox};

use crate::MediaError;
use crate::dims::{head, image_dimensions};
use crate::sniff::{self, SNIFF_BYTES};

/// One entry of the session's mount table as the outbound reader needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Path inside the sandbox (`/workspace`, `/agent`).
    pub container: PathBuf,
    /// Host directory behind it.
    pub host: PathBuf,
}

/// A directory files may be sent from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedRoot {
    /// `media`, `workspace`, `sandbox`, `agent` or `extraRoot` (for messages and doctor).
    pub kind: String,
    /// Host path.
    pub host: PathBuf,
}

/// The policy of one send: allowed roots, the session's mounts and `allowOwnerOnly`.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    /// Allowed roots.
    pub roots: Vec<AllowedRoot>,
    /// Container path → host path mapping of the session.
    pub mounts: Vec<Mount>,
    /// Send owner-only files too.
    pub allow_owner_only: bool,
}

impl OutboundPolicy {
    /// The policy for a session: the media dir, `extraRoots`, the agent workspace and — when
    /// the session is sandboxed — its sandbox dir. Mounts: `/workspace` is the agent workspace
    /// when the session is not sandboxed; sandboxed sessions get their mount table from the
    /// caller (see [`OutboundPolicy::with_mounts`]).
    pub fn from_config(config: &Config, session: Option<&EffectiveSandbox>) -> OutboundPolicy {
        let p = &config.file.tools.message.outbound_media_policy;
        let mut roots = vec![AllowedRoot {
            kind: "media".into(),
            host: config.media_dir(),
        }];
        let workspace = session.map_or_else(
            || config.agent_workspace("main").value,
            |s| s.agent_workspace.value.clone(),
        );
        roots.push(AllowedRoot {
            kind: "workspace".into(),
            host: workspace.clone(),
        });
        let mut mounts = Vec::new();
        match session {
            Some(s) if s.sandboxed => {
                roots.push(AllowedRoot {
                    kind: "sandbox".into(),
                    host: s.sandbox_dir.clone(),
                });
            }
            _ => mounts.push(Mount {
                container: PathBuf::from("/workspace"),
                host: workspace,
            }),
        }
        for r in &p.extra_roots {
            roots.push(AllowedRoot {
                kind: "extraRoot".into(),
                host: PathBuf::from(r),
            });
        }
        OutboundPolicy {
            roots,
            mounts,
            allow_owner_only: p.allow_owner_only,
        }
    }

    /// Replaces the mount table (the sandboxed session's, from the mount planner). The host
    /// dirs of `/workspace` and `/agent` become allowed roots.
    pub fn with_mounts(mut self, mounts: Vec<Mount>) -> OutboundPolicy {
        for m in &mounts {
            if (m.container == Path::new("/workspace") || m.container == Path::new("/agent"))
                && !self.roots.iter().any(|r| r.host == m.host)
            {
                self.roots.push(AllowedRoot {
                    kind: if m.container == Path::new("/agent") {
                        "agent".into()
                    } else {
                        "workspace".into()
                    },
                    host: m.host.clone(),
                });
            }
        }
        self.mounts = mounts;
        self
    }

    /// Maps `path` to a host path (step 1, lexical part).
    pub fn host_path(&self, path: &str) -> Result<PathBuf, MediaError> {
        if path.is_empty() || path.contains('\0') {
            return Err(MediaError::BadRequest(format!(
                "{path:?} is not a file path"
            )));
        }
        let p = Path::new(path);
        if p.components().any(|c| c == Component::ParentDir) {
            return Err(self.outside(path));
        }
        let container = if p.is_absolute() {
            p.to_path_buf()
        } else {
            Path::new("/workspace").join(p)
        };
        let mapped = self
            .mounts
            .iter()
            .filter_map(|m| {
                container
                    .strip_prefix(&m.container)
                    .ok()
                    .map(|rel| (m.container.components().count(), m.host.join(rel)))
            })
            .max_by_key(|(n, _)| *n)
            .map(|(_, h)| h);
        match mapped {
            Some(h) => Ok(h),
            None if p.is_absolute() => Ok(p.to_path_buf()),
            None => Err(MediaError::BadRequest(format!(
                "{path:?} is relative to /workspace, but this session has no /workspace mount"
            ))),
        }
    }

    /// The allowed root containing `host` (the most specific one) and the path beneath it.
    pub fn root_of<'a>(&'a self, host: &Path) -> Option<(&'a AllowedRoot, PathBuf)> {
        self.roots
            .iter()
            .filter_map(|r| {
                host.strip_prefix(&r.host)
                    .ok()
                    .map(|rel| (r, rel.to_path_buf()))
            })
            .filter(|(_, rel)| !rel.as_os_str().is_empty())
            .max_by_key(|(r, _)| r.host.components().count())
    }

    fn outside(&self, path: &str) -> MediaError {
        MediaError::OutsideRoots {
            path: path.to_string(),
            roots: self.roots.iter().map(|r| r.host.clone()).collect(),
        }
    }
}

/// A file that passed every check, ready to be handed to a channel.
#[derive(Debug)]
pub struct OutboundFile {
    /// The verified fd and what the channel needs to know about it.
    pub attachment: Attachment,
    /// The path as the caller named it.
    pub path: String,
    /// Its host path.
    pub host_path: PathBuf,
    /// Its permission bits at check time.
    pub mode: u32,
    /// Which allowed root it is in.
    pub root_kind: String,
}

/// The name recipients see: a media-store name `<stem>---<uuid>.<ext>` is shown as
/// `<stem>.<ext>`.
pub fn display_name(file_name: &str) -> String {
    if let Some((stem, rest)) = file_name.split_once(crate::store::NAME_SEPARATOR)
        && let Some((id, ext)) = rest.rsplit_once('.')
        && uuid::Uuid::parse_str(id).is_ok()
        && !stem.is_empty()
    {
        return format!("{stem}.{ext}");
    }
    file_name.to_string()
}

/// Runs the checks of the module docs on `path` for `channel`, whose per-file limit is
/// `limit` bytes.
pub fn open_outbound(
    policy: &OutboundPolicy,
    path: &str,
    channel: &str,
    limit: u64,
) -> Result<OutboundFile, MediaError> {
    let host = policy.host_path(path)?;
    let (root, rel) = policy.root_of(&host).ok_or_else(|| policy.outside(path))?;
    let dir = Root::open(&root.host).map_err(|e| MediaError::fs(path, e))?;
    let mut vf = dir
        .open_file(&rel, &ReadOptions::outbound(limit))
        .map_err(|e| match e {
            FsError::TooLarge { size, limit, .. } => MediaError::OutboundTooLarge {
                path: path.to_string(),
                channel: channel.to_string(),
                size: size.unwrap_or(limit + 1),
                limit,
            },
            e => MediaError::fs(path, e),
        })?;
    let meta = vf.meta.clone();
    if meta.mode & 0o004 == 0 && !policy.allow_owner_only {
        return Err(MediaError::PermsTooRestrictive {
            path: path.to_string(),
            host_path: host,
            mode: meta.mode,
        });
    }
    let file_name = rel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let kind = sniff::detect(&head(&vf.file, SNIFF_BYTES), None, Some(&file_name));
    let (width, height) = if kind.mime.starts_with("image/") {
        image_dimensions(&vf.file, meta.size).map_or((None, None), |(w, h)| (Some(w), Some(h)))
    } else {
        (None, None)
    };
    // Positional reads only from here on; make sure the offset is 0 for adapters that read.
    let _ = std::io::Seek::rewind(&mut vf.file);
    Ok(OutboundFile {
        attachment: Attachment {
            file: vf.file,
            size: meta.size,
            filename: display_name(&file_name),
            mime: kind.mime,
            width,
            height,
        },
        path: path.to_string(),
        host_path: host,
        mode: meta.mode,
        root_kind: root.kind.clone(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn policy() -> OutboundPolicy {
        OutboundPolicy {
            roots: vec![
                AllowedRoot {
                    kind: "media".into(),
                    host: "/s/media".into(),
                },
                AllowedRoot {
                    kind: "workspace".into(),
                    host: "/s/ws".into(),
                },
                AllowedRoot {
                    kind: "sandbox".into(),
                    host: "/s/ws/sb".into(),
                },
            ],
            mounts: vec![
                Mount {
                    container: "/workspace".into(),
                    host: "/s/ws/sb/x".into(),
                },
                Mount {
                    container: "/agent".into(),
                    host: "/s/ws".into(),
                },
            ],
            allow_owner_only: false,
        }
    }

    #[test]
    fn mapping() {
        let p = policy();
        assert_eq!(
            p.host_path("a.png").unwrap(),
            PathBuf::from("/s/ws/sb/x/a.png")
        );
        assert_eq!(
            p.host_path("/workspace/d/a.png").unwrap(),
            PathBuf::from("/s/ws/sb/x/d/a.png")
        );
        assert_eq!(
            p.host_path("/agent/a.png").unwrap(),
            PathBuf::from("/s/ws/a.png")
        );
        assert_eq!(
            p.host_path("/workspacex/a").unwrap(),
            PathBuf::from("/workspacex/a")
        );
        assert_eq!(
            p.host_path("/etc/hostname").unwrap(),
            PathBuf::from("/etc/hostname")
        );
        assert!(p.host_path("../x").is_err());
        assert!(p.host_path("/s/media/../../etc/passwd").is_err());
        let (r, rel) = p.root_of(Path::new("/s/ws/sb/x/a.png")).unwrap();
        assert_eq!(
            (r.kind.as_str(), rel),
            ("sandbox", PathBuf::from("x/a.png"))
        );
        assert!(p.root_of(Path::new("/s/media")).is_none());
        assert!(p.root_of(Path::new("/s/mediax/a")).is_none());
        assert!(p.root_of(Path::new("/etc/hostname")).is_none());
    }

    #[test]
    fn display_names() {
        assert_eq!(
            display_name("shot---0b7f1b7e-8f0a-4c56-9d1e-2a3b4c5d6e7f.png"),
            "shot.png"
        );
        assert_eq!(display_name("a---b.png"), "a---b.png");
        assert_eq!(display_name("plain.png"), "plain.png");
    }
}
