//! Starting, watching and stopping the sources. Each source runs in its own task: transient
//! failures are the source's own business (it backs off inside `run`); when `run` ends with
//! an error (a revoked token, a refused configuration) or the task panics, the channel's
//! status says so and the source is started again after a long backoff (60 s doubling to
//! 30 min), so fixing the problem on the platform side needs no restart — and a broken
//! channel never takes the gateway, or the other channels, down.

use std::sync::Arc;
use std::time::Duration;

use carapace_channels::inbound::{Backoff, ConnectionState, InboundSource, sleep_or_cancel};
use carapace_policy::CarapaceError;

use crate::InboundError;
use crate::service::{InboundService, Inner, Sink};

/// A started service: stop it with [`InboundHandle::shutdown`].
#[derive(Debug)]
pub struct InboundHandle {
    service: InboundService,
}

impl InboundService {
    /// Starts a source for every configured channel that can receive (`enabled` and
    /// `receive` not false), and handles what the journals left pending. A channel whose
    /// source cannot be built (no token) is reported in its status; the others start.
    pub fn start(&self) -> Result<InboundHandle, InboundError> {
        let mut sources = Vec::new();
        for (channel, built) in
            carapace_channels::inbound::from_config::sources_from_config(&self.inner.config)
        {
            match built {
                Ok(s) => sources.push(s),
                Err(e) => {
                    tracing::error!(%channel, error = %e, "channel cannot receive");
                    self.inner.status.register(&channel);
                    self.inner.status.set_state(
                        &channel,
                        ConnectionState::Stopped {
                            error: Some(e.to_envelope().message),
                        },
                    );
                }
            }
        }
        self.start_with(sources)
    }

    /// Starts these sources (tests, or sources built elsewhere).
    pub fn start_with(
        &self,
        sources: Vec<Arc<dyn InboundSource>>,
    ) -> Result<InboundHandle, InboundError> {
        let inner = &self.inner;
        if let Ok(mut m) = inner.sources.write() {
            for s in &sources {
                m.insert(s.channel().to_string(), s.clone());
            }
        }
        {
            let me = inner.clone();
            inner.tasks.spawn(async move {
                loop {
                    if sleep_or_cancel(Duration::from_secs(1), &me.shutdown).await {
                        return;
                    }
                    me.refresh_links();
                    me.status.flush_dirty();
                }
            });
        }
        for s in sources {
            let channel = s.channel().to_string();
            inner.status.register(&channel);
            // Opening the journal queues what a crash left pending.
            inner.journal(&channel)?;
            let me = inner.clone();
            inner.tasks.spawn(async move { supervise(me, s).await });
        }
        Ok(InboundHandle {
            service: self.clone(),
        })
    }
}

async fn supervise(inner: Arc<Inner>, source: Arc<dyn InboundSource>) {
    let channel = source.channel().to_string();
    let mut backoff = Backoff::new(inner.opts.restart_base, Duration::from_secs(1800));
    loop {
        let sink: Arc<dyn carapace_channels::inbound::InboundSink> = Arc::new(Sink(inner.clone()));
        let task = {
            let (s, stop) = (source.clone(), inner.shutdown.clone());
            tokio::spawn(async move { s.run(sink, stop).await })
        };
        let error = match task.await {
            Ok(Ok(())) => {
                inner
                    .status
                    .set_state(&channel, ConnectionState::Stopped { error: None });
                return;
            }
            Ok(Err(e)) => e.to_envelope().message,
            Err(j) => format!("the {channel} source crashed: {j}"),
        };
        if inner.shutdown.is_cancelled() {
            return;
        }
        let wait = backoff.next_delay();
        tracing::error!(%channel, %error, retry_in_s = wait.as_secs(), "channel stopped receiving");
        inner.status.set_state(
            &channel,
            ConnectionState::Stopped {
                error: Some(format!("{error} (starting again in {} s)", wait.as_secs())),
            },
        );
        if sleep_or_cancel(wait, &inner.shutdown).await {
            return;
        }
    }
}

impl InboundHandle {
    /// The service.
    pub fn service(&self) -> &InboundService {
        &self.service
    }

    /// Stops the sources and the lanes: messages being handled stay pending in the journals
    /// and are handled at the next start. Waits at most `grace` for the tasks to end.
    pub async fn shutdown(self, grace: Duration) {
        let inner = &self.service.inner;
        inner.shutdown.cancel();
        inner.tasks.close();
        if tokio::time::timeout(grace, inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("inbound tasks did not stop within the grace period");
        }
        inner.refresh_links();
        inner.status.flush();
    }
}

impl Inner {
    /// Copies each source's connection counters into its channel's status.
    pub(crate) fn refresh_links(&self) {
        let sources: Vec<Arc<dyn InboundSource>> = match self.sources.read() {
            Ok(m) => m.values().cloned().collect(),
            Err(_) => return,
        };
        for s in sources {
            if let Some(link) = s.connection_stats() {
                self.status.set_link(s.channel(), link);
            }
        }
    }
}
