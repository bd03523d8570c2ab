//! The **Docker** backend (docs/sandbox.md): one long-lived container per scope key on a real Docker
//! engine, reached through its HTTP API (bollard; unix socket or `$DOCKER_HOST`), running the
//! same mount plan as bwrap.
//!
//! - [`spec`]: what a scope's container must be (name `<containerPrefix><slug>`, OpenClaw-style
//!   labels, config hash, hardened create request). Pure.
//! - [`lifecycle`](DockerBackend::ensure): reuse a running container, start a stopped one,
//!   create a missing one (typed error when the image is absent: nothing is pulled), recreate
//!   one whose config hash changed unless it was used in the last five minutes (then
//!   `list`/`explain` say "recreate to apply" with the command); [`DockerBackend::list`],
//!   [`DockerBackend::recreate`], [`DockerBackend::prune`].
//! - [`registry`]: last use per container, one JSON file each under
//!   `<state>/sandboxes/registry/`, because labels are immutable and the engine records no
//!   exec times.
//! - `exec`: create + start an exec through the API with the clean environment, umask and
//!   working directory of bwrap; a timeout (or the command's end) kills every process carrying
//!   the exec's marker, see `exec.rs` and docs/sandbox-docker.md.
//!
//! Invariants: a sandboxed session never falls back to the host; an unreachable engine is
//! `SANDBOX_BACKEND_UNAVAILABLE`; mount sources must exist (never created by the engine) and
//! the managed ones must not be symlinks; `no-new-privileges` is always set.

mod error;
mod exec;
mod lifecycle;
pub mod registry;
pub mod spec;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bollard::Docker;
use carapace_policy::EffectiveSandbox;
use carapace_policy::mounts::{MountKind, MountTable};

pub use error::{DAEMON_HINT, DockerError};
pub use exec::DockerSession;
pub use lifecycle::{
    ContainerInfo, EnsureAction, Ensured, HOT_WINDOW_MS, PruneReport, RecreateReport, Selector,
};
pub use registry::{Registry, RegistryEntry};
pub use spec::ContainerPlan;

/// Milliseconds since the Unix epoch; injectable so lifecycle tests never sleep.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    })
}

/// How to build a [`DockerBackend`].
#[derive(Clone)]
pub struct DockerOptions {
    /// carapace's state directory (the registry lives in `<state>/sandboxes/registry`).
    pub state_dir: PathBuf,
    /// The clock used for created / last-used times and the hot window.
    pub clock: Clock,
    /// Engine address (`unix:///path` or `tcp://host:port`); `None`: `$DOCKER_HOST`, else
    /// `/var/run/docker.sock`.
    pub docker_host: Option<String>,
}

impl DockerOptions {
    /// Options with the system clock.
    pub fn new(state_dir: impl Into<PathBuf>) -> DockerOptions {
        DockerOptions {
            state_dir: state_dir.into(),
            clock: system_clock(),
            docker_host: None,
        }
    }
}

impl std::fmt::Debug for DockerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerOptions")
            .field("state_dir", &self.state_dir)
            .field("docker_host", &self.docker_host)
            .finish_non_exhaustive()
    }
}

/// What this process knows about a container it used (saves an inspect per exec).
#[derive(Debug, Clone)]
struct Warm {
    id: String,
    /// Hash of the plan that last asked for it.
    plan_hash: String,
    /// Hash the container was created with.
    container_hash: String,
    /// Access hash the container was created with.
    container_access: String,
    entry: RegistryEntry,
    /// When the registry file was last written by this process.
    touched_ms: i64,
}

/// The Docker backend of one process. Connects lazily (the first call negotiates the API
/// version, so a 20.10 engine speaking API 1.41 works) and is cheap to share in an `Arc`.
pub struct DockerBackend {
    docker: tokio::sync::OnceCell<Docker>,
    registry: Registry,
    clock: Clock,
    docker_host: Option<String>,
    instance: String,
    warm: Mutex<HashMap<String, Warm>>,
    /// Serialises the slow path (inspect / create / start / remove) within this process.
    slow: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for DockerBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DockerBackend")
            .field("registry", &self.registry.path())
            .finish_non_exhaustive()
    }
}

impl DockerBackend {
    /// A backend with its registry opened (created when missing). No engine call yet.
    pub fn new(opts: DockerOptions) -> Result<DockerBackend, DockerError> {
        let registry = Registry::open(&opts.state_dir)?;
        Ok(DockerBackend {
            docker: tokio::sync::OnceCell::new(),
            instance: spec::instance_id(&opts.state_dir),
            registry,
            clock: opts.clock,
            docker_host: opts.docker_host,
            warm: Mutex::new(HashMap::new()),
            slow: tokio::sync::Mutex::new(()),
        })
    }

    /// The engine client, connected and version-negotiated on first use.
    pub async fn client(&self) -> Result<&Docker, DockerError> {
        self.docker
            .get_or_try_init(|| async {
                let host = self.host();
                let unavailable = |e: DockerError| match e {
                    DockerError::Engine { message, .. }
                    | DockerError::Unavailable {
                        reason: message, ..
                    } => DockerError::Unavailable {
                        host: host.clone(),
                        reason: message,
                    },
                    other => other,
                };
                let d = match &self.docker_host {
                    None => Docker::connect_with_defaults(),
                    Some(h) if h.starts_with("unix://") || h.starts_with('/') => {
                        Docker::connect_with_unix(h, 120, bollard::API_DEFAULT_VERSION)
                    }
                    Some(h) => Docker::connect_with_http(h, 120, bollard::API_DEFAULT_VERSION),
                }
                .map_err(|e| unavailable(DockerError::from_bollard("connect", e)))?;
                // Negotiating is what makes a 20.10 engine (API 1.41) answer at all: without
                // it every request fails with "client version too new".
                d.negotiate_version()
                    .await
                    .map_err(|e| unavailable(DockerError::from_bollard("version", e)))
            })
            .await
    }

    /// The engine address this backend talks to.
    pub fn host(&self) -> String {
        self.docker_host.clone().unwrap_or_else(error::docker_host)
    }

    /// Checks that the engine answers (`/_ping` after version negotiation).
    pub async fn ping(&self) -> Result<String, DockerError> {
        let d = self.client().await?;
        let v = d
            .version()
            .await
            .map_err(|e| DockerError::from_bollard("version", e))?;
        Ok(format!(
            "Docker engine {} (API {})",
            v.version.unwrap_or_default(),
            v.api_version.unwrap_or_default()
        ))
    }

    /// This installation's `carapace.instance` label value.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The last-use registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Now, by the backend's clock.
    pub fn now_ms(&self) -> i64 {
        (self.clock)()
    }

    /// Plans the container of a session from its policy alone (for `explain` and `list`):
    /// mount sources by their canonical paths, the container user as [`DockerBackend::session`]
    /// decides it. The container user is `sandbox.docker.user` when set; otherwise the owner of
    /// the `/workspace` host directory, except that a container never runs as root by default
    /// when carapace does (then the sandbox user of `crate::user`: the directories carapace
    /// creates belong to it).
    pub fn plan(
        &self,
        eff: &EffectiveSandbox,
        table: &MountTable,
    ) -> Result<ContainerPlan, DockerError> {
        let paths = table
            .mounts
            .iter()
            .map(|m| crate::validate::canonical_lossy(&m.host_path))
            .collect();
        Ok(ContainerPlan::new(eff, table, container_owner(table)?)?.with_host_paths(paths))
    }

    /// A [`crate::Sandbox`] bound to one prepared session's container: its validated mount
    /// sources are what the engine is given, checked again before every create and start.
    pub fn session(self: &Arc<Self>, s: &crate::Session) -> Result<DockerSession, DockerError> {
        let paths = s
            .sources
            .iter()
            .map(|v| v.canonical.display().to_string())
            .collect();
        let mut plan = ContainerPlan::new(&s.eff, &s.table, container_owner(&s.table)?)?
            .with_host_paths(paths);
        plan.sources = s.sources.clone();
        Ok(DockerSession::new(self.clone(), plan))
    }

    fn warm_get(&self, name: &str) -> Option<Warm> {
        self.warm.lock().ok().and_then(|w| w.get(name).cloned())
    }

    fn warm_put(&self, name: &str, w: Warm) {
        if let Ok(mut m) = self.warm.lock() {
            m.insert(name.to_string(), w);
        }
    }

    fn warm_forget(&self, name: &str) {
        if let Ok(mut m) = self.warm.lock() {
            m.remove(name);
        }
    }
}

/// The default container `uid:gid` (when `sandbox.docker.user` is unset): the owner of the
/// `/workspace` host directory, never root when carapace runs as root.
fn container_owner(table: &MountTable) -> Result<(u32, u32), DockerError> {
    use std::os::unix::fs::MetadataExt;
    let owner = table
        .mounts
        .iter()
        .find(|m| m.kind == MountKind::Workspace)
        .and_then(|m| std::fs::metadata(&m.host_path).ok())
        .map(|m| (m.uid(), m.gid()));
    let me = crate::user::process_ids();
    if me.0 != 0 {
        return Ok(owner.unwrap_or(me));
    }
    let u = crate::user::decide(None, owner, me, &crate::user::read_passwd())
        .map_err(|e| DockerError::Sandbox(Box::new(e)))?;
    Ok((u.uid, u.gid))
}

/// `DockerBackend::list` as a function, for the CLI.
pub async fn list(
    backend: &DockerBackend,
    config: Option<&carapace_policy::Config>,
) -> Result<Vec<ContainerInfo>, DockerError> {
    backend.list(config).await
}

/// `DockerBackend::recreate` as a function, for the CLI.
pub async fn recreate(
    backend: &DockerBackend,
    selector: &Selector,
    force: bool,
) -> Result<RecreateReport, DockerError> {
    backend.recreate(selector, force).await
}

/// `DockerBackend::prune` as a function, for the CLI.
pub async fn prune(
    backend: &DockerBackend,
    config: &carapace_policy::Config,
) -> Result<PruneReport, DockerError> {
    backend.prune(config).await
}
