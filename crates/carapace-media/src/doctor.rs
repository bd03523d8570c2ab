//! The doctor scan, shared by `carapace doctor` and the web page's doctor view: files in the
//! media dir, the agent workspaces, the sandbox directories and `extraRoots` that an outbound
//! send would refuse, each with the outbound reader's own code and message
//! ([`check_file`] decides; doctor never classifies on its own), and the fix — adding the
//! missing read bits (`chmod g+r,o+r`) — for every file where that is safe, or for one file.
//!
//! Never widened: files that look like secrets ([`looks_secret`]) and anything under the state
//! dir's `secrets/`; hardlinked files (a chmod would change the other name too) and files owned
//! by another user are reported with what to do instead. The walk goes through carapace-fs and
//! never follows a symlink. It is bounded: at most [`MAX_DEPTH`] directory levels below each
//! root and [`MAX_ENTRIES`] entries in all; a place past a bound, or one that cannot be listed,
//! is a [`Stop`], so a partial scan never reads as a clean one ([`Report::complete`]).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use carapace_fs::{FileKind, FileMeta, Root};
use carapace_policy::{CarapaceError, Config, ErrorCode, ResolveInput, mode_string};
use serde::Serialize;

use crate::outbound::{AllowedRoot, OutboundPolicy, Purpose, check_file};

/// Most entries one scan looks at.
pub const MAX_ENTRIES: usize = 200_000;
/// Deepest directory level walked below a root.
pub const MAX_DEPTH: usize = 64;
/// Places a report lists at most (the first ones are enough to act on).
const MAX_STOPS: usize = 100;

/// What a scan changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// Nothing: report only.
    None,
    /// Every file whose mode can be widened safely.
    All,
    /// Only this file (host path), if it can be widened safely.
    One(PathBuf),
}

/// One file an outbound send would refuse.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// Host path.
    pub path: PathBuf,
    /// Which root it is in (`media`, `workspace:<agent>`, `sandboxes`, `extraRoot`).
    pub root: String,
    /// Its mode, as `"0600"`.
    pub mode: String,
    /// The outbound reader's code for it.
    pub code: ErrorCode,
    /// The outbound reader's message for it.
    pub reason: String,
    /// True when a fix (adding read bits) is safe and has not been made yet.
    pub fixable: bool,
    /// The mode after the fix this scan made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fixed_mode: Option<String>,
    /// Why carapace does not fix it, and what to do instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_fixed: Option<String>,
}

/// A place the scan did not cover, and why.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stop {
    /// Host path.
    pub path: PathBuf,
    /// Which root it is in.
    pub root: String,
    /// Why it was not scanned.
    pub reason: String,
}

/// A root the scan walked.
#[derive(Debug, Clone, Serialize)]
pub struct ScannedRoot {
    /// Its label.
    pub kind: String,
    /// Host path.
    pub path: PathBuf,
}

/// What a scan found and did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Files a send would refuse.
    pub findings: Vec<Finding>,
    /// How many of them this scan fixed.
    pub fixed: usize,
    /// Entries looked at.
    pub scanned: usize,
    /// Roots walked.
    pub roots: Vec<ScannedRoot>,
    /// Places not covered (empty for a complete scan).
    pub stopped: Vec<Stop>,
    /// `tools.message.outboundMediaPolicy.allowOwnerOnly`.
    pub allow_owner_only: bool,
}

impl Report {
    /// True when every root was walked to the end.
    pub fn complete(&self) -> bool {
        self.stopped.is_empty()
    }

    /// Findings left without a fix.
    pub fn unfixed(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.fixed_mode.is_none())
            .count()
    }
}

/// True for names that look like keys, tokens or credentials.
pub fn looks_secret(name: &str) -> bool {
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

/// The directories doctor scans, labelled, existing ones only, each once.
pub fn roots(config: &Config) -> Vec<(String, PathBuf)> {
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
    let mut seen = HashSet::new();
    v.retain(|(_, p)| seen.insert(p.clone()) && p.is_dir());
    v
}

/// Scans every root of `config` as the process of user `uid`, making the fixes `fix` asks for.
/// Blocking (a directory walk): call it off the async workers.
pub fn scan(config: &Config, fix: &Fix, uid: u32) -> Report {
    let allow_owner_only = config
        .file
        .tools
        .message
        .outbound_media_policy
        .allow_owner_only;
    let scan_roots = roots(config);
    let mut w = Walk {
        fix,
        policy: OutboundPolicy {
            roots: scan_roots
                .iter()
                .map(|(label, path)| AllowedRoot {
                    kind: label.clone(),
                    host: path.clone(),
                })
                .collect(),
            table: None,
            allow_owner_only,
        },
        uid,
        secrets_dir: config.state_dir.join("secrets"),
        findings: Vec::new(),
        scanned: 0,
        stopped: Vec::new(),
    };
    let mut walked = Vec::new();
    for (label, path) in scan_roots {
        match Root::open(&path) {
            Ok(root) => {
                walked.push(ScannedRoot {
                    kind: label.clone(),
                    path: path.clone(),
                });
                w.dir(&root, &label, Path::new(""), 0);
            }
            Err(e) => w.stopped.push(Stop {
                path,
                root: label,
                reason: format!("cannot open it: {}", e.to_envelope().message),
            }),
        }
    }
    let fixed = w.findings.iter().filter(|f| f.fixed_mode.is_some()).count();
    Report {
        findings: w.findings,
        fixed,
        scanned: w.scanned,
        roots: walked,
        stopped: w.stopped,
        allow_owner_only,
    }
}

struct Walk<'a> {
    fix: &'a Fix,
    /// The outbound reader's policy with doctor's roots as the allowed roots.
    policy: OutboundPolicy,
    uid: u32,
    secrets_dir: PathBuf,
    findings: Vec<Finding>,
    scanned: usize,
    stopped: Vec<Stop>,
}

impl Walk<'_> {
    fn stop(&mut self, root: &Root, label: &str, rel: &Path, reason: String) {
        if self.stopped.len() < MAX_STOPS {
            self.stopped.push(Stop {
                path: root.host_path().join(rel),
                root: label.to_string(),
                reason,
            });
        }
    }

    fn dir(&mut self, root: &Root, label: &str, rel: &Path, depth: usize) {
        if self.scanned >= MAX_ENTRIES {
            return;
        }
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
                let why = format!(
                    "the scan reached its bound of {MAX_ENTRIES} entries here; the rest was not scanned"
                );
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

    fn file(&mut self, root: &Root, label: &str, rel: &Path, name: &str, m: &FileMeta) {
        let host = root.host_path().join(rel);
        // The outbound reader's own check, classification and message: doctor reports what a
        // send of this file would answer, in the same words.
        let refusal = match check_file(
            &self.policy,
            &host.to_string_lossy(),
            Purpose::Import { limit: u64::MAX },
        ) {
            Ok(_) => return,
            Err(e) => e.to_envelope(),
        };
        let mut f = Finding {
            path: host.clone(),
            root: label.to_string(),
            mode: mode_string(m.mode),
            code: refusal.code,
            reason: refusal.message,
            fixable: false,
            fixed_mode: None,
            not_fixed: None,
        };
        let other_user = m.uid != self.uid && self.uid != 0;
        match refusal.code {
            ErrorCode::OutboundMediaPermsTooRestrictive => {}
            ErrorCode::HardlinkRefused => {
                f.not_fixed = Some("copy the file (or save it with `carapace media save`)".into());
                self.findings.push(f);
                return;
            }
            ErrorCode::PermissionDenied if other_user => {
                f.not_fixed = Some("owned by another user: chown or chmod it as that user".into());
                self.findings.push(f);
                return;
            }
            _ => {
                f.not_fixed = refusal.hint;
                self.findings.push(f);
                return;
            }
        }
        if looks_secret(name) || host.starts_with(&self.secrets_dir) {
            f.not_fixed = Some("looks like a secret; carapace never widens it".into());
        } else if other_user {
            f.not_fixed = Some(format!("owned by uid {}, not carapace's", m.uid));
        } else {
            let wanted = match self.fix {
                Fix::None => false,
                Fix::All => true,
                Fix::One(p) => *p == host,
            };
            if wanted {
                let new = (m.mode | 0o444) & 0o7777;
                match root.set_mode(rel, new) {
                    Ok(()) => f.fixed_mode = Some(mode_string(new)),
                    Err(e) => f.not_fixed = Some(e.to_envelope().message),
                }
            } else {
                f.fixable = true;
            }
        }
        self.findings.push(f);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for n in [
            "id_rsa",
            "id_ed25519.pub",
            ".env",
            ".env.local",
            "server.PEM",
            "api_token.txt",
            "my-password",
            ".netrc",
            "known_hosts",
        ] {
            assert!(looks_secret(n), "{n}");
        }
        for n in ["shot.png", "report.pdf", "environment.md", "keys.txt"] {
            assert!(!looks_secret(n), "{n}");
        }
    }
}
