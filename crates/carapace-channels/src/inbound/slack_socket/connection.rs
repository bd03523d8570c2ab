//! One Socket Mode connection, from the WebSocket handshake to its end.
//!
//! The acknowledgement is the cursor: an envelope that carries a message is acknowledged only
//! after the sink accepted the message, so one the sink could not take is sent again by Slack
//! (`retry_attempt` counts up) instead of being lost. Every other envelope is acknowledged as
//! soon as it is read. Slack wants an acknowledgement within 3 seconds; the sink only records
//! the message durably (the turn runs later), which is well inside that.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

use super::events::{self, BotIdentity, Frame};
use super::{CHANNEL, Inner};
use crate::ChannelError;
use crate::inbound::websocket::{WsStream, connect, describe_ws_error};
use crate::inbound::{ConnectionState, InboundSink};

/// How a connection ended.
#[derive(Debug)]
pub(super) enum Ended {
    /// The shutdown token was cancelled.
    Shutdown,
    /// Socket Mode was turned off for the app (`link_disabled`).
    Fatal(ChannelError),
    /// Lost or refreshed; open a new one.
    Lost {
        /// What happened (no secrets).
        reason: String,
        /// Slack asked for it (`disconnect`): reconnect at once, it is not a failure.
        requested: bool,
        /// The connection got to `hello` (resets the attempt counter).
        ready: bool,
    },
}

struct Conn {
    ws: WsStream,
    ready: bool,
}

impl Conn {
    async fn close(&mut self) {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), self.ws.close(Some(frame))).await;
    }

    fn lost(&self, reason: impl Into<String>) -> Ended {
        Ended::Lost {
            reason: reason.into(),
            requested: false,
            ready: self.ready,
        }
    }

    async fn ack(&mut self, envelope_id: &str) -> Result<(), Ended> {
        let text = events::ack(envelope_id).to_string();
        self.ws
            .send(Message::text(text))
            .await
            .map_err(|e| self.lost(format!("acknowledging failed: {}", describe_ws_error(&e))))
    }
}

/// Runs one connection to `url` (from `apps.connections.open`) to its end.
pub(super) async fn run(
    inner: &Inner,
    sink: &Arc<dyn InboundSink>,
    shutdown: &CancellationToken,
    me: &BotIdentity,
    url: &str,
) -> Ended {
    let s = &inner.settings;
    let ws = tokio::select! {
        _ = shutdown.cancelled() => return Ended::Shutdown,
        r = connect(url, &inner.connector, s.handshake_timeout) => r,
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => {
            return Ended::Lost {
                reason: format!("could not connect to Socket Mode: {e}"),
                requested: false,
                ready: false,
            };
        }
    };
    let mut c = Conn { ws, ready: false };
    let hello_deadline = Instant::now() + s.handshake_timeout;
    let mut last_rx = Instant::now();
    let mut ping = tokio::time::interval_at(Instant::now() + s.ping_interval, s.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                c.close().await;
                return Ended::Shutdown;
            }
            _ = tokio::time::sleep_until(hello_deadline), if !c.ready => {
                c.close().await;
                return c.lost(format!("no hello from Slack within {} s", s.handshake_timeout.as_secs_f64()));
            }
            _ = ping.tick() => {
                if last_rx.elapsed() > s.idle_timeout {
                    c.close().await;
                    return c.lost(format!(
                        "nothing came from Slack for {} s (not even a ping)",
                        s.idle_timeout.as_secs()
                    ));
                }
                if let Err(e) = c.ws.send(Message::Ping(b"carapace".to_vec().into())).await {
                    return c.lost(format!("the connection broke: {}", describe_ws_error(&e)));
                }
            }
            frame = c.ws.next() => {
                last_rx = Instant::now();
                let text = match frame {
                    None => return c.lost("the connection ended without a close frame"),
                    Some(Err(e)) => return c.lost(format!("the connection broke: {}", describe_ws_error(&e))),
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Close(f))) => {
                        let code = f.map(|f| u16::from(f.code));
                        return c.lost(match code {
                            Some(code) => format!("Slack closed the connection ({code})"),
                            None => "Slack closed the connection".to_string(),
                        });
                    }
                    Some(Ok(_)) => continue,
                };
                let frame = match events::parse_frame(&text) {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::warn!(channel = CHANNEL, error = %e, "ignoring a Socket Mode frame");
                        continue;
                    }
                };
                match frame {
                    Frame::Hello => {
                        if !c.ready {
                            c.ready = true;
                            inner.stats.update(|st| st.connects += 1);
                            inner.stats.report(&**sink, CHANNEL, ConnectionState::Connected);
                        }
                    }
                    Frame::Disconnect { reason } if reason == "link_disabled" => {
                        c.close().await;
                        return Ended::Fatal(ChannelError::NotConfigured {
                            channel: CHANNEL.into(),
                            reason: "Slack disconnected with link_disabled: Socket Mode is turned off for this app. Turn it on in the app's settings (api.slack.com/apps → your app → Settings → Socket Mode → Enable Socket Mode)".into(),
                        });
                    }
                    Frame::Disconnect { reason } => {
                        c.close().await;
                        return Ended::Lost {
                            reason: format!("Slack asked to reconnect ({reason})"),
                            requested: true,
                            ready: c.ready,
                        };
                    }
                    Frame::Envelope { envelope_id, kind, payload, retry_attempt, retry_reason } => {
                        if retry_attempt > 0 {
                            tracing::debug!(channel = CHANNEL, retry_attempt, retry_reason = retry_reason.as_deref().unwrap_or(""), "Slack sent an envelope again");
                        }
                        let msg = (kind == "events_api")
                            .then(|| events::message(&payload, me, s.account.as_deref(), s.allow_bots))
                            .flatten();
                        if let Some(msg) = msg {
                            match sink.deliver(msg).await {
                                Ok(()) => inner.stats.update(|st| st.delivered += 1),
                                Err(e) => {
                                    // Not acknowledged: Slack sends it again.
                                    tracing::warn!(channel = CHANNEL, error = %e, "the sink did not accept a message; leaving it unacknowledged so Slack sends it again");
                                    continue;
                                }
                            }
                        }
                        if let Err(end) = c.ack(&envelope_id).await {
                            return end;
                        }
                    }
                    Frame::Other(kind) => {
                        tracing::debug!(channel = CHANNEL, kind, "ignoring a Socket Mode frame");
                    }
                }
            }
        }
    }
}
