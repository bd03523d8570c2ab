//! Escape corpus: every hostile path × every file tool and the outbound reader × both
//! resolvers × the workspace layouts, with the canary tree checked after each attempt.
//!
//! The tools resolve with `Resolver::Auto`, probed once per process. To run them on the
//! fallback walk, the worker is re-executed under `bwrap --seccomp` with a filter that answers
//! `openat2` with `ENOSYS` — exactly the kernel without `openat2` that the fallback exists for —
//! and the worker checks that carapace-fs did pick the fallback.

use std::path::{Path, PathBuf};
use std::time::Duration;

use carapace_policy::ErrorCode;
use serde_json::{Value, json};

use crate::corpus;
use crate::lab::{Lab, Layout, diff, tree_contains};
use crate::report::Figures;

/// One tool call per corpus path: (label, tool, args).
fn attempts(path: &str) -> Vec<(&'static str, &'static str, Value)> {
    let patch =
        |body: String| json!({ "input": format!("*** Begin Patch\n{body}*** End Patch\n") });
    vec![
        ("read", "read", json!({ "path": path })),
        (
            "write",
            "write",
            json!({ "path": path, "content": "PWNED\n" }),
        ),
        (
            "edit",
            "edit",
            json!({ "path": path, "oldText": "old", "newText": "PWNED" }),
        ),
        (
            "apply_patch:update",
            "apply_patch",
            patch(format!("*** Update File: {path}\n@@\n-old\n+PWNED\n")),
        ),
        (
            "apply_patch:add",
            "apply_patch",
            patch(format!("*** Add File: {path}\n+PWNED\n")),
        ),
        (
            "apply_patch:delete",
            "apply_patch",
            patch(format!("*** Delete File: {path}\n")),
        ),
        (
            "apply_patch:move",
            "apply_patch",
            patch(format!(
                "*** Update File: notes.txt\n*** Move to: {path}\n@@\n-old\n+moved\n"
            )),
        ),
        ("ls", "ls", json!({ "path": path })),
        ("media_save", "media_save", json!({ "path": path })),
        (
            "message:send",
            "message",
            json!({ "action": "send", "target": "user:torture", "path": path }),
        ),
    ]
}

/// Runs the corpus in this process for `layouts`; `expect` is the mechanism carapace-fs must
/// have picked (`openat2` or `fallback`).
pub fn worker(layouts: &[Layout], expect: &str, quick: bool) -> Figures {
    let mut f = Figures::new("escape");
    let probe = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            f.problem(format!("tempdir: {e}"));
            return f;
        }
    };
    match carapace_fs::Root::open(probe.path()) {
        Ok(r) if r.mechanism().as_str() == expect => {}
        Ok(r) => f.problem(format!(
            "resolver: expected {expect}, carapace-fs picked {}",
            r.mechanism().as_str()
        )),
        Err(e) => f.problem(format!("Root::open: {e}")),
    }
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
    for &layout in layouts {
        let sub = rt.block_on(run_layout(layout, expect, quick));
        f.absorb(sub);
    }
    f
}

async fn run_layout(layout: Layout, expect: &str, quick: bool) -> Figures {
    let mut f = Figures::new("escape");
    let lab = match Lab::new(layout, "") {
        Ok(l) => l,
        Err(e) => {
            f.problem(format!("{}: {e}", layout.name()));
            return f;
        }
    };
    let ws = match lab.workspace_host() {
        Ok(w) => w,
        Err(e) => {
            f.note(format!("layout {} skipped: {e}", layout.name()));
            return f;
        }
    };
    let _ = std::fs::create_dir_all(&ws);
    let tmp_marker = format!("/tmp/carapace-torture-escape-{:016x}", fastrand::u64(..));
    let paths = corpus::paths(&lab.canary, &tmp_marker);
    let plant_notes = corpus::plant(&ws, &lab.canary, lab.base());
    corpus::wipe(&ws);
    let mut baseline = lab.outside_snapshot();
    let state = lab.state.clone();
    let mut per_tool = std::collections::BTreeMap::<&str, u64>::new();
    // The short form takes every other path on openat2 (still over 200), every fourth on the
    // fallback and every eighth on the sandbox layout; --full takes them all.
    let step = match (quick, layout, expect) {
        (false, _, _) => 1,
        (true, Layout::Host, "openat2") => 2,
        (true, Layout::Host, _) => 4,
        (true, _, _) => 8,
    };
    for path in paths.iter().step_by(step) {
        for (label, tool, args) in attempts(path) {
            corpus::wipe(&ws);
            corpus::plant(&ws, &lab.canary, lab.base());
            f.attempts += 1;
            *per_tool.entry(label).or_default() += 1;
            let what = format!("{}/{expect} {label} {path:?}", layout.name());
            let outcome =
                tokio::time::timeout(Duration::from_secs(20), lab.invoke(tool, args)).await;
            match outcome {
                Err(_) => f.problem(format!("{what}: no answer within 20 s (hang)")),
                Ok(Err(e)) if e.code() == ErrorCode::Internal => {
                    f.problem(format!("{what}: INTERNAL {e:?}"))
                }
                Ok(Err(e)) => {
                    f.refused += 1;
                    let text = format!("{e:?}");
                    if text.contains(&lab.secret) {
                        f.problem(format!("{what}: the error carries the secret"));
                    }
                }
                Ok(Ok(v)) => {
                    let text = v.to_string();
                    if text.contains(&lab.secret) {
                        f.problem(format!("{what}: the result carries the secret"));
                    }
                    if tool != "read" && tool != "ls" && text.contains(&lab.hard_secret) {
                        f.problem(format!("{what}: a hard-linked file's bytes went out"));
                    }
                }
            }
            let now = lab.outside_snapshot();
            let changed = diff(&baseline, &now);
            if !changed.is_empty() {
                f.problem(format!("{what}: outside the roots: {}", changed.join(", ")));
                baseline = now;
            }
            for needle in [&lab.secret, &lab.hard_secret] {
                if let Some(hit) = tree_contains(&state, needle.as_bytes()) {
                    f.problem(format!("{what}: canary bytes in {}", hit.display()));
                    let _ = std::fs::remove_file(&hit);
                }
            }
            if tree_contains(&ws, lab.secret.as_bytes()).is_some_and(|p| !is_link_or_hard(&p)) {
                f.problem(format!("{what}: canary bytes copied into the workspace"));
            }
            if Path::new(&tmp_marker).exists() {
                f.problem(format!("{what}: {tmp_marker} was created"));
                let _ = std::fs::remove_file(&tmp_marker);
            }
        }
    }
    let tools: Vec<String> = per_tool.iter().map(|(k, v)| format!("{k} {v}")).collect();
    f.note(format!(
        "layout {} resolver {expect}: {} of {} distinct paths × {} tool forms ({}); planting notes: {}",
        layout.name(),
        paths.len().div_ceil(step),
        paths.len(),
        per_tool.len(),
        tools.join(", "),
        if plant_notes.is_empty() { "none".to_string() } else { plant_notes.join("; ") }
    ));
    f
}

/// The hard-link planted in the workspace shares the canary's inode; it is no copy.
fn is_link_or_hard(p: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p).is_ok_and(|m| m.nlink() > 1 || m.file_type().is_symlink())
}

/// A classic-BPF seccomp program: `openat2` → `ENOSYS`, everything else allowed.
fn seccomp_no_openat2() -> Vec<u8> {
    #[cfg(target_arch = "aarch64")]
    const ARCH: u32 = 0xc000_00b7;
    #[cfg(not(target_arch = "aarch64"))]
    const ARCH: u32 = 0xc000_003e;
    const NR_OPENAT2: u32 = 437;
    const ENOSYS: u32 = 38;
    let ins: [(u16, u8, u8, u32); 6] = [
        (0x20, 0, 0, 4),                    // ld [arch]
        (0x15, 0, 3, ARCH),                 // jeq ARCH ? next : allow
        (0x20, 0, 0, 0),                    // ld [nr]
        (0x15, 0, 1, NR_OPENAT2),           // jeq openat2 ? next : allow
        (0x06, 0, 0, 0x0005_0000 | ENOSYS), // ret ERRNO(ENOSYS)
        (0x06, 0, 0, 0x7fff_0000),          // ret ALLOW
    ];
    let mut out = Vec::with_capacity(48);
    for (code, jt, jf, k) in ins {
        out.extend_from_slice(&code.to_le_bytes());
        out.push(jt);
        out.push(jf);
        out.extend_from_slice(&k.to_le_bytes());
    }
    out
}

/// Runs the family: a worker per resolver (the fallback one under bwrap's seccomp filter).
pub fn run(full: bool, work: &Path) -> Figures {
    let mut f = Figures::new("escape");
    let (layouts, fallback_layouts) = if full {
        ("host,bwrap,docker", "host,bwrap,docker")
    } else {
        f.note("short form: host and bwrap layouts on openat2, host on the fallback (docker in --full)");
        ("host,bwrap", "host")
    };
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            f.problem(format!("current_exe: {e}"));
            return f;
        }
    };
    let quick = if full { "full" } else { "quick" };
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(["worker", "escape", layouts, "openat2", quick]);
    f.absorb(crate::worker_figures("escape", cmd));
    let bpf = work.join("no-openat2.bpf");
    if let Err(e) = std::fs::write(&bpf, seccomp_no_openat2()) {
        f.problem(format!("writing the seccomp filter: {e}"));
        return f;
    }
    if which("bwrap").is_none() {
        f.problem("bwrap is not installed: the fallback resolver cannot be forced for the tools");
        return f;
    }
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(r#"exec bwrap --die-with-parent --seccomp 3 --dev-bind / / -- "$0" worker escape "$1" fallback "$2" 3<"$3""#)
        .arg(&exe)
        .arg(fallback_layouts)
        .arg(quick)
        .arg(&bpf);
    f.absorb(crate::worker_figures("escape", cmd));
    f
}

/// The first `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}
