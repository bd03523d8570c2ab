//! Test-only helpers shared by carapace's crates.
//!
//! Tests that need a real dependency (root, bubblewrap, a Docker engine, a Synapse homeserver,
//! Chromium) call [`require`] first. When `CARAPACE_TEST_STRICT=1` (set by `scripts/test.sh`,
//! and so in CI) a missing dependency fails the test; elsewhere the test prints a clear skip
//! message and returns early.
//!
//! Modules: [`png`] builds valid PNG files (by size, by pixels, or of an exact byte length);
//! `synapse` (feature `synapse`) talks to the real Synapse of scripts/synapse.sh; `model_server`
//! (feature `model-servers`) runs scripted OpenAI / Anthropic model servers.

/// Environment variable that turns missing test dependencies into failures.
pub const STRICT_ENV: &str = "CARAPACE_TEST_STRICT";

/// True when missing dependencies must fail tests.
pub fn strict() -> bool {
    std::env::var(STRICT_ENV).map(|v| v == "1").unwrap_or(false)
}

/// Returns true when the dependency is available and the test should go on.
///
/// When it is missing: panics under [`STRICT_ENV`], else prints a skip line and returns false.
#[allow(clippy::panic)]
pub fn require(dep: &str, available: bool, how_to_get_it: &str) -> bool {
    if available {
        return true;
    }
    if strict() {
        panic!("test dependency {dep} is missing but {STRICT_ENV}=1: {how_to_get_it}");
    }
    eprintln!("SKIP: {dep} is not available ({how_to_get_it}); set up by scripts/test.sh");
    false
}

/// True when the named program is on PATH.
pub fn have_program(name: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false)
}

/// True when running as root (uid 0), read from /proc without unsafe code.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Gate for bubblewrap.
pub fn require_bwrap() -> bool {
    require(
        "bubblewrap",
        have_program("bwrap"),
        "apt-get install -y bubblewrap",
    )
}

/// Gate for root.
pub fn require_root() -> bool {
    require("root", is_root(), "run the tests as root")
}

/// Gate for a Docker engine: `DOCKER_HOST` or `/var/run/docker.sock` must exist.
pub fn require_docker() -> bool {
    let ok = std::env::var_os("DOCKER_HOST").is_some()
        || std::path::Path::new("/var/run/docker.sock").exists();
    require(
        "docker engine",
        ok,
        "apt-get install -y docker.io and start dockerd",
    )
}

/// Gate for the Synapse homeserver started by scripts/test.sh; returns its base URL.
pub fn synapse_url() -> Option<String> {
    let url = std::env::var("CARAPACE_TEST_SYNAPSE_URL").ok();
    if require(
        "synapse",
        url.is_some(),
        "scripts/test.sh starts one and sets CARAPACE_TEST_SYNAPSE_URL",
    ) {
        url
    } else {
        None
    }
}

/// Gate for the llama.cpp server started by `scripts/llama.sh`: its OpenAI-compatible base URL
/// (ending in `/v1`) and the model id it serves.
pub fn llama_server() -> Option<(String, String)> {
    let url = std::env::var("CARAPACE_TEST_LLAMA_URL").ok();
    let model =
        std::env::var("CARAPACE_TEST_LLAMA_MODEL").unwrap_or_else(|_| "smollm2-135m".into());
    if require(
        "llama.cpp server",
        url.is_some(),
        "source scripts/llama.sh (it installs llama-cpp-python and SmolLM2, starts the server and sets CARAPACE_TEST_LLAMA_URL)",
    ) {
        url.map(|u| (u, model))
    } else {
        None
    }
}

#[cfg(feature = "model-servers")]
pub mod model_server;

pub mod png;

#[cfg(feature = "synapse")]
pub mod synapse;
