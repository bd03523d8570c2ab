//! The outbound reader (docs/channels.md): a path as the agent names it → one verified, pinned fd that
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
//!
//! [`check_file`] is the one home of this rule: [`open_outbound`] (sends) and
//! [`crate::MediaStore::import_checked`] (`media_save` of a path: a copy in the media store is
//! sendable, so copying is leaving) both call it.

use std::path::{Component, Path, PathBuf};

use carapace_channels::Attachment;
use carapace_fs::{FsError, ReadOptions, Root};
use carapace_policy::mounts::{Access, MountKind, MountTable, plan};
use carapace_policy::{Config, EffectiveSandbox};

use crate::MediaError;
use crate::dims::{head, image_dimensions};
use crate::sniff::{self, SNIFF_BYTES};

/// A directory files may be sent from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedRoot {
    /// `media`, `workspace`, `sandbox`, `agent` or `extraRoot` (for messages and doctor).
    pub kind: String,
    /// Host path.
    pub host: PathBuf,
}

/// The policy of one send: allowed roots, the session's mount table and `allowOwnerOnly`.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    /// Allowed roots.
    pub roots: Vec<AllowedRoot>,
    /// The session's mounts (`carapace_policy::mounts::plan`): container path → host path.
    pub table: Option<MountTable>,
    /// Send owner-only files too.
    pub allow_owner_only: bool,
}

impl OutboundPolicy {
    /// The policy for a session whose mounts are `table`: allowed roots are the media dir,
    /// the host dirs of `/workspace` and `/agent` in the table, and `extraRoots` (user binds
    /// are not roots unless listed there).
    pub fn new(config: &Config, table: Option<MountTable>) -> OutboundPolicy {
        let p = &config.file.tools.message.outbound_media_policy;
        let mut roots = vec![AllowedRoot {
            kind: "media".into(),
            host: config.media_dir(),
        }];
        for m in table.iter().flat_map(|t| t.mounts.iter()) {
            let kind = match (m.kind, table.as_ref().is_some_and(|t| t.sandboxed)) {
                (MountKind::Workspace, true) => "sandbox",
                (MountKind::Workspace, false) => "workspace",
                (MountKind::Agent, _) => "agent",
                (MountKind::Bind, _) => continue,
            };
            roots.push(AllowedRoot {
                kind: kind.into(),
                host: m.host_path.clone(),
            });
        }
        for r in &p.extra_roots {
            roots.push(AllowedRoot {
                kind: "extraRoot".into(),
                host: PathBuf::from(r),
            });
        }
        OutboundPolicy {
            roots,
            table,
            allow_owner_only: p.allow_owner_only,
        }
    }

    /// The policy of the session `eff` (mounts planned by `carapace_policy::mounts::plan`).
    /// Only what the session's table mounts counts as its workspace: a sandboxed session with
    /// `workspaceAccess: "none"` cannot send from the agent workspace by host path either.
    pub fn for_session(config: &Config, eff: &EffectiveSandbox) -> OutboundPolicy {
        OutboundPolicy::new(config, Some(plan(eff)))
    }

    /// Maps `path` to a host path (step 1, lexical part): agent paths through the mount table,
    /// other absolute paths as host paths (with no `..`).
    pub fn host_path(&self, path: &str) -> Result<PathBuf, MediaError> {
        if path.trim().is_empty() || path.contains('\0') {
            return Err(MediaError::BadRequest(format!(
                "{path:?} is not a file path"
            )));
        }
        if let Some(t) = &self.table
            && t.is_agent_path(path)
        {
            let r = t
                .resolve(path, Access::Read)
                .map_err(|e| MediaError::BadRequest(e.to_string()))?;
            return Ok(r.host_path());
        }
        let p = Path::new(path);
        if !p.is_absolute() {
            // Relative to /workspace but outside every mount once normalised (`../x`).
            return Err(match &self.table {
                Some(_) => self.outside(path),
                None => MediaError::BadRequest(format!(
                    "{path:?} is relative to /workspace, but this session has no /workspace mount"
                )),
            });
        }
        if p.components().any(|c| c == Component::ParentDir) {
            return Err(self.outside(path));
        }
        Ok(p.to_path_buf())
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

/// The permission policy of outbound media, the one place it is decided (the outbound reader
/// and `carapace doctor` both call it): a file may leave only with the others-read bit, unless
/// `allowOwnerOnly`.
pub fn mode_is_sendable(mode: u32, allow_owner_only: bool) -> bool {
    allow_owner_only || mode & 0o004 != 0
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

/// What a file is checked for: the size limit that applies and the error that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose<'a> {
    /// Sending over `channel`, whose per-file limit is `limit` bytes
    /// (`OUTBOUND_MEDIA_TOO_LARGE`).
    Send {
        /// The channel id.
        channel: &'a str,
        /// Its per-file limit.
        limit: u64,
    },
    /// Copying into the media store (`media_save`), whose limit is `media.maxBytes`
    /// (`TOO_LARGE`). A copy in the store is sendable, so it passes the same checks as a send.
    Import {
        /// `media.maxBytes`.
        limit: u64,
    },
}

/// A file that passed checks 1–4 of the module docs: the verified fd and where it is.
#[derive(Debug)]
pub struct CheckedFile {
    /// The fd that passed (stream this one; never re-open the path).
    pub file: carapace_fs::VerifiedFile,
    /// The path as the caller named it.
    pub path: String,
    /// Its host path.
    pub host_path: PathBuf,
    /// Which allowed root it is in.
    pub root_kind: String,
    /// Its file name (for the recipient, or the media-store name).
    pub file_name: String,
}

/// The outbound rule, in one place: checks 1–4 of the module docs on `path`, in order. Every
/// way a file leaves carapace — a send, or a copy into the media store, from which it can be
/// sent — calls this.
pub fn check_file(
    policy: &OutboundPolicy,
    path: &str,
    purpose: Purpose<'_>,
) -> Result<CheckedFile, MediaError> {
    let host = policy.host_path(path)?;
    let (root, rel) = policy.root_of(&host).ok_or_else(|| policy.outside(path))?;
    let dir = Root::open(&root.host).map_err(|e| MediaError::fs(path, e))?;
    let limit = match purpose {
        Purpose::Send { limit, .. } | Purpose::Import { limit } => limit,
    };
    let vf = dir
        .open_file(&rel, &ReadOptions::outbound(limit))
        .map_err(|e| match (e, purpose) {
            (FsError::TooLarge { size, limit, .. }, Purpose::Send { channel, .. }) => {
                MediaError::OutboundTooLarge {
                    path: path.to_string(),
                    channel: channel.to_string(),
                    size: size.unwrap_or(limit + 1),
                    limit,
                }
            }
            (FsError::TooLarge { limit, .. }, Purpose::Import { .. }) => MediaError::TooLarge {
                what: path.to_string(),
                limit,
            },
            (e, _) => MediaError::fs(path, e),
        })?;
    if !mode_is_sendable(vf.meta.mode, policy.allow_owner_only) {
        return Err(MediaError::PermsTooRestrictive {
            path: path.to_string(),
            host_path: host,
            mode: vf.meta.mode,
        });
    }
    let file_name = rel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    Ok(CheckedFile {
        file: vf,
        path: path.to_string(),
        host_path: host,
        root_kind: root.kind.clone(),
        file_name,
    })
}

/// Runs the checks of the module docs on `path` for `channel`, whose per-file limit is
/// `limit` bytes, and turns the verified fd into an attachment.
pub fn open_outbound(
    policy: &OutboundPolicy,
    path: &str,
    channel: &str,
    limit: u64,
) -> Result<OutboundFile, MediaError> {
    let CheckedFile {
        file: mut vf,
        path,
        host_path,
        root_kind,
        file_name,
    } = check_file(policy, path, Purpose::Send { channel, limit })?;
    let meta = vf.meta.clone();
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
        path,
        host_path,
        mode: meta.mode,
        root_kind,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn policy() -> OutboundPolicy {
        use carapace_policy::mounts::Mount;
        let m = |host: &str, c: &str, kind| Mount {
            host_path: host.into(),
            container_path: c.into(),
            writable: true,
            kind,
        };
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
            table: Some(MountTable {
                sandboxed: true,
                mounts: vec![
                    m("/s/ws/sb/x", "/workspace", MountKind::Workspace),
                    m("/s/ws", "/agent", MountKind::Agent),
                ],
            }),
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
