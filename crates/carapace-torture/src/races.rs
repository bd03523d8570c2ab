//! Races: a thread swaps one path between a regular file, a symlink to the secret, a directory
//! and a FIFO, while reads, writes, edits and sends to the inbox run on it in a loop. No secret
//! byte may reach any output, the inbox, the media store or a written file.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use carapace_policy::ErrorCode;
use serde_json::json;

use crate::lab::{Lab, Layout, diff, tree_contains};
use crate::report::Figures;

/// Replaces `p` with kind `k` (0 file, 1 symlink to the secret, 2 directory, 3 FIFO).
fn swap(p: &Path, k: u64, secret: &Path) {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            let _ = std::fs::remove_dir_all(p);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(p);
        }
        Err(_) => {}
    }
    let _ = match k {
        0 => std::fs::write(p, "old benign content\n"),
        1 => std::os::unix::fs::symlink(secret, p),
        2 => std::fs::create_dir(p).and_then(|_| std::fs::write(p.join("inner"), "inner old\n")),
        _ => rustix::fs::mknodat(
            rustix::fs::CWD,
            p,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o666),
            0,
        )
        .map_err(std::io::Error::from),
    };
}

/// Runs `attempts` operations against the swapping path.
pub fn run(full: bool) -> Figures {
    let mut f = Figures::new("races");
    let attempts: u64 = if full { 100_000 } else { 3_000 };
    let lab = match Lab::new(Layout::Host, "") {
        Ok(l) => l,
        Err(e) => {
            f.problem(e);
            return f;
        }
    };
    // Plain 0644 files so sends succeed when the race is lost by the swapper.
    let target = lab.ws.join("target");
    let secret = lab.canary.join("secret.txt");
    let baseline = lab.outside_snapshot();
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicU64::new(0));
    let swapper = {
        let (stop, swaps, target, secret) =
            (stop.clone(), swaps.clone(), target.clone(), secret.clone());
        std::thread::spawn(move || {
            let mut k = 0u64;
            while !stop.load(Ordering::Relaxed) {
                swap(&target, k % 4, &secret);
                k += 1;
                swaps.store(k, Ordering::Relaxed);
            }
        })
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            f.problem(format!("runtime: {e}"));
            return f;
        }
    };
    let mut ok = 0u64;
    rt.block_on(async {
        for i in 0..attempts {
            let (tool, args) = match i % 5 {
                0 => ("read", json!({ "path": "target" })),
                1 => (
                    "write",
                    json!({ "path": "target", "content": "new benign\n" }),
                ),
                2 => (
                    "edit",
                    json!({ "path": "target", "oldText": "old", "newText": "new" }),
                ),
                3 => ("ls", json!({ "path": "target" })),
                _ => (
                    "message",
                    json!({ "action": "send", "target": "user:race", "path": "target" }),
                ),
            };
            f.attempts += 1;
            match tokio::time::timeout(Duration::from_secs(20), lab.invoke(tool, args)).await {
                Err(_) => f.problem(format!("{tool}: no answer within 20 s (hang)")),
                Ok(Err(e)) if e.code() == ErrorCode::Internal => {
                    f.problem(format!("{tool}: INTERNAL {e:?}"))
                }
                Ok(Err(e)) => {
                    f.refused += 1;
                    if format!("{e:?}").contains(&lab.secret) {
                        f.problem(format!("{tool}: the error carries the secret"));
                    }
                }
                Ok(Ok(v)) => {
                    ok += 1;
                    if v.to_string().contains(&lab.secret) {
                        f.problem(format!("{tool}: the result carries the secret"));
                    }
                }
            }
        }
    });
    stop.store(true, Ordering::Relaxed);
    let _ = swapper.join();
    for dir in [&lab.state, &lab.ws] {
        if let Some(hit) = tree_contains(dir, lab.secret.as_bytes()) {
            f.problem(format!("secret bytes in {}", hit.display()));
        }
    }
    let changed = diff(&baseline, &lab.outside_snapshot());
    if !changed.is_empty() {
        f.problem(format!("outside the roots: {}", changed.join(", ")));
    }
    let inbox = count_files(&lab.state.join("inbox"));
    f.note(format!(
        "{} swaps during {} operations (read, write, edit, ls, message send to the inbox); {ok} succeeded on a winning regular file, {inbox} inbox files checked",
        swaps.load(Ordering::Relaxed),
        f.attempts
    ));
    f
}

fn count_files(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| {
            let p = e.path();
            if p.is_dir() { count_files(&p) } else { 1 }
        })
        .sum()
}
