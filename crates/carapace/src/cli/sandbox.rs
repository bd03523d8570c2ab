//! `carapace sandbox list | explain | recreate` (OpenClaw-like output; `--json`).

use std::fmt::Write as _;
use std::sync::Arc;

use carapace_policy::mounts::{self, MountKind};
use carapace_policy::{CarapaceError, Decided, ErrorEnvelope, ResolveInput};
use carapace_sandbox::docker::{self, DockerBackend, DockerOptions, Selector};
use carapace_sandbox::{BackendKind, BackendStatus, SandboxManager};
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
    /// Re-check a session's sandbox directories and re-seed missing bootstrap files; with the
    /// docker backend, remove containers (`--all | --session K | --agent A [--force]`) so the
    /// next use creates them from the current config.
    Recreate(RecreateArgs),
}

/// `carapace sandbox recreate` arguments.
#[derive(Debug, Args)]
pub struct RecreateArgs {
    #[command(flatten)]
    target: Target,
    /// Docker: every container of this installation.
    #[arg(long)]
    all: bool,
    /// Docker: also remove containers used in the last 5 minutes.
    #[arg(long)]
    force: bool,
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
            let containers = if st.selected == Some(BackendKind::Docker) {
                docker_list(&config, &mut h).await
            } else {
                json!(null)
            };
            emit_ok(
                g.json,
                json!({ "backend": st, "sandboxes": dirs, "containers": containers }),
                &h,
            );
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
            let backend_kind = match (eff.sandboxed, st.selected) {
                (false, _) => BackendKind::HostUnsandboxed,
                (true, Some(k)) => k,
                (true, None) => BackendKind::Bwrap,
            };
            let timeout = std::time::Duration::from_secs(config.file.tools.exec.timeout_seconds);
            let limits = carapace_sandbox::explain::limit_lines(&eff, backend_kind, timeout);
            let user = eff
                .sandboxed
                .then(|| carapace_sandbox::explain::user_line(&eff, &table, backend_kind));
            if let Some(u) = &user {
                let _ = writeln!(h, "User: {u}");
            }
            let _ = writeln!(h, "Limits:");
            for l in &limits {
                let _ = writeln!(h, "  {l}");
            }
            if eff.sandboxed {
                let _ = writeln!(h, "Backend: {}", backend_line(&st));
                if st.selected == Some(BackendKind::Docker) {
                    docker_explain(&config, &eff, &table, &mut h).await;
                }
            } else {
                let _ = writeln!(h, "Backend: host (unsandboxed)");
            }
            let policies = super::config::tool_policies(&config, &t.input())?;
            h.push_str(&super::config::render_tool_policy(&policies, true));
            let _ = writeln!(
                h,
                "  elevated: off (carapace has no elevated mode: exec never leaves the sandbox)"
            );
            if !eff.notes.is_empty() {
                let _ = writeln!(h, "Notes:");
                for n in &eff.notes {
                    let _ = writeln!(h, "  - {n}");
                }
            }
            emit_ok(
                g.json,
                json!({ "effective": eff, "mounts": table, "backend": st, "user": user, "limits": limits,
                        "toolPolicy": super::config::tool_policy_json(&policies) }),
                &h,
            );
        }
        SandboxCmd::Recreate(r) => {
            let eff = config
                .resolve(&r.target.input())
                .map_err(|e| e.to_envelope())?;
            if manager.backend_status(eff.backend.value).selected == Some(BackendKind::Docker) {
                return docker_recreate(&config, &r, g).await;
            }
            let t = r.target;
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

fn docker_backend(config: &carapace_policy::Config) -> Result<DockerBackend, ErrorEnvelope> {
    DockerBackend::new(DockerOptions::new(config.state_dir.clone())).map_err(|e| e.to_envelope())
}

/// `list`, docker part: this installation's containers (an unreachable engine is a line, not a
/// failure of the whole listing).
async fn docker_list(config: &carapace_policy::Config, h: &mut String) -> serde_json::Value {
    let listed = match docker_backend(config) {
        Ok(b) => docker::list(&b, Some(config))
            .await
            .map_err(|e| e.to_envelope()),
        Err(e) => Err(e),
    };
    match listed {
        Ok(cs) => {
            let _ = writeln!(h, "Docker containers:");
            if cs.is_empty() {
                let _ = writeln!(h, "  (none)");
            }
            for c in &cs {
                let config_state = match c.config_match {
                    Some(true) => "config matches".to_string(),
                    Some(false) => c.note.clone().unwrap_or_else(|| "config changed".into()),
                    None => "config unknown".to_string(),
                };
                let _ = writeln!(
                    h,
                    "  {}  {}  image {}  scope {}  {}",
                    c.name,
                    if c.running {
                        "running"
                    } else {
                        c.state.as_str()
                    },
                    c.image,
                    c.scope_key,
                    config_state
                );
            }
            serde_json::to_value(&cs).unwrap_or_default()
        }
        Err(e) => {
            let _ = writeln!(h, "Docker containers: unavailable: {}", e.message);
            json!({ "error": e })
        }
    }
}

/// `explain`, docker part: the scope's container and whether its config is stale.
async fn docker_explain(
    config: &carapace_policy::Config,
    eff: &carapace_policy::EffectiveSandbox,
    table: &carapace_policy::mounts::MountTable,
    h: &mut String,
) {
    let line = match docker_backend(config) {
        Ok(b) => match b.plan(eff, table) {
            Ok(plan) => match b.explain(&plan).await {
                Ok(Some(l)) => l,
                Ok(None) => format!("container {} (not created yet)", plan.name),
                Err(e) => format!("unavailable: {e}"),
            },
            Err(e) => format!("unavailable: {e}"),
        },
        Err(e) => format!("unavailable: {}", e.message),
    };
    let _ = writeln!(h, "Container: {line}");
}

/// `recreate`, docker: remove the selected containers.
async fn docker_recreate(
    config: &carapace_policy::Config,
    r: &RecreateArgs,
    g: &Global,
) -> Result<(), ErrorEnvelope> {
    let selector = match (&r.all, &r.target.session, &r.target.agent) {
        (true, _, _) => Selector::All,
        (false, Some(k), _) => Selector::Session(k.clone()),
        (false, None, Some(a)) => Selector::Agent(a.clone()),
        (false, None, None) => {
            return Err(ErrorEnvelope::new(
                carapace_policy::ErrorCode::BadRequest,
                "name the containers to recreate",
            )
            .with_hint("carapace sandbox recreate --all | --session KEY | --agent ID [--force]"));
        }
    };
    let b = docker_backend(config)?;
    let rep = docker::recreate(&b, &selector, r.force)
        .await
        .map_err(|e| e.to_envelope())?;
    let mut h = String::new();
    for n in &rep.removed {
        let _ = writeln!(
            h,
            "removed {n} (created again from the current config on next use)"
        );
    }
    for (n, why) in &rep.skipped {
        let _ = writeln!(h, "skipped {n}: {why}");
    }
    if rep.removed.is_empty() && rep.skipped.is_empty() {
        let _ = writeln!(h, "no matching containers");
    }
    emit_ok(
        g.json,
        json!({ "removed": rep.removed, "skipped": rep.skipped }),
        &h,
    );
    Ok(())
}
