//! [`SandboxManager`]: the one entry point for "run this for that session". It resolves the
//! policy, plans the mounts, prepares sandbox directories on first use, picks the backend (never
//! the host for a sandboxed session) and runs the command.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use carapace_fs::Root;
use carapace_policy::config::{Backend, WorkspaceAccess};
use carapace_policy::mounts::{self, Access, MountKind, MountTable};
use carapace_policy::{Config, EffectiveSandbox, ResolveInput};
use serde::Serialize;

use crate::backend::{
    BWRAP_HINT, BackendEnv, BackendKind, BackendStatus, DOCKER_HINT, ExecOutput, ExecPlan,
    ExecRequest, Sandbox,
};
use crate::bwrap::{Bwrap, HostLayout};
use crate::dirs;
use crate::error::SandboxError;
use crate::host::HostUnsandboxed;

/// One session's resolved policy and mount table, with its directories ready.
#[derive(Debug, Clone)]
pub struct Session {
    /// The effective policy.
    pub eff: EffectiveSandbox,
    /// Its mounts (shared by exec and the file tools).
    pub table: MountTable,
    /// `tools.fs.newFileMode`.
    pub new_file_mode: u32,
    /// `tools.fs.newDirMode`.
    pub new_dir_mode: u32,
    /// carapace's state directory (the Docker backend keeps its registry there).
    pub state_dir: std::path::PathBuf,
}

impl Session {
    /// Maps an agent path, naming the session's access in read-only refusals.
    pub fn resolve(
        &self,
        path: &str,
        access: Access,
    ) -> Result<mounts::Resolved<'_>, SandboxError> {
        Ok(self
            .table
            .resolve_for(path, access, self.eff.workspace_access.value)?)
    }
}

/// The timeout an `exec` gets: the requested `timeoutSeconds`, at most `tools.exec.timeoutSeconds`
/// (also the default). The config value is a ceiling, so no command outlives the gateway's request
/// budget (which defaults to it plus 30 s) and keeps running after its caller was told TIMEOUT;
/// an operator who wants longer commands raises the config.
pub fn effective_timeout_seconds(config: &Config, requested: Option<u64>) -> u64 {
    let ceiling = config.file.tools.exec.timeout_seconds;
    requested
        .filter(|t| *t > 0)
        .map_or(ceiling, |t| t.min(ceiling))
}

/// What `exec` asks for, before defaults.
#[derive(Debug, Clone, Default)]
pub struct ExecParams {
    /// Shell text.
    pub command: String,
    /// Working directory (container path or relative to `/workspace`).
    pub workdir: Option<String>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// Timeout override in seconds.
    pub timeout_seconds: Option<u64>,
}

/// A sandbox directory on disk, for `carapace sandbox list`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxDirInfo {
    /// Directory name (the scope slug).
    pub slug: String,
    /// Host path.
    pub path: PathBuf,
    /// Scope key, when this process has used it.
    pub scope_key: Option<String>,
    /// Last modification, seconds since the epoch.
    pub modified_unix: Option<u64>,
}

type BwrapProbe = Result<(Arc<Bwrap>, String), String>;

/// The sandbox runtime of one process.
#[derive(Debug)]
pub struct SandboxManager {
    env: BackendEnv,
    bwrap: OnceLock<BwrapProbe>,
    prepared: Mutex<BTreeMap<PathBuf, String>>,
}

impl Default for SandboxManager {
    fn default() -> Self {
        SandboxManager::new()
    }
}

impl SandboxManager {
    /// A manager that looks at the process environment.
    pub fn new() -> SandboxManager {
        SandboxManager::with_env(BackendEnv::from_process())
    }

    /// A manager with an injected environment (tests).
    pub fn with_env(env: BackendEnv) -> SandboxManager {
        SandboxManager {
            env,
            bwrap: OnceLock::new(),
            prepared: Mutex::new(BTreeMap::new()),
        }
    }

    fn bwrap_probe(&self) -> &BwrapProbe {
        self.bwrap.get_or_init(|| {
            let program = self
                .env
                .find_program("bwrap")
                .ok_or_else(|| "bwrap is not installed (not found on PATH)".to_string())?;
            let layout = HostLayout::detect();
            let version = crate::bwrap::probe(&program, &layout)?;
            Ok((Arc::new(Bwrap { program, layout }), version))
        })
    }

    /// What the configured backend resolves to here, and whether it can run.
    pub fn backend_status(&self, configured: Backend) -> BackendStatus {
        let probe = self.bwrap_probe();
        let bwrap_path = probe.as_ref().ok().map(|(b, _)| b.program.clone());
        let unavailable = |selected, detail: String, hint: &str| BackendStatus {
            configured,
            selected,
            available: false,
            bwrap_path: bwrap_path.clone(),
            detail,
            hint: Some(hint.to_string()),
        };
        let docker_status = |detail: String| {
            let present = self.env.docker_present();
            BackendStatus {
                configured,
                selected: Some(BackendKind::Docker),
                available: present,
                bwrap_path: bwrap_path.clone(),
                detail: if present {
                    format!(
                        "{detail}Docker engine socket present (the engine is asked at the first exec)"
                    )
                } else {
                    format!(
                        "{detail}no Docker engine socket (/var/run/docker.sock or $DOCKER_HOST)"
                    )
                },
                hint: (!present).then(|| DOCKER_HINT.to_string()),
            }
        };
        match (configured, probe) {
            (Backend::Auto | Backend::Bwrap, Ok((_, version))) => BackendStatus {
                configured,
                selected: Some(BackendKind::Bwrap),
                available: true,
                bwrap_path: bwrap_path.clone(),
                detail: version.clone(),
                hint: None,
            },
            (Backend::Auto, Err(why)) if self.env.docker_present() => {
                docker_status(format!("{why}; "))
            }
            (Backend::Auto, Err(why)) => unavailable(
                None,
                format!("{why}, and no Docker engine socket was found"),
                BWRAP_HINT,
            ),
            (Backend::Bwrap, Err(why)) => unavailable(None, why.clone(), BWRAP_HINT),
            (Backend::Docker, _) => docker_status(String::new()),
        }
    }

    /// The backend that runs `session`'s commands: host exec only when the *policy* says the
    /// session is unsandboxed; otherwise the selected backend or `SANDBOX_BACKEND_UNAVAILABLE`.
    pub fn backend_for(&self, session: &Session) -> Result<Arc<dyn Sandbox>, SandboxError> {
        if !session.eff.sandboxed {
            return Ok(Arc::new(HostUnsandboxed));
        }
        let status = self.backend_status(session.eff.backend.value);
        match (status.selected, self.bwrap_probe()) {
            (Some(BackendKind::Bwrap), Ok((b, _))) if status.available => Ok(b.clone()),
            (Some(BackendKind::Docker), _) if status.available => Ok(Arc::new(
                crate::docker::shared(&session.state_dir)?.session(&session.eff, &session.table)?,
            )),
            _ => Err(status.to_error()),
        }
    }

    /// Resolves, plans and prepares the session named by `input`.
    pub fn session(
        &self,
        config: &Config,
        input: &ResolveInput<'_>,
    ) -> Result<Session, SandboxError> {
        let eff = config.resolve(input)?;
        self.prepare(config, eff)
    }

    /// Plans the mounts of `eff` and makes sure their directories exist (and are seeded) — once
    /// per directory per process.
    pub fn prepare(&self, config: &Config, eff: EffectiveSandbox) -> Result<Session, SandboxError> {
        let table = mounts::plan(&eff);
        let session = Session {
            new_file_mode: config.file.tools.fs.new_file_mode.0,
            new_dir_mode: config.file.tools.fs.new_dir_mode.0,
            state_dir: config.state_dir.clone(),
            eff,
            table,
        };
        let key = session
            .table
            .workspace()
            .map(|m| m.host_path.clone())
            .unwrap_or_default();
        let done = self
            .prepared
            .lock()
            .map(|p| p.contains_key(&key))
            .unwrap_or(false);
        check_not_symlink(&session)?;
        if !done {
            self.prepare_dirs(&session)?;
            if let Ok(mut p) = self.prepared.lock() {
                p.insert(key, session.eff.scope_key.clone());
            }
        }
        Ok(session)
    }

    fn prepare_dirs(&self, s: &Session) -> Result<(), SandboxError> {
        let dir_mode = s.new_dir_mode;
        dirs::ensure_dir(&s.eff.agent_workspace.value, dir_mode)?;
        let seeded = s.table.sandboxed
            && matches!(
                s.eff.workspace_access.value,
                WorkspaceAccess::None | WorkspaceAccess::Ro | WorkspaceAccess::Session
            );
        if seeded {
            dirs::ensure_dir(&s.eff.sandbox_dir, dir_mode)?;
            let r = dirs::seed(
                &s.eff.agent_workspace.value,
                &s.eff.sandbox_dir,
                s.new_file_mode,
            )?;
            if !r.copied.is_empty() {
                tracing::info!(
                    "seeded {} into {}: {}",
                    s.eff.scope_key,
                    s.eff.sandbox_dir.display(),
                    r.copied.join(", ")
                );
            }
        }
        for m in s.table.mounts.iter().filter(|m| m.kind == MountKind::Bind) {
            if !m.host_path.exists() {
                return Err(SandboxError::BindSourceMissing {
                    path: m.host_path.clone(),
                });
            }
        }
        Ok(())
    }

    /// Forgets that directories were prepared (the next use re-checks and re-seeds missing
    /// bootstrap files). bwrap sandboxes themselves are fresh for every command.
    pub fn forget(&self, sandbox_dir: Option<&Path>) -> usize {
        let Ok(mut p) = self.prepared.lock() else {
            return 0;
        };
        match sandbox_dir {
            Some(d) => usize::from(p.remove(d).is_some()),
            None => {
                let n = p.len();
                p.clear();
                n
            }
        }
    }

    /// Runs a command for `session` with the config's exec defaults.
    pub async fn exec(
        &self,
        config: &Config,
        session: &Session,
        params: ExecParams,
    ) -> Result<ExecOutput, SandboxError> {
        let backend = self.backend_for(session)?;
        let workdir = self.workdir(session, params.workdir.as_deref())?;
        for (k, v) in &params.env {
            if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
                return Err(SandboxError::BadRequest(format!(
                    "environment variable {k:?} has an invalid name or value"
                )));
            }
        }
        let timeout =
            Duration::from_secs(effective_timeout_seconds(config, params.timeout_seconds));
        let plan = ExecPlan {
            table: session.table.clone(),
            umask: session.eff.umask.value.0,
            network: session.eff.docker.network != "none",
            env: session.eff.docker.env.clone(),
            host_home: std::env::var_os("HOME").map(PathBuf::from),
        };
        let req = ExecRequest {
            command: params.command,
            workdir,
            env: params.env,
            timeout,
            max_output_bytes: usize::try_from(config.file.tools.exec.max_output_bytes)
                .unwrap_or(usize::MAX),
        };
        backend.exec(&plan, req).await
    }

    /// The working directory as a normalised container path, checked to be a directory inside
    /// a mount (through carapace-fs: a symlink planted there is refused, not followed).
    fn workdir(&self, session: &Session, workdir: Option<&str>) -> Result<String, SandboxError> {
        let w = workdir.unwrap_or(mounts::WORKSPACE);
        let r = session.resolve(w, Access::Read)?;
        if !r.rel.as_os_str().is_empty() {
            let root = Root::open(&r.mount.host_path)?;
            root.open_subdir(&r.rel)?;
        }
        Ok(r.container_path)
    }

    /// Sandbox directories under every configured workspace root.
    pub fn list(&self, config: &Config) -> Result<Vec<SandboxDirInfo>, SandboxError> {
        let mut roots = BTreeSet::new();
        let mut agents: Vec<String> = vec!["main".into()];
        agents.extend(config.file.agents.entries.keys().cloned());
        agents.extend(config.file.agents.list.iter().filter_map(|a| a.id.clone()));
        for a in &agents {
            let eff = config.resolve(&ResolveInput {
                agent: Some(a),
                ..ResolveInput::default()
            })?;
            roots.insert(eff.workspace_root.value);
        }
        let known = self.prepared.lock().map(|p| p.clone()).unwrap_or_default();
        let mut out = Vec::new();
        for root in roots {
            let r = match Root::open(&root) {
                Ok(r) => r,
                Err(carapace_fs::FsError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            for e in r.list(Path::new(""))? {
                if !e.meta.is_dir() || !looks_like_slug(&e.name) {
                    continue;
                }
                let path = root.join(&e.name);
                out.push(SandboxDirInfo {
                    scope_key: known.get(&path).cloned(),
                    slug: e.name,
                    modified_unix: e
                        .meta
                        .mtime
                        .duration_since(std::time::UNIX_EPOCH)
                        .ok()
                        .map(|d| d.as_secs()),
                    path,
                });
            }
        }
        Ok(out)
    }
}

/// `<base>-<8 hex>`: the shape of a scope slug (other directories under the workspace root,
/// such as the Docker backend's registry, are not sandboxes).
fn looks_like_slug(name: &str) -> bool {
    match name.rsplit_once('-') {
        Some((base, hash)) => {
            !base.is_empty()
                && hash.len() == 8
                && hash
                    .chars()
                    .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        }
        None => false,
    }
}

/// A sandbox directory must be a real directory, not a symlink: bwrap binds and `Root::open`
/// follow a symlinked source, so a link planted there (say, by an `rw` session when the
/// workspace root was configured inside the agent workspace) would redirect this session's
/// mount. Checked on every use; a missing directory is fine here (`prepare_dirs` creates it).
/// The agent workspace is the operator's path and may be a symlink.
fn check_not_symlink(s: &Session) -> Result<(), SandboxError> {
    let dir = &s.eff.sandbox_dir;
    let mounted = s.table.mounts.iter().any(|m| &m.host_path == dir);
    if mounted && std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(carapace_fs::FsError::SymlinkRefused { path: dir.clone() }.into());
    }
    Ok(())
}
