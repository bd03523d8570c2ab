//! What the agent runtime and the inbound service tell the gateway: one audit line and the
//! metrics per model call ([`ModelCallRecord`]: model, tokens, latency, outcome) and per
//! inbound event. Neither carries message content or keys: the records have none.
//!
//! The lines go to the audit log's current file (`<state>/audit/audit.jsonl`), appended
//! through carapace-fs (0600, no symlinks, one `write` per line, like the tool lines), with
//! `"type": "model_call"` or `"type": "inbound"` to tell them from tool calls.

use std::path::{Path, PathBuf};

use carapace_agent::{ModelCallRecord, Observer};
use carapace_fs::{AppendOptions, Root};
use carapace_inbound::observer::{InboundEvent, InboundObserver};
use serde_json::{Value, json};

use crate::metrics::Metrics;

/// Audit lines and metrics for model calls and inbound events.
pub struct AgentObserver {
    metrics: Metrics,
    audit: Option<Root>,
    state_dir: PathBuf,
}

impl std::fmt::Debug for AgentObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentObserver")
            .field("state_dir", &self.state_dir)
            .finish_non_exhaustive()
    }
}

impl AgentObserver {
    /// An observer counting into `metrics` and, with `audit`, writing lines under
    /// `<state_dir>/audit/` (which the audit log created).
    pub fn new(metrics: Metrics, state_dir: &Path, audit: bool) -> AgentObserver {
        let root = if audit {
            match crate::auth::open_state_root(state_dir) {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::error!(error = %e.message, "model calls will not be audited");
                    None
                }
            }
        } else {
            None
        };
        AgentObserver {
            metrics,
            audit: root,
            state_dir: state_dir.to_path_buf(),
        }
    }

    fn line(&self, v: &Value) {
        let Some(root) = &self.audit else { return };
        // One record per line: the appender adds the newline.
        let bytes = match serde_json::to_vec(v) {
            Ok(b) => b,
            Err(_) => return,
        };
        let r = root
            .open_append(
                Path::new("audit/audit.jsonl"),
                &AppendOptions::default().with_durable(false),
            )
            .and_then(|mut f| f.append(&bytes));
        if let Err(e) = r {
            tracing::error!(error = %e, "audit log append failed");
        }
    }
}

impl Observer for AgentObserver {
    fn model_call(&self, r: &ModelCallRecord) {
        let model = format!("{}/{}", r.provider, r.model);
        let m = &self.metrics;
        m.model_calls.with_label_values(&[&model, &r.outcome]).inc();
        m.model_tokens
            .with_label_values(&[&model, "input"])
            .inc_by(r.input_tokens);
        m.model_tokens
            .with_label_values(&[&model, "output"])
            .inc_by(r.output_tokens);
        m.model_call_seconds
            .with_label_values(&[&model])
            .observe(r.latency_ms as f64 / 1000.0);
        let mut v = json!({"time": crate::audit::rfc3339_now(), "type": "model_call"});
        if let (Value::Object(o), Ok(Value::Object(rec))) = (&mut v, serde_json::to_value(r)) {
            o.extend(rec);
        }
        self.line(&v);
    }
}

impl InboundObserver for AgentObserver {
    fn event(&self, e: &InboundEvent) {
        let (channel, event, mut v) = match e {
            InboundEvent::Accepted {
                channel,
                event_id,
                sender,
            } => (
                channel,
                "accepted",
                json!({"eventId": event_id, "sender": sender}),
            ),
            InboundEvent::Dropped {
                channel,
                event_id,
                sender,
                reason,
            } => (
                channel,
                "dropped",
                json!({"eventId": event_id, "sender": sender, "reason": reason}),
            ),
            InboundEvent::PairingRequested { channel, sender } => {
                (channel, "pairing_requested", json!({"sender": sender}))
            }
            InboundEvent::Answered {
                channel,
                event_id,
                session_key,
                remote_ids,
            } => (
                channel,
                "answered",
                json!({"eventId": event_id, "session": session_key, "remoteIds": remote_ids}),
            ),
            InboundEvent::Failed {
                channel,
                event_id,
                error,
            } => (
                channel,
                "failed",
                json!({"eventId": event_id, "errorCode": error.code}),
            ),
        };
        self.metrics
            .inbound_events
            .with_label_values(&[channel, event])
            .inc();
        if let Value::Object(o) = &mut v {
            o.insert("time".into(), crate::audit::rfc3339_now().into());
            o.insert("type".into(), "inbound".into());
            o.insert("event".into(), event.into());
            o.insert("channel".into(), channel.clone().into());
        }
        self.line(&v);
    }
}
