//! [`SandboxManager`]: the one entry point for "run this for that session". It resolves the
//! policy, plans the mounts, prepares sandbox directories on first use, picks the backend (never
//! the host for a sandboxed session) and runs the command.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use carapace_fs::Root;
use carapace_policy::config::{Backend, WorkspaceAccess};
use carapace_policy::mounts::{self, Access, MountTable};
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
use crate::pin::{PinnedSource, ValidatedSource};
use crate::user::SandboxUser;

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
    /// Each mount's source as validated, in `table.mounts` order (see `crate::pin`).
    pub sources: Vec<ValidatedSource>,
    /// The host user the sandbox runs as.
    pub user: SandboxUser,
    /// pids / memory / CPU limits of the sandbox.
    pub limits: carapace_policy::limits::Limits,
}

impl Session {
    /// Maps an agent path, naming the session's access in read-only refusals. The mount's
    /// source is checked to still be what was validated (`crate::pin`), so a caller that opens
    /// it right after never follows a source swapped for a symlink.
    pub fn resolve(
        &self,
        path: &str,
        access: Access,
    ) -> Result<mounts::Resolved<'_>, SandboxError> {
        let r = self
            .table
            .resolve_for(path, access, self.eff.workspace_access.value)?;
        self.source_of(r.mount)
            .map(PinnedSource::verify)
            .transpose()?;
        Ok(r)
    }

    /// A mount's host directory as a carapace-fs root, built on the fd that passed the pin
    /// check: no symlink in its path, the directory validated at load.
    pub fn open_mount(&self, mount: &mounts::Mount) -> Result<Root, SandboxError> {
        match self.source_of(mount) {
            Some(src) => PinnedSource::verify(src)?.into_root(),
            None => Err(SandboxError::BadRequest(format!(
                "{} is not a mount of this session",
                mount.container_path
            ))),
        }
    }

    fn source_of(&self, mount: &mounts::Mount) -> Option<&ValidatedSource> {
        let i = self.table.mounts.iter().position(|m| m == mount)?;
        self.sources.get(i)
    }

    /// What a backend needs to run a command for this session.
    pub fn exec_plan(&self) -> ExecPlan {
        ExecPlan {
            table: self.table.clone(),
            umask: self.eff.umask.value.0,
            network: self.eff.docker.network != "none",
            env: self.eff.docker.env.clone(),
            host_home: std::env::var_os("HOME").map(PathBuf::from),
            sources: self.sources.clone(),
            user: Some(self.user.clone()),
            limits: self.limits,
        }
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
    /// Mount sources validated by this process (configured host path → record).
    pins: Mutex<BTreeMap<PathBuf, ValidatedSource>>,
    /// Configurations whose mount sources passed `crate::validate` (hash of the config).
    validated: Mutex<BTreeSet<String>>,
    /// The Docker backend of each state directory this manager ran a session for (one
    /// registry, one engine client, one memory of warm containers each). Owned here, so it
    /// lives exactly as long as the runtime that built the manager.
    docker: Mutex<BTreeMap<PathBuf, Arc<crate::docker::DockerBackend>>>,
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
            pins: Mutex::new(BTreeMap::new()),
            validated: Mutex::new(BTreeSet::new()),
            docker: Mutex::new(BTreeMap::new()),
        }
    }

    /// The environment backends look at (injected or the process's).
    pub fn env(&self) -> &BackendEnv {
        &self.env
    }

    /// The Docker backend for `state_dir`, created on first use with this manager's
    /// environment (`DOCKER_HOST`) and kept until [`SandboxManager::shutdown`].
    pub fn docker(
        &self,
        state_dir: &Path,
    ) -> Result<Arc<crate::docker::DockerBackend>, crate::docker::DockerError> {
        let mut map = self
            .docker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(b) = map.get(state_dir) {
            return Ok(b.clone());
        }
        let mut opts = crate::docker::DockerOptions::new(state_dir);
        opts.docker_host = self.env.docker_host();
        let b = Arc::new(crate::docker::DockerBackend::new(opts)?);
        map.insert(state_dir.to_path_buf(), b.clone());
        Ok(b)
    }

    /// Lets go of every backend this manager holds (engine clients, warm-container memory):
    /// the runtime that owns the manager calls it when it stops. Commands still running keep
    /// their own handle and finish; the next session starts afresh.
    pub fn shutdown(&self) {
        self.docker
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
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
            (Some(BackendKind::Docker), _) if status.available => {
                Ok(Arc::new(self.docker(&session.state_dir)?.session(session)?))
            }
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
    /// per directory per process. The configuration's mount sources are validated on this host
    /// once (`crate::validate`, as at load), and every mount source is pinned: recorded the
    /// first time, checked against the record every time after (`crate::pin`).
    pub fn prepare(&self, config: &Config, eff: EffectiveSandbox) -> Result<Session, SandboxError> {
        self.validate_once(config)?;
        let table = mounts::plan(&eff);
        let limits = carapace_policy::limits::Limits::of(&eff.docker);
        let mut session = Session {
            new_file_mode: config.file.tools.fs.new_file_mode.0,
            new_dir_mode: config.file.tools.fs.new_dir_mode.0,
            state_dir: config.state_dir.clone(),
            eff,
            table,
            sources: Vec::new(),
            user: SandboxUser {
                uid: 0,
                gid: 0,
                why: String::new(),
                switch: false,
            },
            limits,
        };
        session.user = decide_user(&session)?;
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
        if !done {
            self.prepare_dirs(&session)?;
            if let Ok(mut p) = self.prepared.lock() {
                p.insert(key, session.eff.scope_key.clone());
            }
        }
        session.sources = self.pin_all(&session)?;
        Ok(session)
    }

    /// `crate::validate::check_config` once per configuration per process.
    fn validate_once(&self, config: &Config) -> Result<(), SandboxError> {
        use sha2::Digest;
        let text = serde_json::to_vec(&config.file).unwrap_or_default();
        let mut h = sha2::Sha256::new();
        h.update(&text);
        h.update(config.state_dir.as_os_str().as_encoded_bytes());
        let key = hex::encode(h.finalize());
        if self.validated.lock().is_ok_and(|v| v.contains(&key)) {
            return Ok(());
        }
        crate::validate::check_config(config, "the configuration")?;
        if let Ok(mut v) = self.validated.lock() {
            v.insert(key);
        }
        Ok(())
    }

    /// Each mount's source: the record of this process, verified now; or, the first time,
    /// recorded. A scope's sandbox directory is carapace's own and may never be a symlink.
    fn pin_all(&self, s: &Session) -> Result<Vec<ValidatedSource>, SandboxError> {
        let mut out = Vec::with_capacity(s.table.mounts.len());
        for m in &s.table.mounts {
            let known = self
                .pins
                .lock()
                .ok()
                .and_then(|p| p.get(&m.host_path).cloned());
            let rec = match known {
                Some(rec) => PinnedSource::verify(&rec)?.source,
                None => {
                    let own = m.host_path == s.eff.sandbox_dir;
                    let rec = PinnedSource::record(&m.host_path, own)?.source;
                    if let Ok(mut p) = self.pins.lock() {
                        p.insert(m.host_path.clone(), rec.clone());
                    }
                    rec
                }
            };
            out.push(rec);
        }
        Ok(out)
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
            // A writable sandbox directory belongs to the sandbox's user (carapace as root;
            // otherwise both are carapace's uid already).
            let writable = s
                .table
                .workspace()
                .is_some_and(|m| m.writable && m.host_path == s.eff.sandbox_dir);
            if writable && s.user.switch {
                dirs::set_owner(&s.eff.sandbox_dir, s.user.uid, s.user.gid)?;
            }
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
        Ok(())
    }

    /// Forgets that directories were prepared (the next use re-checks and re-seeds missing
    /// bootstrap files). bwrap sandboxes themselves are fresh for every command.
    pub fn forget(&self, sandbox_dir: Option<&Path>) -> usize {
        let Ok(mut p) = self.prepared.lock() else {
            return 0;
        };
        match sandbox_dir {
            Some(d) => {
                if let Ok(mut pins) = self.pins.lock() {
                    pins.remove(d);
                }
                usize::from(p.remove(d).is_some())
            }
            None => {
                let n = p.len();
                p.clear();
                if let Ok(mut pins) = self.pins.lock() {
                    pins.clear();
                }
                if let Ok(mut v) = self.validated.lock() {
                    v.clear();
                }
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
        let plan = session.exec_plan();
        let req = ExecRequest {
            command: params.command,
            workdir,
            env: params.env,
            timeout,
            max_output_bytes: usize::try_from(config.file.tools.exec.max_output_bytes)
                .unwrap_or(usize::MAX),
        };
        let out = backend.exec(&plan, req).await;
        if session.eff.sandboxed {
            strip_writable_mounts(session).await;
        }
        out
    }

    /// The working directory as a normalised container path, checked to be a directory inside
    /// a mount (through carapace-fs: a symlink planted there is refused, not followed).
    fn workdir(&self, session: &Session, workdir: Option<&str>) -> Result<String, SandboxError> {
        let w = workdir.unwrap_or(mounts::WORKSPACE);
        let r = session.resolve(w, Access::Read)?;
        if !r.rel.as_os_str().is_empty() {
            session.open_mount(r.mount)?.open_subdir(&r.rel)?;
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

/// The sandbox user of a session (see `crate::user`): decided from `docker.user`, the owner
/// of the `/workspace` directory and whether carapace runs as root.
fn decide_user(s: &Session) -> Result<SandboxUser, SandboxError> {
    use std::os::unix::fs::MetadataExt;
    let me = crate::user::process_ids();
    if me.0 != 0 || !s.eff.sandboxed {
        return crate::user::decide(None, None, me, "");
    }
    // A carapace-created sandbox directory is (re)owned by the sandbox user below; its current
    // owner does not decide. The agent workspace (`rw`) is the operator's: its owner does.
    let ws = s.table.workspace();
    let owner = ws
        .filter(|m| m.host_path != s.eff.sandbox_dir)
        .and_then(|m| std::fs::metadata(&m.host_path).ok())
        .map(|m| (m.uid(), m.gid()));
    let passwd = crate::user::read_passwd();
    match crate::user::decide(s.eff.docker.user.as_deref(), owner, me, &passwd) {
        // A `docker.user` name only the image knows (OpenClaw configs use them): Docker passes
        // it to the engine; the host side (bwrap, directory owners) uses the default user.
        Err(_) if s.eff.docker.user.is_some() => {
            let mut u = crate::user::decide(None, owner, me, &passwd)?;
            u.why = format!(
                "{} (docker.user {:?} is not a user of this host; the Docker backend passes it to the engine)",
                u.why,
                s.eff.docker.user.as_deref().unwrap_or_default()
            );
            Ok(u)
        }
        r => r,
    }
}

/// After every sandboxed command: clear set-uid/set-gid bits on the writable mounts (the
/// second layer; `crate::strip`).
async fn strip_writable_mounts(session: &Session) {
    let roots: Vec<(String, Root)> = session
        .table
        .mounts
        .iter()
        .filter(|m| m.writable)
        .filter_map(|m| Some((m.container_path.clone(), session.open_mount(m).ok()?)))
        .collect();
    let _ = tokio::task::spawn_blocking(move || {
        for (at, root) in roots {
            let r = crate::strip::strip_setid(&root);
            for p in r.cleared.iter().chain(r.removed.iter()) {
                tracing::warn!(
                    "cleared set-uid/set-gid bits of {at}/{p} left by a sandboxed command"
                );
            }
            if r.truncated {
                tracing::warn!(
                    "{at} has more than {} entries; set-uid bits were checked on the first {} only",
                    crate::strip::MAX_ENTRIES,
                    crate::strip::MAX_ENTRIES
                );
            }
        }
    })
    .await;
}
