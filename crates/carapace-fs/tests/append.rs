//! `Root::open_append`: mode-exact creation under `umask 077` (process-wide, so every test of
//! this binary runs under it), containment (symlinks, `..`, parents leading out), FIFOs and
//! directories refused without blocking, hardlinks refused, torn tails, and whole records from
//! concurrent writers. Every containment test runs under both resolvers.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::sync::Arc;

use carapace_fs::*;
use carapace_policy::ErrorCode;
use common::*;

fn umask_077() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

#[test]
fn creates_at_the_decided_mode_whatever_the_umask_and_keeps_existing_modes() {
    umask_077();
    for r in resolvers() {
        let fx = Fixture::new();
        let root = fx.root(r);
        let mut f = root
            .open_append(Path::new("t.jsonl"), &AppendOptions::default())
            .unwrap();
        assert!(f.created());
        assert_eq!(f.mode(), 0o600);
        f.append(br#"{"a":1}"#).unwrap();
        f.append(br#"{"b":2}"#).unwrap();
        assert_eq!(mode_of(&fx.root_path.join("t.jsonl")), 0o600);
        assert_eq!(
            std::fs::read_to_string(fx.root_path.join("t.jsonl")).unwrap(),
            "{\"a\":1}\n{\"b\":2}\n"
        );

        let g = root
            .open_append(
                Path::new("pub.jsonl"),
                &AppendOptions::default()
                    .with_new_file_mode(0o644)
                    .with_durable(true),
            )
            .unwrap();
        assert_eq!(g.mode(), 0o644);
        assert_eq!(mode_of(&fx.root_path.join("pub.jsonl")), 0o644);

        // Reopening neither recreates nor changes the mode; records go to the end.
        std::fs::set_permissions(
            fx.root_path.join("t.jsonl"),
            std::os::unix::fs::PermissionsExt::from_mode(0o640),
        )
        .unwrap();
        let mut f = root
            .open_append(Path::new("t.jsonl"), &AppendOptions::default())
            .unwrap();
        assert!(!f.created());
        assert!(!f.torn_tail());
        assert_eq!(f.mode(), 0o640);
        f.append(b"3").unwrap();
        assert_eq!(mode_of(&fx.root_path.join("t.jsonl")), 0o640);
        assert!(
            std::fs::read_to_string(fx.root_path.join("t.jsonl"))
                .unwrap()
                .ends_with("{\"b\":2}\n3\n")
        );

        // Without `create`, a missing file is NOT_FOUND and nothing appears.
        let opts = AppendOptions {
            create: false,
            ..AppendOptions::default()
        };
        assert_eq!(
            code(root.open_append(Path::new("missing.jsonl"), &opts)),
            ErrorCode::NotFound
        );
        assert!(!fx.root_path.join("missing.jsonl").exists());
    }
}

#[test]
fn escapes_are_refused_and_the_outside_is_unchanged() {
    umask_077();
    for r in resolvers() {
        let fx = Fixture::new();
        let root = fx.root(r);
        let before = fx.outside_snapshot();
        std::os::unix::fs::symlink(
            fx.outside.join("secret.txt"),
            fx.root_path.join("link.jsonl"),
        )
        .unwrap();
        std::os::unix::fs::symlink("../outside", fx.root_path.join("out")).unwrap();
        std::os::unix::fs::symlink(fx.outside.join("new.jsonl"), fx.root_path.join("dangling"))
            .unwrap();
        let o = AppendOptions::default();
        assert_eq!(
            code(root.open_append(Path::new("link.jsonl"), &o)),
            ErrorCode::SymlinkRefused
        );
        assert_eq!(
            code(root.open_append(Path::new("dangling"), &o)),
            ErrorCode::SymlinkRefused,
            "a dangling final symlink must not create its target"
        );
        assert_eq!(
            code(root.open_append(Path::new("out/secret.txt"), &o)),
            ErrorCode::PathOutsideRoot
        );
        assert_eq!(
            code(root.open_append(Path::new("out/x.jsonl"), &o)),
            ErrorCode::PathOutsideRoot
        );
        assert_eq!(
            code(root.open_append(Path::new("../outside/secret.txt"), &o)),
            ErrorCode::PathOutsideRoot
        );
        assert_eq!(
            code(root.open_append(&fx.outside.join("secret.txt"), &o)),
            ErrorCode::PathOutsideRoot
        );
        assert_eq!(fx.outside_snapshot(), before);
        assert!(!fx.outside.join("new.jsonl").exists());
    }
}

#[test]
fn fifos_directories_and_hardlinks_are_refused_without_blocking() {
    umask_077();
    for r in resolvers() {
        let fx = Fixture::new();
        let root = fx.root(r);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            fx.root_path.join("fifo.jsonl"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        std::fs::create_dir(fx.root_path.join("dir.jsonl")).unwrap();
        std::fs::write(fx.root_path.join("a.jsonl"), b"x\n").unwrap();
        std::fs::hard_link(fx.root_path.join("a.jsonl"), fx.root_path.join("b.jsonl")).unwrap();
        let o = AppendOptions::default();
        assert_eq!(
            code(root.open_append(Path::new("fifo.jsonl"), &o)),
            ErrorCode::NotRegularFile
        );
        assert_eq!(
            code(root.open_append(Path::new("dir.jsonl"), &o)),
            ErrorCode::NotRegularFile
        );
        assert_eq!(
            code(root.open_append(Path::new("b.jsonl"), &o)),
            ErrorCode::HardlinkRefused
        );
        assert_eq!(std::fs::read(fx.root_path.join("a.jsonl")).unwrap(), b"x\n");
    }
}

#[test]
fn a_torn_tail_is_reported_and_the_next_record_starts_on_its_own_line() {
    umask_077();
    let fx = Fixture::new();
    let root = fx.root(Resolver::Auto);
    std::fs::write(fx.root_path.join("t.jsonl"), b"{\"a\":1}\n{\"half\":").unwrap();
    let mut f = root
        .open_append(Path::new("t.jsonl"), &AppendOptions::default())
        .unwrap();
    assert!(f.torn_tail());
    f.append(b"{\"b\":2}").unwrap();
    f.append(b"{\"c\":3}").unwrap();
    assert_eq!(
        std::fs::read_to_string(fx.root_path.join("t.jsonl")).unwrap(),
        "{\"a\":1}\n{\"half\":\n{\"b\":2}\n{\"c\":3}\n"
    );
    // A record with a newline in it is refused whole.
    assert_eq!(code(f.append(b"x\ny")), ErrorCode::BadRequest);
    let small = AppendOptions {
        max_record_bytes: 4,
        ..AppendOptions::default()
    };
    let mut g = root.open_append(Path::new("t.jsonl"), &small).unwrap();
    assert_eq!(code(g.append(b"12345")), ErrorCode::TooLarge);
    assert!(
        std::fs::read_to_string(fx.root_path.join("t.jsonl"))
            .unwrap()
            .ends_with("{\"c\":3}\n")
    );
}

#[test]
fn concurrent_writers_never_tear_or_interleave_records() {
    umask_077();
    let fx = Fixture::new();
    let root = Arc::new(fx.root(Resolver::Auto));
    const WRITERS: usize = 8;
    const RECORDS: usize = 300;
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let root = Arc::clone(&root);
            std::thread::spawn(move || {
                // Each writer has its own open file description, as separate processes would,
                // and all of them race to create the file.
                let mut f = root
                    .open_append(Path::new("log.jsonl"), &AppendOptions::default())
                    .unwrap();
                let pad = "x".repeat(100 + w * 37);
                for i in 0..RECORDS {
                    let rec = format!(r#"{{"w":{w},"i":{i},"pad":"{pad}"}}"#);
                    f.append(rec.as_bytes()).unwrap();
                }
                f.created()
            })
        })
        .collect();
    let created = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|c| *c)
        .count();
    assert_eq!(created, 1, "exactly one writer created the file");
    let text = std::fs::read_to_string(fx.root_path.join("log.jsonl")).unwrap();
    let mut next = [0usize; WRITERS];
    let mut lines = 0;
    for line in text.lines() {
        // A writer that opens while another is mid-record can take the half-written tail for
        // a torn one and start with a separator: an empty line, which readers skip.
        if line.is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let w = v["w"].as_u64().unwrap() as usize;
        assert_eq!(
            v["i"].as_u64().unwrap() as usize,
            next[w],
            "order per writer"
        );
        assert_eq!(v["pad"].as_str().unwrap().len(), 100 + w * 37);
        next[w] += 1;
        lines += 1;
    }
    assert_eq!(lines, WRITERS * RECORDS);
    assert_eq!(mode_of(&fx.root_path.join("log.jsonl")), 0o600);
}
