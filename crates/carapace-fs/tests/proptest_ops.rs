//! Random relative paths and operations, run on twin trees with the two resolvers: both must
//! give the same answer (same success or same error code), the trees must end up identical,
//! and nothing outside may change.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use carapace_fs::*;
use carapace_policy::CarapaceError;
use common::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Read(PathBuf, bool),
    Write(PathBuf, bool),
    Create(PathBuf),
    Mkdir(PathBuf),
    Remove(PathBuf),
    Rename(PathBuf, PathBuf),
    Stat(PathBuf),
    List(PathBuf),
    SetMode(PathBuf),
}

fn component() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "a", "b", "c", ".", "..", "out_abs", "out_rel", "in_rel", "dangling", "loop", "",
        "\u{2025}",
    ])
}

fn path() -> impl Strategy<Value = PathBuf> {
    (
        prop::bool::weighted(0.05),
        prop::collection::vec(component(), 1..5),
    )
        .prop_map(|(abs, cs)| {
            let s = cs.join("/");
            PathBuf::from(if abs { format!("/{s}") } else { s })
        })
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (path(), any::<bool>()).prop_map(|(p, f)| Op::Read(p, f)),
        (path(), any::<bool>()).prop_map(|(p, f)| Op::Write(p, f)),
        path().prop_map(Op::Create),
        path().prop_map(Op::Mkdir),
        path().prop_map(Op::Remove),
        (path(), path()).prop_map(|(a, b)| Op::Rename(a, b)),
        path().prop_map(Op::Stat),
        path().prop_map(Op::List),
        path().prop_map(Op::SetMode),
    ]
}

fn setup() -> Fixture {
    let fx = Fixture::new();
    let r = &fx.root_path;
    std::fs::create_dir_all(r.join("a/b")).unwrap();
    std::fs::write(r.join("a/file"), b"inside").unwrap();
    symlink(&fx.outside, r.join("out_abs")).unwrap();
    symlink("../outside", r.join("out_rel")).unwrap();
    symlink("a", r.join("in_rel")).unwrap();
    symlink("nowhere", r.join("dangling")).unwrap();
    symlink("loop", r.join("loop")).unwrap();
    fx
}

fn run(root: &Root, op: &Op) -> Result<String, String> {
    let code = |e: FsError| e.code().as_str().to_string();
    let follow = |f: bool| {
        if f {
            SymlinkPolicy::FollowInside
        } else {
            SymlinkPolicy::RefuseFinal
        }
    };
    match op {
        Op::Read(p, f) => root
            .read(
                p,
                &ReadOptions {
                    symlinks: follow(*f),
                    ..ReadOptions::default()
                },
            )
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .map_err(code),
        Op::Write(p, f) => root
            .write(
                p,
                b"w",
                &WriteOptions {
                    symlinks: follow(*f),
                    ..WriteOptions::default()
                },
            )
            .map(|o| format!("{o:?}"))
            .map_err(code),
        Op::Create(p) => root
            .create(p, b"c", &WriteOptions::default())
            .map(|o| format!("{o:?}"))
            .map_err(code),
        Op::Mkdir(p) => root
            .mkdir_all(p, 0o755)
            .map(|_| String::new())
            .map_err(code),
        Op::Remove(p) => root
            .remove(p, &RemoveOptions::recursive())
            .map(|n| n.to_string())
            .map_err(code),
        Op::Rename(a, b) => root
            .rename(a, b, false)
            .map(|_| String::new())
            .map_err(code),
        Op::Stat(p) => root
            .stat(p)
            .map(|m| format!("{:?} {} {:o}", m.kind, m.size, m.mode))
            .map_err(code),
        Op::List(p) => root
            .list(p)
            .map(|v| v.into_iter().map(|e| e.name).collect::<Vec<_>>().join(","))
            .map_err(code),
        Op::SetMode(p) => root.set_mode(p, 0o640).map(|_| String::new()).map_err(code),
    }
}

fn tree(root: &Path) -> Vec<(PathBuf, Vec<u8>, u32)> {
    snapshot(root)
        .into_iter()
        .map(|(p, b, m)| (p.strip_prefix(root).unwrap().to_path_buf(), b, m))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn resolvers_agree_and_stay_inside(ops in prop::collection::vec(op(), 1..24)) {
        if resolvers().len() < 2 {
            return Ok(());
        }
        let fk = setup();
        let ff = setup();
        let kernel = fk.root(Resolver::Openat2);
        let walk = ff.root(Resolver::Fallback);
        let before = tree(&fk.outside);
        for op in &ops {
            let a = run(&kernel, op);
            let b = run(&walk, op);
            prop_assert_eq!(&a, &b, "resolvers disagree on {:?}", op);
            if let Ok(s) = &a {
                prop_assert!(!s.contains("TOP SECRET"), "read outside via {:?}", op);
            }
        }
        prop_assert_eq!(tree(&fk.root_path), tree(&ff.root_path));
        prop_assert_eq!(&before, &tree(&fk.outside));
        prop_assert_eq!(&before, &tree(&ff.outside));
    }
}
