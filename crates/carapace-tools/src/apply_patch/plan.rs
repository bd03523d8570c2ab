//! Planning a patch: every operation is applied, in order, to an in-memory view of the files
//! it touches, so that nothing is written before the whole patch is known to apply.
//!
//! - A file is identified by what it *is*, not by how it was named: `x`, `./x`,
//!   `/workspace/x`, `sub/../x` and `link/x` (a symlinked directory) are one file — an
//!   existing file by its inode (unless it is hard-linked, when each name is its own file,
//!   because an atomic replace gives that name a new inode), a new one by its place beneath
//!   the mount.
//! - Operations see the effect of the ones before them, as if applied one by one: an update
//!   after an add patches the added text; two updates of one file both apply; a delete after
//!   an add leaves nothing; `*** Move to:` naming the file itself is an in-place update.
//! - What the patch does is the net change per file (absent → present: added; present →
//!   present: updated; present → absent: deleted; a move's destination counts as updated, as
//!   in OpenClaw's summary), so the summary lists each file once, with what really happened.
//! - Verified up front: every path maps to a writable mount; every file to update or delete
//!   exists and is a regular file (not a symlink); every hunk matches; every new file's
//!   existing ancestors are directories; the content the plan holds stays within
//!   [`HELD_FACTOR`] × `tools.fs.maxReadBytes`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use carapace_fs::{FileKind, FileMeta, FsError, SymlinkPolicy};
use carapace_policy::mounts::Access;
use carapace_sandbox::Session;

use crate::ToolError;
use crate::apply_patch::hunks::apply_chunks;
use crate::apply_patch::parse::Op;
use crate::files::{AtPath, Target, read_options, target};

/// What a file is after the patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum After {
    /// Not touched yet.
    Unchanged,
    /// Gone.
    Absent,
    /// This content.
    Content(Vec<u8>),
}

/// How a file that did not exist came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    Added,
    MovedIn,
}

/// One file the patch touches.
pub(crate) struct Entry {
    /// Where it is (the first name the patch used for it).
    pub target: Target,
    /// What is there now (lstat), `None` when nothing is.
    pub before: Option<FileMeta>,
    /// What the patch leaves there.
    pub after: After,
    /// For a file that did not exist: how it was made.
    pub origin: Option<Origin>,
}

/// What one file's change is, once the patch is planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Added,
    Updated,
    Deleted,
    None,
}

impl Entry {
    pub(crate) fn change(&self) -> Change {
        match (&self.before, &self.after) {
            (None, After::Content(_)) if self.origin == Some(Origin::MovedIn) => Change::Updated,
            (None, After::Content(_)) => Change::Added,
            (Some(_), After::Content(_)) => Change::Updated,
            (Some(_), After::Absent) => Change::Deleted,
            _ => Change::None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Inode(u64, u64),
    Place(PathBuf, PathBuf),
}

/// The planned patch: its files in the order the patch first names them.
pub(crate) struct Plan {
    pub entries: Vec<Entry>,
}

/// The most content a plan holds in memory, as a multiple of `tools.fs.maxReadBytes`: each
/// file is read whole (at most `maxReadBytes`), and a patch naming many big files (or one
/// big file under many hard-linked names) must not hold them all.
pub(crate) const HELD_FACTOR: u64 = 4;

struct Planner<'s> {
    session: &'s Session,
    max: u64,
    entries: Vec<Entry>,
    index: HashMap<Key, usize>,
    /// Bytes of planned content held now.
    held: u64,
}

/// Plans `ops` (see the module docs). Nothing is written.
pub(crate) fn plan(session: &Session, ops: &[Op], max: u64) -> Result<Plan, ToolError> {
    let mut p = Planner {
        session,
        max,
        entries: Vec::new(),
        index: HashMap::new(),
        held: 0,
    };
    for op in ops {
        p.apply(op)?;
    }
    p.check_parents()?;
    Ok(Plan { entries: p.entries })
}

fn stat(t: &Target) -> Result<Option<FileMeta>, ToolError> {
    match t.root.stat(&t.rel) {
        Ok(m) => Ok(Some(m)),
        Err(FsError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e.with_path(&t.container_path).into()),
    }
}

fn key(t: &Target, meta: Option<&FileMeta>) -> Key {
    match meta {
        Some(m) if m.kind == FileKind::File && m.nlink == 1 => Key::Inode(m.dev, m.ino),
        _ => Key::Place(t.root.host_path().to_path_buf(), t.rel.clone()),
    }
}

/// A file that must be a regular file to be written, updated or deleted.
fn must_be_file(t: &Target, meta: &FileMeta) -> Result<(), ToolError> {
    match meta.kind {
        FileKind::File => Ok(()),
        FileKind::Symlink => Err(FsError::SymlinkRefused {
            path: PathBuf::from(&t.container_path),
        }
        .into()),
        kind => Err(FsError::NotRegularFile {
            path: PathBuf::from(&t.container_path),
            kind,
        }
        .into()),
    }
}

fn not_found(shown: &str) -> ToolError {
    ToolError::from(FsError::NotFound {
        path: PathBuf::from(shown),
    })
}

impl Planner<'_> {
    /// The entry of the file `path` names, created on first use.
    fn entry(&mut self, path: &str) -> Result<usize, ToolError> {
        let t = target(self.session, path, Access::Write)?;
        if t.rel.as_os_str().is_empty() {
            return Err(FsError::NotRegularFile {
                path: PathBuf::from(&t.container_path),
                kind: FileKind::Dir,
            }
            .into());
        }
        let before = stat(&t)?;
        let k = key(&t, before.as_ref());
        if let Some(i) = self.index.get(&k) {
            return Ok(*i);
        }
        self.entries.push(Entry {
            target: t,
            before,
            after: After::Unchanged,
            origin: None,
        });
        self.index.insert(k, self.entries.len() - 1);
        Ok(self.entries.len() - 1)
    }

    /// The file's content at this point of the patch (`None`: it does not exist).
    fn current(&self, i: usize) -> Result<Option<Vec<u8>>, ToolError> {
        let e = &self.entries[i];
        match (&e.after, &e.before) {
            (After::Content(c), _) => Ok(Some(c.clone())),
            (After::Absent, _) | (After::Unchanged, None) => Ok(None),
            (After::Unchanged, Some(meta)) => {
                must_be_file(&e.target, meta)?;
                let mut opts = read_options(Some(self.max));
                opts.symlinks = SymlinkPolicy::RefuseFinal;
                let bytes = e
                    .target
                    .root
                    .read(&e.target.rel, &opts)
                    .at(&e.target.container_path)?;
                Ok(Some(bytes))
            }
        }
    }

    /// Checks that the file at `i` may be (over)written.
    fn writable(&self, i: usize) -> Result<(), ToolError> {
        let e = &self.entries[i];
        match (&e.after, &e.before) {
            (After::Unchanged, Some(meta)) => must_be_file(&e.target, meta),
            _ => Ok(()),
        }
    }

    fn set(&mut self, i: usize, after: After, created_as: Origin) -> Result<(), ToolError> {
        let size = |a: &After| match a {
            After::Content(c) => c.len() as u64,
            _ => 0,
        };
        self.held = self.held - size(&self.entries[i].after) + size(&after);
        let budget = self.max.saturating_mul(HELD_FACTOR);
        if self.held > budget {
            return Err(ToolError::new(
                carapace_policy::ErrorCode::TooLarge,
                format!(
                    "apply_patch: the files this patch writes add up to more than {budget} bytes ({HELD_FACTOR} x tools.fs.maxReadBytes)"
                ),
            )
            .with_hint("split the patch into several smaller ones")
            .with_detail("limit", budget)
            .with_detail("path", self.entries[i].target.container_path.clone()));
        }
        let e = &mut self.entries[i];
        let absent_now = match (&e.after, &e.before) {
            (After::Content(_), _) => false,
            (After::Absent, _) | (After::Unchanged, None) => true,
            (After::Unchanged, Some(_)) => false,
        };
        if absent_now && matches!(after, After::Content(_)) {
            e.origin = Some(created_as);
        }
        e.after = after;
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), ToolError> {
        match op {
            Op::Add { path, contents } => {
                let i = self.entry(path)?;
                self.writable(i)?;
                self.set(
                    i,
                    After::Content(contents.clone().into_bytes()),
                    Origin::Added,
                )?;
            }
            Op::Delete { path } => {
                let i = self.entry(path)?;
                if let (After::Unchanged, Some(meta)) =
                    (&self.entries[i].after, &self.entries[i].before)
                {
                    let e = &self.entries[i];
                    if meta.kind != FileKind::File {
                        return Err(FsError::NotRegularFile {
                            path: PathBuf::from(&e.target.container_path),
                            kind: meta.kind,
                        }
                        .into());
                    }
                }
                if self.current_exists(i) {
                    self.set(i, After::Absent, Origin::Added)?;
                } else {
                    return Err(not_found(&self.entries[i].target.container_path));
                }
            }
            Op::Update {
                path,
                move_to,
                chunks,
            } => {
                let i = self.entry(path)?;
                let shown = self.entries[i].target.container_path.clone();
                let bytes = self.current(i)?.ok_or_else(|| not_found(&shown))?;
                let text = String::from_utf8(bytes).map_err(|_| {
                    ToolError::bad_request(format!("apply_patch: {shown} is not UTF-8 text"))
                        .with_detail("path", shown.clone())
                })?;
                let new = if chunks.is_empty() {
                    text
                } else {
                    apply_chunks(&text, chunks, &shown)?
                };
                let new = After::Content(new.into_bytes());
                match move_to {
                    Some(dest) => {
                        let j = self.entry(dest)?;
                        if j == i {
                            // `*** Move to:` naming the file itself: an update in place.
                            self.set(i, new, Origin::Added)?;
                        } else {
                            self.writable(j)?;
                            self.set(j, new, Origin::MovedIn)?;
                            self.set(i, After::Absent, Origin::Added)?;
                        }
                    }
                    None => self.set(i, new, Origin::Added)?,
                }
            }
        }
        Ok(())
    }

    fn current_exists(&self, i: usize) -> bool {
        let e = &self.entries[i];
        match (&e.after, &e.before) {
            (After::Content(_), _) => true,
            (After::Absent, _) | (After::Unchanged, None) => false,
            (After::Unchanged, Some(_)) => true,
        }
    }

    /// Every new file's existing ancestors must be directories (or be deleted by this patch),
    /// and no new file may sit beneath another file the patch writes.
    fn check_parents(&self) -> Result<(), ToolError> {
        for e in &self.entries {
            if e.before.is_some() || !matches!(e.after, After::Content(_)) {
                continue;
            }
            let mut dir: &Path = &e.target.rel;
            while let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                dir = parent;
                let place = Key::Place(e.target.root.host_path().to_path_buf(), dir.to_path_buf());
                let written = |k: &Key| {
                    self.index
                        .get(k)
                        .map(|i| &self.entries[*i].after)
                        .map(|a| matches!(a, After::Content(_)))
                };
                let shown_dir = shown_ancestor(&e.target.container_path, &e.target.rel, dir);
                if written(&place) == Some(true) {
                    return Err(conflict(&e.target.container_path, &shown_dir));
                }
                let Ok(meta) = e.target.root.stat(dir) else {
                    continue; // missing: created with the file
                };
                match meta.kind {
                    FileKind::Dir | FileKind::Symlink => break,
                    _ => {
                        let k = key(&e.target, Some(&meta));
                        let k = match k {
                            Key::Inode(..) => k,
                            Key::Place(..) => place,
                        };
                        match self.index.get(&k).map(|i| &self.entries[*i].after) {
                            Some(After::Absent) => continue, // deleted first, then a directory
                            _ => return Err(conflict(&e.target.container_path, &shown_dir)),
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// The container path of `dir` (an ancestor of `rel`), given `shown` for `rel`.
fn shown_ancestor(shown: &str, rel: &Path, dir: &Path) -> String {
    let up = rel.components().count() - dir.components().count();
    let mut s = shown.to_string();
    for _ in 0..up {
        if let Some(i) = s.rfind('/') {
            s.truncate(i);
        }
    }
    s
}

fn conflict(file: &str, dir: &str) -> ToolError {
    ToolError::from(FsError::NotADirectory {
        path: PathBuf::from(dir),
        kind: FileKind::File,
    })
    .with_hint(format!(
        "{file} would need {dir} to be a directory, but it is a file; delete it first in the same patch, or choose another path"
    ))
    .with_detail("file", file)
}
