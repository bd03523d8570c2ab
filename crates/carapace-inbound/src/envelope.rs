//! The text the model receives for an inbound message: one header line saying where it came
//! from and who wrote it (ids, so the model can tell people apart; names only as labels), the
//! text, and one line per attachment with the path the agent sees.

use carapace_channels::inbound::{ChatKind, InboundMessage};

use crate::media::Placed;

/// A channel's name for people.
pub fn channel_label(channel: &str) -> String {
    match channel {
        "matrix" => "Matrix".into(),
        "telegram" => "Telegram".into(),
        "discord" => "Discord".into(),
        "slack" => "Slack".into(),
        "webhook" => "Webhook".into(),
        other => other.to_string(),
    }
}

/// The turn text for `msg`.
pub fn turn_text(
    msg: &InboundMessage,
    placed: &[Result<Placed, String>],
    notes: &[String],
) -> String {
    let who = match &msg.sender.name {
        Some(n) => format!("{n} ({})", msg.sender.id),
        None => msg.sender.id.clone(),
    };
    let where_ = match msg.chat.kind {
        ChatKind::Direct => "direct message".to_string(),
        ChatKind::Group => match &msg.chat.thread {
            Some(t) => format!("group {} (thread {t})", msg.chat.id),
            None => format!("group {}", msg.chat.id),
        },
    };
    let mut out = format!("[{} {where_} from {who}]\n", channel_label(&msg.channel));
    out.push_str(&msg.text);
    for (a, p) in msg.attachments.iter().zip(placed) {
        out.push('\n');
        match p {
            Ok(p) => match &p.agent_path {
                Some(path) => out.push_str(&format!(
                    "[attached: {path} ({}, {} bytes)]",
                    p.mime, p.bytes
                )),
                None => out.push_str(&format!(
                    "[attached ({}, {} bytes), not in the workspace: {}]",
                    p.mime,
                    p.bytes,
                    p.note.as_deref().unwrap_or("unknown reason")
                )),
            },
            Err(why) => out.push_str(&format!(
                "[not attached: {} — {why}]",
                a.filename.as_deref().unwrap_or("a file")
            )),
        }
    }
    for n in notes {
        out.push('\n');
        out.push_str(n);
    }
    out
}
