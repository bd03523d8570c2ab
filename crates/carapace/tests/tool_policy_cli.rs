//! The tool policy through the real `carapace` binary: the locked-down `openclaw.json` of the
//! defect report (tools.deny, tools.exec.security, gateway.tools.deny) loads without a
//! warning about them and `exec` does not run — not from `carapace tool invoke`, not over
//! `carapace mcp`; an unimplemented restricting key refuses to load; `config show --effective`
//! and `sandbox explain` say which tools each surface serves and why; `carapace mcp` whose
//! stdin closes before `initialize` exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_carapace");

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new(config: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("state/workspace")).unwrap();
        std::fs::write(dir.path().join("openclaw.json"), config).unwrap();
        Env { dir }
    }

    fn ws(&self) -> std::path::PathBuf {
        self.dir.path().join("state/workspace")
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config")
            .arg(self.dir.path().join("openclaw.json"))
            .env("CARAPACE_STATE_DIR", self.dir.path().join("state"))
            .env_remove("CARAPACE_CONFIG")
            .env_remove("CARAPACE_TOKEN");
        c
    }

    /// Runs with `--json`: (exit code, stdout JSON, stderr).
    fn run(&self, args: &[&str]) -> (Option<i32>, Value, String) {
        let out = self.cmd().arg("--json").args(args).output().unwrap();
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "stdout {:?} stderr {:?}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (
            out.status.code(),
            v,
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }
}

/// The defect's file: three ways of saying "no exec".
const LOCKED_DOWN: &str = r#"{
  "tools": { "deny": ["exec"], "exec": { "security": "deny" } },
  "gateway": { "tools": { "deny": ["exec"] } }
}"#;

#[test]
fn a_locked_down_openclaw_file_keeps_exec_off() {
    let e = Env::new(LOCKED_DOWN);
    let (code, v, _) = e.run(&["config", "validate"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["warnings"], json!([]), "nothing is ignored: {v}");
    let (code, v, _) = e.run(&[
        "tool",
        "invoke",
        "exec",
        "--args",
        r#"{"command": "touch pwned"}"#,
    ]);
    assert_eq!(code, Some(3), "{v}");
    assert_eq!(v["error"]["code"], "TOOL_DENIED");
    assert_eq!(v["error"]["details"]["setting"], "tools.deny");
    assert_eq!(v["error"]["details"]["surface"], "cli");
    let blocked: Vec<&str> = v["error"]["details"]["blockedBy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["setting"].as_str().unwrap())
        .collect();
    assert_eq!(blocked, ["tools.deny", "tools.exec.security"]);
    assert!(!e.ws().join("pwned").exists());
    // Other tools still work.
    let (code, v, _) = e.run(&["tool", "invoke", "ls"]);
    assert_eq!(code, Some(0), "{v}");
}

#[test]
fn effective_config_and_explain_say_what_each_surface_serves() {
    let e = Env::new(LOCKED_DOWN);
    let (code, v, _) = e.run(&["config", "show", "--effective"]);
    assert_eq!(code, Some(0), "{v}");
    let s = &v["toolPolicy"]["surfaces"];
    let allowed = |surface: &str| -> Vec<String> {
        s[surface]["tools"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["allowed"] == true)
            .map(|d| d["tool"].as_str().unwrap().to_string())
            .collect()
    };
    for surface in ["cli", "mcp", "agent"] {
        assert!(!allowed(surface).contains(&"exec".to_string()), "{surface}");
        assert!(allowed(surface).contains(&"read".to_string()), "{surface}");
    }
    assert_eq!(allowed("http"), ["browser", "message", "media_save"]);
    assert_eq!(v["toolPolicy"]["exec"]["security"], "deny");
    assert_eq!(
        v["toolPolicy"]["exec"]["securityFrom"],
        "tools.exec.security"
    );
    let exec_http = s["http"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["tool"] == "exec")
        .unwrap()
        .clone();
    let settings: Vec<&str> = exec_http["blockedBy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["setting"].as_str().unwrap())
        .collect();
    assert!(settings.contains(&"gateway.tools.deny"), "{settings:?}");
    // The human form names the settings.
    let out = e
        .cmd()
        .args(["sandbox", "explain", "--session", "agent:main:main"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Tool policy:"), "{text}");
    assert!(
        text.contains("exec security: deny (from tools.exec.security)"),
        "{text}"
    );
    assert!(text.contains("not exec: tools.deny lists it"), "{text}");
    assert!(text.contains("elevated: off"), "{text}");
}

#[test]
fn an_unimplemented_restricting_key_refuses_to_load() {
    for (config, path) in [
        (
            r#"{"tools": {"byProvider": {"openai": {"deny": ["exec"]}}}}"#,
            "tools.byProvider",
        ),
        (
            r#"{"tools": {"exec": {"ask": "always"}}}"#,
            "tools.exec.ask",
        ),
        (
            r#"{"agents": {"list": [{"id": "main", "tools": {"byProvider": {}}}]}}"#,
            "agents.list[0].tools.byProvider",
        ),
    ] {
        let e = Env::new(config);
        for args in [&["config", "validate"][..], &["tool", "invoke", "ls"][..]] {
            let (code, v, _) = e.run(args);
            assert_eq!(code, Some(2), "{config} {args:?}: {v}");
            assert_eq!(v["error"]["code"], "CONFIG_INVALID");
            assert_eq!(v["error"]["details"]["path"], path, "{v}");
        }
    }
}

#[test]
fn mcp_over_stdio_obeys_the_policy_and_exits_cleanly() {
    // Stdin closed before any initialize: nothing on stdout, exit 0.
    let e = Env::new(LOCKED_DOWN);
    let out = e.cmd().arg("mcp").stdin(Stdio::null()).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");

    let mut child = e
        .cmd()
        .arg("mcp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(serde_json::from_str(&line).unwrap()).is_err() {
                break;
            }
        }
    });
    let mut send = |v: Value| {
        stdin.write_all(v.to_string().as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    };
    let next = || rx.recv_timeout(Duration::from_secs(60)).unwrap();
    send(json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                           "clientInfo": {"name": "t", "version": "1"}}}));
    assert_eq!(next()["id"], 1);
    send(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
    send(json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}));
    let v = next();
    let names: Vec<&str> = v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"exec"), "{names:?}");
    assert!(names.contains(&"read"), "{names:?}");
    send(json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                "params": {"name": "exec", "arguments": {"command": "touch pwned"}}}));
    let v = next();
    assert_eq!(v["result"]["isError"], true, "{v}");
    assert_eq!(
        v["result"]["structuredContent"]["error"]["code"],
        "TOOL_DENIED"
    );
    assert_eq!(
        v["result"]["structuredContent"]["error"]["details"]["setting"],
        "tools.deny"
    );
    drop(stdin);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert!(!e.ws().join("pwned").exists());
}

#[test]
fn carapace_message_send_obeys_the_policy() {
    let e = Env::new(r#"{"tools": {"deny": ["message"]}}"#);
    let (code, v, _) = e.run(&[
        "message",
        "send",
        "--channel",
        "inbox",
        "--target",
        "user:me",
        "--message",
        "hi",
    ]);
    assert_eq!(code, Some(3), "{v}");
    assert_eq!(v["error"]["code"], "TOOL_DENIED");
    assert_eq!(v["error"]["details"]["setting"], "tools.deny");
    assert!(!e.dir.path().join("state/inbox").exists());
}
