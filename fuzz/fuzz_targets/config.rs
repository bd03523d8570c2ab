//! The config parser and its prepass on arbitrary bytes: no panic, bounded time.
fn main() {
    afl::fuzz!(|data: &[u8]| {
        if let Ok(text) = std::str::from_utf8(data) {
            let var = |_: &str| None;
            let env = carapace_policy::LoadEnv {
                var: &var,
                home: "/nonexistent",
                state_dir: std::path::PathBuf::from("/nonexistent/state"),
            };
            let _ = carapace_policy::Config::parse(text, "fuzz.json5", &env);
        }
    });
}
