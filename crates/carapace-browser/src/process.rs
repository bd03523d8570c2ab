//! Starting and stopping the Chromium process: the exact argv, a fresh profile directory, its
//! own process group (so the whole tree — zygote, renderers, GPU/network services — dies with
//! one `killpg`), and the DevTools WebSocket address read from its stderr.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::error::BrowserError;

/// The flags every Chromium carapace starts gets, besides `--user-data-dir`,
/// `--remote-debugging-port` and the proxy flags of [`chromium_args`]. docs/browser.md explains each group.
pub const CHROMIUM_FLAGS: &[&str] = &[
    // Headless, as root, in a container without a GPU.
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    // A closed network: nothing may phone home (else refused connections flood the log and
    // slow every start).
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-breakpad",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--no-pings",
    "--metrics-recording-only",
    // WebRTC may not send UDP around the proxy.
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--no-first-run",
    "--no-default-browser-check",
    "--password-store=basic",
    "--use-mock-keychain",
    "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication,CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions",
    // Deterministic pixels: CSS px = image px, colours as authored.
    "--force-device-scale-factor=1",
    "--force-color-profile=srgb",
    // Pages in a background tab still load and paint.
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
];

/// The full argv after the binary. `proxy` (`socks5://127.0.0.1:<port>`) carries every
/// connection, loopback included.
pub fn chromium_args(profile_dir: &Path, proxy: &str) -> Vec<String> {
    let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
    args.push(format!("--proxy-server={proxy}"));
    args.push("--proxy-bypass-list=<-loopback>".into());
    args.push(format!("--user-data-dir={}", profile_dir.display()));
    args.push("--remote-debugging-port=0".into());
    args.push("about:blank".into());
    args
}

/// Where Chromium is looked for and where its temporary files go: injected by the runtime
/// that owns the browser (tests point it at private directories), or the process's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserEnv {
    /// `$PATH` searched for the binary when `browser.executablePath` is unset.
    pub path: Option<std::ffi::OsString>,
    /// The directory profile directories are made in (`$TMPDIR`, else `/tmp`). Chromium's own
    /// temp files (`org.chromium.Chromium.*`) go inside the profile, so stopping the browser
    /// removes everything it made.
    pub temp_dir: PathBuf,
}

impl BrowserEnv {
    /// From the process environment.
    pub fn from_process() -> BrowserEnv {
        BrowserEnv {
            path: std::env::var_os("PATH"),
            temp_dir: std::env::temp_dir(),
        }
    }

    /// Finds the binary: the configured path (must exist), else `chromium`, `chromium-browser`,
    /// `google-chrome` on this environment's PATH.
    pub fn find_chromium(&self, configured: Option<&Path>) -> Result<PathBuf, BrowserError> {
        if let Some(p) = configured {
            return if p.is_file() {
                Ok(p.to_path_buf())
            } else {
                Err(BrowserError::ChromiumMissing {
                    path: Some(p.to_path_buf()),
                    reason: format!("browser.executablePath {} does not exist", p.display()),
                })
            };
        }
        let names = ["chromium", "chromium-browser", "google-chrome"];
        if let Some(path) = &self.path {
            for dir in std::env::split_paths(path) {
                for n in names {
                    let cand = dir.join(n);
                    if cand.is_file() {
                        return Ok(cand);
                    }
                }
            }
        }
        Err(BrowserError::ChromiumMissing {
            path: None,
            reason: "no chromium, chromium-browser or google-chrome on PATH".into(),
        })
    }

    fn find_on_path(&self, name: &str) -> Option<PathBuf> {
        std::env::split_paths(self.path.as_ref()?)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    }
}

/// [`BrowserEnv::find_chromium`] with the process environment.
pub fn find_chromium(configured: Option<&Path>) -> Result<PathBuf, BrowserError> {
    BrowserEnv::from_process().find_chromium(configured)
}

/// Prefix of profile directories in the temp dir: `carapace-chromium-<carapace pid>-<random>`.
const PROFILE_PREFIX: &str = "carapace-chromium-";

/// Removes profile directories left by carapace processes that are gone (a process killed with
/// SIGKILL). A directory whose owner pid is alive is never touched; removal goes through
/// carapace-fs, never following links.
fn sweep_orphan_profiles(tmp: &Path) {
    let Ok(root) = carapace_fs::Root::open(tmp) else {
        return;
    };
    let Ok(entries) = root.list(Path::new("")) else {
        return;
    };
    for e in entries {
        let Some(rest) = e.name.strip_prefix(PROFILE_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if e.meta.is_dir() && !Path::new(&format!("/proc/{pid}")).exists() {
            let opts = carapace_fs::RemoveOptions {
                missing_ok: true,
                ..carapace_fs::RemoveOptions::recursive()
            };
            if let Err(err) = root.remove(Path::new(&e.name), &opts) {
                tracing::debug!(dir = %e.name, error = %err, "could not remove an orphaned Chromium profile");
            }
        }
    }
}

/// A running Chromium: the child, its process group and its profile directory. Stop it with
/// [`ChromiumProcess::shutdown`] (kills the group, waits until it is gone, removes the
/// profile); dropping it kills the group and removes the profile best effort.
#[derive(Debug)]
pub struct ChromiumProcess {
    child: Child,
    pid: u32,
    /// The DevTools WebSocket address.
    pub ws_url: String,
    // Dropped last: the processes are dead by then.
    profile: Option<tempfile::TempDir>,
}

/// How long [`ChromiumProcess::shutdown`] waits for the process group to be gone.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

impl ChromiumProcess {
    /// Starts `binary` with [`chromium_args`] and waits (at most `launch_timeout`) for the
    /// DevTools address.
    /// The profile directory is made in `env.temp_dir`; Chromium's `TMPDIR` is a directory
    /// inside it.
    pub async fn launch(
        binary: &Path,
        launch_timeout: Duration,
        proxy: &str,
        env: &BrowserEnv,
    ) -> Result<ChromiumProcess, BrowserError> {
        let failed = |reason: String| BrowserError::LaunchFailed {
            path: binary.to_path_buf(),
            reason,
        };
        sweep_orphan_profiles(&env.temp_dir);
        let profile = tempfile::Builder::new()
            .prefix(&format!("{PROFILE_PREFIX}{}-", std::process::id()))
            .tempdir_in(&env.temp_dir)
            .map_err(|e| failed(format!("cannot create a profile directory: {e}")))?;
        // Chromium's own temp files (`org.chromium.Chromium.*`, shared memory files under
        // --disable-dev-shm-usage) go beside the profile and are removed with it.
        let chromium_tmp = carapace_fs::Root::open(profile.path())
            .and_then(|r| r.mkdir_all(Path::new("tmp"), 0o700))
            .map(|()| profile.path().join("tmp"))
            .map_err(|e| failed(format!("cannot create Chromium's temp directory: {e}")))?;
        // Chromium lives in its own process group, so nothing kills it when carapace dies
        // abruptly (SIGKILL, a panic in a static's owner). `setpriv --pdeathsig KILL` (util-linux)
        // makes the kernel kill it when the thread that started it is gone; it execs Chromium,
        // so the pid is Chromium's. Without setpriv, Chromium is started directly.
        let mut cmd = match env.find_on_path("setpriv") {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--"]).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        cmd.args(chromium_args(profile.path(), proxy))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .env("TMPDIR", &chromium_tmp)
            .process_group(0)
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                BrowserError::ChromiumMissing {
                    path: Some(binary.to_path_buf()),
                    reason: format!("{}: {e}", binary.display()),
                }
            } else {
                failed(format!("spawn: {e}"))
            }
        })?;
        let pid = child.id().unwrap_or(0);
        let Some(stderr) = child.stderr.take() else {
            return Err(failed("no stderr pipe".into()));
        };
        let mut lines = BufReader::new(stderr).lines();
        let mut tail: Vec<String> = Vec::new();
        let found = tokio::time::timeout(launch_timeout, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some((_, ws)) = line.rsplit_once("listening on ")
                    && ws.starts_with("ws://")
                {
                    return Some(ws.trim().to_string());
                }
                tail.push(line);
                if tail.len() > 20 {
                    tail.remove(0);
                }
            }
            None
        })
        .await;
        let ws_url = match found {
            Ok(Some(ws)) => ws,
            Ok(None) => {
                let status = child
                    .wait()
                    .await
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                kill_group(pid);
                return Err(failed(format!("exited ({status}): {}", tail.join(" | "))));
            }
            Err(_) => {
                kill_group(pid);
                let _ = child.kill().await;
                return Err(failed(format!(
                    "no DevTools address within {}s: {}",
                    launch_timeout.as_secs(),
                    tail.join(" | ")
                )));
            }
        };
        // Keep draining stderr so Chromium never blocks on a full pipe.
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::trace!(target: "carapace_browser::chromium", "{line}");
            }
        });
        tracing::debug!(pid, ws = %ws_url, "chromium started");
        Ok(ChromiumProcess {
            child,
            pid,
            ws_url,
            profile: Some(profile),
        })
    }

    /// Stops Chromium for good: SIGKILL to the whole group, waits (at most ten seconds) until
    /// the main process is reaped and no process of the group is left, then removes the
    /// profile directory (Chromium's temp files with it).
    pub async fn shutdown(mut self) {
        kill_group(self.pid);
        let _ = tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await;
        let deadline = tokio::time::Instant::now() + STOP_TIMEOUT;
        while group_alive(self.pid) && tokio::time::Instant::now() < deadline {
            kill_group(self.pid);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(p) = self.profile.take() {
            let path = p.path().to_path_buf();
            if let Err(e) = p.close() {
                tracing::warn!(dir = %path.display(), error = %e, "could not remove the Chromium profile");
            }
        }
    }

    /// The pid of the main process (also its process group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// True once the main process has exited (reaps it).
    pub fn has_exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ChromiumProcess {
    fn drop(&mut self) {
        kill_group(self.pid);
        // kill_on_drop reaps the main process in the background.
    }
}

/// True while some process of group `pid` exists (zombies included).
fn group_alive(pid: u32) -> bool {
    i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .is_some_and(|p| rustix::process::test_kill_process_group(p).is_ok())
}

/// SIGKILL to the whole process group `pid` (best effort: it may be gone already).
fn kill_group(pid: u32) {
    if let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
    }
}
