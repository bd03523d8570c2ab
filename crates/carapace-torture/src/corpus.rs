//! The escape corpus: hostile paths generated from a few rules, and the link layout planted in
//! the workspace before each attempt.

use std::collections::BTreeSet;
use std::os::unix::fs::symlink;
use std::path::Path;

/// Files of the canary tree an attacker would aim at.
const TARGETS: &[&str] = &[
    "secret.txt",
    "sub/deep.txt",
    "hard_target",
    "old",
    "new-file",
];

/// Symlinks (name, target) planted at the top of the workspace; `{canary}` is the canary's
/// absolute path, `{rel}` the relative path from the workspace to it, `{base}` the lab's.
const LINKS: &[(&str, &str)] = &[
    ("l_abs_dir", "{canary}"),
    ("l_abs_file", "{canary}/secret.txt"),
    ("l_abs_old", "{canary}/old"),
    ("l_rel", "{rel}"),
    ("l_rel_file", "{rel}/secret.txt"),
    ("chain1", "chain2"),
    ("chain2", "chain3"),
    ("chain3", "{canary}"),
    ("chain_rel1", "chain_rel2"),
    ("chain_rel2", "l_rel"),
    ("loop1", "loop2"),
    ("loop2", "loop1"),
    ("self", "self"),
    ("l_proc_root", "/proc/self/root"),
    ("l_proc_cwd", "/proc/self/cwd"),
    ("l_proc_fd", "/proc/self/fd"),
    ("l_dev_fd", "/dev/fd"),
    ("l_dotdot", ".."),
    ("l_dotdot2", "../.."),
    ("l_root", "/"),
    ("l_tmp", "/tmp"),
    ("dangling", "{base}/dangling-escape-target"),
    ("dangling_dir", "{base}/dangling-dir/x"),
];

/// Link names (the corpus walks through each).
pub fn link_names() -> impl Iterator<Item = &'static str> {
    LINKS.iter().map(|(n, _)| *n)
}

/// Plants the layout in `ws` (which must exist): links, a directory with climbing links, a
/// hardlink to a canary file, a FIFO, a unix socket, device nodes when root.
pub fn plant(ws: &Path, canary: &Path, base: &Path) -> Vec<String> {
    let mut notes = Vec::new();
    let depth = ws
        .strip_prefix(base)
        .map(|r| r.components().count())
        .unwrap_or(1);
    let rel = format!("{}canary", "../".repeat(depth));
    let fill = |t: &str| {
        t.replace("{canary}", &canary.display().to_string())
            .replace("{rel}", &rel)
            .replace("{base}", &base.display().to_string())
    };
    for (name, target) in LINKS {
        if let Err(e) = symlink(fill(target), ws.join(name)) {
            notes.push(format!("symlink {name}: {e}"));
        }
    }
    let d = ws.join("d");
    let _ = std::fs::create_dir(&d);
    let _ = symlink(format!("../{rel}"), d.join("up"));
    let _ = symlink(canary.join("secret.txt"), d.join("l_abs"));
    let _ = std::fs::write(d.join("inside.txt"), "inside old\n");
    if let Err(e) = std::fs::hard_link(canary.join("hard_target"), ws.join("hard")) {
        notes.push(format!("hardlink: {e}"));
    }
    if let Err(e) = rustix::fs::mknodat(
        rustix::fs::CWD,
        ws.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o666),
        0,
    ) {
        notes.push(format!("fifo: {e}"));
    }
    match std::os::unix::net::UnixListener::bind(ws.join("sock")) {
        Ok(l) => drop(l),
        Err(e) => notes.push(format!("socket: {e}")),
    }
    if rustix::process::geteuid().is_root() {
        for (name, minor) in [("devnull", 3), ("devzero", 5), ("devrandom", 8)] {
            if let Err(e) = rustix::fs::mknodat(
                rustix::fs::CWD,
                ws.join(name),
                rustix::fs::FileType::CharacterDevice,
                rustix::fs::Mode::from_raw_mode(0o666),
                rustix::fs::makedev(1, minor),
            ) {
                notes.push(format!("mknod {name}: {e}"));
            }
        }
    } else {
        notes.push("not root: no device nodes planted".into());
    }
    let _ = std::fs::write(ws.join("notes.txt"), "old\nline two\n");
    notes
}

/// Empties `ws` (keeps the directory).
pub fn wipe(ws: &Path) {
    let Ok(rd) = std::fs::read_dir(ws) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {
                let _ = std::fs::remove_dir_all(&p);
            }
            _ => {
                let _ = std::fs::remove_file(&p);
            }
        }
    }
}

/// The hostile paths, distinct, in a stable order. `canary` is the canary tree's absolute
/// path; `tmp_marker` an absolute path in the host's /tmp that must never appear.
pub fn paths(canary: &Path, tmp_marker: &str) -> Vec<String> {
    let c = canary.display().to_string();
    let mut set = BTreeSet::new();
    let mut add = |s: String| {
        set.insert(s);
    };
    // `..` in every position: prefixes of 0..=3 plain dirs, 1..=4 more ups than that.
    for t in TARGETS {
        for k in 0..=3usize {
            for extra in 1..=3usize {
                let p = format!("{}{}canary/{t}", "x/".repeat(k), "../".repeat(k + extra));
                add(p.clone());
                if k == 0 {
                    add(format!("/workspace/{p}"));
                    add(format!("./{p}"));
                    add(format!("/agent/{p}"));
                }
            }
        }
        add(format!("d/./../../canary/{t}"));
        add(format!(".//..//canary//{t}"));
        add(format!("d/../../canary/./{t}"));
        add(format!("{c}/{t}"));
        add(format!("/proc/self/root{c}/{t}"));
        add(format!("/workspace/{c}/{t}"));
        add(format!("/workspace/../..{c}/{t}"));
        add(format!("l_proc_root{c}/{t}"));
    }
    for p in [
        "..",
        "../",
        "../..",
        "/..",
        "/../..",
        "d/..",
        "d/../..",
        "a/../../..",
        "/workspace/..",
        "/workspace/../agent",
        "/workspace/../etc/passwd",
        "/agent/../etc/passwd",
        "/agent",
        "/agent/notes.txt",
        "/agent/..",
        "/etc/passwd",
        "/etc/shadow",
        "//etc/passwd",
        "/proc/self/root/etc/passwd",
        "/proc/self/root/etc/shadow",
        "/proc/self/cwd",
        "/proc/self/cwd/Cargo.toml",
        "/proc/self/fd/0",
        "/proc/self/fd/1",
        "/proc/self/fd/3",
        "/proc/self/environ",
        "/proc/self/mem",
        "/proc/1/root/etc/passwd",
        "/dev/fd/0",
        "/dev/stdin",
        "/dev/zero",
        "/dev/null",
        "/sys/kernel/notes",
        "/workspacex/notes.txt",
        "/workspace..",
        "/workspace../x",
        "",
        ".",
        "/",
        "/workspace",
        "/workspace/",
        "./.",
        "~/../canary/secret.txt",
        "~root/.bashrc",
        "$HOME/.bashrc",
        "`id`",
        "$(id)",
        "*",
        "?",
        "notes.txt/..",
        "notes.txt/../../canary/secret.txt",
        "notes.txt/",
        "notes.txt/.",
    ] {
        add(p.to_string());
    }
    add(tmp_marker.to_string());
    add(format!("/proc/self/root{tmp_marker}"));
    add(format!("file://{c}/secret.txt"));
    add("file:///etc/passwd".to_string());
    // Through every planted link.
    for l in link_names() {
        for suffix in [
            "",
            "/",
            "/.",
            "/secret.txt",
            "/sub/deep.txt",
            "/x-new",
            "/../secret.txt",
        ] {
            add(format!("{l}{suffix}"));
        }
        add(format!("/workspace/{l}/secret.txt"));
        add(format!("d/../{l}/secret.txt"));
        add(format!("d/{l}"));
    }
    for p in [
        "l_proc_root/etc/passwd",
        "l_proc_root/etc/shadow",
        "l_proc_fd/0",
        "l_proc_fd/3",
        "l_dev_fd/0",
        "l_root/etc/passwd",
        "l_root/etc/shadow",
        "l_tmp/x-new",
        "l_dotdot/canary/secret.txt",
        "l_dotdot2/etc/passwd",
        "chain1/sub/deep.txt",
        "chain_rel1/secret.txt",
        "loop1/x",
        "self/x",
        "d/up",
        "d/up/secret.txt",
        "d/l_abs",
        "d/inside.txt",
        "hard",
        "/workspace/hard",
        "fifo",
        "/workspace/fifo",
        "fifo/x",
        "sock",
        "devnull",
        "devzero",
        "devrandom",
        "/workspace/devzero",
    ] {
        add(p.to_string());
    }
    // Long and over-long names.
    add("a".repeat(255));
    add("a".repeat(256));
    add(format!("{}/x", "a".repeat(300)));
    add(format!("{}x", "d/".repeat(2100)));
    add("b".repeat(5000));
    add(format!("{}canary/secret.txt", "../".repeat(1400)));
    add(format!("{}../canary/secret.txt", "./".repeat(2100)));
    // NUL.
    for p in [
        "secret\0.txt",
        "../canary\0/secret.txt",
        "notes.txt\0../../canary/secret.txt",
        "\0",
        "\0/etc/passwd",
        "l_abs_file\0",
    ] {
        add(p.to_string());
    }
    // Unicode look-alikes and odd bytes.
    for p in [
        "..\u{2215}canary\u{2215}secret.txt",
        "\u{2024}\u{2024}/canary/secret.txt",
        "\u{FF0E}\u{FF0E}/canary/secret.txt",
        "..\u{FF0F}canary\u{FF0F}secret.txt",
        "..\u{29F8}canary",
        "\u{2025}/canary/secret.txt",
        ".\u{200B}./canary/secret.txt",
        "..\u{0338}/canary/secret.txt",
        "\u{202E}txt.terces/yranac/..",
        "\u{FEFF}../canary/secret.txt",
        "%2e%2e/canary/secret.txt",
        "..%2fcanary%2fsecret.txt",
        "..\\canary\\secret.txt",
        "\n../canary/secret.txt",
        "\t..",
        " ../canary/secret.txt",
        "../canary/secret.txt ",
        "\u{1}\u{7f}\u{1b}[2J",
        "\u{10FFFF}",
        "\u{0130}.txt",
    ] {
        add(p.to_string());
    }
    set.into_iter().collect()
}
