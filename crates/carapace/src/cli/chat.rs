//! `carapace chat [--session KEY] [--agent ID]`: a terminal conversation with carapace's agent,
//! in-process. Each stdin line is a message; the answer streams to stdout as the model writes
//! it, tool calls are noted on stderr. `/new` starts the session over, `/stop` cancels the
//! running turn at once (and drops the lines typed behind it), `/exit` (or end of input)
//! leaves. Other lines typed while a turn runs — `/exit` included — wait for it, in order.
//! With `--json` each turn prints one `{ok, reply, …}` line.

use std::collections::VecDeque;
use std::io::{IsTerminal as _, Write as _};

use carapace_agent::{LiveEvent, Reply, TurnRequest};
use carapace_policy::{CarapaceError as _, ErrorEnvelope};
use clap::Args;
use serde_json::json;
use tokio::io::AsyncBufReadExt as _;
use tokio::sync::mpsc;

use super::Global;
use crate::context::load_config;
use crate::output::{emit_error, emit_ok};

/// `carapace chat`
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Session key (default: the agent's main session, `agent:<agent>:main`).
    #[arg(long)]
    session: Option<String>,
    /// Agent id (default: the session key's, else `main`).
    #[arg(long)]
    agent: Option<String>,
}

fn out(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}

fn prompt(interactive: bool) {
    if interactive {
        eprint!("> ");
    }
}

/// Runs `carapace chat`.
pub async fn run(a: ChatArgs, g: &Global) -> Result<(), ErrorEnvelope> {
    let config = load_config(g.config.as_deref(), true)?;
    let rt = super::agent::runtime(config);
    let key = super::agent::session_key(a.session, a.agent.as_deref());
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!("carapace chat — session {key}; /new, /stop, /exit");
    }
    let (line_tx, mut lines) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut r = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(l)) = r.next_line().await {
            if line_tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut queued: VecDeque<String> = VecDeque::new();
    let mut eof = false;
    prompt(interactive);
    loop {
        let line = match queued.pop_front() {
            Some(l) => l,
            None if eof => break,
            None => match lines.recv().await {
                Some(l) => l,
                None => break,
            },
        };
        let text = line.trim().to_string();
        if text.is_empty() {
            prompt(interactive);
            continue;
        }
        if text == "/exit" || text == "/quit" {
            break;
        }
        let (ev_tx, mut events) = mpsc::unbounded_channel();
        let mut req = TurnRequest::new(&key, &text);
        req.agent_id = a.agent.clone();
        req.events = Some(ev_tx);
        let turn = rt.send(req);
        tokio::pin!(turn);
        let mut streamed = false;
        let mut tools = Vec::new();
        let result = loop {
            tokio::select! {
                r = &mut turn => break r,
                Some(e) = events.recv() => match e {
                    LiveEvent::TextDelta { text } if !g.json => { streamed = true; out(&text) }
                    LiveEvent::ModelRetry { next, code } => eprintln!("\n(model call failed with {code}; retrying on {next})"),
                    LiveEvent::ToolStarted { name, .. } if !g.json => eprintln!("\n[tool] {name} …"),
                    LiveEvent::ToolFinished { name, ok, .. } => {
                        if !g.json { eprintln!("[tool] {name}: {}", if ok { "ok" } else { "error" }); }
                        tools.push(json!({"name": name, "ok": ok}));
                    }
                    _ => {}
                },
                l = lines.recv(), if !eof => match l {
                    // `/stop` acts at once and drops what was typed behind the turn; every
                    // other line (`/new`, `/exit` too) waits its turn, so piped input runs in
                    // order.
                    Some(l) if l.trim() == "/stop" => { rt.stop(&key); queued.clear(); }
                    Some(l) => queued.push_back(l),
                    None => eof = true,
                },
            }
        };
        match result {
            Ok(Reply::Turn(o)) => {
                if g.json {
                    emit_ok(
                        true,
                        json!({"reply": o.text, "sessionKey": key, "sessionId": o.session_id,
                               "turn": o.turn, "model": o.model, "tools": tools}),
                        "",
                    );
                } else if streamed {
                    out("\n");
                } else {
                    out(&format!("{}\n", o.text));
                }
            }
            Ok(Reply::Reset { session_id }) => {
                emit_ok(
                    g.json,
                    json!({"reset": true, "sessionKey": key, "sessionId": session_id}),
                    &format!("(new session {session_id})"),
                );
            }
            Ok(Reply::Stopped { cancelled }) => emit_ok(
                g.json,
                json!({"stopped": cancelled}),
                if cancelled {
                    "(stopped)"
                } else {
                    "(nothing to stop)"
                },
            ),
            Err(e) => {
                if streamed {
                    out("\n");
                }
                let env = e.to_envelope();
                if env.code == carapace_policy::ErrorCode::TurnCancelled {
                    emit_ok(g.json, json!({"stopped": true}), "(stopped)");
                } else {
                    emit_error(g.json, &env);
                }
            }
        }
        prompt(interactive);
    }
    rt.shutdown();
    Ok(())
}
