//! `carapace media save <PATH|URL> | list | prune`: the media store from the command line.

use std::path::PathBuf;
use std::time::Duration;

use carapace_media::{MediaSettings, MediaStore};
use carapace_policy::{CarapaceError, ErrorEnvelope};
use clap::{Args, Subcommand};
use serde_json::json;

use super::Global;
use crate::context::load_config;
use crate::output::emit_ok;

/// `carapace media ...`
#[derive(Debug, Subcommand)]
pub enum MediaCmd {
    /// Save a file or an http(s) URL into the media store (0644, sniffed type, unique name).
    Save(SaveArgs),
    /// List the media store.
    List,
    /// Remove files older than media.ttlHours (or --older-than-hours).
    Prune(PruneArgs),
}

/// `carapace media save`
#[derive(Debug, Args)]
pub struct SaveArgs {
    /// A host file path or an http(s) URL.
    source: String,
}

/// `carapace media prune`
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Age in hours (default: media.ttlHours, 48).
    #[arg(long)]
    older_than_hours: Option<f64>,
}

fn env(e: impl CarapaceError) -> ErrorEnvelope {
    e.to_envelope()
}

/// Runs a `media` subcommand.
pub async fn run(cmd: MediaCmd, g: &Global) -> Result<(), ErrorEnvelope> {
    let config = load_config(g.config.as_deref(), true)?;
    let store = MediaStore::open(MediaSettings::from_config(&config)).map_err(env)?;
    match cmd {
        MediaCmd::Save(a) => {
            let saved = if a.source.starts_with("http://") || a.source.starts_with("https://") {
                store.download(&a.source).await.map_err(env)?
            } else {
                let p = PathBuf::from(&a.source);
                let p = if p.is_absolute() {
                    p
                } else {
                    std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
                };
                store.import_host_path(&p).map_err(env)?
            };
            let human = format!(
                "{} ({}, {} bytes, mode {})",
                saved.path.display(),
                saved.mime,
                saved.bytes,
                saved.mode
            );
            emit_ok(g.json, json!(saved), &human);
        }
        MediaCmd::List => {
            let entries = store.list().map_err(env)?;
            let human = entries
                .iter()
                .map(|e| {
                    format!(
                        "{}  {:>10}  {}  {}s",
                        e.mode, e.bytes, e.name, e.age_seconds
                    )
                })
                .collect::<Vec<_>>()
                .join("\n");
            emit_ok(
                g.json,
                json!({"dir": store.dir(), "files": entries}),
                if human.is_empty() { "(empty)" } else { &human },
            );
        }
        MediaCmd::Prune(a) => {
            let older = a
                .older_than_hours
                .filter(|h| h.is_finite() && *h >= 0.0)
                .map(|h| Duration::from_secs_f64(h * 3600.0));
            let removed = store.prune(older).map_err(env)?;
            let human = format!("removed {} file(s)", removed.len());
            emit_ok(g.json, json!({"removed": removed}), &human);
        }
    }
    Ok(())
}
