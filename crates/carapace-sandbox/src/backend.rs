//! The backend interface and backend selection.
//!
//! A backend runs one command for one session, given the session's [`ExecPlan`] (mount table,
//! umask, network, env). `auto` picks bwrap when it is installed and works, else Docker when an
//! engine socket exists, else `SANDBOX_BACKEND_UNAVAILABLE`: a sandboxed session is **never**
//! run on the host because a backend is missing. To add a backend (Docker), implement
//! [`Sandbox`] in its own module and add one arm to [`SandboxManager::backend_for`].
//!
//! [`SandboxManager::backend_for`]: crate::SandboxManager::backend_for

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use carapace_policy::config::Backend;
use carapace_policy::mounts::MountTable;
use serde::Serialize;

use crate::error::SandboxError;

/// A boxed, sendable future (keeps the trait object-safe without extra dependencies).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which runtime actually runs a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BackendKind {
    /// bubblewrap: fresh namespaces per command.
    Bwrap,
    /// A Docker engine (see `crate::docker`).
    Docker,
    /// **Not a sandbox**: the host, as carapace's own user (mode `off` / main under `non-main`).
    HostUnsandboxed,
}

impl BackendKind {
    /// `bwrap`, `docker`, `host (unsandboxed)`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Bwrap => "bwrap",
            BackendKind::Docker => "docker",
            BackendKind::HostUnsandboxed => "host (unsandboxed)",
        }
    }
}

/// Everything a backend needs to run a command for one session.
#[derive(Debug, Clone)]
pub struct ExecPlan {
    /// The session's mounts (the same table the file tools use).
    pub table: MountTable,
    /// umask of every process in the sandbox.
    pub umask: u32,
    /// Whether the sandbox shares the host network (`docker.network` other than `none`).
    pub network: bool,
    /// Environment from the config (`docker.env`), merged under the request's.
    pub env: BTreeMap<String, String>,
    /// Host `$HOME`, for host exec only.
    pub host_home: Option<PathBuf>,
    /// Each mount's source as validated (same order as `table.mounts`): what
    /// `crate::pin` checks right before the source is mounted.
    pub sources: Vec<crate::pin::ValidatedSource>,
    /// The unprivileged user the sandbox runs as (`None`: carapace's own, unswitched).
    pub user: Option<crate::user::SandboxUser>,
    /// pids / memory / CPU limits.
    pub limits: carapace_policy::limits::Limits,
}

/// One command to run.
#[derive(Debug, Clone)]
pub struct ExecRequest {
    /// Shell text, run by `sh -lc`.
    pub command: String,
    /// Normalised container path of the working directory (default `/workspace`).
    pub workdir: String,
    /// Extra environment (wins over the config's).
    pub env: BTreeMap<String, String>,
    /// Kill the whole tree after this long.
    pub timeout: Duration,
    /// Keep at most this many bytes of stdout and of stderr.
    pub max_output_bytes: usize,
}

/// What a command did. A non-zero exit or a timeout is a result, not an error.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecOutput {
    /// Exit status; `128 + signal` when killed by a signal (137 after a timeout).
    pub exit_code: i32,
    /// The signal that ended it, if any.
    pub signal: Option<i32>,
    /// Standard output (lossy UTF-8), at most the cap.
    pub stdout: String,
    /// Standard error (lossy UTF-8), at most the cap.
    pub stderr: String,
    /// Killed at its timeout (with its whole process tree).
    pub timed_out: bool,
    /// Output was cut at the cap.
    pub truncated: bool,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Which backend ran it.
    pub backend: BackendKind,
    /// False for host exec.
    pub sandboxed: bool,
}

/// A sandbox backend.
pub trait Sandbox: Send + Sync {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;
    /// Runs one command for the session described by `plan`.
    fn exec<'a>(
        &'a self,
        plan: &'a ExecPlan,
        req: ExecRequest,
    ) -> BoxFuture<'a, Result<ExecOutput, SandboxError>>;
}

/// What backend selection looks at (injectable for tests).
#[derive(Debug, Clone)]
pub struct BackendEnv {
    /// `$PATH` to look for `bwrap` in.
    pub path: Option<OsString>,
    /// `$DOCKER_HOST`, if set.
    pub docker_host: Option<OsString>,
    /// The Docker socket to check.
    pub docker_socket: PathBuf,
    /// Where temporary directories go (`$TMPDIR`, else `/tmp`): the browser's profile and
    /// Chromium's own temp files live beneath it.
    pub temp_dir: PathBuf,
}

impl BackendEnv {
    /// From the process environment.
    pub fn from_process() -> BackendEnv {
        BackendEnv {
            path: std::env::var_os("PATH"),
            docker_host: std::env::var_os("DOCKER_HOST").filter(|v| !v.is_empty()),
            docker_socket: PathBuf::from("/var/run/docker.sock"),
            temp_dir: std::env::temp_dir(),
        }
    }

    /// The engine address to use: `$DOCKER_HOST` as injected (`None`: the default socket).
    pub fn docker_host(&self) -> Option<String> {
        self.docker_host
            .as_ref()
            .map(|h| h.to_string_lossy().into_owned())
    }

    /// The first `name` on `$PATH` that is a file.
    pub fn find_program(&self, name: &str) -> Option<PathBuf> {
        let path = self.path.as_ref()?;
        std::env::split_paths(path)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    }

    /// True when a Docker engine looks reachable.
    pub fn docker_present(&self) -> bool {
        self.docker_host.is_some() || self.docker_socket.exists()
    }
}

/// The outcome of selection: which backend, or why none.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendStatus {
    /// As configured.
    pub configured: Backend,
    /// What `auto` (or the explicit value) resolves to, when something does.
    pub selected: Option<BackendKind>,
    /// Whether a command can run.
    pub available: bool,
    /// The bwrap binary, when found.
    pub bwrap_path: Option<PathBuf>,
    /// One line: version or why unavailable.
    pub detail: String,
    /// How to fix, when unavailable.
    pub hint: Option<String>,
}

/// How to get a Docker engine.
pub const DOCKER_HINT: &str = "install and start a Docker engine (Debian/Ubuntu: apt-get install docker.io, then start dockerd) or set DOCKER_HOST; or use backend \"bwrap\" with bubblewrap installed";
/// How to install bubblewrap.
pub const BWRAP_HINT: &str = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap; Arch: pacman -S bubblewrap), or set agents.defaults.sandbox.mode to \"off\" to run exec on the host knowingly";

impl BackendStatus {
    /// The error for an unavailable backend.
    pub fn to_error(&self) -> SandboxError {
        SandboxError::BackendUnavailable {
            backend: self.configured.as_str().to_string(),
            reason: self.detail.clone(),
            hint: self.hint.clone().unwrap_or_else(|| BWRAP_HINT.to_string()),
        }
    }
}
