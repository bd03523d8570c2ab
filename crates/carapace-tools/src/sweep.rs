//! Sweeping the staging files of killed writes out of every directory carapace writes to.
//!
//! A write killed with the process (SIGKILL, OOM, power) leaves its staging file
//! (`.carapace-tmp-<name>-<hex>`, hidden from `ls`) next to its target, anywhere in a
//! workspace. [`StagingSweeper`] removes them (carapace-fs `sweep_staging_tree`: only
//! carapace's exact staging names, only when no live writer holds the file's lock, never
//! following links, bounded work per directory):
//!
//! - **at start**: [`StagingSweeper::sweep_config`] sweeps every root the configuration names
//!   — the state dir, the media dir, the inbox dir, each agent's workspace and sandbox
//!   workspace root, writable user binds;
//! - **when a root is first opened**: the first call of a session sweeps each writable mount
//!   of its table that no earlier sweep of this process covered (a sandbox dir created later,
//!   or one a bounded start-up sweep did not reach), and the media dir when a tool first opens
//!   the media store.
//!
//! The memo lives in the sweeper (shared by the clones of a [`crate::ToolContext`]), not in a
//! process-wide static.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use carapace_fs::{Root, SweepOptions, SweepReport};
use carapace_policy::{Config, ResolveInput};

/// Most directory entries one root's sweep looks at.
pub const MAX_ENTRIES_PER_ROOT: u64 = 100_000;

/// What a sweep of several roots did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepSummary {
    /// Roots swept now (not already covered).
    pub roots: Vec<PathBuf>,
    /// Staging files removed.
    pub removed: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Staging files of live writers, kept.
    pub busy: u64,
    /// Roots a bound stopped before the end (directories beneath them are swept when a
    /// session first opens them).
    pub incomplete: Vec<PathBuf>,
}

/// Remembers which roots this process has swept; see the module docs.
#[derive(Debug, Default)]
pub struct StagingSweeper {
    /// (root, whether its sweep saw the whole tree).
    swept: Mutex<Vec<(PathBuf, bool)>>,
}

impl StagingSweeper {
    /// A sweeper that has swept nothing yet.
    pub fn new() -> StagingSweeper {
        StagingSweeper::default()
    }

    /// Sweeps every root `config` names (see the module docs). Call it at start.
    pub fn sweep_config(&self, config: &Config) -> SweepSummary {
        let mut dirs = vec![
            config.state_dir.clone(),
            config.media_dir(),
            config.inbox_dir(),
        ];
        let mut agents: Vec<String> = vec!["main".into()];
        agents.extend(config.file.agents.entries.keys().cloned());
        agents.extend(config.file.agents.list.iter().filter_map(|a| a.id.clone()));
        for a in &agents {
            let Ok(eff) = config.resolve(&ResolveInput {
                agent: Some(a),
                ..ResolveInput::default()
            }) else {
                continue;
            };
            dirs.push(eff.agent_workspace.value.clone());
            dirs.push(eff.workspace_root.value.clone());
            for m in carapace_policy::mounts::plan(&eff).mounts {
                if m.writable {
                    dirs.push(m.host_path);
                }
            }
        }
        let mut summary = SweepSummary::default();
        for d in dirs {
            self.sweep_dir(&d, &mut summary);
        }
        summary
    }

    /// Sweeps `dir` unless this sweeper already swept it, or completely swept a directory
    /// containing it.
    pub fn sweep_once(&self, dir: &Path) -> SweepSummary {
        let mut summary = SweepSummary::default();
        self.sweep_dir(dir, &mut summary);
        summary
    }

    fn covered(&self, dir: &Path) -> bool {
        let Ok(swept) = self.swept.lock() else {
            return false;
        };
        swept
            .iter()
            .any(|(p, complete)| p == dir || (*complete && dir.starts_with(p)))
    }

    fn sweep_dir(&self, dir: &Path, summary: &mut SweepSummary) {
        if self.covered(dir) {
            return;
        }
        let report = match Root::open(dir) {
            Ok(root) => root.sweep_staging_tree(
                Path::new(""),
                &SweepOptions {
                    max_entries: MAX_ENTRIES_PER_ROOT,
                    ..SweepOptions::default()
                },
            ),
            Err(e) => Err(e),
        };
        let complete = match report {
            Ok(r) => {
                log(dir, &r);
                summary.removed += r.removed;
                summary.bytes += r.bytes;
                summary.busy += r.busy;
                if !r.complete {
                    summary.incomplete.push(dir.to_path_buf());
                }
                r.complete
            }
            // A directory that does not exist (yet) has nothing to sweep; try again later.
            Err(carapace_fs::FsError::NotFound { .. }) => return,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "staging sweep failed");
                false
            }
        };
        summary.roots.push(dir.to_path_buf());
        if let Ok(mut swept) = self.swept.lock() {
            swept.push((dir.to_path_buf(), complete));
        }
    }
}

fn log(dir: &Path, r: &SweepReport) {
    if r.removed > 0 {
        tracing::info!(
            dir = %dir.display(),
            removed = r.removed,
            bytes = r.bytes,
            "removed staging files left by killed writes"
        );
    }
    if !r.complete {
        tracing::warn!(
            dir = %dir.display(),
            visited = r.visited,
            "staging sweep stopped at its bound; directories beneath are swept when a session first opens them"
        );
    }
}
