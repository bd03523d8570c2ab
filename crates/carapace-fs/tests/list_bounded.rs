//! Bounded listings of big real directories: the first entries by name, the exact total,
//! `truncated`, staging files hidden, symlinks listed as themselves, under both resolvers.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::path::Path;

use carapace_fs::*;
use common::*;

#[test]
fn caps_a_big_directory_and_counts_it() {
    let fx = Fixture::new();
    let d = fx.root_path.join("big");
    std::fs::create_dir(&d).unwrap();
    for i in 0..20_000u32 {
        std::fs::File::create(d.join(format!("f{i:05}"))).unwrap();
    }
    std::fs::write(d.join(format!("{STAGING_PREFIX}f-0123456789ab")), b"").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", d.join("a-link")).unwrap();
    for r in resolvers() {
        let root = fx.root(r);
        let opts = ListOptions {
            max_entries: 100,
            max_scan: u64::MAX,
            hide_staging: true,
        };
        let l = root.list_bounded(Path::new("big"), &opts).unwrap();
        assert_eq!(l.entries.len(), 100);
        assert_eq!(l.total, Some(20_001));
        assert!(l.truncated);
        assert_eq!(l.entries[0].name, "a-link");
        assert_eq!(l.entries[0].meta.kind, FileKind::Symlink);
        assert_eq!(l.entries[1].name, "f00000");
        assert_eq!(l.entries[99].name, "f00098");
        // Counting stops at max_scan: the total is unknown.
        let l = root
            .list_bounded(
                Path::new("big"),
                &ListOptions {
                    max_scan: 500,
                    ..opts
                },
            )
            .unwrap();
        assert_eq!((l.total, l.truncated, l.entries.len()), (None, true, 100));
        // A small directory is whole and matches `list`.
        std::fs::create_dir_all(fx.root_path.join("small/sub")).unwrap();
        std::fs::write(fx.root_path.join("small/b"), b"bb").unwrap();
        let l = root.list_bounded(Path::new("small"), &opts).unwrap();
        assert_eq!((l.total, l.truncated), (Some(2), false));
        assert_eq!(l.entries, root.list(Path::new("small")).unwrap());
        // Staging files are visible when asked.
        let l = root
            .list_bounded(
                Path::new("big"),
                &ListOptions {
                    hide_staging: false,
                    ..opts
                },
            )
            .unwrap();
        assert_eq!(l.total, Some(20_002));
        assert!(l.entries[0].name.starts_with(STAGING_PREFIX));
        // A final symlink is refused; `..` is an escape.
        std::os::unix::fs::symlink(&fx.outside, fx.root_path.join("out")).unwrap();
        assert_eq!(
            code(root.list_bounded(Path::new("out"), &opts)),
            carapace_policy::ErrorCode::SymlinkRefused
        );
        std::fs::remove_file(fx.root_path.join("out")).unwrap();
        assert_eq!(
            code(root.list_bounded(Path::new("../outside"), &opts)),
            carapace_policy::ErrorCode::PathOutsideRoot
        );
    }
}
