//! Validation of user `binds` (`host:container[:ro|rw]`): the one place that decides which host
//! paths may be mounted into a sandbox.

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
const SECRET_DIRS: &[&str] = &[
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

/// True when `p` is `base` or below it.
fn under(p: &str, base: &str) -> bool {
    p == base || p.strip_prefix(base).is_some_and(|r| r.starts_with('/'))
}

/// Absolute, `..`-free, with `.` and duplicate slashes removed; `None` if not acceptable.
fn normalize(p: &str) -> Option<String> {
    if !p.starts_with('/') || p.contains('\0') {
        return None;
    }
    let mut out = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => return None,
            c => out.push(c),
        }
    }
    Some(format!("/{}", out.join("/")))
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
}
