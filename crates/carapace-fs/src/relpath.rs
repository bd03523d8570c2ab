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

/// True when `path` can be handed to the kernel as is: non-empty, relative, no `.` or `..`
/// component, no NUL, no trailing slash, shorter than `PATH_MAX`. (`std` drops `.` and trailing
/// slashes — `link/.` is `link` — while the kernel would follow `link`; such paths take the
/// component route so both resolvers mean the same thing.) Allocation-free; used by the
/// hot paths to skip [`components`].
pub(crate) fn is_plain(path: &Path) -> bool {
    let b = path.as_os_str().as_bytes();
    !b.is_empty()
        && b.len() < PATH_MAX
        && b[0] != b'/'
        && b[b.len() - 1] != b'/'
        && !b.contains(&0)
        && !b
            .split(|c| *c == b'/')
            .any(|seg| seg == b".." || seg == b".")
}

/// True for a plain path of one normal component (no `/`, not `.`).
pub(crate) fn is_single_name(path: &Path) -> bool {
    let b = path.as_os_str().as_bytes();
    is_plain(path) && b != b"." && !b.contains(&b'/')
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
        for ok in ["a", "a/b", "a//b", "...", "a..b", "..a", ".a"] {
            assert!(is_plain(Path::new(ok)), "{ok}");
        }
        for bad in [
            "", "/a", "a/", "..", "a/..", "../a", "a/../b", ".", "a/.", "a/./b",
        ] {
            assert!(!is_plain(Path::new(bad)), "{bad}");
        }
        assert!(is_single_name(Path::new("a.txt")));
        assert!(!is_single_name(Path::new(".")));
        assert!(!is_single_name(Path::new("a/b")));
    }
}
