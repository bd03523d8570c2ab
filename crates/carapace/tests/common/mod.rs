//! A real `carapace gateway run` process for the attack tests.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// The built binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_carapace");

/// A running gateway; killed on drop.
pub struct Gw {
    pub child: Child,
    /// `127.0.0.1:port`
    pub addr: String,
    /// The bearer token.
    pub token: String,
    pub dir: tempfile::TempDir,
}

impl Drop for Gw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gw {
    /// What the gateway logged.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.stderr")).unwrap_or_default()
    }
}

/// `carapace gateway run` with at most `nofile` file descriptors.
pub fn start(config: &str, nofile: u32) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cfg = dir.path().join("carapace.json5");
    std::fs::write(&cfg, config).unwrap();
    let stderr = std::fs::File::create(dir.path().join("gateway.stderr")).unwrap();
    let mut child = Command::new("prlimit")
        .arg(format!("--nofile={nofile}:{nofile}"))
        .arg("--")
        .arg(BIN)
        .args([
            "gateway",
            "run",
            "--bind",
            "127.0.0.1:0",
            "--json",
            "--no-reload",
        ])
        .arg("--config")
        .arg(&cfg)
        .env("CARAPACE_STATE_DIR", &state)
        .env_remove("CARAPACE_TOKEN")
        .env_remove("CARAPACE_CONFIG")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
        let _ = child.kill();
        panic!(
            "no ready line: {line:?}; stderr: {}",
            std::fs::read_to_string(dir.path().join("gateway.stderr")).unwrap_or_default()
        )
    });
    let addr = ready["address"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .to_string();
    let token = std::fs::read_to_string(state.join("secrets/gateway-token"))
        .unwrap()
        .trim()
        .to_string();
    Gw {
        child,
        addr,
        token,
        dir,
    }
}
