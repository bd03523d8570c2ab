//! Staging sweeps on real files and real processes: the leftovers of writers killed with
//! SIGKILL anywhere in a tree are removed at once; a live writer's staging file (a child
//! blocked mid-write) is kept however old; links are never followed; other names are kept;
//! the bounds hold.
//!
//! The writers are this test binary re-invoked on the ignored `child_*` tests.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use carapace_fs::*;
use common::*;

const DIR_ENV: &str = "CARAPACE_FS_SWEEP_DIR";
const LEN: usize = 4 << 20;

fn staging_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(e.path());
            } else if e.file_name().to_string_lossy().starts_with(STAGING_PREFIX) {
                out.push(e.path());
            }
        }
    }
    out
}

/// Rewrites `a/b/big` and `top` forever.
#[test]
#[ignore = "run by kill9_leftovers_are_swept_at_once as a child process"]
fn child_writer() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let root = Root::open(Path::new(&dir)).unwrap();
    let data = vec![7u8; LEN];
    loop {
        for p in ["a/b/big", "top"] {
            root.write(Path::new(p), &data, &WriteOptions::default())
                .unwrap();
        }
    }
}

/// Streams stdin into `slow` (blocks mid-write while the parent holds the pipe open).
#[test]
#[ignore = "run by a_live_writers_staging_file_is_kept as a child process"]
fn child_streamer() {
    let Some(dir) = std::env::var_os(DIR_ENV) else {
        return;
    };
    let root = Root::open(Path::new(&dir)).unwrap();
    let mut stdin = std::io::stdin().lock();
    root.write_from(Path::new("slow"), &mut stdin, &WriteOptions::default())
        .unwrap();
}

fn child(exe: &Path, name: &str, dir: &Path, stdin: Stdio) -> std::process::Child {
    Command::new(exe)
        .args(["--ignored", "--exact", name, "--test-threads=1"])
        .env(DIR_ENV, dir)
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn kill9_leftovers_are_swept_at_once() {
    let fx = Fixture::new();
    std::fs::create_dir_all(fx.root_path.join("a/b")).unwrap();
    let exe = std::env::current_exe().unwrap();
    for round in 0..30u64 {
        let mut c = child(&exe, "child_writer", &fx.root_path, Stdio::null());
        std::thread::sleep(Duration::from_millis(15 + (round * 7) % 50));
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
    }
    let left = staging_files(&fx.root_path);
    assert!(
        !left.is_empty(),
        "no kill landed mid-write; the test proves nothing"
    );
    for r in resolvers() {
        let root = fx.root(r);
        // A minimum age keeps them (they are fresh).
        let rep = root
            .sweep_staging_tree(
                Path::new(""),
                &SweepOptions {
                    older_than: Duration::from_secs(3600),
                    ..SweepOptions::default()
                },
            )
            .unwrap();
        assert_eq!(rep.removed, 0);
        assert_eq!(staging_files(&fx.root_path).len(), left.len());
    }
    let root = fx.root(Resolver::Auto);
    let rep = root
        .sweep_staging_tree(Path::new(""), &SweepOptions::default())
        .unwrap();
    assert_eq!(rep.removed, left.len() as u64, "{rep:?}");
    assert!(rep.bytes > 0 && rep.complete && rep.busy == 0, "{rep:?}");
    assert!(staging_files(&fx.root_path).is_empty());
    // The targets are whole.
    for p in ["a/b/big", "top"] {
        if let Ok(b) = std::fs::read(fx.root_path.join(p)) {
            assert_eq!(b.len(), LEN, "{p} torn");
        }
    }
    eprintln!("{} leftovers of 30 SIGKILLed writers swept", left.len());
}

#[test]
fn a_live_writers_staging_file_is_kept() {
    let fx = Fixture::new();
    let exe = std::env::current_exe().unwrap();
    let mut c = child(&exe, "child_streamer", &fx.root_path, Stdio::piped());
    let mut stdin = c.stdin.take().unwrap();
    stdin.write_all(&[1u8; 100_000]).unwrap();
    stdin.flush().unwrap();
    // Wait (on the condition) for the writer's staging file.
    let mut tries = 0;
    let staged = loop {
        let s = staging_files(&fx.root_path);
        if let Some(p) = s.into_iter().next() {
            break p;
        }
        tries += 1;
        assert!(tries < 6000, "the writer never staged");
        std::thread::sleep(Duration::from_millis(10));
    };
    // Make it look ancient: age is not what protects it.
    let old = std::time::SystemTime::now() - Duration::from_secs(30 * 86400);
    std::fs::File::options()
        .write(true)
        .open(&staged)
        .unwrap()
        .set_modified(old)
        .unwrap();
    for r in resolvers() {
        let root = fx.root(r);
        let rep = root
            .sweep_staging_tree(Path::new(""), &SweepOptions::default())
            .unwrap();
        assert_eq!((rep.removed, rep.busy), (0, 1), "{rep:?}");
        assert_eq!(
            root.sweep_staging(Path::new(""), Duration::ZERO).unwrap(),
            0
        );
    }
    assert!(staged.exists(), "a live writer's staging file was removed");
    // The writer finishes normally.
    stdin.write_all(&[2u8; 1000]).unwrap();
    drop(stdin);
    assert!(c.wait().unwrap().success());
    let b = std::fs::read(fx.root_path.join("slow")).unwrap();
    assert_eq!(b.len(), 101_000);
    assert!(staging_files(&fx.root_path).is_empty());
}

/// Writers of in-memory content do not lock their staging files: sweeps racing them may take
/// the file, and the write starts over. No write fails, the file is always whole.
#[test]
fn sweeps_racing_in_memory_writers_lose_nothing() {
    let fx = Fixture::new();
    let root = fx.root(Resolver::Auto);
    let stop = std::sync::atomic::AtomicBool::new(false);
    /// Stops the sweeper however the writer ends (a panic included).
    struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        let sweeper = s.spawn(|| {
            let root = fx.root(Resolver::Auto);
            let mut removed = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                removed += root.sweep_staging(Path::new(""), Duration::ZERO).unwrap();
            }
            removed
        });
        let guard = Stop(&stop);
        for i in 0..400u32 {
            let b = (i % 200) as u8 + 1;
            root.write(
                Path::new("f"),
                &vec![b; 256 * 1024],
                &WriteOptions::default(),
            )
            .unwrap();
            let got = std::fs::read(fx.root_path.join("f")).unwrap();
            assert_eq!(got.len(), 256 * 1024);
            assert!(got.iter().all(|x| *x == got[0]));
        }
        drop(guard);
        let removed = sweeper.join().unwrap();
        eprintln!("{removed} live staging files taken by the sweeper; every write succeeded");
    });
}

#[test]
fn only_staging_files_and_never_through_links() {
    let fx = Fixture::new();
    let name = |s: &str| format!("{STAGING_PREFIX}{s}-0123456789ab");
    // Outside, reachable only through links: must survive.
    std::fs::write(fx.outside.join(name("out")), b"x").unwrap();
    std::os::unix::fs::symlink(&fx.outside, fx.root_path.join("linkdir")).unwrap();
    std::os::unix::fs::symlink(
        fx.outside.join(name("out")),
        fx.root_path.join(name("link")),
    )
    .unwrap();
    // A FIFO with a staging name: never opened in a blocking way, never removed.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        fx.root_path.join(name("fifo")),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    // Names that are not carapace's exact shape.
    for n in [
        format!("{STAGING_PREFIX}notours"),
        ".carapace-tmpx-0123456789ab".to_string(),
        "user-file.txt".to_string(),
    ] {
        std::fs::write(fx.root_path.join(&n), b"keep").unwrap();
    }
    std::fs::create_dir(fx.root_path.join(name("dir"))).unwrap();
    // Real leftovers, deep.
    let deep = fx.root_path.join("d1/d2/d3");
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join(name("deep")), b"partial").unwrap();
    std::fs::write(fx.root_path.join(name("top")), b"partial").unwrap();
    let before = fx.outside_snapshot();
    for r in resolvers() {
        let root = fx.root(r);
        let rep = root
            .sweep_staging_tree(Path::new(""), &SweepOptions::default())
            .unwrap();
        assert!(rep.complete);
        assert_eq!(fx.outside_snapshot(), before);
    }
    assert!(!deep.join(name("deep")).exists());
    assert!(!fx.root_path.join(name("top")).exists());
    for kept in [
        name("link"),
        name("fifo"),
        name("dir"),
        format!("{STAGING_PREFIX}notours"),
        ".carapace-tmpx-0123456789ab".into(),
        "user-file.txt".into(),
        "linkdir".into(),
    ] {
        assert!(
            std::fs::symlink_metadata(fx.root_path.join(&kept)).is_ok(),
            "{kept} was removed"
        );
    }
    // A final symlink as the swept directory is refused.
    let root = fx.root(Resolver::Auto);
    assert!(
        root.sweep_staging_tree(Path::new("linkdir"), &SweepOptions::default())
            .is_err()
    );
}

#[test]
fn bounds_are_reported() {
    let fx = Fixture::new();
    for i in 0..50 {
        std::fs::write(fx.root_path.join(format!("f{i}")), b"").unwrap();
    }
    let deep: PathBuf = (0..5).map(|i| format!("l{i}")).collect();
    std::fs::create_dir_all(fx.root_path.join(&deep)).unwrap();
    let leftover = fx
        .root_path
        .join(&deep)
        .join(format!("{STAGING_PREFIX}x-0123456789ab"));
    std::fs::write(&leftover, b"p").unwrap();
    let root = fx.root(Resolver::Auto);
    let rep = root
        .sweep_staging_tree(
            Path::new(""),
            &SweepOptions {
                max_entries: 10,
                ..SweepOptions::default()
            },
        )
        .unwrap();
    assert!(!rep.complete && rep.visited <= 11, "{rep:?}");
    let rep = root
        .sweep_staging_tree(
            Path::new(""),
            &SweepOptions {
                max_depth: 2,
                ..SweepOptions::default()
            },
        )
        .unwrap();
    assert!(!rep.complete && rep.removed == 0, "{rep:?}");
    assert!(leftover.exists());
    let rep = root
        .sweep_staging_tree(Path::new(""), &SweepOptions::default())
        .unwrap();
    assert!(rep.complete && rep.removed == 1, "{rep:?}");
}
