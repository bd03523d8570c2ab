//! Architecture rules as tests (docs/design.md, "Boundaries"): one crate owns each dangerous
//! capability, and the policy crate stays free of I/O. They read the sources as text, so they
//! fail the moment a crate reaches for something that belongs to another.
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
            files.push((p, without_test_modules(&text)));
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

/// No crate has `unsafe` code (the workspace denies it, carapace-fs forbids it outright).
#[test]
fn no_crate_has_unsafe_code() {
    let bad = offenders(&[], &["unsafe {", "unsafe fn", "unsafe impl"]);
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn only_the_fs_crate_makes_raw_fd_syscalls() {
    let bad = offenders(&["carapace-fs"], &["openat2", "fchmod", "renameat"]);
    // The attack harness names `openat2` (it forces the fallback resolver with a seccomp filter
    // built as data) but makes no such call and has no unsafe code.
    let bad: Vec<String> = bad
        .into_iter()
        .filter(|b| !(b.contains("/carapace-torture/") && b.ends_with("uses \"openat2\"")))
        .collect();
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

/// The source without its unit-test modules (`#[cfg(test)]` followed by a `mod`): they may do
/// anything. A `#[cfg(test)]` on anything else is kept, so it cannot hide the code after it.
fn without_test_modules(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "#[cfg(test)]" {
            let next = lines[i + 1..]
                .iter()
                .map(|l| l.trim())
                .find(|l| !l.is_empty() && !l.starts_with("#["));
            if next.is_some_and(|l| l.starts_with("mod ") || l.starts_with("pub(crate) mod ")) {
                break;
            }
        }
        out.push_str(lines[i]);
        out.push('\n');
        i += 1;
    }
    out
}

/// A capability only its owners may use, and the source text that uses it.
struct Capability {
    name: &'static str,
    needles: &'static [&'static str],
}

const CAPABILITIES: &[Capability] = &[
    Capability {
        name: "fs-mutation",
        needles: &[
            "fs::write(",
            "fs::create_dir",
            "fs::remove_file",
            "fs::remove_dir",
            "fs::rename(",
            "fs::copy(",
            "fs::hard_link",
            "fs::File::create",
            "File::create(",
            "set_permissions(",
            "OpenOptions",
            "DirBuilder",
        ],
    },
    Capability {
        name: "process-spawn",
        needles: &[
            "process::Command",
            "Command::new(",
            "tokio::process",
            "std::process::Stdio",
        ],
    },
];

/// Who may use what, and why. A crate name alone covers the crate; `crate/path` one file.
const ALLOWED: &[(&str, &str, &str)] = &[
    (
        "carapace-fs",
        "fs-mutation",
        "the safe filesystem layer: every other crate mutates files through a Root",
    ),
    (
        "carapace-sandbox/src/limits.rs",
        "fs-mutation",
        "cgroup v2 control files and leaf groups under /sys/fs/cgroup are a kernel interface, not user data",
    ),
    (
        "carapace-sandbox/src/bwrap.rs",
        "process-spawn",
        "the bubblewrap backend starts bwrap (and probes its version)",
    ),
    (
        "carapace-sandbox/src/host.rs",
        "process-spawn",
        "labelled unsandboxed host exec (mode off)",
    ),
    (
        "carapace-sandbox/src/run.rs",
        "process-spawn",
        "the shared runner of a spawned command (timeout, process-group kill, capped output)",
    ),
    (
        "carapace-browser/src/process.rs",
        "process-spawn",
        "starts and stops the headless Chromium",
    ),
    (
        "carapace-torture",
        "fs-mutation",
        "the attack harness: it builds hostile layouts (links, FIFOs, canaries) outside any Root on purpose; never linked into carapace",
    ),
    (
        "carapace-torture",
        "process-spawn",
        "the attack harness: it starts the real binary and bwrap and kills them on purpose; never linked into carapace",
    ),
];

fn allowed(krate: &str, rel: &str, capability: &str) -> bool {
    ALLOWED.iter().any(|(who, cap, _)| {
        *cap == capability && (*who == krate || *who == format!("{krate}/{rel}"))
    })
}

/// Every use of a capability in `code` (of file `rel` in crate `krate`) that the allowlist does
/// not cover, as `crate/rel:line: capability (needle)`.
fn violations(krate: &str, rel: &str, code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for cap in CAPABILITIES {
        if allowed(krate, rel, cap.name) {
            continue;
        }
        for (n, line) in code.lines().enumerate() {
            let t = line.trim_start();
            if t.starts_with("//") {
                continue;
            }
            for needle in cap.needles {
                if line.contains(needle) {
                    out.push(format!("{krate}/{rel}:{}: {} ({needle})", n + 1, cap.name));
                }
            }
        }
    }
    out
}

#[test]
fn capabilities_are_used_only_by_their_owners() {
    let mut bad = Vec::new();
    for (krate, files) in sources() {
        let base = crates_dir().join(&krate);
        for (path, code) in files {
            let rel = path
                .strip_prefix(&base)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            bad.extend(violations(&krate, &rel, &code));
        }
    }
    assert!(
        bad.is_empty(),
        "use carapace-fs (Root::write, Root::open_or_create, RotatingLog, ...) or move the spawn into its owner, or add an allowlist entry with a reason:\n{bad:#?}"
    );
}

#[test]
fn every_allowlist_entry_names_a_file_or_crate_that_exists_and_uses_it() {
    for (who, cap, reason) in ALLOWED {
        assert!(!reason.is_empty(), "{who}: no reason");
        let path = crates_dir().join(who);
        assert!(path.exists(), "allowlist names {who}, which does not exist");
        if path.is_file() {
            let code = without_test_modules(&std::fs::read_to_string(&path).unwrap());
            let c = CAPABILITIES.iter().find(|c| c.name == *cap).unwrap();
            assert!(
                c.needles.iter().any(|n| code.contains(n)),
                "{who} no longer uses {cap}: drop its allowlist entry"
            );
        }
    }
}

#[test]
fn the_checker_saw_every_crate() {
    let on_disk: std::collections::BTreeSet<String> = std::fs::read_dir(crates_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.join("Cargo.toml").exists())
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let scanned = sources();
    let seen: std::collections::BTreeSet<String> = scanned.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(on_disk, seen);
    for (k, files) in &scanned {
        assert!(
            files
                .iter()
                .any(|(p, _)| p.ends_with("lib.rs") || p.ends_with("main.rs")),
            "{k}: no lib.rs or main.rs was read"
        );
    }
    for expected in [
        "carapace",
        "carapace-fs",
        "carapace-sandbox",
        "carapace-gateway",
        "carapace-tools",
        "carapace-policy",
    ] {
        assert!(seen.contains(expected), "{expected} was not scanned");
    }
}

/// The checker catches a violation: a synthetic source that mutates files and spawns a process
/// outside the owners is reported, the same text in an owner is not, and a test module or a
/// comment does not count.
#[test]
fn the_checker_catches_a_synthetic_violation() {
    let src = "use std::fs;\n\
               // std::fs::write(\"in a comment\", b\"\")\n\
               pub fn f() {\n\
                   std::fs::write(\"/tmp/x\", b\"x\").unwrap_or(());\n\
                   let _ = std::fs::OpenOptions::new();\n\
                   let _ = std::process::Command::new(\"sh\");\n\
               }\n\
               #[cfg(test)]\n\
               fn helper_not_a_module() { let _ = std::fs::DirBuilder::new(); }\n\
               #[cfg(test)]\n\
               mod tests { fn t() { std::fs::remove_file(\"x\").ok(); } }\n";
    let v = violations(
        "carapace-gateway",
        "src/evil.rs",
        &without_test_modules(src),
    );
    let joined = v.join("\n");
    assert!(
        joined.contains("src/evil.rs:4: fs-mutation (fs::write("),
        "{joined}"
    );
    assert!(
        joined.contains("src/evil.rs:5: fs-mutation (OpenOptions)"),
        "{joined}"
    );
    assert!(joined.contains("src/evil.rs:6: process-spawn"), "{joined}");
    assert!(
        joined.contains("DirBuilder"),
        "a cfg(test) fn is still code: {joined}"
    );
    assert!(!joined.contains(":2:"), "a comment is not code: {joined}");
    assert!(
        !joined.contains("remove_file"),
        "a test module may do anything: {joined}"
    );
    assert!(violations("carapace-fs", "src/evil.rs", "std::fs::write(a, b);").is_empty());
    assert_eq!(
        violations("carapace-sandbox", "src/evil.rs", "std::fs::write(a, b);").len(),
        1,
        "a file allowance does not cover its crate's other files"
    );
}

/// The carapace crates a `Cargo.toml` lists under `[dependencies]` (dev-dependencies are not
/// part of the architecture).
fn internal_deps(manifest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_deps = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
            continue;
        }
        if in_deps && line.starts_with("carapace-") {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            out.push(name);
        }
    }
    out
}

/// The internal dependencies a README does not name.
fn unnamed_deps(manifest: &str, readme: &str) -> Vec<String> {
    internal_deps(manifest)
        .into_iter()
        .filter(|d| !readme.contains(d.as_str()))
        .collect()
}

/// Each crate's README names every carapace crate it depends on: the READMEs are the map of
/// the architecture, and a dependency that is not on the map is one nobody decided.
#[test]
fn every_readme_names_the_carapace_crates_it_depends_on() {
    let mut missing = Vec::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(crates_dir()).unwrap() {
        let dir = entry.unwrap().path();
        let Ok(manifest) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let readme = std::fs::read_to_string(dir.join("README.md"))
            .unwrap_or_else(|_| panic!("{name} has no README.md"));
        checked += internal_deps(&manifest).len();
        for d in unnamed_deps(&manifest, &readme) {
            missing.push(format!("{name}/README.md does not name its dependency {d}"));
        }
    }
    assert!(checked > 20, "only {checked} internal dependencies found");
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// The README check catches an unnamed dependency and ignores dev-dependencies.
#[test]
fn the_readme_check_catches_an_unnamed_dependency() {
    let manifest = "[package]\nname = \"x\"\n\n[dependencies]\ncarapace-fs.workspace = true\n\
                    carapace-media = { path = \"../carapace-media\" }\ntokio.workspace = true\n\n\
                    [dev-dependencies]\ncarapace-testkit = { path = \"../carapace-testkit\" }\n";
    assert_eq!(
        internal_deps(manifest),
        vec!["carapace-fs".to_string(), "carapace-media".to_string()]
    );
    assert_eq!(
        unnamed_deps(manifest, "Depends on carapace-fs."),
        vec!["carapace-media".to_string()]
    );
    assert!(unnamed_deps(manifest, "carapace-fs and carapace-media").is_empty());
}
