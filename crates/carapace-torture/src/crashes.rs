//! Crashes: a worker process writes, edits, patches, saves media and appends audit records in
//! a loop and is SIGKILLed at a random moment, over and over. After each kill every target is
//! one whole version (old or new, never torn), the next start's sweep leaves no staging file,
//! and the audit log parses line by line.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use carapace_fs::{AppendOptions, Root, STAGING_PREFIX};
use serde_json::json;

use crate::lab::{self, Layout};
use crate::report::Figures;

const WRITE_LINES: usize = 3000;
const EDIT_LINES: usize = 400;
const PATCH_LINES: usize = 60;
const MEDIA_LINES: usize = 1500;

/// Version `v` of a file of `n` lines: every line names the version, so a torn file is a mix.
fn version(v: u64, n: usize) -> String {
    (0..n)
        .map(|j| format!("ver {v} line {j} {}\n", "x".repeat(j % 17)))
        .collect()
}

/// The version of a whole file, or why it is torn.
fn check(text: &str, n: usize) -> Result<u64, String> {
    let v = text
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| format!("no version header ({} bytes)", text.len()))?;
    if text == version(v, n) {
        Ok(v)
    } else {
        Err(format!(
            "torn: starts as version {v} but is not that version ({} bytes)",
            text.len()
        ))
    }
}

/// The worker: loops over the operations until killed.
pub fn worker(base: &Path, seed: u64) -> Figures {
    let mut f = Figures::new("crashes");
    carapace_fs::testing::force_staging(seed % 2 == 1);
    let ctx = match lab::context(base, Layout::Host, "") {
        Ok(c) => c,
        Err(e) => {
            f.problem(e);
            return f;
        }
    };
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        f.problem("runtime");
        return f;
    };
    let ws = base.join("ws");
    let call = |tool: &str, args: serde_json::Value| carapace_tools::ToolCall {
        tool: tool.into(),
        args,
        session_key: Some(lab::SESSION.into()),
        ..Default::default()
    };
    let state = base.join("state");
    let mut i = seed * 1_000_000;
    rt.block_on(async {
        loop {
            i += 1;
            let r = match i % 5 {
                0 => {
                    let c = call("write", json!({ "path": "w.txt", "content": version(i, WRITE_LINES) }));
                    carapace_tools::invoke(&ctx, c).await.map(|_| ())
                }
                1 => {
                    let old = std::fs::read_to_string(ws.join("e.txt")).unwrap_or_default();
                    let c = call("edit", json!({ "path": "e.txt", "oldText": old, "newText": version(i, EDIT_LINES) }));
                    carapace_tools::invoke(&ctx, c).await.map(|_| ())
                }
                2 => {
                    let old = std::fs::read_to_string(ws.join("p.txt")).unwrap_or_default();
                    let mut body = String::from("*** Begin Patch\n*** Update File: p.txt\n@@\n");
                    for l in old.lines() {
                        body.push_str(&format!("-{l}\n"));
                    }
                    for l in version(i, PATCH_LINES).lines() {
                        body.push_str(&format!("+{l}\n"));
                    }
                    body.push_str("*** End Patch\n");
                    carapace_tools::invoke(&ctx, call("apply_patch", json!({ "input": body }))).await.map(|_| ())
                }
                3 => {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(version(i, MEDIA_LINES));
                    let c = call("media_save", json!({ "base64": b64, "filename": "m.txt" }));
                    carapace_tools::invoke(&ctx, c).await.map(|_| ())
                }
                _ => {
                    if let Ok(root) = Root::open(&state)
                        && let Ok(mut log) = root.open_append(Path::new("audit.jsonl"), &AppendOptions::default())
                    {
                        let rec = json!({ "i": i, "pad": "p".repeat(3000) }).to_string() + "\n";
                        let _ = log.append(rec.as_bytes());
                    }
                    Ok(())
                }
            };
            if let Err(e) = r {
                eprintln!("crash worker: operation {i} failed: {e:?}");
            }
        }
    });
    f
}

/// Kills the worker `cycles` times and checks the aftermath each time.
pub fn run(full: bool) -> Figures {
    let mut f = Figures::new("crashes");
    let cycles: u64 = if full { 1000 } else { 50 };
    let lab = match lab::Lab::new(Layout::Host, "") {
        Ok(l) => l,
        Err(e) => {
            f.problem(e);
            return f;
        }
    };
    let ws = lab.ws.clone();
    let media = lab.state.join("media");
    let init = [
        ("w.txt", WRITE_LINES),
        ("e.txt", EDIT_LINES),
        ("p.txt", PATCH_LINES),
    ];
    for (name, n) in init {
        if let Err(e) = std::fs::write(ws.join(name), version(0, n)) {
            f.problem(format!("init {name}: {e}"));
            return f;
        }
    }
    let Ok(exe) = std::env::current_exe() else {
        f.problem("current_exe");
        return f;
    };
    let mut staged_seen = 0u64;
    let mut versions_seen = std::collections::BTreeSet::new();
    for c in 0..cycles {
        let child = Command::new(&exe)
            .args(["worker", "crash"])
            .arg(lab.base())
            .arg(c.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match child {
            Ok(ch) => ch,
            Err(e) => {
                f.problem(format!("spawn: {e}"));
                return f;
            }
        };
        std::thread::sleep(Duration::from_millis(fastrand::u64(5..250)));
        let _ = child.kill();
        let _ = child.wait();
        f.attempts += 1;
        let mut intact = true;
        for (name, n) in init {
            let text = std::fs::read_to_string(ws.join(name)).unwrap_or_default();
            match check(&text, n) {
                Ok(v) => {
                    versions_seen.insert((name, v));
                }
                Err(e) => {
                    intact = false;
                    f.problem(format!("cycle {c}: {name} {e}"));
                }
            }
        }
        // Media files: each whole; staging leftovers are counted, then swept below.
        for e in std::fs::read_dir(&media).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with(STAGING_PREFIX) {
                staged_seen += 1;
                continue;
            }
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            if let Err(err) = check(&text, MEDIA_LINES) {
                intact = false;
                f.problem(format!("cycle {c}: media {name} {err}"));
            }
            let _ = std::fs::remove_file(e.path());
        }
        staged_seen += count_staging(&ws);
        // The next start: a fresh sweeper over the same roots.
        let sweeper = carapace_tools::StagingSweeper::new();
        sweeper.sweep_once(&ws);
        sweeper.sweep_once(&media);
        let left = count_staging(&ws) + count_staging(&media);
        if left > 0 {
            intact = false;
            f.problem(format!(
                "cycle {c}: {left} staging files survived the next start's sweep"
            ));
        }
        let log = std::fs::read(lab.state.join("audit.jsonl")).unwrap_or_default();
        let text = String::from_utf8_lossy(&log);
        let mut lines: Vec<&str> = text.split('\n').collect();
        let tail = lines.pop().unwrap_or("");
        for (k, l) in lines.iter().enumerate() {
            if !l.is_empty() && serde_json::from_str::<serde_json::Value>(l).is_err() {
                intact = false;
                f.problem(format!(
                    "cycle {c}: audit line {k} does not parse ({} bytes)",
                    l.len()
                ));
            }
        }
        if !tail.is_empty() {
            f.note(format!(
                "cycle {c}: audit log ends in an unterminated record ({} bytes)",
                tail.len()
            ));
        }
        if intact {
            f.refused += 1;
        }
    }
    f.note(format!(
        "{cycles} SIGKILLs; {} distinct (file, version) states observed; {staged_seen} staging files left by killed writers, all swept",
        versions_seen.len()
    ));
    f
}

fn count_staging(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(STAGING_PREFIX))
        .count() as u64
}
