//! Applying a planned patch all or nothing.
//!
//! The plan has already verified everything that can be verified without writing. What can
//! still fail is the writing itself (a full disk, a directory the OS refuses, a file changed
//! under us). So every file the patch replaces or deletes is first **stashed** (carapace-fs
//! `Root::stash`: a second name for its very inode, or a copy where a link is not allowed), and
//! the originals are kept until every change is in place:
//!
//! 1. deletions: stash, then unlink;
//! 2. writes, in patch order: stash (replacements), then the atomic write; a new file's
//!    missing parent directories are noted first;
//! 3. commit: the stashes are dropped.
//!
//! If a step fails, what was done is undone in reverse order — each stash renamed back over
//! its path (readers see the old or the new file, never none), each new file removed, each
//! directory the patch created removed if empty — and the error is the step's, naming the
//! file. If undoing fails too, the error says which files could not be restored
//! (`details.rollbackFailed`).

use std::path::{Path, PathBuf};

use carapace_fs::{FsError, RemoveOptions, Stash};
use carapace_sandbox::Session;

use crate::ToolError;
use crate::apply_patch::plan::{After, Plan};
use crate::files::{AtPath, write};

/// One thing done, to undo on failure.
enum Done {
    /// The original of entry `entry`, kept.
    Stashed { entry: usize, stash: Stash },
    /// Entry `entry` was created (`written`), with these new directories (deepest last).
    Created {
        entry: usize,
        dirs: Vec<PathBuf>,
        written: bool,
    },
}

/// Applies `plan` (see the module docs).
pub(crate) fn commit(session: &Session, plan: &Plan) -> Result<(), ToolError> {
    let mut done: Vec<Done> = Vec::new();
    match apply(session, plan, &mut done) {
        Ok(()) => {
            for d in done {
                if let Done::Stashed { entry, stash } = d {
                    let e = &plan.entries[entry];
                    if let Err(err) = e.target.root.discard(stash) {
                        // The change is in place; the kept original is a leftover for a sweep.
                        tracing::warn!(path = %e.target.container_path, error = %err, "apply_patch: a kept original could not be removed");
                    }
                }
            }
            Ok(())
        }
        Err(err) => {
            let failed = rollback(plan, done);
            if failed.is_empty() {
                return Err(err);
            }
            let msg = format!(
                "{} (undoing the patch failed too for: {})",
                err.0.message,
                failed.join(", ")
            );
            let mut env = err.0;
            env.message = msg;
            Err(ToolError(env).with_detail("rollbackFailed", failed))
        }
    }
}

fn apply(session: &Session, plan: &Plan, done: &mut Vec<Done>) -> Result<(), ToolError> {
    // 1. Deletions.
    for (i, e) in plan.entries.iter().enumerate() {
        if e.before.is_none() || e.after != After::Absent {
            continue;
        }
        let t = &e.target;
        let stash = t.root.stash(&t.rel).at(&t.container_path)?;
        done.push(Done::Stashed { entry: i, stash });
        t.root
            .remove(&t.rel, &RemoveOptions::default())
            .at(&t.container_path)?;
    }
    // 2. Writes.
    for (i, e) in plan.entries.iter().enumerate() {
        let After::Content(data) = &e.after else {
            continue;
        };
        let t = &e.target;
        if e.before.is_some() {
            let stash = t.root.stash(&t.rel).at(&t.container_path)?;
            done.push(Done::Stashed { entry: i, stash });
        } else {
            done.push(Done::Created {
                entry: i,
                dirs: missing_dirs(&t.root, &t.rel),
                written: false,
            });
        }
        write(session, t, data)?;
        if let Some(Done::Created { written, .. }) = done.last_mut() {
            *written = true;
        }
    }
    Ok(())
}

/// The ancestors of `rel` that do not exist yet, outermost first.
fn missing_dirs(root: &carapace_fs::Root, rel: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dir = rel;
    while let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        dir = parent;
        match root.stat(dir) {
            Err(FsError::NotFound { .. }) => out.push(dir.to_path_buf()),
            _ => break,
        }
    }
    out.reverse();
    out
}

/// Undoes `done` in reverse; returns the container paths that could not be restored.
fn rollback(plan: &Plan, done: Vec<Done>) -> Vec<String> {
    let mut failed = Vec::new();
    for d in done.into_iter().rev() {
        match d {
            Done::Stashed { entry, stash } => {
                let t = &plan.entries[entry].target;
                if let Err(e) = t.root.restore(stash) {
                    tracing::error!(path = %t.container_path, error = %e, "apply_patch: could not restore the original");
                    failed.push(t.container_path.clone());
                }
            }
            Done::Created {
                entry,
                dirs,
                written,
            } => {
                let t = &plan.entries[entry].target;
                if written
                    && let Err(e) = t.root.remove(
                        &t.rel,
                        &RemoveOptions {
                            missing_ok: true,
                            ..RemoveOptions::default()
                        },
                    )
                {
                    tracing::error!(path = %t.container_path, error = %e, "apply_patch: could not remove a new file");
                    failed.push(t.container_path.clone());
                }
                // Only empty directories go (a non-recursive remove refuses the others).
                for dir in dirs.iter().rev() {
                    let _ = t.root.remove(dir, &RemoveOptions::default());
                }
            }
        }
    }
    failed
}
