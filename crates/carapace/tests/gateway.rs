//! The gateway as a real process: the built `carapace` binary on a free loopback port with a
//! temporary state dir, driven over HTTP, MCP over HTTP and MCP over stdio (rmcp's client).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde_json::{Map, Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_carapace");

struct Gw {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    base: String,
    token: String,
    state: PathBuf,
    ready: Value,
    dir: tempfile::TempDir,
}

impl Drop for Gw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `carapace gateway run --bind 127.0.0.1:0 --json` under `umask`, with `config` (JSON5
/// text) as its config file when given; waits for the ready line.
fn start(config: Option<&str>, umask: &str) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut args: Vec<String> = ["gateway", "run", "--bind", "127.0.0.1:0", "--json"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if let Some(text) = config {
        let p = dir.path().join("carapace.json5");
        std::fs::write(&p, text).unwrap();
        args.push("--config".into());
        args.push(p.display().to_string());
    }
    let stderr = std::fs::File::create(dir.path().join("gateway.stderr")).unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(BIN)
        .args(&args)
        .env("CARAPACE_STATE_DIR", &state)
        .env_remove("CARAPACE_TOKEN")
        .env_remove("CARAPACE_CONFIG")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    // A gateway that did not come up must not outlive the test.
    let ready: Value = match serde_json::from_str(&line) {
        Ok(v) => v,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "no ready line: {line:?}; stderr: {}",
                std::fs::read_to_string(dir.path().join("gateway.stderr")).unwrap_or_default()
            )
        }
    };
    assert_eq!(ready["ok"], true, "{ready}");
    let base = ready["address"].as_str().unwrap().to_string();
    // A configured token leaves no file; those tests present their own.
    let token = std::fs::read_to_string(state.join("secrets/gateway-token"))
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    Gw {
        child,
        _stdout: stdout,
        base,
        token,
        state,
        ready,
        dir,
    }
}

impl Gw {
    async fn invoke_raw(&self, auth: Option<&str>, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .post(format!("{}/tools/invoke", self.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("not JSON (HTTP {status}): {text:?}"));
        (status, v)
    }

    async fn invoke(&self, body: Value) -> (u16, Value) {
        let auth = format!("Bearer {}", self.token);
        self.invoke_raw(Some(&auth), body.to_string()).await
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.stderr")).unwrap_or_default()
    }

    fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let until = std::time::Instant::now() + within;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(
                std::time::Instant::now() < until,
                "gateway did not exit; stderr: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn assert_envelope(v: &Value, code: &str) {
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert!(
        v["requestId"].as_str().is_some_and(|r| !r.is_empty()),
        "{v}"
    );
}

#[tokio::test]
async fn http_errors_are_envelopes_with_the_right_status() {
    let gw = start(
        Some(
            "{ gateway: { maxBodyBytes: 65536, tools: { allow: [\"group:fs\", \"group:runtime\"] } } }",
        ),
        "022",
    );
    let body = r#"{"tool":"ls","args":{}}"#;
    let (s, v) = gw.invoke_raw(None, body).await;
    assert_eq!(s, 401);
    assert_envelope(&v, "UNAUTHORIZED");
    let (s, v) = gw.invoke_raw(Some("Bearer not-the-token"), body).await;
    assert_eq!(s, 401);
    assert_envelope(&v, "UNAUTHORIZED");
    let auth = format!("Bearer {}", gw.token);
    let (s, v) = gw.invoke_raw(Some(&auth), "{\"tool\": \"ls\", ").await;
    assert_eq!(s, 400);
    assert_envelope(&v, "BAD_REQUEST");
    let (s, v) = gw.invoke(json!({"tool": "no_such_tool", "args": {}})).await;
    assert_eq!(s, 404);
    assert_envelope(&v, "NOT_FOUND");
    let big = json!({"tool": "write", "args": {"path": "big.txt", "content": "x".repeat(100_000)}});
    let (s, v) = gw.invoke(big).await;
    assert_eq!(s, 413);
    assert_envelope(&v, "TOO_LARGE");
    assert!(!gw.state.join("workspace/big.txt").exists());
    // A policy refusal is a typed 403, never a 500.
    let (s, v) = gw
        .invoke(json!({"tool": "read", "args": {"path": "../../etc/passwd"}}))
        .await;
    assert_eq!(s, 403, "{v}");
    assert_envelope(&v, "PATH_OUTSIDE_ROOT");
    // Unknown route.
    let r = reqwest::get(format!("{}/nope", gw.base)).await.unwrap();
    assert_eq!(r.status(), 404);
    assert_envelope(&r.json().await.unwrap(), "NOT_FOUND");
    // And a success, OpenClaw-shaped.
    let (s, v) = gw
        .invoke(json!({"tool": "write", "args": {"path": "a.txt", "content": "hi"}}))
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["result"]["details"]["mode"], "0644");
    let (s, v) = gw
        .invoke(json!({"tool": "read", "args": {"path": "a.txt"}}))
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["result"]["details"]["content"], "hi");
    // healthz, metrics, audit.
    let h: Value = reqwest::get(format!("{}/healthz", gw.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["ok"], true);
    let m = reqwest::Client::new()
        .get(format!("{}/metrics", gw.base))
        .bearer_auth(&gw.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains(r#"carapace_tool_calls_total{outcome="PATH_OUTSIDE_ROOT",tool="read"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"carapace_tool_calls_total{outcome="ok",tool="write"} 1"#),
        "{m}"
    );
    let audit = std::fs::read_to_string(gw.state.join("audit/audit.jsonl")).unwrap();
    let lines: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{audit}");
    assert_eq!(lines[0]["tool"], "write");
    assert_eq!(lines[0]["bytes"], 2);
}

#[tokio::test]
async fn token_is_generated_0600_under_any_umask_and_reused() {
    for umask in ["077", "000"] {
        let gw = start(None, umask);
        let p = gw.state.join("secrets/gateway-token");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "umask {umask}");
        let dmode = std::fs::metadata(gw.state.join("secrets"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700, "umask {umask}");
        assert_eq!(gw.token.len(), 43);
        assert_eq!(gw.ready["tokenSource"], "file");
        assert!(
            gw.ready["address"]
                .as_str()
                .unwrap()
                .starts_with("http://127.0.0.1:")
        );
    }
}

#[tokio::test]
async fn configured_token_wins_and_carapace_up_prints_connection_help() {
    // `carapace up` with nothing configured: human banner on stdout.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut child = Command::new(BIN)
        .args(["up", "--bind", "127.0.0.1:0"])
        .env("CARAPACE_STATE_DIR", &state)
        .env_remove("CARAPACE_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut banner = String::new();
    while !banner.contains("/mcp\"") {
        let mut l = String::new();
        if out.read_line(&mut l).unwrap() == 0 {
            break;
        }
        banner.push_str(&l);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        banner.contains("listening on http://127.0.0.1:"),
        "{banner}"
    );
    assert!(banner.contains("secrets/gateway-token"), "{banner}");
    assert!(banner.contains("sandbox: mode \"off\""), "{banner}");
    assert!(banner.contains("\"mcp\""), "stdio snippet: {banner}");
    assert!(banner.contains("Bearer"), "http snippet: {banner}");
    assert!(state.join("secrets/gateway-token").exists());

    let gw = start(
        Some("{ gateway: { auth: { token: \"configured-secret\" }, tools: { allow: [\"ls\"] } } }"),
        "022",
    );
    assert_eq!(gw.ready["tokenSource"], "config");
    let (s, _) = gw
        .invoke_raw(
            Some("Bearer configured-secret"),
            r#"{"tool":"ls","args":{}}"#,
        )
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn invalid_config_edit_keeps_the_old_config() {
    let mut gw = start(
        Some(
            "{ gateway: { maxBodyBytes: 65536, tools: { allow: [\"group:fs\", \"group:runtime\"] } } }",
        ),
        "022",
    );
    let cfg = gw.dir.path().join("carapace.json5");
    let body = json!({"tool": "write", "args": {"path": "m.txt", "content": "y".repeat(80_000)}});
    assert_eq!(gw.invoke(body.clone()).await.0, 413);
    let until = |secs| std::time::Instant::now() + Duration::from_secs(secs);
    // An invalid edit: refused (and logged), the old limit stays.
    std::fs::write(&cfg, "{ gateway: { maxBodyBytes: \"lots\" } }").unwrap();
    let deadline = until(20);
    while !gw.stderr().contains("config reload refused") {
        assert!(
            std::time::Instant::now() < deadline,
            "no refusal logged: {}",
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gw.stderr().contains("maxBodyBytes"), "{}", gw.stderr());
    assert_eq!(gw.invoke(body.clone()).await.0, 413);
    // A valid edit applies without a restart.
    std::fs::write(
        &cfg,
        "{ gateway: { maxBodyBytes: 1048576, tools: { allow: [\"write\"] } } }",
    )
    .unwrap();
    let deadline = until(20);
    loop {
        let (s, v) = gw.invoke(body.clone()).await;
        if s == 200 {
            break;
        }
        assert_eq!(s, 413, "{v}");
        assert!(
            std::time::Instant::now() < deadline,
            "valid edit not applied: {}",
            gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gw.sigterm();
    assert!(gw.wait_exit(Duration::from_secs(20)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_during_writes_leaves_old_or_new_content() {
    let mut gw = start(
        Some(
            "{ gateway: { maxBodyBytes: 16777216, tools: { allow: [\"group:fs\", \"group:runtime\"] } } }",
        ),
        "022",
    );
    let a = "a".repeat(4 << 20);
    let b = "b".repeat(4 << 20);
    assert_eq!(
        gw.invoke(json!({"tool": "write", "args": {"path": "f.txt", "content": a}}))
            .await
            .0,
        200
    );
    let base = gw.base.clone();
    let token = gw.token.clone();
    let mut writers = Vec::new();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for w in 0..4 {
        let (base, token, done) = (base.clone(), token.clone(), done.clone());
        let body = json!({"tool": "write", "args": {"path": "f.txt", "content": if w % 2 == 0 { &b } else { &a }}}).to_string();
        writers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let (mut ok, mut refused) = (0, 0);
            for _ in 0..200 {
                match client
                    .post(format!("{base}/tools/invoke"))
                    .bearer_auth(&token)
                    .body(body.clone())
                    .send()
                    .await
                {
                    Ok(r) => {
                        assert_eq!(r.status(), 200);
                        ok += 1;
                        done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Err(_) => {
                        refused += 1;
                        if refused > 3 {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (ok, refused)
        }));
    }
    // SIGTERM once writes are flowing (a few have completed, others are in flight).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while done.load(std::sync::atomic::Ordering::SeqCst) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "writes never completed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gw.sigterm();
    let status = gw.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "exit {status:?}; stderr: {}", gw.stderr());
    let mut total_ok = 0;
    for w in writers {
        let (ok, refused) = w.await.unwrap();
        eprintln!("writer: {ok} ok, {refused} refused after shutdown");
        total_ok += ok;
    }
    assert!(total_ok > 0);
    let content = std::fs::read(gw.state.join("workspace/f.txt")).unwrap();
    assert_eq!(content.len(), 4 << 20);
    assert!(content.iter().all(|&c| c == b'a') || content.iter().all(|&c| c == b'b'));
    let names: Vec<String> = std::fs::read_dir(gw.state.join("workspace"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with('.') || n.contains("carapace"))
        .collect();
    assert_eq!(names, vec!["f.txt".to_string()], "no staging leftovers");
    assert!(gw.stderr().contains("SIGTERM"), "{}", gw.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_on_different_sessions_do_not_cross_talk() {
    if !carapace_testkit::require_bwrap() {
        return;
    }
    let gw = start(
        Some(
            "{ agents: { defaults: { sandbox: { mode: \"all\", backend: \"bwrap\", workspaceAccess: \"session\" } } }, gateway: { tools: { allow: [\"group:fs\", \"group:runtime\"] } } }",
        ),
        "022",
    );
    let gw = std::sync::Arc::new(gw);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let gw = gw.clone();
        tasks.push(tokio::spawn(async move {
            let session = format!("agent:main:client{i}");
            for j in 0..4 {
                let text = format!("client {i} call {j}");
                let (s, v) = gw
                    .invoke(json!({"tool": "write", "sessionKey": session, "args": {"path": "note.txt", "content": text}}))
                    .await;
                assert_eq!(s, 200, "{v}");
                let (s, v) = gw
                    .invoke(json!({"tool": "read", "sessionKey": session, "args": {"path": "note.txt"}}))
                    .await;
                assert_eq!(s, 200, "{v}");
                assert_eq!(v["result"]["details"]["content"], text);
                let (s, v) = gw
                    .invoke(json!({"tool": "exec", "sessionKey": session, "args": {"command": "cat note.txt; ls /workspace | wc -l"}}))
                    .await;
                assert_eq!(s, 200, "{v}");
                assert_eq!(v["result"]["details"]["stdout"], format!("{text}1\n"), "{v}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

async fn mcp_session<S>(client: &rmcp::service::RunningService<rmcp::RoleClient, S>)
where
    S: rmcp::service::Service<rmcp::RoleClient>,
{
    use rmcp::model::CallToolRequestParams;
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for n in ["read", "write", "exec", "ls"] {
        assert!(names.contains(&n), "{names:?}");
    }
    let write = tools.iter().find(|t| t.name == "write").unwrap();
    assert_eq!(write.input_schema["type"], "object");
    assert!(
        write.input_schema["properties"].get("path").is_some(),
        "{:?}",
        write.input_schema
    );

    let mut p = CallToolRequestParams::new("write");
    p.arguments = Some(obj(json!({"path": "mcp.txt", "content": "via mcp"})));
    let r = client.call_tool(p).await.unwrap();
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let mut p = CallToolRequestParams::new("read");
    p.arguments = Some(obj(json!({"path": "mcp.txt"})));
    let r = client.call_tool(p).await.unwrap();
    assert_eq!(r.structured_content.unwrap()["content"], "via mcp");
    let mut p = CallToolRequestParams::new("exec");
    p.arguments = Some(obj(json!({"command": "cat mcp.txt; exit 3"})));
    let r = client.call_tool(p).await.unwrap();
    let sc = r.structured_content.unwrap();
    assert_eq!(sc["exitCode"], 3);
    assert_eq!(sc["stdout"], "via mcp");
    // A typed refusal is an MCP tool error carrying the envelope.
    let mut p = CallToolRequestParams::new("read");
    p.arguments = Some(obj(json!({"path": "../../etc/passwd"})));
    let r = client.call_tool(p).await.unwrap();
    assert_eq!(r.is_error, Some(true));
    assert_eq!(
        r.structured_content.unwrap()["error"]["code"],
        "PATH_OUTSIDE_ROOT"
    );
}

#[tokio::test]
async fn mcp_over_stdio() {
    use rmcp::ServiceExt as _;
    use rmcp::transport::TokioChildProcess;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let mut cmd = tokio::process::Command::new(BIN);
    cmd.arg("mcp")
        .env("CARAPACE_STATE_DIR", &state)
        .env_remove("CARAPACE_CONFIG");
    let transport = TokioChildProcess::builder(cmd)
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
        .0;
    let client = ().serve(transport).await.unwrap();
    mcp_session(&client).await;
    client.cancel().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(state.join("workspace/mcp.txt")).unwrap(),
        "via mcp"
    );
    let audit = std::fs::read_to_string(state.join("audit/audit.jsonl")).unwrap();
    assert!(audit.contains("\"transport\":\"mcp-stdio\""), "{audit}");
}

#[tokio::test]
async fn mcp_over_http() {
    use rmcp::ServiceExt as _;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
    let gw = start(None, "022");
    let transport = StreamableHttpClientTransport::with_client(
        reqwest013::Client::new(),
        StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", gw.base))
            .auth_header(gw.token.clone()),
    );
    let client = ().serve(transport).await.unwrap();
    mcp_session(&client).await;
    client.cancel().await.unwrap();
    assert_eq!(
        std::fs::read_to_string(gw.state.join("workspace/mcp.txt")).unwrap(),
        "via mcp"
    );
    // Without the token the endpoint refuses with a JSON-RPC error carrying the envelope.
    let r = reqwest::Client::new()
        .post(format!("{}/mcp", gw.base))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["jsonrpc"], "2.0", "{v}");
    assert_envelope(&v["error"]["data"], "UNAUTHORIZED");
}

#[tokio::test]
async fn tool_invoke_cli_against_a_running_gateway() {
    // `--gateway` goes through POST /tools/invoke, which serves the file tools only when
    // gateway.tools.allow lists them.
    let gw = start(
        Some("{ gateway: { tools: { allow: [\"group:fs\"] } } }"),
        "022",
    );
    let cli = |args: &[&str], token: Option<&str>| {
        let mut c = Command::new(BIN);
        c.args(args)
            .args(["--gateway", &gw.base, "--json"])
            .env("CARAPACE_STATE_DIR", &gw.state)
            .env_remove("CARAPACE_CONFIG")
            .env_remove("CARAPACE_TOKEN");
        if let Some(t) = token {
            c.env("CARAPACE_TOKEN", t);
        }
        let out = c.output().unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "stdout {:?} stderr {:?}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code(), v)
    };
    let (code, v) = cli(
        &[
            "tool",
            "invoke",
            "write",
            "--args",
            r#"{"path":"cli.txt","content":"remote"}"#,
        ],
        None,
    );
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["result"]["bytes"], 6);
    assert_eq!(
        std::fs::read_to_string(gw.state.join("workspace/cli.txt")).unwrap(),
        "remote"
    );
    // The token from $CARAPACE_TOKEN wins; a wrong one is UNAUTHORIZED, exit 3.
    let (code, v) = cli(&["tool", "invoke", "ls"], Some("wrong"));
    assert_eq!(code, Some(3));
    assert_eq!(v["error"]["code"], "UNAUTHORIZED");
    // A policy refusal comes back typed, with the same exit code as in-process.
    let (code, v) = cli(
        &[
            "tool",
            "invoke",
            "read",
            "--args",
            r#"{"path":"../../etc/passwd"}"#,
        ],
        None,
    );
    assert_eq!(code, Some(3));
    assert_eq!(v["error"]["code"], "PATH_OUTSIDE_ROOT");
    assert!(v["error"]["details"]["requestId"].is_string());
}

#[tokio::test]
async fn a_0600_file_over_http_is_a_typed_403_not_a_500() {
    let inbox = tempfile::tempdir().unwrap();
    let config = format!(
        "{{ channels: {{ inbox: {{ dir: {:?} }} }}, gateway: {{ tools: {{ allow: [\"exec\", \"write\"] }} }} }}",
        inbox.path().display().to_string()
    );
    let gw = start(Some(&config), "022");
    // A file the agent made with a 0600 mode (here: umask 077 in the shell).
    let (s, v) = gw
        .invoke(json!({"tool": "exec", "args": {"command": "umask 077; mkdir -p out; printf 'PNG' > out/chart.png"}}))
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = gw
        .invoke(json!({"tool": "message", "action": "send", "args": {"channel": "inbox", "target": "user:alice", "message": "chart", "media": "/workspace/out/chart.png"}}))
        .await;
    assert_eq!(s, 403, "{v}");
    assert_envelope(&v, "OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE");
    assert_eq!(v["error"]["details"]["mode"], "0600", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("0600"),
        "{v}"
    );
    assert!(v["error"]["hint"].is_string(), "{v}");
    // A 0644 file written by the write tool goes out, and the bytes are counted and audited.
    let (s, v) = gw
        .invoke(json!({"tool": "write", "args": {"path": "out/ok.txt", "content": "hello"}}))
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = gw
        .invoke(json!({"tool": "message", "action": "send", "args": {"channel": "inbox", "target": "user:alice", "media": "/workspace/out/ok.txt"}}))
        .await;
    assert_eq!(s, 200, "{v}");
    let audit = std::fs::read_to_string(gw.state.join("audit/audit.jsonl")).unwrap();
    let sends: Vec<Value> = audit
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["tool"] == "message")
        .collect();
    assert_eq!(sends.len(), 2, "{audit}");
    assert_eq!(
        sends[0]["errorCode"],
        "OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE"
    );
    assert_eq!(sends[0]["destination"], "inbox:user:alice");
    assert_eq!(sends[1]["outcome"], "ok");
    assert_eq!(sends[1]["bytes"], 5);
    let m = reqwest::Client::new()
        .get(format!("{}/metrics", gw.base))
        .bearer_auth(&gw.token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        m.contains(r#"carapace_channel_bytes_sent_total{channel="inbox"} 5"#),
        "{m}"
    );
    // The same refusal through `carapace message send --gateway URL`: exit 3, typed.
    let msg = |media: &str| {
        let out = Command::new(BIN)
            .args([
                "message",
                "send",
                "--channel",
                "inbox",
                "--target",
                "user:bob",
                "--media",
                media,
            ])
            .args(["--gateway", &gw.base, "--json"])
            .env("CARAPACE_STATE_DIR", &gw.state)
            .env_remove("CARAPACE_CONFIG")
            .env_remove("CARAPACE_TOKEN")
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "stdout {:?} stderr {:?}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code(), v)
    };
    let (code, v) = msg("/workspace/out/chart.png");
    assert_eq!(code, Some(3), "{v}");
    assert_eq!(v["error"]["code"], "OUTBOUND_MEDIA_PERMS_TOO_RESTRICTIVE");
    let (code, v) = msg("/workspace/out/ok.txt");
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["attachments"][0]["bytes"], 5, "{v}");
}
