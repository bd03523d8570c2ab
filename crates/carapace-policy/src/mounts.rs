//! Mount planning (docs/sandbox.md): the one place that decides what a session's sandbox sees, and the
//! one mapping from an agent-visible path (`/workspace/…`, `/agent/…`, or relative to
//! `/workspace`) to a host directory and a path beneath it.
//!
//! Pure: no I/O. The shell (`exec` in the sandbox) and the file tools (on the host) both use the
//! [`MountTable`] planned here, so they always see the same files.
//!
//! | access  | `/workspace`                         | `/agent`                 | writable via tools |
//! |---------|--------------------------------------|--------------------------|--------------------|
//! | none    | `<workspaceRoot>/<scope-slug>` rw    | —                        | `/workspace`       |
//! | ro      | `<workspaceRoot>/<scope-slug>` ro    | agent workspace ro       | nothing            |
//! | rw      | agent workspace rw                   | —                        | `/workspace`       |
//! | session | `<workspaceRoot>/<session-slug>` rw  | agent workspace ro / —   | `/workspace`       |
//!
//! Unsandboxed sessions (mode `off`, or the main session under `non-main`): `/workspace` is the
//! agent workspace, read-write, and nothing else is mapped. Validated user `binds` are added
//! after the two managed mounts, sandboxed sessions only.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::{SessionAgentAccess, WorkspaceAccess};
use crate::error::{CarapaceError, ErrorCode};
use crate::resolve::EffectiveSandbox;

/// Container path of the main workspace mount.
pub const WORKSPACE: &str = "/workspace";
/// Container path of the read-only agent workspace mount.
pub const AGENT: &str = "/agent";

/// What a mount is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MountKind {
    /// `/workspace`.
    Workspace,
    /// `/agent`.
    Agent,
    /// A user bind from `docker.binds`.
    Bind,
}

/// One mount: a host directory shown at a container path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    /// Absolute host path.
    pub host_path: PathBuf,
    /// Absolute path as the agent sees it.
    pub container_path: String,
    /// Whether the sandbox and the file tools may write beneath it.
    pub writable: bool,
    /// What it is.
    pub kind: MountKind,
}

/// The mounts of one session, in mount order (workspace, agent, binds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MountTable {
    /// Whether these mounts are inside a sandbox (false: host exec, tools on the agent workspace).
    pub sandboxed: bool,
    /// The mounts.
    pub mounts: Vec<Mount>,
}

/// What the caller wants to do with a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read, list, stat.
    Read,
    /// Create, replace, delete, rename.
    Write,
}

/// An agent path mapped to a mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved<'a> {
    /// The mount it falls in.
    pub mount: &'a Mount,
    /// Path relative to the mount's host path (empty for the mount point itself). Never
    /// contains `..` or `.` components and is never absolute.
    pub rel: PathBuf,
    /// The normalised container path (`/workspace/a/b`).
    pub container_path: String,
}

impl Resolved<'_> {
    /// `host_path/rel`, for messages and for callers that must hand a path to the OS. File
    /// operations should open the mount's host path as a `carapace_fs::Root` and use `rel`.
    pub fn host_path(&self) -> PathBuf {
        if self.rel.as_os_str().is_empty() {
            self.mount.host_path.clone()
        } else {
            self.mount.host_path.join(&self.rel)
        }
    }
}

/// A refused mapping.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    /// Empty or NUL-containing path.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// As given.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// The path is in no mount of this session.
    #[error("path {path:?} is outside every directory this session can reach ({mounts})")]
    OutsideMounts {
        /// As given.
        path: String,
        /// Normalised container path.
        normalized: String,
        /// The container paths that are mapped, comma-separated.
        mounts: String,
    },
    /// A path under `/agent` in a session whose policy does not show the agent workspace.
    #[error("{path:?} is in the agent workspace, which this session's policy does not show")]
    AgentHidden {
        /// As given.
        path: String,
        /// The session's workspace access, when known (for the hint).
        access: Option<WorkspaceAccess>,
    },
    /// A write to a read-only mount.
    #[error("{path:?} is on the read-only mount {mount}; this session cannot write there")]
    ReadOnly {
        /// As given.
        path: String,
        /// The mount's container path.
        mount: String,
        /// The session's workspace access (for the hint).
        access: Option<WorkspaceAccess>,
    },
}

impl CarapaceError for MountError {
    fn code(&self) -> ErrorCode {
        match self {
            MountError::InvalidPath { .. } => ErrorCode::BadRequest,
            MountError::OutsideMounts { .. } => ErrorCode::PathOutsideRoot,
            MountError::AgentHidden { .. } => ErrorCode::WorkspaceAccessDenied,
            MountError::ReadOnly { .. } => ErrorCode::WorkspaceReadOnly,
        }
    }
    fn hint(&self) -> Option<String> {
        match self {
            MountError::InvalidPath { .. } => None,
            MountError::OutsideMounts { mounts, .. } => Some(format!(
                "use a path under {mounts} (or one relative to /workspace); `carapace sandbox explain` shows the mount table"
            )),
            MountError::AgentHidden { access, .. } => Some(match access {
                Some(WorkspaceAccess::Session) => "with workspaceAccess \"session\" and sessionAgentAccess \"none\" the agent workspace is hidden; set sessionAgentAccess \"ro\" to show it read-only at /agent".into(),
                Some(a) => format!("/agent exists only with workspaceAccess \"ro\" or \"session\" (this session has \"{a}\"); use paths under /workspace"),
                None => "this session has no /agent mount; `carapace sandbox explain` shows the mount table".into(),
            }),
            MountError::ReadOnly { access, .. } => Some(match access {
                Some(WorkspaceAccess::Ro) => "workspaceAccess is \"ro\": the sandbox can read but not write. Use \"session\" for a private writable directory, or \"rw\"".into(),
                Some(WorkspaceAccess::Session) => "with workspaceAccess \"session\" only /workspace (the session's own directory) is writable; /agent is read-only".into(),
                _ => "this mount is read-only; `carapace sandbox explain` shows the mount table".into(),
            }),
        }
    }
    fn details(&self) -> Map<String, Value> {
        let mut m = Map::new();
        match self {
            MountError::InvalidPath { path, .. } => {
                m.insert("path".into(), path.clone().into());
            }
            MountError::OutsideMounts {
                path,
                normalized,
                mounts,
            } => {
                m.insert("path".into(), path.clone().into());
                m.insert("containerPath".into(), normalized.clone().into());
                m.insert("mounts".into(), mounts.clone().into());
            }
            MountError::AgentHidden { path, access } => {
                m.insert("path".into(), path.clone().into());
                if let Some(a) = access {
                    m.insert("workspaceAccess".into(), a.as_str().into());
                }
            }
            MountError::ReadOnly {
                path,
                mount,
                access,
            } => {
                m.insert("path".into(), path.clone().into());
                m.insert("mount".into(), mount.clone().into());
                if let Some(a) = access {
                    m.insert("workspaceAccess".into(), a.as_str().into());
                }
            }
        }
        m
    }
}

/// Plans the mounts of a session from its effective policy (docs/sandbox.md).
pub fn plan(eff: &EffectiveSandbox) -> MountTable {
    let agent_ws = eff.agent_workspace.value.clone();
    if !eff.sandboxed {
        return MountTable {
            sandboxed: false,
            mounts: vec![mount(agent_ws, WORKSPACE, true, MountKind::Workspace)],
        };
    }
    let sandbox_dir = eff.sandbox_dir.clone();
    let mut mounts = match eff.workspace_access.value {
        WorkspaceAccess::None => vec![mount(sandbox_dir, WORKSPACE, true, MountKind::Workspace)],
        WorkspaceAccess::Ro => vec![
            mount(sandbox_dir, WORKSPACE, false, MountKind::Workspace),
            mount(agent_ws, AGENT, false, MountKind::Agent),
        ],
        WorkspaceAccess::Rw => vec![mount(agent_ws, WORKSPACE, true, MountKind::Workspace)],
        WorkspaceAccess::Session => {
            let mut v = vec![mount(sandbox_dir, WORKSPACE, true, MountKind::Workspace)];
            if eff.session_agent_access.value == SessionAgentAccess::Ro {
                v.push(mount(agent_ws, AGENT, false, MountKind::Agent));
            }
            v
        }
    };
    for b in &eff.docker.binds {
        mounts.push(Mount {
            host_path: PathBuf::from(&b.host_path),
            container_path: b.container_path.clone(),
            writable: b.writable,
            kind: MountKind::Bind,
        });
    }
    MountTable {
        sandboxed: true,
        mounts,
    }
}

fn mount(host: PathBuf, container: &str, writable: bool, kind: MountKind) -> Mount {
    Mount {
        host_path: host,
        container_path: container.to_string(),
        writable,
        kind,
    }
}

impl MountTable {
    /// The `/workspace` mount (every table has one).
    pub fn workspace(&self) -> Option<&Mount> {
        self.mounts.iter().find(|m| m.kind == MountKind::Workspace)
    }

    /// The mount at exactly this container path.
    pub fn by_container_path(&self, container: &str) -> Option<&Mount> {
        self.mounts.iter().find(|m| m.container_path == container)
    }

    /// Comma-separated container paths, for messages.
    pub fn container_paths(&self) -> String {
        self.mounts
            .iter()
            .map(|m| m.container_path.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// True when `path` names something the agent sees through this table: a relative path, or
    /// an absolute one under a mount. Callers that also accept host paths (outbound media) use
    /// this to decide which rule applies.
    pub fn is_agent_path(&self, path: &str) -> bool {
        match normalize(path) {
            Some(n) => self.find(&n).is_some(),
            None => false,
        }
    }

    /// Maps an agent-visible path to (mount, relative path).
    ///
    /// A relative path is relative to `/workspace`. `.` and `..` are resolved lexically (a `..`
    /// never climbs above `/`); symlinks are *not* this function's business: the caller opens
    /// the mount's host path as a root and lets the safe filesystem layer resolve `rel` beneath
    /// it. The most specific (longest) mount wins. `access` is the caller's intent:
    /// [`Access::Write`] to a read-only mount is `WORKSPACE_READ_ONLY`.
    pub fn resolve(&self, path: &str, access: Access) -> Result<Resolved<'_>, MountError> {
        let trimmed = path.trim();
        if trimmed.is_empty() {
            return Err(MountError::InvalidPath {
                path: path.into(),
                reason: "empty path",
            });
        }
        if trimmed.contains('\0') {
            return Err(MountError::InvalidPath {
                path: path.into(),
                reason: "NUL byte in path",
            });
        }
        let normalized = normalize(trimmed).ok_or_else(|| MountError::InvalidPath {
            path: path.into(),
            reason: "unusable path",
        })?;
        let Some(m) = self.find(&normalized) else {
            if normalized == "/agent" || normalized.starts_with("/agent/") {
                return Err(MountError::AgentHidden {
                    path: path.into(),
                    access: None,
                });
            }
            return Err(MountError::OutsideMounts {
                path: path.into(),
                normalized,
                mounts: self.container_paths(),
            });
        };
        if access == Access::Write && !m.writable {
            return Err(MountError::ReadOnly {
                path: path.into(),
                mount: m.container_path.clone(),
                access: None,
            });
        }
        let rest = normalized[m.container_path.len()..].trim_start_matches('/');
        Ok(Resolved {
            mount: m,
            rel: PathBuf::from(rest),
            container_path: normalized.clone(),
        })
    }

    /// [`MountTable::resolve`] with the session's access named in `WORKSPACE_READ_ONLY` hints.
    pub fn resolve_for(
        &self,
        path: &str,
        access: Access,
        workspace_access: WorkspaceAccess,
    ) -> Result<Resolved<'_>, MountError> {
        self.resolve(path, access).map_err(|e| match e {
            MountError::ReadOnly { path, mount, .. } => MountError::ReadOnly {
                path,
                mount,
                access: Some(workspace_access),
            },
            MountError::AgentHidden { path, .. } => MountError::AgentHidden {
                path,
                access: Some(workspace_access),
            },
            e => e,
        })
    }

    /// Maps a host path back to the container path the agent sees (the longest host mount that
    /// contains it), for results and messages.
    pub fn to_container_path(&self, host: &Path) -> Option<String> {
        self.mounts
            .iter()
            .filter_map(|m| {
                let rest = host.strip_prefix(&m.host_path).ok()?;
                let rest = rest.to_str()?;
                Some((m.host_path.as_os_str().len(), join(&m.container_path, rest)))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, p)| p)
    }

    fn find(&self, normalized: &str) -> Option<&Mount> {
        self.mounts
            .iter()
            .filter(|m| under(normalized, &m.container_path))
            .max_by_key(|m| m.container_path.len())
    }
}

fn join(base: &str, rest: &str) -> String {
    if rest.is_empty() {
        base.to_string()
    } else {
        format!("{}/{}", base.trim_end_matches('/'), rest)
    }
}

/// True when `p` is `base` or below it.
fn under(p: &str, base: &str) -> bool {
    p == base || p.strip_prefix(base).is_some_and(|r| r.starts_with('/'))
}

/// An agent path as an absolute container path ([`crate::lexical::container_path`] under
/// `/workspace`). `None` for a NUL byte.
pub fn normalize(path: &str) -> Option<String> {
    crate::lexical::container_path(path, WORKSPACE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, LoadEnv, SandboxMode, Scope};
    use crate::resolve::ResolveInput;

    fn config(json: &str) -> Config {
        let var = |_: &str| None;
        Config::parse(
            json,
            "test.json5",
            &LoadEnv {
                var: &var,
                home: "/home/u",
                state_dir: PathBuf::from("/state"),
            },
        )
        .unwrap()
    }

    fn eff(cfg: &Config, session: &str) -> EffectiveSandbox {
        cfg.resolve(&ResolveInput {
            session_key: Some(session),
            ..Default::default()
        })
        .unwrap()
    }

    fn sandbox_cfg(mode: &str, scope: &str, access: &str, extra: &str) -> Config {
        config(&format!(
            r#"{{ agents: {{ defaults: {{ workspace: "/ws", sandbox: {{ mode: "{mode}", scope: "{scope}", workspaceAccess: "{access}", workspaceRoot: "/sbx" {extra} }} }} }} }}"#
        ))
    }

    const SESSION: &str = "agent:main:telegram:dm:42";

    fn row(t: &MountTable) -> Vec<(String, String, bool)> {
        t.mounts
            .iter()
            .map(|m| {
                (
                    m.container_path.clone(),
                    m.host_path.display().to_string(),
                    m.writable,
                )
            })
            .collect()
    }

    /// Every access × scope × mode: the table of docs/sandbox.md.
    #[test]
    fn full_matrix() {
        for mode in SandboxMode::VALUES {
            for scope in Scope::VALUES {
                for access in WorkspaceAccess::VALUES {
                    for session in [SESSION, "agent:main:main"] {
                        let cfg = sandbox_cfg(mode, scope, access, "");
                        let e = eff(&cfg, session);
                        let t = plan(&e);
                        let sandboxed = match *mode {
                            "off" => false,
                            "non-main" => session != "agent:main:main",
                            _ => true,
                        };
                        assert_eq!(t.sandboxed, sandboxed, "{mode} {scope} {access} {session}");
                        if !sandboxed {
                            assert_eq!(row(&t), vec![("/workspace".into(), "/ws".into(), true)]);
                            continue;
                        }
                        // The scope slug: forced to the session for "session".
                        let key = match (*access, *scope) {
                            ("session", _) | (_, "session") => session.to_string(),
                            (_, "agent") => "agent:main".into(),
                            _ => "shared".into(),
                        };
                        let dir = format!("/sbx/{}", crate::slug::slugify(&key));
                        let expect: Vec<(String, String, bool)> = match *access {
                            "none" => vec![("/workspace".into(), dir, true)],
                            "ro" => vec![
                                ("/workspace".into(), dir, false),
                                ("/agent".into(), "/ws".into(), false),
                            ],
                            "rw" => vec![("/workspace".into(), "/ws".into(), true)],
                            "session" => vec![
                                ("/workspace".into(), dir, true),
                                ("/agent".into(), "/ws".into(), false),
                            ],
                            _ => unreachable!(),
                        };
                        assert_eq!(row(&t), expect, "{mode} {scope} {access} {session}");
                    }
                }
            }
        }
    }

    #[test]
    fn session_agent_access_none_hides_agent() {
        let cfg = sandbox_cfg("all", "agent", "session", r#", sessionAgentAccess: "none""#);
        let t = plan(&eff(&cfg, SESSION));
        assert_eq!(t.mounts.len(), 1);
        assert_eq!(
            t.resolve("/agent/AGENTS.md", Access::Read)
                .unwrap_err()
                .code(),
            ErrorCode::WorkspaceAccessDenied
        );
        let e = t
            .resolve_for("/agent", Access::Read, WorkspaceAccess::Session)
            .unwrap_err();
        assert!(e.hint().unwrap().contains("sessionAgentAccess"), "{e}");
    }

    #[test]
    fn different_sessions_get_different_dirs() {
        let cfg = sandbox_cfg("all", "agent", "session", "");
        let a = plan(&eff(&cfg, "agent:main:telegram:dm:1"));
        let b = plan(&eff(&cfg, "agent:main:telegram:dm:2"));
        assert_ne!(a.mounts[0].host_path, b.mounts[0].host_path);
        assert_eq!(a.mounts[1].host_path, b.mounts[1].host_path);
    }

    #[test]
    fn binds_follow_managed_mounts() {
        let cfg = sandbox_cfg(
            "all",
            "agent",
            "none",
            r#", docker: { binds: ["/srv/data:/data:ro", "/srv/out:/out"] }"#,
        );
        let t = plan(&eff(&cfg, SESSION));
        assert_eq!(
            row(&t),
            vec![
                (
                    "/workspace".into(),
                    format!("/sbx/{}", crate::slug::slugify("agent:main")),
                    true
                ),
                ("/data".into(), "/srv/data".into(), false),
                ("/out".into(), "/srv/out".into(), true),
            ]
        );
        assert_eq!(
            t.resolve("/data/x", Access::Read).unwrap().rel,
            PathBuf::from("x")
        );
        assert_eq!(
            t.resolve("/data/x", Access::Write).unwrap_err().code(),
            ErrorCode::WorkspaceReadOnly
        );
        assert!(t.resolve("/out/y", Access::Write).is_ok());
        // Unsandboxed sessions never get binds.
        let cfg = sandbox_cfg(
            "off",
            "agent",
            "none",
            r#", docker: { binds: ["/srv/data:/data:ro"] }"#,
        );
        assert_eq!(plan(&eff(&cfg, SESSION)).mounts.len(), 1);
    }

    #[test]
    fn a_channels_session_access_overrides_the_default() {
        let cfg = config(
            r#"{ agents: { defaults: { workspace: "/ws", sandbox: { mode: "all", workspaceRoot: "/sbx" } } },
                 channels: [ { id: "telegram", session: { workspaceAccess: "session" } }, { id: "discord" } ] }"#,
        );
        let tg = plan(&eff(&cfg, "agent:main:telegram:dm:42"));
        assert_eq!(tg.mounts.len(), 2);
        assert!(
            tg.mounts[0]
                .host_path
                .ends_with(crate::slug::slugify("agent:main:telegram:dm:42"))
        );
        assert!(tg.resolve("notes.txt", Access::Write).is_ok());
        assert_eq!(
            tg.resolve("/agent/x", Access::Write).unwrap_err().code(),
            ErrorCode::WorkspaceReadOnly
        );
        let dc = plan(&eff(&cfg, "agent:main:discord:dm:42"));
        // Default access "none": the agent-scoped sandbox dir, no /agent.
        assert_eq!(
            row(&dc),
            vec![(
                "/workspace".into(),
                format!("/sbx/{}", crate::slug::slugify("agent:main")),
                true
            )]
        );
    }

    #[test]
    fn resolve_paths() {
        let cfg = sandbox_cfg("all", "session", "ro", "");
        let t = plan(&eff(&cfg, SESSION));
        let ok = |p: &str| {
            let r = t.resolve(p, Access::Read).unwrap();
            (r.mount.container_path.clone(), r.rel.display().to_string())
        };
        assert_eq!(ok("a/b.txt"), ("/workspace".into(), "a/b.txt".into()));
        assert_eq!(ok("./a/../b.txt"), ("/workspace".into(), "b.txt".into()));
        assert_eq!(ok("/workspace"), ("/workspace".into(), "".into()));
        assert_eq!(ok("/workspace/"), ("/workspace".into(), "".into()));
        assert_eq!(ok("."), ("/workspace".into(), "".into()));
        assert_eq!(ok("/agent//x/./y"), ("/agent".into(), "x/y".into()));
        assert_eq!(ok("../agent/x"), ("/agent".into(), "x".into()));
        assert_eq!(ok("/workspace/../agent/z"), ("/agent".into(), "z".into()));
        for outside in [
            "/etc/passwd",
            "/",
            "..",
            "../..",
            "/workspacex/y",
            "/agentx",
            "/workspace/../../etc",
            "/sbx/other",
            "/ws/secret",
        ] {
            let e = t.resolve(outside, Access::Read).unwrap_err();
            assert_eq!(e.code(), ErrorCode::PathOutsideRoot, "{outside}");
            assert!(!t.is_agent_path(outside));
        }
        for bad in ["", "   ", "a\0b"] {
            assert_eq!(
                t.resolve(bad, Access::Read).unwrap_err().code(),
                ErrorCode::BadRequest
            );
        }
        // ro: nothing is writable.
        for p in ["x", "/workspace/x", "/agent/x", "/workspace"] {
            let e = t
                .resolve_for(p, Access::Write, WorkspaceAccess::Ro)
                .unwrap_err();
            assert_eq!(e.code(), ErrorCode::WorkspaceReadOnly, "{p}");
            assert!(e.hint().unwrap().contains("\"ro\""));
            assert_eq!(e.details()["workspaceAccess"], "ro");
        }
        // Outside beats read-only: a path in no mount is PATH_OUTSIDE_ROOT even for writes.
        assert_eq!(
            t.resolve("/etc/x", Access::Write).unwrap_err().code(),
            ErrorCode::PathOutsideRoot
        );
    }

    #[test]
    fn unsandboxed_workspace_is_agent_workspace() {
        let cfg = sandbox_cfg("non-main", "agent", "ro", "");
        let t = plan(&eff(&cfg, "agent:main:main"));
        let r = t.resolve("/workspace/a", Access::Write).unwrap();
        assert_eq!(r.host_path(), PathBuf::from("/ws/a"));
        assert_eq!(
            t.resolve("/agent/a", Access::Read).unwrap_err().code(),
            ErrorCode::WorkspaceAccessDenied
        );
    }

    #[test]
    fn host_to_container() {
        let cfg = sandbox_cfg("all", "session", "session", "");
        let t = plan(&eff(&cfg, SESSION));
        let dir = t.mounts[0].host_path.clone();
        assert_eq!(
            t.to_container_path(&dir.join("x/y")),
            Some("/workspace/x/y".into())
        );
        assert_eq!(
            t.to_container_path(Path::new("/ws/A.md")),
            Some("/agent/A.md".into())
        );
        assert_eq!(t.to_container_path(Path::new("/ws")), Some("/agent".into()));
        assert_eq!(t.to_container_path(Path::new("/etc")), None);
    }

    #[test]
    fn longest_mount_wins() {
        let t = MountTable {
            sandboxed: true,
            mounts: vec![
                mount("/a".into(), "/data", false, MountKind::Bind),
                mount("/b".into(), "/data/inner", true, MountKind::Bind),
            ],
        };
        let r = t.resolve("/data/inner/f", Access::Write).unwrap();
        assert_eq!(r.host_path(), PathBuf::from("/b/f"));
        assert_eq!(
            t.resolve("/data/f", Access::Write).unwrap_err().code(),
            ErrorCode::WorkspaceReadOnly
        );
    }

    proptest::proptest! {
        /// Whatever the input, a resolved `rel` never climbs out and never is absolute.
        #[test]
        fn rel_is_always_contained(p in "[a-z./]{0,30}") {
            let cfg = sandbox_cfg("all", "session", "session", "");
            let t = plan(&eff(&cfg, SESSION));
            if let Ok(r) = t.resolve(&p, Access::Read) {
                proptest::prop_assert!(!r.rel.is_absolute());
                proptest::prop_assert!(r.rel.components().all(|c| matches!(c, std::path::Component::Normal(_))));
            }
        }
    }
}
