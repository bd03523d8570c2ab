//! `carapace channels status`: each configured channel's connection, cursor and last error,
//! as the running gateway last wrote them (`<state>/channels/<id>/status.json`), plus the
//! pending pairing requests.

use carapace_channels::inbound::CursorStore;
use carapace_channels::inbound::from_config::wants_source;
use carapace_channels::inbound::{ConnectionState, ConnectionStats};
use carapace_inbound::{PairingStore, read_status};
use carapace_policy::ErrorEnvelope;
use clap::Subcommand;
use serde_json::json;

use super::Global;
use crate::context::load_config;
use crate::output::emit_ok;

/// `carapace channels ...`
#[derive(Debug, Subcommand)]
pub enum ChannelsCmd {
    /// Connection, cursor, last error and counters of every configured channel.
    Status,
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

fn state_word(s: &ConnectionState) -> String {
    match s {
        ConnectionState::Connecting => "connecting".into(),
        ConnectionState::Connected => "connected".into(),
        ConnectionState::Reconnecting { attempt, .. } => {
            format!("reconnecting (attempt {attempt})")
        }
        ConnectionState::Stopped { error: None } => "stopped".into(),
        ConnectionState::Stopped { error: Some(_) } => "stopped on an error".into(),
    }
}

/// A WebSocket source's connection counters, as the status line shows them.
fn link_words(l: &ConnectionStats) -> String {
    format!(
        "  connects {} reconnects {} resumes {} delivered {}",
        l.connects, l.reconnects, l.resumes, l.delivered
    )
}

/// Runs a `channels` subcommand.
pub async fn run(cmd: ChannelsCmd, g: &Global) -> Result<(), ErrorEnvelope> {
    let ChannelsCmd::Status = cmd;
    let config = load_config(g.config.as_deref(), true)?;
    let pairing = PairingStore::new(&config.state_dir);
    let mut out = Vec::new();
    let mut lines = Vec::new();
    for id in config.channel_ids() {
        let receives = wants_source(&config, &id);
        let status = read_status(&config.state_dir, &id);
        let cursor = CursorStore::new(&config.state_dir, &id, None)
            .load()
            .ok()
            .flatten();
        let pending = pairing.list(&id).map(|l| l.len()).unwrap_or(0);
        let running = status.as_ref().is_some_and(|s| alive(s.pid));
        let connection = match (&status, running, receives) {
            (_, _, false) => "sends only".to_string(),
            (None, _, true) => "never started".to_string(),
            (Some(s), false, true) => format!(
                "not running (last: {}, {})",
                state_word(&s.connection),
                s.updated_at
            ),
            (Some(s), true, true) => state_word(&s.connection),
        };
        let err = status.as_ref().and_then(|s| s.last_error.clone());
        let mut line = format!("{id:<9} {connection}");
        if let Some(c) = &cursor {
            let shown: String = c.chars().take(24).collect();
            line.push_str(&format!("  cursor {shown}"));
        }
        if let Some(s) = &status {
            let n = &s.counters;
            line.push_str(&format!(
                "  received {} answered {} paired {} dropped {} limited {} failed {}",
                n.received, n.answered, n.paired, n.dropped, n.limited, n.failed
            ));
        }
        if let Some(l) = status.as_ref().and_then(|s| s.link.as_ref()) {
            line.push_str(&link_words(l));
        }
        if pending > 0 {
            line.push_str(&format!("  {pending} pairing request(s) waiting"));
        }
        if let Some(e) = &err {
            line.push_str(&format!(
                "\n          last error{}: {e}",
                status
                    .as_ref()
                    .and_then(|s| s.last_error_at.as_deref())
                    .map(|t| format!(" ({t})"))
                    .unwrap_or_default()
            ));
        }
        lines.push(line);
        out.push(json!({
            "channel": id,
            "receives": receives,
            "running": running,
            "connection": status.as_ref().map(|s| json!(s.connection)),
            "cursor": cursor,
            "lastError": err,
            "lastErrorAt": status.as_ref().and_then(|s| s.last_error_at.clone()),
            "lastMessageAt": status.as_ref().and_then(|s| s.last_message_at.clone()),
            "counters": status.as_ref().map(|s| json!(s.counters)),
            "link": status.as_ref().and_then(|s| s.link.as_ref()).map(|l| json!(l)),
            "updatedAt": status.as_ref().map(|s| s.updated_at.clone()),
            "pendingPairing": pending,
        }));
    }
    emit_ok(g.json, json!({"channels": out}), &lines.join("\n"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_counters_are_shown() {
        let l = ConnectionStats {
            connects: 3,
            reconnects: 2,
            resumes: 1,
            delivered: 9,
            ..ConnectionStats::default()
        };
        assert_eq!(
            link_words(&l),
            "  connects 3 reconnects 2 resumes 1 delivered 9"
        );
    }
}
