//! Which host uid a sandbox runs as. Never root by default: a sandbox running as root on the
//! host can leave a set-uid-root copy of an interpreter in its workspace, and any local user
//! who runs it is root.
//!
//! | carapace runs as | `docker.user` | sandbox runs as |
//! |---|---|---|
//! | root | set | that `uid[:gid]` (a name is looked up in `/etc/passwd`; Docker also takes names its image knows) |
//! | root | unset | the owner of the `/workspace` host directory when that is not root, else the `carapace-sandbox` user when `/etc/passwd` has one, else `nobody` (65534:65534) |
//! | another user | any | bwrap: carapace's own uid (in its own user namespace, as before); Docker: `docker.user`, else the owner of `/workspace` |
//!
//! carapace creates the sandbox directories it mounts at `/workspace` (`none` / `session`
//! access) owned by that uid, and as root carapace-fs gives what the file tools create there the
//! directory's owner, so the sandbox and the tools can both write everything in them.

use std::path::Path;

use carapace_fs::{ReadOptions, Root};
use serde::Serialize;

use crate::error::SandboxError;

/// The name of the dedicated sandbox user carapace uses when `/etc/passwd` has it.
pub const SANDBOX_USER_NAME: &str = "carapace-sandbox";
/// `nobody:nogroup`, the fallback.
pub const NOBODY: (u32, u32) = (65534, 65534);

/// The uid:gid a sandbox runs as, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SandboxUser {
    /// Host uid.
    pub uid: u32,
    /// Host gid.
    pub gid: u32,
    /// Why this one (for `explain`).
    pub why: String,
    /// True when carapace switches to it before starting bwrap (carapace runs as root).
    pub switch: bool,
}

/// carapace's own uid and gid.
pub fn process_ids() -> (u32, u32) {
    (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    )
}

/// Decides the sandbox user (see the module docs). `workspace_owner` is the owner of the
/// `/workspace` host directory when it exists; `passwd` the text of `/etc/passwd`.
pub fn decide(
    docker_user: Option<&str>,
    workspace_owner: Option<(u32, u32)>,
    carapace: (u32, u32),
    passwd: &str,
) -> Result<SandboxUser, SandboxError> {
    let as_root = carapace.0 == 0;
    if !as_root {
        return Ok(SandboxUser {
            uid: carapace.0,
            gid: carapace.1,
            why: "carapace's own user (carapace does not run as root)".into(),
            switch: false,
        });
    }
    if let Some(u) = docker_user {
        let (uid, gid) = parse_user(u, passwd).ok_or_else(|| SandboxError::Unenforceable {
            what: format!("sandbox user {u:?}"),
            reason: "it is neither `uid[:gid]` nor a user in /etc/passwd".into(),
            hint: "set agents.*.sandbox.docker.user to a numeric uid:gid".into(),
        })?;
        return Ok(SandboxUser {
            uid,
            gid,
            why: format!("docker.user {u:?}"),
            switch: uid != 0 || gid != 0,
        });
    }
    if let Some((uid, gid)) = workspace_owner.filter(|(u, _)| *u != 0) {
        return Ok(SandboxUser {
            uid,
            gid,
            why: "the owner of the /workspace directory".into(),
            switch: true,
        });
    }
    if let Some((uid, gid)) = lookup(SANDBOX_USER_NAME, passwd) {
        return Ok(SandboxUser {
            uid,
            gid,
            why: format!("the {SANDBOX_USER_NAME} user"),
            switch: true,
        });
    }
    Ok(SandboxUser {
        uid: NOBODY.0,
        gid: NOBODY.1,
        why: format!(
            "nobody (65534): carapace runs as root and there is no {SANDBOX_USER_NAME} user"
        ),
        switch: true,
    })
}

/// `uid`, `uid:gid` or a user name from `passwd`.
fn parse_user(u: &str, passwd: &str) -> Option<(u32, u32)> {
    let u = u.trim();
    let (a, b) = match u.split_once(':') {
        Some((a, b)) => (a, Some(b)),
        None => (u, None),
    };
    let uid_gid = match a.parse::<u32>() {
        Ok(uid) => (uid, uid),
        Err(_) => lookup(a, passwd)?,
    };
    let gid = match b {
        Some(g) => g.parse::<u32>().ok()?,
        None => uid_gid.1,
    };
    Some((uid_gid.0, gid))
}

/// The uid and primary gid of `name` in `passwd`.
fn lookup(name: &str, passwd: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 4 && f[0] == name)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .flatten()
    })
}

/// `/etc/passwd`, read through carapace-fs (empty when unreadable).
pub fn read_passwd() -> String {
    let Ok(etc) = Root::open(Path::new("/etc")) else {
        return String::new();
    };
    let opts = ReadOptions {
        max_bytes: Some(4 << 20),
        ..ReadOptions::default()
    };
    etc.read(Path::new("passwd"), &opts)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const PASSWD: &str = "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n";

    #[test]
    fn never_root_by_default() {
        let u = decide(None, Some((0, 0)), (0, 0), PASSWD).unwrap();
        assert_eq!((u.uid, u.gid), NOBODY);
        assert!(u.switch);
        let with = format!("{PASSWD}carapace-sandbox:x:990:985::/nonexistent:/bin/false\n");
        let u = decide(None, None, (0, 0), &with).unwrap();
        assert_eq!((u.uid, u.gid), (990, 985));
        let u = decide(None, Some((1000, 1000)), (0, 0), PASSWD).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        let u = decide(Some("alice"), None, (0, 0), PASSWD).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1000));
        let u = decide(Some("123:456"), None, (0, 0), PASSWD).unwrap();
        assert_eq!((u.uid, u.gid), (123, 456));
        assert!(decide(Some("nosuch"), None, (0, 0), PASSWD).is_err());
        // Not root: carapace's own user, nothing to switch.
        let u = decide(Some("123"), None, (1000, 1000), PASSWD).unwrap();
        assert_eq!((u.uid, u.gid, u.switch), (1000, 1000, false));
    }
}
