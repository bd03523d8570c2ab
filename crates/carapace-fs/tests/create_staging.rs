//! `create` through the named-staging route (`RENAME_NOREPLACE`), as on filesystems without
//! `O_TMPFILE`. The switch is process-wide, hence its own test binary.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;
use std::sync::Arc;

use carapace_fs::*;
use carapace_policy::ErrorCode;
use common::*;

#[test]
fn create_via_staging_is_no_clobber_and_mode_exact() {
    carapace_fs::testing::force_staging(true);
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    for r in resolvers() {
        let fx = Fixture::new();
        let root = Arc::new(fx.root(r));
        let o = root
            .create(Path::new("n"), b"new", &WriteOptions::default())
            .unwrap();
        assert_eq!((o.mode, o.created), (0o644, true));
        assert_eq!(mode_of(&fx.root_path.join("n")), 0o644);
        assert_eq!(
            code(root.create(Path::new("n"), b"x", &WriteOptions::default())),
            ErrorCode::AlreadyExists
        );
        assert_eq!(std::fs::read(fx.root_path.join("n")).unwrap(), b"new");
        let winners: usize = (0..8)
            .map(|i| {
                let root = root.clone();
                std::thread::spawn(move || {
                    usize::from(
                        root.create(Path::new("once"), &[i as u8; 10], &WriteOptions::default())
                            .is_ok(),
                    )
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .sum();
        assert_eq!(winners, 1);
        let names: Vec<_> = root
            .list(Path::new(""))
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, vec!["n", "once"], "no staging file left behind");
    }
}
