//! Hot reload of the config file: the file's identity (mtime, size, inode) is polled; on a
//! change the file is loaded and validated, a new backend is built from it, and only then is
//! it swapped in; then the agent and its inbound channels are rebuilt on it. An invalid edit
//! keeps the running config and logs why.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use carapace_policy::{Config, ErrorEnvelope};

use crate::call::BackendFactory;
use crate::gateway::{Gateway, Limits};

/// Loads (and validates) the config file.
pub type ConfigLoader = Arc<dyn Fn() -> Result<Config, ErrorEnvelope> + Send + Sync>;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Option<(SystemTime, u64, u64)>);

fn stamp(path: &PathBuf) -> Stamp {
    use std::os::unix::fs::MetadataExt as _;
    Stamp(std::fs::metadata(path).ok().map(|m| {
        (
            m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            m.len(),
            m.ino(),
        )
    }))
}

/// What one reload attempt did.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// The new config is in force.
    Applied(Box<Config>),
    /// The new config was refused; the old one stays.
    Rejected(ErrorEnvelope),
}

/// Loads, validates and applies the config once.
pub fn reload_once(gw: &Gateway, loader: &ConfigLoader, factory: &BackendFactory) -> ReloadOutcome {
    let attempt = || -> Result<Config, ErrorEnvelope> {
        let config = loader()?;
        let token = crate::auth::ensure_token(&config)?;
        let backend = factory(&config)?;
        gw.apply(backend, Some(token), Limits::from_config(&config));
        Ok(config)
    };
    match attempt() {
        Ok(c) => {
            gw.metrics().reloads.with_label_values(&["applied"]).inc();
            ReloadOutcome::Applied(Box::new(c))
        }
        Err(e) => {
            gw.metrics().reloads.with_label_values(&["rejected"]).inc();
            ReloadOutcome::Rejected(e)
        }
    }
}

/// Polls `path` every `interval` and reloads on change, until the task is dropped.
/// `configured_bind` is the config's bind address at start (a change is only warned about).
pub async fn watch(
    gw: Gateway,
    path: PathBuf,
    interval: Duration,
    loader: ConfigLoader,
    factory: BackendFactory,
    configured_bind: std::net::SocketAddr,
) {
    let mut configured_bind = configured_bind;
    let mut last = stamp(&path);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = stamp(&path);
        if now == last {
            continue;
        }
        last = now;
        let (gw2, loader2, factory2) = (gw.clone(), loader.clone(), factory.clone());
        let outcome =
            match tokio::task::spawn_blocking(move || reload_once(&gw2, &loader2, &factory2)).await
            {
                Ok(o) => o,
                Err(e) => {
                    tracing::error!("config reload task failed: {e}");
                    continue;
                }
            };
        match outcome {
            ReloadOutcome::Applied(c) => {
                tracing::info!(file = %path.display(), "config reloaded");
                if let Err(e) = crate::agent::install(
                    &gw,
                    Arc::new((*c).clone()),
                    carapace_agent::RuntimeOptions::default(),
                )
                .await
                {
                    tracing::error!(code = %e.code, "the agent could not be restarted with the new config: {}", e.message);
                }
                if c.gateway_bind() != configured_bind {
                    tracing::warn!(
                        "gateway.bind changed from {configured_bind} to {}; the listening address changes only on restart",
                        c.gateway_bind()
                    );
                    configured_bind = c.gateway_bind();
                }
                for w in &c.warnings {
                    tracing::warn!("{w}");
                }
            }
            ReloadOutcome::Rejected(e) => {
                tracing::warn!(
                    file = %path.display(),
                    code = %e.code,
                    "config reload refused, keeping the running config: {}",
                    e.message
                );
            }
        }
    }
}
