//! Architecture rules as tests (STYLE.md): one crate owns each dangerous capability, and the
//! policy crate stays free of I/O. They read the sources as text, so they fail the moment a
//! crate reaches for something that belongs to another.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// (crate name, concatenated non-test source text) for every crate's `src/`.
fn sources() -> Vec<(String, Vec<(PathBuf, String)>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(crates_dir()).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.join("Cargo.toml").exists() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let mut files = Vec::new();
        collect(&dir.join("src"), &mut files);
        out.push((name, files));
    }
    out
}

fn collect(dir: &Path, files: &mut Vec<(PathBuf, String)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect(&p, files);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            // Unit-test modules may do anything; cut at the first `#[cfg(test)]`.
            let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
            files.push((p, code));
        }
    }
}

fn offenders(allowed: &[&str], needles: &[&str]) -> Vec<String> {
    let mut bad = Vec::new();
    for (krate, files) in sources() {
        if allowed.contains(&krate.as_str()) {
            continue;
        }
        for (path, code) in files {
            for n in needles {
                if code
                    .lines()
                    .any(|l| !l.trim_start().starts_with("//") && l.contains(n))
                {
                    bad.push(format!("{} uses {n:?}", path.display()));
                }
            }
        }
    }
    bad
}

#[test]
fn only_the_fs_crate_has_unsafe_code_and_raw_fd_syscalls() {
    let bad = offenders(
        &["carapace-fs"],
        &["unsafe {", "unsafe fn", "openat2", "fchmod", "renameat"],
    );
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn only_the_sandbox_crate_spawns_sandboxes() {
    let bad = offenders(
        &["carapace-sandbox"],
        &[
            "Command::new(\"bwrap\")",
            "bollard::",
            "Command::new(\"docker\")",
        ],
    );
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn only_the_sandbox_crate_depends_on_the_docker_client() {
    for entry in std::fs::read_dir(crates_dir()).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        if name != "carapace-sandbox" {
            assert!(
                !manifest
                    .lines()
                    .any(|l| l.trim_start().starts_with("bollard")),
                "{name} depends on bollard"
            );
        }
    }
}

#[test]
fn the_policy_crate_does_no_io() {
    let (_, files) = sources()
        .into_iter()
        .find(|(k, _)| k == "carapace-policy")
        .unwrap();
    for (path, code) in files {
        for n in [
            "std::fs",
            "std::process",
            "std::env::var",
            "std::net::TcpStream",
            "tokio",
            "File::open",
        ] {
            assert!(!code.contains(n), "{} uses {n}", path.display());
        }
    }
}
