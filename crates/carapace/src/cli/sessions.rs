//! `carapace sessions list|show KEY|reset KEY`: the agent's sessions on disk (the transcripts
//! under `<state>/agents/<agentId>/sessions/`), without running a turn. `reset` points the key
//! at a fresh session; the old transcript stays. While a gateway runs, prefer `/new` through
//! it: the index has one writer at a time (docs/agent.md).

use carapace_agent::{Event, SessionStore};
use carapace_policy::{CarapaceError as _, ErrorCode, ErrorEnvelope};
use clap::{Args, Subcommand};
use serde_json::json;

use super::Global;
use crate::context::load_config;
use crate::output::emit_ok;

/// `carapace sessions ...`
#[derive(Debug, Subcommand)]
pub enum SessionsCmd {
    /// Every session (of one agent with --agent).
    List(AgentOpt),
    /// One session's transcript.
    Show(KeyArgs),
    /// Start the key over on a new session (the old transcript is kept).
    Reset(KeyArgs),
}

/// `--agent`
#[derive(Debug, Args)]
pub struct AgentOpt {
    /// Agent id.
    #[arg(long)]
    agent: Option<String>,
}

/// `KEY [--agent]`
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Session key (`agent:main:main`, `agent:main:telegram:direct:42`).
    key: String,
    /// Agent id (default: the key's).
    #[arg(long)]
    agent: Option<String>,
}

fn event_line(e: &Event) -> String {
    let v = serde_json::to_value(e).unwrap_or_default();
    let kind = v["type"].as_str().unwrap_or("?").to_string();
    let text = |v: &serde_json::Value| -> String {
        match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(parts) => parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        }
    };
    let body = match kind.as_str() {
        "user" => text(&v["content"]),
        "assistant" => {
            let t = text(&v["text"]);
            let calls: Vec<&str> = v["toolCalls"]
                .as_array()
                .or(v["tool_calls"].as_array())
                .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
                .unwrap_or_default();
            if calls.is_empty() {
                t
            } else {
                format!("{t} [calls: {}]", calls.join(", "))
            }
        }
        "tool_result" => format!(
            "{} {}",
            v["name"].as_str().unwrap_or("?"),
            if v["ok"] == true { "ok" } else { "error" }
        ),
        "turn_end" => v["status"].as_str().unwrap_or("").to_string(),
        _ => String::new(),
    };
    let one_line: String = body.replace('\n', " ").chars().take(200).collect();
    format!("{kind:>11}  {one_line}")
}

/// Runs a `sessions` subcommand.
pub async fn run(cmd: SessionsCmd, g: &Global) -> Result<(), ErrorEnvelope> {
    let config = load_config(g.config.as_deref(), true)?;
    let store = SessionStore::new(&config.state_dir);
    match cmd {
        SessionsCmd::List(a) => {
            let list = store
                .list(a.agent.as_deref())
                .map_err(|e| e.to_envelope())?;
            let mut human = String::new();
            if list.is_empty() {
                human.push_str("no sessions\n");
            }
            for s in &list {
                human.push_str(&format!(
                    "{}  {} turn(s)  updated {}  ({})\n",
                    s.session_key, s.turns, s.updated_at, s.session_id
                ));
            }
            emit_ok(g.json, json!({"sessions": list}), &human);
        }
        SessionsCmd::Show(a) => {
            let view = store
                .show(&a.key, a.agent.as_deref())
                .map_err(|e| e.to_envelope())?;
            let mut human = format!(
                "{} ({}, {} turn(s))\n",
                view.summary.session_key, view.summary.session_id, view.summary.turns
            );
            for e in &view.events {
                human.push_str(&event_line(e));
                human.push('\n');
            }
            emit_ok(
                g.json,
                json!({"session": view.summary, "events": view.events, "report": view.report}),
                &human,
            );
        }
        SessionsCmd::Reset(a) => {
            let id = store
                .reset(&a.key, a.agent.as_deref())
                .map_err(|e| e.to_envelope())?
                .ok_or_else(|| {
                    ErrorEnvelope::new(ErrorCode::NotFound, format!("no session {:?}", a.key))
                        .with_hint("carapace sessions list shows the keys")
                        .with_detail("sessionKey", a.key.clone())
                })?;
            emit_ok(
                g.json,
                json!({"sessionKey": a.key, "sessionId": id}),
                &format!("{} now starts over as session {id}", a.key),
            );
        }
    }
    Ok(())
}
