//! The real gateway as a child process: `carapace gateway run` on a loopback port over a lab.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::lab::{Lab, Layout, config_text};

/// A running gateway (killed on drop).
pub struct Gateway {
    /// The process.
    pub child: Child,
    /// `127.0.0.1:port`.
    pub addr: String,
    /// The bearer token.
    pub token: String,
    /// The lab it serves.
    pub lab: Lab,
}

/// The `carapace` binary: `$CARAPACE_BIN`, else next to this one.
pub fn carapace_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CARAPACE_BIN") {
        return PathBuf::from(p);
    }
    std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("carapace")))
        .unwrap_or_else(|| PathBuf::from("carapace"))
}

impl Gateway {
    /// Starts one over a fresh lab of `layout`; every tool is served over HTTP.
    pub fn start(layout: Layout) -> Result<Gateway, String> {
        let extra =
            r#"gateway: { tools: { allow: ["group:fs", "exec", "message", "media_save"] } }"#;
        let lab = Lab::new(layout, extra)?;
        let cfg = lab.base().join("carapace.json5");
        std::fs::write(&cfg, config_text(lab.base(), layout, extra)).map_err(|e| e.to_string())?;
        let mut child = Command::new(carapace_bin())
            .arg("--config")
            .arg(&cfg)
            .args([
                "--json",
                "gateway",
                "run",
                "--bind",
                "127.0.0.1:0",
                "--no-reload",
            ])
            .env("CARAPACE_STATE_DIR", &lab.state)
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", carapace_bin().display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && v.get("address").is_some()
                {
                    let _ = tx.send(v);
                }
            }
        });
        let ready = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(v) => v,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the gateway printed no ready line within 60 s".into());
            }
        };
        let addr = ready["address"]
            .as_str()
            .unwrap_or("")
            .trim_start_matches("http://")
            .to_string();
        let token_path = ready["tokenPath"].as_str().unwrap_or("").to_string();
        let token = std::fs::read_to_string(&token_path)
            .map_err(|e| format!("token {token_path}: {e}"))?
            .trim()
            .to_string();
        Ok(Gateway {
            child,
            addr,
            token,
            lab,
        })
    }

    /// The gateway's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// VmRSS of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Open fds of `pid`.
pub fn fd_count(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Live child processes of `pid` (any thread's children).
pub fn children(pid: u32) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .map(|c| c.split_whitespace().count())
        .sum()
}
