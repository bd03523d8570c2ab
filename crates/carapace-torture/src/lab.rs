//! A lab: a temp tree with an agent workspace, a state dir (inbox, media) and a canary tree
//! outside every root, plus a tool context over a config naming them.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use carapace_policy::{Config, LoadEnv};
use carapace_tools::{ToolCall, ToolContext, ToolError};
use serde_json::Value;

/// Where the file tools' `/workspace` points (see [`Layout::sandbox_body`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Sandbox mode `off`: `/workspace` is the agent workspace, rw.
    Host,
    /// Mode `all`, backend bwrap, access `session`: `/workspace` a per-session dir, `/agent`
    /// the agent workspace read-only.
    Bwrap,
    /// The same with the Docker backend.
    Docker,
}

impl Layout {
    /// Name for the figures.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Host => "host",
            Layout::Bwrap => "bwrap",
            Layout::Docker => "docker",
        }
    }

    /// The sandbox settings of a lab at `base`. Docker labs get a container prefix of their own
    /// (from a hash of `base`): container names are per scope, and a container with this
    /// scope's name that another lab (another state dir) owns is refused, never shared.
    fn sandbox_body(self, base: &Path) -> String {
        match self {
            Layout::Host => r#"mode: "off""#.into(),
            Layout::Bwrap => r#"mode: "all", backend: "bwrap", workspaceAccess: "session""#.into(),
            Layout::Docker => {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                base.hash(&mut h);
                let tag = h.finish() as u32;
                format!(
                    r#"mode: "all", backend: "docker", workspaceAccess: "session", docker: {{ image: "carapace-test:busybox", containerPrefix: "ct-{tag:08x}-" }}"#
                )
            }
        }
    }
}

/// The session key every lab call uses (not a main session, so `non-main` policies apply too).
pub const SESSION: &str = "agent:main:telegram:dm:4242";

/// A lab tree and the tools over it.
#[allow(dead_code)]
pub struct Lab {
    /// The temp dir holding everything (removed on drop).
    pub dir: tempfile::TempDir,
    /// The agent workspace.
    pub ws: PathBuf,
    /// The canary tree (outside every root).
    pub canary: PathBuf,
    /// The state dir (inbox and media store beneath it).
    pub state: PathBuf,
    /// The secret marker: bytes that exist only in the canary tree.
    pub secret: String,
    /// The marker of the file hard-linked into the workspace (fine for local reads, never
    /// outbound).
    pub hard_secret: String,
    /// The tools.
    pub ctx: ToolContext,
    /// The layout.
    pub layout: Layout,
}

/// The tool context of a lab at `base` (also what a worker process over an existing lab uses).
pub fn context(base: &Path, layout: Layout, extra: &str) -> Result<ToolContext, String> {
    let text = config_text(base, layout, extra);
    let state = base.join("state");
    let var = |_: &str| None;
    let config = Config::parse(
        &text,
        "torture.json5",
        &LoadEnv {
            var: &var,
            home: "/nonexistent-home",
            state_dir: state.clone(),
        },
    )
    .map_err(|e| format!("config: {e}"))?;
    Ok(ToolContext::new(Arc::new(config)))
}

/// The config of a lab at `base` (JSON5).
pub fn config_text(base: &Path, layout: Layout, extra: &str) -> String {
    let ws = base.join("ws");
    let state = base.join("state");
    format!(
        r#"{{ agents: {{ defaults: {{ workspace: "{}", sandbox: {{ workspaceRoot: "{}", {} }} }} }},
           channels: {{ inbox: {{ dir: "{}" }} }}, media: {{ dir: "{}" }}, {extra} }}"#,
        ws.display(),
        base.join("sandboxes").display(),
        layout.sandbox_body(base),
        state.join("inbox").display(),
        state.join("media").display(),
    )
}

/// Snapshot of a tree: relative path → (kind and bytes or link target, mtime in ns, mode).
pub type Snapshot = BTreeMap<PathBuf, (Vec<u8>, i128, u32)>;

impl Lab {
    /// A fresh lab for `layout`; `extra` is appended to the config's top level (JSON5 keys).
    pub fn new(layout: Layout, extra: &str) -> Result<Lab, String> {
        let dir = tempfile::Builder::new()
            .prefix("carapace-torture-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let base = dir.path().to_path_buf();
        let ws = base.join("ws");
        let canary = base.join("canary");
        let state = base.join("state");
        let secret = format!("CANARY-SECRET-{:016x}", fastrand::u64(..));
        let hard_secret = format!("CANARY-HARDLINKED-{:016x}", fastrand::u64(..));
        let io = |e: std::io::Error| format!("lab setup: {e}");
        for d in [&ws, &canary, &canary.join("sub"), &state] {
            std::fs::create_dir_all(d).map_err(io)?;
        }
        std::fs::write(canary.join("secret.txt"), format!("{secret}\n")).map_err(io)?;
        std::fs::write(canary.join("sub/deep.txt"), format!("deep {secret}\n")).map_err(io)?;
        std::fs::write(canary.join("hard_target"), format!("{hard_secret}\n")).map_err(io)?;
        std::fs::write(canary.join("old"), "old content\n").map_err(io)?;
        std::fs::write(ws.join("AGENTS.md"), "agent instructions\n").map_err(io)?;
        std::fs::write(ws.join("notes.txt"), "old\nline two\n").map_err(io)?;
        if rustix::process::geteuid().is_root() && layout != Layout::Host {
            // A sandbox never runs as root: as root, the workspace belongs to an ordinary user.
            for p in [&ws, &ws.join("AGENTS.md"), &ws.join("notes.txt")] {
                std::os::unix::fs::chown(p, Some(4242), Some(4242)).map_err(io)?;
            }
        }
        let ctx = context(&base, layout, extra)?;
        Ok(Lab {
            dir,
            ws,
            canary,
            state,
            secret,
            hard_secret,
            ctx,
            layout,
        })
    }

    /// The temp dir's path.
    pub fn base(&self) -> &Path {
        self.dir.path()
    }

    /// The host directory behind `/workspace` for the lab's session (created by the tools).
    pub fn workspace_host(&self) -> Result<PathBuf, String> {
        let call = self.call("ls", serde_json::json!({}));
        let session = self
            .ctx
            .session(&call)
            .map_err(|e| format!("session: {e:?}"))?;
        session
            .table
            .workspace()
            .map(|m| m.host_path.clone())
            .ok_or_else(|| "no /workspace mount".to_string())
    }

    /// A call in the lab's session.
    pub fn call(&self, tool: &str, args: Value) -> ToolCall {
        ToolCall {
            tool: tool.to_string(),
            args,
            session_key: Some(SESSION.to_string()),
            ..ToolCall::default()
        }
    }

    /// Runs a call through the registry (the CLI surface's policy).
    pub async fn invoke(&self, tool: &str, args: Value) -> Result<Value, ToolError> {
        carapace_tools::invoke(&self.ctx, self.call(tool, args)).await
    }

    /// Snapshot of everything in the lab outside the roots (`canary/` and the base dir's own
    /// entries) — compared byte for byte and by mtime after each attempt.
    pub fn outside_snapshot(&self) -> Snapshot {
        let mut out = Snapshot::new();
        snapshot_into(self.base(), &self.canary, &mut out);
        // The base dir's own entry list: a write to `../x` would add one.
        if let Ok(rd) = std::fs::read_dir(self.base()) {
            for e in rd.flatten() {
                out.entry(PathBuf::from(e.file_name()))
                    .or_insert((b"<entry>".to_vec(), 0, 0));
            }
        }
        out
    }
}

/// Records every entry under `dir` (relative to `base`): files by bytes, links by target,
/// with mtime and mode (lstat: links are not followed).
pub fn snapshot_into(base: &Path, dir: &Path, out: &mut Snapshot) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let rel = p.strip_prefix(base).unwrap_or(&p).to_path_buf();
        let mtime = md.mtime() as i128 * 1_000_000_000 + md.mtime_nsec() as i128;
        let content = if md.file_type().is_symlink() {
            std::fs::read_link(&p)
                .map(|t| t.into_os_string().into_encoded_bytes())
                .unwrap_or_default()
        } else if md.is_file() {
            std::fs::read(&p).unwrap_or_default()
        } else {
            Vec::new()
        };
        out.insert(rel, (content, mtime, md.mode()));
        if md.is_dir() {
            snapshot_into(base, &p, out);
        }
    }
}

/// What differs between two snapshots (empty when equal).
pub fn diff(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut d = Vec::new();
    for (k, v) in before {
        match after.get(k) {
            None => d.push(format!("{} removed", k.display())),
            Some(w) if w.0 != v.0 => d.push(format!("{} content changed", k.display())),
            Some(w) if w.1 != v.1 => d.push(format!("{} mtime changed", k.display())),
            Some(w) if w.2 != v.2 => d.push(format!("{} mode changed", k.display())),
            _ => {}
        }
    }
    for k in after.keys() {
        if !before.contains_key(k) {
            d.push(format!("{} appeared", k.display()));
        }
    }
    d
}

/// Whether any file under `dir` contains `needle` (recursive, links not followed).
pub fn tree_contains(dir: &Path, needle: &[u8]) -> Option<PathBuf> {
    let rd = std::fs::read_dir(dir).ok()?;
    for e in rd.flatten() {
        let p = e.path();
        let Ok(md) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if md.is_dir() {
            if let Some(hit) = tree_contains(&p, needle) {
                return Some(hit);
            }
        } else if md.is_file()
            && let Ok(bytes) = std::fs::read(&p)
            && contains(&bytes, needle)
        {
            return Some(p);
        }
    }
    None
}

/// Byte substring search.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}
