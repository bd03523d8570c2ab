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

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::backend::{BackendKind, BoxFuture, ExecOutput, ExecPlan, ExecRequest, Sandbox};
use crate::error::SandboxError;
use crate::run;

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

/// The full bwrap argument list (without the program name).
pub fn bwrap_args(layout: &HostLayout, plan: &ExecPlan, req: &ExecRequest) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |s: &[&str]| a.extend(s.iter().map(OsString::from));
    push(&["--unshare-all"]);
    if plan.network {
        push(&["--share-net"]);
    }
    push(&[
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--hostname",
        "carapace",
        "--ro-bind",
        "/usr",
        "/usr",
    ]);
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
    for s in [
        "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp",
    ] {
        a.push(s.into());
    }
    for m in &plan.table.mounts {
        a.push(if m.writable { "--bind" } else { "--ro-bind" }.into());
        a.push(m.host_path.clone().into_os_string());
        a.push(m.container_path.clone().into());
    }
    // The root itself (bwrap's tmpfs holding the mount points) is read-only too: nothing but
    // the writable mounts and /tmp can be written.
    a.push("--remount-ro".into());
    a.push("/".into());
    a.push("--chdir".into());
    a.push(req.workdir.clone().into());
    a.push("--".into());
    a.push("/bin/sh".into());
    a.push("-lc".into());
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
    /// The command that would run `req` (for benchmarks and `explain`).
    pub fn command(&self, plan: &ExecPlan, req: &ExecRequest) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(bwrap_args(&self.layout, plan, req))
            .env_clear()
            .envs(sandbox_env(plan, req));
        cmd
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
            let cmd = self.command(plan, &req);
            let out = run::run(cmd, "bwrap", req.timeout, req.max_output_bytes, false).await?;
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
    };
    let req = ExecRequest {
        command: "true".into(),
        workdir: "/".into(),
        env: Default::default(),
        timeout: std::time::Duration::from_secs(10),
        max_output_bytes: 4096,
    };
    let out = std::process::Command::new(program)
        .args(bwrap_args(layout, &plan, &req))
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
        };
        let req = ExecRequest {
            command: "echo hi".into(),
            workdir: "/workspace".into(),
            env: Default::default(),
            timeout: std::time::Duration::from_secs(1),
            max_output_bytes: 10,
        };
        let args: Vec<String> = bwrap_args(&layout, &plan, &req)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect();
        let joined = args.join(" ");
        assert!(joined.starts_with("--unshare-all --die-with-parent --new-session --cap-drop ALL"));
        assert!(!joined.contains("--share-net"));
        assert!(joined.contains("--symlink usr/bin /bin"));
        assert!(joined.contains("--ro-bind /lib64 /lib64"));
        assert!(joined.contains("--bind /sbx/s /workspace --ro-bind /ws /agent"));
        assert!(!joined.contains("/etc/resolv.conf"));
        assert!(!joined.contains("shadow"));
        assert_eq!(args.last().unwrap(), "umask 0022\necho hi");
        let mut plan = plan;
        plan.network = true;
        let joined = bwrap_args(&layout, &plan, &req)
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(joined.contains("--share-net"));
        assert!(joined.contains("/etc/resolv.conf"));
    }
}
