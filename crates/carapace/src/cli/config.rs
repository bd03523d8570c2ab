//! `carapace config validate | show`.

use std::fmt::Write as _;

use carapace_policy::{CarapaceError, Decided, EffectiveSandbox, ErrorEnvelope, ResolveInput};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::Global;
use crate::context::{config_path, load_config};
use crate::output::emit_ok;

/// `carapace config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Check the config file; prints warnings for ignored OpenClaw sections. Exit 2 if invalid.
    Validate,
    /// Print the configuration, or with --effective the policy one session gets.
    Show(ShowArgs),
}

/// `carapace config show`
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Resolve the effective sandbox policy (channel > agent > agents.defaults > built-in).
    #[arg(long)]
    effective: bool,
    /// Agent id (default: from the session key, else "main").
    #[arg(long, requires = "effective")]
    agent: Option<String>,
    /// Channel id (default: from the session key).
    #[arg(long, requires = "effective")]
    channel: Option<String>,
    /// Session key, e.g. agent:main:telegram:dm:4242.
    #[arg(long, requires = "effective")]
    session: Option<String>,
}

/// Runs a `config` subcommand.
pub async fn run(cmd: ConfigCmd, g: &Global) -> Result<(), ErrorEnvelope> {
    let config = load_config(g.config.as_deref(), false)?;
    let (path, _) = config_path(g.config.as_deref());
    match cmd {
        ConfigCmd::Validate => {
            let mut human = format!("{}: valid", path.display());
            if config.warnings.is_empty() {
                human.push('\n');
            } else {
                let _ = writeln!(human, " ({} warning(s))", config.warnings.len());
                for w in &config.warnings {
                    let _ = writeln!(human, "  warning: {w}");
                }
            }
            emit_ok(
                g.json,
                json!({ "file": path.display().to_string(), "warnings": config.warnings }),
                &human,
            );
        }
        ConfigCmd::Show(a) if a.effective => {
            let input = ResolveInput {
                agent: a.agent.as_deref(),
                channel: a.channel.as_deref(),
                session_key: a.session.as_deref(),
            };
            let eff = config.resolve(&input).map_err(|e| e.to_envelope())?;
            let value = json!({ "effective": eff, "tools": config.file.tools, "media": {
                "dir": config.media_dir(), "fileMode": config.file.media.file_mode.unwrap_or(carapace_policy::config::Mode(0o644)),
            }});
            emit_ok(g.json, value, &render_effective(&eff));
        }
        ConfigCmd::Show(_) => {
            let value = serde_json::to_value(&config.file).unwrap_or(Value::Null);
            let human = serde_json::to_string_pretty(&value).unwrap_or_default();
            emit_ok(
                g.json,
                json!({ "file": path.display().to_string(), "config": value, "warnings": config.warnings }),
                &human,
            );
        }
    }
    Ok(())
}

/// The human form: one `key: value   # why` line per decided value.
fn render_effective(e: &EffectiveSandbox) -> String {
    fn line<T: serde::Serialize>(out: &mut String, key: &str, d: &Decided<T>) {
        let v = serde_json::to_string(&d.value).unwrap_or_default();
        let kv = format!("{key}: {v}");
        let _ = writeln!(out, "{kv:<44} # from {}", d.from);
    }
    let mut s = String::new();
    let _ = writeln!(s, "agent: {:?}", e.agent_id);
    let _ = writeln!(s, "session: {:?}", e.session_key);
    let _ = writeln!(
        s,
        "channel: {}",
        e.channel
            .as_deref()
            .map(|c| format!("{c:?}"))
            .unwrap_or_else(|| "(none)".into())
    );
    line(&mut s, "mode", &e.mode);
    let _ = writeln!(s, "sandboxed: {}", e.sandboxed);
    line(&mut s, "backend", &e.backend);
    line(&mut s, "scope", &e.scope);
    line(&mut s, "workspaceAccess", &e.workspace_access);
    line(&mut s, "sessionAgentAccess", &e.session_agent_access);
    line(&mut s, "workspaceRoot", &e.workspace_root);
    line(&mut s, "workspace", &e.agent_workspace);
    line(&mut s, "umask", &e.umask);
    let _ = writeln!(s, "scopeKey: {:?}", e.scope_key);
    let _ = writeln!(s, "sandboxDir: {:?}", e.sandbox_dir.display().to_string());
    for n in &e.notes {
        let _ = writeln!(s, "note: {n}");
    }
    s
}
