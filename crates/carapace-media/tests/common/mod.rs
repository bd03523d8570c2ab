//! Shared test helpers: PNGs (from carapace-testkit), umask, modes, configs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use carapace_policy::Config;
use carapace_policy::config::LoadEnv;

/// A valid RGB PNG of `w`×`h` whose pixels depend on `seed`.
#[allow(unused_imports)] // not every test binary that includes this module makes PNGs
pub use carapace_testkit::png::png;

/// Sets the process umask to 077 (the setup of the umask bug this project fixes). Process-wide: call it in binaries
/// where every test wants it.
pub fn umask_077() {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

/// Permission bits of a path (lstat).
pub fn mode_of(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// Makes a FIFO at `p`.
pub fn mkfifo(p: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

/// Sets permission bits.
pub fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A config from JSON5 `text`, with no environment variables, HOME `/nonexistent` and the state
/// dir `state`.
pub fn config(text: &str, state: &Path) -> Config {
    let var = |_: &str| None;
    Config::parse(
        text,
        "t.json5",
        &LoadEnv {
            var: &var,
            home: "/nonexistent",
            state_dir: state.to_path_buf(),
        },
    )
    .unwrap()
}
