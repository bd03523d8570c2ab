//! Hostile config files against the real binary: FIFOs, directories, devices, oversized and
//! deeply nested files are `CONFIG_INVALID` (exit 2) without blocking or crashing; a hot reload
//! of a deeply nested file leaves the running gateway serving; `config show` never prints a
//! webhook URL's secret.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_carapace");

/// Runs `carapace --json --config <config> <args>`, killing it if it has not exited within a
/// generous bound (a blocked read on a FIFO would never exit).
fn run(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let state = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("--json")
        .arg("--config")
        .arg(config)
        .args(args)
        .env("CARAPACE_STATE_DIR", state.path())
        .env_remove("CARAPACE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("carapace blocked on config {}", config.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn envelope(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "not JSON: {:?} / {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn assert_config_invalid(out: &Output, says: &str) {
    let v = envelope(out);
    assert_eq!(out.status.code(), Some(2), "{v}");
    assert_eq!(v["error"]["code"], "CONFIG_INVALID", "{v}");
    let m = v["error"]["message"].as_str().unwrap();
    assert!(m.contains(says), "{m:?} lacks {says:?}");
}

#[test]
fn non_regular_and_oversized_config_files_are_config_invalid_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.json5");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    assert_config_invalid(
        &run(&fifo, &["config", "validate"], &[]),
        "not a regular file",
    );

    let sub = dir.path().join("conf.d");
    std::fs::create_dir(&sub).unwrap();
    assert_config_invalid(
        &run(&sub, &["config", "validate"], &[]),
        "not a regular file",
    );
    assert_config_invalid(
        &run(Path::new("/dev/zero"), &["config", "validate"], &[]),
        "not a regular file",
    );

    let big = dir.path().join("big.json5");
    let mut text = String::from("{ /*");
    text.push_str(&"x".repeat(5 * 1024 * 1024));
    text.push_str("*/ }");
    std::fs::write(&big, text).unwrap();
    assert_config_invalid(&run(&big, &["config", "validate"], &[]), "larger than");
}

#[test]
fn a_deeply_nested_config_is_config_invalid_naming_the_depth() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("deep.json5");
    let n = 1_000_000;
    std::fs::write(&deep, format!("{{x: {}{}}}", "[".repeat(n), "]".repeat(n))).unwrap();
    let out = run(&deep, &["config", "validate"], &[]);
    assert_config_invalid(&out, "deeper than 64 levels");
}

#[test]
fn config_show_never_prints_a_webhook_url_secret() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.json5");
    let secret = "https://discord.com/api/webhooks/123/discord-hook-SECRET";
    std::fs::write(
        &cfg,
        "{channels: {webhook: {url: '${HOOK_URL}'}, matrix: {homeserver: 'https://bot:pw-SECRET@m.example.org', accessToken: 'x'}}}",
    )
    .unwrap();
    for args in [
        &["config", "show"][..],
        &["config", "show", "--effective"][..],
    ] {
        let out = run(&cfg, args, &[("HOOK_URL", secret)]);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(0), "{all}");
        assert!(!all.contains("SECRET"), "{all}");
    }
    let v = envelope(&run(&cfg, &["config", "show"], &[("HOOK_URL", secret)]));
    assert_eq!(
        v["config"]["channels"]["webhook"]["url"], "${HOOK_URL}",
        "{v}"
    );
    assert_eq!(
        v["config"]["channels"]["matrix"]["homeserver"], "https://***@m.example.org",
        "{v}"
    );
    // A literal URL is shown as scheme://host/*** only.
    std::fs::write(
        &cfg,
        format!("{{channels: {{webhook: {{url: '{secret}'}}}}}}"),
    )
    .unwrap();
    let out = run(&cfg, &["config", "show"], &[]);
    let v = envelope(&out);
    assert_eq!(
        v["config"]["channels"]["webhook"]["url"], "https://discord.com/***",
        "{v}"
    );
    assert!(!v.to_string().contains("SECRET"));
}

#[test]
fn a_failed_hot_reload_of_a_deep_config_leaves_the_gateway_serving() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let cfg = dir.path().join("carapace.json5");
    std::fs::write(&cfg, "{gateway: {headerTimeoutSeconds: 30}}").unwrap();
    let stderr_path = dir.path().join("gateway.stderr");
    let mut child = Command::new(BIN)
        .args([
            "gateway",
            "run",
            "--bind",
            "127.0.0.1:0",
            "--json",
            "--config",
        ])
        .arg(&cfg)
        .env("CARAPACE_STATE_DIR", &state)
        .env_remove("CARAPACE_CONFIG")
        .env_remove("CARAPACE_TOKEN")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|_| {
        let _ = child.kill();
        panic!("no ready line: {line:?}")
    });
    let base = ready["address"].as_str().unwrap().to_string();
    let health = || {
        let out = Command::new("curl")
            .args(["-s", "-m", "30", &format!("{base}/healthz")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(health().contains("\"ok\":true"));

    let n = 1_000_000;
    std::fs::write(&cfg, format!("{{x: {}{}}}", "[".repeat(n), "]".repeat(n))).unwrap();
    let stderr = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let until = Instant::now() + Duration::from_secs(60);
    while !stderr().contains("config reload refused") {
        if let Some(s) = child.try_wait().unwrap() {
            panic!("the gateway died on the reload ({s}); stderr: {}", stderr());
        }
        assert!(
            Instant::now() < until,
            "no reload refusal; stderr: {}",
            stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(stderr().contains("deeper than 64 levels"), "{}", stderr());
    assert!(child.try_wait().unwrap().is_none(), "{}", stderr());
    assert!(health().contains("\"ok\":true"), "{}", stderr());
    let _ = child.kill();
    let _ = child.wait();
}
