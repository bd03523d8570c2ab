//! `carapace pairing list|approve|reject`: who is waiting to talk to the bot, and letting
//! them in (or not). The store is OpenClaw's layout under `<state>/credentials/` (0600); a
//! running gateway sees an approval at the sender's next message.

use carapace_channels::from_config::adapter_from_config;
use carapace_channels::{OutboundMessage, Target};
use carapace_inbound::PairingStore;
use carapace_inbound::time::parse_rfc3339;
use carapace_policy::{CarapaceError, ErrorEnvelope};
use clap::{Args, Subcommand};
use serde_json::json;

use super::Global;
use crate::context::load_config;
use crate::output::emit_ok;

/// Channels whose DMs can be paired.
const PAIRING_CHANNELS: &[&str] = &["matrix", "telegram", "discord", "slack"];

/// `carapace pairing ...`
#[derive(Debug, Subcommand)]
pub enum PairingCmd {
    /// Pending requests (of one channel, or of every channel that receives).
    List(ListArgs),
    /// Approve a code: its sender may DM the bot from now on.
    Approve(DecideArgs),
    /// Reject a code (the sender may ask again later).
    Reject(DecideArgs),
}

/// `carapace pairing list`
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Channel id (matrix, telegram, discord, slack); default: all.
    channel: Option<String>,
}

/// `carapace pairing approve|reject`
#[derive(Debug, Args)]
pub struct DecideArgs {
    /// Channel id.
    channel: String,
    /// The 8-character code the sender got.
    code: String,
    /// Tell the sender on the same channel (approve only).
    #[arg(long)]
    notify: bool,
}

fn env(e: impl CarapaceError) -> ErrorEnvelope {
    e.to_envelope()
}

/// Runs a `pairing` subcommand.
pub async fn run(cmd: PairingCmd, g: &Global) -> Result<(), ErrorEnvelope> {
    let config = load_config(g.config.as_deref(), true)?;
    let store = PairingStore::new(&config.state_dir);
    match cmd {
        PairingCmd::List(a) => {
            let channels: Vec<String> = match a.channel {
                Some(c) => vec![c],
                None => PAIRING_CHANNELS.iter().map(|c| c.to_string()).collect(),
            };
            let mut all = Vec::new();
            let mut lines = Vec::new();
            for c in channels {
                for r in store.list(&c).map_err(env)? {
                    let expires_in = parse_rfc3339(&r.created_at)
                        .map(|t| {
                            let left = (t + 3_600_000 - carapace_inbound::time::now_ms()) / 60_000;
                            format!("{}m", left.max(0))
                        })
                        .unwrap_or_else(|| "?".into());
                    let name = r.meta.get("name").cloned().unwrap_or_default();
                    lines.push(format!(
                        "{c:<9} {}  {:<40} {name:<20} expires in {expires_in}",
                        r.code, r.id
                    ));
                    all.push(json!({"channel": c, "code": r.code, "id": r.id,
                                    "createdAt": r.created_at, "lastSeenAt": r.last_seen_at,
                                    "meta": r.meta}));
                }
            }
            let human = if lines.is_empty() {
                "no pending pairing requests".to_string()
            } else {
                lines.join("\n")
            };
            emit_ok(g.json, json!({"requests": all}), &human);
        }
        PairingCmd::Approve(a) => {
            let r = store.approve(&a.channel, &a.code).map_err(env)?;
            let mut notified = false;
            if a.notify {
                let adapter = adapter_from_config(&config, &a.channel).map_err(env)?;
                let target = Target::User(r.id.clone());
                adapter
                    .send(OutboundMessage::text(
                        target,
                        "carapace: your access was approved; you can write to me now.",
                    ))
                    .await
                    .map_err(env)?;
                notified = true;
            }
            let human = format!(
                "approved {} on {} (stored in {}){}",
                r.id,
                a.channel,
                store.allow_path(&a.channel).map_err(env)?.display(),
                if notified { "; they were told" } else { "" }
            );
            emit_ok(
                g.json,
                json!({"channel": a.channel, "id": r.id, "code": r.code, "notified": notified}),
                &human,
            );
        }
        PairingCmd::Reject(a) => {
            let r = store.reject(&a.channel, &a.code).map_err(env)?;
            emit_ok(
                g.json,
                json!({"channel": a.channel, "id": r.id, "code": r.code}),
                &format!("rejected {} on {}", r.id, a.channel),
            );
        }
    }
    Ok(())
}
