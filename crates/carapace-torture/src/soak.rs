//! Soak: the real gateway under a bounded mixed loopback load (reads, writes, exec in a
//! sandbox when bwrap is there, sends to the inbox, MCP calls). Zero bare 500s, zero unexpected
//! errors, RSS at the end within 10 % of RSS after warm-up, no leaked fds, processes or
//! sandbox dirs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::gateway::{Gateway, children, fd_count, rss_kib};
use crate::http::{Answer, request};
use crate::lab::Layout;
use crate::report::Figures;

const T: Duration = Duration::from_secs(60);

/// JSON values of an MCP answer (plain JSON or SSE `data:` lines).
pub fn mcp_values(a: &Answer) -> Vec<Value> {
    if let Some(v) = a.json() {
        return vec![v];
    }
    String::from_utf8_lossy(&a.body)
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect()
}

/// An initialized MCP session id.
pub fn mcp_session(addr: &str, auth: &str) -> Result<String, String> {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "torture", "version": "1"}}});
    let h = [
        ("Authorization", auth),
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
    ];
    let a = request(addr, "POST", "/mcp", &h, init.to_string().as_bytes(), T)?;
    let sid = a
        .header("mcp-session-id")
        .ok_or(format!(
            "initialize: status {} without a session id",
            a.status
        ))?
        .to_string();
    let h2 = [
        ("Authorization", auth),
        ("Content-Type", "application/json"),
        ("Accept", "application/json, text/event-stream"),
        ("Mcp-Session-Id", sid.as_str()),
    ];
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    request(addr, "POST", "/mcp", &h2, note.to_string().as_bytes(), T)?;
    Ok(sid)
}

fn one(gw_addr: &str, auth: &str, i: u64, t: u64, sandboxed: bool) -> Result<(), String> {
    let invoke = |tool: &str, args: Value| -> Result<(), String> {
        let body =
            json!({"tool": tool, "args": args, "sessionKey": crate::lab::SESSION}).to_string();
        let h = [
            ("Authorization", auth),
            ("Content-Type", "application/json"),
        ];
        let a = request(gw_addr, "POST", "/tools/invoke", &h, body.as_bytes(), T)?;
        match a.json() {
            Some(v) if a.status == 200 && v["ok"] == true => Ok(()),
            _ => Err(format!(
                "{tool}: {} {}",
                a.status,
                String::from_utf8_lossy(&a.body)
                    .chars()
                    .take(300)
                    .collect::<String>()
            )),
        }
    };
    let file = format!("soak-{t}-{}.txt", i % 7);
    match i % 6 {
        0 => invoke(
            "write",
            json!({"path": file, "content": format!("soak {i}\n")}),
        ),
        1 => invoke("write", json!({"path": file, "content": "x"}))
            .and_then(|_| invoke("read", json!({"path": file}))),
        2 => invoke("ls", json!({"path": "."})),
        3 if sandboxed || i.is_multiple_of(2) => invoke("exec", json!({"command": "echo soak"})),
        3 => invoke(
            "edit",
            json!({"path": file, "oldText": "x", "newText": "y"}),
        )
        .or(Ok(())),
        4 => invoke(
            "message",
            json!({"action": "send", "target": "user:soak", "message": format!("m {i}")}),
        ),
        _ => {
            let sid = mcp_session(gw_addr, auth)?;
            let h = [
                ("Authorization", auth),
                ("Content-Type", "application/json"),
                ("Accept", "application/json, text/event-stream"),
                ("Mcp-Session-Id", sid.as_str()),
            ];
            let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "ls", "arguments": {"path": "."}}});
            let a = request(gw_addr, "POST", "/mcp", &h, call.to_string().as_bytes(), T)?;
            let vals = mcp_values(&a);
            let okay = a.status == 200
                && vals
                    .iter()
                    .any(|v| v["result"].is_object() && v["result"]["isError"] != true);
            request(gw_addr, "DELETE", "/mcp", &h, b"", T)?;
            if okay {
                Ok(())
            } else {
                Err(format!("mcp tools/call: {} {:?}", a.status, vals))
            }
        }
    }
}

/// Runs the soak for 5 minutes (`--full`) or 20 s.
pub fn run(full: bool) -> Figures {
    let mut f = Figures::new("soak");
    let secs = if full { 300 } else { 20 };
    let sandboxed = crate::escape::which("bwrap").is_some();
    let layout = if sandboxed {
        Layout::Bwrap
    } else {
        Layout::Host
    };
    if !sandboxed {
        f.note("bwrap missing: exec ran on the host layout");
    }
    let gw = match Gateway::start(layout) {
        Ok(g) => g,
        Err(e) => {
            f.problem(format!("gateway: {e}"));
            return f;
        }
    };
    let auth = format!("Bearer {}", gw.token);
    let pid = gw.pid();
    let attempts = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let warm = start + Duration::from_secs(secs / 4);
    let workers: Vec<_> = (0..2u64)
        .map(|t| {
            let (addr, auth, attempts, errors) = (
                gw.addr.clone(),
                auth.clone(),
                attempts.clone(),
                errors.clone(),
            );
            std::thread::spawn(move || {
                let mut i = t;
                while Instant::now() < end {
                    i += 1;
                    attempts.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = one(&addr, &auth, i, t, sandboxed)
                        && let Ok(mut v) = errors.lock()
                    {
                        v.push(e);
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect();
    while Instant::now() < warm {
        std::thread::sleep(Duration::from_millis(200));
    }
    let rss_warm = rss_kib(pid).unwrap_or(0);
    let fds_warm = fd_count(pid).unwrap_or(0);
    let sbx_dirs = || {
        std::fs::read_dir(gw.lab.base().join("sandboxes"))
            .map(|r| r.count())
            .unwrap_or(0)
    };
    let sbx_warm = sbx_dirs();
    for w in workers {
        let _ = w.join();
    }
    // Let closing connections and exited sandboxes settle (bounded wait, not a sync point).
    let settle = Instant::now();
    while (children(pid) > 0 || fd_count(pid).unwrap_or(0) > fds_warm)
        && settle.elapsed() < Duration::from_secs(10)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    let rss_end = rss_kib(pid).unwrap_or(0);
    let fds_end = fd_count(pid).unwrap_or(0);
    let kids = children(pid);
    f.attempts = attempts.load(Ordering::Relaxed);
    let errs = errors.lock().map(|v| v.clone()).unwrap_or_default();
    for e in &errs {
        f.problem(format!("unexpected answer: {e}"));
    }
    f.refused = 0;
    if rss_warm == 0 || rss_end as f64 > rss_warm as f64 * 1.10 {
        f.problem(format!(
            "RSS grew: {rss_warm} KiB after warm-up, {rss_end} KiB at the end"
        ));
    }
    if fds_end > fds_warm {
        f.problem(format!(
            "fds: {fds_warm} after warm-up, {fds_end} at the end"
        ));
    }
    if kids > 0 {
        f.problem(format!("{kids} child processes left"));
    }
    if sbx_dirs() > sbx_warm {
        f.problem(format!(
            "sandbox dirs: {sbx_warm} after warm-up, {} at the end",
            sbx_dirs()
        ));
    }
    f.note(format!(
        "{secs} s, 2 clients, layout {}: {} calls (write, read, ls, exec, message send, MCP session+tools/call); RSS {rss_warm} → {rss_end} KiB, fds {fds_warm} → {fds_end}, children {kids}",
        layout.name(),
        f.attempts
    ));
    f
}
