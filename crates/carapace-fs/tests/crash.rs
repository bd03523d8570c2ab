//! kill -9 of a writer process in a loop: the target is always the old or a new version, whole,
//! at its kept mode; stray staging files are swept afterwards.
//!
//! The writer is this test binary re-invoked on the ignored test `child_writer`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use carapace_fs::*;
use common::*;

const LEN: usize = 256 * 1024;
const DIR_ENV: &str = "CARAPACE_FS_CRASH_DIR";

/// The child: rewrites `target` forever with uniform contents, alternating durability.
#[test]
#[ignore = "run by kill9_leaves_old_or_new as a child process"]
fn child_writer() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let root = Root::open(Path::new(&dir)).unwrap();
    let mut i: u8 = 1;
    loop {
        let opts = WriteOptions::default().with_durable(i.is_multiple_of(4));
        root.write(Path::new("target"), &[i; LEN], &opts).unwrap();
        i = i.wrapping_add(1).max(1);
    }
}

/// The child: creates fresh files forever (the `O_TMPFILE` + `linkat` route).
#[test]
#[ignore = "run by kill9_during_create_leaves_nothing_partial as a child process"]
fn child_creator() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let root = Root::open(Path::new(&dir)).unwrap();
    let pid = std::process::id();
    for i in 0u64.. {
        let b = (i % 250) as u8 + 1;
        root.create(
            Path::new(&format!("c-{pid}-{i}")),
            &[b; LEN],
            &WriteOptions::default(),
        )
        .unwrap();
    }
}

#[test]
fn kill9_during_create_leaves_nothing_partial() {
    let fx = Fixture::new();
    let exe = std::env::current_exe().unwrap();
    for round in 0..10u64 {
        let mut child = Command::new(&exe)
            .args(["--ignored", "--exact", "child_creator", "--test-threads=1"])
            .env(DIR_ENV, &fx.root_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20 + (round * 7) % 60));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let mut files = 0;
    for e in std::fs::read_dir(&fx.root_path).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        assert!(name.starts_with("c-"), "unexpected entry {name}");
        let b = std::fs::read(e.path()).unwrap();
        assert_eq!(b.len(), LEN, "{name}: partial file visible");
        assert!(b.iter().all(|x| *x == b[0]), "{name}: mixed content");
        assert_eq!(mode_of(&e.path()), 0o644);
        files += 1;
    }
    assert!(files > 0, "the creator never created anything");
    eprintln!("{files} complete files, no partial ones, no staging names");
}

#[test]
fn kill9_leaves_old_or_new() {
    let fx = Fixture::new();
    let target = fx.root_path.join("target");
    std::fs::write(&target, vec![0u8; LEN]).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut kills = 0;
    let mut versions = std::collections::BTreeSet::new();
    for round in 0..25u64 {
        let mut child = Command::new(&exe)
            .args(["--ignored", "--exact", "child_writer", "--test-threads=1"])
            .env(DIR_ENV, &fx.root_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20 + (round * 7) % 60));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        let b = std::fs::read(&target).unwrap();
        assert_eq!(b.len(), LEN, "round {round}: torn file");
        assert!(b.iter().all(|x| *x == b[0]), "round {round}: mixed content");
        assert_eq!(mode_of(&target), 0o640, "round {round}: mode not kept");
        versions.insert(b[0]);
    }
    assert_eq!(kills, 25);
    // The children really wrote (not all killed before their first rename).
    assert!(
        versions.len() > 1,
        "the writer never replaced the file: {versions:?}"
    );
    let root = fx.root(Resolver::Auto);
    let swept = root.sweep_staging(Path::new(""), Duration::ZERO).unwrap();
    eprintln!(
        "{} versions seen, {swept} staging files left by killed writers and swept",
        versions.len()
    );
    let names: Vec<_> = root
        .list(Path::new(""))
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec!["target"]);
}
