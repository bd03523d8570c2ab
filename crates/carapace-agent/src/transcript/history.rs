//! The conversation a transcript describes, as the model must see it.

use serde_json::json;

use super::Event;
use crate::message::{Message, ToolCallReq};

/// The conversation rebuilt from a transcript.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    /// Messages in order; every assistant tool call is followed by its result (calls a crash
    /// left unanswered get an "interrupted" result, so the wire format always holds).
    pub messages: Vec<Message>,
    /// The highest turn number seen.
    pub last_turn: u64,
    /// Calls of the last assistant message still without a result: (turn, round, call).
    pub unanswered: Vec<(u64, u32, ToolCallReq)>,
    /// A turn with a user message but no `turn_end`.
    pub unfinished_turn: Option<u64>,
}

/// What an interrupted call's result says to the model.
pub(crate) fn interrupted_content() -> String {
    json!({"ok": false, "error": {"code": "TURN_CANCELLED",
        "message": "this tool call was interrupted before it finished; its effects are unknown",
        "hint": "check the state (read, ls) before repeating it"}})
    .to_string()
}

/// Rebuilds the conversation from events.
pub fn history(events: &[Event]) -> History {
    let mut h = History::default();
    let mut open_turn: Option<u64> = None;
    let flush = |h: &mut History| {
        for (_, _, c) in std::mem::take(&mut h.unanswered) {
            h.messages.push(Message::Tool {
                call_id: c.id,
                name: c.name,
                content: interrupted_content(),
                is_error: true,
            });
        }
    };
    for e in events {
        match e {
            Event::User { turn, content, .. } => {
                flush(&mut h);
                h.last_turn = h.last_turn.max(*turn);
                open_turn = Some(*turn);
                h.messages.push(Message::User(content.clone()));
            }
            Event::Assistant {
                turn,
                round,
                text,
                tool_calls,
                ..
            } => {
                flush(&mut h);
                h.last_turn = h.last_turn.max(*turn);
                h.messages.push(Message::Assistant {
                    text: text.clone(),
                    tool_calls: tool_calls.clone(),
                });
                h.unanswered = tool_calls
                    .iter()
                    .map(|c| (*turn, *round, c.clone()))
                    .collect();
            }
            Event::ToolResult {
                call_id,
                name,
                ok,
                content,
                ..
            } => {
                let Some(pos) = h.unanswered.iter().position(|(_, _, c)| &c.id == call_id) else {
                    // A result for no pending call (a duplicate): the model never needs it.
                    continue;
                };
                // Results answer calls in order; earlier calls without one were interrupted.
                let earlier: Vec<_> = h.unanswered.drain(..pos).collect();
                for (_, _, c) in earlier {
                    h.messages.push(Message::Tool {
                        call_id: c.id,
                        name: c.name,
                        content: interrupted_content(),
                        is_error: true,
                    });
                }
                h.unanswered.remove(0);
                h.messages.push(Message::Tool {
                    call_id: call_id.clone(),
                    name: name.clone(),
                    content: content.clone(),
                    is_error: !ok,
                });
            }
            Event::TurnEnd { turn, .. } => {
                if open_turn == Some(*turn) {
                    open_turn = None;
                }
            }
            Event::Session { .. } | Event::Compaction { .. } | Event::Resumed { .. } => {}
        }
    }
    h.unfinished_turn = open_turn;
    h
}
