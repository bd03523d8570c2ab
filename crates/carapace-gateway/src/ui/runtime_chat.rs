//! [`RuntimeChat`]: the chat view's [`ChatBackend`] over `carapace_agent::AgentRuntime`.
//!
//! The runtime's live events name a tool call by id and name only; the arguments and the
//! typed error are read from the session's transcript, which the runtime writes before it
//! runs a call and before it reports the result.

use carapace_agent::{AgentRuntime, Event, LiveEvent, Reply, TurnRequest};
use carapace_policy::CarapaceError;
use serde_json::Value;
use tokio::sync::mpsc;

use super::backend::{ChatBackend, ChatEvent, ChatTurn, ResetFuture, ToolOutcome};

/// The chat view's agent: one [`AgentRuntime`] (the gateway's).
#[derive(Clone)]
pub struct RuntimeChat {
    rt: AgentRuntime,
    model: Option<String>,
}

impl std::fmt::Debug for RuntimeChat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeChat")
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl RuntimeChat {
    /// A chat over `rt`; `model` is what the page shows as the model
    /// (`agents.defaults.model.primary`).
    pub fn new(rt: AgentRuntime, model: Option<String>) -> RuntimeChat {
        RuntimeChat { rt, model }
    }
}

fn tool_args(rt: &AgentRuntime, key: &str, id: &str) -> Value {
    let Ok(view) = rt.sessions().show(key, None) else {
        return Value::Null;
    };
    view.events
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Assistant { tool_calls, .. } => tool_calls
                .iter()
                .find(|c| c.id == id)
                .map(|c| c.arguments.clone()),
            _ => None,
        })
        .unwrap_or(Value::Null)
}

fn tool_outcome(rt: &AgentRuntime, key: &str, id: &str, ok: bool) -> ToolOutcome {
    if ok {
        return ToolOutcome::Ok;
    }
    let content = rt.sessions().show(key, None).ok().and_then(|v| {
        v.events.iter().rev().find_map(|e| match e {
            Event::ToolResult {
                call_id, content, ..
            } if call_id == id => Some(content.clone()),
            _ => None,
        })
    });
    let parsed: Option<Value> = content
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok());
    let err = parsed.as_ref().map(|v| &v["error"]);
    let s = |v: Option<&Value>, k: &str| v.and_then(|e| e[k].as_str()).map(str::to_string);
    ToolOutcome::Error {
        code: s(err, "code").unwrap_or_else(|| "TOOL_ERROR".into()),
        message: s(err, "message")
            .or(content)
            .unwrap_or_else(|| "the tool failed".into()),
        hint: s(err, "hint"),
    }
}

impl ChatBackend for RuntimeChat {
    fn model(&self) -> Option<String> {
        self.model.clone()
    }

    fn start(&self, turn: ChatTurn) -> mpsc::UnboundedReceiver<ChatEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        let rt = self.rt.clone();
        tokio::spawn(async move {
            let key = turn.session_key.clone();
            let (ltx, mut lrx) = mpsc::unbounded_channel();
            let req = TurnRequest {
                session_key: turn.session_key,
                text: turn.text,
                images: turn.images,
                events: Some(ltx),
                ..TurnRequest::default()
            };
            let runner = rt.clone();
            let mut job = tokio::spawn(async move { runner.send(req).await });
            let result = loop {
                tokio::select! {
                    ev = lrx.recv() => match ev {
                        Some(ev) => {
                            if let Some(out) = map_live(&rt, &key, ev) {
                                let _ = tx.send(out);
                            }
                        }
                        None => break (&mut job).await,
                    },
                    r = &mut job => {
                        // Drain what the turn sent before it ended.
                        while let Ok(ev) = lrx.try_recv() {
                            if let Some(out) = map_live(&rt, &key, ev) {
                                let _ = tx.send(out);
                            }
                        }
                        break r;
                    }
                }
            };
            let last = match result {
                Ok(Ok(Reply::Turn(o))) => {
                    let (text, media) = carapace_tools::split_media_lines(&o.text);
                    for path in media {
                        let _ = tx.send(ChatEvent::Attachment { path });
                    }
                    ChatEvent::Done {
                        text,
                        model: Some(o.model),
                    }
                }
                Ok(Ok(Reply::Stopped { cancelled })) => ChatEvent::Done {
                    text: if cancelled {
                        "Stopped.".into()
                    } else {
                        "Nothing was running.".into()
                    },
                    model: None,
                },
                Ok(Ok(Reply::Reset { .. })) => ChatEvent::Done {
                    text: "Started a new session.".into(),
                    model: None,
                },
                Ok(Err(e)) => ChatEvent::Failed {
                    error: e.to_envelope(),
                },
                Err(e) => ChatEvent::Failed {
                    error: carapace_policy::ErrorEnvelope::new(
                        carapace_policy::ErrorCode::Internal,
                        format!("the turn failed unexpectedly (a bug): {e}"),
                    ),
                },
            };
            let _ = tx.send(last);
        });
        rx
    }

    fn reset<'a>(&'a self, session_key: &'a str) -> ResetFuture<'a> {
        Box::pin(async move {
            self.rt
                .reset(session_key, None)
                .await
                .map_err(|e| e.to_envelope())
        })
    }
}

fn map_live(rt: &AgentRuntime, key: &str, ev: LiveEvent) -> Option<ChatEvent> {
    match ev {
        LiveEvent::TextDelta { text } => Some(ChatEvent::Text { text }),
        LiveEvent::ModelRetry { next, code } => Some(ChatEvent::Retry { next, code }),
        LiveEvent::ToolStarted { id, name } => {
            let args = tool_args(rt, key, &id);
            Some(ChatEvent::ToolStarted { id, name, args })
        }
        LiveEvent::ToolFinished { id, name, ok } => {
            let outcome = tool_outcome(rt, key, &id, ok);
            Some(ChatEvent::ToolFinished { id, name, outcome })
        }
        _ => None,
    }
}
