//! The process runner shared by every backend that runs a local process (bwrap, host): stdin
//! closed, stdout/stderr captured up to a cap (the rest drained and dropped, `truncated` set),
//! a deadline after which the whole process group is killed with SIGKILL, and a short grace
//! period for pipes held open by stragglers.

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use crate::error::SandboxError;

/// What a backend awaits between spawning and waiting (bwrap's limits gate).
pub(crate) type Gate =
    crate::backend::BoxFuture<'static, Result<Option<crate::limits::SandboxCgroup>, SandboxError>>;

/// How long to wait for the pipes after the process is gone before giving up on them.
const PIPE_GRACE: Duration = Duration::from_millis(500);

/// What a finished (or killed) command produced.
#[derive(Debug, Clone)]
pub(crate) struct RunOutput {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub timed_out: bool,
    pub truncated: bool,
    pub duration: Duration,
}

#[derive(Default)]
struct Capture {
    buf: Vec<u8>,
    truncated: bool,
}

/// Reads `r` to EOF, keeping at most `cap` bytes.
async fn capture(mut r: impl AsyncRead + Unpin, cap: usize, sink: Arc<Mutex<Capture>>) {
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                let Ok(mut c) = sink.lock() else { return };
                let room = cap.saturating_sub(c.buf.len());
                if n > room {
                    c.truncated = true;
                }
                let take = n.min(room);
                c.buf.extend_from_slice(&chunk[..take]);
            }
        }
    }
}

/// Kills the process group `pgid` (the child was started with `process_group(0)`, so its pid
/// is the group id). Errors (ESRCH: already gone) are ignored.
fn kill_group(pgid: Option<u32>) {
    if let Some(pid) = pgid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

/// Runs `cmd` to completion or to `timeout`. `kill_group_after_exit`: also SIGKILL the process
/// group once the main process has exited (host exec: background stragglers die with the
/// command, as they do when a bwrap pid namespace ends).
pub(crate) async fn run(
    mut cmd: Command,
    program: &str,
    timeout: Duration,
    cap: usize,
    kill_group_after_exit: bool,
    gate: Option<Gate>,
) -> Result<RunOutput, SandboxError> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0);
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|source| SandboxError::Process {
        op: "spawn",
        program: program.to_string(),
        source,
    })?;
    // The parent's copies of the fds handed to the child close here (a gate reads until the
    // child's end closes).
    drop(cmd);
    let pid = child.id();
    let out = Arc::new(Mutex::new(Capture::default()));
    let err = Arc::new(Mutex::new(Capture::default()));
    let mut tasks = Vec::new();
    if let Some(s) = child.stdout.take() {
        tasks.push(tokio::spawn(capture(s, cap, out.clone())));
    }
    if let Some(s) = child.stderr.take() {
        tasks.push(tokio::spawn(capture(s, cap, err.clone())));
    }

    // The limits gate: the child waits (bwrap's --block-fd) until its limits are applied. A
    // gate that fails kills the child: nothing runs without its limits.
    let mut cgroup = None;
    if let Some(g) = gate {
        match tokio::time::timeout(timeout, g).await {
            Ok(Ok(cg)) => cgroup = cg,
            Ok(Err(e)) => {
                kill_group(pid);
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(e);
            }
            Err(_) => {
                kill_group(pid);
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(SandboxError::BackendUnavailable {
                    backend: program.to_string(),
                    reason: "the sandbox did not start before the command's timeout".into(),
                    hint: crate::backend::BWRAP_HINT.into(),
                });
            }
        }
    }
    let wait_err = |source| SandboxError::Process {
        op: "wait for",
        program: program.to_string(),
        source,
    };
    let (status, timed_out): (ExitStatus, bool) =
        match tokio::time::timeout(timeout, child.wait()).await {
            Ok(s) => (s.map_err(wait_err)?, false),
            Err(_) => {
                // The whole tree: the group (host exec, and the bwrap monitor), then the child
                // itself in case it left the group. Inside bwrap, the pid namespace's init dies
                // with its parent (--die-with-parent) and takes every process in it along.
                kill_group(pid);
                let _ = child.start_kill();
                (child.wait().await.map_err(wait_err)?, true)
            }
        };
    if kill_group_after_exit || timed_out {
        kill_group(pid);
    }
    if let Some(cg) = cgroup {
        cg.remove().await;
    }
    let deadline = tokio::time::Instant::now() + PIPE_GRACE;
    for mut t in tasks {
        match tokio::time::timeout_at(deadline, &mut t).await {
            Ok(_) => {}
            Err(_) => {
                t.abort();
                // A process outside our reach still holds the pipe; keep what we have.
                tracing::warn!(
                    "{program}: output pipe still open {PIPE_GRACE:?} after exit; output may be incomplete"
                );
            }
        }
    }
    let take = |c: &Arc<Mutex<Capture>>| {
        c.lock()
            .map(|mut g| (std::mem::take(&mut g.buf), g.truncated))
            .unwrap_or_default()
    };
    let (stdout, t1) = take(&out);
    let (stderr, t2) = take(&err);
    use std::os::unix::process::ExitStatusExt;
    let signal = status.signal();
    let exit_code = status.code().unwrap_or_else(|| 128 + signal.unwrap_or(0));
    Ok(RunOutput {
        exit_code,
        signal,
        stdout,
        stderr,
        timed_out,
        truncated: t1 || t2,
        duration: started.elapsed(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod spawn_tests {
    use carapace_policy::{CarapaceError, ErrorCode};

    use super::*;

    /// A command whose working directory vanished before the spawn is `SPAWN_FAILED` (503),
    /// with the program and the OS error as facts, not `INTERNAL`.
    #[tokio::test]
    async fn a_spawn_into_a_vanished_directory_is_spawn_failed() {
        let t = tempfile::tempdir().unwrap();
        let gone = t.path().join("workdir");
        std::fs::create_dir(&gone).unwrap();
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg("true").current_dir(&gone);
        std::fs::remove_dir(&gone).unwrap();
        let e = run(cmd, "/bin/sh", Duration::from_secs(60), 1024, false, None)
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::SpawnFailed, "{e}");
        assert_eq!(e.code().http_status(), 503);
        let d = e.details();
        assert_eq!(d["program"], "/bin/sh");
        assert_eq!(d["errno"], "ENOENT", "{d:?}");
    }
}
