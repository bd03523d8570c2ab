//! Concurrent writers to one file, with concurrent readers: every read sees one complete
//! version, and no staging file is left behind.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use carapace_fs::*;
use common::*;

const LEN: usize = 64 * 1024;

fn uniform(b: &[u8]) -> bool {
    b.len() == LEN && b.iter().all(|x| *x == b[0])
}

#[test]
fn writers_and_readers_on_one_file() {
    for r in resolvers() {
        let fx = Fixture::new();
        let root = Arc::new(fx.root(r));
        root.write(Path::new("f"), &[0u8; LEN], &WriteOptions::default())
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let root = root.clone();
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let b = root.read(Path::new("f"), &ReadOptions::default()).unwrap();
                        assert!(uniform(&b), "torn read");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        let writers: Vec<_> = (1..=8u8)
            .map(|w| {
                let root = root.clone();
                std::thread::spawn(move || {
                    for i in 0..50u32 {
                        let opts = WriteOptions::default().with_durable(i.is_multiple_of(10));
                        let o = root.write(Path::new("f"), &[w; LEN], &opts).unwrap();
                        assert_eq!(o.mode, 0o644);
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        for rd in readers {
            assert!(rd.join().unwrap() > 0);
        }
        let names: Vec<_> = root
            .list(Path::new(""))
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, vec!["f"], "{r:?}: staging files left behind");

        // Many creators of one name: exactly one wins.
        let winners: usize = (0..8)
            .map(|i| {
                let root = root.clone();
                std::thread::spawn(move || {
                    root.create(Path::new("once"), &[i as u8; 10], &WriteOptions::default())
                        .is_ok() as usize
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(winners, 1);
    }
}
