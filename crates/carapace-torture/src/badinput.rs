//! Bad input: every HTTP route, MCP method and CLI entry point given malformed JSON, wrong
//! types for every argument, huge and deeply nested bodies, unknown keys and invalid UTF-8.
//! Each answer must be a typed envelope (or JSON-RPC error) with a sensible status: no 5xx,
//! no `INTERNAL`, no panic, no hang.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::gateway::{Gateway, carapace_bin};
use crate::http::{Answer, request};
use crate::lab::Layout;
use crate::report::Figures;
use crate::soak::{mcp_session, mcp_values};

const T: Duration = Duration::from_secs(10);

/// Malformed bodies every JSON route gets.
fn bodies(full: bool) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = [
        "",
        "{",
        "}",
        "[]",
        "null",
        "123",
        "\"str\"",
        "{\"tool\":",
        "{\"tool\": read}",
        "{'tool':'read'}",
        "{\"tool\":\"read\",}",
        "{\"tool\":\"\\ud800\"}",
        "{\"tool\":\"read\"}{\"tool\":\"read\"}",
        "\u{FEFF}{\"tool\":\"read\"}",
        "{\"tool\":null}",
        "{\"tool\":1}",
        "{\"tool\":[\"read\"]}",
        "{\"tool\":\"read\",\"args\":[]}",
        "{\"tool\":\"read\",\"args\":\"x\"}",
        "{\"tool\":\"read\",\"args\":1}",
        "{\"tool\":\"read\",\"bogus\":1}",
        "{\"tool\":\"read\",\"sessionKey\":1}",
        "{\"tool\":\"read\",\"sessionKey\":\"\\u0000\"}",
        "{\"tool\":\"read\",\"idempotencyKey\":\"\"}",
        "{\"tool\":\"read\",\"idempotencyKey\":{}}",
        "{\"tool\":\"\",\"args\":{}}",
        "{\"name\":\"read\",\"tool\":\"write\"}",
        "{\"tool\":\"nosuchtool\"}",
        "{\"tool\":\"read\",\"args\":{\"path\":\"AGENTS.md\",\"bogus\":true}}",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"nope\"}",
    ]
    .iter()
    .map(|s| (format!("{s:?}"), s.as_bytes().to_vec()))
    .collect();
    v.push((
        "invalid UTF-8 in a string".into(),
        b"{\"tool\":\"re\xffad\",\"args\":{}}".to_vec(),
    ));
    v.push(("invalid UTF-8 only".into(), b"\xff\xfe\xfd".to_vec()));
    if !full {
        return v;
    }
    v.push(("100000 nested [".into(), "[".repeat(100_000).into_bytes()));
    v.push((
        "20000 nested objects".into(),
        format!("{}1{}", "{\"a\":".repeat(20_000), "}".repeat(20_000)).into_bytes(),
    ));
    v.push((
        "nested args 5000".into(),
        format!(
            "{{\"tool\":\"read\",\"args\":{}{{}}{}}}",
            "{\"a\":".repeat(5000),
            "}".repeat(5000)
        )
        .into_bytes(),
    ));
    v.push((
        "9 MiB string".into(),
        format!(
            "{{\"tool\":\"read\",\"args\":{{\"path\":\"{}\"}}}}",
            "a".repeat(9 << 20)
        )
        .into_bytes(),
    ));
    v.push((
        "1 MiB path".into(),
        format!(
            "{{\"tool\":\"read\",\"args\":{{\"path\":\"{}\"}}}}",
            "a".repeat(1 << 20)
        )
        .into_bytes(),
    ));
    v
}

/// Values of every JSON type, to put where an argument of another type belongs.
fn wrong_values() -> Vec<Value> {
    vec![
        json!(1),
        json!(-1),
        json!(1.5),
        json!(1e308),
        json!(true),
        json!(null),
        json!([]),
        json!({}),
        json!("s"),
        json!(["a", 1]),
        json!({"k": "v"}),
        json!(u64::MAX),
        json!("\u{0}"),
    ]
}

/// Checks one HTTP answer; returns a problem if it is not a sensible typed one.
fn judge(a: &Result<Answer, String>) -> Result<bool, String> {
    let a = a.as_ref().map_err(|e| format!("no answer: {e}"))?;
    if a.status >= 500 && a.status != 504 {
        return Err(format!(
            "status {} {}",
            a.status,
            String::from_utf8_lossy(&a.body)
                .chars()
                .take(200)
                .collect::<String>()
        ));
    }
    let vals = mcp_values(a);
    let text = String::from_utf8_lossy(&a.body);
    if text.contains("\"INTERNAL\"") || text.contains("panicked") {
        return Err(format!(
            "status {} INTERNAL/panic: {}",
            a.status,
            text.chars().take(300).collect::<String>()
        ));
    }
    if a.status >= 400 {
        let typed = vals
            .iter()
            .any(|v| v["error"]["code"].is_string() || v["error"]["code"].is_i64());
        if !typed && !matches!(a.status, 404 | 405 | 406 | 413 | 414 | 415 | 431) {
            return Err(format!(
                "status {} without a typed envelope: {}",
                a.status,
                text.chars().take(200).collect::<String>()
            ));
        }
        return Ok(true);
    }
    // 2xx: a JSON-RPC error, a tool error result, or a success.
    Ok(vals
        .iter()
        .any(|v| v["error"].is_object() || v["result"]["isError"] == true || v["ok"] == false))
}

fn record(f: &mut Figures, what: &str, r: Result<bool, String>) {
    f.attempts += 1;
    if f.attempts.is_multiple_of(200) {
        eprintln!("    badinput: {} requests", f.attempts);
    }
    match r {
        Ok(true) => f.refused += 1,
        Ok(false) => {}
        Err(e) => f.problem(format!("{what}: {e}")),
    }
}

/// Runs the family (the same in both forms: it is bounded by the inputs, not by time).
pub fn run(full: bool) -> Figures {
    let mut f = Figures::new("badinput");
    let gw = match Gateway::start(Layout::Host) {
        Ok(g) => g,
        Err(e) => {
            f.problem(format!("gateway: {e}"));
            return f;
        }
    };
    let auth = format!("Bearer {}", gw.token);
    let json_h = |extra: Option<&str>| -> Vec<(String, String)> {
        let mut h = vec![
            ("Authorization".to_string(), auth.clone()),
            ("Content-Type".to_string(), "application/json".to_string()),
            (
                "Accept".to_string(),
                "application/json, text/event-stream".to_string(),
            ),
        ];
        if let Some(sid) = extra {
            h.push(("Mcp-Session-Id".into(), sid.into()));
        }
        h
    };
    let send = |method: &str, path: &str, h: &[(String, String)], body: &[u8]| {
        let hv: Vec<(&str, &str)> = h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        // GET /mcp with a session is the server's event stream: open by design, so only its
        // head is judged.
        let t = if method == "GET" && path == "/mcp" {
            Duration::from_secs(2)
        } else {
            T
        };
        request(&gw.addr, method, path, &hv, body, t)
    };
    let sid = mcp_session(&gw.addr, &auth).ok();
    let send = |method: &str, path: &str, h: &[(String, String)], body: &[u8]| {
        let t0 = Instant::now();
        let r = send(method, path, h, body);
        if t0.elapsed() > Duration::from_secs(3) {
            eprintln!(
                "    slow: {method} {path} {} bytes took {:.1} s",
                body.len(),
                t0.elapsed().as_secs_f64()
            );
        }
        r
    };
    if sid.is_none() {
        f.problem("could not open an MCP session");
    }
    // Every route × every malformed body.
    if !full {
        f.note("short form: bodies of at most a few hundred bytes; the huge and deeply nested bodies run in --full");
    }
    let routes = [
        ("POST", "/tools/invoke"),
        ("POST", "/mcp"),
        ("GET", "/mcp"),
        ("DELETE", "/mcp"),
        ("GET", "/metrics"),
        ("GET", "/healthz"),
        ("GET", "/nope"),
        ("PUT", "/tools/invoke"),
        ("GET", "/tools/invoke"),
    ];
    for (m, p) in routes {
        for (label, body) in bodies(full) {
            let h = json_h(if p == "/mcp" { sid.as_deref() } else { None });
            record(
                &mut f,
                &format!("{m} {p} {label}"),
                judge(&send(m, p, &h, &body)),
            );
        }
    }
    // Authentication forms.
    for a in [
        "",
        "Bearer",
        "Bearer ",
        "Basic Zm9vOmJhcg==",
        "Bearer wrong",
        &"B".repeat(20000),
    ] {
        let h = vec![
            ("Authorization".to_string(), a.to_string()),
            ("Content-Type".to_string(), "application/json".to_string()),
        ];
        record(
            &mut f,
            &format!("auth {:?}", a.chars().take(20).collect::<String>()),
            judge(&send("POST", "/tools/invoke", &h, b"{\"tool\":\"read\"}")),
        );
    }
    // A header value HTTP itself forbids (DEL): hyper answers a bare 400 before any request
    // exists to carry an envelope (documented in docs/gateway.md).
    f.attempts += 1;
    let h = [("Authorization", "Bearer \u{7f}")];
    match request(&gw.addr, "POST", "/tools/invoke", &h, b"{}", T) {
        Ok(a) if a.status == 400 => f.refused += 1,
        other => f.problem(format!("auth header with DEL: {other:?}")),
    }
    // Every tool × every argument × every wrong type, over HTTP and MCP.
    for spec in carapace_tools::tool_specs() {
        let mut names = spec.argument_names();
        names.push("bogusArgument".into());
        for arg in &names {
            for bad in wrong_values() {
                let args = json!({ arg.clone(): bad });
                let body = json!({"tool": spec.name, "args": args}).to_string();
                record(
                    &mut f,
                    &format!("http {} {arg}={bad}", spec.name),
                    judge(&send(
                        "POST",
                        "/tools/invoke",
                        &json_h(None),
                        body.as_bytes(),
                    )),
                );
                let call = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": spec.name, "arguments": args}});
                record(
                    &mut f,
                    &format!("mcp {} {arg}={bad}", spec.name),
                    judge(&send(
                        "POST",
                        "/mcp",
                        &json_h(sid.as_deref()),
                        call.to_string().as_bytes(),
                    )),
                );
            }
        }
    }
    // MCP methods with bad params.
    let methods = [
        "initialize",
        "tools/list",
        "tools/call",
        "ping",
        "resources/list",
        "prompts/list",
        "nope",
        "notifications/initialized",
        "",
    ];
    for m in methods {
        for params in [
            json!(null),
            json!([]),
            json!(1),
            json!("x"),
            json!({"name": 1}),
            json!({"name": "read", "arguments": []}),
            json!({"cursor": {}}),
        ] {
            for id in [json!(1), json!(null), json!({}), json!("x"), json!(1.5)] {
                let body =
                    json!({"jsonrpc": "2.0", "id": id, "method": m, "params": params}).to_string();
                record(
                    &mut f,
                    &format!("mcp {m} id={id} params={params}"),
                    judge(&send(
                        "POST",
                        "/mcp",
                        &json_h(sid.as_deref()),
                        body.as_bytes(),
                    )),
                );
            }
        }
    }
    for body in [
        json!([]),
        json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]),
        json!({"jsonrpc": "1.0", "id": 1, "method": "ping"}),
        json!({"id": 1, "method": "ping"}),
        json!({"jsonrpc": "2.0"}),
    ] {
        record(
            &mut f,
            &format!("mcp {body}"),
            judge(&send(
                "POST",
                "/mcp",
                &json_h(sid.as_deref()),
                body.to_string().as_bytes(),
            )),
        );
    }
    record(
        &mut f,
        "mcp unknown session",
        judge(&send(
            "POST",
            "/mcp",
            &json_h(Some("nope")),
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}",
        )),
    );
    // The gateway must still be up and answer.
    match request(&gw.addr, "GET", "/healthz", &[], b"", T) {
        Ok(a) if a.status == 200 => {}
        other => f.problem(format!(
            "the gateway does not answer /healthz after the bad input: {other:?}"
        )),
    }
    let http_count = f.attempts;
    cli(&mut f, &gw, full);
    f.note(format!(
        "{http_count} HTTP/MCP requests, {} CLI runs",
        f.attempts - http_count
    ));
    f
}

/// Runs `carapace` with `args` (and `stdin`) under a deadline; a panic, a signal, a hang or an
/// `INTERNAL` answer is a problem.
fn run_cli(f: &mut Figures, gw: &Gateway, args: &[std::ffi::OsString], stdin: &[u8]) {
    let what = format!(
        "cli {:?}",
        args.iter()
            .map(|a| a.to_string_lossy().chars().take(40).collect::<String>())
            .collect::<Vec<_>>()
    );
    f.attempts += 1;
    let child = Command::new(carapace_bin())
        .args(args)
        .env("CARAPACE_STATE_DIR", &gw.lab.state)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return f.problem(format!("{what}: spawn: {e}")),
    };
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin);
    }
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() > T => {
                let _ = child.kill();
                let _ = child.wait();
                return f.problem(format!("{what}: no exit within 60 s (hang)"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return f.problem(format!("{what}: wait: {e}")),
        }
    }
    let out = match child.wait_with_output() {
        Ok(o) => o,
        Err(e) => return f.problem(format!("{what}: {e}")),
    };
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        None => f.problem(format!("{what}: killed by a signal")),
        Some(101) => f.problem(format!(
            "{what}: panic: {}",
            all.chars().take(300).collect::<String>()
        )),
        Some(_) if all.contains("\"INTERNAL\"") || all.contains("panicked") => f.problem(format!(
            "{what}: INTERNAL/panic: {}",
            all.chars().take(300).collect::<String>()
        )),
        Some(0) => {}
        Some(_) => f.refused += 1,
    }
}

fn cli(f: &mut Figures, gw: &Gateway, full: bool) {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;
    let s = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
    let cfg = gw.lab.base().join("bad.json5");
    let bad_args = [
        "{",
        "[]",
        "1",
        "null",
        "{\"path\":1}",
        "{\"path\":[]}",
        "{\"bogus\":1}",
        "{\"path\":\"\\u0000\"}",
    ];
    let all = [
        "read",
        "write",
        "edit",
        "apply_patch",
        "ls",
        "exec",
        "message",
        "media_save",
        "browser",
        "nosuch",
    ];
    // The short form spares CI most process starts; --full gives every tool the bad --args.
    let tools = if full { &all[..] } else { &all[..4] };
    for tool in tools {
        for a in bad_args {
            run_cli(
                f,
                gw,
                &s(&["--json", "tool", "invoke", tool, "--args", a]),
                b"",
            );
        }
    }
    run_cli(
        f,
        gw,
        &s(&[
            "--json",
            "tool",
            "invoke",
            "read",
            "--args",
            &"[".repeat(100_000),
        ]),
        b"",
    );
    let mut inv = s(&["--json", "tool", "invoke", "read", "--args"]);
    inv.push(OsString::from_vec(b"{\"path\":\"\xff\"}".to_vec()));
    run_cli(f, gw, &inv, b"");
    for a in [
        &["nosuchcommand"][..],
        &["--json", "tool"],
        &["--json", "tool", "invoke"],
        &["--config", "/nonexistent/x.json5", "config", "validate"],
        &["--json", "message", "send"],
    ] {
        run_cli(f, gw, &s(a), b"");
    }
    let configs: Vec<Vec<u8>> = vec![
        b"{".to_vec(),
        b"[]".to_vec(),
        b"\xff\xfe".to_vec(),
        "[".repeat(100_000).into_bytes(),
        b"{ gateway: { maxBodyBytes: \"lots\" } }".to_vec(),
        b"{ bogusKey: 1 }".to_vec(),
        b"{ agents: { defaults: { sandbox: { mode: 7 } } } }".to_vec(),
        b"{ tools: { exec: [] } }".to_vec(),
        b"{ gateway: { auth: { token: \"${UNSET_TORTURE_VAR}\" } } }".to_vec(),
        "a".repeat(3 << 20).into_bytes(),
    ];
    for c in configs {
        if std::fs::write(&cfg, &c).is_ok() {
            let mut a = vec![OsString::from("--config"), cfg.clone().into_os_string()];
            a.extend(s(&["--json", "config", "validate"]));
            run_cli(f, gw, &a, b"");
        }
    }
    // MCP over stdio: malformed lines, then EOF; it must answer and exit.
    let lines = "{\n[]\nnull\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":1}}\n\u{FEFF}x\n{\"jsonrpc\":\"2.0\",\"id\":{},\"method\":\"nope\"}\n";
    let mut stdin = lines.as_bytes().to_vec();
    stdin.extend_from_slice(b"\xff\xfe\n");
    stdin.extend_from_slice("[".repeat(100_000).as_bytes());
    stdin.push(b'\n');
    run_cli(f, gw, &s(&["mcp"]), &stdin);
}
