//! `carapace config validate | show`.

use std::fmt::Write as _;

use carapace_policy::config::prepass::HANDLED_CHANNELS;
use carapace_policy::tools_policy::{EffectiveTools, Surface};
use carapace_policy::{
    CarapaceError, Config, Decided, EffectiveSandbox, ErrorEnvelope, ResolveInput,
};
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
            let mut warnings = config.warnings.clone();
            // Entries of tool lists that name no carapace tool (a typo, or an OpenClaw tool
            // carapace does not have): harmless in a deny list, but worth saying.
            if let Ok(p) = config.tool_policy(
                &ResolveInput::default(),
                Surface::Cli,
                &carapace_tools::registry::catalog(),
            ) {
                warnings.extend(
                    p.notes
                        .into_iter()
                        .filter(|n| n.contains("names no carapace tool")),
                );
            }
            let config = carapace_policy::Config { warnings, ..config };
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
            let mut input = ResolveInput {
                agent: a.agent.as_deref(),
                channel: a.channel.as_deref(),
                session_key: a.session.as_deref(),
            };
            // A channel carapace implements but the config does not set up has no channel
            // layer: its sessions get agents.defaults and the built-in defaults. Show that,
            // and say the channel is not configured; a name carapace does not know (a typo)
            // stays an error.
            let unconfigured = match (config.resolve(&input), a.channel.as_deref()) {
                (Ok(_), _) => None,
                (Err(_), Some(c)) if HANDLED_CHANNELS.contains(&c) => Some(c.to_string()),
                (Err(e), _) => return Err(e.to_envelope()),
            };
            if unconfigured.is_some() {
                input.channel = None;
            }
            let eff = config.resolve(&input).map_err(|e| e.to_envelope())?;
            let policies = tool_policies(&config, &input)?;
            let note = unconfigured.as_ref().map(|c| {
                format!(
                    "channel {c:?} is not configured (no channels.{c}): shown is what its sessions get from agents.defaults and the built-in defaults; add channels.{c} to use it (a send to it fails with CHANNEL_NOT_CONFIGURED until then)"
                )
            });
            let value = json!({ "effective": eff, "tools": config.file.tools,
                "models": config.models.to_redacted_json(),
                "toolPolicy": tool_policy_json(&policies),
                "channel": a.channel, "channelConfigured": unconfigured.is_none(), "note": note,
                "media": {
                "dir": config.media_dir(), "fileMode": config.file.media.file_mode.unwrap_or(carapace_policy::config::Mode(0o644)),
            }});
            let mut human = String::new();
            if let Some(n) = &note {
                let _ = writeln!(human, "note: {n}");
            }
            human.push_str(&render_effective(&eff));
            human.push_str(&render_tool_policy(&policies, false));
            emit_ok(g.json, value, &human);
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

/// The tool policy of one session on every surface.
pub(super) fn tool_policies(
    config: &Config,
    input: &ResolveInput<'_>,
) -> Result<Vec<EffectiveTools>, ErrorEnvelope> {
    let catalog = carapace_tools::registry::catalog();
    Surface::ALL
        .iter()
        .map(|s| {
            config
                .tool_policy(input, *s, &catalog)
                .map_err(|e| e.to_envelope())
        })
        .collect()
}

/// `{exec, surfaces: {cli: …, http: …, mcp: …, agent: …}}`.
pub(super) fn tool_policy_json(policies: &[EffectiveTools]) -> Value {
    let mut surfaces = serde_json::Map::new();
    for p in policies {
        surfaces.insert(
            p.surface.as_str().into(),
            serde_json::to_value(p).unwrap_or(Value::Null),
        );
    }
    json!({
        "exec": policies.first().map(|p| &p.exec),
        "surfaces": surfaces,
    })
}

/// The human form: per surface the tools it serves, then every tool it does not serve with
/// the setting that decided. `layers` adds the layers with their lists (for `sandbox explain`).
pub(super) fn render_tool_policy(policies: &[EffectiveTools], layers: bool) -> String {
    let mut s = String::new();
    let Some(first) = policies.first() else {
        return s;
    };
    let _ = writeln!(s, "Tool policy:");
    let _ = writeln!(
        s,
        "  exec security: {} (from {})",
        first.exec.security, first.exec.security_from
    );
    if first.exec.security == carapace_policy::config::ExecSecurity::Allowlist {
        let _ = writeln!(
            s,
            "  exec allowlist: {} (from {})",
            if first.exec.allowlist.is_empty() {
                "(empty: no command runs)".to_string()
            } else {
                first.exec.allowlist.join(", ")
            },
            first.exec.allowlist_from
        );
    }
    if layers {
        for l in first.layers.iter().filter(|l| l.name != "surface") {
            let state = if l.applies { "" } else { " (does not apply)" };
            let _ = writeln!(s, "  layer {}{state}:", l.name);
            if let Some(a) = &l.allow {
                let _ = writeln!(s, "    allow {} (from {})", a.entries.join(", "), a.setting);
            }
            for d in &l.deny {
                if !d.entries.is_empty() {
                    let _ = writeln!(s, "    deny {} (from {})", d.entries.join(", "), d.setting);
                }
            }
            if let Some(n) = &l.note {
                let _ = writeln!(s, "    {n}");
            }
        }
    }
    for p in policies {
        let allowed = p.allowed();
        let _ = writeln!(
            s,
            "  {}: {}",
            p.surface.as_str(),
            if allowed.is_empty() {
                "(no tools)".to_string()
            } else {
                allowed.join(", ")
            }
        );
        // Tools refused for the same reason on one line.
        let mut by_reason: Vec<(String, Vec<&str>)> = Vec::new();
        for d in p.tools.iter().filter(|d| !d.allowed) {
            if let Some(why) = p.reason(&d.tool) {
                match by_reason.iter_mut().find(|(w, _)| *w == why) {
                    Some((_, tools)) => tools.push(&d.tool),
                    None => by_reason.push((why, vec![&d.tool])),
                }
            }
        }
        for (why, tools) in by_reason {
            let _ = writeln!(s, "    not {}: {why}", tools.join(", "));
        }
    }
    for n in &first.notes {
        let _ = writeln!(s, "  note: {n}");
    }
    s
}
