//! **Unsandboxed** host exec, for sessions the policy leaves unsandboxed (mode `off`, or the main
//! session under `non-main`). It is not a sandbox and never stands in for one: it is chosen only
//! by the policy, never because a backend is missing.
//!
//! Same semantics as the bwrap backend where the host allows: `sh -lc` with the umask set by the
//! shell, cwd = the mapped working directory (the agent workspace by default), a clean
//! environment, the timeout (SIGKILL to the whole process group) and the output cap. A process
//! that leaves the group (`setsid`) can outlive a timeout here; under bwrap it cannot.

use std::path::PathBuf;

use tokio::process::Command;

use crate::backend::{BackendKind, BoxFuture, ExecOutput, ExecPlan, ExecRequest, Sandbox};
use crate::bwrap::shell_script;
use crate::error::SandboxError;
use crate::run::{self, RunOutput};

/// Host exec (labelled unsandboxed everywhere it shows).
#[derive(Debug, Clone, Default)]
pub struct HostUnsandboxed;

/// Builds the public result.
pub(crate) fn to_output(out: RunOutput, backend: BackendKind, sandboxed: bool) -> ExecOutput {
    ExecOutput {
        exit_code: out.exit_code,
        signal: out.signal,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        timed_out: out.timed_out,
        truncated: out.truncated,
        duration_ms: u64::try_from(out.duration.as_millis()).unwrap_or(u64::MAX),
        backend,
        sandboxed,
    }
}

impl HostUnsandboxed {
    /// The host directory of a (normalised, already validated) container workdir.
    fn host_workdir(plan: &ExecPlan, workdir: &str) -> Result<PathBuf, SandboxError> {
        let r = plan
            .table
            .resolve(workdir, carapace_policy::mounts::Access::Read)?;
        Ok(r.host_path())
    }
}

impl Sandbox for HostUnsandboxed {
    fn kind(&self) -> BackendKind {
        BackendKind::HostUnsandboxed
    }

    fn exec<'a>(
        &'a self,
        plan: &'a ExecPlan,
        req: ExecRequest,
    ) -> BoxFuture<'a, Result<ExecOutput, SandboxError>> {
        Box::pin(async move {
            let cwd = Self::host_workdir(plan, &req.workdir)?;
            let mut cmd = Command::new("/bin/sh");
            cmd.arg("-lc")
                .arg(shell_script(plan.umask, &req.command))
                .current_dir(&cwd)
                .env_clear()
                .env(
                    "PATH",
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                )
                .env("LANG", "C.UTF-8")
                .env("TERM", "dumb")
                .env("CARAPACE_UNSANDBOXED", "1");
            if let Some(h) = &plan.host_home {
                cmd.env("HOME", h);
            }
            cmd.envs(plan.env.iter()).envs(req.env.iter());
            let out = run::run(
                cmd,
                "/bin/sh",
                req.timeout,
                req.max_output_bytes,
                true,
                None,
            )
            .await?;
            Ok(to_output(out, BackendKind::HostUnsandboxed, false))
        })
    }
}
