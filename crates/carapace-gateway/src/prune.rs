//! The gateway's periodic sandbox prune: Docker containers idle past `prune.idleHours` or older
//! than `prune.maxAgeDays` are removed (OpenClaw prunes on its own timer too). bwrap sandboxes
//! live exactly as long as their command, so only Docker has anything to prune.

use std::time::Duration;

use carapace_sandbox::BackendEnv;

use crate::reload::ConfigLoader;

/// How often the gateway prunes.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Prunes now and then every `every`, with the config as it is at each run (so a hot-reloaded
/// `prune` setting applies). Never returns; abort the task to stop it.
pub async fn run(loader: ConfigLoader, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if !BackendEnv::from_process().docker_present() {
            continue;
        }
        let config = match loader() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "sandbox prune skipped: the config does not load");
                continue;
            }
        };
        let outcome = match carapace_sandbox::docker::DockerBackend::new(
            carapace_sandbox::docker::DockerOptions::new(&config.state_dir),
        ) {
            Ok(backend) => carapace_sandbox::docker::prune(&backend, &config).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(report) => {
                for (name, why) in &report.removed {
                    tracing::info!(container = %name, reason = %why, "pruned sandbox container");
                }
            }
            Err(e) => tracing::warn!(error = %e, "sandbox prune failed"),
        }
    }
}
