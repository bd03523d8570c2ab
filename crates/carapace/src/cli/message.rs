//! `carapace message send|upload-file`: the `message` tool from the command line, with a
//! progress bar on a terminal for large files.
//!
//! Paths: `/workspace/…` and `/agent/…` are the session's container paths; an `http(s)://` URL
//! is downloaded by the tool; any other path is a host path (a relative one is taken from the
//! current directory) and must lie in an allowed root (the media dir, the agent workspace,
//! `extraRoots`). See [`super::paths`].

use std::io::IsTerminal;
use std::sync::Arc;

use carapace_channels::{Progress, ProgressUpdate};
use carapace_policy::ErrorEnvelope;
use carapace_tools::{ToolCall, ToolContext};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::Global;
use super::paths::{cli_media_ref, where_it_looked};
use crate::context::load_config;
use crate::output::emit_ok;

/// Files at least this large get a progress bar (on a terminal, without `--json`).
const PROGRESS_MIN_BYTES: u64 = 8 * 1024 * 1024;

/// `carapace message ...`
#[derive(Debug, Subcommand)]
pub enum MessageCmd {
    /// Send text and/or files.
    Send(SendArgs),
    /// Upload one file (with an optional caption).
    #[command(name = "upload-file")]
    UploadFile(UploadArgs),
}

/// Where a message goes and as which session.
#[derive(Debug, Args)]
pub struct Common {
    /// Channel id (inbox, matrix, discord, telegram, slack, webhook).
    #[arg(long, default_value = "inbox")]
    channel: String,
    /// Target: user:<id>, channel:<id> or room:<id>.
    #[arg(long)]
    target: String,
    /// Session key whose mounts map /workspace paths (default: the agent's main session).
    #[arg(long)]
    session: Option<String>,
    /// Agent id.
    #[arg(long)]
    agent: Option<String>,
    /// Send through the gateway at this URL (token: $CARAPACE_TOKEN, else the state dir's).
    #[arg(long, value_name = "URL")]
    gateway: Option<String>,
}

/// `carapace message send`
#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    common: Common,
    /// Message text (`MEDIA:<path>` lines attach files).
    #[arg(long, short)]
    message: Option<String>,
    /// A file to attach (repeatable).
    #[arg(long)]
    media: Vec<String>,
    /// Caption for the files.
    #[arg(long)]
    caption: Option<String>,
}

/// `carapace message upload-file`
#[derive(Debug, Args)]
pub struct UploadArgs {
    #[command(flatten)]
    common: Common,
    /// The file.
    #[arg(long = "file-path", alias = "filePath")]
    file_path: String,
    /// Caption.
    #[arg(long)]
    caption: Option<String>,
}

/// A progress bar for the files of one send, when `enabled` (a terminal, no `--json`). Whether
/// a file is large enough for a bar is decided by the size the channel reports from the
/// verified fd it streams — never by looking the path up on the host, which would miss
/// container paths (`/workspace/…`) and could name a different file than the one sent.
fn progress_bar(paths: &[String], enabled: bool) -> Option<Progress> {
    if !enabled {
        return None;
    }
    let bar = indicatif::ProgressBar::hidden();
    let style = indicatif::ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    )
    .map(|s| s.progress_chars("=> "));
    if let Ok(s) = style {
        bar.set_style(s);
    }
    let names: Vec<String> = paths
        .iter()
        .map(|p| p.rsplit('/').next().unwrap_or(p).to_string())
        .collect();
    Some(Progress::new(move |u: ProgressUpdate| {
        if bar.length() != Some(u.total) {
            bar.set_length(u.total);
            bar.set_message(names.get(u.index).cloned().unwrap_or_default());
            if bar.is_hidden() && shows_bar(u.total) {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
        }
        bar.set_position(u.sent);
        if u.sent >= u.total && u.index + 1 == names.len() {
            bar.finish_and_clear();
        }
    }))
}

/// A file of `total` bytes (its verified fd's size) gets a bar.
fn shows_bar(total: u64) -> bool {
    total >= PROGRESS_MIN_BYTES
}

fn human(r: &Value) -> String {
    let mut s = format!(
        "sent to {} on {} (message {})",
        r["target"].as_str().unwrap_or(""),
        r["channel"].as_str().unwrap_or(""),
        r["messageId"].as_str().unwrap_or("")
    );
    for a in r["attachments"].as_array().into_iter().flatten() {
        s.push_str(&format!(
            "\n  {} ({} bytes, {}) → {}",
            a["path"].as_str().unwrap_or(""),
            a["bytes"],
            a["mime"].as_str().unwrap_or(""),
            a["remoteId"].as_str().unwrap_or("")
        ));
    }
    s
}

/// Runs a `message` subcommand.
pub async fn run(cmd: MessageCmd, g: &Global) -> Result<(), ErrorEnvelope> {
    let (common, action, args, paths) = match cmd {
        MessageCmd::Send(a) => {
            let media: Vec<String> = a.media.iter().map(|p| cli_media_ref(p)).collect();
            let args = json!({
                "channel": a.common.channel,
                "target": a.common.target,
                "message": a.message,
                "caption": a.caption,
                "media": media,
            });
            (a.common, "send", args, media)
        }
        MessageCmd::UploadFile(a) => {
            let p = cli_media_ref(&a.file_path);
            let args = json!({
                "channel": a.common.channel,
                "target": a.common.target,
                "filePath": p,
                "caption": a.caption,
            });
            (a.common, "upload-file", args, vec![p])
        }
    };
    let config = Arc::new(load_config(g.config.as_deref(), true)?);
    let ctx = ToolContext::new(config.clone());
    let (session, agent) = (common.session.clone(), common.agent.clone());
    let call = ToolCall {
        tool: "message".into(),
        action: Some(action.into()),
        args,
        session_key: common.session,
        agent_id: common.agent,
        channel: None,
    };
    if let Some(url) = &common.gateway {
        let result = super::gateway::remote_invoke(url, call).await?;
        emit_ok(g.json, result.clone(), &human(&result));
        return Ok(());
    }
    let progress = progress_bar(&paths, !g.json && std::io::stderr().is_terminal());
    // Through the registry's dispatch, like every surface: the tool policy of the CLI applies.
    let origin = carapace_tools::Origin::new(carapace_policy::tools_policy::Surface::Cli);
    let result = carapace_tools::registry::dispatch_message(&ctx, &origin, call, progress)
        .await
        .map_err(|e| where_it_looked(e.0, &config, session.as_deref(), agent.as_deref()))?;
    let text = human(&result);
    emit_ok(g.json, result, &text);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// `--file-path /workspace/big.bin` exists on no host path of that name: the bar still
    /// comes, sized by what the channel reports from the fd.
    #[test]
    fn a_container_path_gets_a_bar_sized_by_the_fd() {
        let p = progress_bar(&["/workspace/big.bin".to_string()], true);
        assert!(p.is_some(), "a bar for a container path");
        assert!(shows_bar(PROGRESS_MIN_BYTES));
        assert!(!shows_bar(PROGRESS_MIN_BYTES - 1));
        assert!(progress_bar(&["/workspace/big.bin".to_string()], false).is_none());
    }
}
