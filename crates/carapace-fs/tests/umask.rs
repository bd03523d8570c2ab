//! Modes under `umask 077` (the setup of the umask bug this project fixes): new files 0644 (or the configured mode),
//! secrets 0600, replaced files keep their mode, new directories get exactly the asked mode.
//!
//! The umask is process-wide, so it is set in this test binary only, and every test here
//! wants the same 077.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use carapace_fs::*;
use common::*;

fn umask_077() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

#[test]
fn new_files_get_the_decided_mode_whatever_the_umask() {
    umask_077();
    for r in resolvers() {
        let fx = Fixture::new();
        let root = fx.root(r);
        let o = root
            .write(Path::new("shot.png"), b"png", &WriteOptions::default())
            .unwrap();
        assert_eq!(o.mode, 0o644);
        assert_eq!(mode_of(&fx.root_path.join("shot.png")), 0o644);
        root.create(Path::new("c.png"), b"png", &WriteOptions::default())
            .unwrap();
        assert_eq!(mode_of(&fx.root_path.join("c.png")), 0o644);
        root.write_from(
            Path::new("s.png"),
            &mut &b"png"[..],
            &WriteOptions::default(),
        )
        .unwrap();
        assert_eq!(mode_of(&fx.root_path.join("s.png")), 0o644);
        root.write(
            Path::new("g"),
            b"x",
            &WriteOptions::default().with_new_file_mode(0o664),
        )
        .unwrap();
        assert_eq!(mode_of(&fx.root_path.join("g")), 0o664);
        root.write(Path::new("token"), b"x", &WriteOptions::secret())
            .unwrap();
        assert_eq!(mode_of(&fx.root_path.join("token")), 0o600);
        root.mkdir_all(Path::new("m/n/o"), 0o755).unwrap();
        for d in ["m", "m/n", "m/n/o"] {
            assert_eq!(mode_of(&fx.root_path.join(d)), 0o755, "{d}");
        }
        let src = fx.root(r);
        root.copy_in(
            &src,
            Path::new("token"),
            Path::new("m/copied"),
            &WriteOptions::default(),
        )
        .unwrap();
        assert_eq!(mode_of(&fx.root_path.join("m/copied")), 0o644);
    }
}

#[test]
fn replace_keeps_the_existing_mode() {
    umask_077();
    for r in resolvers() {
        let fx = Fixture::new();
        let root = fx.root(r);
        for (name, mode) in [
            ("exec.sh", 0o755),
            ("priv", 0o600),
            ("grp", 0o640),
            ("pub", 0o644),
        ] {
            let p = fx.root_path.join(name);
            std::fs::write(&p, b"old").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let o = root
                .write(Path::new(name), b"new", &WriteOptions::default())
                .unwrap();
            assert_eq!((o.mode, o.created), (mode, false));
            assert_eq!(mode_of(&p), mode, "{name}");
            assert_eq!(std::fs::read(&p).unwrap(), b"new");
        }
        // force_mode wins over the kept mode; set-uid never survives new content.
        root.write(Path::new("pub"), b"s", &WriteOptions::secret())
            .unwrap();
        assert_eq!(mode_of(&fx.root_path.join("pub")), 0o600);
        let suid = fx.root_path.join("suid");
        std::fs::write(&suid, b"old").unwrap();
        std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).unwrap();
        root.write(Path::new("suid"), b"new", &WriteOptions::default())
            .unwrap();
        assert_eq!(mode_of(&suid), 0o755);
        root.set_mode(Path::new("suid"), 0o644).unwrap();
        assert_eq!(mode_of(&suid), 0o644);
    }
}
