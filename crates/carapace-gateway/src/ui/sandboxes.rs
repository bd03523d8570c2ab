//! The sandboxes view: what `carapace sandbox list` and `explain` show (backend, directories,
//! containers, the effective policy and its mount table), and `recreate`.

use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use carapace_policy::mounts::{self, MountKind};
use carapace_policy::{CarapaceError, Config, ErrorEnvelope, ResolveInput};
use carapace_sandbox::docker::{self, DockerBackend, DockerOptions, Selector};
use carapace_sandbox::{BackendKind, SandboxManager};
use serde::Deserialize;
use serde_json::{Value, json};

use super::guard::refuse;
use super::state::UiState;

fn docker_backend(config: &Config) -> Result<DockerBackend, ErrorEnvelope> {
    DockerBackend::new(DockerOptions::new(config.state_dir.clone())).map_err(|e| e.to_envelope())
}

/// `GET /ui/api/sandboxes`: the backend, the sandbox directories, and (docker) the containers.
pub async fn list(State(st): State<UiState>) -> Response {
    let config = st.config();
    let manager = SandboxManager::new();
    let dirs = match manager.list(&config) {
        Ok(d) => d,
        Err(e) => return refuse(&e.to_envelope()),
    };
    let eff = match config.resolve(&ResolveInput::default()) {
        Ok(e) => e,
        Err(e) => return refuse(&e.to_envelope()),
    };
    let status = manager.backend_status(eff.backend.value);
    let containers = if status.selected == Some(BackendKind::Docker) {
        match docker_backend(&config) {
            Ok(b) => match docker::list(&b, Some(&config)).await {
                Ok(cs) => serde_json::to_value(&cs).unwrap_or_default(),
                Err(e) => json!({"error": e.to_envelope()}),
            },
            Err(e) => json!({"error": e}),
        }
    } else {
        Value::Null
    };
    Json(json!({"ok": true, "backend": status, "sandboxes": dirs, "containers": containers}))
        .into_response()
}

/// A `?session=` query (default: the default agent's main session).
#[derive(Debug, Deserialize)]
pub struct Target {
    session: Option<String>,
}

impl Target {
    fn input(&self) -> ResolveInput<'_> {
        ResolveInput {
            session_key: self.session.as_deref().filter(|s| !s.trim().is_empty()),
            ..ResolveInput::default()
        }
    }
}

/// `GET /ui/api/sandboxes/explain?session=`: the effective sandbox of a session and why, its
/// mounts (ro/rw), user, limits and backend.
pub async fn explain(State(st): State<UiState>, Query(t): Query<Target>) -> Response {
    let config = st.config();
    let manager = SandboxManager::new();
    let eff = match config.resolve(&t.input()) {
        Ok(e) => e,
        Err(e) => return refuse(&e.to_envelope()),
    };
    let table = mounts::plan(&eff);
    let status = manager.backend_status(eff.backend.value);
    let kind = match (eff.sandboxed, status.selected) {
        (false, _) => BackendKind::HostUnsandboxed,
        (true, Some(k)) => k,
        (true, None) => BackendKind::Bwrap,
    };
    let timeout = Duration::from_secs(config.file.tools.exec.timeout_seconds);
    let limits = carapace_sandbox::explain::limit_lines(&eff, kind, timeout);
    let user = eff
        .sandboxed
        .then(|| carapace_sandbox::explain::user_line(&eff, &table, kind));
    let rows: Vec<Value> = table
        .mounts
        .iter()
        .map(|m| {
            json!({
                "containerPath": m.container_path,
                "hostPath": m.host_path,
                "access": if m.writable { "rw" } else { "ro" },
                "kind": match m.kind {
                    MountKind::Workspace => "workspace",
                    MountKind::Agent => "agent",
                    MountKind::Bind => "bind",
                },
            })
        })
        .collect();
    let container = if eff.sandboxed && status.selected == Some(BackendKind::Docker) {
        let line = match docker_backend(&config) {
            Ok(b) => match b.plan(&eff, &table) {
                Ok(plan) => match b.explain(&plan).await {
                    Ok(Some(l)) => l,
                    Ok(None) => format!("container {} (not created yet)", plan.name),
                    Err(e) => format!("unavailable: {e}"),
                },
                Err(e) => format!("unavailable: {e}"),
            },
            Err(e) => format!("unavailable: {}", e.message),
        };
        Some(line)
    } else {
        None
    };
    let from = |v: String, l: &carapace_policy::Layer| format!("{v} (from {l})");
    let why = json!({
        "mode": from(eff.mode.value.to_string(), &eff.mode.from),
        "workspaceAccess": from(eff.workspace_access.value.to_string(), &eff.workspace_access.from),
        "scope": from(eff.scope.value.to_string(), &eff.scope.from),
        "workspaceRoot": from(eff.workspace_root.value.display().to_string(), &eff.workspace_root.from),
        "agentWorkspace": from(eff.agent_workspace.value.display().to_string(), &eff.agent_workspace.from),
    });
    Json(
        json!({"ok": true, "effective": eff, "why": why, "mounts": rows, "backend": status,
                "backendKind": kind.as_str(), "user": user, "limits": limits,
                "container": container}),
    )
    .into_response()
}

/// A `{session, force?}` body.
#[derive(Debug, Deserialize)]
pub struct RecreateBody {
    session: Option<String>,
    #[serde(default)]
    force: bool,
}

/// `POST /ui/api/sandboxes/recreate {session}`: bwrap re-checks the session's directories and
/// re-seeds missing bootstrap files; docker removes the session's container so the next use
/// creates it from the current config (one used in the last 5 minutes only with `force`).
pub async fn recreate(State(st): State<UiState>, Json(b): Json<RecreateBody>) -> Response {
    let config = st.config();
    let manager = SandboxManager::new();
    let t = Target {
        session: b.session.clone(),
    };
    let eff = match config.resolve(&t.input()) {
        Ok(e) => e,
        Err(e) => return refuse(&e.to_envelope()),
    };
    if manager.backend_status(eff.backend.value).selected == Some(BackendKind::Docker) {
        let backend = match docker_backend(&config) {
            Ok(b) => b,
            Err(e) => return refuse(&e),
        };
        let sel = Selector::Session(eff.session_key.clone());
        return match docker::recreate(&backend, &sel, b.force).await {
            Ok(rep) => Json(
                json!({"ok": true, "backend": "docker", "scopeKey": eff.scope_key,
                                   "removed": rep.removed, "skipped": rep.skipped}),
            )
            .into_response(),
            Err(e) => refuse(&e.to_envelope()),
        };
    }
    match manager.session(&config, &t.input()) {
        Ok(s) => Json(json!({"ok": true, "backend": "bwrap", "scopeKey": s.eff.scope_key,
                             "recreated": false,
                             "note": "directories checked, missing bootstrap files re-seeded; bwrap creates fresh namespaces for every command"}))
        .into_response(),
        Err(e) => refuse(&e.to_envelope()),
    }
}
