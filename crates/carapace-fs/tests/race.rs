//! Symlink-swap races: another thread keeps exchanging a directory (or a file) inside the root
//! with a symlink to the outside (`RENAME_EXCHANGE`, atomic), while reads and writes go on.
//! No byte may be read from or land outside.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use carapace_fs::*;
use common::*;
use rustix::fs::{CWD, RenameFlags, renameat_with};

const ROUNDS: usize = 500;

fn swapper(
    a: std::path::PathBuf,
    b: std::path::PathBuf,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            renameat_with(CWD, &a, CWD, &b, RenameFlags::EXCHANGE).unwrap();
            n += 1;
        }
        n
    })
}

#[test]
fn parent_directory_swapped_with_an_outside_symlink() {
    for r in resolvers() {
        let fx = Fixture::new();
        std::fs::write(fx.outside.join("f.txt"), b"OUTSIDE").unwrap();
        std::fs::create_dir(fx.root_path.join("swap")).unwrap();
        std::fs::write(fx.root_path.join("swap/f.txt"), b"inside").unwrap();
        symlink(&fx.outside, fx.root_path.join("swap_alt")).unwrap();
        let before = fx.outside_snapshot();
        let root = fx.root(r);
        let stop = Arc::new(AtomicBool::new(false));
        let t = swapper(
            fx.root_path.join("swap"),
            fx.root_path.join("swap_alt"),
            stop.clone(),
        );
        let mut ok_reads = 0;
        for i in 0..ROUNDS {
            for rel in ["swap/f.txt", "swap_alt/f.txt"] {
                if let Ok(b) = root.read(Path::new(rel), &ReadOptions::default()) {
                    assert_eq!(b, b"inside", "{r:?} read outside bytes via {rel}");
                    ok_reads += 1;
                }
                let _ = root.write(Path::new(rel), b"inside", &WriteOptions::default());
                let _ = root.create(
                    Path::new(&format!("{rel}.{i}")),
                    b"x",
                    &WriteOptions::default(),
                );
                let _ = root.mkdir_all(Path::new(&format!("{rel}.d{i}")), 0o755);
                if let Ok(entries) = root.list(Path::new(rel).parent().unwrap()) {
                    assert!(
                        entries.iter().all(|e| !e.name.starts_with("secret")),
                        "{r:?}"
                    );
                }
                let _ = root.remove(Path::new(&format!("{rel}.{i}")), &RemoveOptions::default());
            }
        }
        stop.store(true, Ordering::Relaxed);
        let swaps = t.join().unwrap();
        assert!(swaps > 0);
        assert_eq!(
            before,
            fx.outside_snapshot(),
            "{r:?}: something landed outside"
        );
        eprintln!("{r:?}: {ok_reads} successful reads, {swaps} swaps");
    }
}

#[test]
fn final_component_swapped_with_an_outside_symlink() {
    for r in resolvers() {
        let fx = Fixture::new();
        std::fs::write(fx.root_path.join("file"), b"inside").unwrap();
        symlink(fx.outside.join("secret.txt"), fx.root_path.join("file_alt")).unwrap();
        let before = fx.outside_snapshot();
        let root = fx.root(r);
        let stop = Arc::new(AtomicBool::new(false));
        let t = swapper(
            fx.root_path.join("file"),
            fx.root_path.join("file_alt"),
            stop.clone(),
        );
        let follow = ReadOptions {
            symlinks: SymlinkPolicy::FollowInside,
            ..ReadOptions::default()
        };
        let wfollow = WriteOptions {
            symlinks: SymlinkPolicy::FollowInside,
            ..WriteOptions::default()
        };
        for _ in 0..ROUNDS {
            for rel in ["file", "file_alt"] {
                for o in [&ReadOptions::default(), &follow] {
                    if let Ok(b) = root.read(Path::new(rel), o) {
                        assert_eq!(b, b"inside", "{r:?}");
                    }
                }
                let _ = root.write(Path::new(rel), b"inside", &WriteOptions::default());
                let _ = root.write(Path::new(rel), b"inside", &wfollow);
                let _ = root.set_mode(Path::new(rel), 0o600);
            }
        }
        stop.store(true, Ordering::Relaxed);
        t.join().unwrap();
        assert_eq!(before, fx.outside_snapshot(), "{r:?}");
    }
}
