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

/// Finds the binary: the configured path (must exist), else `chromium`, `chromium-browser`,
/// `google-chrome` on PATH.
pub fn find_chromium(configured: Option<&Path>) -> Result<PathBuf, BrowserError> {
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
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
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

/// Prefix of profile directories in the temp dir: `carapace-chromium-<carapace pid>-<random>`.
const PROFILE_PREFIX: &str = "carapace-chromium-";

/// Removes profile directories left by carapace processes that are gone (a process killed with
/// SIGKILL, or one whose browser service lived in a static and was never dropped). A directory
/// whose owner pid is alive is never touched; removal goes through carapace-fs, never
/// following links.
fn sweep_orphan_profiles() {
    let tmp = std::env::temp_dir();
    let Ok(root) = carapace_fs::Root::open(&tmp) else {
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

/// A running Chromium: the child, its process group and its profile directory (removed on
/// drop, after the group is killed).
#[derive(Debug)]
pub struct ChromiumProcess {
    child: Child,
    pid: u32,
    /// The DevTools WebSocket address.
    pub ws_url: String,
    // Dropped last: the processes are dead by then.
    _profile: tempfile::TempDir,
}

impl ChromiumProcess {
    /// Starts `binary` with [`chromium_args`] and waits (at most `launch_timeout`) for the
    /// DevTools address.
    pub async fn launch(
        binary: &Path,
        launch_timeout: Duration,
        proxy: &str,
    ) -> Result<ChromiumProcess, BrowserError> {
        let failed = |reason: String| BrowserError::LaunchFailed {
            path: binary.to_path_buf(),
            reason,
        };
        sweep_orphan_profiles();
        let profile = tempfile::Builder::new()
            .prefix(&format!("{PROFILE_PREFIX}{}-", std::process::id()))
            .tempdir()
            .map_err(|e| failed(format!("cannot create a profile directory: {e}")))?;
        // Chromium lives in its own process group, so nothing kills it when carapace dies
        // abruptly (SIGKILL, a panic in a static's owner). `setpriv --pdeathsig KILL` (util-linux)
        // makes the kernel kill it when the thread that started it is gone; it execs Chromium,
        // so the pid is Chromium's. Without setpriv, Chromium is started directly.
        let mut cmd = match find_on_path("setpriv") {
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
            _profile: profile,
        })
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

fn find_on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
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
