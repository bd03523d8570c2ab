//! Validation of user `binds` (`host:container[:ro|rw]`) and of how mount sources may sit
//! relative to each other: the one place that decides which host paths may be mounted into a
//! sandbox.
//!
//! Two stages, both pure:
//! - [`parse_bind`] checks the string as written (shape, absolute, no `..`, blocked system
//!   directories, credential directories, reserved targets).
//! - [`check_source`] and [`check_overlaps`] check what the host says the paths *are*: the
//!   caller (carapace-sandbox, which does the I/O) canonicalises every source, lists the
//!   protected paths of this host ([`Protected`]) and the sources every sandbox mounts
//!   ([`Source`]), and these functions decide. A source that is a symlink to `/etc`, a home
//!   directory holding `.ssh`, or a bind inside a directory some sandbox can write is refused
//!   here.

/// A parsed, validated bind.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bind {
    /// Absolute host path.
    pub host_path: String,
    /// Absolute path in the sandbox.
    pub container_path: String,
    /// Mounted read-write.
    pub writable: bool,
}

const BLOCKED_SOURCES: &[&str] = &[
    "/etc", "/proc", "/sys", "/dev", "/boot", "/root", "/run", "/var/run",
];
/// Credential directories (relative to a home directory) no bind source may lie in or contain.
pub const SECRET_DIRS: &[&str] = &[
    ".ssh",
    ".gnupg",
    ".aws",
    ".kube",
    ".docker",
    ".config/gcloud",
    ".carapace/secrets",
    ".openclaw/credentials",
];
const RESERVED_TARGETS: &[&str] = &["/workspace", "/agent", "/proc", "/sys", "/dev"];

/// Parses and validates one bind string. The error says what is wrong and why.
pub fn parse_bind(s: &str) -> Result<Bind, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let (host, container, writable) = match parts.as_slice() {
        [h, c] => (*h, *c, true),
        [h, c, "rw"] => (*h, *c, true),
        [h, c, "ro"] => (*h, *c, false),
        [_, _, m] => return Err(format!("{s:?}: mode {m:?} is not one of ro, rw")),
        _ => return Err(format!("{s:?} is not of the form host:container[:ro|rw]")),
    };
    let host = normalize(host)
        .ok_or_else(|| format!("{s:?}: host path {host:?} must be absolute and free of \"..\""))?;
    let container = normalize(container).ok_or_else(|| {
        format!("{s:?}: container path {container:?} must be absolute and free of \"..\"")
    })?;
    if host == "/" {
        return Err(format!(
            "{s:?}: mounting the host's root directory is not allowed"
        ));
    }
    if let Some(b) = BLOCKED_SOURCES.iter().find(|b| under(&host, b)) {
        return Err(format!(
            "{s:?}: host path {host} is under {b}, which is never mounted into a sandbox"
        ));
    }
    if host.ends_with("/docker.sock") || host.ends_with("/containerd.sock") {
        return Err(format!(
            "{s:?}: a container runtime socket would hand the sandbox the host"
        ));
    }
    if let Some(d) = SECRET_DIRS.iter().find(|d| host.contains(&format!("/{d}"))) {
        return Err(format!(
            "{s:?}: host path {host} holds credentials ({d}) and is never mounted"
        ));
    }
    if container == "/" {
        return Err(format!("{s:?}: the container root cannot be a bind target"));
    }
    if let Some(r) = RESERVED_TARGETS.iter().find(|r| under(&container, r)) {
        return Err(format!(
            "{s:?}: target {container} is reserved ({r} is managed by carapace)"
        ));
    }
    Ok(Bind {
        host_path: host,
        container_path: container,
        writable,
    })
}

/// A host path no bind source may contain or lie in (a credential directory, the state dir's
/// `secrets/`), with what it is, for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protected {
    /// Absolute, canonical path.
    pub path: String,
    /// What it holds ("SSH keys of /home/bob", "carapace's secrets").
    pub what: String,
}

/// Checks a bind source as the host resolves it: `canonical` is absolute, normalised and free
/// of symlinks (the caller canonicalised `written`). The rules of [`parse_bind`] apply again to
/// the real path (a link to `/etc` is refused like `/etc`), and a source may neither lie inside
/// a protected path nor contain one (a home directory holding `.ssh` exposes the keys).
pub fn check_source(written: &str, canonical: &str, protected: &[Protected]) -> Result<(), String> {
    let shown = if written == canonical {
        canonical.to_string()
    } else {
        format!("{written} (which is {canonical})")
    };
    if canonical == "/" {
        return Err(format!(
            "host path {shown} is the host's root directory, which is never mounted"
        ));
    }
    if let Some(b) = BLOCKED_SOURCES.iter().find(|b| under(canonical, b)) {
        return Err(format!(
            "host path {shown} is under {b}, which is never mounted into a sandbox"
        ));
    }
    if canonical.ends_with("/docker.sock") || canonical.ends_with("/containerd.sock") {
        return Err(format!(
            "host path {shown} is a container runtime socket, which would hand the sandbox the host"
        ));
    }
    if let Some(d) = SECRET_DIRS
        .iter()
        .find(|d| canonical.contains(&format!("/{d}/")) || canonical.ends_with(&format!("/{d}")))
    {
        return Err(format!(
            "host path {shown} holds credentials ({d}) and is never mounted"
        ));
    }
    for p in protected {
        if under(canonical, &p.path) {
            return Err(format!(
                "host path {shown} is inside {} ({}), which is never mounted",
                p.path, p.what
            ));
        }
        if under(&p.path, canonical) {
            return Err(format!(
                "host path {shown} contains {} ({}); mount a directory that does not",
                p.path, p.what
            ));
        }
    }
    Ok(())
}

/// What a mount source is, for [`check_overlaps`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A user bind.
    Bind,
    /// An agent workspace (`/agent`, or `/workspace` with `rw`).
    AgentWorkspace,
    /// A `workspaceRoot`: every directory directly below it is some session's `/workspace`.
    WorkspaceRoot,
}

/// One mount source some sandbox of this configuration uses, as the host resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// Absolute, canonical path.
    pub path: String,
    /// Whether some sandbox can write beneath it (a `rw` bind, an agent workspace with `rw`
    /// access, always for a workspace root — below it).
    pub writable: bool,
    /// What it is.
    pub kind: SourceKind,
    /// The config key it comes from (`agents.defaults.sandbox.docker.binds[0]`).
    pub key: String,
}

/// A refused arrangement of mount sources: the key of the offending source and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overlap {
    /// Config key of the source that is refused.
    pub key: String,
    /// Why.
    pub message: String,
}

/// Refuses mount sources a sandbox could swap, and binds that expose what sandboxes write:
///
/// 1. No mount source lies strictly inside a directory some sandbox can write: code there
///    could replace it (or one of its parents) with a symlink to `/`, and the next mount would
///    follow. The directories mounted below a workspace root are its children, so a workspace
///    root inside a writable directory is refused too, and a bind into some session's
///    `/workspace` is.
/// 2. No bind contains a directory sandboxes write: it would show other sessions' workspaces,
///    and let what a read-only bind shows be changed from another sandbox.
///
/// The same directory used twice (the `rw` workspace also shown as `/agent` to another
/// channel) is fine: a sandbox cannot replace the directory it is mounted on.
pub fn check_overlaps(sources: &[Source]) -> Result<(), Overlap> {
    for (i, s) in sources.iter().enumerate() {
        for (j, w) in sources.iter().enumerate() {
            if i == j || !w.writable {
                continue;
            }
            // Rule 1: where s's mount points are (a root's are its children) vs w's region.
            let inside = match (s.kind, w.kind) {
                (SourceKind::WorkspaceRoot, SourceKind::WorkspaceRoot) => {
                    strictly_under(&s.path, &w.path)
                }
                (SourceKind::WorkspaceRoot, _) => under(&s.path, &w.path),
                (_, SourceKind::WorkspaceRoot) => depth_below(&s.path, &w.path) >= Some(2),
                _ => strictly_under(&s.path, &w.path),
            };
            let into_a_workspace = s.kind == SourceKind::Bind
                && w.kind == SourceKind::WorkspaceRoot
                && depth_below(&s.path, &w.path) == Some(1);
            if inside || into_a_workspace {
                return Err(Overlap {
                    key: s.key.clone(),
                    message: format!(
                        "{} lies inside {} ({}), which sandboxes can write: code in a sandbox could replace it with a symlink, and the next mount would follow the link",
                        s.path, w.path, w.key
                    ),
                });
            }
            // Rule 2: a bind containing w's writable region.
            let contains = s.kind == SourceKind::Bind
                && match w.kind {
                    SourceKind::WorkspaceRoot => under(&w.path, &s.path),
                    _ => strictly_under(&w.path, &s.path),
                };
            if contains {
                return Err(Overlap {
                    key: s.key.clone(),
                    message: format!(
                        "the bind source {} contains {} ({}), which sandboxes write; bind a directory that does not",
                        s.path, w.path, w.key
                    ),
                });
            }
        }
    }
    Ok(())
}

/// How many components `p` lies below `base` (`Some(0)`: the same path), `None` if not below.
fn depth_below(p: &str, base: &str) -> Option<usize> {
    if !under(p, base) {
        return None;
    }
    let rest = if base == "/" {
        &p[1..]
    } else {
        &p[base.len()..]
    };
    Some(rest.split('/').filter(|c| !c.is_empty()).count())
}

/// True when `p` is strictly below `base`.
fn strictly_under(p: &str, base: &str) -> bool {
    p != base && under(p, base)
}

/// True when `p` is `base` or below it.
fn under(p: &str, base: &str) -> bool {
    if base == "/" {
        return p.starts_with('/');
    }
    p == base || p.strip_prefix(base).is_some_and(|r| r.starts_with('/'))
}

/// Binds are operator paths that must not climb: [`crate::lexical::absolute_strict`].
fn normalize(p: &str) -> Option<String> {
    crate::lexical::absolute_strict(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_refuses() {
        assert_eq!(
            parse_bind("/srv/data:/data:ro"),
            Ok(Bind {
                host_path: "/srv/data".into(),
                container_path: "/data".into(),
                writable: false
            })
        );
        assert!(parse_bind("/srv//data/./x:/d").is_ok());
        for bad in [
            "/etc:/x",
            "/etc/passwd:/x:ro",
            "/proc/1:/p",
            "/var/run/docker.sock:/s",
            "/home/u/.ssh:/k",
            "/srv:/workspace",
            "/srv:/agent/x",
            "rel:/x",
            "/srv/../etc:/x",
            "/srv:/x:rx",
            "/:/host",
            "/srv",
            "/a:/b:ro:x",
            "/srv:/",
            "/run/containerd/containerd.sock:/c",
        ] {
            assert!(parse_bind(bad).is_err(), "{bad} accepted");
        }
    }

    fn protected() -> Vec<Protected> {
        vec![
            Protected {
                path: "/home/bob/.ssh".into(),
                what: "SSH keys".into(),
            },
            Protected {
                path: "/srv/state/secrets".into(),
                what: "carapace's secrets".into(),
            },
        ]
    }

    #[test]
    fn sources_are_checked_as_the_host_resolves_them() {
        let p = protected();
        assert!(check_source("/srv/data", "/srv/data", &p).is_ok());
        // A symlink to /etc is /etc.
        let e = check_source("/srv/etc-link", "/etc", &p).unwrap_err();
        assert!(e.contains("/srv/etc-link (which is /etc)"), "{e}");
        assert!(check_source("/srv/root-link", "/", &p).is_err());
        // A home directory holding .ssh, and its parent.
        let e = check_source("/home/bob", "/home/bob", &p).unwrap_err();
        assert!(e.contains("contains /home/bob/.ssh"), "{e}");
        assert!(check_source("/home", "/home", &p).is_err());
        assert!(check_source("/home/bob/.ssh/keys", "/home/bob/.ssh/keys", &p).is_err());
        // A state dir outside ~/.carapace still holds the gateway token.
        assert!(check_source("/srv/state", "/srv/state", &p).is_err());
        assert!(check_source("/srv/state/media", "/srv/state/media", &p).is_ok());
        assert!(check_source("/x", "/home/alice/.aws", &p).is_err());
        assert!(check_source("/x", "/var/run/docker.sock", &p).is_err());
        assert!(check_source("/srv/sshy", "/srv/sshy", &p).is_ok());
    }

    fn src(path: &str, writable: bool, kind: SourceKind, key: &str) -> Source {
        Source {
            path: path.into(),
            writable,
            kind,
            key: key.into(),
        }
    }

    #[test]
    fn overlaps() {
        use SourceKind::*;
        let root = src("/s/sandboxes", true, WorkspaceRoot, "root");
        let ws_rw = src("/s/ws", true, AgentWorkspace, "ws");
        let ws_ro = src("/s/ws", false, AgentWorkspace, "ws");
        let ok = |v: Vec<Source>| check_overlaps(&v).map_err(|e| e.message);
        assert!(
            ok(vec![
                root.clone(),
                ws_rw.clone(),
                src("/srv/d", false, Bind, "b")
            ])
            .is_ok()
        );
        // A bind inside the rw workspace: the escape.
        let e = check_overlaps(&[ws_rw.clone(), src("/s/ws/sub", false, Bind, "b")]).unwrap_err();
        assert_eq!(e.key, "b");
        assert!(e.message.contains("inside /s/ws"), "{}", e.message);
        // ... fine when nothing can write the workspace.
        assert!(ok(vec![ws_ro.clone(), src("/s/ws/sub", false, Bind, "b")]).is_ok());
        // A bind inside a writable bind; a writable bind inside a read-only bind.
        assert!(
            ok(vec![
                src("/d", true, Bind, "a"),
                src("/d/x", false, Bind, "b")
            ])
            .is_err()
        );
        let e = check_overlaps(&[src("/d", false, Bind, "a"), src("/d/x", true, Bind, "b")])
            .unwrap_err();
        assert_eq!(e.key, "a");
        // The same directory twice is fine.
        assert!(
            ok(vec![
                src("/d", true, Bind, "a"),
                src("/d", false, Bind, "b")
            ])
            .is_ok()
        );
        assert!(ok(vec![ws_rw.clone(), ws_ro.clone()]).is_ok());
        // Into some session's /workspace, or deeper.
        assert!(
            ok(vec![
                root.clone(),
                src("/s/sandboxes/agent-main-1234abcd", false, Bind, "b")
            ])
            .is_err()
        );
        assert!(
            ok(vec![
                root.clone(),
                src("/s/sandboxes/x/y", false, Bind, "b")
            ])
            .is_err()
        );
        // A bind exposing the workspace root (every session's directory).
        assert!(ok(vec![root.clone(), src("/s", false, Bind, "b")]).is_err());
        assert!(ok(vec![root.clone(), src("/s/sandboxes", false, Bind, "b")]).is_err());
        // A workspace root inside (or equal to) an rw workspace: its sessions' dirs could be
        // swapped by that sandbox.
        assert!(
            ok(vec![
                src("/s/ws/sbx", true, WorkspaceRoot, "r"),
                ws_rw.clone()
            ])
            .is_err()
        );
        assert!(ok(vec![src("/s/ws", true, WorkspaceRoot, "r"), ws_rw.clone()]).is_err());
        // Another agent's workspace inside an rw workspace, or inside a session's directory.
        assert!(
            ok(vec![
                ws_rw.clone(),
                src("/s/ws/research", false, AgentWorkspace, "r")
            ])
            .is_err()
        );
        assert!(
            ok(vec![
                root.clone(),
                src("/s/sandboxes/a/ws", false, AgentWorkspace, "r")
            ])
            .is_err()
        );
        // Two layers naming the same workspace root.
        assert!(ok(vec![root.clone(), root.clone()]).is_ok());
        assert_eq!(depth_below("/a/b/c", "/a"), Some(2));
        assert_eq!(depth_below("/a", "/a"), Some(0));
        assert_eq!(depth_below("/ab", "/a"), None);
        assert_eq!(depth_below("/x/y", "/"), Some(2));
    }
}
