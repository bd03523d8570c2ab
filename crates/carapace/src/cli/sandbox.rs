//! `carapace sandbox list | explain | recreate` (OpenClaw-like output; `--json`). The
//! sandbox model is in docs/sandbox.md, the Docker backend in docs/sandbox-docker.md.

use std::fmt::Write as _;
use std::sync::Arc;

use carapace_policy::mounts::{self, MountKind};
use carapace_policy::{CarapaceError, Decided, ErrorCode, ErrorEnvelope, ResolveInput};
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
    /// Remove sandboxes so the next use creates them from the current config, as OpenClaw's
    /// `sandbox recreate`: name one selector (`--all`, `--session KEY` or `--agent ID`); it
    /// asks before removing anything unless `--force`.
    Recreate(RecreateArgs),
}

/// `carapace sandbox recreate` arguments: exactly one selector.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("selector").required(true).multiple(false).args(["all", "session", "agent"]))]
pub struct RecreateArgs {
    /// Every sandbox of this installation.
    #[arg(long)]
    all: bool,
    /// The sandbox of this session key (the container of its scope), e.g. agent:main:telegram:dm:42.
    #[arg(long)]
    session: Option<String>,
    /// The sandboxes of this agent.
    #[arg(long)]
    agent: Option<String>,
    /// Remove without asking (OpenClaw's `--force`: skip the confirmation).
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
            let eff = config
                .resolve(&ResolveInput::default())
                .map_err(|e| e.to_envelope())?;
            let st = manager.backend_status(eff.backend.value);
            let mut h = String::new();
            let _ = writeln!(h, "Backend: {}", backend_line(&st));
            if st.selected == Some(BackendKind::Docker) {
                // Docker's own data: the containers the engine has for this installation.
                let cs = docker::list(&docker_backend(&config)?, Some(&config))
                    .await
                    .map_err(|e| e.to_envelope())?;
                let now = now_ms();
                h.push_str(&docker_table(&cs, now));
                let running = cs.iter().filter(|c| c.running).count();
                emit_ok(
                    g.json,
                    json!({ "backend": st, "sandboxes": cs, "total": cs.len(), "running": running }),
                    &h,
                );
                return Ok(());
            }
            let dirs = manager.list(&config).map_err(|e| e.to_envelope())?;
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
            let _ = writeln!(h, "Total: {} (0 running)", dirs.len());
            emit_ok(
                g.json,
                json!({ "backend": st, "sandboxes": dirs, "total": dirs.len(), "running": 0 }),
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
            if eff.sandboxed {
                let _ = writeln!(h, "  network: {}", eff.docker.network);
                let _ = writeln!(h, "Mounts:");
            } else {
                // Mode off: nothing of the sandbox applies to exec, the network included.
                let _ = writeln!(
                    h,
                    "  network: the host's (exec runs on the host with the host network; sandbox network settings do not apply)"
                );
                let _ = writeln!(
                    h,
                    "Mounts (how the file tools map paths; exec on the host sees the whole host filesystem):"
                );
            }
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
                        "network": if eff.sandboxed { eff.docker.network.to_string() } else { "host".to_string() },
                        "toolPolicy": super::config::tool_policy_json(&policies) }),
                &h,
            );
        }
        SandboxCmd::Recreate(r) => {
            let eff = config
                .resolve(&ResolveInput {
                    agent: r.agent.as_deref(),
                    channel: None,
                    session_key: r.session.as_deref(),
                })
                .map_err(|e| e.to_envelope())?;
            if manager.backend_status(eff.backend.value).selected == Some(BackendKind::Docker) {
                return docker_recreate(&config, &r, g).await;
            }
            // bubblewrap keeps nothing long-lived: every command gets fresh namespaces built
            // from the config of that moment. Say so; re-check (and re-seed) the selected
            // session's directories, which is all there is to refresh.
            let session = match (&r.session, &r.agent) {
                (None, None) => None,
                _ => Some(
                    manager
                        .session(
                            &config,
                            &ResolveInput {
                                agent: r.agent.as_deref(),
                                channel: None,
                                session_key: r.session.as_deref(),
                            },
                        )
                        .map_err(|e| e.to_envelope())?,
                ),
            };
            let mut h = String::from(
                "nothing to remove: the bubblewrap backend keeps no long-lived sandbox (each command gets a fresh one from the current config, so a config change applies to the next command)\n",
            );
            if let Some(s) = &session {
                let _ = writeln!(
                    h,
                    "{}: sandbox directories checked, missing bootstrap files re-seeded",
                    s.eff.scope_key
                );
            }
            emit_ok(
                g.json,
                json!({ "backend": "bwrap", "removed": [], "scopeKey": session.as_ref().map(|s| s.eff.scope_key.clone()),
                        "note": "the bubblewrap backend keeps no long-lived sandbox; nothing to remove" }),
                &h,
            );
        }
    }
    Ok(())
}

/// Milliseconds since the epoch.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `3s`, `5m`, `2h`, `4d`.
fn ago(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86400),
    }
}

/// The containers as a table (name, state, age, idle, image, scope, config), then the total.
fn docker_table(cs: &[docker::ContainerInfo], now: i64) -> String {
    let mut h = String::new();
    let _ = writeln!(h, "Docker containers:");
    if cs.is_empty() {
        let _ = writeln!(
            h,
            "  (none: a session's container is created on its first sandboxed exec)"
        );
    }
    for c in cs {
        let config_state = match c.config_match {
            Some(true) => "config matches".to_string(),
            Some(false) => c.note.clone().unwrap_or_else(|| "config changed".into()),
            None => "config unknown".to_string(),
        };
        let _ = writeln!(
            h,
            "  {}  {}  age {}  idle {}  image {}  scope {}  {}",
            c.name,
            if c.running {
                "running"
            } else {
                c.state.as_str()
            },
            ago(now - c.created_at_ms),
            ago(now - c.last_used_at_ms),
            c.image,
            c.scope_key,
            config_state
        );
    }
    let running = cs.iter().filter(|c| c.running).count();
    let _ = writeln!(h, "Total: {} ({running} running)", cs.len());
    h
}

fn docker_backend(config: &carapace_policy::Config) -> Result<DockerBackend, ErrorEnvelope> {
    DockerBackend::new(DockerOptions::new(config.state_dir.clone())).map_err(|e| e.to_envelope())
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

/// `recreate`, docker: remove the selected containers, after asking (unless `--force`).
/// Nothing matching, or nothing confirmed, is an error: it never reports success for nothing
/// done.
async fn docker_recreate(
    config: &carapace_policy::Config,
    r: &RecreateArgs,
    g: &Global,
) -> Result<(), ErrorEnvelope> {
    let (selector, what) = match (&r.session, &r.agent) {
        (Some(k), _) => {
            // A session's container is its scope's: resolve which scope the key lands in.
            let eff = config
                .resolve(&ResolveInput {
                    agent: None,
                    channel: None,
                    session_key: Some(k),
                })
                .map_err(|e| e.to_envelope())?;
            (
                Selector::Session(eff.scope_key.clone()),
                format!("--session {k} (scope {})", eff.scope_key),
            )
        }
        (None, Some(a)) => (Selector::Agent(a.clone()), format!("--agent {a}")),
        (None, None) => (Selector::All, "--all".to_string()),
    };
    let b = docker_backend(config)?;
    let matching: Vec<String> = docker::list(&b, None)
        .await
        .map_err(|e| e.to_envelope())?
        .into_iter()
        .filter(|c| match &selector {
            Selector::All => true,
            Selector::Session(k) => c.scope_key == *k,
            Selector::Agent(a) => c.agent_id == *a,
        })
        .map(|c| c.name)
        .collect();
    if matching.is_empty() {
        return Err(ErrorEnvelope::new(
            ErrorCode::NotFound,
            format!("no sandbox container matches {what}: nothing removed"),
        )
        .with_hint("`carapace sandbox list` shows the containers; a session's container is created on its first sandboxed exec")
        .with_detail("selector", what));
    }
    if !r.force {
        confirm(&matching)?;
    }
    let rep = docker::recreate(&b, &selector, true)
        .await
        .map_err(|e| e.to_envelope())?;
    if rep.removed.is_empty() {
        return Err(ErrorEnvelope::new(
            ErrorCode::NotFound,
            format!("the containers matching {what} were gone before they could be removed: nothing removed"),
        )
        .with_detail("selector", what));
    }
    let mut h = String::new();
    for n in &rep.removed {
        let _ = writeln!(
            h,
            "removed {n} (created again from the current config on next use)"
        );
    }
    emit_ok(g.json, json!({ "removed": rep.removed }), &h);
    Ok(())
}

/// Asks on the terminal before removing `names`; without a terminal, refuses (pass `--force`).
fn confirm(names: &[String]) -> Result<(), ErrorEnvelope> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    let list = names.join(", ");
    if !std::io::stdin().is_terminal() {
        return Err(ErrorEnvelope::new(
            ErrorCode::BadRequest,
            format!(
                "sandbox recreate would remove {} container(s) ({list}) and asks first, but stdin is not a terminal: nothing removed",
                names.len()
            ),
        )
        .with_hint("pass --force to remove without asking")
        .with_detail("containers", names.to_vec()));
    }
    eprint!(
        "Remove {} container(s): {list}? Each is created again from the current config on next use. [y/N] ",
        names.len()
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
        return Ok(());
    }
    Err(
        ErrorEnvelope::new(ErrorCode::BadRequest, "not confirmed: nothing removed")
            .with_hint("answer y, or pass --force to remove without asking"),
    )
}
