//! carapace-fs next to plain `std::fs` doing the same operation in the same run.
//!
//! Groups: `read_4k`, `read_1m`, `replace_4k`, `replace_4k_durable`, `create_4k`, `stat`.
//! In each, `std` is the baseline, `carapace` uses `Resolver::Auto` (openat2 here) and
//! `carapace_fallback` forces the component walk. `scripts/bench-fs.sh` prints the ratios.
//! Files live one directory down (`bench/…`) so resolution has a parent to walk.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use carapace_fs::{ReadOptions, Resolver, Root, WriteOptions};
use criterion::{Criterion, criterion_group, criterion_main};

struct Env {
    _tmp: tempfile::TempDir,
    host: PathBuf,
    auto: Root,
    fallback: Root,
}

fn env() -> Env {
    // Benchmark on the same filesystem as the target dir unless told otherwise.
    let base = std::env::var_os("CARAPACE_BENCH_DIR").map(PathBuf::from);
    let tmp = match base {
        Some(b) => tempfile::tempdir_in(b).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let host = tmp.path().to_path_buf();
    std::fs::create_dir(host.join("bench")).unwrap();
    std::fs::write(host.join("bench/f4k"), vec![b'x'; 4096]).unwrap();
    std::fs::write(host.join("bench/f1m"), vec![b'y'; 1 << 20]).unwrap();
    std::fs::write(host.join("bench/w4k"), vec![b'z'; 4096]).unwrap();
    let auto = Root::open_with(&host, Resolver::Auto).unwrap();
    let fallback = Root::open_with(&host, Resolver::Fallback).unwrap();
    Env {
        _tmp: tmp,
        host,
        auto,
        fallback,
    }
}

fn reads(c: &mut Criterion) {
    let e = env();
    for (group, name) in [("read_4k", "bench/f4k"), ("read_1m", "bench/f1m")] {
        let mut g = c.benchmark_group(group);
        let rel = Path::new(name);
        let abs = e.host.join(name);
        let opts = ReadOptions::default();
        g.bench_function("std", |b| {
            b.iter(|| black_box(std::fs::read(&abs).unwrap()))
        });
        g.bench_function("carapace", |b| {
            b.iter(|| black_box(e.auto.read(rel, &opts).unwrap()))
        });
        g.bench_function("carapace_fallback", |b| {
            b.iter(|| black_box(e.fallback.read(rel, &opts).unwrap()))
        });
        g.finish();
    }
}

fn stats(c: &mut Criterion) {
    let e = env();
    let mut g = c.benchmark_group("stat");
    let rel = Path::new("bench/f4k");
    let abs = e.host.join(rel);
    g.bench_function("std", |b| {
        b.iter(|| black_box(std::fs::symlink_metadata(&abs).unwrap()))
    });
    g.bench_function("carapace", |b| {
        b.iter(|| black_box(e.auto.stat(rel).unwrap()))
    });
    g.bench_function("carapace_fallback", |b| {
        b.iter(|| black_box(e.fallback.stat(rel).unwrap()))
    });
    g.finish();
}

fn replaces(c: &mut Criterion) {
    let e = env();
    let data = vec![b'r'; 4096];
    let rel = Path::new("bench/w4k");
    let abs = e.host.join(rel);
    {
        let mut g = c.benchmark_group("replace_4k");
        let opts = WriteOptions::default();
        g.bench_function("std", |b| b.iter(|| std::fs::write(&abs, &data).unwrap()));
        g.bench_function("carapace", |b| {
            b.iter(|| black_box(e.auto.write(rel, &data, &opts).unwrap()))
        });
        g.finish();
    }
    {
        let mut g = c.benchmark_group("replace_4k_durable");
        g.sample_size(20);
        g.measurement_time(Duration::from_secs(8));
        let opts = WriteOptions::default().with_durable(true);
        // std's durable write: write + fsync of the file (no rename, no directory fsync).
        g.bench_function("std", |b| {
            b.iter(|| {
                let mut f = std::fs::File::create(&abs).unwrap();
                f.write_all(&data).unwrap();
                f.sync_all().unwrap();
            })
        });
        g.bench_function("carapace", |b| {
            b.iter(|| black_box(e.auto.write(rel, &data, &opts).unwrap()))
        });
        g.finish();
    }
}

fn creates(c: &mut Criterion) {
    let e = env();
    let data = vec![b'c'; 4096];
    let mut g = c.benchmark_group("create_4k");
    let mut round = 0u64;
    // New names every iteration; the files are removed outside the timed region.
    let mut run = |b: &mut criterion::Bencher<'_>, which: u8| {
        b.iter_custom(|iters| {
            round += 1;
            let dir = format!("c{which}-{round}");
            std::fs::create_dir(e.host.join(&dir)).unwrap();
            let names: Vec<String> = (0..iters).map(|i| format!("{dir}/f{i}")).collect();
            let start = Instant::now();
            for n in &names {
                match which {
                    0 => {
                        let mut f = std::fs::File::create_new(e.host.join(n)).unwrap();
                        f.write_all(&data).unwrap();
                    }
                    _ => {
                        e.auto
                            .create(Path::new(n), &data, &WriteOptions::default())
                            .unwrap();
                    }
                }
            }
            let t = start.elapsed();
            std::fs::remove_dir_all(e.host.join(&dir)).unwrap();
            t
        })
    };
    g.bench_function("std", |b| run(b, 0));
    g.bench_function("carapace", |b| run(b, 1));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = reads, stats, replaces, creates
}
criterion_main!(benches);
