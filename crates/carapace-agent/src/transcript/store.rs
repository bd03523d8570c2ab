//! [`SessionStore`]: where sessions live on disk, and the library functions the CLI wraps
//! (`sessions list|show|reset`).
//!
//! Layout (OpenClaw's): `<state>/agents/<agentId>/sessions/` (0700) holds one
//! `<sessionId>.jsonl` per session (0600) and `sessions.json` (0600), the index from session
//! key to the current session id. `/new` (reset) points the key at a fresh id; the old
//! transcript stays. Every file operation goes through carapace-fs: the index is replaced
//! atomically, transcripts are appended. A corrupt or missing index is rebuilt from the
//! transcripts' `session` headers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use carapace_fs::{FileKind, ReadOptions, Root, WriteOptions};
use carapace_policy::session::{SessionKey, normalize_agent_id};
use serde::{Deserialize, Serialize};

use super::{Event, ReadReport, TRANSCRIPT_VERSION, TranscriptWriter, parse_events, read_events};
use crate::error::AgentError;
use crate::time::now_rfc3339;

const INDEX: &str = "sessions.json";

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Index {
    version: u32,
    sessions: BTreeMap<String, IndexEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexEntry {
    session_id: String,
    created_at: String,
    updated_at: String,
    #[serde(default)]
    turns: u64,
}

/// One session, as `sessions list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSummary {
    /// Session key.
    pub session_key: String,
    /// Agent id.
    pub agent_id: String,
    /// Current session id (the transcript's name).
    pub session_id: String,
    /// Created.
    pub created_at: String,
    /// Last turn.
    pub updated_at: String,
    /// Turns so far.
    pub turns: u64,
    /// The transcript's host path.
    pub path: PathBuf,
}

/// One session's transcript, as `sessions show` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionView {
    /// The summary.
    pub summary: SessionSummary,
    /// Every event.
    pub events: Vec<Event>,
    /// Torn last line, skipped lines.
    pub report: ReadReport,
}

/// A session opened for a turn: its writer and what its transcript holds.
pub(crate) struct OpenSession {
    pub id: String,
    pub writer: TranscriptWriter,
    pub events: Vec<Event>,
    pub report: ReadReport,
}

/// Sessions under one state directory.
#[derive(Debug)]
pub struct SessionStore {
    state_dir: PathBuf,
    /// Serialises index updates within this process.
    lock: Mutex<()>,
    durable: bool,
}

impl SessionStore {
    /// Sessions under `state_dir` (nothing is created until a session is written).
    pub fn new(state_dir: &Path) -> SessionStore {
        SessionStore {
            state_dir: state_dir.to_path_buf(),
            lock: Mutex::new(()),
            durable: true,
        }
    }

    /// fsync every event (default true). Off only for benchmarks.
    pub fn with_durable(mut self, durable: bool) -> SessionStore {
        self.durable = durable;
        self
    }

    /// The agent id of a key (`agent:<id>:…`, else `main`), unless given.
    pub fn agent_of(session_key: &str, explicit: Option<&str>) -> String {
        match explicit {
            Some(a) => normalize_agent_id(a),
            None => SessionKey::parse(session_key)
                .agent_id
                .unwrap_or_else(|| carapace_policy::session::DEFAULT_AGENT_ID.to_string()),
        }
    }

    fn rel_dir(agent_id: &str) -> PathBuf {
        Path::new("agents").join(agent_id).join("sessions")
    }

    /// The sessions directory of an agent, created (0700) when `create`.
    fn dir(&self, agent_id: &str, create: bool) -> Result<Option<Root>, AgentError> {
        let agent_id = normalize_agent_id(agent_id);
        let rel = Self::rel_dir(&agent_id);
        if create {
            let state =
                Root::open_or_create(&self.state_dir, 0o700).map_err(AgentError::storage)?;
            state.mkdir_all(&rel, 0o700).map_err(AgentError::storage)?;
            return state
                .open_subdir(&rel)
                .map(Some)
                .map_err(AgentError::storage);
        }
        let Ok(state) = Root::open(&self.state_dir) else {
            return Ok(None);
        };
        match state.open_subdir(&rel) {
            Ok(r) => Ok(Some(r)),
            Err(carapace_fs::FsError::NotFound { .. }) => Ok(None),
            Err(e) => Err(AgentError::storage(e)),
        }
    }

    fn read_index(&self, root: &Root) -> Index {
        match root.read(Path::new(INDEX), &ReadOptions::default().with_max(64 << 20)) {
            Ok(bytes) => match serde_json::from_slice::<Index>(&bytes) {
                Ok(i) => i,
                Err(e) => {
                    tracing::warn!(error = %e, "sessions.json is corrupt; rebuilding it from the transcripts");
                    rebuild_index(root)
                }
            },
            Err(carapace_fs::FsError::NotFound { .. }) => Index::default(),
            Err(e) => {
                tracing::warn!(error = %e, "sessions.json is unreadable; rebuilding it from the transcripts");
                rebuild_index(root)
            }
        }
    }

    fn write_index(&self, root: &Root, idx: &Index) -> Result<(), AgentError> {
        let mut idx = idx.clone();
        idx.version = 1;
        let body = serde_json::to_vec(&idx).map_err(|e| {
            AgentError::Storage(carapace_policy::ErrorEnvelope::new(
                carapace_policy::ErrorCode::Internal,
                format!("cannot encode the session index: {e}"),
            ))
        })?;
        root.write(
            Path::new(INDEX),
            &body,
            &WriteOptions::secret().with_durable(self.durable),
        )
        .map_err(AgentError::storage)?;
        Ok(())
    }

    /// Opens (or creates) the current session of `session_key` for a turn.
    pub(crate) fn open(
        &self,
        session_key: &str,
        agent_id: &str,
    ) -> Result<OpenSession, AgentError> {
        let root = self.dir(agent_id, true)?.ok_or_else(|| {
            AgentError::BadRequest(format!("no sessions directory for agent {agent_id}"))
        })?;
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut idx = self.read_index(&root);
        let (id, fresh) = match idx.sessions.get(session_key) {
            Some(e) => (e.session_id.clone(), false),
            None => (uuid::Uuid::new_v4().to_string(), true),
        };
        let rel = PathBuf::from(format!("{id}.jsonl"));
        let (events, report) = match read_events(&root, &rel) {
            Ok(x) => x,
            Err(AgentError::Storage(e)) if e.code == carapace_policy::ErrorCode::NotFound => {
                (Vec::new(), ReadReport::default())
            }
            Err(e) => return Err(e),
        };
        let mut writer = TranscriptWriter::open(&root, &rel, self.durable)?;
        let mut events = events;
        if events.is_empty() {
            let header = Event::Session {
                version: TRANSCRIPT_VERSION,
                id: id.clone(),
                session_key: session_key.to_string(),
                agent_id: agent_id.to_string(),
                timestamp: now_rfc3339(),
            };
            writer.append(&header)?;
            events.push(header);
        }
        if fresh {
            let now = now_rfc3339();
            idx.sessions.insert(
                session_key.to_string(),
                IndexEntry {
                    session_id: id.clone(),
                    created_at: now.clone(),
                    updated_at: now,
                    turns: 0,
                },
            );
            self.write_index(&root, &idx)?;
        }
        Ok(OpenSession {
            id,
            writer,
            events,
            report,
        })
    }

    /// Opens a session's transcript for appending.
    pub(crate) fn writer(
        &self,
        agent_id: &str,
        session_id: &str,
    ) -> Result<TranscriptWriter, AgentError> {
        let root = self.dir(agent_id, true)?.ok_or_else(|| {
            AgentError::BadRequest(format!("no sessions directory for agent {agent_id}"))
        })?;
        TranscriptWriter::open(
            &root,
            Path::new(&format!("{session_id}.jsonl")),
            self.durable,
        )
    }

    /// Records that a turn of `session_key` ran.
    pub(crate) fn touch(
        &self,
        session_key: &str,
        agent_id: &str,
        turns: u64,
    ) -> Result<(), AgentError> {
        let Some(root) = self.dir(agent_id, false)? else {
            return Ok(());
        };
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut idx = self.read_index(&root);
        if let Some(e) = idx.sessions.get_mut(session_key) {
            e.updated_at = now_rfc3339();
            e.turns = turns;
            self.write_index(&root, &idx)?;
        }
        Ok(())
    }

    /// Every session of one agent, or of every agent, most recently updated first.
    pub fn list(&self, agent_id: Option<&str>) -> Result<Vec<SessionSummary>, AgentError> {
        let agents: Vec<String> = match agent_id {
            Some(a) => vec![normalize_agent_id(a)],
            None => self.agent_ids()?,
        };
        let mut out = Vec::new();
        for a in agents {
            let Some(root) = self.dir(&a, false)? else {
                continue;
            };
            let idx = self.read_index(&root);
            for (key, e) in idx.sessions {
                out.push(self.summary(&a, &key, &e));
            }
        }
        out.sort_by(|x, y| y.updated_at.cmp(&x.updated_at));
        Ok(out)
    }

    fn agent_ids(&self) -> Result<Vec<String>, AgentError> {
        let Ok(state) = Root::open(&self.state_dir) else {
            return Ok(Vec::new());
        };
        match state.list(Path::new("agents")) {
            Ok(entries) => Ok(entries
                .into_iter()
                .filter(|e| e.meta.kind == FileKind::Dir)
                .map(|e| e.name)
                .collect()),
            Err(carapace_fs::FsError::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(AgentError::storage(e)),
        }
    }

    fn summary(&self, agent: &str, key: &str, e: &IndexEntry) -> SessionSummary {
        SessionSummary {
            session_key: key.to_string(),
            agent_id: agent.to_string(),
            session_id: e.session_id.clone(),
            created_at: e.created_at.clone(),
            updated_at: e.updated_at.clone(),
            turns: e.turns,
            path: self
                .state_dir
                .join(Self::rel_dir(agent))
                .join(format!("{}.jsonl", e.session_id)),
        }
    }

    /// The current transcript of a session; `NOT_FOUND` when the key has none.
    pub fn show(
        &self,
        session_key: &str,
        agent_id: Option<&str>,
    ) -> Result<SessionView, AgentError> {
        let agent = Self::agent_of(session_key, agent_id);
        let root = self
            .dir(&agent, false)?
            .ok_or_else(|| no_session(session_key))?;
        let idx = self.read_index(&root);
        let e = idx
            .sessions
            .get(session_key)
            .ok_or_else(|| no_session(session_key))?;
        let (events, report) = read_events(&root, Path::new(&format!("{}.jsonl", e.session_id)))?;
        Ok(SessionView {
            summary: self.summary(&agent, session_key, e),
            events,
            report,
        })
    }

    /// Points `session_key` at a fresh session id (the old transcript stays on disk). Returns
    /// the new id, or `None` when the key had no session. The runtime's `reset` also stops a
    /// running turn first; this one is for when no runtime runs (the CLI).
    pub fn reset(
        &self,
        session_key: &str,
        agent_id: Option<&str>,
    ) -> Result<Option<String>, AgentError> {
        let agent = Self::agent_of(session_key, agent_id);
        let Some(root) = self.dir(&agent, false)? else {
            return Ok(None);
        };
        let _g = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let mut idx = self.read_index(&root);
        if !idx.sessions.contains_key(session_key) {
            return Ok(None);
        }
        let id = uuid::Uuid::new_v4().to_string();
        let now = now_rfc3339();
        idx.sessions.insert(
            session_key.to_string(),
            IndexEntry {
                session_id: id.clone(),
                created_at: now.clone(),
                updated_at: now,
                turns: 0,
            },
        );
        self.write_index(&root, &idx)?;
        Ok(Some(id))
    }
}

fn no_session(key: &str) -> AgentError {
    AgentError::Storage(
        carapace_policy::ErrorEnvelope::new(
            carapace_policy::ErrorCode::NotFound,
            format!("no session {key:?}"),
        )
        .with_hint("`carapace sessions list` shows the sessions")
        .with_detail("sessionKey", key),
    )
}

/// Rebuilds the index from the `session` headers of the transcripts (latest file per key).
fn rebuild_index(root: &Root) -> Index {
    let mut idx = Index::default();
    let Ok(entries) = root.list(Path::new("")) else {
        return idx;
    };
    let mut found: Vec<(std::time::SystemTime, String, String, String)> = Vec::new();
    for e in entries {
        if e.meta.kind != FileKind::File || !e.name.ends_with(".jsonl") {
            continue;
        }
        let Ok(mut f) = root.open_file(Path::new(&e.name), &ReadOptions::default()) else {
            continue;
        };
        let mut head = vec![0u8; 4096];
        let n = std::io::Read::read(&mut f.file, &mut head).unwrap_or(0);
        head.truncate(n);
        let first_line = head.split(|b| *b == b'\n').next().unwrap_or_default();
        let (evs, _) = parse_events(first_line);
        if let Some(Event::Session {
            id,
            session_key,
            timestamp,
            ..
        }) = evs.into_iter().next()
        {
            found.push((e.meta.mtime, session_key, id, timestamp));
        }
    }
    found.sort();
    for (mtime, key, id, created) in found {
        let _ = mtime;
        idx.sessions.insert(
            key,
            IndexEntry {
                session_id: id,
                created_at: created.clone(),
                updated_at: created,
                turns: 0,
            },
        );
    }
    idx
}
