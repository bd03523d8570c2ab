//! Line windows on real files of hostile shapes: a sparse 3 GiB file without a line break
//! (made like the attack: one `truncate`), data after a big hole, millions of lines, one
//! endless line of real bytes. Every answer comes within the caps (no allocation beyond the
//! byte cap, no read beyond the scan budget).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;

use carapace_fs::*;
use common::*;

const GIB: u64 = 1 << 30;

fn open(root: &Root, p: &str) -> VerifiedFile {
    root.open_file(Path::new(p), &ReadOptions::default())
        .unwrap()
}

fn q(first: u64, limit: Option<u64>, max_bytes: u64, max_scan: u64) -> LineQuery {
    LineQuery {
        first,
        limit,
        max_bytes,
        max_scan,
    }
}

#[test]
fn sparse_3gib_without_a_line_break() {
    let fx = Fixture::new();
    let f = std::fs::File::create(fx.root_path.join("huge")).unwrap();
    f.set_len(3 * GIB).unwrap();
    drop(f);
    for r in resolvers() {
        let root = fx.root(r);
        let vf = open(&root, "huge");
        assert_eq!(vf.meta.size, 3 * GIB);
        // The first line alone is 3 GiB: refused after at most cap + 64 KiB of reading.
        let e = vf
            .read_lines(&q(1, Some(10), 1 << 20, 1 << 20))
            .unwrap_err();
        assert!(matches!(e, FsError::LineTooLong { line: 1, .. }), "{e}");
        // Line 2 does not exist: found without reading the hole (the scan budget is tiny).
        let w = vf.read_lines(&q(2, Some(10), 1 << 20, 4096)).unwrap();
        assert_eq!((w.lines, w.total_lines, w.more), (0, Some(1), false));
        assert!(w.bytes.is_empty());
    }
}

#[test]
fn data_after_a_big_hole() {
    let fx = Fixture::new();
    let p = fx.root_path.join("holey");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(2 * GIB).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"\nsecond\nthird\n", 2 * GIB).unwrap();
    drop(f);
    let root = fx.root(Resolver::Auto);
    let vf = open(&root, "holey");
    // Line 1 is the 2 GiB hole; lines 2.. come after it, reached without reading the hole.
    let w = vf.read_lines(&q(2, None, 1 << 20, 1 << 20)).unwrap();
    assert_eq!(w.bytes, b"second\nthird\n");
    assert_eq!((w.lines, w.total_lines), (2, Some(3)));
}

#[test]
fn millions_of_lines() {
    let fx = Fixture::new();
    // 4 million empty lines, then a marker.
    let mut data = vec![b'\n'; 4_000_000];
    data.extend_from_slice(b"marker\n");
    std::fs::write(fx.root_path.join("lines"), &data).unwrap();
    let root = fx.root(Resolver::Auto);
    let vf = open(&root, "lines");
    let w = vf
        .read_lines(&q(4_000_001, Some(5), 1 << 20, 64 << 20))
        .unwrap();
    assert_eq!(w.bytes, b"marker\n");
    assert_eq!(w.total_lines, Some(4_000_001));
    // Everything from line 1: the byte cap stops it, with whole lines only.
    let w = vf.read_lines(&q(1, None, 1000, 64 << 20)).unwrap();
    assert_eq!((w.lines, w.bytes.len(), w.more), (1000, 1000, true));
    // The scan budget bounds the skipping.
    let e = vf
        .read_lines(&q(4_000_001, Some(5), 1 << 20, 1 << 20))
        .unwrap_err();
    assert!(matches!(e, FsError::ScanLimit { .. }), "{e}");
}

#[test]
fn one_endless_line_of_real_bytes() {
    let fx = Fixture::new();
    let mut data = vec![b'x'; 8 << 20];
    data.extend_from_slice(b"\nafter\n");
    std::fs::write(fx.root_path.join("wide"), &data).unwrap();
    let root = fx.root(Resolver::Auto);
    let vf = open(&root, "wide");
    let e = vf.read_lines(&q(1, None, 1 << 20, 1 << 30)).unwrap_err();
    assert!(matches!(e, FsError::LineTooLong { .. }), "{e}");
    let w = vf.read_lines(&q(2, None, 1 << 20, 16 << 20)).unwrap();
    assert_eq!(w.bytes, b"after\n");
    let e = vf.read_lines(&q(2, None, 1 << 20, 1 << 20)).unwrap_err();
    assert!(matches!(e, FsError::ScanLimit { .. }), "{e}");
}
