//! The media store: one directory, written only through carapace-fs.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use carapace_fs::{FileKind, ReadOptions, RemoveOptions, Root, WriteOptions};
use carapace_policy::Config;
use serde::Serialize;

use crate::MediaError;
use crate::sniff::{self, SNIFF_BYTES};

/// Default `media.maxBytes`: 5 MiB (OpenClaw's).
pub const DEFAULT_MAX_BYTES: u64 = 5 * 1024 * 1024;
/// Default `media.ttlHours`.
pub const DEFAULT_TTL_HOURS: f64 = 48.0;
/// Mode of directories the store creates.
pub const DIR_MODE: u32 = 0o755;
/// Separator between the original name and the uuid.
pub const NAME_SEPARATOR: &str = "---";

/// What the store needs from the config.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaSettings {
    /// The media directory (created, 0755, when missing).
    pub dir: PathBuf,
    /// Mode of saved files (`media.fileMode`, default 0644).
    pub file_mode: u32,
    /// Largest file (`media.maxBytes`).
    pub max_bytes: u64,
    /// Age after which `prune` removes a file.
    pub ttl: Duration,
    /// Allow downloads from private / loopback addresses.
    pub allow_private_network: bool,
}

impl MediaSettings {
    /// From the `media` section.
    pub fn from_config(config: &Config) -> MediaSettings {
        let m = &config.file.media;
        let hours = m.ttl_hours.unwrap_or(DEFAULT_TTL_HOURS).max(0.0);
        MediaSettings {
            dir: config.media_dir(),
            file_mode: m.file_mode.map_or(0o644, |x| x.0 & 0o7777),
            max_bytes: m.max_bytes.unwrap_or(DEFAULT_MAX_BYTES),
            ttl: Duration::from_secs_f64(hours * 3600.0),
            allow_private_network: m.allow_private_network.unwrap_or(false),
        }
    }
}

/// A file the store saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SavedMedia {
    /// Host path of the saved file (what `message` accepts as an attachment path).
    pub path: PathBuf,
    /// File name inside the media dir.
    pub name: String,
    /// Sniffed / decided MIME type.
    pub mime: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Mode, `"0644"`.
    pub mode: String,
}

/// One file of the store, as `list` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaEntry {
    /// File name.
    pub name: String,
    /// Host path.
    pub path: PathBuf,
    /// Size.
    pub bytes: u64,
    /// Mode, `"0644"`.
    pub mode: String,
    /// Age in seconds.
    pub age_seconds: u64,
}

/// The media store.
#[derive(Debug)]
pub struct MediaStore {
    root: Root,
    settings: MediaSettings,
}

/// `<sanitized-original>` of a name: its stem with anything but ASCII letters, digits, `.`,
/// `_` and `-` replaced by `_`, runs collapsed, trimmed, at most 60 chars; `None` if nothing
/// is left.
pub fn sanitize_stem(original: &str) -> Option<String> {
    let base = original.rsplit(['/', '\\']).next().unwrap_or(original);
    let stem = match base.rsplit_once('.') {
        Some((s, _)) if !s.is_empty() => s,
        _ => base,
    };
    let mut out = String::new();
    for c in stem.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
            c
        } else {
            '_'
        };
        if c == '_' && out.ends_with('_') {
            continue;
        }
        out.push(c);
    }
    // "---" is the separator; keep it unambiguous.
    while out.contains("---") {
        out = out.replace("---", "--");
    }
    let out: String = out
        .trim_matches(|c| c == '_' || c == '.' || c == '-')
        .chars()
        .take(60)
        .collect();
    (!out.is_empty()).then_some(out)
}

impl MediaStore {
    /// Opens (creating it 0755 when missing) the media directory.
    pub fn open(settings: MediaSettings) -> Result<MediaStore, MediaError> {
        let root = Root::open_or_create(&settings.dir, DIR_MODE)
            .map_err(|e| MediaError::fs(&settings.dir.to_string_lossy(), e))?;
        Ok(MediaStore { root, settings })
    }

    /// The settings.
    pub fn settings(&self) -> &MediaSettings {
        &self.settings
    }

    /// The media directory's host path.
    pub fn dir(&self) -> &Path {
        &self.settings.dir
    }

    fn name_for(&self, original: Option<&str>, ext: &str) -> String {
        let id = uuid::Uuid::new_v4();
        match original.and_then(sanitize_stem) {
            Some(stem) => format!("{stem}{NAME_SEPARATOR}{id}.{ext}"),
            None => format!("{id}.{ext}"),
        }
    }

    fn opts(&self) -> WriteOptions {
        WriteOptions {
            new_file_mode: self.settings.file_mode,
            force_mode: Some(self.settings.file_mode),
            max_bytes: Some(self.settings.max_bytes),
            ..WriteOptions::default()
        }
    }

    /// Saves `data`. `original` is the name it came with, `declared` its declared type.
    pub fn save_bytes(
        &self,
        data: &[u8],
        original: Option<&str>,
        declared: Option<&str>,
    ) -> Result<SavedMedia, MediaError> {
        self.save_stream(&mut std::io::Cursor::new(data), original, declared)
    }

    /// Streams `src` into the store (never more than `media.maxBytes` + 1 bytes are read).
    pub fn save_stream(
        &self,
        src: &mut dyn Read,
        original: Option<&str>,
        declared: Option<&str>,
    ) -> Result<SavedMedia, MediaError> {
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        src.take(SNIFF_BYTES as u64)
            .read_to_end(&mut head)
            .map_err(|e| MediaError::Internal(format!("reading the media source failed: {e}")))?;
        let kind = sniff::detect(&head, declared, original);
        let name = self.name_for(original, &kind.ext);
        let mut chained = std::io::Cursor::new(head).chain(src);
        let what = original.unwrap_or("the media").to_string();
        let out = self
            .root
            .create_from(Path::new(&name), &mut chained, &self.opts())
            .map_err(|e| match e {
                carapace_fs::FsError::TooLarge { limit, .. } => {
                    MediaError::TooLarge { what, limit }
                }
                e => MediaError::fs(&name, e),
            })?;
        Ok(SavedMedia {
            path: self.settings.dir.join(&name),
            name,
            mime: kind.mime,
            bytes: out.bytes,
            mode: carapace_policy::mode_string(out.mode),
        })
    }

    /// Copies the regular file `rel` beneath `src` into the store (same checks as any read:
    /// no final symlink, no escape, no FIFO; capped at `media.maxBytes`). The copy gets the
    /// store's mode, never the source's.
    pub fn import_file(&self, src: &Root, rel: &Path) -> Result<SavedMedia, MediaError> {
        let shown = src.host_path().join(rel).to_string_lossy().into_owned();
        let mut vf = src
            .open_file(
                rel,
                &ReadOptions::default().with_max(self.settings.max_bytes),
            )
            .map_err(|e| match e {
                carapace_fs::FsError::TooLarge { limit, .. } => MediaError::TooLarge {
                    what: shown.clone(),
                    limit,
                },
                e => MediaError::fs(&shown, e),
            })?;
        let original = rel.file_name().map(|n| n.to_string_lossy().into_owned());
        self.save_stream(&mut vf.file, original.as_deref(), None)
    }

    /// Copies the file an agent names (`media_save` of a path) into the store, after the very
    /// checks a send makes ([`crate::outbound::check_file`]: allowed root, regular file, no
    /// symlink, no hard link, `media.maxBytes`, others-read bit unless `allowOwnerOnly`). A
    /// copy in the store can be sent, so a file `message` refuses is refused here too.
    pub fn import_checked(
        &self,
        policy: &crate::OutboundPolicy,
        path: &str,
    ) -> Result<SavedMedia, MediaError> {
        let mut checked = crate::outbound::check_file(
            policy,
            path,
            crate::outbound::Purpose::Import {
                limit: self.settings.max_bytes,
            },
        )?;
        let name = checked.file_name.clone();
        self.save_stream(&mut checked.file.file, Some(&name), None)
            .map_err(|e| match e {
                MediaError::TooLarge { limit, .. } => MediaError::TooLarge {
                    what: path.to_string(),
                    limit,
                },
                e => e,
            })
    }

    /// Imports a host file by path (the CLI's `media save PATH`, run by the operator): its parent directory is
    /// opened as the root and the final component must not be a symlink.
    pub fn import_host_path(&self, path: &Path) -> Result<SavedMedia, MediaError> {
        let shown = path.to_string_lossy().into_owned();
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(MediaError::BadRequest(format!(
                "{shown} does not name a file"
            )));
        };
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        let root = Root::open(parent).map_err(|e| MediaError::fs(&shown, e))?;
        self.import_file(&root, Path::new(name))
    }

    /// The files of the store, oldest first.
    pub fn list(&self) -> Result<Vec<MediaEntry>, MediaError> {
        let now = SystemTime::now();
        let mut v: Vec<MediaEntry> = self
            .root
            .list(Path::new(""))
            .map_err(|e| MediaError::fs(&self.settings.dir.to_string_lossy(), e))?
            .into_iter()
            .filter(|e| {
                e.meta.kind == FileKind::File && !e.name.starts_with(carapace_fs::STAGING_PREFIX)
            })
            .map(|e| MediaEntry {
                path: self.settings.dir.join(&e.name),
                bytes: e.meta.size,
                mode: carapace_policy::mode_string(e.meta.mode),
                age_seconds: now
                    .duration_since(e.meta.mtime)
                    .map(|d| d.as_secs())
                    .unwrap_or(0),
                name: e.name,
            })
            .collect();
        v.sort_by(|a, b| b.age_seconds.cmp(&a.age_seconds).then(a.name.cmp(&b.name)));
        Ok(v)
    }

    /// Removes files older than `older_than` (default: the TTL) and stale staging files;
    /// returns the names removed.
    pub fn prune(&self, older_than: Option<Duration>) -> Result<Vec<String>, MediaError> {
        let ttl = older_than.unwrap_or(self.settings.ttl);
        let ttl_secs = ttl.as_secs();
        let mut removed = Vec::new();
        for e in self.list()? {
            if e.age_seconds >= ttl_secs {
                self.root
                    .remove(
                        Path::new(&e.name),
                        &RemoveOptions {
                            missing_ok: true,
                            ..RemoveOptions::default()
                        },
                    )
                    .map_err(|err| MediaError::fs(&e.name, err))?;
                removed.push(e.name);
            }
        }
        let _ = self
            .root
            .sweep_staging(Path::new(""), Duration::from_secs(3600));
        Ok(removed)
    }

    /// The pinned root of the media dir.
    pub fn root(&self) -> &Root {
        &self.root
    }
}

impl MediaStore {
    /// A store over an already-open root (used to move a store into a blocking task).
    pub(crate) fn from_parts(root: Root, settings: MediaSettings) -> MediaStore {
        MediaStore { root, settings }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn sanitize() {
        assert_eq!(
            sanitize_stem("My Shot (1).png").as_deref(),
            Some("My_Shot_1")
        );
        assert_eq!(
            sanitize_stem("/a/b/../évil name.tar.gz").as_deref(),
            Some("vil_name.tar")
        );
        assert_eq!(sanitize_stem("a---b.png").as_deref(), Some("a--b"));
        assert_eq!(sanitize_stem("....png"), None);
        assert_eq!(sanitize_stem("").as_deref(), None);
        assert_eq!(sanitize_stem(&"x".repeat(200)).unwrap().len(), 60);
    }
}
