//! Shared helpers of the tool integration tests: a config in a temp dir, calls, hashes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use carapace_policy::{Config, ErrorCode, LoadEnv};
use carapace_tools::{ToolCall, ToolContext, ToolError, invoke};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The owner of the test agent workspace when the tests run as root.
pub const WS_OWNER: u32 = 4242;

/// True when the tests run as root (CI).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub ws: PathBuf,
    pub sbx: PathBuf,
    pub ctx: ToolContext,
}

/// A config whose `agents.defaults.sandbox` is `sandbox` (JSON5 object body) and whose other
/// top-level keys are `extra` (JSON5, may be empty). The agent workspace holds AGENTS.md.
pub fn env(sandbox: &str, extra: &str) -> Env {
    let sandbox = sandbox.to_string();
    env_full(|_| sandbox, extra)
}

/// [`env`] with the sandbox body computed from the agent workspace's path (created first), for
/// configs naming directories in the test's tree.
pub fn env_with(sandbox: impl FnOnce(&Path) -> String) -> Env {
    env_full(sandbox, "")
}

fn env_full(sandbox: impl FnOnce(&Path) -> String, extra: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    let sbx = dir.path().join("sandboxes");
    std::fs::create_dir(&ws).unwrap();
    std::fs::write(ws.join("AGENTS.md"), "agent instructions\n").unwrap();
    std::fs::write(ws.join("secret.txt"), "agent secret\n").unwrap();
    // As root (CI), the agent workspace belongs to an ordinary user, as an operator who runs
    // carapace as root gives it to the user an `rw` sandbox should write as: a sandbox never
    // runs as root, and runs as the workspace's owner.
    if is_root() {
        for p in [&ws, &ws.join("AGENTS.md"), &ws.join("secret.txt")] {
            std::os::unix::fs::chown(p, Some(WS_OWNER), Some(WS_OWNER)).unwrap();
        }
    }
    let sandbox = sandbox(&ws);
    let text = format!(
        r#"{{ agents: {{ defaults: {{ workspace: "{}", sandbox: {{ workspaceRoot: "{}", {sandbox} }} }} }}, {extra} }}"#,
        ws.display(),
        sbx.display()
    );
    let var = |_: &str| None;
    let config = Config::parse(
        &text,
        "test.json5",
        &LoadEnv {
            var: &var,
            home: "/nonexistent-home",
            state_dir: dir.path().join("state"),
        },
    )
    .unwrap();
    let ctx = ToolContext::new(Arc::new(config));
    Env { dir, ws, sbx, ctx }
}

pub async fn call(env: &Env, session: &str, tool: &str, args: Value) -> Result<Value, ToolError> {
    invoke(
        &env.ctx,
        ToolCall {
            tool: tool.into(),
            args,
            session_key: Some(session.into()),
            ..ToolCall::default()
        },
    )
    .await
}

pub async fn ok(env: &Env, session: &str, tool: &str, args: Value) -> Value {
    match call(env, session, tool, args.clone()).await {
        Ok(v) => v,
        Err(e) => panic!("{tool} {args} failed: {e:?}"),
    }
}

pub async fn err(env: &Env, session: &str, tool: &str, args: Value) -> ErrorCode {
    match call(env, session, tool, args.clone()).await {
        Ok(v) => panic!("{tool} {args} succeeded: {v}"),
        Err(e) => e.code(),
    }
}

/// Runs a shell command; returns (exitCode, stdout, stderr).
pub async fn sh(env: &Env, session: &str, cmd: &str) -> (i64, String, String) {
    let v = ok(env, session, "exec", json!({ "command": cmd })).await;
    (
        v["exitCode"].as_i64().unwrap(),
        v["stdout"].as_str().unwrap().to_string(),
        v["stderr"].as_str().unwrap().to_string(),
    )
}

/// sha256 of every regular file (and the target of every symlink) under `dir`.
pub fn tree_hash(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, d: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let ft = e.file_type().unwrap();
            if ft.is_symlink() {
                out.insert(
                    rel,
                    format!("link:{}", std::fs::read_link(&p).unwrap().display()),
                );
            } else if ft.is_dir() {
                out.insert(rel.clone(), "dir".into());
                walk(base, &p, out);
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.insert(rel, hex::encode(Sha256::digest(&bytes)));
            }
        }
    }
    walk(dir, dir, &mut out);
    out
}

pub fn slug_dir(env: &Env, key: &str) -> PathBuf {
    env.sbx.join(carapace_policy::slug::slugify(key))
}

pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}
