//! The journal of one channel: every message the service accepted, the reply it planned, and
//! when it was done — `<state>/channels/<channel>/journal.jsonl` (0600, appended one record per
//! `write` and fsynced through carapace-fs).
//!
//! This is what makes a restart neither lose nor repeat a message:
//! - a message is recorded `accepted` **before** the source may move its cursor past it
//!   ([`InboundSink::deliver`](carapace_channels::inbound::InboundSink::deliver) returns only
//!   then), so a crash after that point finds it here and handles it on the next start;
//! - the reply is recorded (`reply`: text and attachment paths) **before** it is sent, so a
//!   crash during the send re-sends that very reply instead of running the turn again (Matrix
//!   de-duplicates the repeat through transaction ids derived from the message);
//! - `done` ends it; the ids of done messages are kept, so a source that hands the same event
//!   again (after a crash before it saved its cursor) is ignored.
//!
//! At open the file is compacted: the pending entries and the last [`KEEP_DONE`] done ids are
//! written to a fresh file that atomically replaces the old one. A torn last line (a crash
//! mid-write) is skipped.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use carapace_channels::inbound::InboundMessage;
use carapace_channels::inbound::cursor::{channel_state_dir, open_private_dir};
use carapace_fs::{AppendFile, AppendOptions, FsError, ReadOptions, Root, WriteOptions};
use serde::{Deserialize, Serialize};

use crate::InboundError;
use crate::time::now_ms;

const FILE: &str = "journal.jsonl";
/// Done ids kept across a compaction (a source never redelivers further back than its cursor).
pub const KEEP_DONE: usize = 5_000;
/// Done ids kept in memory between compactions.
const KEEP_IN_MEMORY: usize = 20_000;

/// A reply decided by a turn, recorded before it is sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedReply {
    /// The session that produced it.
    pub session_key: String,
    /// Its agent.
    pub agent_id: String,
    /// The text (without `MEDIA:` lines).
    pub text: String,
    /// Attachment paths as the agent named them (`/workspace/…`, media-store paths).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "camelCase")]
enum Record {
    Accepted {
        at: i64,
        msg: Box<InboundMessage>,
    },
    Reply {
        id: String,
        reply: PlannedReply,
    },
    Done {
        id: String,
        #[serde(default)]
        outcome: String,
    },
}

/// A message accepted but not done when the journal was opened.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The message.
    pub msg: InboundMessage,
    /// The reply, when the turn had already produced one.
    pub reply: Option<PlannedReply>,
}

#[derive(Debug, Default)]
struct Seen {
    pending: HashSet<String>,
    done: HashSet<String>,
    order: VecDeque<String>,
}

impl Seen {
    fn contains(&self, id: &str) -> bool {
        self.pending.contains(id) || self.done.contains(id)
    }
    fn finish(&mut self, id: &str) {
        self.pending.remove(id);
        if self.done.insert(id.to_string()) {
            self.order.push_back(id.to_string());
        }
        while self.order.len() > KEEP_IN_MEMORY {
            if let Some(old) = self.order.pop_front() {
                self.done.remove(&old);
            }
        }
    }
}

/// One channel's journal.
#[derive(Debug)]
pub struct Journal {
    channel: String,
    path: PathBuf,
    file: Mutex<AppendFile>,
    seen: Mutex<Seen>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Journal {
    /// Opens (creating) the journal of `channel` under `state_dir`, compacts it, and returns
    /// it with the messages still to handle, in the order they were accepted.
    pub fn open(
        state_dir: &Path,
        channel: &str,
        durable: bool,
    ) -> Result<(Journal, Vec<Pending>), InboundError> {
        let dir = channel_state_dir(state_dir, channel, None);
        let what = format!("the {channel} journal");
        let root = open_private_dir(&dir).map_err(|e| InboundError::storage(&what, e))?;
        let records = read_records(&root, &what)?;
        let mut pending: Vec<Pending> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut done: Vec<String> = Vec::new();
        for r in records {
            match r {
                Record::Accepted { msg, .. } => {
                    if !index.contains_key(&msg.event_id) && !done.contains(&msg.event_id) {
                        index.insert(msg.event_id.clone(), pending.len());
                        pending.push(Pending {
                            msg: *msg,
                            reply: None,
                        });
                    }
                }
                Record::Reply { id, reply } => {
                    if let Some(&i) = index.get(&id) {
                        pending[i].reply = Some(reply);
                    }
                }
                Record::Done { id, .. } => {
                    if let Some(i) = index.remove(&id) {
                        pending[i].msg.event_id.clear(); // tombstone
                    }
                    done.push(id);
                }
            }
        }
        pending.retain(|p| !p.msg.event_id.is_empty());
        let keep: Vec<String> = {
            let mut seen = HashSet::new();
            let mut v: Vec<String> = done
                .iter()
                .rev()
                .filter(|id| seen.insert((*id).clone()))
                .take(KEEP_DONE)
                .cloned()
                .collect();
            v.reverse();
            v
        };
        // Compact: the kept ids and the pending entries, atomically replacing the file.
        let mut body = Vec::new();
        for id in &keep {
            push_line(
                &mut body,
                &Record::Done {
                    id: id.clone(),
                    outcome: String::new(),
                },
            )?;
        }
        for p in &pending {
            push_line(
                &mut body,
                &Record::Accepted {
                    at: now_ms(),
                    msg: Box::new(p.msg.clone()),
                },
            )?;
            if let Some(r) = &p.reply {
                push_line(
                    &mut body,
                    &Record::Reply {
                        id: p.msg.event_id.clone(),
                        reply: r.clone(),
                    },
                )?;
            }
        }
        root.write(
            Path::new(FILE),
            &body,
            &WriteOptions::secret().with_durable(durable),
        )
        .map_err(|e| InboundError::storage(&what, e))?;
        let file = root
            .open_append(
                Path::new(FILE),
                &AppendOptions::default().with_durable(durable),
            )
            .map_err(|e| InboundError::storage(&what, e))?;
        let mut seen = Seen::default();
        for id in keep {
            seen.finish(&id);
        }
        for p in &pending {
            seen.pending.insert(p.msg.event_id.clone());
        }
        Ok((
            Journal {
                channel: channel.to_string(),
                path: dir.join(FILE),
                file: Mutex::new(file),
                seen: Mutex::new(seen),
            },
            pending,
        ))
    }

    /// The file's host path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `event_id` was accepted before (pending or done).
    pub fn seen(&self, event_id: &str) -> bool {
        lock(&self.seen).contains(event_id)
    }

    fn append(&self, r: &Record) -> Result<(), InboundError> {
        let line = serde_json::to_vec(r).map_err(|e| {
            InboundError::BadRequest(format!("cannot encode a journal record: {e}"))
        })?;
        lock(&self.file)
            .append(&line)
            .map(|_| ())
            .map_err(|e| InboundError::storage(format!("the {} journal", self.channel), e))
    }

    /// Records `msg` as accepted (durably). False when it was seen before: a duplicate.
    pub fn accept(&self, msg: &InboundMessage) -> Result<bool, InboundError> {
        {
            let seen = lock(&self.seen);
            if seen.contains(&msg.event_id) {
                return Ok(false);
            }
        }
        self.append(&Record::Accepted {
            at: now_ms(),
            msg: Box::new(msg.clone()),
        })?;
        lock(&self.seen).pending.insert(msg.event_id.clone());
        Ok(true)
    }

    /// Records the reply planned for `event_id`, before it is sent.
    pub fn reply(&self, event_id: &str, reply: &PlannedReply) -> Result<(), InboundError> {
        self.append(&Record::Reply {
            id: event_id.to_string(),
            reply: reply.clone(),
        })
    }

    /// Records `event_id` as handled (`outcome`: answered, paired, dropped:<why>, …).
    pub fn done(&self, event_id: &str, outcome: &str) -> Result<(), InboundError> {
        self.append(&Record::Done {
            id: event_id.to_string(),
            outcome: outcome.to_string(),
        })?;
        lock(&self.seen).finish(event_id);
        Ok(())
    }
}

fn push_line(body: &mut Vec<u8>, r: &Record) -> Result<(), InboundError> {
    serde_json::to_writer(&mut *body, r)
        .map_err(|e| InboundError::BadRequest(format!("cannot encode a journal record: {e}")))?;
    body.push(b'\n');
    Ok(())
}

fn read_records(root: &Root, what: &str) -> Result<Vec<Record>, InboundError> {
    let bytes = match root.read(Path::new(FILE), &ReadOptions::default().with_max(256 << 20)) {
        Ok(b) => b,
        Err(FsError::NotFound { .. }) => return Ok(Vec::new()),
        Err(e) => return Err(InboundError::storage(what, e)),
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.split('\n').collect();
    let last = lines.len().saturating_sub(1);
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(r) => out.push(r),
            // A torn last record (a crash mid-write) is skipped; anything else is a record
            // carapace did not write: skipped with a warning, never fatal to receiving.
            Err(e) if i == last => {
                tracing::warn!(store = what, error = %e, "skipping a torn last journal record");
            }
            Err(e) => {
                tracing::warn!(store = what, line = i + 1, error = %e, "skipping an unreadable journal record");
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use carapace_channels::inbound::{ChatKind, ChatRef, SenderRef};

    fn msg(id: &str) -> InboundMessage {
        InboundMessage {
            channel: "matrix".into(),
            account: None,
            event_id: id.into(),
            chat: ChatRef {
                kind: ChatKind::Direct,
                id: "!r".into(),
                thread: None,
            },
            sender: SenderRef {
                id: "@a:hs".into(),
                name: None,
            },
            text: format!("text {id}"),
            mentions_bot: false,
            attachments: vec![],
            timestamp_ms: None,
        }
    }

    #[test]
    fn restart_keeps_pending_and_forgets_nothing_done() {
        let d = tempfile::tempdir().unwrap();
        let (j, p) = Journal::open(d.path(), "matrix", false).unwrap();
        assert!(p.is_empty());
        assert!(j.accept(&msg("$1")).unwrap());
        assert!(!j.accept(&msg("$1")).unwrap(), "duplicate");
        j.accept(&msg("$2")).unwrap();
        j.accept(&msg("$3")).unwrap();
        j.done("$1", "answered").unwrap();
        let planned = PlannedReply {
            session_key: "k".into(),
            agent_id: "main".into(),
            text: "hi".into(),
            media: vec!["/workspace/a.png".into()],
        };
        j.reply("$2", &planned).unwrap();
        drop(j);
        // A torn record at the end, as a crash mid-write leaves.
        let path = d.path().join("channels/matrix/journal.jsonl");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(br#"{"t":"done","id":"$3""#);
        std::fs::write(&path, bytes).unwrap();

        let (j, p) = Journal::open(d.path(), "matrix", false).unwrap();
        let ids: Vec<&str> = p.iter().map(|x| x.msg.event_id.as_str()).collect();
        assert_eq!(ids, vec!["$2", "$3"]);
        assert_eq!(p[0].reply.as_ref(), Some(&planned));
        assert!(p[1].reply.is_none());
        assert!(j.seen("$1") && j.seen("$2") && j.seen("$3"));
        assert!(
            !j.accept(&msg("$1")).unwrap(),
            "done ids survive the restart"
        );
        j.done("$2", "answered").unwrap();
        j.done("$3", "answered").unwrap();
        drop(j);
        let (j, p) = Journal::open(d.path(), "matrix", false).unwrap();
        assert!(p.is_empty());
        assert!(j.seen("$3"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
}
