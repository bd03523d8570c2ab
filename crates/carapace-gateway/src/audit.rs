//! The audit log: one JSON line per mutation, exec and send, in `<state>/audit/audit.jsonl`.
//!
//! Each line is written with a single `write(2)` on a file opened `O_APPEND`, so concurrent
//! writers (this gateway, a `carapace mcp` next to it) never interleave inside a line. When the
//! file passes the size limit it is renamed to `audit.jsonl.1` (older ones shift up to
//! `.<keep>`, the oldest is dropped) and a new file is started. Files are 0600, the dir 0700.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use carapace_fs::{AppendOptions, RotatingLog};
use carapace_policy::{ErrorCode, ErrorEnvelope};
use serde::Serialize;
use serde_json::Value;

use crate::call::ToolCall;

/// Tools whose calls are audited: they change files, run commands or send bytes out.
pub const AUDITED_TOOLS: &[&str] = &[
    "write",
    "edit",
    "apply_patch",
    "exec",
    "message",
    "media_save",
    "browser",
];

/// Default size at which the file is rotated.
pub const DEFAULT_MAX_BYTES: u64 = 16 * 1024 * 1024;
/// Default number of rotated files kept.
pub const DEFAULT_KEEP: u32 = 5;
/// Longest `command` kept in a line.
const MAX_COMMAND_CHARS: usize = 512;

/// One audit line.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// RFC 3339 UTC time with milliseconds.
    pub time: String,
    /// The request id (also in the HTTP response header and error bodies).
    pub request_id: String,
    /// `http`, `mcp-http` or `mcp-stdio`.
    pub transport: &'static str,
    /// Session key, if any.
    pub session: Option<String>,
    /// Agent id, if given.
    pub agent: Option<String>,
    /// Tool name.
    pub tool: String,
    /// Tool action.
    pub action: Option<String>,
    /// Every path named by the arguments or the result.
    pub paths: Vec<String>,
    /// Bytes written or sent, when the result says.
    pub bytes: Option<u64>,
    /// For `exec`: the command (truncated).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// For `message`: the destination channel and target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// `ok` or `error`.
    pub outcome: &'static str,
    /// The error code when `outcome` is `error`.
    pub error_code: Option<ErrorCode>,
    /// Wall time of the call.
    pub duration_ms: u64,
}

impl AuditRecord {
    /// Builds the line for a finished call.
    pub fn from_call(
        request_id: &str,
        transport: &'static str,
        call: &ToolCall,
        result: &Result<Value, ErrorEnvelope>,
        elapsed: Duration,
    ) -> AuditRecord {
        let mut paths = Vec::new();
        collect_paths(&call.args, &mut paths);
        let mut bytes = None;
        if let Ok(v) = result {
            collect_paths(v, &mut paths);
            bytes = sum_bytes(v);
        }
        paths.dedup();
        let command = (call.tool == "exec")
            .then(|| call.args.get("command").and_then(Value::as_str))
            .flatten()
            .map(|c| c.chars().take(MAX_COMMAND_CHARS).collect());
        let destination = (call.tool == "message").then(|| {
            let s =
                |k: &str, d: &'static str| call.args.get(k).and_then(Value::as_str).unwrap_or(d);
            format!("{}:{}", s("channel", "inbox"), s("target", "?"))
        });
        AuditRecord {
            time: rfc3339_now(),
            request_id: request_id.to_string(),
            transport,
            session: call.session_key.clone(),
            agent: call.agent_id.clone(),
            tool: call.tool.clone(),
            action: call.action.clone(),
            paths,
            bytes,
            command,
            destination,
            outcome: if result.is_ok() { "ok" } else { "error" },
            error_code: result.as_ref().err().map(|e| e.code),
            duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

const PATH_KEYS: &[&str] = &["path", "filePath", "media", "workdir"];

fn collect_paths(v: &Value, out: &mut Vec<String>) {
    let Value::Object(m) = v else { return };
    for k in PATH_KEYS {
        match m.get(*k) {
            Some(Value::String(s)) if !out.contains(s) => out.push(s.clone()),
            Some(Value::Array(a)) => {
                for s in a.iter().filter_map(Value::as_str) {
                    if !out.iter().any(|p| p == s) {
                        out.push(s.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    // Results with per-attachment or per-file lists.
    for k in ["attachments", "files", "results"] {
        if let Some(Value::Array(a)) = m.get(k) {
            for item in a {
                collect_paths(item, out);
            }
        }
    }
}

fn sum_bytes(v: &Value) -> Option<u64> {
    if let Some(b) = v.get("bytes").and_then(Value::as_u64) {
        return Some(b);
    }
    let items = v
        .get("attachments")
        .or_else(|| v.get("results"))?
        .as_array()?;
    let total: u64 = items
        .iter()
        .filter_map(|i| i.get("bytes").and_then(Value::as_u64))
        .sum();
    Some(total)
}

/// The audit log writer (a [`carapace_fs::RotatingLog`] in `<state>/audit/`). Cheap to share
/// (`Arc`).
#[derive(Debug)]
pub struct AuditLog {
    log: RotatingLog,
}

impl AuditLog {
    /// A log in `<state>/audit/`, created (0700) if missing.
    pub fn open(state_dir: &Path, max_bytes: u64, keep: u32) -> Result<AuditLog, ErrorEnvelope> {
        let root = crate::auth::open_state_root(state_dir)?
            .create_dir_all(Path::new("audit"), 0o700)
            .map_err(|e| carapace_policy::CarapaceError::to_envelope(&e))?;
        Ok(AuditLog {
            log: RotatingLog::new(
                root,
                "audit.jsonl",
                max_bytes,
                keep,
                AppendOptions::default().with_new_file_mode(0o600),
            ),
        })
    }

    /// The current file.
    pub fn path(&self) -> PathBuf {
        self.log.path()
    }

    /// Appends one record. Failures are logged, never returned: an audit problem must not turn
    /// a finished tool call into an error the caller would retry.
    pub fn append(&self, rec: &AuditRecord) {
        let line = match serde_json::to_vec(rec) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "audit record does not serialise");
                return;
            }
        };
        if let Err(e) = self.log.append(&line) {
            tracing::error!(error = %e, "audit log append failed");
        }
    }
}

/// Now as `2026-11-25T18:07:34.123Z`.
pub fn rfc3339_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs(), d.subsec_millis())
}

fn rfc3339(secs: u64, millis: u32) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn time_format() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_764_093_854, 7), "2025-11-25T18:04:14.007Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn lines_are_whole_and_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(dir.path(), 600, 2).unwrap();
        let call = ToolCall::new("write", json!({"path": "a.txt", "content": "x"}));
        for i in 0..20 {
            let r = AuditRecord::from_call(
                &format!("req-{i}"),
                "http",
                &call,
                &Ok(json!({"path": "a.txt", "bytes": 1, "mode": "0644"})),
                Duration::from_millis(3),
            );
            log.append(&r);
        }
        let cur = std::fs::read_to_string(log.path()).unwrap();
        let old = std::fs::read_to_string(dir.path().join("audit/audit.jsonl.1")).unwrap();
        assert!(!dir.path().join("audit/audit.jsonl.3").exists());
        for line in cur.lines().chain(old.lines()) {
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["tool"], "write");
            assert_eq!(v["paths"], json!(["a.txt"]));
            assert_eq!(v["bytes"], 1);
            assert_eq!(v["outcome"], "ok");
        }
        let mode = std::fs::metadata(log.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn error_record_has_code() {
        let call = ToolCall::new(
            "message",
            json!({"channel": "inbox", "target": "user:1", "media": "/workspace/a.png"}),
        );
        let r = AuditRecord::from_call(
            "r",
            "mcp-http",
            &call,
            &Err(ErrorEnvelope::new(
                ErrorCode::OutboundMediaPermsTooRestrictive,
                "x",
            )),
            Duration::ZERO,
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["errorCode"], "OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE");
        assert_eq!(v["destination"], "inbox:user:1");
        assert_eq!(v["paths"], json!(["/workspace/a.png"]));
    }
}
