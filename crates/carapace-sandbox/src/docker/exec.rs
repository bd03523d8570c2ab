//! `exec` in a scope's container, with bwrap's semantics: `/bin/sh -lc 'umask 0022\n<cmd>'`
//! (the umask set by the shell itself), the working directory as a container path, the same
//! clean environment ([`crate::bwrap::sandbox_env`]) on top of the container's
//! `sandbox.docker.env`, a cap per stream with a truncation flag, and a timeout that kills the
//! whole process tree.
//!
//! **Killing the tree.** The Engine API cannot signal an exec, and the exec's host pid is
//! meaningless with a remote or rootless engine. So every exec carries a unique marker in its
//! environment (`CARAPACE_EXEC_ID=<uuid>`), inherited by every descendant, including ones that
//! `setsid` away or are re-parented to the container's init. On timeout, a second exec (same
//! user, without the marker) stops and SIGKILLs every process whose `/proc/<pid>/environ`
//! holds it, repeating until none is left. The same sweep runs when the command's main process
//! has exited but its output is still held open by leftovers, so background processes die with
//! the command, as they do when a bwrap pid namespace ends. Only a process that both clears its
//! environment and leaves the tree escapes; `pidsLimit` and the container's lifetime bound it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use futures_util::StreamExt;

use super::DockerBackend;
use super::error::DockerError;
use super::spec::ContainerPlan;
use crate::backend::{BackendKind, BoxFuture, ExecOutput, ExecPlan, ExecRequest, Sandbox};
use crate::error::SandboxError;
use crate::run::RunOutput;

/// Environment variable marking every process of one exec.
pub const EXEC_MARKER: &str = "CARAPACE_EXEC_ID";

/// How often a running exec is checked for "main process gone, output still held open".
const POLL: Duration = Duration::from_millis(200);
/// How long the output may stay open after the kill sweep.
const GRACE: Duration = Duration::from_secs(2);

/// Kills every process whose environment holds `CARAPACE_EXEC_ID=$1`: stop, then SIGKILL,
/// rounds until a scan finds none. Needs only `sh`, `grep` and `/proc`.
const KILL_SCRIPT: &str = r#"m="CARAPACE_EXEC_ID=$1"
i=0
while [ "$i" -lt 50 ]; do
  found=""
  for d in /proc/[0-9]*; do
    p=${d#/proc/}
    [ "$p" = "$$" ] && continue
    if grep -qxzF "$m" "$d/environ" 2>/dev/null; then found="$found $p"; fi
  done
  [ -z "$found" ] && exit 0
  kill -STOP $found 2>/dev/null
  kill -KILL $found 2>/dev/null
  i=$((i+1))
done
exit 1"#;

/// One session's container as a [`Sandbox`]: the first exec creates or starts it.
#[derive(Debug, Clone)]
pub struct DockerSession {
    backend: Arc<DockerBackend>,
    plan: ContainerPlan,
}

impl DockerSession {
    pub(crate) fn new(backend: Arc<DockerBackend>, plan: ContainerPlan) -> DockerSession {
        DockerSession { backend, plan }
    }

    /// The container this session uses.
    pub fn plan(&self) -> &ContainerPlan {
        &self.plan
    }

    /// Runs one command (see the module docs).
    pub async fn run(&self, plan: &ExecPlan, req: &ExecRequest) -> Result<ExecOutput, DockerError> {
        let started = Instant::now();
        let mut env: Vec<String> = crate::bwrap::sandbox_env(plan, req)
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let marker = uuid::Uuid::new_v4().simple().to_string();
        env.push(format!("{EXEC_MARKER}={marker}"));
        let cmd = vec![
            "/bin/sh".to_string(),
            "-lc".to_string(),
            crate::bwrap::shell_script(plan.umask, &req.command),
        ];
        let mut retried = false;
        let out = loop {
            let id = self.backend.ready(&self.plan).await?;
            match run_exec(
                &self.backend,
                &id,
                &self.plan.user,
                &cmd,
                &env,
                &marker,
                req,
            )
            .await
            {
                Ok(out) => break out,
                // 404: the container was removed (recreate, prune, by hand); 409: it is not
                // running. Forget it and ensure it again, once.
                Err(e) if !retried && matches!(e.status(), Some(404 | 409)) => {
                    tracing::info!("{}: {e}; ensuring the container again", self.plan.name);
                    self.backend.invalidate(&self.plan.name);
                    retried = true;
                }
                Err(e) => return Err(e),
            }
        };
        self.backend.touch(&self.plan.name);
        let out = RunOutput {
            duration: started.elapsed(),
            ..out
        };
        Ok(crate::host::to_output(out, BackendKind::Docker, true))
    }
}

impl Sandbox for DockerSession {
    fn kind(&self) -> BackendKind {
        BackendKind::Docker
    }

    fn exec<'a>(
        &'a self,
        plan: &'a ExecPlan,
        req: ExecRequest,
    ) -> BoxFuture<'a, Result<ExecOutput, SandboxError>> {
        Box::pin(async move { Ok(self.run(plan, &req).await?) })
    }
}

#[derive(Default)]
struct Capture {
    buf: Vec<u8>,
    truncated: bool,
}

impl Capture {
    fn push(&mut self, bytes: &[u8], cap: usize) {
        let room = cap.saturating_sub(self.buf.len());
        if bytes.len() > room {
            self.truncated = true;
        }
        self.buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

/// Creates, starts and follows one exec; kills its tree at the deadline.
async fn run_exec(
    backend: &DockerBackend,
    container: &str,
    user: &str,
    cmd: &[String],
    env: &[String],
    marker: &str,
    req: &ExecRequest,
) -> Result<RunOutput, DockerError> {
    let d = backend.client().await?;
    let created = d
        .create_exec(
            container,
            ExecConfig {
                attach_stdin: Some(false),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                tty: Some(false),
                env: Some(env.to_vec()),
                cmd: Some(cmd.to_vec()),
                user: Some(user.to_string()),
                working_dir: Some(req.workdir.clone()),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| DockerError::from_bollard(format!("create exec in {container}"), e))?;
    let exec_id = created.id;
    let started = d
        .start_exec(
            &exec_id,
            Some(StartExecOptions {
                detach: false,
                tty: false,
                output_capacity: None,
            }),
        )
        .await
        .map_err(|e| DockerError::from_bollard(format!("start exec in {container}"), e))?;
    let StartExecResults::Attached { mut output, input } = started else {
        return Err(DockerError::Engine {
            op: format!("start exec in {container}"),
            status: None,
            message: "the engine did not attach the output".into(),
        });
    };
    drop(input);

    let cap = req.max_output_bytes;
    let mut out = Capture::default();
    let mut err = Capture::default();
    let deadline = tokio::time::Instant::now() + req.timeout;
    let mut timed_out = false;
    let mut swept = false;
    let mut grace_until: Option<tokio::time::Instant> = None;
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    poll.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            item = output.next() => match item {
                Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) => {
                    out.push(&message, cap);
                }
                Some(Ok(LogOutput::StdErr { message })) => err.push(&message, cap),
                Some(Ok(LogOutput::StdIn { .. })) => {}
                Some(Err(e)) => {
                    tracing::warn!("exec output stream of {container} failed: {e}");
                    break;
                }
                None => break,
            },
            _ = tokio::time::sleep_until(deadline), if !timed_out => {
                timed_out = true;
                kill_tree(backend, container, user, marker).await;
                swept = true;
                grace_until = Some(tokio::time::Instant::now() + GRACE);
            }
            _ = poll.tick(), if !swept => {
                // Main process gone but the output still open: leftovers hold it. Kill them.
                if let Ok(i) = d.inspect_exec(&exec_id).await
                    && i.running == Some(false)
                {
                    kill_tree(backend, container, user, marker).await;
                    swept = true;
                    grace_until = Some(tokio::time::Instant::now() + GRACE);
                }
            }
            _ = sleep_until_opt(grace_until), if grace_until.is_some() => {
                tracing::warn!("exec output of {container} still open {GRACE:?} after the kill; output may be incomplete");
                break;
            }
        }
    }
    if timed_out && !swept {
        kill_tree(backend, container, user, marker).await;
    }
    let exit_code = exit_code_of(backend, &exec_id).await;
    let exit_code = match exit_code {
        Some(c) => c,
        None if timed_out => 137,
        None => {
            return Err(DockerError::Engine {
                op: format!("inspect exec in {container}"),
                status: None,
                message: "the engine reported no exit code".into(),
            });
        }
    };
    Ok(RunOutput {
        // A timeout is reported like bwrap's: SIGKILL, 128 + 9.
        exit_code: if timed_out { 137 } else { exit_code },
        signal: timed_out.then_some(9),
        stdout: out.buf,
        stderr: err.buf,
        timed_out,
        truncated: out.truncated || err.truncated,
        duration: Duration::ZERO,
    })
}

async fn sleep_until_opt(t: Option<tokio::time::Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The exec's exit code once the engine reports it finished (it may lag the stream's end).
async fn exit_code_of(backend: &DockerBackend, exec_id: &str) -> Option<i32> {
    let d = backend.client().await.ok()?;
    for _ in 0..100 {
        match d.inspect_exec(exec_id).await {
            Ok(i) if i.running != Some(true) => {
                return i.exit_code.and_then(|c| i32::try_from(c).ok());
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            Err(_) => return None,
        }
    }
    None
}

/// Runs [`KILL_SCRIPT`] in the container as `user`, and waits for it.
async fn kill_tree(backend: &DockerBackend, container: &str, user: &str, marker: &str) {
    let Ok(d) = backend.client().await else {
        return;
    };
    let cfg = ExecConfig {
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        cmd: Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            KILL_SCRIPT.into(),
            "carapace-kill".into(),
            marker.into(),
        ]),
        user: Some(user.to_string()),
        working_dir: Some("/".into()),
        ..Default::default()
    };
    let result = async {
        let e = d.create_exec(container, cfg).await?;
        if let StartExecResults::Attached { mut output, .. } = d.start_exec(&e.id, None).await? {
            while output.next().await.is_some() {}
        }
        Ok::<_, bollard::errors::Error>(())
    };
    match tokio::time::timeout(Duration::from_secs(10), result).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("killing the processes of an exec in {container} failed: {e}"),
        Err(_) => tracing::warn!("killing the processes of an exec in {container} timed out"),
    }
}
