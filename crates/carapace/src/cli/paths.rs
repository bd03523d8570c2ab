//! Paths as an operator types them on the command line.
//!
//! - A media reference is classified the way the `message` tool classifies it
//!   (`carapace_media::media_ref`): an `http(s)://` URL is passed on untouched (the tool
//!   downloads it), a scheme the tool refuses is passed on for the tool to refuse with its own
//!   error, a relative path is a host path from the current directory, and `/workspace/…` or
//!   any other absolute path is passed as it is.
//! - A `NOT_FOUND` for a container path (`/workspace/x`, `/agent/x`) gains the host directory
//!   carapace looked in: the operator sees where `/workspace` is on this machine. Only the CLI
//!   adds it; an agent over HTTP or MCP is not told host paths.

use carapace_media::MediaRef;
use carapace_policy::mounts::{Access, plan};
use carapace_policy::{Config, ErrorCode, ErrorEnvelope, ResolveInput};
use serde_json::Value;

/// A `--media` / `--file-path` value as the `message` tool should see it.
pub fn cli_media_ref(reference: &str) -> String {
    match carapace_media::media_ref::classify(reference) {
        Ok(MediaRef::Path(p)) if !p.starts_with('/') => match std::env::current_dir() {
            Ok(d) => d.join(p).to_string_lossy().into_owned(),
            Err(_) => p.to_string(),
        },
        _ => reference.to_string(),
    }
}

/// Adds to a `NOT_FOUND` for a container path the host file carapace looked for and the host
/// directory mounted at that container path (`details.hostPath`, `details.hostDir`). Any other
/// error is returned as it is.
pub fn where_it_looked(
    env: ErrorEnvelope,
    config: &Config,
    session: Option<&str>,
    agent: Option<&str>,
) -> ErrorEnvelope {
    if env.code != ErrorCode::NotFound {
        return env;
    }
    let Some(Value::String(path)) = env.details.get("path").cloned() else {
        return env;
    };
    let Ok(eff) = config.resolve(&ResolveInput {
        agent,
        channel: None,
        session_key: session,
    }) else {
        return env;
    };
    let table = plan(&eff);
    if !table.is_agent_path(&path) {
        return env;
    }
    let Ok(r) = table.resolve(&path, Access::Read) else {
        return env;
    };
    let (host, dir, mount) = (
        r.host_path().display().to_string(),
        r.mount.host_path.display().to_string(),
        r.mount.container_path.clone(),
    );
    let mut env = env;
    env.message = format!(
        "{}; looked for {host} ({mount} is {dir} on this machine)",
        env.message
    );
    env.with_detail("hostPath", host)
        .with_detail("hostDir", dir)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn urls_and_container_paths_pass_through_relative_paths_get_the_cwd() {
        for r in [
            "https://example.org/a.png",
            "HTTP://example.org/a.png",
            "/workspace/a.png",
            "/tmp/a.png",
            "file:///etc/passwd",
        ] {
            assert_eq!(cli_media_ref(r), r);
        }
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            cli_media_ref("a.png"),
            cwd.join("a.png").to_string_lossy().into_owned()
        );
    }
}
