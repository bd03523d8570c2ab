//! The doctor view: files in the media dir, the agent workspaces, the sandbox directories and
//! `extraRoots` that an outbound send would refuse, with the reason, and the fix (add the
//! missing read bits) as a button — for one file or for all that can be fixed safely.
//!
//! The same rules as `carapace doctor`, decided by the same function
//! (`carapace_media::mode_is_sendable`): never widened are files that look like secrets,
//! anything under the state dir's `secrets/`, hardlinked files and files of another user. The
//! walk goes through carapace-fs, never follows a symlink, and is bounded; a place it did not
//! cover is listed, so a partial scan never reads as a clean one.

use std::path::{Path, PathBuf};

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use carapace_fs::{FileKind, Root};
use carapace_policy::{CarapaceError, Config, ErrorCode, ResolveInput, mode_string};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::state::UiState;

const MAX_ENTRIES: usize = 200_000;
const MAX_DEPTH: usize = 64;

/// One file an outbound send would refuse.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Finding {
    path: PathBuf,
    root: String,
    mode: String,
    code: ErrorCode,
    reason: String,
    fixable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    fixed_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_fixed: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Stop {
    path: PathBuf,
    root: String,
    reason: String,
}

/// True for names that look like keys, tokens or credentials.
fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["id_rsa", "id_ed25519", "id_ecdsa", "id_dsa", ".env."]
        .iter()
        .any(|p| n.starts_with(p))
        || [".pem", ".key", ".p12", ".pfx", ".kdbx"]
            .iter()
            .any(|s| n.ends_with(s))
        || ["secret", "token", "credential", "password"]
            .iter()
            .any(|w| n.contains(w))
        || [
            ".env",
            ".netrc",
            ".npmrc",
            ".pgpass",
            "authorized_keys",
            "known_hosts",
        ]
        .contains(&n.as_str())
}

fn roots(config: &Config) -> Vec<(String, PathBuf)> {
    let mut v = vec![("media".to_string(), config.media_dir())];
    let mut agents = vec!["main".to_string()];
    agents.extend(config.file.agents.entries.keys().cloned());
    agents.extend(config.file.agents.list.iter().filter_map(|a| a.id.clone()));
    for a in &agents {
        v.push((format!("workspace:{a}"), config.agent_workspace(a).value));
        if let Ok(eff) = config.resolve(&ResolveInput {
            agent: Some(a),
            ..ResolveInput::default()
        }) {
            v.push(("sandboxes".to_string(), eff.workspace_root.value));
        }
    }
    for r in &config.file.tools.message.outbound_media_policy.extra_roots {
        v.push(("extraRoot".to_string(), PathBuf::from(r)));
    }
    let mut seen = std::collections::HashSet::new();
    v.retain(|(_, p)| seen.insert(p.clone()) && p.is_dir());
    v
}

/// What to fix: nothing, everything fixable, or one file.
#[derive(Debug, Clone)]
enum Fix {
    None,
    All,
    One(PathBuf),
}

struct Walk {
    fix: Fix,
    allow_owner_only: bool,
    uid: u32,
    secrets_dir: PathBuf,
    findings: Vec<Finding>,
    scanned: usize,
    stopped: Vec<Stop>,
}

impl Walk {
    fn stop(&mut self, root: &Root, label: &str, rel: &Path, reason: String) {
        if self.stopped.len() < 100 {
            self.stopped.push(Stop {
                path: root.host_path().join(rel),
                root: label.to_string(),
                reason,
            });
        }
    }

    fn dir(&mut self, root: &Root, label: &str, rel: &Path, depth: usize) {
        if depth > MAX_DEPTH {
            let why = format!("deeper than {MAX_DEPTH} directory levels; not scanned");
            self.stop(root, label, rel, why);
            return;
        }
        let entries = match root.list(rel) {
            Ok(e) => e,
            Err(e) => {
                let why = format!("cannot list it: {}", e.to_envelope().message);
                self.stop(root, label, rel, why);
                return;
            }
        };
        for e in entries {
            let child = rel.join(&e.name);
            if self.scanned >= MAX_ENTRIES {
                let why = format!("the scan reached its bound of {MAX_ENTRIES} entries here");
                self.stop(root, label, &child, why);
                return;
            }
            self.scanned += 1;
            match e.meta.kind {
                FileKind::Dir => self.dir(root, label, &child, depth + 1),
                FileKind::File if !e.name.starts_with(carapace_fs::STAGING_PREFIX) => {
                    self.file(root, label, &child, &e.name, &e.meta)
                }
                _ => {}
            }
        }
    }

    fn file(
        &mut self,
        root: &Root,
        label: &str,
        rel: &Path,
        name: &str,
        m: &carapace_fs::FileMeta,
    ) {
        let host = root.host_path().join(rel);
        let mut f = Finding {
            path: host.clone(),
            root: label.to_string(),
            mode: mode_string(m.mode),
            code: ErrorCode::OutboundMediaPermsTooRestrictive,
            reason: String::new(),
            fixable: false,
            fixed_mode: None,
            not_fixed: None,
        };
        if m.nlink > 1 {
            f.code = ErrorCode::HardlinkRefused;
            f.reason = format!(
                "has {} hard links; outbound sends refuse hardlinked files",
                m.nlink
            );
            f.not_fixed = Some("copy the file (or save it with `carapace media save`)".into());
            self.findings.push(f);
            return;
        }
        if carapace_media::mode_is_sendable(m.mode, self.allow_owner_only) {
            return;
        }
        let other_user = m.uid != self.uid && self.uid != 0;
        if other_user && m.mode & 0o040 == 0 {
            f.code = ErrorCode::PermissionDenied;
            f.reason = format!(
                "owned by uid {} with mode {}: carapace (uid {}) cannot read it",
                m.uid,
                mode_string(m.mode),
                self.uid
            );
            f.not_fixed = Some("owned by another user: chown or chmod it as that user".into());
            self.findings.push(f);
            return;
        }
        f.reason = format!(
            "mode {} has no others-read bit, so it cannot be sent over an outbound channel",
            mode_string(m.mode)
        );
        if looks_secret(name) || host.starts_with(&self.secrets_dir) {
            f.not_fixed = Some("looks like a secret; carapace never widens it".into());
        } else if other_user {
            f.not_fixed = Some(format!("owned by uid {}, not carapace's", m.uid));
        } else {
            f.fixable = true;
            let wanted = match &self.fix {
                Fix::None => false,
                Fix::All => true,
                Fix::One(p) => *p == host,
            };
            if wanted {
                let new = (m.mode | 0o444) & 0o7777;
                match root.set_mode(rel, new) {
                    Ok(()) => {
                        f.fixed_mode = Some(mode_string(new));
                        f.fixable = false;
                    }
                    Err(e) => f.not_fixed = Some(e.to_envelope().message),
                }
            }
        }
        self.findings.push(f);
    }
}

fn scan(config: &Config, fix: Fix) -> serde_json::Value {
    let allow_owner_only = config
        .file
        .tools
        .message
        .outbound_media_policy
        .allow_owner_only;
    let mut w = Walk {
        fix,
        allow_owner_only,
        uid: rustix::process::geteuid().as_raw(),
        secrets_dir: config.state_dir.join("secrets"),
        findings: Vec::new(),
        scanned: 0,
        stopped: Vec::new(),
    };
    let mut scanned_roots = Vec::new();
    for (label, path) in roots(config) {
        match Root::open(&path) {
            Ok(root) => {
                scanned_roots.push(json!({"kind": label, "path": path}));
                w.dir(&root, &label, Path::new(""), 0);
            }
            Err(e) => w.stopped.push(Stop {
                path: path.clone(),
                root: label.clone(),
                reason: format!("cannot open it: {}", e.to_envelope().message),
            }),
        }
    }
    let fixed = w.findings.iter().filter(|f| f.fixed_mode.is_some()).count();
    json!({
        "ok": true,
        "findings": w.findings,
        "fixed": fixed,
        "scanned": w.scanned,
        "roots": scanned_roots,
        "complete": w.stopped.is_empty(),
        "stopped": w.stopped,
        "allowOwnerOnly": allow_owner_only,
    })
}

async fn run(st: UiState, fix: Fix) -> Response {
    let config = st.config();
    match tokio::task::spawn_blocking(move || scan(&config, fix)).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => super::guard::refuse(&carapace_policy::ErrorEnvelope::new(
            ErrorCode::Internal,
            format!("the scan failed unexpectedly (a bug): {e}"),
        )),
    }
}

/// `GET /ui/api/doctor`: the findings.
pub async fn show(State(st): State<UiState>) -> Response {
    run(st, Fix::None).await
}

/// A `{path?}` body: one file, or every file that can be fixed safely.
#[derive(Debug, Deserialize)]
pub struct FixBody {
    path: Option<PathBuf>,
}

/// `POST /ui/api/doctor/fix {path?}`: adds the missing read bits, then reports again.
pub async fn fix(State(st): State<UiState>, Json(b): Json<FixBody>) -> Response {
    let fix = match b.path {
        Some(p) => Fix::One(p),
        None => Fix::All,
    };
    run(st, fix).await
}
