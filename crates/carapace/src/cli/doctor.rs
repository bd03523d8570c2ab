//! `carapace doctor [--fix]`: finds files in the media dir, the agent workspaces, the sandbox
//! directories and `extraRoots` that an outbound send would refuse, says why for each, and with
//! `--fix` adds the read bits that are missing (`chmod g+r,o+r`).
//!
//! Never widened: files that look like secrets (keys, `.env`, tokens, credentials…) and
//! anything under the state dir's `secrets/`; hardlinked files (a chmod would change the other
//! name too) and files owned by another user are reported, never changed. The walk goes
//! through carapace-fs and never follows a symlink.
//!
//! The walk is bounded: at most [`MAX_DEPTH`] directory levels below each root and
//! [`MAX_ENTRIES`] entries in all. A directory past a bound, or one that cannot be listed, is
//! reported with where and why, and the command then fails with `SCAN_INCOMPLETE` (exit 3)
//! after printing the findings it has: a partial scan never reads as a clean one.

use std::path::{Path, PathBuf};

use carapace_fs::{FileKind, Root};
use carapace_media::outbound::{AllowedRoot, OutboundPolicy, Purpose, check_file};
use carapace_policy::{CarapaceError, Config, ErrorCode, ErrorEnvelope, ResolveInput, mode_string};
use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};

use super::Global;
use crate::context::load_config;
use crate::output::emit_ok;

/// Most entries one run looks at.
const MAX_ENTRIES: usize = 200_000;
/// Deepest directory level walked.
const MAX_DEPTH: usize = 64;

/// `carapace doctor`
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Fix the modes that can be fixed safely (adds group/others read; never on secrets).
    #[arg(long)]
    fix: bool,
}

/// One file an outbound send would refuse.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Finding {
    path: PathBuf,
    root: String,
    mode: String,
    code: ErrorCode,
    reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fixed_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_fixed: Option<String>,
}

/// True for names that look like keys, tokens or credentials.
pub fn looks_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with("id_rsa")
        || n.starts_with("id_ed25519")
        || n.starts_with("id_ecdsa")
        || n.starts_with("id_dsa")
        || n == ".env"
        || n.starts_with(".env.")
        || n.ends_with(".pem")
        || n.ends_with(".key")
        || n.ends_with(".p12")
        || n.ends_with(".pfx")
        || n.ends_with(".kdbx")
        || n.contains("secret")
        || n.contains("token")
        || n.contains("credential")
        || n.contains("password")
        || n == ".netrc"
        || n == ".npmrc"
        || n == ".pgpass"
        || n == "authorized_keys"
        || n == "known_hosts"
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

/// A place the scan did not cover, and why.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Stop {
    path: PathBuf,
    root: String,
    reason: String,
}

struct Walk<'a> {
    fix: bool,
    /// The outbound reader's policy with doctor's roots as the allowed roots.
    policy: OutboundPolicy,
    uid: u32,
    secrets_dir: PathBuf,
    findings: &'a mut Vec<Finding>,
    scanned: usize,
    stopped: Vec<Stop>,
}

impl Walk<'_> {
    fn stop(&mut self, root: &Root, label: &str, rel: &Path, reason: String) {
        // Keep the report readable on a pathological tree: the first 100 places are enough.
        if self.stopped.len() < 100 {
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
            self.stop(
                root,
                label,
                rel,
                format!("deeper than {MAX_DEPTH} directory levels; not scanned"),
            );
            return;
        }
        let entries = match root.list(rel) {
            Ok(e) => e,
            Err(e) => {
                let msg = e.to_envelope().message;
                self.stop(root, label, rel, format!("cannot list it: {msg}"));
                return;
            }
        };
        for e in entries {
            if self.scanned >= MAX_ENTRIES {
                self.stop(
                    root,
                    label,
                    &rel.join(&e.name),
                    format!("the scan reached its bound of {MAX_ENTRIES} entries here; the rest was not scanned"),
                );
                return;
            }
            self.scanned += 1;
            let child = rel.join(&e.name);
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
        } else if self.fix {
            let new = (m.mode | 0o444) & 0o7777;
            match root.set_mode(rel, new) {
                Ok(()) => f.fixed_mode = Some(mode_string(new)),
                Err(e) => f.not_fixed = Some(e.to_envelope().message),
            }
        }
        self.findings.push(f);
    }
}

/// Runs `doctor`.
pub async fn run(args: DoctorArgs, g: &Global) -> Result<(), ErrorEnvelope> {
    let config = load_config(g.config.as_deref(), true)?;
    let allow_owner_only = config
        .file
        .tools
        .message
        .outbound_media_policy
        .allow_owner_only;
    let mut findings = Vec::new();
    let mut scanned_roots = Vec::new();
    let scan_roots = roots(&config);
    let policy = OutboundPolicy {
        roots: scan_roots
            .iter()
            .map(|(label, path)| AllowedRoot {
                kind: label.clone(),
                host: path.clone(),
            })
            .collect(),
        table: None,
        allow_owner_only,
    };
    let mut w = Walk {
        fix: args.fix,
        policy,
        uid: rustix::process::geteuid().as_raw(),
        secrets_dir: config.state_dir.join("secrets"),
        findings: &mut findings,
        scanned: 0,
        stopped: Vec::new(),
    };
    for (label, path) in scan_roots {
        let root = match Root::open(&path) {
            Ok(r) => r,
            Err(e) => {
                w.stopped.push(Stop {
                    path: path.clone(),
                    root: label.clone(),
                    reason: format!("cannot open it: {}", e.to_envelope().message),
                });
                continue;
            }
        };
        scanned_roots.push(json!({"kind": label, "path": path}));
        w.dir(&root, &label, Path::new(""), 0);
    }
    let scanned = w.scanned;
    let stopped = std::mem::take(&mut w.stopped);
    let fixed = findings.iter().filter(|f| f.fixed_mode.is_some()).count();
    let mut human = String::new();
    for f in &findings {
        // The reader's message names the file already; say it once.
        let shown = f.path.display().to_string();
        if f.reason.contains(&shown) {
            human.push_str(&format!("{} [{}] {}", f.code, f.root, f.reason));
        } else {
            human.push_str(&format!("{} [{}] {shown}: {}", f.code, f.root, f.reason));
        }
        match (&f.fixed_mode, &f.not_fixed) {
            (Some(m), _) => human.push_str(&format!("\n    fixed: now {m}")),
            (None, Some(why)) => human.push_str(&format!("\n    not fixed: {why}")),
            (None, None) => {
                human.push_str("\n    fix: chmod 644 it, or run `carapace doctor --fix`")
            }
        }
        human.push('\n');
    }
    if allow_owner_only {
        human.push_str("note: tools.message.outboundMediaPolicy.allowOwnerOnly is true, so owner-only files are sent as they are\n");
    }
    human.push_str(&format!(
        "{} file(s) an outbound send would refuse, {} fixed, {} entries scanned in {} root(s)",
        findings.len(),
        fixed,
        scanned,
        scanned_roots.len()
    ));
    let report =
        json!({"findings": findings, "fixed": fixed, "scanned": scanned, "roots": scanned_roots});
    let unfixed = findings.iter().filter(|f| f.fixed_mode.is_none()).count();
    if stopped.is_empty() && unfixed == 0 {
        emit_ok(g.json, report, &human);
        return Ok(());
    }
    if stopped.is_empty() {
        // Findings left: a non-zero exit, so a script (or CI) notices.
        if !g.json {
            emit_ok(false, Value::Null, &human);
        }
        let mut env = ErrorEnvelope::new(
            ErrorCode::FilesNotSendable,
            format!("{unfixed} file(s) an outbound send would refuse are left ({fixed} fixed)"),
        )
        .with_hint(if args.fix {
            "the files above need a change carapace does not make for you (see `not fixed:` for each)"
        } else {
            "run `carapace doctor --fix` to add the missing read bits where that is safe; the rest say what to do"
        })
        .with_detail("left", unfixed)
        .with_detail("fixed", fixed);
        // The findings are in the report printed above; the JSON envelope carries them.
        if let (true, Value::Object(m)) = (g.json, report) {
            for (k, v) in m {
                env = env.with_detail(&k, v);
            }
        }
        return Err(env);
    }
    // An incomplete scan is not a clean bill of health: report what was found, say where the
    // scan stopped, and exit non-zero (SCAN_INCOMPLETE).
    if !g.json {
        human.push_str("\nthe scan is INCOMPLETE:");
        for s in &stopped {
            human.push_str(&format!(
                "\n  [{}] {}: {}",
                s.root,
                s.path.display(),
                s.reason
            ));
        }
        emit_ok(false, Value::Null, &human);
    }
    let mut env = ErrorEnvelope::new(
        ErrorCode::ScanIncomplete,
        format!(
            "doctor did not scan everything: {} place(s) were skipped (depth bound {MAX_DEPTH}, entry bound {MAX_ENTRIES}, or unreadable)",
            stopped.len()
        ),
    )
    .with_hint("the findings above cover what was scanned; fix or move the deep or unreadable trees and run doctor again");
    env = env.with_detail(
        "stopped",
        serde_json::to_value(&stopped).unwrap_or(Value::Null),
    );
    if let Value::Object(m) = report {
        for (k, v) in m {
            env = env.with_detail(&k, v);
        }
    }
    Err(env)
}
