//! Where an inbound source keeps its platform cursor (Matrix `next_batch`, Telegram's next
//! update offset): `<state>/channels/<channel>[-<account>]/cursor.json`, replaced atomically and
//! durably through carapace-fs (file 0600, directories 0700: a cursor reveals activity).
//!
//! A source saves a cursor only after the sink accepted every message before it (see the
//! module docs of [`crate::inbound`]), so a crash between the two repeats messages (which the
//! sink ignores as duplicates) and never loses one.

use std::path::{Path, PathBuf};

use carapace_fs::{FsError, ReadOptions, Root, WriteOptions};
use serde::{Deserialize, Serialize};

use crate::ChannelError;

const FILE: &str = "cursor.json";

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    version: u32,
    cursor: String,
    #[serde(default)]
    updated_at_ms: i64,
}

/// One channel's persisted cursor.
#[derive(Debug)]
pub struct CursorStore {
    channel: String,
    dir: PathBuf,
    durable: bool,
}

/// The state directory of a channel account: `<state>/channels/<channel>[-<account>]`.
/// Characters outside `[A-Za-z0-9._-]` become `_`, so an id can never name a path.
pub fn channel_state_dir(state_dir: &Path, channel: &str, account: Option<&str>) -> PathBuf {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>()
            .trim_start_matches('.')
            .to_string()
    };
    let mut name = clean(channel);
    if let Some(a) = account.filter(|a| !a.is_empty() && *a != "default") {
        name.push('-');
        name.push_str(&clean(a));
    }
    if name.is_empty() {
        name.push('_');
    }
    state_dir.join("channels").join(name)
}

/// Opens `dir` (creating it and its missing parents 0700) as a root.
pub fn open_private_dir(dir: &Path) -> Result<Root, FsError> {
    Root::open_or_create(dir, 0o700)
}

impl CursorStore {
    /// The cursor of `channel` (and `account`) under `state_dir`. Nothing is created until the
    /// first save.
    pub fn new(state_dir: &Path, channel: &str, account: Option<&str>) -> CursorStore {
        CursorStore {
            channel: channel.to_string(),
            dir: channel_state_dir(state_dir, channel, account),
            durable: true,
        }
    }

    /// fsync on every save (default true; tests of timing only).
    pub fn with_durable(mut self, durable: bool) -> CursorStore {
        self.durable = durable;
        self
    }

    /// The file's host path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// The saved cursor; `None` on the first start. A corrupt file is an error (a source must
    /// not silently start over and answer history again).
    pub fn load(&self) -> Result<Option<String>, ChannelError> {
        let root = match Root::open(&self.dir) {
            Ok(r) => r,
            Err(FsError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(ChannelError::storage(&self.channel, e)),
        };
        let bytes = match root.read(Path::new(FILE), &ReadOptions::default().with_max(64 * 1024)) {
            Ok(b) => b,
            Err(FsError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(ChannelError::storage(&self.channel, e)),
        };
        let s: Stored = serde_json::from_slice(&bytes).map_err(|e| ChannelError::Storage {
            channel: self.channel.clone(),
            envelope: Box::new(
                carapace_policy::ErrorEnvelope::new(
                    carapace_policy::ErrorCode::BadRequest,
                    format!("{} is not a cursor file: {e}", self.path().display()),
                )
                .with_hint("remove it to start over (history is then not answered again)"),
            ),
        })?;
        Ok(Some(s.cursor))
    }

    /// Replaces the saved cursor atomically (0600).
    pub fn save(&self, cursor: &str) -> Result<(), ChannelError> {
        let root =
            open_private_dir(&self.dir).map_err(|e| ChannelError::storage(&self.channel, e))?;
        let body = serde_json::to_vec(&Stored {
            version: 1,
            cursor: cursor.to_string(),
            updated_at_ms: now_ms(),
        })
        .map_err(|e| ChannelError::Storage {
            channel: self.channel.clone(),
            envelope: Box::new(carapace_policy::ErrorEnvelope::new(
                carapace_policy::ErrorCode::Internal,
                format!("cannot encode the cursor: {e}"),
            )),
        })?;
        root.write(
            Path::new(FILE),
            &body,
            &WriteOptions::secret().with_durable(self.durable),
        )
        .map_err(|e| ChannelError::storage(&self.channel, e))?;
        Ok(())
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn round_trip_private_and_absent_first() {
        let d = tempfile::tempdir().unwrap();
        let c = CursorStore::new(&d.path().join("state"), "matrix", None);
        assert_eq!(c.load().unwrap(), None);
        c.save("s1_2_3").unwrap();
        c.save("s4_5_6").unwrap();
        assert_eq!(c.load().unwrap().as_deref(), Some("s4_5_6"));
        let mode = std::fs::metadata(c.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dmode = std::fs::metadata(c.path().parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
        std::fs::write(c.path(), b"garbage").unwrap();
        assert!(c.load().is_err(), "a corrupt cursor is not a first start");
    }

    #[test]
    fn ids_never_name_a_path() {
        let p = channel_state_dir(Path::new("/s"), "../etc", Some("a/b"));
        assert_eq!(p, Path::new("/s/channels/_etc-a_b"));
        assert!(p.starts_with("/s/channels"));
        assert_eq!(
            channel_state_dir(Path::new("/s"), "telegram", Some("default")),
            Path::new("/s/channels/telegram")
        );
    }
}
