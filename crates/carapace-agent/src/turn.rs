//! One turn, as a small state machine:
//!
//! ```text
//! user message ──► [append user] ──► model call ──► [append assistant]
//!                                        ▲                │
//!                                        │        tool calls? ── no ──► [append turn_end] ► answer
//!                                        │                │ yes
//!                                        └── [append tool_result] ◄── run each call (in order)
//! ```
//!
//! Every event is appended to the transcript **before** the loop acts on it. Limits: rounds
//! (model calls per turn), wall time (`timeoutSeconds`), size of each tool result. A typed tool
//! error is a tool result the model reads (code, message, hint), never a failed turn. A
//! cancelled or timed-out turn answers its unanswered calls as interrupted and ends with a
//! `turn_end` that says why.

use std::collections::BTreeSet;
use std::sync::Arc;

use carapace_policy::models::ModelApi;
use carapace_policy::{CarapaceError, ErrorCode, ErrorEnvelope};
use carapace_tools::ToolCall;
use serde_json::{Value, json};

use crate::context::{Fitted, fit};
use crate::error::AgentError;
use crate::guard::TurnGuard;
use crate::message::{ContentPart, Message, ToolCallReq, ToolChoice, ToolDef, Usage};
use crate::observe::{LiveEvent, Observer};
use crate::prompt::cut_chars;
use crate::provider::ModelRequest;
use crate::retry::{CallCtx, Candidate, RetryPolicy, call_chain};
use crate::time::now_rfc3339;
use crate::tools::{SessionInfo, ToolExecutor};
use crate::transcript::{Event, TranscriptWriter, TurnStatus};

/// A session's state in memory between turns.
pub(crate) struct LoadedSession {
    pub id: String,
    /// Open only during a turn: an idle session holds no file descriptor.
    pub writer: Option<TranscriptWriter>,
    pub history: Vec<Message>,
    pub last_turn: u64,
    /// (shortened, dropped) of the last recorded compaction.
    pub last_compaction: (usize, usize),
}

impl LoadedSession {
    /// Appends one event to the transcript (the writer is opened by the runtime for the turn).
    pub(crate) fn append(&mut self, e: &Event) -> Result<(), AgentError> {
        match self.writer.as_mut() {
            Some(w) => w.append(e),
            None => Err(AgentError::BadRequest(
                "the transcript is not open for this turn".into(),
            )),
        }
    }
}

/// What a turn needs from the runtime.
pub(crate) struct TurnEnv<'a> {
    pub session: &'a SessionInfo,
    pub chain: Vec<Candidate>,
    pub tools: &'a dyn ToolExecutor,
    pub tool_defs: Vec<ToolDef>,
    pub system: String,
    pub observer: &'a dyn Observer,
    pub live: Option<&'a tokio::sync::mpsc::UnboundedSender<LiveEvent>>,
    pub retry: &'a RetryPolicy,
    pub max_rounds: u32,
    pub max_tool_result_chars: usize,
    pub stream: bool,
    pub tool_choice: &'a [ToolChoice],
}

/// The result of a completed turn.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnOutcome {
    /// The session id the turn ran in.
    pub session_id: String,
    /// Turn number.
    pub turn: u64,
    /// The final answer.
    pub text: String,
    /// Model calls it took.
    pub rounds: u32,
    /// Tool calls it ran.
    pub tool_calls: u32,
    /// Tokens over all rounds.
    pub usage: Usage,
    /// `provider/model` of the final answer.
    pub model: String,
}

fn send(live: Option<&tokio::sync::mpsc::UnboundedSender<LiveEvent>>, e: LiveEvent) {
    if let Some(l) = live {
        let _ = l.send(e);
    }
}

pub(crate) async fn run(
    env: &TurnEnv<'_>,
    sess: &mut LoadedSession,
    user: Vec<ContentPart>,
    guard: &TurnGuard,
) -> Result<TurnOutcome, AgentError> {
    let turn = sess.last_turn + 1;
    sess.last_turn = turn;
    sess.append(&Event::User {
        turn,
        timestamp: now_rfc3339(),
        content: user.clone(),
    })?;
    sess.history.push(Message::User(user));
    send(env.live, LiveEvent::TurnStarted { turn });
    let mut state = Progress {
        turn,
        round: 0,
        tool_calls: 0,
        usage: Usage::default(),
    };
    let result = rounds(env, sess, guard, &mut state).await;
    let (status, error) = match &result {
        Ok(_) => (TurnStatus::Completed, None),
        Err(e) => (
            match e.code() {
                ErrorCode::TurnCancelled => TurnStatus::Cancelled,
                ErrorCode::TurnLimitReached => TurnStatus::Limit,
                _ => TurnStatus::Failed,
            },
            Some(e.to_envelope()),
        ),
    };
    sess.append(&Event::TurnEnd {
        turn,
        timestamp: now_rfc3339(),
        status,
        rounds: state.round,
        error,
    })?;
    result
}

struct Progress {
    turn: u64,
    round: u32,
    tool_calls: u32,
    usage: Usage,
}

async fn rounds(
    env: &TurnEnv<'_>,
    sess: &mut LoadedSession,
    guard: &TurnGuard,
    st: &mut Progress,
) -> Result<TurnOutcome, AgentError> {
    let offered: BTreeSet<&str> = env.tool_defs.iter().map(|t| t.name.as_str()).collect();
    let current_start = sess
        .history
        .iter()
        .rposition(|m| matches!(m, Message::User(_)))
        .unwrap_or(0);
    loop {
        if st.round >= env.max_rounds {
            return Err(AgentError::LimitReached {
                limit: "rounds",
                value: env.max_rounds.to_string(),
            });
        }
        guard.check()?;
        st.round += 1;
        let round = st.round;
        let choice = env
            .tool_choice
            .get(round as usize - 1)
            .or(env.tool_choice.last())
            .cloned()
            .unwrap_or_default();
        let fixed = env.system.len() / 4
            + env
                .tool_defs
                .iter()
                .map(|t| (t.description.len() + t.parameters.to_string().len()) / 4)
                .sum::<usize>();
        // The view of each model of the chain (their windows differ).
        let fits: Vec<Fitted> = env
            .chain
            .iter()
            .map(|c| {
                let budget = (c.def.input_budget() as usize)
                    .min((c.def.context_window.saturating_sub(c.def.max_tokens)) as usize);
                fit(&sess.history, current_start, fixed, budget)
            })
            .collect();
        if let Some(f) = fits.first()
            && (f.shortened, f.dropped) != (0, 0)
            && (f.shortened, f.dropped) != sess.last_compaction
        {
            sess.append(&Event::Compaction {
                turn: st.turn,
                timestamp: now_rfc3339(),
                shortened: f.shortened,
                dropped: f.dropped,
                tokens_before: f.tokens_before,
                tokens_after: f.tokens_after,
            })?;
            sess.last_compaction = (f.shortened, f.dropped);
            send(
                env.live,
                LiveEvent::Compacted {
                    shortened: f.shortened,
                    dropped: f.dropped,
                },
            );
        }
        let build = |c: &Candidate| {
            let i = env
                .chain
                .iter()
                .position(|x| x.model_ref == c.model_ref)
                .unwrap_or(0);
            let f = &fits[i];
            let mut system = env.system.clone();
            if f.dropped > 0 {
                system.push_str(&format!(
                    "\n\n[{} earlier messages of this conversation were left out to fit the context window.]\n",
                    f.dropped
                ));
            }
            ModelRequest {
                model: c.model_ref.model.clone(),
                system,
                messages: f.messages.clone(),
                tools: env.tool_defs.clone(),
                tool_choice: choice.clone(),
                max_tokens: c.def.max_tokens,
                stream: env.stream,
            }
        };
        let ctx = CallCtx {
            observer: env.observer,
            live: env.live,
            session_key: &env.session.session_key,
            turn: st.turn,
            round,
        };
        let (completion, ci) = call_chain(&env.chain, build, env.retry, guard, &ctx).await?;
        let cand = &env.chain[ci];
        st.usage += completion.usage;
        sess.append(&Event::Assistant {
            turn: st.turn,
            round,
            timestamp: now_rfc3339(),
            provider: cand.model_ref.provider.clone(),
            model: cand.model_ref.model.clone(),
            text: completion.text.clone(),
            tool_calls: completion.tool_calls.clone(),
            usage: completion.usage,
        })?;
        sess.history.push(Message::Assistant {
            text: completion.text.clone(),
            tool_calls: completion.tool_calls.clone(),
        });
        if completion.tool_calls.is_empty() {
            return Ok(TurnOutcome {
                session_id: sess.id.clone(),
                turn: st.turn,
                text: completion.text,
                rounds: round,
                tool_calls: st.tool_calls,
                usage: st.usage,
                model: cand.model_ref.to_string(),
            });
        }
        let calls = completion.tool_calls;
        for (i, call) in calls.iter().enumerate() {
            st.tool_calls += 1;
            send(
                env.live,
                LiveEvent::ToolStarted {
                    id: call.id.clone(),
                    name: call.name.clone(),
                },
            );
            let outcome = match run_tool(env, &offered, call, guard).await {
                Ok(r) => r,
                Err(stop) => {
                    // Cancelled or out of time mid-call: every call left is interrupted.
                    for c in &calls[i..] {
                        let content = crate::transcript::history::interrupted_content();
                        sess.append(&Event::ToolResult {
                            turn: st.turn,
                            round,
                            timestamp: now_rfc3339(),
                            call_id: c.id.clone(),
                            name: c.name.clone(),
                            ok: false,
                            content: content.clone(),
                            truncated: false,
                            interrupted: true,
                        })?;
                        sess.history.push(Message::Tool {
                            call_id: c.id.clone(),
                            name: c.name.clone(),
                            content,
                            is_error: true,
                        });
                    }
                    return Err(stop);
                }
            };
            let ok = outcome.is_ok();
            let text = match &outcome {
                Ok(v) => serde_json::to_string(v).unwrap_or_else(|_| "null".into()),
                Err(e) => json!({"ok": false, "error": e}).to_string(),
            };
            let (content, truncated) = cap_result(&text, env.max_tool_result_chars);
            sess.append(&Event::ToolResult {
                turn: st.turn,
                round,
                timestamp: now_rfc3339(),
                call_id: call.id.clone(),
                name: call.name.clone(),
                ok,
                content: content.clone(),
                truncated,
                interrupted: false,
            })?;
            sess.history.push(Message::Tool {
                call_id: call.id.clone(),
                name: call.name.clone(),
                content,
                is_error: !ok,
            });
            send(
                env.live,
                LiveEvent::ToolFinished {
                    id: call.id.clone(),
                    name: call.name.clone(),
                    ok,
                },
            );
        }
    }
}

/// Runs one call; the outer `Err` is a cancelled or timed-out turn, the inner one a tool error
/// the model reads.
async fn run_tool(
    env: &TurnEnv<'_>,
    offered: &BTreeSet<&str>,
    call: &ToolCallReq,
    guard: &TurnGuard,
) -> Result<Result<Value, ErrorEnvelope>, AgentError> {
    if let Some(raw) = &call.invalid_arguments {
        return Ok(Err(ErrorEnvelope::new(
            ErrorCode::BadRequest,
            format!(
                "the arguments of this {} call are not a JSON object",
                call.name
            ),
        )
        .with_hint("call the tool again with a JSON object matching its schema")
        .with_detail("arguments", cut_chars(raw, 200).0)));
    }
    if !offered.contains(call.name.as_str()) {
        if let Some(refusal) = env.tools.unavailable(env.session, &call.name) {
            return Ok(Err(refusal));
        }
        return Ok(Err(ErrorEnvelope::new(
            ErrorCode::NotFound,
            format!("there is no tool {:?} in this session", call.name),
        )
        .with_hint(format!(
            "available tools: {}",
            offered.iter().copied().collect::<Vec<_>>().join(", ")
        ))
        .with_detail("tool", call.name.clone())));
    }
    let action = call
        .arguments
        .get("action")
        .and_then(Value::as_str)
        .map(str::to_string);
    let tc = ToolCall {
        tool: call.name.clone(),
        action,
        args: call.arguments.clone(),
        session_key: Some(env.session.session_key.clone()),
        agent_id: Some(env.session.agent_id.clone()),
        channel: env.session.channel.clone(),
    };
    guard.run(env.tools.invoke(tc)).await
}

/// Cuts a tool result to `max` characters, saying so in the text the model reads.
fn cap_result(text: &str, max: usize) -> (String, bool) {
    let n = text.chars().count();
    if n <= max {
        return (text.to_string(), false);
    }
    let (head, _) = cut_chars(text, max);
    (
        format!("{head}\n[carapace: tool result cut to {max} of {n} characters]"),
        true,
    )
}

/// The API name of a candidate's wire format.
pub(crate) fn api_name(a: ModelApi) -> &'static str {
    a.as_str()
}

/// Providers, built once per model and kept.
pub(crate) type ProviderCache =
    std::sync::Mutex<std::collections::HashMap<String, Arc<dyn crate::provider::Provider>>>;
