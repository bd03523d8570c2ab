//! Lexical path normalisation: the one home of each meaning `..` can have in a path carapace
//! is given as text. Pure string work, no filesystem access.
//!
//! - [`absolute_strict`]: an operator's host or container path that must not climb (`binds`):
//!   absolute, and `..` anywhere refuses the whole path.
//! - [`container_path`]: an agent's path inside the sandbox view: relative paths are under
//!   `/workspace`, `..` is resolved as the shell would (`..` at `/` stays at `/`); containment
//!   is then decided by the mount table, not here.
//!
//! Both drop `.` and empty components and refuse a NUL byte.

/// Absolute, `..`-free, with `.` and duplicate slashes removed; `None` if `p` is relative,
/// contains `..` or a NUL byte.
pub fn absolute_strict(p: &str) -> Option<String> {
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

/// An absolute container path: relative paths are under `base` (`/workspace`); `.`, empty
/// components and `..` are resolved (`..` at `/` stays at `/`). `None` for a NUL byte.
pub fn container_path(path: &str, base: &str) -> Option<String> {
    if path.contains('\0') {
        return None;
    }
    let full = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("{base}/{path}")
    };
    let mut out: Vec<&str> = Vec::new();
    for c in full.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    Some(format!("/{}", out.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_meanings_of_dotdot() {
        assert_eq!(
            absolute_strict("/srv//./data/").as_deref(),
            Some("/srv/data")
        );
        assert_eq!(absolute_strict("/srv/../etc"), None);
        assert_eq!(absolute_strict("srv"), None);
        assert_eq!(absolute_strict("/a\0b"), None);
        assert_eq!(
            container_path("a/../b", "/workspace").as_deref(),
            Some("/workspace/b")
        );
        assert_eq!(
            container_path("/workspace/../../etc", "/workspace").as_deref(),
            Some("/etc")
        );
        assert_eq!(container_path("/..", "/workspace").as_deref(), Some("/"));
        assert_eq!(container_path("a\0", "/workspace"), None);
    }
}
