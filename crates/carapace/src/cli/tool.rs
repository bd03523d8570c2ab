//! `carapace tool invoke <tool> [--action A] --args JSON [--session K] [--agent A] [--channel C]`:
//! runs one tool in-process, exactly as the gateway would.

use std::sync::Arc;

use carapace_policy::{ErrorCode, ErrorEnvelope};
use carapace_tools::{ToolCall, ToolContext, invoke};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::Global;
use crate::context::load_config;
use crate::output::emit_ok;

/// `carapace tool ...`
#[derive(Debug, Subcommand)]
pub enum ToolCmd {
    /// Run one tool in-process (read, write, edit, apply_patch, ls, exec, ...).
    Invoke(InvokeArgs),
}

/// `carapace tool invoke`
#[derive(Debug, Args)]
pub struct InvokeArgs {
    /// Tool name.
    tool: String,
    /// Action, for tools that have several.
    #[arg(long)]
    action: Option<String>,
    /// Arguments as a JSON object, e.g. '{"path": "notes.txt"}'.
    #[arg(long, default_value = "{}")]
    args: String,
    /// Session key, e.g. agent:main:telegram:dm:4242.
    #[arg(long)]
    session: Option<String>,
    /// Agent id (wins over the session key's).
    #[arg(long)]
    agent: Option<String>,
    /// Channel id (wins over the session key's).
    #[arg(long)]
    channel: Option<String>,
    /// Run on the gateway at this URL (token: $CARAPACE_TOKEN, else the state dir's).
    #[arg(long, value_name = "URL")]
    gateway: Option<String>,
}

/// Runs a `tool` subcommand.
pub async fn run(cmd: ToolCmd, g: &Global) -> Result<(), ErrorEnvelope> {
    let ToolCmd::Invoke(a) = cmd;
    let args: Value = serde_json::from_str(&a.args).map_err(|e| {
        ErrorEnvelope::new(ErrorCode::BadRequest, format!("--args is not JSON: {e}"))
            .with_hint("pass a JSON object, e.g. --args '{\"path\": \"notes.txt\"}'")
    })?;
    let config = Arc::new(load_config(g.config.as_deref(), true)?);
    let ctx = ToolContext::new(config.clone());
    let (session, agent) = (a.session.clone(), a.agent.clone());
    let call = ToolCall {
        tool: a.tool,
        action: a.action,
        args,
        session_key: a.session,
        agent_id: a.agent,
        channel: a.channel,
    };
    let result = match &a.gateway {
        Some(url) => super::gateway::remote_invoke(url, call).await,
        None => invoke(&ctx, call).await.map_err(|e| {
            super::paths::where_it_looked(e.0, &config, session.as_deref(), agent.as_deref())
        }),
    };
    ctx.shutdown().await;
    let result = result?;
    let human = human(&result);
    emit_ok(g.json, json!({ "result": result }), &human);
    Ok(())
}

/// exec prints its output as a shell would (plus a status line when it matters); other tools
/// print their result as pretty JSON.
fn human(result: &Value) -> String {
    if let (Some(out), Some(err), Some(code)) = (
        result.get("stdout").and_then(Value::as_str),
        result.get("stderr").and_then(Value::as_str),
        result.get("exitCode").and_then(Value::as_i64),
    ) {
        if !err.is_empty() {
            eprint!("{err}");
        }
        let s = out.to_string();
        let mut notes = Vec::new();
        if code != 0 {
            notes.push(format!("exit code {code}"));
        }
        if result.get("timedOut") == Some(&Value::Bool(true)) {
            notes.push("timed out; the process tree was killed".into());
        }
        if result.get("truncated") == Some(&Value::Bool(true)) {
            notes.push("output truncated at tools.exec.maxOutputBytes".into());
        }
        if result.get("sandboxed") == Some(&Value::Bool(false)) {
            notes.push("ran on the host, unsandboxed (sandbox mode off for this session)".into());
        }
        if !notes.is_empty() {
            eprintln!("[{}]", notes.join("; "));
        }
        return s;
    }
    serde_json::to_string_pretty(result).unwrap_or_default()
}
