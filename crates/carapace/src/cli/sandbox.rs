//! `carapace sandbox list | explain | recreate` (OpenClaw-like output; `--json`).

use std::fmt::Write as _;
use std::sync::Arc;

use carapace_policy::mounts::{self, MountKind};
use carapace_policy::{CarapaceError, Decided, ErrorEnvelope, ResolveInput};
use carapace_sandbox::{BackendStatus, SandboxManager};
use clap::{Args, Subcommand};
use serde_json::json;

use super::Global;
use crate::context::load_config;
use crate::output::emit_ok;

/// `carapace sandbox ...`
#[derive(Debug, Subcommand)]
pub enum SandboxCmd {
    /// List sandbox directories and the backend.
    List,
    /// Explain the sandbox one session gets: effective policy, why, mounts, backend.
    Explain(Target),
    /// Re-check a session's sandbox directories and re-seed missing bootstrap files.
    Recreate(Target),
}

/// Which session.
#[derive(Debug, Args)]
pub struct Target {
    /// Agent id (default: from the session key, else "main").
    #[arg(long)]
    agent: Option<String>,
    /// Channel id (default: from the session key).
    #[arg(long)]
    channel: Option<String>,
    /// Session key, e.g. agent:main:telegram:dm:4242 (default: the agent's main session).
    #[arg(long)]
    session: Option<String>,
}

impl Target {
    fn input(&self) -> ResolveInput<'_> {
        ResolveInput {
            agent: self.agent.as_deref(),
            channel: self.channel.as_deref(),
            session_key: self.session.as_deref(),
        }
    }
}

fn why<T: std::fmt::Display>(d: &Decided<T>) -> String {
    format!("{} (from {})", d.value, d.from)
}

fn backend_line(st: &BackendStatus) -> String {
    match (st.available, st.selected) {
        (true, Some(k)) => format!("{} — available ({})", k.as_str(), st.detail),
        _ => format!(
            "{} — UNAVAILABLE: {}{}",
            st.configured,
            st.detail,
            st.hint
                .as_ref()
                .map(|h| format!("\n    hint: {h}"))
                .unwrap_or_default()
        ),
    }
}

/// Runs a `sandbox` subcommand.
pub async fn run(cmd: SandboxCmd, g: &Global) -> Result<(), ErrorEnvelope> {
    let config = Arc::new(load_config(g.config.as_deref(), true)?);
    let manager = SandboxManager::new();
    match cmd {
        SandboxCmd::List => {
            let dirs = manager.list(&config).map_err(|e| e.to_envelope())?;
            let eff = config
                .resolve(&ResolveInput::default())
                .map_err(|e| e.to_envelope())?;
            let st = manager.backend_status(eff.backend.value);
            let mut h = String::new();
            let _ = writeln!(h, "Backend: {}", backend_line(&st));
            let _ = writeln!(
                h,
                "bwrap sandboxes are fresh namespaces per command; what persists is each scope's directory:"
            );
            if dirs.is_empty() {
                let _ = writeln!(h, "  (no sandbox directories yet)");
            }
            for d in &dirs {
                let _ = writeln!(
                    h,
                    "  {}  {}{}",
                    d.slug,
                    d.path.display(),
                    d.scope_key
                        .as_ref()
                        .map(|k| format!("  ({k})"))
                        .unwrap_or_default()
                );
            }
            emit_ok(g.json, json!({ "backend": st, "sandboxes": dirs }), &h);
        }
        SandboxCmd::Explain(t) => {
            let eff = config.resolve(&t.input()).map_err(|e| e.to_envelope())?;
            let table = mounts::plan(&eff);
            let st = manager.backend_status(eff.backend.value);
            let mut h = String::new();
            let _ = writeln!(h, "Effective sandbox:");
            let _ = writeln!(h, "  agentId: {}", eff.agent_id);
            let _ = writeln!(h, "  sessionKey: {}", eff.session_key);
            let _ = writeln!(
                h,
                "  channel: {}",
                eff.channel.as_deref().unwrap_or("(none)")
            );
            let _ = writeln!(h, "  mode: {}", why(&eff.mode));
            let _ = writeln!(
                h,
                "  sandboxed: {}",
                if eff.sandboxed {
                    "yes"
                } else {
                    "NO — exec runs on the host, unsandboxed, as carapace's own user"
                }
            );
            let _ = writeln!(h, "  workspaceAccess: {}", why(&eff.workspace_access));
            if eff.workspace_access.value == carapace_policy::config::WorkspaceAccess::Session {
                let _ = writeln!(
                    h,
                    "  sessionAgentAccess: {}",
                    why(&eff.session_agent_access)
                );
            }
            let _ = writeln!(h, "  scope: {}", why(&eff.scope));
            let _ = writeln!(h, "  scopeKey: {} (slug {})", eff.scope_key, eff.scope_slug);
            let _ = writeln!(
                h,
                "  workspaceRoot: {} (from {})",
                eff.workspace_root.value.display(),
                eff.workspace_root.from
            );
            let _ = writeln!(
                h,
                "  agentWorkspace: {} (from {})",
                eff.agent_workspace.value.display(),
                eff.agent_workspace.from
            );
            let _ = writeln!(
                h,
                "  umask: {} (from {})",
                carapace_policy::mode_string(eff.umask.value.0),
                eff.umask.from
            );
            let _ = writeln!(h, "  network: {}", eff.docker.network);
            let _ = writeln!(h, "Mounts:");
            for m in &table.mounts {
                let kind = match m.kind {
                    MountKind::Workspace => "workspace",
                    MountKind::Agent => "agent",
                    MountKind::Bind => "bind",
                };
                let _ = writeln!(
                    h,
                    "  {:<12} <- {}  ({}, {kind})",
                    m.container_path,
                    m.host_path.display(),
                    if m.writable { "rw" } else { "ro" }
                );
            }
            if eff.sandboxed {
                let _ = writeln!(h, "Backend: {}", backend_line(&st));
            } else {
                let _ = writeln!(h, "Backend: host (unsandboxed)");
            }
            if !eff.notes.is_empty() {
                let _ = writeln!(h, "Notes:");
                for n in &eff.notes {
                    let _ = writeln!(h, "  - {n}");
                }
            }
            emit_ok(
                g.json,
                json!({ "effective": eff, "mounts": table, "backend": st }),
                &h,
            );
        }
        SandboxCmd::Recreate(t) => {
            let session = manager
                .session(&config, &t.input())
                .map_err(|e| e.to_envelope())?;
            let h = format!(
                "{}: directories checked, missing bootstrap files re-seeded. bwrap creates fresh namespaces for every command, so there is no long-lived sandbox to recreate.\n",
                session.eff.scope_key
            );
            emit_ok(
                g.json,
                json!({ "scopeKey": session.eff.scope_key, "mounts": session.table, "recreated": false }),
                &h,
            );
        }
    }
    Ok(())
}
