//! The attack: kill -9 a real carapace process (this test binary, re-invoked, running the real
//! `write` tool in a loop) mid-write, many times. Each kill can leave a staging file (hidden
//! from `ls`) in the session's workspace — they used to pile up forever outside the media
//! dir. Now the next start sweeps them all (`StagingSweeper::sweep_config`, what the gateway
//! runs at start), a fresh process's first call sweeps the roots it opens, and a live writer's
//! staging file (another carapace process blocked mid-write) is never removed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use carapace_policy::{Config, LoadEnv};
use carapace_tools::{StagingSweeper, ToolCall, ToolContext, invoke};
use serde_json::json;

const DIR_ENV: &str = "CARAPACE_TOOLS_SWEEP_DIR";
const S: &str = "agent:main:telegram:dm:9";

fn config(dir: &Path) -> Config {
    let text = format!(
        r#"{{ agents: {{ defaults: {{ workspace: "{}", sandbox: {{ mode: "all", scope: "session", workspaceAccess: "session", workspaceRoot: "{}" }} }} }} }}"#,
        dir.join("ws").display(),
        dir.join("sandboxes").display()
    );
    let var = |_: &str| None;
    Config::parse(
        &text,
        "test.json5",
        &LoadEnv {
            var: &var,
            home: "/nonexistent-home",
            state_dir: dir.join("state"),
        },
    )
    .unwrap()
}

fn staging_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if e
                .file_name()
                .to_string_lossy()
                .starts_with(carapace_fs::STAGING_PREFIX)
            {
                out.push(e.path());
            }
        }
    }
    out
}

/// The writer: the `write` tool, forever, on two files of the session's workspace.
#[test]
#[ignore = "run by the sweep tests as a child process"]
fn child_write_tool() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let ctx = ToolContext::new(Arc::new(config(Path::new(&dir))));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let big = "z".repeat(6 << 20);
    loop {
        for p in ["deep/er/big.txt", "top.txt"] {
            rt.block_on(invoke(
                &ctx,
                ToolCall {
                    tool: "write".into(),
                    args: json!({"path": p, "content": big}),
                    session_key: Some(S.into()),
                    ..ToolCall::default()
                },
            ))
            .unwrap();
        }
    }
}

/// Another carapace process streaming stdin into `/workspace/slow` (blocks mid-write).
#[test]
#[ignore = "run by the sweep tests as a child process"]
fn child_streamer() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let root = carapace_fs::Root::open(Path::new(&dir)).unwrap();
    let mut stdin = std::io::stdin().lock();
    root.write_from(
        Path::new("slow"),
        &mut stdin,
        &carapace_fs::WriteOptions::default(),
    )
    .unwrap();
}

fn spawn(name: &str, dir: &Path, stdin: Stdio) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", name, "--test-threads=1"])
        .env(DIR_ENV, dir)
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// SIGKILLs `rounds` writers, then more until the last one killed left a staging file (each
/// writer's own first call sweeps what the ones before it left, so only the last one's
/// leftovers remain).
fn kill_writers(dir: &Path, rounds: u64) {
    for round in 0..300u64 {
        let mut c = spawn("child_write_tool", dir, Stdio::null());
        std::thread::sleep(Duration::from_millis(40 + (round * 13) % 70));
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
        if round + 1 >= rounds && !staging_files(dir).is_empty() {
            return;
        }
    }
}

#[test]
fn the_next_start_leaves_no_staging_files() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("ws")).unwrap();
    kill_writers(t.path(), 50);
    let left = staging_files(t.path());
    assert!(
        !left.is_empty(),
        "no kill landed mid-write; the test proves nothing"
    );
    let bytes: u64 = left
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    // Hidden from ls, but there.
    let session_dir = left[0]
        .ancestors()
        .find(|a| a.parent() == Some(&t.path().join("sandboxes")))
        .unwrap()
        .to_path_buf();
    assert!(session_dir.starts_with(t.path().join("sandboxes")));

    // The next start.
    let summary = StagingSweeper::new().sweep_config(&config(t.path()));
    assert_eq!(summary.removed, left.len() as u64, "{summary:?}");
    assert_eq!(summary.bytes, bytes);
    assert!(summary.incomplete.is_empty());
    assert!(
        staging_files(t.path()).is_empty(),
        "{:?}",
        staging_files(t.path())
    );
    // The files the writer finished are whole.
    for p in ["deep/er/big.txt", "top.txt"] {
        if let Ok(b) = std::fs::read(session_dir.join(p)) {
            assert_eq!(b.len(), 6 << 20, "{p}");
        }
    }
    eprintln!(
        "{} staging files ({bytes} bytes) of 50 SIGKILLed writes swept at the next start",
        left.len()
    );
}

#[test]
fn a_fresh_process_sweeps_the_roots_it_opens() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("ws")).unwrap();
    kill_writers(t.path(), 15);
    assert!(
        !staging_files(t.path()).is_empty(),
        "no kill landed mid-write"
    );
    // No start-up sweep: the first call of the session sweeps its writable mounts.
    let ctx = ToolContext::new(Arc::new(config(t.path())));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let v = rt
        .block_on(invoke(
            &ctx,
            ToolCall {
                tool: "ls".into(),
                args: json!({}),
                session_key: Some(S.into()),
                ..ToolCall::default()
            },
        ))
        .unwrap();
    assert_eq!(v["path"], "/workspace");
    assert!(
        staging_files(&t.path().join("sandboxes")).is_empty(),
        "{:?}",
        staging_files(t.path())
    );
}

#[test]
fn a_concurrent_writers_staging_file_survives_the_start_sweep() {
    let t = tempfile::tempdir().unwrap();
    let ws = t.path().join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    let mut c = spawn("child_streamer", &ws, Stdio::piped());
    let mut stdin = c.stdin.take().unwrap();
    stdin.write_all(&[b'a'; 50_000]).unwrap();
    stdin.flush().unwrap();
    let mut tries = 0;
    let staged = loop {
        if let Some(p) = staging_files(&ws).into_iter().next() {
            break p;
        }
        tries += 1;
        assert!(tries < 6000, "the writer never staged");
        std::thread::sleep(Duration::from_millis(10));
    };
    // Ancient by its mtime: age is not what protects it, its writer's lock is.
    std::fs::File::options()
        .write(true)
        .open(&staged)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(90 * 86400))
        .unwrap();
    let summary = StagingSweeper::new().sweep_config(&config(t.path()));
    assert_eq!((summary.removed, summary.busy), (0, 1), "{summary:?}");
    assert!(staged.exists());
    stdin.write_all(b"end").unwrap();
    drop(stdin);
    assert!(c.wait().unwrap().success());
    assert_eq!(std::fs::read(ws.join("slow")).unwrap().len(), 50_003);
    assert!(staging_files(t.path()).is_empty());
}
