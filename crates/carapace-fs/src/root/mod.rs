//! [`Root`]: a directory fd every operation is resolved beneath, and the read-side operations,
//! one file per concern: `open.rs` (opening roots, subdirectories), `read.rs` (reading files),
//! `stat.rs` (stat, exists, list), `attrs.rs` (modes, owners), `resolve.rs` (resolution shared
//! by every operation), `errors.rs` (error mapping). Writes live in `atomic_write.rs`, removal
//! and renames in `mutate.rs`.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use crate::options::Mechanism;

mod attrs;
mod errors;
mod open;
mod read;
mod resolve;
mod stat;

pub(crate) use attrs::{inherited_owner, process_uid};
pub(crate) use errors::io_error;
pub(crate) use read::read_capped;

/// A directory pinned by an open fd. Every path given to its methods is relative and is
/// resolved beneath that fd, never through the host path again, so renaming or replacing the
/// host path after [`Root::open`] cannot redirect an operation.
#[derive(Debug)]
pub struct Root {
    pub(crate) fd: OwnedFd,
    pub(crate) host: PathBuf,
    pub(crate) mech: Mechanism,
}
