//! `carapace up` and `carapace gateway run`: the gateway (HTTP `/tools/invoke`, `/mcp`,
//! `/healthz`, `/metrics`) on the embedded defaults or the config file.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use carapace_gateway::auth::TokenSource;
use carapace_gateway::{Ready, RunOptions};
use carapace_policy::ErrorEnvelope;
use clap::{Args, Subcommand};
use serde_json::json;

use super::Global;
use crate::context::{config_path, load_config};
use crate::output::emit_ok;

/// `carapace gateway ...`
#[derive(Debug, Subcommand)]
pub enum GatewayCmd {
    /// Run the gateway in the foreground (the explicit form of `carapace up`).
    Run(UpArgs),
}

/// Options of `carapace up` / `carapace gateway run`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Listen address (default: gateway.bind, else 127.0.0.1:18789). Port 0 picks a free one.
    #[arg(long, value_name = "ADDR")]
    bind: Option<SocketAddr>,
    /// Do not watch the config file for changes.
    #[arg(long)]
    no_reload: bool,
}

/// Runs a `gateway` subcommand.
pub async fn run(cmd: GatewayCmd, g: &Global) -> Result<(), ErrorEnvelope> {
    match cmd {
        GatewayCmd::Run(args) => up(args, g).await,
    }
}

/// `carapace up`: start on whatever is configured (nothing configured = embedded defaults:
/// state dir created, token generated, loopback bind), print how to connect, serve until
/// SIGINT/SIGTERM.
pub async fn up(args: UpArgs, g: &Global) -> Result<(), ErrorEnvelope> {
    let config = load_config(g.config.as_deref(), true)?;
    let (path, _) = config_path(g.config.as_deref());
    let flag = g.config.clone();
    let json = g.json;
    let sandbox = sandbox_line(&config);
    let workspace = workspace_dir(&config);
    carapace_gateway::run(RunOptions {
        config,
        config_path: path,
        loader: Arc::new(move || load_config(flag.as_deref(), false)),
        factory: carapace_gateway::tools_backend::tools_factory(),
        bind: args.bind,
        reload_interval: (!args.no_reload).then_some(Duration::from_secs(1)),
        on_ready: Box::new(move |r: &Ready| announce(json, r, &sandbox, &workspace)),
    })
    .await
}

/// One line on what `exec` will run in, for the banner.
fn sandbox_line(config: &carapace_policy::Config) -> String {
    let eff = match config.resolve(&carapace_policy::ResolveInput::default()) {
        Ok(e) => e,
        Err(e) => return format!("cannot resolve the default policy: {e}"),
    };
    let name = |v: serde_json::Result<serde_json::Value>| {
        v.ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let mode = name(serde_json::to_value(eff.mode.value));
    let status = carapace_sandbox::SandboxManager::new().backend_status(eff.backend.value);
    if eff.sandboxed {
        format!("mode {mode:?}, backend: {}", status.detail)
    } else {
        format!(
            "mode {mode:?}: the main session's exec runs on the host (agents.defaults.sandbox.mode \"all\" sandboxes it; backend: {})",
            status.detail
        )
    }
}

/// The host directory the main session sees as `/workspace`.
fn workspace_dir(config: &carapace_policy::Config) -> String {
    config
        .resolve(&carapace_policy::ResolveInput::default())
        .ok()
        .and_then(|eff| {
            carapace_policy::mounts::plan(&eff)
                .workspace()
                .map(|m| m.host_path.display().to_string())
        })
        .unwrap_or_default()
}

fn announce(json: bool, r: &Ready, sandbox: &str, workspace: &str) {
    let base = format!("http://{}", r.addr);
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "carapace".into());
    let (token_where, token_path) = match &r.token.source {
        TokenSource::Config => ("gateway.auth.token in the config".to_string(), None),
        TokenSource::File { path, created } => (
            format!(
                "{} ({}, mode 0600)",
                path.display(),
                if *created {
                    "generated now"
                } else {
                    "existing"
                }
            ),
            Some(path.display().to_string()),
        ),
    };
    // The real token goes only to a terminal; logs and pipes get a placeholder.
    let shown = if std::io::stdout().is_terminal() {
        r.token.expose().to_string()
    } else {
        "<token>".to_string()
    };
    let stdio_snippet = json!({"mcpServers": {"carapace": {
        "command": exe, "args": ["mcp"],
        "env": {"CARAPACE_STATE_DIR": r.state_dir.display().to_string()}
    }}});
    let http_snippet = json!({"mcpServers": {"carapace": {
        "type": "http", "url": format!("{base}/mcp"),
        "headers": {"Authorization": format!("Bearer {shown}")}
    }}});
    let value = json!({
        "address": base,
        "invokeUrl": format!("{base}/tools/invoke"),
        "mcpUrl": format!("{base}/mcp"),
        "tokenSource": match r.token.source { TokenSource::Config => "config", TokenSource::File { .. } => "file" },
        "tokenPath": token_path,
        "stateDir": r.state_dir.display().to_string(),
        "configPath": r.config_path.display().to_string(),
        "auditLog": r.audit_path.display().to_string(),
        "pid": std::process::id(),
        "sandbox": sandbox,
        "workspace": workspace,
        "webPage": format!("{base}/"),
    });
    let token_cmd = match &token_path {
        Some(p) => format!("$(cat {p})"),
        None => "$CARAPACE_TOKEN".to_string(),
    };
    let config_note = if r.config_path.exists() {
        "watched; valid edits apply live"
    } else {
        "not present: embedded defaults; create it and it is picked up live"
    };
    let human = format!(
        "carapace gateway listening on {base}  (Ctrl-C to stop)\n\
         \x20 web page: {base}/  (log in with the token)\n\
         \x20 token:  {token_where}\n\
         \x20 state:  {}\n\
         \x20 config: {} ({config_note})\n\
         \x20 audit:  {}\n\
         \x20 sandbox: {sandbox}\n\
         \x20 /workspace: {workspace} on this machine (the main session's files)\n\
         \n\
         Invoke a tool over HTTP:\n\
         \x20 curl -sS {base}/tools/invoke -H \"Authorization: Bearer {token_cmd}\" \\\n\
         \x20      -H 'content-type: application/json' -d '{{\"tool\":\"message\",\"args\":{{\"target\":\"user:me\",\"message\":\"hello\"}}}}'\n\
         \n\
         Connect an MCP client over stdio (it starts its own `carapace mcp`):\n\
         {}\n\
         \n\
         Connect an MCP client over streamable HTTP:\n\
         {}\n",
        r.state_dir.display(),
        r.config_path.display(),
        r.audit_path.display(),
        serde_json::to_string_pretty(&stdio_snippet).unwrap_or_default(),
        serde_json::to_string_pretty(&http_snippet).unwrap_or_default(),
    );
    emit_ok(json, value, &human);
}

/// Runs `call` on the gateway at `url` instead of in-process (`--gateway URL` of `tool invoke`
/// and `message`): the token comes from `$CARAPACE_TOKEN`, else the state dir's stored token.
/// The gateway's typed error comes back as the same envelope, so exit codes match in-process.
pub async fn remote_invoke(
    url: &str,
    call: carapace_tools::ToolCall,
) -> Result<serde_json::Value, ErrorEnvelope> {
    let token = carapace_gateway::client::resolve_token(&crate::context::state_dir())?;
    let call = carapace_gateway::ToolCall {
        tool: call.tool,
        action: call.action,
        args: call.args,
        session_key: call.session_key,
        agent_id: call.agent_id,
        channel: call.channel,
    };
    carapace_gateway::client::invoke(url, &token, call).await
}
