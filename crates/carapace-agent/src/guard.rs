//! [`TurnGuard`]: the cancellation token and deadline every await of a turn runs under.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::error::AgentError;

/// Why a turn was cancelled; set by whoever cancels it.
#[derive(Debug, Clone, Default)]
pub struct CancelReason(Arc<Mutex<Option<&'static str>>>);

impl CancelReason {
    /// Records the reason (`stop`, `new`, `shutdown`); the first one wins.
    pub fn set(&self, r: &'static str) {
        let mut g = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if g.is_none() {
            *g = Some(r);
        }
    }
    fn get(&self) -> &'static str {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .unwrap_or("stop")
    }
}

/// Cancellation and wall-time limit of one turn.
#[derive(Debug, Clone)]
pub(crate) struct TurnGuard {
    pub cancel: CancellationToken,
    pub reason: CancelReason,
    pub deadline: Instant,
    pub timeout_secs: u64,
}

impl TurnGuard {
    /// Runs `f` unless the turn is cancelled or out of time first.
    pub async fn run<F: Future>(&self, f: F) -> Result<F::Output, AgentError> {
        self.check()?;
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(self.cancelled()),
            _ = tokio::time::sleep_until(self.deadline) => Err(self.timed_out()),
            out = f => Ok(out),
        }
    }

    /// Sleeps `d`, unless cancelled or out of time first.
    pub async fn sleep(&self, d: std::time::Duration) -> Result<(), AgentError> {
        self.run(tokio::time::sleep(d)).await
    }

    /// Err when cancelled or past the deadline.
    pub fn check(&self) -> Result<(), AgentError> {
        if self.cancel.is_cancelled() {
            return Err(self.cancelled());
        }
        if Instant::now() >= self.deadline {
            return Err(self.timed_out());
        }
        Ok(())
    }

    fn cancelled(&self) -> AgentError {
        AgentError::Cancelled {
            reason: self.reason.get(),
        }
    }

    fn timed_out(&self) -> AgentError {
        AgentError::LimitReached {
            limit: "time",
            value: format!("{}s", self.timeout_secs),
        }
    }
}
