//! Transcripts: one JSONL file per session (`<state>/agents/<agentId>/sessions/<sessionId>.jsonl`,
//! OpenClaw's layout), one [`Event`] per line, appended through carapace-fs
//! ([`carapace_fs::Root::open_append`]: 0600, no symlinks, one `write` per record) **before**
//! the loop acts on it, so a crash mid-turn leaves an honest record.
//!
//! Reading is tolerant: a last line that does not parse is a record torn by a crash, reported
//! ([`ReadReport::torn_tail`]) and ignored; a bad line elsewhere is skipped and reported too.

pub(crate) mod history;
mod store;

use std::path::Path;

use carapace_fs::{AppendFile, AppendOptions, ReadOptions, Root};
use carapace_policy::ErrorEnvelope;
use serde::{Deserialize, Serialize};

use crate::error::AgentError;
use crate::message::{ContentPart, ToolCallReq, Usage};

pub use history::history;
pub use store::{SessionStore, SessionSummary, SessionView};

/// Version of the event format written in the `session` header.
pub const TRANSCRIPT_VERSION: u32 = 1;

/// How a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnStatus {
    /// A final answer.
    Completed,
    /// Stopped (`/stop`, `/new`, shutdown).
    Cancelled,
    /// Out of rounds or time.
    Limit,
    /// The model could not be reached or refused.
    Failed,
}

/// One line of a transcript.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// First line of every transcript.
    #[serde(rename_all = "camelCase")]
    Session {
        /// Format version.
        version: u32,
        /// Session id (the file name).
        id: String,
        /// Session key.
        session_key: String,
        /// Agent id.
        agent_id: String,
        /// When it was created.
        timestamp: String,
    },
    /// A user message; written before the model sees it.
    #[serde(rename_all = "camelCase")]
    User {
        /// Turn number (1-based).
        turn: u64,
        /// When it arrived.
        timestamp: String,
        /// The message.
        content: Vec<ContentPart>,
    },
    /// A model answer; written before its tool calls run.
    #[serde(rename_all = "camelCase")]
    Assistant {
        /// Turn number.
        turn: u64,
        /// Round within the turn (1-based).
        round: u32,
        /// When it arrived.
        timestamp: String,
        /// Provider id.
        provider: String,
        /// Model id.
        model: String,
        /// Text.
        text: String,
        /// Tool calls.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCallReq>,
        /// Token counts.
        #[serde(default)]
        usage: Usage,
    },
    /// A tool result; written before the model sees it.
    #[serde(rename_all = "camelCase")]
    ToolResult {
        /// Turn number.
        turn: u64,
        /// Round.
        round: u32,
        /// When it finished.
        timestamp: String,
        /// The call it answers.
        call_id: String,
        /// Tool name.
        name: String,
        /// False when the tool returned an error envelope.
        ok: bool,
        /// What the model reads (JSON text), after the size limit.
        content: String,
        /// True when `content` was cut to the tool-result limit.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        truncated: bool,
        /// True for a result made up because the call never finished (crash, cancel).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        interrupted: bool,
    },
    /// The model's view of the conversation was shortened to fit its context window.
    #[serde(rename_all = "camelCase")]
    Compaction {
        /// Turn number.
        turn: u64,
        /// When.
        timestamp: String,
        /// Tool results shortened (oldest first).
        shortened: usize,
        /// Earlier messages left out (oldest turns first).
        dropped: usize,
        /// Estimated tokens before.
        tokens_before: usize,
        /// Estimated tokens after.
        tokens_after: usize,
    },
    /// The end of a turn.
    #[serde(rename_all = "camelCase")]
    TurnEnd {
        /// Turn number.
        turn: u64,
        /// When.
        timestamp: String,
        /// How it ended.
        status: TurnStatus,
        /// Model rounds it took.
        rounds: u32,
        /// The error, when it did not complete.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<ErrorEnvelope>,
    },
    /// The transcript was reopened after a crash and repaired.
    #[serde(rename_all = "camelCase")]
    Resumed {
        /// When.
        timestamp: String,
        /// The last line was a torn record.
        torn_tail: bool,
        /// Line numbers (1-based) that did not parse.
        skipped_lines: Vec<usize>,
        /// Tool calls that never got a result, now answered as interrupted.
        interrupted_calls: usize,
        /// A turn that never ended, now ended as cancelled.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        unfinished_turn: Option<u64>,
    },
}

/// What reading a transcript found besides events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReadReport {
    /// The last line did not parse (a record torn by a crash).
    pub torn_tail: bool,
    /// Other lines (1-based) that did not parse.
    pub skipped_lines: Vec<usize>,
}

/// Reads every event of a transcript beneath `root`.
pub fn read_events(root: &Root, rel: &Path) -> Result<(Vec<Event>, ReadReport), AgentError> {
    let bytes = root
        .read(rel, &ReadOptions::default())
        .map_err(AgentError::storage)?;
    Ok(parse_events(&bytes))
}

/// Parses JSONL transcript bytes.
pub fn parse_events(bytes: &[u8]) -> (Vec<Event>, ReadReport) {
    let mut events = Vec::new();
    let mut report = ReadReport::default();
    let text = String::from_utf8_lossy(bytes);
    let ends_clean = text.ends_with('\n');
    let lines: Vec<&str> = text.split('\n').collect();
    let last_nonempty = lines.iter().rposition(|l| !l.trim().is_empty());
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Event>(line) {
            Ok(e) => events.push(e),
            Err(_) if Some(i) == last_nonempty && !ends_clean => report.torn_tail = true,
            Err(_) => report.skipped_lines.push(i + 1),
        }
    }
    (events, report)
}

/// A transcript open for appending.
pub(crate) struct TranscriptWriter {
    file: AppendFile,
}

impl TranscriptWriter {
    pub(crate) fn open(
        root: &Root,
        rel: &Path,
        durable: bool,
    ) -> Result<TranscriptWriter, AgentError> {
        let file = root
            .open_append(rel, &AppendOptions::default().with_durable(durable))
            .map_err(AgentError::storage)?;
        Ok(TranscriptWriter { file })
    }

    pub(crate) fn torn_tail(&self) -> bool {
        self.file.torn_tail()
    }

    /// Appends one event (one line, one `write`).
    pub(crate) fn append(&mut self, e: &Event) -> Result<(), AgentError> {
        let line = serde_json::to_vec(e).map_err(|err| {
            AgentError::Storage(ErrorEnvelope::new(
                carapace_policy::ErrorCode::Internal,
                format!("cannot encode a transcript event: {err}"),
            ))
        })?;
        self.file.append(&line).map_err(AgentError::storage)?;
        Ok(())
    }
}
