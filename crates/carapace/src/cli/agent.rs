//! `carapace agent --message TEXT [--session KEY] [--agent ID]`: one turn of carapace's agent,
//! in-process (the agent surface of the tool policy, the session's sandbox), printing the reply
//! and what the tools did. With `--json`: `{ok, reply, sessionKey, sessionId, turn, model,
//! rounds, usage, tools: [{name, ok}]}`.

use std::sync::Arc;

use carapace_agent::{AgentRuntime, LiveEvent, Reply, TurnRequest};
use carapace_gateway::agent_tools::SurfaceExecutor;
use carapace_policy::session::normalize_agent_id;
use carapace_policy::{CarapaceError as _, Config, ErrorEnvelope};
use carapace_tools::ToolContext;
use clap::Args;
use serde_json::{Value, json};

use super::Global;
use crate::context::load_config;
use crate::output::emit_ok;

/// `carapace agent`
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The message for the agent.
    #[arg(long, short = 'm')]
    message: String,
    /// Session key (default: the agent's main session, `agent:<agent>:main`).
    #[arg(long)]
    session: Option<String>,
    /// Agent id (default: the session key's, else `main`).
    #[arg(long)]
    agent: Option<String>,
}

/// The session key a CLI conversation uses.
pub(super) fn session_key(session: Option<String>, agent: Option<&str>) -> String {
    session.unwrap_or_else(|| format!("agent:{}:main", normalize_agent_id(agent.unwrap_or("main"))))
}

/// An agent runtime over the config, running tools in-process on the agent surface.
pub(super) fn runtime(config: Config) -> AgentRuntime {
    let config = Arc::new(config);
    let tools = Arc::new(SurfaceExecutor::agent(ToolContext::new(config.clone())));
    AgentRuntime::builder(config.clone(), config.models.clone(), tools).build()
}

/// One tool call of the turn, as the live events told it.
pub(super) fn tool_line(e: &LiveEvent) -> Option<(String, bool)> {
    match e {
        LiveEvent::ToolFinished { name, ok, .. } => Some((name.clone(), *ok)),
        _ => None,
    }
}

/// Runs `carapace agent`.
pub async fn run(a: AgentArgs, g: &Global) -> Result<(), ErrorEnvelope> {
    let config = load_config(g.config.as_deref(), true)?;
    let rt = runtime(config);
    let key = session_key(a.session, a.agent.as_deref());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut req = TurnRequest::new(&key, &a.message);
    req.agent_id = a.agent.clone();
    req.events = Some(tx);
    let reply = rt.send(req).await.map_err(|e| e.to_envelope());
    let mut tools = Vec::new();
    while let Ok(e) = rx.try_recv() {
        if let Some(t) = tool_line(&e) {
            tools.push(t);
        }
    }
    let reply = reply?;
    let tools_json: Vec<Value> = tools
        .iter()
        .map(|(n, ok)| json!({"name": n, "ok": ok}))
        .collect();
    let mut human = String::new();
    for (n, ok) in &tools {
        eprintln!("[tool] {n}: {}", if *ok { "ok" } else { "error" });
    }
    let value = match &reply {
        Reply::Turn(o) => {
            human.push_str(&o.text);
            json!({"reply": o.text, "sessionKey": key, "sessionId": o.session_id, "turn": o.turn,
                   "model": o.model, "rounds": o.rounds,
                   "usage": {"input": o.usage.input, "output": o.usage.output},
                   "tools": tools_json})
        }
        Reply::Stopped { cancelled } => {
            human.push_str(if *cancelled {
                "stopped"
            } else {
                "nothing to stop"
            });
            json!({"stopped": cancelled, "sessionKey": key})
        }
        Reply::Reset { session_id } => {
            human.push_str(&format!("new session {session_id}"));
            json!({"reset": true, "sessionKey": key, "sessionId": session_id})
        }
    };
    emit_ok(g.json, value, &human);
    Ok(())
}
