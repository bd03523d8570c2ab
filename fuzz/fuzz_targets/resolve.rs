//! Path resolution beneath a root (both resolvers) on arbitrary bytes: no panic, and never the
//! bytes of the file planted outside the root.
use std::os::unix::ffi::OsStrExt;

fn main() {
    let dir = std::env::temp_dir().join(format!("carapace-fuzz-{}", std::process::id()));
    let root_dir = dir.join("root");
    let _ = std::fs::create_dir_all(root_dir.join("d"));
    let _ = std::fs::write(dir.join("secret"), "FUZZ-SECRET");
    let _ = std::os::unix::fs::symlink(dir.join("secret"), root_dir.join("l_out"));
    let _ = std::os::unix::fs::symlink("../../secret", root_dir.join("d/l_up"));
    let roots: Vec<carapace_fs::Root> = [carapace_fs::Resolver::Openat2, carapace_fs::Resolver::Fallback]
        .into_iter()
        .filter_map(|r| carapace_fs::Root::open_with(&root_dir, r).ok())
        .collect();
    afl::fuzz!(|data: &[u8]| {
        let p = std::path::Path::new(std::ffi::OsStr::from_bytes(data));
        for r in &roots {
            if let Ok(b) = r.read(p, &carapace_fs::ReadOptions::default()) {
                assert!(!b.starts_with(b"FUZZ-SECRET"), "escaped: {p:?}");
            }
        }
    });
}
