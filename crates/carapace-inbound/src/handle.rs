//! Handling one message on its lane: who may talk (pairing codes for strangers), rate limits,
//! media, the agent turn, the reply. Every outcome ends with `done` in the journal; a reply
//! is recorded before it is sent.

use std::sync::Arc;

use carapace_agent::{AgentError, Reply, TurnRequest};
use carapace_channels::inbound::{ChatKind, InboundMessage};
use carapace_policy::access::{Decision, Incoming};
use carapace_policy::routing::PeerKind;
use carapace_policy::{CarapaceError, ErrorCode};
use carapace_tools::ToolCall;
use tokio_util::sync::CancellationToken;

use crate::envelope::turn_text;
use crate::journal::PlannedReply;
use crate::media::{inbound_limit, place};
use crate::observer::InboundEvent;
use crate::pairing::RequestOutcome;
use crate::service::{Inner, Job};
use crate::status::Counter;
use crate::tools::ReplyRoute;

/// The pairing message an unknown sender gets.
pub fn pairing_text(channel: &str, sender: &str, code: &str) -> String {
    format!(
        "carapace: I don't know you yet, so I can't answer.\n\nYour {} id: {sender}\nPairing code: {code}\n\nAsk the owner of this bot to approve you:\ncarapace pairing approve {channel} {code}\n(The code expires in an hour.)",
        crate::envelope::channel_label(channel)
    )
}

/// The message a flooding sender gets (at most once a minute).
pub const SLOW_DOWN_TEXT: &str = "carapace: you are sending messages faster than I can answer; I skipped some. Please wait a moment.";

pub(crate) fn tool_call(route: &carapace_policy::routing::Route, channel: &str) -> ToolCall {
    ToolCall {
        session_key: Some(route.session_key.clone()),
        agent_id: Some(route.agent_id.clone()),
        channel: Some(channel.to_string()),
        ..ToolCall::default()
    }
}

/// A failed turn, as the person reads it.
fn failure_text(e: &AgentError) -> String {
    let env = e.to_envelope();
    let mut t = format!("Sorry, I could not answer: {} ({})", env.message, env.code);
    if let Some(h) = env.hint {
        t.push_str(&format!("\n{h}"));
    }
    t
}

impl Inner {
    fn finish(&self, msg: &InboundMessage, outcome: &str) {
        let res = self
            .journals_get(&msg.channel)
            .map(|j| j.done(&msg.event_id, outcome));
        if let Some(Err(e)) = res {
            tracing::error!(channel = %msg.channel, error = %e, "could not record a handled message");
            self.status.error(&msg.channel, &e.to_string());
        }
    }

    fn journals_get(&self, channel: &str) -> Option<Arc<crate::journal::Journal>> {
        self.journal_if_open(channel)
    }

    fn drop_msg(&self, msg: &InboundMessage, reason: &str, counter: Counter) {
        tracing::debug!(channel = %msg.channel, sender = %msg.sender.id, reason, "message not handed to the agent");
        self.status.count(&msg.channel, counter);
        self.event(InboundEvent::Dropped {
            channel: msg.channel.clone(),
            event_id: msg.event_id.clone(),
            sender: msg.sender.id.clone(),
            reason: reason.to_string(),
        });
        self.finish(msg, &format!("dropped:{reason}"));
    }

    /// Records `reply`, sends it, and ends the message.
    async fn reply_and_finish(
        self: &Arc<Self>,
        msg: &InboundMessage,
        reply: PlannedReply,
        outcome: &str,
    ) {
        if let Some(j) = self.journals_get(&msg.channel)
            && let Err(e) = j.reply(&msg.event_id, &reply)
        {
            tracing::error!(channel = %msg.channel, error = %e, "could not record a reply");
        }
        match self.send_reply(msg, &reply).await {
            Ok(ids) => {
                self.event(InboundEvent::Answered {
                    channel: msg.channel.clone(),
                    event_id: msg.event_id.clone(),
                    session_key: reply.session_key.clone(),
                    remote_ids: ids,
                });
                self.finish(msg, outcome);
            }
            Err(e) if e.code() == ErrorCode::TurnCancelled => {
                // Shutting down: the reply stays pending and is sent at the next start.
            }
            Err(e) => {
                self.status.count(&msg.channel, Counter::Failed);
                self.status.error(&msg.channel, &e.message);
                self.event(InboundEvent::Failed {
                    channel: msg.channel.clone(),
                    event_id: msg.event_id.clone(),
                    error: e,
                });
                self.finish(msg, "failed:reply");
            }
        }
    }

    pub(crate) async fn handle(self: &Arc<Self>, job: Job) {
        let Job { msg, reply, notes } = job;
        let route = self.route_of(&msg);
        if let Some(r) = reply {
            // Recorded before a crash: send that very reply again (idempotently).
            self.reply_and_finish(&msg, r, "answered").await;
            return;
        }
        let access = self.access_of(&msg.channel);
        let kind = match msg.chat.kind {
            ChatKind::Direct => PeerKind::Direct,
            ChatKind::Group => PeerKind::Group,
        };
        let paired = kind == PeerKind::Direct
            && match self.pairing.is_allowed(&msg.channel, &msg.sender.id) {
                Ok(p) => p,
                Err(e) => {
                    // Fail closed: an unreadable store approves nobody.
                    tracing::error!(channel = %msg.channel, error = %e, "cannot read the pairing store");
                    self.status.error(&msg.channel, &e.to_string());
                    false
                }
            };
        let decision = access.decide(
            &Incoming {
                kind,
                sender: &msg.sender.id,
                chat: &msg.chat.id,
                thread: msg.chat.thread.as_deref(),
                mentioned: msg.mentions_bot,
            },
            paired,
        );
        match decision {
            Decision::Deny(r) => {
                self.drop_msg(&msg, r.as_str(), Counter::Dropped);
                return;
            }
            Decision::Pair => {
                let mut meta = std::collections::BTreeMap::new();
                if let Some(n) = &msg.sender.name {
                    meta.insert("name".to_string(), n.clone());
                }
                meta.insert("chat".to_string(), msg.chat.id.clone());
                match self.pairing.request(&msg.channel, &msg.sender.id, meta) {
                    Ok(RequestOutcome::Created(code)) => {
                        self.status.count(&msg.channel, Counter::Paired);
                        self.event(InboundEvent::PairingRequested {
                            channel: msg.channel.clone(),
                            sender: msg.sender.id.clone(),
                        });
                        let reply = PlannedReply {
                            session_key: route.session_key.clone(),
                            agent_id: route.agent_id.clone(),
                            text: pairing_text(&msg.channel, &msg.sender.id, &code),
                            media: Vec::new(),
                        };
                        self.reply_and_finish(&msg, reply, "paired").await;
                    }
                    Ok(RequestOutcome::Pending(_)) => {
                        self.drop_msg(&msg, "pairing-pending", Counter::Dropped)
                    }
                    Ok(RequestOutcome::Full) => {
                        self.drop_msg(&msg, "pairing-full", Counter::Dropped)
                    }
                    Err(e) => {
                        tracing::error!(channel = %msg.channel, error = %e, "cannot record a pairing request");
                        self.status.error(&msg.channel, &e.to_string());
                        self.drop_msg(&msg, "pairing-store-error", Counter::Failed);
                    }
                }
                return;
            }
            Decision::Allow => {}
        }
        let sender_key = format!("{}\u{0}{}", msg.channel, msg.sender.id);
        if !self.sender_limits.allow(&sender_key) || !self.channel_limits.allow(&msg.channel) {
            let notify = self.limit_notices.allow(&sender_key);
            self.status.count(&msg.channel, Counter::Limited);
            if notify {
                let reply = PlannedReply {
                    session_key: route.session_key.clone(),
                    agent_id: route.agent_id.clone(),
                    text: SLOW_DOWN_TEXT.to_string(),
                    media: Vec::new(),
                };
                self.reply_and_finish(&msg, reply, "dropped:rate-limited")
                    .await;
            } else {
                self.drop_msg(&msg, "rate-limited", Counter::Limited);
            }
            return;
        }
        self.run_turn(msg, route, notes).await;
    }

    async fn run_turn(
        self: &Arc<Self>,
        msg: InboundMessage,
        route: carapace_policy::routing::Route,
        notes: Vec<String>,
    ) {
        self.routes.set(
            &route.session_key,
            ReplyRoute {
                channel: msg.channel.clone(),
                target: crate::reply::reply_target(&msg).to_string(),
                thread: msg.chat.thread.clone(),
            },
        );
        let source = self
            .sources
            .read()
            .ok()
            .and_then(|m| m.get(&msg.channel).cloned());
        let call = tool_call(&route, &msg.channel);
        let typing = CancellationToken::new();
        if let Some(s) = source.clone() {
            let (chat, stop) = (msg.chat.clone(), typing.clone());
            self.tasks.spawn(async move {
                loop {
                    if let Err(e) = s.typing(&chat, true).await {
                        tracing::debug!(error = %e, "typing indicator failed");
                    }
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(s.typing_interval()) => {}
                    }
                }
                let _ = s.typing(&chat, false).await;
            });
        }
        let _typing_guard = typing.clone().drop_guard();
        let limit = inbound_limit(&self.config, &msg.channel);
        let mut placed = Vec::new();
        for a in &msg.attachments {
            placed.push(match &source {
                Some(s) => place(&self.tools, s.as_ref(), a, &call, limit).await,
                None => Err(format!("channel {} is not receiving", msg.channel)),
            });
        }
        let images = placed
            .iter()
            .filter_map(|p| p.as_ref().ok().and_then(|p| p.image.clone()))
            .collect();
        let req = TurnRequest {
            session_key: route.session_key.clone(),
            agent_id: Some(route.agent_id.clone()),
            channel: Some(msg.channel.clone()),
            text: if msg.text.trim_start().starts_with('/') && msg.attachments.is_empty() {
                // Commands (`/new`, `/reset`, `/stop`) reach the runtime as sent.
                msg.text.trim().to_string()
            } else {
                turn_text(&msg, &placed, &notes)
            },
            images,
            ..TurnRequest::default()
        };
        let result = self.runtime.send(req).await;
        typing.cancel();
        let text = match result {
            Ok(Reply::Turn(o)) => o.text,
            Ok(Reply::Stopped { cancelled }) => if cancelled {
                "Stopped."
            } else {
                "Nothing was running."
            }
            .to_string(),
            Ok(Reply::Reset { .. }) => "Started a new session.".to_string(),
            Err(e) if e.code() == ErrorCode::TurnCancelled => {
                if self.shutdown.is_cancelled() {
                    return; // stays pending: run again at the next start
                }
                self.finish(&msg, "cancelled");
                return;
            }
            Err(e) => {
                tracing::warn!(channel = %msg.channel, error = %e, "turn failed");
                self.status.count(&msg.channel, Counter::Failed);
                self.event(InboundEvent::Failed {
                    channel: msg.channel.clone(),
                    event_id: msg.event_id.clone(),
                    error: e.to_envelope(),
                });
                failure_text(&e)
            }
        };
        let (text, media) = carapace_tools::split_media_lines(&text);
        if text.is_empty() && media.is_empty() {
            self.finish(&msg, "answered:silent");
            return;
        }
        self.status.count(&msg.channel, Counter::Answered);
        let reply = PlannedReply {
            session_key: route.session_key,
            agent_id: route.agent_id,
            text,
            media,
        };
        self.reply_and_finish(&msg, reply, "answered").await;
    }
}
