//! `carapace config …` as a user runs it: exit codes, the JSON envelope, the fixture configs (OpenClaw-shaped and carapace-only).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../carapace-policy/tests/fixtures")
}

fn carapace(args: &[&str]) -> Output {
    let state = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_carapace"))
        .args(args)
        .env("CARAPACE_STATE_DIR", state.path())
        .env_remove("CARAPACE_CONFIG")
        .output()
        .unwrap()
}

#[test]
fn fixture_configs_validate_verbatim() {
    for f in [
        "channel-access-defaults.json",
        "channel-access-array.json",
        "spec-example.json5",
        "openclaw.json",
    ] {
        let path = fixtures().join(f);
        let out = carapace(&["--config", path.to_str().unwrap(), "config", "validate"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{f}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));
    }
}

#[test]
fn effective_telegram_session_access() {
    let path = fixtures().join("channel-access-array.json");
    let out = carapace(&[
        "--config",
        path.to_str().unwrap(),
        "config",
        "show",
        "--effective",
        "--channel",
        "telegram",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("workspaceAccess: \"session\""), "{text}");
    assert!(text.contains("channels.telegram.session"), "{text}");

    let out = carapace(&[
        "--json",
        "--config",
        path.to_str().unwrap(),
        "config",
        "show",
        "--effective",
        "--channel",
        "inbox",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["effective"]["workspaceAccess"]["value"], "none");
}

#[test]
fn malformed_configs_exit_2_with_the_envelope() {
    let dir = fixtures().join("invalid");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let out = carapace(&[
            "--json",
            "--config",
            path.to_str().unwrap(),
            "config",
            "validate",
        ]);
        assert_eq!(out.status.code(), Some(2), "{}", path.display());
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["ok"], false);
        assert_eq!(v["error"]["code"], "CONFIG_INVALID");
        assert!(
            v["error"]["hint"]
                .as_str()
                .unwrap()
                .contains("config validate")
        );
        n += 1;
    }
    assert!(n >= 10, "only {n} malformed configs");
}

#[test]
fn human_errors_go_to_stderr_with_code_and_hint() {
    let path = fixtures().join("invalid/01-bad-access.json5");
    let out = carapace(&["--config", path.to_str().unwrap(), "config", "validate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("error[CONFIG_INVALID]"), "{err}");
    assert!(err.contains("agents.defaults.sandbox.workspaceAccess: \"sesion\" is not one of none, ro, rw, session"), "{err}");
    assert!(err.contains("hint:"));
}

#[test]
fn missing_named_config_is_an_error_but_missing_default_is_defaults() {
    let out = carapace(&[
        "--json",
        "--config",
        "/nonexistent/carapace.json5",
        "config",
        "validate",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = carapace(&["--json", "config", "show"]);
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn secrets_never_printed() {
    let path = fixtures().join("openclaw.json");
    for args in [
        vec!["config", "show"],
        vec!["--json", "config", "show"],
        vec!["config", "validate"],
    ] {
        let mut a = vec!["--config", path.to_str().unwrap()];
        a.extend(args);
        let out = carapace(&a);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !all.contains("secret-token-value") && !all.contains("123:abc"),
            "{all}"
        );
    }
}

#[test]
fn fifo_config_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("carapace.json5");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    let out = carapace(&[
        "--json",
        "--config",
        fifo.to_str().unwrap(),
        "config",
        "validate",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "CONFIG_INVALID");
    assert_eq!(v["error"]["details"]["reason"], "NOT_REGULAR_FILE");
}
