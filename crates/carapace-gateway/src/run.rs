//! Running a whole gateway: token, audit log, backend, the agent and its inbound channels,
//! listener, `/mcp`, config hot reload, and graceful shutdown on SIGINT/SIGTERM (the inbound
//! channels stop, in-flight messages get 10 s).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use carapace_policy::{Config, ErrorCode, ErrorEnvelope};

use crate::audit::{AuditLog, DEFAULT_KEEP, DEFAULT_MAX_BYTES};
use crate::auth::Token;
use crate::call::BackendFactory;
use crate::gateway::{Gateway, Limits};
use crate::mcp::HttpMcp;
use crate::reload::ConfigLoader;

/// Everything [`run`] needs.
pub struct RunOptions {
    /// The config loaded at start.
    pub config: Config,
    /// The config file to watch (it may not exist yet: creating it is a change too).
    pub config_path: PathBuf,
    /// Reloads the config file (the CLI's loader, so reload and start read it the same way).
    pub loader: ConfigLoader,
    /// Builds the tool backend from a config.
    pub factory: BackendFactory,
    /// Listen address override (`--bind`); else `gateway.bind`, else 127.0.0.1:18789.
    pub bind: Option<SocketAddr>,
    /// How often the config file is polled (`None`: no hot reload).
    pub reload_interval: Option<Duration>,
    /// Called once the listener is bound, before serving (the CLI prints how to connect).
    pub on_ready: Box<dyn FnOnce(&Ready) + Send>,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("config_path", &self.config_path)
            .field("bind", &self.bind)
            .finish_non_exhaustive()
    }
}

/// What a started gateway tells its caller.
#[derive(Debug, Clone)]
pub struct Ready {
    /// The bound address.
    pub addr: SocketAddr,
    /// The token in force (and where it came from).
    pub token: Token,
    /// The state dir.
    pub state_dir: PathBuf,
    /// The audit log file.
    pub audit_path: PathBuf,
    /// The config file watched for changes.
    pub config_path: PathBuf,
}

/// Starts the gateway and serves until SIGINT or SIGTERM; then stops accepting, ends MCP
/// sessions, and waits for in-flight calls (at most the request budget plus 10 s).
pub async fn run(opts: RunOptions) -> Result<(), ErrorEnvelope> {
    let RunOptions {
        config,
        config_path,
        loader,
        factory,
        bind,
        reload_interval,
        on_ready,
    } = opts;
    let token = crate::auth::ensure_token(&config)?;
    let audit = AuditLog::open(&config.state_dir, DEFAULT_MAX_BYTES, DEFAULT_KEEP)?;
    let audit_path = audit.path();
    let backend = factory(&config)?;
    let limits = Limits::from_config(&config);
    let gw = Gateway::new(backend, Some(token.clone()), limits, Some(audit))?;
    crate::agent::install(
        &gw,
        Arc::new(config.clone()),
        carapace_agent::RuntimeOptions::default(),
    )
    .await?;
    let addr = bind.unwrap_or_else(|| config.gateway_bind());
    let bound = crate::server::bind(addr).await?;
    let mcp = HttpMcp::new(gw.clone(), bound.addr.ip().is_loopback());
    let end_mcp_sessions = mcp.shutdown_handle();
    let ui = crate::ui::UiOptions {
        loader: Some(loader.clone()),
        ..crate::ui::UiOptions::new(
            Arc::new(config.clone()),
            Some(Arc::new(crate::ui::GatewayChat::new(gw.clone()))),
        )
    };
    let app = crate::server::router(gw.clone(), Some(mcp)).merge(crate::ui::router(gw.clone(), ui));
    on_ready(&Ready {
        addr: bound.addr,
        token,
        state_dir: config.state_dir.clone(),
        audit_path,
        config_path: config_path.clone(),
    });
    tracing::info!(addr = %bound.addr, "gateway listening");

    let pruner = tokio::spawn(crate::prune::run(loader.clone(), crate::prune::PRUNE_EVERY));
    let watcher = reload_interval.map(|every| {
        tokio::spawn(crate::reload::watch(
            gw.clone(),
            config_path,
            every,
            loader,
            factory,
            config.gateway_bind(),
        ))
    });

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let signals = tokio::spawn(async move {
        let which = shutdown_signal().await;
        tracing::info!("{which}: shutting down; in-flight calls finish first");
        end_mcp_sessions();
        let _ = stop_tx.send(true);
    });
    let mut stop_for_serve = stop_rx.clone();
    let serve = crate::server::serve(bound, gw.clone(), app, async move {
        let _ = stop_for_serve.wait_for(|s| *s).await;
    });
    let mut stop_for_deadline = stop_rx;
    let grace = gw.limits().request_timeout + Duration::from_secs(10);
    let result = tokio::select! {
        r = serve => r,
        _ = async move {
            let _ = stop_for_deadline.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!("in-flight calls did not finish within {} s; exiting anyway", grace.as_secs());
            Ok(())
        }
    };
    signals.abort();
    pruner.abort();
    if let Some(w) = watcher {
        w.abort();
    }
    if let Some(agent) = gw.set_agent(None) {
        agent.shutdown().await;
    }
    gw.shutdown_backend().await;
    result
}

/// Resolves on SIGINT or SIGTERM, naming which.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut t), Ok(mut i)) => tokio::select! {
            _ = t.recv() => "SIGTERM",
            _ = i.recv() => "SIGINT",
        },
        _ => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// A backend factory that always fails with `msg` (used while no tool layer is linked).
pub fn unavailable_factory(msg: &'static str) -> BackendFactory {
    Arc::new(move |_c: &Config| Err(ErrorEnvelope::new(ErrorCode::Internal, msg)))
}
