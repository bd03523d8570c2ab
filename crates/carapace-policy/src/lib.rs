//! carapace's I/O-free core.
//!
//! Everything here can be built, printed, compared and tested without touching a kernel:
//! the stable error codes and their status table, the configuration model and its strict
//! validation, the resolution of an effective sandbox policy, and OpenClaw-compatible scope
//! keys and slugs. Crates that do I/O depend on this one; this one depends on none of them.

pub mod error;

pub use error::{CarapaceError, ErrorCode, ErrorEnvelope, mode_string};
pub mod access;
pub mod binds;
pub mod config;
pub mod lexical;
pub mod limits;
pub mod models;
pub mod mounts;
pub mod resolve;
pub mod routing;
pub mod session;
pub mod slug;
pub mod tools_policy;

pub use config::{Config, ConfigError, LoadEnv};
pub use resolve::{Decided, EffectiveSandbox, Layer, ResolveInput};
