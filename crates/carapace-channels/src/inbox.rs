//! Inbox: the embedded default channel. A message to `<kind>:<id>` is written under
//! `<inbox.dir>/<kind>-<id>/` (unsafe characters of the id replaced by `_`):
//!
//! - each attachment as `<message-id>-<n>-<filename>`, streamed from the verified fd with
//!   positional reads (exactly `size` bytes) and written atomically by carapace-fs;
//! - then `<message-id>.json` (`id`, `target`, `text`, `caption`, `attachments`, `createdAt`),
//!   also atomically. The JSON is written last: a message whose JSON exists is complete.
//!
//! Files are written 0644 and directories 0755 whatever the umask (the inbox is read by other
//! local programs). Message ids sort by time: `<unix-millis>-<uuid>`.

use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use carapace_fs::{Root, WriteOptions};
use serde_json::json;

use crate::{
    Attachment, ChannelAdapter, ChannelError, Delivered, DeliveredAttachment, OutboundMessage,
    Progress, ProgressUpdate, Target, check_message,
};

/// Default per-file limit of the inbox: 1 GiB.
pub const INBOX_DEFAULT_MAX_BYTES: u64 = 1024 * 1024 * 1024;

/// Settings of the inbox adapter.
#[derive(Debug, Clone)]
pub struct InboxSettings {
    /// The inbox directory (`channels.inbox.dir`, default `<state>/inbox`); created 0755.
    pub dir: PathBuf,
    /// Per-file limit (`mediaMaxMb`), default [`INBOX_DEFAULT_MAX_BYTES`].
    pub media_max_bytes: Option<u64>,
}

/// The inbox adapter.
#[derive(Debug)]
pub struct InboxAdapter {
    settings: InboxSettings,
}

/// Longest directory name the inbox creates (the usual filesystem `NAME_MAX`).
pub const MAX_DIR_NAME_BYTES: usize = 255;

/// The directory name of a target: `<kind>-<id>` with anything but ASCII letters, digits and
/// `.`, `_`, `-`, `@`, `:`, `!`, `+`, `=` replaced by `_`.
pub fn target_dir_name(t: &Target) -> String {
    let id: String = t
        .id()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-@:!+=".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}-{id}", t.kind())
}

fn safe_file_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let s: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() { "file".into() } else { s }
}

/// Reads exactly `size` bytes of a file from offset 0 with `pread`, failing if it ends early.
struct PreadExact<'a> {
    file: &'a std::fs::File,
    offset: u64,
    size: u64,
    index: usize,
    progress: Option<&'a Progress>,
}

impl Read for PreadExact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.offset >= self.size {
            return Ok(0);
        }
        let want = usize::try_from(self.size - self.offset)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.file.read_at(&mut buf[..want], self.offset)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "the file ended at byte {} of {}: it shrank after it was checked",
                    self.offset, self.size
                ),
            ));
        }
        self.offset += n as u64;
        if let Some(p) = self.progress {
            p.report(ProgressUpdate {
                index: self.index,
                sent: self.offset,
                total: self.size,
            });
        }
        Ok(n)
    }
}

fn not_configured(reason: String) -> ChannelError {
    ChannelError::NotConfigured {
        channel: "inbox".into(),
        reason,
    }
}

impl InboxAdapter {
    /// Builds the adapter (the directory is created on first send).
    pub fn new(settings: InboxSettings) -> InboxAdapter {
        InboxAdapter { settings }
    }

    fn write_message(
        dir: &Path,
        target: &Target,
        text: Option<String>,
        caption: Option<String>,
        attachments: Vec<Attachment>,
        progress: Option<Progress>,
    ) -> Result<Delivered, ChannelError> {
        let root = Root::open_or_create(dir, 0o755)
            .map_err(|e| not_configured(format!("cannot open {}: {e}", dir.display())))?;
        let tdir = target_dir_name(target);
        if tdir.len() > MAX_DIR_NAME_BYTES {
            let limit = MAX_DIR_NAME_BYTES - target.kind().len() - 1;
            return Err(ChannelError::BadRequest {
                message: format!(
                    "the inbox target id is {} bytes; the inbox keeps each target in a directory named <kind>-<id>, so a {} id may be at most {limit} bytes",
                    target.id().len(),
                    target.kind()
                ),
            });
        }
        root.mkdir_all(Path::new(&tdir), 0o755)
            .map_err(|e| not_configured(format!("cannot create {tdir}: {e}")))?;
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let id = format!("{millis}-{}", uuid::Uuid::new_v4());
        let opts = WriteOptions::default().with_new_file_mode(0o644);
        let mut delivered = Delivered::default();
        let mut entries = Vec::new();
        for (i, a) in attachments.iter().enumerate() {
            let name = format!("{id}-{}-{}", i + 1, safe_file_name(&a.filename));
            let rel = Path::new(&tdir).join(&name);
            let mut src = PreadExact {
                file: &a.file,
                offset: 0,
                size: a.size,
                index: i,
                progress: progress.as_ref(),
            };
            let out = root.create_from(&rel, &mut src, &opts).map_err(|e| {
                ChannelError::AttachmentRead {
                    channel: "inbox".into(),
                    filename: a.filename.clone(),
                    reason: e.to_string(),
                }
                .after_partial(&delivered)
            })?;
            let remote = format!("{tdir}/{name}");
            entries.push(json!({
                "file": name,
                "filename": a.filename,
                "mime": a.mime,
                "bytes": out.bytes,
                "width": a.width,
                "height": a.height,
            }));
            delivered.attachments.push(DeliveredAttachment {
                remote_id: remote,
                filename: a.filename.clone(),
                bytes: out.bytes,
            });
        }
        let created = humantime_rfc3339(SystemTime::now());
        let doc = json!({
            "id": id,
            "target": target.to_string(),
            "text": text,
            "caption": caption,
            "attachments": entries,
            "createdAt": created,
        });
        let body = serde_json::to_vec_pretty(&doc).unwrap_or_default();
        let rel = Path::new(&tdir).join(format!("{id}.json"));
        root.create(&rel, &body, &opts.clone().with_durable(true))
            .map_err(|e| not_configured(format!("cannot write the message: {e}")))?;
        delivered.remote_id = id;
        Ok(delivered)
    }
}

/// RFC 3339 UTC time with second precision, without a date crate.
fn humantime_rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[async_trait::async_trait]
impl ChannelAdapter for InboxAdapter {
    fn id(&self) -> &str {
        "inbox"
    }

    fn max_attachment_bytes(&self) -> u64 {
        self.settings
            .media_max_bytes
            .unwrap_or(INBOX_DEFAULT_MAX_BYTES)
    }

    async fn send(&self, msg: OutboundMessage) -> Result<Delivered, ChannelError> {
        check_message("inbox", self.max_attachment_bytes(), &msg)?;
        let dir = self.settings.dir.clone();
        tokio::task::spawn_blocking(move || {
            InboxAdapter::write_message(
                &dir,
                &msg.target,
                msg.text,
                msg.caption,
                msg.attachments,
                msg.progress,
            )
        })
        .await
        .map_err(|e| not_configured(format!("inbox writer failed: {e}")))?
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            target_dir_name(&Target::parse("room:!a/b:ex.org").unwrap()),
            "room-!a_b:ex.org"
        );
        assert_eq!(
            target_dir_name(&Target::parse("user:..").unwrap()),
            "user-.."
        );
        assert_eq!(safe_file_name("../../x y.png"), "x_y.png");
        assert_eq!(safe_file_name(".."), "file");
        assert_eq!(humantime_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            humantime_rfc3339(UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000)),
            "2023-11-14T22:13:20Z"
        );
    }
}
