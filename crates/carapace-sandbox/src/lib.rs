//! carapace's sandbox runtime (docs/sandbox.md): backend selection, sandbox directories (created on
//! first use, seeded OpenClaw-style), the **bwrap** backend, and **unsandboxed** host exec for
//! sessions the policy leaves unsandboxed.
//!
//! Only this crate spawns processes for tools. Mount planning is pure and lives in
//! `carapace_policy::mounts`; this crate only carries the planned table out.
//!
//! Invariants:
//! - A sandboxed session never runs on the host: a missing or broken backend is
//!   `SANDBOX_BACKEND_UNAVAILABLE` with an install hint.
//! - Every process gets the configured umask (set by the shell itself, whatever carapace's own
//!   umask), a clean environment, cwd `/workspace` (or the requested directory inside a mount),
//!   a timeout that kills the whole process tree, and an output cap with a truncation flag.
//! - Sandbox directories are created and seeded through carapace-fs (no link is followed out).

mod backend;
pub mod bwrap;
pub mod dirs;
pub mod docker;
mod error;
pub mod explain;
mod host;
pub mod limits;
mod manager;
pub mod pin;
mod run;
pub mod strip;
pub mod user;
pub mod validate;

pub use backend::{
    BWRAP_HINT, BackendEnv, BackendKind, BackendStatus, BoxFuture, DOCKER_HINT, ExecOutput,
    ExecPlan, ExecRequest, Sandbox,
};
pub use error::SandboxError;
pub use host::HostUnsandboxed;
pub use manager::{ExecParams, SandboxDirInfo, SandboxManager, Session, effective_timeout_seconds};
