//! [`DockerError`]: every failure of the Docker backend, with its docs/errors.md code. It converts
//! into [`SandboxError`] for the [`crate::Sandbox`] interface; the library functions
//! (`list`, `recreate`, `prune`) return it directly so callers can match on it.

use carapace_policy::{CarapaceError, ErrorCode};
use serde_json::{Map, Value};

use crate::error::SandboxError;

/// How to get an engine running.
pub const DAEMON_HINT: &str = "start the Docker engine (`systemctl start docker`, or `dockerd &` as root; scripts/docker.sh does both install and start), point DOCKER_HOST at a running one, or set agents.defaults.sandbox.backend to \"bwrap\"";

/// A typed Docker-backend error.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The engine cannot be reached (no socket, connection refused, version negotiation failed).
    #[error("the Docker engine at {host} is unreachable: {reason}")]
    Unavailable {
        /// `unix:///var/run/docker.sock` or `$DOCKER_HOST`.
        host: String,
        /// What went wrong.
        reason: String,
    },
    /// The configured image is not present in the engine (nothing is pulled).
    #[error("sandbox image {image} is not present in the Docker engine")]
    ImageMissing {
        /// The image reference from `sandbox.docker.image`.
        image: String,
    },
    /// A `sandbox.docker.*` value the engine cannot take (memory "12x", a bad prefix...).
    #[error("sandbox.docker.{key} = {value:?} is not usable: {reason}")]
    InvalidSetting {
        /// Key below `sandbox.docker`.
        key: &'static str,
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
    /// The session is not sandboxed (mode `off`, or the main session under `non-main`): there
    /// is no container to run in, and the Docker backend never runs anything on the host.
    #[error("session {session_key} is not sandboxed; the Docker backend has nothing to run it in")]
    NotSandboxed {
        /// The session key.
        session_key: String,
    },
    /// A container with this scope's name exists but belongs to another carapace installation
    /// (another state directory) or to nothing carapace made. It is never reused or removed:
    /// its mounts are another installation's.
    #[error(
        "container {name} belongs to another installation (instance {owner:?}, this one is {instance})"
    )]
    NameTaken {
        /// The container name.
        name: String,
        /// The owner's `carapace.instance` label ("" when it has none).
        owner: String,
        /// This installation's instance id.
        instance: String,
    },
    /// The host side of a mount could not be inspected (workspace owner, bind source).
    #[error("cannot inspect {path}: {source}")]
    HostPath {
        /// Host path.
        path: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// The engine refused or failed an operation.
    #[error("docker {op} failed: {message}")]
    Engine {
        /// What was attempted (`create container carapace-sbx-…`).
        op: String,
        /// HTTP status from the engine, when it answered.
        status: Option<u16>,
        /// The engine's message.
        message: String,
    },
    /// A refusal of the safe filesystem layer (registry files, a mount source that is a
    /// symlink).
    #[error(transparent)]
    Fs(#[from] carapace_fs::FsError),
    /// A mount source failed the check right before a create or start (a symlink in its path,
    /// another directory than validated), or the sandbox user cannot be decided.
    #[error(transparent)]
    Sandbox(Box<SandboxError>),
}

impl DockerError {
    /// Maps a bollard error of operation `op`: connection-level failures become
    /// [`DockerError::Unavailable`], answers from the engine [`DockerError::Engine`].
    pub(crate) fn from_bollard(op: impl Into<String>, e: bollard::errors::Error) -> DockerError {
        use bollard::errors::Error as B;
        match e {
            B::DockerResponseServerError {
                status_code,
                message,
            } => DockerError::Engine {
                op: op.into(),
                status: Some(status_code),
                message,
            },
            B::SocketNotFoundError(path) => DockerError::Unavailable {
                host: path,
                reason: "the socket does not exist".into(),
            },
            e @ (B::HyperResponseError { .. }
            | B::IOError { .. }
            | B::RequestTimeoutError
            | B::HyperLegacyError { .. }
            | B::UnsupportedURISchemeError { .. }) => DockerError::Unavailable {
                host: docker_host(),
                reason: e.to_string(),
            },
            e => DockerError::Engine {
                op: op.into(),
                status: None,
                message: e.to_string(),
            },
        }
    }

    /// The engine's HTTP status, when this is an engine answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            DockerError::Engine { status, .. } => *status,
            _ => None,
        }
    }
}

/// `$DOCKER_HOST`, or the default socket.
pub(crate) fn docker_host() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".into())
}

impl CarapaceError for DockerError {
    fn code(&self) -> ErrorCode {
        match self {
            DockerError::Unavailable { .. }
            | DockerError::ImageMissing { .. }
            | DockerError::Engine { .. } => ErrorCode::SandboxBackendUnavailable,
            DockerError::NameTaken { .. } => ErrorCode::SandboxBackendUnavailable,
            DockerError::InvalidSetting { .. } => ErrorCode::ConfigInvalid,
            DockerError::NotSandboxed { .. } => ErrorCode::BadRequest,
            DockerError::HostPath { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => ErrorCode::NotFound,
                _ => ErrorCode::PermissionDenied,
            },
            DockerError::Fs(e) => e.code(),
            DockerError::Sandbox(e) => e.code(),
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            DockerError::Unavailable { .. } => DAEMON_HINT.into(),
            DockerError::ImageMissing { image } => format!(
                "build it (`docker build -t {image} <dir with a Dockerfile>`) or import a root filesystem (`docker import rootfs.tar {image}`; scripts/docker.sh shows a busybox one), or set agents.defaults.sandbox.docker.image to an image `docker images` lists; carapace never pulls from a registry"
            ),
            DockerError::InvalidSetting { key, .. } => {
                format!("fix agents.*.sandbox.docker.{key} in the config")
            }
            DockerError::NameTaken { name, .. } => format!(
                "give this installation its own agents.defaults.sandbox.docker.containerPrefix, or, if {name} is a leftover nobody uses, remove it with `docker rm -f {name}`"
            ),
            DockerError::NotSandboxed { .. } => {
                "set agents.defaults.sandbox.mode to \"all\" (or \"non-main\") to sandbox it".into()
            }
            DockerError::HostPath { .. } => {
                "the sandbox directory or bind source must exist and be readable by carapace"
                    .into()
            }
            DockerError::Engine { .. } => {
                "`docker info` and the engine's log say more; `carapace sandbox list` shows the containers".into()
            }
            DockerError::Fs(e) => return e.hint(),
            DockerError::Sandbox(e) => return e.hint(),
        })
    }

    fn details(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("backend".into(), "docker".into());
        match self {
            DockerError::Unavailable { host, reason } => {
                m.insert("dockerHost".into(), host.clone().into());
                m.insert("reason".into(), reason.clone().into());
            }
            DockerError::ImageMissing { image } => {
                m.insert("image".into(), image.clone().into());
                m.insert("reason".into(), "imageMissing".into());
            }
            DockerError::InvalidSetting { key, value, .. } => {
                m.insert("key".into(), format!("sandbox.docker.{key}").into());
                m.insert("value".into(), value.clone().into());
            }
            DockerError::NotSandboxed { session_key } => {
                m.insert("sessionKey".into(), session_key.clone().into());
            }
            DockerError::NameTaken {
                name,
                owner,
                instance,
            } => {
                m.insert("reason".into(), "nameTaken".into());
                m.insert("container".into(), name.clone().into());
                m.insert("ownerInstance".into(), owner.clone().into());
                m.insert("instance".into(), instance.clone().into());
            }
            DockerError::HostPath { path, .. } => {
                m.insert("path".into(), path.clone().into());
            }
            DockerError::Engine { op, status, .. } => {
                m.insert("op".into(), op.clone().into());
                if let Some(s) = status {
                    m.insert("status".into(), (*s).into());
                }
            }
            DockerError::Fs(e) => return e.details(),
            DockerError::Sandbox(e) => return e.details(),
        }
        m
    }
}

impl From<DockerError> for SandboxError {
    fn from(e: DockerError) -> SandboxError {
        match e {
            DockerError::Fs(fs) => SandboxError::Fs(fs),
            DockerError::Sandbox(e) => *e,
            DockerError::InvalidSetting { .. } | DockerError::NotSandboxed { .. } => {
                SandboxError::BadRequest(format!("{e}; {}", e.hint().unwrap_or_default()))
            }
            other => SandboxError::BackendUnavailable {
                backend: "docker".into(),
                reason: other.to_string(),
                hint: other.hint().unwrap_or_else(|| DAEMON_HINT.into()),
            },
        }
    }
}
