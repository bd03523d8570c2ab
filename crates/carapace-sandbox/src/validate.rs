//! Host-side validation of the mount sources a configuration uses, at load (`carapace config
//! validate`, every CLI command, every gateway reload) and again when a process first uses a
//! mount: the I/O half of `carapace_policy::binds` (which decides; this module only looks).
//!
//! For every bind of every layer: the source must exist, and its canonical path (symlinks
//! resolved) must pass `binds::check_source` against this host's protected paths — the
//! credential directories of every home directory in `/etc/passwd` and of `$HOME`, and the
//! state directory's `secrets/`. Then every source any sandbox of the configuration mounts
//! (binds, agent workspaces, workspace roots, with whether sandboxes can write them) goes
//! through `binds::check_overlaps`. A refusal is `CONFIG_INVALID` naming the config key.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use carapace_fs::{ReadOptions, Root};
use carapace_policy::binds::{self, Protected, Source, SourceKind};
use carapace_policy::config::{SandboxMode, WorkspaceAccess};
use carapace_policy::resolve::Layer;
use carapace_policy::{Config, ConfigError, ResolveInput};

/// Checks the mount sources of `config` on this host. `source_name` is the config file, for
/// the error.
pub fn check_config(config: &Config, source_name: &str) -> Result<(), ConfigError> {
    let invalid = |path: String, message: String| ConfigError::Invalid {
        source_name: source_name.to_string(),
        path,
        message,
    };
    if !uses_sandboxes(config) {
        return Ok(());
    }
    let protected = protected_paths(config);
    let mut sources: Vec<Source> = Vec::new();
    for (layer, settings) in layers(config) {
        let binds = settings
            .sandbox
            .as_ref()
            .and_then(|s| s.docker.as_ref())
            .and_then(|d| d.binds.as_ref());
        for (i, text) in binds.into_iter().flatten().enumerate() {
            let key = format!("{layer}.sandbox.docker.binds[{i}]");
            let b = binds::parse_bind(text).map_err(|m| invalid(key.clone(), m))?;
            let canonical = match std::fs::canonicalize(&b.host_path) {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(invalid(
                        key,
                        format!(
                            "host path {} does not exist (create it, or remove the bind)",
                            b.host_path
                        ),
                    ));
                }
                Err(e) => {
                    return Err(invalid(
                        key,
                        format!("host path {} cannot be resolved: {e}", b.host_path),
                    ));
                }
            };
            let canonical = canonical.display().to_string();
            binds::check_source(&b.host_path, &canonical, &protected)
                .map_err(|m| invalid(key.clone(), format!("{text:?}: {m}")))?;
            sources.push(Source {
                path: canonical,
                writable: b.writable,
                kind: SourceKind::Bind,
                key,
            });
        }
    }
    sources.extend(managed_sources(config));
    binds::check_overlaps(&sources).map_err(|o| invalid(o.key, o.message))
}

/// True when some agent can have a sandboxed session (otherwise nothing is mounted).
fn uses_sandboxes(config: &Config) -> bool {
    let modes = layers(config)
        .into_iter()
        .filter_map(|(_, a)| a.sandbox.as_ref().and_then(|s| s.mode));
    modes.into_iter().any(|m| m != SandboxMode::Off)
}

/// `agents.defaults` and every per-agent layer, with its config key.
fn layers(config: &Config) -> Vec<(String, &carapace_policy::config::AgentSettings)> {
    let a = &config.file.agents;
    let mut v = vec![("agents.defaults".to_string(), &a.defaults)];
    v.extend(
        a.entries
            .iter()
            .map(|(id, s)| (format!("agents.entries.{id}"), s)),
    );
    v.extend(
        a.list
            .iter()
            .enumerate()
            .map(|(i, s)| (format!("agents.list[{i}]"), s)),
    );
    v
}

/// The config key of a layer that decided an agent's value.
fn layer_key(config: &Config, from: &Layer) -> String {
    match from {
        Layer::Agent(id) if config.file.agents.entries.contains_key(id) => {
            format!("agents.entries.{id}")
        }
        Layer::Agent(id) => config
            .file
            .agents
            .list
            .iter()
            .position(|a| a.id.as_deref() == Some(id))
            .map_or_else(|| "agents.defaults".into(), |i| format!("agents.list[{i}]")),
        _ => "agents.defaults".into(),
    }
}

/// Agent workspaces and workspace roots of every agent (configured ones, `main`, and an
/// unconfigured one, which gets the defaults), under every channel that may override the
/// access, for sandboxed (non-main) sessions.
fn managed_sources(config: &Config) -> Vec<Source> {
    let mut agents: BTreeSet<String> = ["main".to_string()].into();
    agents.extend(config.file.agents.entries.keys().cloned());
    agents.extend(config.file.agents.list.iter().filter_map(|a| a.id.clone()));
    // An id no one configures resolves to the defaults.
    let mut unconfigured = "carapace-unconfigured-agent".to_string();
    while agents.contains(&unconfigured) {
        unconfigured.push('x');
    }
    agents.insert(unconfigured);
    let mut channels: Vec<Option<String>> = vec![None];
    channels.extend(config.channel_ids().into_iter().map(Some));
    let mut out: Vec<Source> = Vec::new();
    let mut push = |s: Source| match out
        .iter_mut()
        .find(|o| o.path == s.path && o.kind == s.kind)
    {
        Some(o) => o.writable |= s.writable,
        None => out.push(s),
    };
    for id in &agents {
        for ch in &channels {
            let key = format!("agent:{id}:carapace-validate");
            let Ok(eff) = config.resolve(&ResolveInput {
                agent: Some(id),
                channel: ch.as_deref(),
                session_key: Some(&key),
            }) else {
                continue;
            };
            if !eff.sandboxed {
                continue;
            }
            let access = eff.workspace_access.value;
            push(Source {
                path: canonical_lossy(&eff.agent_workspace.value),
                writable: access == WorkspaceAccess::Rw,
                kind: SourceKind::AgentWorkspace,
                key: format!("{}.workspace", layer_key(config, &eff.agent_workspace.from)),
            });
            push(Source {
                path: canonical_lossy(&eff.workspace_root.value),
                writable: matches!(access, WorkspaceAccess::None | WorkspaceAccess::Session),
                kind: SourceKind::WorkspaceRoot,
                key: format!(
                    "{}.sandbox.workspaceRoot",
                    layer_key(config, &eff.workspace_root.from)
                ),
            });
        }
    }
    out
}

/// The canonical form of `p`, resolving the part that exists (a workspace may not exist yet).
pub(crate) fn canonical_lossy(p: &Path) -> String {
    let mut base = p.to_path_buf();
    let mut rest: Vec<std::ffi::OsString> = Vec::new();
    loop {
        if let Ok(c) = std::fs::canonicalize(&base) {
            let mut out = c;
            for r in rest.iter().rev() {
                out.push(r);
            }
            return out.display().to_string();
        }
        match (base.file_name().map(|n| n.to_os_string()), base.parent()) {
            (Some(n), Some(parent)) => {
                rest.push(n);
                base = parent.to_path_buf();
            }
            _ => return p.display().to_string(),
        }
    }
}

/// The paths no bind may contain or lie in: every home directory's credential directories
/// (homes from `/etc/passwd`, and `$HOME`), and the state directory's `secrets/`.
fn protected_paths(config: &Config) -> Vec<Protected> {
    let mut homes: BTreeSet<PathBuf> = passwd_homes().into_iter().collect();
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        homes.insert(PathBuf::from(h));
    }
    let mut out = Vec::new();
    for h in homes {
        if h == Path::new("/") || !h.is_absolute() {
            continue;
        }
        for d in binds::SECRET_DIRS {
            out.push(Protected {
                path: canonical_lossy(&h.join(d)),
                what: format!("credentials of {}", h.display()),
            });
        }
    }
    out.push(Protected {
        path: canonical_lossy(&config.state_dir.join("secrets")),
        what: "carapace's secrets, such as the gateway token".into(),
    });
    out
}

/// Home directories listed in `/etc/passwd` (read through carapace-fs, at most 4 MiB).
fn passwd_homes() -> Vec<PathBuf> {
    let Ok(etc) = Root::open(Path::new("/etc")) else {
        return Vec::new();
    };
    let opts = ReadOptions {
        max_bytes: Some(4 << 20),
        ..ReadOptions::default()
    };
    let Ok(bytes) = etc.read(Path::new("passwd"), &opts) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|l| l.split(':').nth(5))
        .filter(|h| h.starts_with('/') && *h != "/" && *h != "/nonexistent")
        .map(PathBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use carapace_policy::LoadEnv;

    fn cfg(dir: &Path, sandbox: &str) -> Config {
        let text = format!(
            r#"{{ agents: {{ defaults: {{ workspace: "{ws}", sandbox: {{ mode: "all", workspaceRoot: "{root}", {sandbox} }} }} }} }}"#,
            ws = dir.join("ws").display(),
            root = dir.join("sbx").display(),
        );
        Config::parse(
            &text,
            "t.json5",
            &LoadEnv {
                var: &|_| None,
                home: "/nonexistent",
                state_dir: dir.join("state"),
            },
        )
        .unwrap()
    }

    fn refused(c: &Config) -> (String, String) {
        match check_config(c, "t.json5").unwrap_err() {
            ConfigError::Invalid { path, message, .. } => (path, message),
            e => panic!("{e}"),
        }
    }

    #[test]
    fn binds_are_checked_on_the_host() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        std::fs::create_dir_all(p.join("ws/sub")).unwrap();
        std::fs::create_dir_all(p.join("data")).unwrap();
        std::fs::create_dir_all(p.join("state/secrets")).unwrap();
        std::os::unix::fs::symlink("/etc", p.join("etc-link")).unwrap();
        let bind = |b: &str| format!(r#"docker: {{ binds: ["{b}"] }}"#);
        let ok = cfg(p, &bind(&format!("{}:/data:ro", p.join("data").display())));
        check_config(&ok, "t.json5").unwrap();
        // Missing source.
        let (k, m) = refused(&cfg(p, &bind(&format!("{}:/x", p.join("nope").display()))));
        assert_eq!(k, "agents.defaults.sandbox.docker.binds[0]");
        assert!(m.contains("does not exist"), "{m}");
        // A symlink to /etc.
        let (_, m) = refused(&cfg(
            p,
            &bind(&format!("{}:/x:ro", p.join("etc-link").display())),
        ));
        assert!(m.contains("(which is /etc)"), "{m}");
        // The state dir, which holds secrets/.
        let (_, m) = refused(&cfg(
            p,
            &bind(&format!("{}:/x:ro", p.join("state").display())),
        ));
        assert!(m.contains("secrets"), "{m}");
        // A bind inside the rw workspace.
        let c = cfg(
            p,
            &format!(
                r#"workspaceAccess: "rw", {}"#,
                bind(&format!("{}:/x:ro", p.join("ws/sub").display()))
            ),
        );
        let (k, m) = refused(&c);
        assert_eq!(k, "agents.defaults.sandbox.docker.binds[0]");
        assert!(m.contains("which sandboxes can write"), "{m}");
        // ... fine when the workspace is read-only.
        let c = cfg(
            p,
            &format!(
                r#"workspaceAccess: "ro", {}"#,
                bind(&format!("{}:/x:ro", p.join("ws/sub").display()))
            ),
        );
        check_config(&c, "t.json5").unwrap();
    }
}
