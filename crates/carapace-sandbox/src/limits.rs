//! How a bwrap sandbox's limits (`docker.pidsLimit`, `memory`, `cpus`; see
//! `carapace_policy::limits`) are enforced on this host, and applying them to one sandbox.
//!
//! bwrap is started with `--info-fd` and `--block-fd`: it sets up its namespaces, reports the
//! pid of the sandbox's first process and waits. carapace applies the limits to that process
//! before letting it go on, so every process of the sandbox is born under them (no window in
//! which a fork escapes).
//!
//! - **cgroup v2** when carapace's own cgroup has the `pids`, `memory` and `cpu` controllers
//!   and is delegated to it (a systemd unit with `Delegate=yes`, or `systemd-run --scope -p
//!   Delegate=yes carapace …`): carapace moves itself into a leaf `carapace/` of its cgroup,
//!   enables the controllers for its children, and gives each sandbox a child cgroup
//!   `sbx-<id>` with `pids.max`, `memory.max` (and `memory.swap.max` 0) and `cpu.max`, removed
//!   when the command ends. Limits hold for the sandbox as a whole.
//! - **rlimits** otherwise (no cgroup v2, controllers not delegated, other processes sharing
//!   carapace's cgroup): `RLIMIT_NPROC` = pidsLimit — when carapace runs as root, counted for
//!   the sandbox user across its sandboxes; otherwise per sandbox (Linux ≥ 5.14 counts it per
//!   user namespace, and every unprivileged bwrap sandbox has its own); `RLIMIT_DATA` = memory, per
//!   process (heap and private writable mappings: a runtime's address-space reservations do
//!   not count, which is why not `RLIMIT_AS`); `RLIMIT_CPU` = cpus × the command's timeout, in
//!   CPU-seconds per process; and a nice value of 10, so the gateway keeps its share of the CPU.
//!   The sandbox's `/tmp` is sized to the memory limit in both modes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use carapace_policy::limits::{Limits, human_bytes};
use serde::Serialize;

use crate::error::SandboxError;

/// Controllers the cgroup mode needs.
const CONTROLLERS: [&str; 3] = ["pids", "memory", "cpu"];
/// Nice value of sandboxed processes in rlimit mode.
pub const NICE: i32 = 10;
/// `cpu.max` period, µs.
const CPU_PERIOD_US: u64 = 100_000;

/// How this host enforces bwrap limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "mechanism", rename_all = "camelCase")]
pub enum Enforcement {
    /// Child cgroups of `base` (cgroup v2).
    #[serde(rename_all = "camelCase")]
    Cgroup {
        /// carapace's delegated cgroup directory.
        base: PathBuf,
    },
    /// Per-process rlimits, because of `reason`.
    #[serde(rename_all = "camelCase")]
    Rlimits {
        /// Why not cgroups.
        reason: String,
        /// `RLIMIT_NPROC` is counted per user namespace (Linux ≥ 5.14).
        nproc_per_sandbox: bool,
    },
}

impl Enforcement {
    /// The process-wide answer (carapace's own cgroup is a fact about the process: detected,
    /// and if possible set up, once).
    pub fn get() -> &'static Enforcement {
        static E: std::sync::OnceLock<Enforcement> = std::sync::OnceLock::new();
        E.get_or_init(|| detect(Path::new("/proc/self")))
    }

    /// What applies to a sandbox with `limits` and `timeout`, one line per limit (for
    /// `explain` and the docs).
    pub fn describe(&self, limits: &Limits, timeout: Duration, switched: bool) -> Vec<String> {
        let src = |c: bool| if c { "configured" } else { "default" };
        let mut v = Vec::new();
        match self {
            Enforcement::Cgroup { base } => {
                v.push(format!(
                    "cgroup v2, one child cgroup per command under {}",
                    base.display()
                ));
                v.push(match limits.pids.value {
                    Some(p) => format!("pids.max {p} ({})", src(limits.pids.configured)),
                    None => "pids: unlimited (pidsLimit 0 or less)".into(),
                });
                if let Some(m) = limits.memory_bytes.value {
                    v.push(format!(
                        "memory.max {} ({}), swap 0, /tmp at most {}",
                        human_bytes(m),
                        src(limits.memory_bytes.configured),
                        human_bytes(m)
                    ));
                }
                if let Some(c) = limits.cpus.value {
                    v.push(format!(
                        "cpu.max {c} CPUs ({})",
                        src(limits.cpus.configured)
                    ));
                }
            }
            Enforcement::Rlimits {
                reason,
                nproc_per_sandbox,
            } => {
                v.push(format!("rlimits (no cgroup v2 for carapace: {reason})"));
                v.push(match limits.pids.value {
                    Some(p) if switched => format!(
                        "RLIMIT_NPROC {p} ({}): processes and threads of the sandbox user, counted across all sandboxes running as it at once",
                        src(limits.pids.configured)
                    ),
                    Some(p) if *nproc_per_sandbox => format!(
                        "RLIMIT_NPROC {p} ({}): processes and threads of this sandbox (its own user namespace)",
                        src(limits.pids.configured)
                    ),
                    Some(_) => "pids: NOT enforced (RLIMIT_NPROC would count all of carapace's own processes on this kernel; Linux 5.14 counts it per sandbox)".into(),
                    None => "pids: unlimited (pidsLimit 0 or less)".into(),
                });
                if let Some(m) = limits.memory_bytes.value {
                    v.push(format!(
                        "RLIMIT_DATA {} ({}) per process (not for the sandbox as a whole), /tmp at most {}",
                        human_bytes(m),
                        src(limits.memory_bytes.configured),
                        human_bytes(m)
                    ));
                }
                if let Some(c) = limits.cpus.value {
                    v.push(format!(
                        "RLIMIT_CPU {} CPU-seconds per process (cpus {c} × timeout {} s, {}), nice {NICE}; the CPU share itself is not capped",
                        cpu_seconds(c, timeout),
                        timeout.as_secs(),
                        src(limits.cpus.configured)
                    ));
                }
            }
        }
        v
    }
}

/// CPU-seconds a process may use: `cpus × timeout`, at least 1.
pub fn cpu_seconds(cpus: f64, timeout: Duration) -> u64 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let s = (cpus * timeout.as_secs_f64()).ceil() as u64;
    s.max(1)
}

/// The `cpu.max` line of `cpus`.
pub fn cpu_max(cpus: f64) -> String {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let quota = ((cpus * CPU_PERIOD_US as f64).round() as u64).max(1000);
    format!("{quota} {CPU_PERIOD_US}")
}

/// True when `RLIMIT_NPROC` is counted per user namespace (Linux ≥ 5.14).
fn nproc_per_userns(release: &str) -> bool {
    let mut it = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<u32>().unwrap_or(0));
    let (maj, min) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    (maj, min) >= (5, 14)
}

fn rlimits(reason: impl Into<String>) -> Enforcement {
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    Enforcement::Rlimits {
        reason: reason.into(),
        nproc_per_sandbox: nproc_per_userns(&release),
    }
}

/// Finds carapace's cgroup v2 directory from `<proc>/cgroup` and `<proc>/mountinfo`.
pub fn own_cgroup(cgroup: &str, mountinfo: &str) -> Option<PathBuf> {
    let path = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))?
        .trim()
        .to_string();
    for l in mountinfo.lines() {
        let (pre, post) = l.split_once(" - ")?;
        if !post.starts_with("cgroup2 ") {
            continue;
        }
        let f: Vec<&str> = pre.split(' ').collect();
        let (root, mnt) = (f.get(3)?, f.get(4)?);
        let rel = if *root == "/" {
            path.as_str()
        } else {
            path.strip_prefix(root)?
        };
        let mut dir = PathBuf::from(mnt);
        for c in rel.split('/').filter(|c| !c.is_empty()) {
            dir.push(c);
        }
        return Some(dir);
    }
    None
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

fn write(p: &Path, s: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(p)?
        .write_all(s.as_bytes())
}

/// Detects (and sets up) the cgroup mode; else rlimits with the reason.
fn detect(proc_self: &Path) -> Enforcement {
    let Some(own) = own_cgroup(
        &read(&proc_self.join("cgroup")),
        &read(&proc_self.join("mountinfo")),
    ) else {
        return rlimits("cgroup v2 is not mounted");
    };
    match delegate(&own, std::process::id()) {
        Ok(base) => Enforcement::Cgroup { base },
        Err(reason) => rlimits(reason),
    }
}

/// Makes `own` (carapace's cgroup) hand the controllers to children: carapace moves itself
/// into the leaf `own/carapace`, then enables the controllers in `own`. Already done (by an
/// earlier process image): `own` is that leaf.
pub fn delegate(own: &Path, pid: u32) -> Result<PathBuf, String> {
    let has_all = |dir: &Path, file: &str| {
        let text = read(&dir.join(file));
        let have: Vec<&str> = text.split_whitespace().collect();
        CONTROLLERS.iter().all(|c| have.contains(c))
    };
    if own.file_name().is_some_and(|n| n == "carapace")
        && let Some(parent) = own.parent()
        && has_all(parent, "cgroup.subtree_control")
    {
        return Ok(parent.to_path_buf());
    }
    if !has_all(own, "cgroup.controllers") {
        return Err(format!(
            "carapace's cgroup {} does not have the pids, memory and cpu controllers",
            own.display()
        ));
    }
    let leaf = own.join("carapace");
    match std::fs::create_dir(&leaf) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(format!(
                "carapace's cgroup {} is not writable by it ({e})",
                own.display()
            ));
        }
    }
    if let Err(e) = write(&leaf.join("cgroup.procs"), &pid.to_string()) {
        return Err(format!(
            "cannot move carapace into {} ({e})",
            leaf.display()
        ));
    }
    if let Err(e) = write(&own.join("cgroup.subtree_control"), "+pids +memory +cpu") {
        let _ = write(&own.join("cgroup.procs"), &pid.to_string());
        return Err(format!(
            "cannot enable controllers in {}: other processes share carapace's cgroup ({e})",
            own.display()
        ));
    }
    Ok(own.to_path_buf())
}

/// One sandbox's cgroup; removed on [`SandboxCgroup::remove`] (killing what is left).
#[derive(Debug)]
pub struct SandboxCgroup {
    dir: PathBuf,
}

impl SandboxCgroup {
    /// Creates `base/sbx-<id>` with the limits written.
    pub fn create(base: &Path, limits: &Limits) -> Result<SandboxCgroup, SandboxError> {
        let dir = base.join(format!("sbx-{}", uuid::Uuid::new_v4().simple()));
        let shown = dir.display().to_string();
        let fail = |what: &str, e: std::io::Error| SandboxError::Unenforceable {
            what: format!("sandbox {what}"),
            reason: format!("cgroup {shown}: {e}"),
            hint: "check that carapace's cgroup is still delegated to it".into(),
        };
        std::fs::create_dir(&dir).map_err(|e| fail("cgroup", e))?;
        let cg = SandboxCgroup { dir };
        if let Some(p) = limits.pids.value {
            write(&cg.dir.join("pids.max"), &p.to_string()).map_err(|e| fail("pidsLimit", e))?;
        }
        if let Some(m) = limits.memory_bytes.value {
            write(&cg.dir.join("memory.max"), &m.to_string()).map_err(|e| fail("memory", e))?;
            // Without swap accounting the file is absent; the limit still holds for RAM.
            let _ = write(&cg.dir.join("memory.swap.max"), "0");
        }
        if let Some(c) = limits.cpus.value {
            write(&cg.dir.join("cpu.max"), &cpu_max(c)).map_err(|e| fail("cpus", e))?;
        }
        Ok(cg)
    }

    /// Moves `pid` (the sandbox's first process, still blocked) into the cgroup.
    pub fn add(&self, pid: u32) -> Result<(), SandboxError> {
        write(&self.dir.join("cgroup.procs"), &pid.to_string()).map_err(|e| {
            SandboxError::Unenforceable {
                what: "sandbox cgroup".into(),
                reason: format!("cannot move the sandbox into {}: {e}", self.dir.display()),
                hint: "check that carapace's cgroup is still delegated to it".into(),
            }
        })
    }

    /// Kills what is left and removes the cgroup (retrying while the last processes exit).
    pub async fn remove(self) {
        let _ = write(&self.dir.join("cgroup.kill"), "1");
        for _ in 0..50 {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        tracing::warn!("cannot remove the sandbox cgroup {}", self.dir.display());
    }
}

/// The shell text that puts a sandbox under its rlimits, run by a non-login `sh -c` inside
/// the sandbox **before** the login shell that runs the command (so a planted
/// `/workspace/.profile` cannot run before them). Hard and soft limits both: an unprivileged
/// process cannot raise a hard limit again. `ulimit` without `-H`/`-S` sets both; `-u` (bash, zsh, ksh) or `-p` (dash) for
/// processes; `-d` (KiB) for data; `-t` (seconds) for CPU time. Any failure exits 126 before
/// the command runs.
pub fn shell_limits(limits: &Limits, timeout: Duration, nproc: bool) -> String {
    // `l FLAG N`: set soft and hard limits to N; fine if the hard limit is already lower.
    let mut s = String::from(
        "l() { ulimit \"$1\" \"$2\" 2>/dev/null || { h=$(ulimit -H \"$1\" 2>/dev/null) && [ \"$h\" != unlimited ] && [ \"$h\" -le \"$2\" ]; }; }\n",
    );
    let before = s.len();
    if let Some(m) = limits.memory_bytes.value {
        s.push_str(&format!("l -d {} || exit 126\n", m.div_ceil(1024)));
    }
    if let Some(c) = limits.cpus.value {
        s.push_str(&format!("l -t {} || exit 126\n", cpu_seconds(c, timeout)));
    }
    if let (Some(n), true) = (limits.pids.value, nproc) {
        s.push_str(&format!("l -u {n} || l -p {n} || exit 126\n"));
    }
    if s.len() == before {
        return String::new();
    }
    s
}

/// Lowers the priority of `pid` (the blocked first process of the sandbox) to [`NICE`], so the
/// gateway keeps its share of the CPU on hosts without cgroups. Best effort.
pub fn renice(pid: u32) {
    if let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::setpriority_process(Some(p), NICE);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn finds_the_own_cgroup() {
        let cg = "12:pids:/x\n0::/system.slice/carapace.service\n";
        let mi = "30 25 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            own_cgroup(cg, mi),
            Some(PathBuf::from(
                "/sys/fs/cgroup/system.slice/carapace.service"
            ))
        );
        // Hybrid layout, and a cgroup namespace whose root is not the mount's.
        let mi = "35 25 0:30 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            own_cgroup("0::/\n", mi),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let mi = "35 25 0:30 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            own_cgroup("0::/docker/abc/sub\n", mi),
            Some(PathBuf::from("/sys/fs/cgroup/sub"))
        );
        assert_eq!(
            own_cgroup("0::/\n", "1 2 0:1 / / rw - ext4 /dev/x rw\n"),
            None
        );
    }

    #[test]
    fn delegation_needs_the_controllers() {
        let d = tempfile::tempdir().unwrap();
        let own = d.path().join("svc");
        std::fs::create_dir(&own).unwrap();
        std::fs::write(own.join("cgroup.controllers"), "hugetlb\n").unwrap();
        let e = delegate(&own, 1).unwrap_err();
        assert!(e.contains("controllers"), "{e}");
        // A fake cgroupfs: the files exist and take writes.
        std::fs::write(
            own.join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        std::fs::write(own.join("cgroup.subtree_control"), "").unwrap();
        std::fs::create_dir(own.join("carapace")).unwrap();
        std::fs::write(own.join("carapace/cgroup.procs"), "").unwrap();
        assert_eq!(delegate(&own, 42).unwrap(), own);
        assert_eq!(read(&own.join("carapace/cgroup.procs")), "42");
        assert_eq!(
            read(&own.join("cgroup.subtree_control")),
            "+pids +memory +cpu"
        );
        // Set up by an earlier process image: carapace is already in the leaf.
        std::fs::write(own.join("cgroup.subtree_control"), "cpu memory pids\n").unwrap();
        assert_eq!(delegate(&own.join("carapace"), 42).unwrap(), own);
    }

    #[test]
    fn values() {
        assert_eq!(cpu_max(2.0), "200000 100000");
        assert_eq!(cpu_max(0.5), "50000 100000");
        assert_eq!(cpu_seconds(2.0, Duration::from_secs(120)), 240);
        assert!(nproc_per_userns("6.18.44-fc-v1045"));
        assert!(nproc_per_userns("5.14.0"));
        assert!(!nproc_per_userns("5.10.0-23-amd64"));
        let l = carapace_policy::limits::Limits {
            pids: carapace_policy::limits::Limit {
                value: Some(64),
                configured: true,
            },
            memory_bytes: carapace_policy::limits::Limit {
                value: Some(256 << 20),
                configured: true,
            },
            cpus: carapace_policy::limits::Limit {
                value: Some(1.0),
                configured: false,
            },
        };
        let text = shell_limits(&l, Duration::from_secs(30), true);
        assert!(
            text.ends_with(
                "l -d 262144 || exit 126\nl -t 30 || exit 126\nl -u 64 || l -p 64 || exit 126\n"
            ),
            "{text}"
        );
    }
}
