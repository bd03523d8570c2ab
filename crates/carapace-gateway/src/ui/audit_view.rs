//! The audit view: the most recent lines of the audit log (`<state>/audit/audit.jsonl`, and
//! the rotated `audit.jsonl.1` when the current file is short), newest first, filtered by
//! session and tool. Read-only; lines that do not parse are skipped.

use std::path::Path;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use carapace_fs::{ReadOptions, Root};
use serde::Deserialize;
use serde_json::{Value, json};

use super::state::UiState;

/// Most lines returned.
const MAX_LINES: usize = 500;
/// Largest audit file read.
const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The filters.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    session: Option<String>,
    tool: Option<String>,
    limit: Option<usize>,
}

fn read_lines(dir: &Path, name: &str) -> Vec<Value> {
    let Ok(root) = Root::open(dir) else {
        return Vec::new();
    };
    let opts = ReadOptions::default().with_max(MAX_FILE_BYTES);
    let Ok(bytes) = root.read(Path::new(name), &opts) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect()
}

/// `GET /ui/api/audit?session=&tool=&limit=`.
pub async fn show(State(st): State<UiState>, Query(q): Query<AuditQuery>) -> Response {
    let config = st.config();
    let dir = config.state_dir.join("audit");
    let limit = q.limit.unwrap_or(200).clamp(1, MAX_LINES);
    let session = q.session.filter(|s| !s.trim().is_empty());
    let tool = q.tool.filter(|s| !s.trim().is_empty());
    let (lines, tools) = tokio::task::spawn_blocking(move || {
        let mut all = read_lines(&dir, "audit.jsonl.1");
        all.extend(read_lines(&dir, "audit.jsonl"));
        let mut tools: Vec<String> = all
            .iter()
            .filter_map(|v| v["tool"].as_str().map(str::to_string))
            .collect();
        tools.sort();
        tools.dedup();
        let picked: Vec<Value> = all
            .into_iter()
            .rev()
            .filter(|v| {
                session
                    .as_deref()
                    .is_none_or(|s| v["session"].as_str() == Some(s))
            })
            .filter(|v| {
                tool.as_deref()
                    .is_none_or(|t| v["tool"].as_str() == Some(t))
            })
            .take(limit)
            .collect();
        (picked, tools)
    })
    .await
    .unwrap_or_default();
    Json(json!({"ok": true, "records": lines, "tools": tools})).into_response()
}
