//! One Gateway connection, from the WebSocket handshake to its end: `HELLO`, `IDENTIFY` or
//! `RESUME`, heartbeats at the server's interval (the first after a random fraction of it),
//! dispatches handed to the sink in sequence order, and the reason it ended.
//!
//! The cursor rule: `seq` of the session only moves past a dispatch once it was handled — a
//! message accepted by the sink, anything else applied. Dispatches that arrive meanwhile wait
//! in order; heartbeats keep going while the sink works. When the connection is lost, the
//! session resumes from that `seq`, so Discord replays exactly what was not yet handed over,
//! and a replayed dispatch at or below it is skipped: nothing is lost and nothing repeats.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

use super::events::GatewayState;
use super::protocol::{self, CLOSE_TO_RESUME, CloseAction, DiscordIntents, Fatal, Payload, op};
use super::{CHANNEL, Inner};
use crate::ChannelError;
use crate::inbound::websocket::{WsStream, connect, describe_ws_error};
use crate::inbound::{ConnectionState, InboundSink};

/// Dispatches waiting for the sink before the connection is dropped to resume later (Discord
/// replays them): bounds memory when the sink is slower than the gateway.
const MAX_QUEUED_DISPATCHES: usize = 1000;

/// A resumable session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Session {
    pub id: String,
    pub resume_url: String,
    /// The last sequence number handled (the resume cursor).
    pub seq: u64,
}

/// How to start a connection.
#[derive(Debug)]
pub(super) enum Plan {
    /// A new session on this gateway URL (from `GET /gateway/bot`).
    Identify(String),
    /// Resume this one on its `resume_gateway_url`.
    Resume(Session),
}

/// How long to wait before the next connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Delay {
    /// Straight away (Discord asked for it).
    Now,
    /// The reconnect backoff.
    Backoff,
    /// This long (after an invalid session: Discord asks for 1–5 s).
    Exactly(Duration),
}

/// How a connection ended.
#[derive(Debug)]
pub(super) enum Ended {
    /// The shutdown token was cancelled.
    Shutdown,
    /// A close code that forbids reconnecting.
    Fatal(ChannelError),
    /// Lost; connect again.
    Lost {
        /// What happened (no secrets).
        reason: String,
        /// The session to resume, or `None` for a fresh identify.
        resume: Option<Session>,
        /// When.
        delay: Delay,
        /// The connection got to `READY` / `RESUMED` (resets the attempt counter).
        ready: bool,
    },
}

type Delivery = Pin<Box<dyn Future<Output = Result<(), ChannelError>> + Send>>;

/// The running connection.
struct Conn<'a> {
    inner: &'a Inner,
    ws: WsStream,
    session: Option<Session>,
    /// Last sequence number received (what heartbeats carry).
    last_seq: Option<u64>,
    ready: bool,
}

impl Conn<'_> {
    async fn send(&mut self, v: &Value) -> Result<(), String> {
        self.ws
            .send(Message::text(v.to_string()))
            .await
            .map_err(|e| format!("sending to the gateway failed: {}", describe_ws_error(&e)))
    }

    async fn close(&mut self, code: u16) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(Some(frame))).await;
    }

    fn lost(&self, reason: impl Into<String>, delay: Delay) -> Ended {
        Ended::Lost {
            reason: reason.into(),
            resume: self.session.clone(),
            delay,
            ready: self.ready,
        }
    }

    /// Closes with the resumable code and reports a loss to resume from.
    async fn drop_to_resume(&mut self, reason: impl Into<String>, delay: Delay) -> Ended {
        self.close(CLOSE_TO_RESUME).await;
        self.lost(reason, delay)
    }

    fn handled(&mut self, seq: u64) {
        if let Some(s) = &mut self.session {
            s.seq = s.seq.max(seq);
        }
    }
}

/// Runs one connection to its end.
pub(super) async fn run(
    inner: &Inner,
    sink: &Arc<dyn InboundSink>,
    shutdown: &CancellationToken,
    gw: &mut GatewayState,
    plan: Plan,
) -> Ended {
    let s = &inner.settings;
    let (url, session) = match plan {
        Plan::Identify(u) => (protocol::connect_url(&u), None),
        Plan::Resume(sess) => (protocol::connect_url(&sess.resume_url), Some(sess)),
    };
    let resuming = session.is_some();
    let ws = tokio::select! {
        _ = shutdown.cancelled() => return Ended::Shutdown,
        r = connect(&url, &inner.connector, s.handshake_timeout) => r,
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return Ended::Lost {
                reason: format!("could not connect to the gateway: {e}"),
                resume: session,
                delay: Delay::Backoff,
                ready: false,
            };
        }
    };
    let mut c = Conn {
        inner,
        ws,
        last_seq: session.as_ref().map(|s| s.seq),
        session,
        ready: false,
    };

    // HELLO first.
    let hello = tokio::select! {
        _ = shutdown.cancelled() => { c.close(1000).await; return Ended::Shutdown; }
        r = tokio::time::timeout(s.handshake_timeout, next_payload(&mut c.ws)) => r,
    };
    let interval = match hello {
        Err(_) => {
            return c
                .drop_to_resume("no HELLO from the gateway", Delay::Backoff)
                .await;
        }
        Ok(Err(end)) => return c.ended(end),
        Ok(Ok(p)) if p.op == op::HELLO => {
            match p.d.get("heartbeat_interval").and_then(Value::as_u64) {
                Some(ms) if ms > 0 => Duration::from_millis(ms),
                _ => {
                    return c
                        .drop_to_resume("HELLO without a heartbeat_interval", Delay::Backoff)
                        .await;
                }
            }
        }
        Ok(Ok(p)) => {
            return c
                .drop_to_resume(
                    format!("the gateway sent op {} before HELLO", p.op),
                    Delay::Backoff,
                )
                .await;
        }
    };

    let token = s.token.expose();
    let first = match &c.session {
        Some(sess) => protocol::resume(token, &sess.id, sess.seq),
        None => protocol::identify(token, s.intents.bits()),
    };
    if let Err(e) = c.send(&first).await {
        return c.lost(e, Delay::Backoff);
    }
    tracing::debug!(
        channel = CHANNEL,
        resuming,
        interval_ms = interval.as_millis() as u64,
        "gateway handshake sent"
    );

    // The first heartbeat after `interval * jitter`, jitter uniform in [0, 1).
    let mut next_beat = Instant::now() + interval.mul_f64(fastrand::f64());
    let mut awaiting_ack = false;
    let handshake_deadline = Instant::now() + s.handshake_timeout;
    let mut seen_dispatch = false;
    let mut queue: VecDeque<(u64, String, Value)> = VecDeque::new();
    let mut inflight: Option<(u64, Delivery)> = None;

    loop {
        // Hand over queued dispatches until one is a message the sink must accept.
        while inflight.is_none() {
            let Some((seq, t, d)) = queue.pop_front() else {
                break;
            };
            match t.as_str() {
                "READY" => {
                    gw.apply(&t, &d);
                    let (Some(id), Some(url)) = (
                        d.get("session_id").and_then(Value::as_str),
                        d.get("resume_gateway_url").and_then(Value::as_str),
                    ) else {
                        c.close(1000).await;
                        return Ended::Lost {
                            reason: "READY without session_id / resume_gateway_url".into(),
                            resume: None,
                            delay: Delay::Backoff,
                            ready: false,
                        };
                    };
                    c.session = Some(Session {
                        id: id.to_string(),
                        resume_url: url.to_string(),
                        seq,
                    });
                    c.ready = true;
                    inner.stats.update(|st| st.connects += 1);
                    inner
                        .stats
                        .report(&**sink, CHANNEL, ConnectionState::Connected);
                    tracing::info!(
                        channel = CHANNEL,
                        bot = gw.bot_name.as_deref().unwrap_or(""),
                        "gateway session ready"
                    );
                }
                "RESUMED" => {
                    c.handled(seq);
                    c.ready = true;
                    inner.stats.update(|st| {
                        st.connects += 1;
                        st.resumes += 1;
                    });
                    inner
                        .stats
                        .report(&**sink, CHANNEL, ConnectionState::Connected);
                }
                "MESSAGE_CREATE" => match gw.message(&d, s.account.as_deref(), s.allow_bots) {
                    Some(msg) => {
                        let sink = Arc::clone(sink);
                        inflight = Some((seq, Box::pin(async move { sink.deliver(msg).await })));
                    }
                    None => c.handled(seq),
                },
                _ => {
                    gw.apply(&t, &d);
                    c.handled(seq);
                }
            }
        }

        let delivery = async {
            match inflight.as_mut() {
                Some((_, f)) => f.as_mut().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                c.close(1000).await;
                return Ended::Shutdown;
            }
            r = delivery => {
                let Some((seq, _)) = inflight.take() else { continue };
                match r {
                    Ok(()) => {
                        c.handled(seq);
                        inner.stats.update(|st| st.delivered += 1);
                    }
                    Err(e) => {
                        tracing::warn!(channel = CHANNEL, error = %e, "the sink did not accept a message; resuming later to get it again");
                        return c
                            .drop_to_resume(format!("a message could not be handed over: {e}"), Delay::Backoff)
                            .await;
                    }
                }
            }
            _ = sleep_until(next_beat) => {
                if awaiting_ack {
                    return c
                        .drop_to_resume("no heartbeat ACK within one heartbeat interval", Delay::Now)
                        .await;
                }
                if let Err(e) = c.send(&protocol::heartbeat(c.last_seq)).await {
                    return c.lost(e, Delay::Backoff);
                }
                awaiting_ack = true;
                next_beat = (next_beat + interval).max(Instant::now());
            }
            _ = sleep_until(handshake_deadline), if !seen_dispatch => {
                let what = if resuming { "RESUMED" } else { "READY" };
                return c
                    .drop_to_resume(format!("no {what} within {} s", s.handshake_timeout.as_secs_f64()), Delay::Backoff)
                    .await;
            }
            p = next_payload(&mut c.ws) => {
                let p = match p {
                    Ok(p) => p,
                    Err(end) => return c.ended(end),
                };
                match p.op {
                    op::DISPATCH => {
                        let (Some(seq), Some(t)) = (p.s, p.t) else {
                            return c.drop_to_resume("a dispatch without s / t", Delay::Backoff).await;
                        };
                        seen_dispatch = true;
                        c.last_seq = Some(c.last_seq.map_or(seq, |l| l.max(seq)));
                        let handled = c.session.as_ref().map(|s| s.seq);
                        let queued = queue.back().map(|q| q.0).or(inflight.as_ref().map(|i| i.0));
                        if t != "READY" && (handled.is_some_and(|h| seq <= h) || queued.is_some_and(|q| seq <= q)) {
                            tracing::debug!(channel = CHANNEL, seq, "skipping a dispatch already handled");
                            continue;
                        }
                        queue.push_back((seq, t, p.d));
                        if queue.len() > MAX_QUEUED_DISPATCHES {
                            return c
                                .drop_to_resume("the sink fell behind the gateway", Delay::Backoff)
                                .await;
                        }
                    }
                    op::HEARTBEAT => {
                        if let Err(e) = c.send(&protocol::heartbeat(c.last_seq)).await {
                            return c.lost(e, Delay::Backoff);
                        }
                        awaiting_ack = true;
                    }
                    op::HEARTBEAT_ACK => awaiting_ack = false,
                    op::RECONNECT => {
                        return c.drop_to_resume("Discord asked to reconnect (op 7)", Delay::Now).await;
                    }
                    op::INVALID_SESSION => {
                        if p.d.as_bool() == Some(true) {
                            return c
                                .drop_to_resume("the session was invalidated (resumable)", Delay::Now)
                                .await;
                        }
                        c.close(1000).await;
                        let (lo, hi) = s.invalid_session_delay;
                        return Ended::Lost {
                            reason: "the session was invalidated; starting a new one".into(),
                            resume: None,
                            delay: Delay::Exactly(crate::inbound::websocket::random_between(lo, hi)),
                            ready: c.ready,
                        };
                    }
                    op::HELLO => {}
                    other => tracing::debug!(channel = CHANNEL, op = other, "ignoring an unknown gateway opcode"),
                }
            }
        }
    }
}

/// Why reading stopped.
enum End {
    /// The connection broke or closed with a reconnectable code.
    Lost {
        reason: String,
        /// The close code allows resuming the session.
        resumable: bool,
    },
    /// A close code that forbids reconnecting.
    Fatal(Fatal),
}

impl Conn<'_> {
    fn ended(&self, end: End) -> Ended {
        match end {
            End::Lost { reason, resumable } => Ended::Lost {
                reason,
                resume: if resumable {
                    self.session.clone()
                } else {
                    None
                },
                delay: Delay::Backoff,
                ready: self.ready,
            },
            End::Fatal(f) => Ended::Fatal(fatal_error(f, &self.inner.settings.intents)),
        }
    }
}

/// The next JSON payload; control frames are skipped (pings are answered by the WebSocket
/// layer). A close or a broken connection ends the connection with what the close code asks.
async fn next_payload(ws: &mut WsStream) -> Result<Payload, End> {
    loop {
        let frame = match ws.next().await {
            None => return Err(lost("the gateway connection ended without a close frame")),
            Some(Err(e)) => {
                return Err(lost(format!(
                    "the gateway connection broke: {}",
                    describe_ws_error(&e)
                )));
            }
            Some(Ok(f)) => f,
        };
        let text = match frame {
            Message::Text(t) => t.to_string(),
            Message::Binary(b) => match String::from_utf8(b.to_vec()) {
                Ok(t) => t,
                Err(_) => return Err(lost("the gateway sent a binary frame")),
            },
            Message::Close(frame) => return Err(closed(frame.map(|f| u16::from(f.code)))),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        };
        return serde_json::from_str(&text)
            .map_err(|e| lost(format!("the gateway sent a payload that is not JSON: {e}")));
    }
}

fn lost(reason: impl Into<String>) -> End {
    End::Lost {
        reason: reason.into(),
        resumable: true,
    }
}

fn closed(code: Option<u16>) -> End {
    let shown = code.map_or_else(
        || "without a code".to_string(),
        |c| format!("with {c} ({})", protocol::close_name(c)),
    );
    match protocol::close_action(code) {
        CloseAction::Resume => lost(format!("the gateway closed the connection {shown}")),
        CloseAction::Reidentify => End::Lost {
            reason: format!("the gateway closed the connection {shown}; starting a new session"),
            resumable: false,
        },
        CloseAction::Fatal(f) => End::Fatal(f),
    }
}

/// The typed error for a close code that forbids reconnecting, naming the fix.
pub(super) fn fatal_error(f: Fatal, intents: &DiscordIntents) -> ChannelError {
    let code = f.code();
    match f {
        Fatal::AuthenticationFailed => ChannelError::Unauthorized {
            channel: CHANNEL.into(),
            status: 401,
            message: format!(
                "the Discord Gateway closed the connection with {code} (authentication failed): the bot token was reset or revoked. Copy the current token (Discord Developer Portal → your application → Bot → Reset Token) into channels.discord.token"
            ),
        },
        Fatal::DisallowedIntents => ChannelError::NotConfigured {
            channel: CHANNEL.into(),
            reason: format!(
                "the Discord Gateway closed the connection with {code} (disallowed intents): the bot is not allowed the privileged intents carapace asks for. Turn on {} in the Discord Developer Portal → your application → Bot → Privileged Gateway Intents{}",
                intents.privileged_names().join(" and "),
                if intents.guild_members || intents.presence {
                    " (or turn off channels.discord.intents.guildMembers / channels.discord.intents.presence)"
                } else {
                    ""
                }
            ),
        },
        Fatal::ShardingRequired => ChannelError::NotConfigured {
            channel: CHANNEL.into(),
            reason: format!(
                "the Discord Gateway closed the connection with {code} (sharding required): the bot is in too many servers for one connection, and carapace does not shard"
            ),
        },
        Fatal::InvalidShard | Fatal::InvalidApiVersion | Fatal::InvalidIntents => {
            ChannelError::NotConfigured {
                channel: CHANNEL.into(),
                reason: format!(
                    "the Discord Gateway closed the connection with {code} ({}); this carapace version speaks a Gateway dialect Discord does not accept — upgrade carapace",
                    protocol::close_name(code)
                ),
            }
        }
    }
}
