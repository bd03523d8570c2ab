//! `carapace message send|upload-file`: the `message` tool from the command line, with a
//! progress bar on a terminal for large files.
//!
//! Paths: `/workspace/…` and `/agent/…` are the session's container paths; any other path is a
//! host path (a relative one is taken from the current directory) and must lie in an allowed
//! root (the media dir, the agent workspace, `extraRoots`).

use std::io::IsTerminal;
use std::sync::Arc;

use carapace_channels::{Progress, ProgressUpdate};
use carapace_policy::ErrorEnvelope;
use carapace_tools::{ToolCall, ToolContext};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::Global;
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

/// A relative CLI path is a host path from the current directory; container paths and
/// absolute paths are passed as they are.
fn cli_path(p: &str) -> String {
    if p.starts_with('/') {
        return p.to_string();
    }
    match std::env::current_dir() {
        Ok(d) => d.join(p).to_string_lossy().into_owned(),
        Err(_) => p.to_string(),
    }
}

fn progress_bar(paths: &[String], json: bool) -> Option<Progress> {
    if json || !std::io::stderr().is_terminal() {
        return None;
    }
    let big = paths.iter().any(|p| {
        std::fs::metadata(p)
            .map(|m| m.len() >= PROGRESS_MIN_BYTES)
            .unwrap_or(false)
    });
    if !big {
        return None;
    }
    let bar = indicatif::ProgressBar::new(0);
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
        }
        bar.set_position(u.sent);
        if u.sent >= u.total && u.index + 1 == names.len() {
            bar.finish_and_clear();
        }
    }))
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
            let media: Vec<String> = a.media.iter().map(|p| cli_path(p)).collect();
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
            let p = cli_path(&a.file_path);
            let args = json!({
                "channel": a.common.channel,
                "target": a.common.target,
                "filePath": p,
                "caption": a.caption,
            });
            (a.common, "upload-file", args, vec![p])
        }
    };
    let config = load_config(g.config.as_deref(), true)?;
    let ctx = ToolContext::new(Arc::new(config));
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
    let progress = progress_bar(&paths, g.json);
    // Through the registry's dispatch, like every surface: the tool policy of the CLI applies.
    let origin = carapace_tools::Origin::new(carapace_policy::tools_policy::Surface::Cli);
    let result = carapace_tools::registry::dispatch_message(&ctx, &origin, call, progress)
        .await
        .map_err(|e| e.0)?;
    let text = human(&result);
    emit_ok(g.json, result, &text);
    Ok(())
}
