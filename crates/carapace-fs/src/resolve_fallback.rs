//! Component-by-component resolution for kernels without `openat2` (or when forced).
//!
//! Every component is opened with `openat(O_PATH | O_NOFOLLOW)` relative to the directory fd of
//! the previous one, so nothing is ever looked up by a path the kernel could resolve outside.
//! A symlink is read through its own fd and its target is walked the same way: an absolute
//! target is an escape, `..` pops the stack of directory fds we hold and popping past the root
//! is an escape. We never `openat("..")`, so a directory moved out from under us cannot take
//! the walk with it. `/proc` magic links are symlinks to `lstat` and their targets are absolute
//! (or not walkable), so they are refused like any other.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::resolve::Denied;

/// Linux's own limit on symlinks followed in one lookup.
const MAX_LINKS: u32 = 40;

/// See [`crate::resolve::open`].
pub(crate) fn open(
    root: BorrowedFd<'_>,
    comps: &[&OsStr],
    oflags: OFlags,
    follow_final: bool,
) -> Result<OwnedFd, Denied> {
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut queue: VecDeque<OsString> = comps.iter().map(|c| c.to_os_string()).collect();
    let mut links = 0u32;
    let final_flags = oflags | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let step_flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;

    while let Some(comp) = queue.pop_front() {
        let last = queue.is_empty();
        let cur = stack.last().map_or(root, |f| f.as_fd());
        if comp.as_bytes() == b"." || comp.is_empty() {
            continue;
        }
        if comp.as_bytes() == b".." {
            if stack.pop().is_none() {
                return Err(Denied::Escape("`..` in a symlink leads above the root"));
            }
            continue;
        }
        if last {
            match rustix::fs::openat(cur, &comp, final_flags, Mode::empty()) {
                Ok(fd) => {
                    // O_PATH | O_NOFOLLOW hands back the link itself.
                    if follow_final && oflags.contains(OFlags::PATH) && is_symlink_fd(&fd) {
                        let target = readlink(fd.as_fd(), OsStr::new(""))?;
                        push_target(&mut queue, target, &mut links)?;
                        continue;
                    }
                    return Ok(fd);
                }
                Err(e @ (Errno::LOOP | Errno::NOTDIR)) => {
                    let is_link = rustix::fs::statat(cur, &comp, AtFlags::SYMLINK_NOFOLLOW)
                        .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
                        .unwrap_or(false);
                    if !is_link {
                        return Err(Denied::Errno(e));
                    }
                    if !follow_final {
                        return Err(Denied::Symlink);
                    }
                    let target = readlink(cur, &comp)?;
                    push_target(&mut queue, target, &mut links)?;
                    continue;
                }
                Err(e) => return Err(Denied::Errno(e)),
            }
        }
        let fd =
            rustix::fs::openat(cur, &comp, step_flags, Mode::empty()).map_err(Denied::Errno)?;
        let st = rustix::fs::fstat(&fd).map_err(Denied::Errno)?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => stack.push(fd),
            FileType::Symlink => {
                let target = readlink(fd.as_fd(), OsStr::new(""))?;
                push_target(&mut queue, target, &mut links)?;
            }
            _ => return Err(Denied::Errno(Errno::NOTDIR)),
        }
    }
    // The walk ended on `.`/`..` or had no components: open the directory we are in.
    let cur = stack.last().map_or(root, |f| f.as_fd());
    rustix::fs::openat(cur, ".", oflags | OFlags::CLOEXEC, Mode::empty()).map_err(Denied::Errno)
}

fn is_symlink_fd(fd: &OwnedFd) -> bool {
    rustix::fs::fstat(fd)
        .map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
        .unwrap_or(false)
}

fn readlink(dir: BorrowedFd<'_>, name: &OsStr) -> Result<OsString, Denied> {
    rustix::fs::readlinkat(dir, name, Vec::new())
        .map(|c| OsString::from_vec(c.into_bytes()))
        .map_err(Denied::Errno)
}

/// Puts a link's target in front of the remaining components.
fn push_target(
    queue: &mut VecDeque<OsString>,
    target: OsString,
    links: &mut u32,
) -> Result<(), Denied> {
    *links += 1;
    if *links > MAX_LINKS {
        return Err(Denied::Escape(
            "too many levels of symlinks, or a /proc magic link",
        ));
    }
    let bytes = target.as_bytes();
    if bytes.is_empty() {
        return Err(Denied::Errno(Errno::NOENT));
    }
    if bytes[0] == b'/' {
        return Err(Denied::Escape("a symlink points to an absolute path"));
    }
    for part in bytes.split(|b| *b == b'/').rev() {
        if !part.is_empty() {
            queue.push_front(OsStr::from_bytes(part).to_os_string());
        }
    }
    Ok(())
}
