//! [`SandboxError`]: every failure of the sandbox runtime, with its docs/errors.md code.

use std::path::PathBuf;

use carapace_fs::FsError;
use carapace_policy::mounts::MountError;
use carapace_policy::{CarapaceError, ErrorCode};
use serde_json::{Map, Value};

/// A typed sandbox error.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The backend the policy asks for cannot run here. Never answered by running on the host.
    #[error("sandbox backend {backend} is unavailable: {reason}")]
    BackendUnavailable {
        /// `bwrap`, `docker` or `auto`.
        backend: String,
        /// What is missing.
        reason: String,
        /// How to get it.
        hint: String,
    },
    /// A path refused by the mount table.
    #[error(transparent)]
    Mount(#[from] MountError),
    /// A refusal or failure of the safe filesystem layer.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The policy could not be resolved (unknown channel).
    #[error(transparent)]
    Resolve(#[from] carapace_policy::resolve::ResolveError),
    /// Malformed request (env names, workdir that is not a directory...).
    #[error("{0}")]
    BadRequest(String),
    /// A configured bind whose host path does not exist.
    #[error("bind source {path} does not exist")]
    BindSourceMissing {
        /// The host path.
        path: PathBuf,
    },
    /// A mount source is no longer what was validated (a symlink in its path, another
    /// directory): nothing is mounted or opened through it.
    #[error("sandbox mount source {path} changed: {reason}")]
    MountSourceChanged {
        /// The host path as configured.
        path: PathBuf,
        /// The canonical path recorded at validation.
        canonical: PathBuf,
        /// What changed.
        reason: String,
    },
    /// The configuration cannot be carried out on this host (a bind source that does not
    /// exist, is a link to `/etc`, lies inside a directory sandboxes write...).
    #[error(transparent)]
    Config(#[from] carapace_policy::ConfigError),
    /// A limit or identity the sandbox needs cannot be applied here.
    #[error("{what}: {reason}")]
    Unenforceable {
        /// What could not be applied.
        what: String,
        /// Why.
        reason: String,
        /// How to fix.
        hint: String,
    },
    /// Spawning or waiting for a process failed (a bug or an environment problem).
    #[error("{op} {program} failed: {source}")]
    Process {
        /// What was attempted.
        op: &'static str,
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl CarapaceError for SandboxError {
    fn code(&self) -> ErrorCode {
        match self {
            SandboxError::BackendUnavailable { .. } => ErrorCode::SandboxBackendUnavailable,
            SandboxError::Mount(e) => e.code(),
            SandboxError::Fs(e) => e.code(),
            SandboxError::Resolve(e) => e.code(),
            SandboxError::BadRequest(_) => ErrorCode::BadRequest,
            SandboxError::BindSourceMissing { .. } => ErrorCode::ConfigInvalid,
            SandboxError::MountSourceChanged { .. } => ErrorCode::SandboxMountChanged,
            SandboxError::Config(e) => e.code(),
            SandboxError::Unenforceable { .. } => ErrorCode::SandboxBackendUnavailable,
            // A process that cannot be started is the environment's doing (its directory or
            // program vanished, a limit): SPAWN_FAILED, never INTERNAL.
            SandboxError::Process { op: "spawn", .. } => ErrorCode::SpawnFailed,
            SandboxError::Process { source, .. } => {
                carapace_fs::environment_code(source).unwrap_or(ErrorCode::Internal)
            }
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            SandboxError::BackendUnavailable { hint, .. } => Some(hint.clone()),
            SandboxError::Mount(e) => e.hint(),
            SandboxError::Fs(e) => e.hint(),
            SandboxError::Resolve(e) => e.hint(),
            SandboxError::BindSourceMissing { .. } => Some(
                "create the directory or remove the bind from agents.*.sandbox.docker.binds".into(),
            ),
            SandboxError::MountSourceChanged { .. } => Some(
                "something replaced the directory (or a parent of it) after carapace validated it; restore it, then run `carapace sandbox recreate` or reload the gateway so it is validated again".into(),
            ),
            SandboxError::Config(e) => e.hint(),
            SandboxError::Unenforceable { hint, .. } => Some(hint.clone()),
            _ => None,
        }
    }
    fn details(&self) -> Map<String, Value> {
        match self {
            SandboxError::Mount(e) => e.details(),
            SandboxError::Fs(e) => e.details(),
            SandboxError::BackendUnavailable {
                backend, reason, ..
            } => {
                let mut m = Map::new();
                m.insert("backend".into(), backend.clone().into());
                m.insert("reason".into(), reason.clone().into());
                m
            }
            SandboxError::BindSourceMissing { path } => {
                let mut m = Map::new();
                m.insert("path".into(), path.display().to_string().into());
                m
            }
            SandboxError::MountSourceChanged {
                path,
                canonical,
                reason,
            } => {
                let mut m = Map::new();
                m.insert("path".into(), path.display().to_string().into());
                m.insert(
                    "canonicalPath".into(),
                    canonical.display().to_string().into(),
                );
                m.insert("reason".into(), reason.clone().into());
                m
            }
            SandboxError::Config(e) => e.details(),
            SandboxError::Unenforceable { what, .. } => {
                let mut m = Map::new();
                m.insert("limit".into(), what.clone().into());
                m
            }
            SandboxError::Process {
                op,
                program,
                source,
            } => {
                let mut m = Map::new();
                m.insert("program".into(), program.clone().into());
                m.insert("op".into(), (*op).into());
                m.insert("osError".into(), source.to_string().into());
                if let Some(name) = carapace_fs::errno_name(source) {
                    m.insert("errno".into(), name.into());
                }
                m
            }
            SandboxError::BadRequest(_) | SandboxError::Resolve(_) => Map::new(),
        }
    }
}
