//! What `carapace sandbox explain` says about a sandbox's user and limits, from the policy and
//! this host (no directory is created, nothing is run).

use std::time::Duration;

use carapace_policy::EffectiveSandbox;
use carapace_policy::limits::{Limits, human_bytes};
use carapace_policy::mounts::MountTable;

use crate::backend::BackendKind;
use crate::limits::Enforcement;

/// The host user the sandbox runs as, and why (one line).
pub fn user_line(eff: &EffectiveSandbox, table: &MountTable, backend: BackendKind) -> String {
    use std::os::unix::fs::MetadataExt;
    let me = crate::user::process_ids();
    if backend == BackendKind::Docker
        && let Some(u) = &eff.docker.user
    {
        return format!("{u} (docker.user)");
    }
    let owner = table
        .workspace()
        .filter(|m| m.host_path != eff.sandbox_dir)
        .and_then(|m| std::fs::metadata(&m.host_path).ok())
        .map(|m| (m.uid(), m.gid()));
    let passwd = crate::user::read_passwd();
    let decided = crate::user::decide(eff.docker.user.as_deref(), owner, me, &passwd)
        .or_else(|_| crate::user::decide(None, owner, me, &passwd));
    match decided {
        Ok(u) => {
            let mut line = format!("{}:{} — {}", u.uid, u.gid, u.why);
            let ws = table.workspace();
            let rw_root_owned = ws.is_some_and(|m| m.writable && m.host_path != eff.sandbox_dir)
                && me.0 == 0
                && std::fs::metadata(ws.map(|m| m.host_path.clone()).unwrap_or_default())
                    .is_ok_and(|m| m.uid() == 0);
            if rw_root_owned {
                line.push_str("; the rw agent workspace belongs to root, so the sandbox cannot write it: give it to the user the sandbox should write as (chown), or set docker.user");
            }
            line
        }
        Err(e) => format!("cannot be decided: {e}"),
    }
}

/// The limits that apply and how they are enforced, one line each.
pub fn limit_lines(eff: &EffectiveSandbox, backend: BackendKind, timeout: Duration) -> Vec<String> {
    let limits = Limits::of(&eff.docker);
    let src = |c: bool| if c { "configured" } else { "default" };
    match backend {
        BackendKind::Docker => {
            let mut v = vec!["enforced by the Docker engine (the container's cgroup)".to_string()];
            v.push(match limits.pids.value {
                Some(p) => format!("PidsLimit {p} ({})", src(limits.pids.configured)),
                None => "pids: unlimited (pidsLimit 0 or less)".into(),
            });
            if let Some(m) = limits.memory_bytes.value {
                v.push(format!(
                    "Memory {} ({})",
                    human_bytes(m),
                    src(limits.memory_bytes.configured)
                ));
            }
            if let Some(c) = limits.cpus.value {
                v.push(format!(
                    "NanoCpus {c} CPUs ({})",
                    src(limits.cpus.configured)
                ));
            }
            v
        }
        BackendKind::Bwrap => {
            let switched = crate::user::process_ids().0 == 0;
            Enforcement::get().describe(&limits, timeout, switched)
        }
        BackendKind::HostUnsandboxed => {
            vec!["none: exec runs on the host, unsandboxed (only the exec timeout applies)".into()]
        }
    }
}
