//! The bubblewrap backend: one fresh set of namespaces per command.
//!
//! The command line (see [`bwrap_args`], pure and unit-tested; the escape tests run it for real):
//!
//! - `--unshare-all` (user, ipc, pid, net, uts, cgroup; `--share-net` only when the policy's
//!   network is not `none`), `--die-with-parent` (the sandbox's init gets SIGKILL when carapace's
//!   child dies, and with it the whole pid namespace), `--new-session` (no TIOCSTI into our
//!   terminal), `--cap-drop ALL` (carapace may run as root; the sandbox never holds capabilities).
//! - Host `/usr` read-only, `/bin`, `/sbin`, `/lib*` as the host has them (symlinks into `/usr`
//!   on merged-/usr systems, read-only binds otherwise), and a short list of `/etc` files a shell
//!   and common tools need (no `/etc/shadow`, no host secrets).
//! - `/proc`, a minimal `/dev`, tmpfs `/tmp` (1777), then the session's mount table in order.
//! - `--remount-ro /`: the sandbox's own root (a tmpfs of mount points) is read-only.
//! - `--chdir` to the working directory (default `/workspace`); the environment is cleared by
//!   the caller (`env_clear`) and only the listed variables are passed.
//! - The umask is set by the shell itself: `sh -lc 'umask 0022<newline><command>'`, so it holds
//!   whatever carapace's umask is and whatever a login profile does (see docs/sandbox.md).
//! - Mount sources are handed over as **pinned fds** (`--bind-fd` / `--ro-bind-fd`): each
//!   source passed `crate::pin` (no symlink in its path, the device and inode validated at
//!   load) and the fd that passed is the one bwrap mounts, so nothing can swap the path between
//!   the check and the mount.
//! - When carapace runs as root, the command runs as the unprivileged sandbox user
//!   (`crate::user`): bwrap stays root without a user namespace (an unprivileged bwrap could
//!   not reach sources under root's 0700 directories: it resolves every source path as the user
//!   it runs as), keeps only `CAP_SETUID`/`CAP_SETGID`/`CAP_SETPCAP`, and `setpriv` switches to
//!   the sandbox user with no groups, no capabilities (bounding set included) and
//!   `no_new_privs` before `sh` starts. Files land on the host as that uid, and what the sandbox
//!   marks set-uid gives nobody root.
//! - `--info-fd` / `--block-fd`: bwrap reports its first process and waits while carapace puts
//!   it under the sandbox's limits (`crate::limits`); `/tmp` is sized to the memory limit.

use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use command_fds::{CommandFdExt, FdMapping};
use tokio::process::Command;

use crate::backend::{BackendKind, BoxFuture, ExecOutput, ExecPlan, ExecRequest, Sandbox};
use crate::error::SandboxError;
use crate::limits::{Enforcement, SandboxCgroup};
use crate::pin::PinnedSource;
use crate::run;

/// util-linux's `setpriv`, which starts the command as the sandbox user when carapace is
/// root (the host's `/usr` is what the sandbox sees).
pub const SETPRIV: &str = "/usr/bin/setpriv";

/// Child fd of `--info-fd`.
const INFO_FD: i32 = 3;
/// Child fd of `--block-fd`.
const BLOCK_FD: i32 = 4;
/// First child fd of the mount sources.
const FIRST_MOUNT_FD: i32 = 5;

/// `/etc` entries bound read-only when present: enough for `sh`, `id`, dynamic linking,
/// `/usr/bin/*` alternatives and time zones. Nothing secret.
pub const ETC_MINIMAL: &[&str] = &[
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/mime.types",
];

/// `/etc` entries added when the network is shared.
pub const ETC_NETWORK: &[&str] = &[
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
];

/// Top-level directories that hold programs and libraries.
const SYSTEM_DIRS: &[&str] = &["bin", "sbin", "lib", "lib32", "lib64", "libx32"];

/// How the host's top-level system directories look (`/bin -> usr/bin`, or a real directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEntry {
    /// A symlink with this target.
    Symlink(PathBuf),
    /// A directory.
    Dir,
}

/// The host layout bwrap must reproduce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostLayout {
    /// `(name, kind)` for each of bin, sbin, lib, lib32, lib64, libx32 that exists.
    pub system: Vec<(String, HostEntry)>,
}

impl HostLayout {
    /// Looks at the host's `/`.
    pub fn detect() -> HostLayout {
        let mut system = Vec::new();
        for name in SYSTEM_DIRS {
            let p = Path::new("/").join(name);
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_symlink() => {
                    if let Ok(t) = std::fs::read_link(&p) {
                        system.push(((*name).to_string(), HostEntry::Symlink(t)));
                    }
                }
                Ok(m) if m.is_dir() => system.push(((*name).to_string(), HostEntry::Dir)),
                _ => {}
            }
        }
        HostLayout { system }
    }
}

/// The shell text run inside: the umask first, then the user's command.
pub fn shell_script(umask: u32, command: &str) -> String {
    format!("umask {:04o}\n{command}", umask & 0o777)
}

/// How the command line refers to what carapace hands bwrap: the mount sources as fds (in
/// mount-table order), and the info/block fds of the limits gate.
#[derive(Debug, Clone, Default)]
pub struct Handover {
    /// Child fd of each mount's pinned source; empty: by path (the probe, which mounts none).
    pub mount_fds: Vec<i32>,
    /// `--info-fd` / `--block-fd`.
    pub gate: Option<(i32, i32)>,
    /// Shell text setting the sandbox's rlimits (`crate::limits::shell_limits`), run before
    /// the login shell; `None` when a cgroup holds the limits.
    pub rlimits: Option<String>,
}

/// The full bwrap argument list (without the program name).
pub fn bwrap_args(
    layout: &HostLayout,
    plan: &ExecPlan,
    req: &ExecRequest,
    handover: &Handover,
) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |s: &[&str]| a.extend(s.iter().map(OsString::from));
    let switch = plan.user.as_ref().filter(|u| u.switch);
    if switch.is_some() {
        // carapace is root: bwrap stays root (no user namespace, so it can reach mount sources
        // under root's 0700 directories) and `setpriv` starts the command as the sandbox user.
        push(&[
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-uts",
            "--unshare-cgroup-try",
        ]);
        if !plan.network {
            push(&["--unshare-net"]);
        }
    } else {
        push(&["--unshare-all"]);
        if plan.network {
            push(&["--share-net"]);
        }
    }
    push(&["--die-with-parent", "--new-session", "--cap-drop", "ALL"]);
    if switch.is_some() {
        // Only what setpriv needs to switch user; it drops them (and the bounding set) before
        // the command runs.
        push(&[
            "--cap-add",
            "CAP_SETUID",
            "--cap-add",
            "CAP_SETGID",
            "--cap-add",
            "CAP_SETPCAP",
        ]);
    }
    push(&["--hostname", "carapace", "--ro-bind", "/usr", "/usr"]);
    for (name, entry) in &layout.system {
        let dest = format!("/{name}");
        match entry {
            HostEntry::Symlink(t) => {
                a.push("--symlink".into());
                a.push(t.clone().into_os_string());
                a.push(dest.into());
            }
            HostEntry::Dir => {
                a.push("--ro-bind".into());
                a.push(dest.clone().into());
                a.push(dest.into());
            }
        }
    }
    // bwrap would create /etc as 0700 for the binds below; make it a normal directory.
    for s in ["--perms", "0755", "--dir", "/etc"] {
        a.push(s.into());
    }
    let etc = ETC_MINIMAL
        .iter()
        .chain(if plan.network { ETC_NETWORK } else { &[] });
    for p in etc {
        a.push("--ro-bind-try".into());
        a.push((*p).into());
        a.push((*p).into());
    }
    for s in ["--proc", "/proc", "--dev", "/dev", "--perms", "1777"] {
        a.push(s.into());
    }
    if let Some(m) = plan.limits.memory_bytes.value {
        a.push("--size".into());
        a.push(m.to_string().into());
    }
    a.push("--tmpfs".into());
    a.push("/tmp".into());
    for (i, m) in plan.table.mounts.iter().enumerate() {
        match handover.mount_fds.get(i) {
            Some(fd) => {
                a.push(
                    if m.writable {
                        "--bind-fd"
                    } else {
                        "--ro-bind-fd"
                    }
                    .into(),
                );
                a.push(fd.to_string().into());
            }
            None => {
                a.push(if m.writable { "--bind" } else { "--ro-bind" }.into());
                a.push(m.host_path.clone().into_os_string());
            }
        }
        a.push(m.container_path.clone().into());
    }
    if let Some((info, block)) = handover.gate {
        for s in [
            "--info-fd".to_string(),
            info.to_string(),
            "--block-fd".into(),
            block.to_string(),
        ] {
            a.push(s.into());
        }
    }
    // The root itself (bwrap's tmpfs holding the mount points) is read-only too: nothing but
    // the writable mounts and /tmp can be written.
    a.push("--remount-ro".into());
    a.push("/".into());
    a.push("--chdir".into());
    a.push(req.workdir.clone().into());
    a.push("--".into());
    if let Some(u) = switch {
        for s in [
            SETPRIV.to_string(),
            format!("--reuid={}", u.uid),
            format!("--regid={}", u.gid),
            "--clear-groups".into(),
            "--no-new-privs".into(),
            "--inh-caps=-all".into(),
            "--bounding-set=-all".into(),
            "--".into(),
        ] {
            a.push(s.into());
        }
    }
    a.push("/bin/sh".into());
    match handover.rlimits.as_deref().filter(|r| !r.is_empty()) {
        // Limits first, in a shell that reads no profile; then the login shell.
        Some(limits) => {
            a.push("-c".into());
            a.push(format!("{limits}exec /bin/sh -lc \"$1\"").into());
            a.push("carapace-limits".into());
        }
        None => a.push("-lc".into()),
    }
    a.push(shell_script(plan.umask, &req.command).into());
    a
}

/// The clean environment of a sandboxed process: a fixed base, the config's, the request's.
pub fn sandbox_env(plan: &ExecPlan, req: &ExecRequest) -> Vec<(String, String)> {
    let mut env: std::collections::BTreeMap<String, String> = [
        (
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        ),
        ("HOME", "/workspace"),
        ("LANG", "C.UTF-8"),
        ("TERM", "dumb"),
        ("TMPDIR", "/tmp"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(plan.env.clone());
    env.extend(req.env.clone());
    env.into_iter().collect()
}

/// The bubblewrap backend.
#[derive(Debug, Clone)]
pub struct Bwrap {
    /// The `bwrap` binary.
    pub program: PathBuf,
    /// The host layout (detected once).
    pub layout: HostLayout,
}

impl Bwrap {
    /// The command that runs `req`, with what it needs handed over: the pinned mount sources
    /// (each verified now by `crate::pin`), the limits gate, and the switch to the sandbox user.
    /// The returned gate must be awaited after spawning.
    pub fn command(
        &self,
        plan: &ExecPlan,
        req: &ExecRequest,
    ) -> Result<(Command, Gate), SandboxError> {
        if plan.sources.len() != plan.table.mounts.len() {
            return Err(SandboxError::BadRequest(
                "the session's mount sources were not validated (use SandboxManager)".into(),
            ));
        }
        let enforcement = Enforcement::get();
        let nproc_ok = match enforcement {
            Enforcement::Cgroup { .. } => true,
            Enforcement::Rlimits {
                nproc_per_sandbox, ..
            } => *nproc_per_sandbox || plan.user.as_ref().is_some_and(|u| u.switch),
        };
        if !nproc_ok && plan.limits.pids.configured && plan.limits.pids.value.is_some() {
            return Err(SandboxError::Unenforceable {
                what: "sandbox pidsLimit".into(),
                reason: "without a delegated cgroup v2, this kernel (older than 5.14) counts RLIMIT_NPROC across every process of carapace's user".into(),
                hint: "give carapace a delegated cgroup v2 (systemd Delegate=yes), run it as root (sandboxes then get their own uid), or remove docker.pidsLimit".into(),
            });
        }
        let mut mappings = Vec::new();
        let mut mount_fds = Vec::new();
        for (i, src) in plan.sources.iter().enumerate() {
            let pinned = PinnedSource::verify(src)?;
            let fd: OwnedFd =
                pinned
                    .pinned
                    .as_fd()
                    .try_clone_to_owned()
                    .map_err(|e| SandboxError::Process {
                        op: "dup a mount source for",
                        program: "bwrap".into(),
                        source: e,
                    })?;
            let child_fd = FIRST_MOUNT_FD + i32::try_from(i).unwrap_or(0);
            mappings.push(FdMapping {
                parent_fd: fd,
                child_fd,
            });
            mount_fds.push(child_fd);
        }
        let pipe = || {
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| {
                SandboxError::Process {
                    op: "create a pipe for",
                    program: "bwrap".into(),
                    source: e.into(),
                }
            })
        };
        let (info_r, info_w) = pipe()?;
        let (block_r, block_w) = pipe()?;
        mappings.push(FdMapping {
            parent_fd: info_w,
            child_fd: INFO_FD,
        });
        mappings.push(FdMapping {
            parent_fd: block_r,
            child_fd: BLOCK_FD,
        });
        let handover = Handover {
            mount_fds,
            gate: Some((INFO_FD, BLOCK_FD)),
            rlimits: match enforcement {
                Enforcement::Cgroup { .. } => None,
                Enforcement::Rlimits { .. } => Some(crate::limits::shell_limits(
                    &plan.limits,
                    req.timeout,
                    nproc_ok,
                )),
            },
        };
        let mut cmd = Command::new(&self.program);
        cmd.args(bwrap_args(&self.layout, plan, req, &handover))
            .env_clear()
            .envs(sandbox_env(plan, req))
            .current_dir("/");
        if plan.user.as_ref().is_some_and(|u| u.switch) && !Path::new(SETPRIV).is_file() {
            return Err(SandboxError::Unenforceable {
                what: "the sandbox user".into(),
                reason: format!("carapace runs as root and {SETPRIV} is missing"),
                hint: "install util-linux (it provides setpriv), so sandboxes can run as an unprivileged user".into(),
            });
        }
        cmd.fd_mappings(mappings)
            .map_err(|e| SandboxError::BadRequest(format!("bwrap fds: {e}")))?;
        Ok((
            cmd,
            Gate {
                info: info_r,
                block: block_w,
                enforcement,
                limits: plan.limits,
            },
        ))
    }
}

/// The limits gate of one bwrap run: read the sandbox's first pid from `--info-fd`, put it
/// under the limits, release it through `--block-fd`.
#[derive(Debug)]
pub struct Gate {
    info: OwnedFd,
    block: OwnedFd,
    enforcement: &'static Enforcement,
    limits: carapace_policy::limits::Limits,
}

impl Gate {
    /// Runs the gate; the cgroup (if any) is returned for removal after the command.
    pub async fn open(self) -> Result<Option<SandboxCgroup>, SandboxError> {
        let Gate {
            info,
            block,
            enforcement,
            limits,
        } = self;
        let pid = tokio::task::spawn_blocking(move || read_child_pid(info))
            .await
            .map_err(|e| SandboxError::BadRequest(format!("bwrap info: {e}")))??;
        let cg = match enforcement {
            Enforcement::Cgroup { base } => {
                let cg = SandboxCgroup::create(base, &limits)?;
                cg.add(pid)?;
                Some(cg)
            }
            // The rlimits are set by the sandbox's first shell; the priority from here.
            Enforcement::Rlimits { .. } => {
                crate::limits::renice(pid);
                None
            }
        };
        let mut f = std::fs::File::from(block);
        let _ = std::io::Write::write_all(&mut f, b"1");
        Ok(cg)
    }
}

/// Reads bwrap's `--info-fd` JSON until it is complete; its `child-pid`.
fn read_child_pid(fd: OwnedFd) -> Result<u32, SandboxError> {
    use std::io::Read;
    let mut f = std::fs::File::from(fd);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(Ok(v)) = serde_json::Deserializer::from_slice(&buf)
            .into_iter::<serde_json::Value>()
            .next()
        {
            return v
                .get("child-pid")
                .and_then(serde_json::Value::as_u64)
                .and_then(|p| u32::try_from(p).ok())
                .ok_or_else(|| SandboxError::BadRequest("bwrap reported no child-pid".into()));
        }
        let n = f.read(&mut chunk).unwrap_or(0);
        if n == 0 || buf.len() > 64 * 1024 {
            return Err(SandboxError::BackendUnavailable {
                backend: "bwrap".into(),
                reason: "bwrap exited before starting the sandbox".into(),
                hint: crate::backend::BWRAP_HINT.into(),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

impl Sandbox for Bwrap {
    fn kind(&self) -> BackendKind {
        BackendKind::Bwrap
    }

    fn exec<'a>(
        &'a self,
        plan: &'a ExecPlan,
        req: ExecRequest,
    ) -> BoxFuture<'a, Result<ExecOutput, SandboxError>> {
        Box::pin(async move {
            let (cmd, gate) = self.command(plan, &req)?;
            let out = run::run(
                cmd,
                "bwrap",
                req.timeout,
                req.max_output_bytes,
                false,
                Some(Box::pin(gate.open())),
            )
            .await?;
            Ok(crate::host::to_output(out, BackendKind::Bwrap, true))
        })
    }
}

/// Runs a trivial sandbox once to prove bwrap works here (user namespaces allowed, /usr
/// bindable). `Err` carries bwrap's own message.
pub fn probe(program: &Path, layout: &HostLayout) -> Result<String, String> {
    let version = std::process::Command::new(program)
        .arg("--version")
        .env_clear()
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let plan = ExecPlan {
        table: carapace_policy::mounts::MountTable {
            sandboxed: true,
            mounts: Vec::new(),
        },
        umask: 0o022,
        network: false,
        env: Default::default(),
        host_home: None,
        sources: Vec::new(),
        user: None,
        limits: probe_limits(),
    };
    let req = ExecRequest {
        command: "true".into(),
        workdir: "/".into(),
        env: Default::default(),
        timeout: std::time::Duration::from_secs(10),
        max_output_bytes: 4096,
    };
    let out = std::process::Command::new(program)
        .args(bwrap_args(layout, &plan, &req, &Handover::default()))
        .env_clear()
        .envs(sandbox_env(&plan, &req))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    if out.status.success() {
        Ok(version)
    } else {
        Err(format!(
            "{} cannot create a sandbox here: {}",
            program.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The probe's limits (it runs `true`): the defaults.
fn probe_limits() -> carapace_policy::limits::Limits {
    carapace_policy::limits::Limits::of(&carapace_policy::resolve::EffectiveDocker {
        image: String::new(),
        container_prefix: String::new(),
        network: "none".into(),
        binds: Vec::new(),
        env: Default::default(),
        user: None,
        read_only_root: true,
        tmpfs: Vec::new(),
        cap_drop: Vec::new(),
        memory: None,
        cpus: None,
        pids_limit: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use carapace_policy::mounts::{Mount, MountKind, MountTable};

    #[test]
    fn argv_shape() {
        let layout = HostLayout {
            system: vec![
                ("bin".into(), HostEntry::Symlink("usr/bin".into())),
                ("lib64".into(), HostEntry::Dir),
            ],
        };
        let plan = ExecPlan {
            table: MountTable {
                sandboxed: true,
                mounts: vec![
                    Mount {
                        host_path: "/sbx/s".into(),
                        container_path: "/workspace".into(),
                        writable: true,
                        kind: MountKind::Workspace,
                    },
                    Mount {
                        host_path: "/ws".into(),
                        container_path: "/agent".into(),
                        writable: false,
                        kind: MountKind::Agent,
                    },
                ],
            },
            umask: 0o022,
            network: false,
            env: Default::default(),
            host_home: None,
            sources: Vec::new(),
            user: None,
            limits: probe_limits(),
        };
        let req = ExecRequest {
            command: "echo hi".into(),
            workdir: "/workspace".into(),
            env: Default::default(),
            timeout: std::time::Duration::from_secs(1),
            max_output_bytes: 10,
        };
        let handover = Handover {
            mount_fds: vec![5, 6],
            gate: Some((3, 4)),
            rlimits: None,
        };
        let args: Vec<String> = bwrap_args(&layout, &plan, &req, &handover)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        let joined = args.join(" ");
        assert!(joined.starts_with("--unshare-all --die-with-parent --new-session --cap-drop ALL"));
        assert!(!joined.contains("--share-net"));
        assert!(joined.contains("--symlink usr/bin /bin"));
        assert!(joined.contains("--ro-bind /lib64 /lib64"));
        assert!(joined.contains("--bind-fd 5 /workspace --ro-bind-fd 6 /agent"));
        assert!(joined.contains("--perms 1777 --size 2147483648 --tmpfs /tmp"));
        assert!(joined.contains("--info-fd 3 --block-fd 4"));
        assert!(
            !joined.contains("/sbx/s"),
            "sources go by fd, never by path"
        );
        assert!(!joined.contains("/etc/resolv.conf"));
        assert!(!joined.contains("shadow"));
        assert_eq!(args.last().unwrap(), "umask 0022\necho hi");
        let mut plan = plan;
        plan.network = true;
        let joined = bwrap_args(&layout, &plan, &req, &handover)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(joined.contains("--share-net"));
        assert!(joined.contains("/etc/resolv.conf"));
    }
}
