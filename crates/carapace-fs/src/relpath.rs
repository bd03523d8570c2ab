//! Lexical checks on the path a caller gives, before any syscall: it must be relative, without
//! `..`, without NUL bytes, and of sane length. What the kernel must decide (symlinks) is left to
//! the resolvers.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Longest path accepted (Linux `PATH_MAX`).
pub(crate) const PATH_MAX: usize = 4096;

/// Why a path was refused before any syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lexical {
    /// A NUL byte.
    Nul,
    /// Longer than `PATH_MAX`.
    TooLong,
    /// Starts with `/`.
    Absolute,
    /// Contains a `..` component.
    DotDot,
}

/// The normal components of `path` (`.` and repeated slashes dropped).
pub(crate) fn components(path: &Path) -> Result<Vec<&OsStr>, Lexical> {
    let bytes = path.as_os_str().as_bytes();
    if bytes.contains(&0) {
        return Err(Lexical::Nul);
    }
    if bytes.len() >= PATH_MAX {
        return Err(Lexical::TooLong);
    }
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err(Lexical::DotDot),
            Component::RootDir | Component::Prefix(_) => return Err(Lexical::Absolute),
        }
    }
    Ok(out)
}

/// The components joined back with `/` (`.` for none): what `openat2` is given.
pub(crate) fn joined(comps: &[&OsStr]) -> PathBuf {
    if comps.is_empty() {
        return PathBuf::from(".");
    }
    let mut p = PathBuf::with_capacity(comps.iter().map(|c| c.len() + 1).sum());
    for c in comps {
        p.push(c);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical() {
        assert_eq!(
            components(Path::new("a/./b//c")).ok().map(|v| v.len()),
            Some(3)
        );
        assert_eq!(components(Path::new("")).ok().map(|v| v.len()), Some(0));
        assert_eq!(components(Path::new("/etc")), Err(Lexical::Absolute));
        assert_eq!(components(Path::new("a/../b")), Err(Lexical::DotDot));
        assert_eq!(components(Path::new("..")), Err(Lexical::DotDot));
        assert_eq!(
            components(Path::new(OsStr::from_bytes(b"a\0b"))),
            Err(Lexical::Nul)
        );
        assert_eq!(
            components(Path::new(&"a/".repeat(3000))),
            Err(Lexical::TooLong)
        );
        assert_eq!(joined(&[]), PathBuf::from("."));
    }
}
