//! Delivery outcomes of one HTTP attempt, and the one retry loop every adapter uses.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::{ChannelError, Delivered};

/// What one HTTP attempt yielded. Adapters classify every response into one of these; only
/// [`RetryPolicy::run`] decides what to do next.
#[derive(Debug)]
pub enum DeliveryOutcome<T = Delivered> {
    /// It worked.
    Sent(T),
    /// Nothing was delivered and trying again may help: 429, 5xx, connection refused, a
    /// timeout on a request that is safe to repeat.
    Retryable {
        /// A 429: the platform asked us to slow down.
        rate_limited: bool,
        /// How long the platform asked us to wait (`Retry-After`, Discord `retry_after`,
        /// Telegram `parameters.retry_after`).
        retry_after: Option<Duration>,
        /// What happened, for the final error if the budget runs out.
        reason: String,
    },
    /// The request went out and no answer came back: it may have been delivered. Not retried.
    Ambiguous {
        /// What happened.
        reason: String,
    },
    /// The platform said no; retrying will not change that.
    Permanent(ChannelError),
    /// The platform refused the credentials.
    Unauthorized {
        /// Upstream HTTP status.
        status: u16,
        /// The platform's error text.
        message: String,
    },
}

/// How long and how often to retry. One implementation shared by every adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total time a send may spend waiting between attempts; a `Retry-After` that would
    /// overrun it ends the send with `CHANNEL_RATE_LIMITED` at once.
    pub budget: Duration,
    /// Attempts per request, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each time, capped at `max_backoff`, with
    /// "equal jitter" (half fixed, half random).
    pub base_backoff: Duration,
    /// Ceiling of one backoff.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    /// 5 attempts, 500 ms base backoff up to 8 s, 60 s total budget.
    fn default() -> Self {
        RetryPolicy {
            budget: Duration::from_secs(60),
            max_attempts: 5,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The jittered backoff before attempt `attempt + 1` (`attempt` ≥ 1 attempts made).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let full = self
            .base_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff);
        let half = full / 2;
        let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(fastrand::u64(0..=jitter_ms))
    }

    /// Runs `attempt` until it yields something final. `attempt` gets the 1-based attempt
    /// number and must rebuild its request (and re-stream any file from offset 0) each time.
    pub async fn run<T, F, Fut>(&self, channel: &str, mut attempt: F) -> Result<T, ChannelError>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = DeliveryOutcome<T>>,
    {
        let start = Instant::now();
        let mut n = 0u32;
        loop {
            n += 1;
            let (rate_limited, retry_after, reason) = match attempt(n).await {
                DeliveryOutcome::Sent(t) => return Ok(t),
                DeliveryOutcome::Permanent(e) => return Err(e),
                DeliveryOutcome::Unauthorized { status, message } => {
                    return Err(ChannelError::Unauthorized {
                        channel: channel.to_string(),
                        status,
                        message,
                    });
                }
                DeliveryOutcome::Ambiguous { reason } => {
                    return Err(ChannelError::Ambiguous {
                        channel: channel.to_string(),
                        reason,
                    });
                }
                DeliveryOutcome::Retryable {
                    rate_limited,
                    retry_after,
                    reason,
                } => (rate_limited, retry_after, reason),
            };
            let give_up = || {
                if rate_limited {
                    ChannelError::RateLimited {
                        channel: channel.to_string(),
                        attempts: n,
                        retry_after,
                    }
                } else {
                    ChannelError::Unreachable {
                        channel: channel.to_string(),
                        attempts: n,
                        reason: reason.clone(),
                    }
                }
            };
            if n >= self.max_attempts {
                return Err(give_up());
            }
            let wait = match retry_after {
                Some(r) => r,
                None => self.backoff(n),
            };
            if start.elapsed() + wait > self.budget {
                return Err(give_up());
            }
            tracing::debug!(channel, attempt = n, wait_ms = wait.as_millis() as u64, %reason, "retrying channel send");
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use carapace_policy::{CarapaceError, ErrorCode};

    fn fast() -> RetryPolicy {
        RetryPolicy {
            budget: Duration::from_secs(2),
            max_attempts: 3,
            base_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
        }
    }

    #[test]
    fn backoff_grows_caps_and_jitters_within_bounds() {
        let p = RetryPolicy::default();
        for attempt in 1..30 {
            let b = p.backoff(attempt);
            let full = (p.base_backoff * 2u32.pow((attempt - 1).min(20))).min(p.max_backoff);
            assert!(b >= full / 2 && b <= full, "{attempt}: {b:?}");
        }
    }

    #[tokio::test]
    async fn retries_then_succeeds() {
        let r = fast()
            .run("x", |n| async move {
                if n < 3 {
                    DeliveryOutcome::Retryable {
                        rate_limited: false,
                        retry_after: None,
                        reason: "503".into(),
                    }
                } else {
                    DeliveryOutcome::Sent(n)
                }
            })
            .await;
        assert_eq!(r.unwrap(), 3);
    }

    #[tokio::test]
    async fn exhausted_rate_limit_and_unreachable() {
        let e = fast()
            .run::<(), _, _>("x", |_| async {
                DeliveryOutcome::Retryable {
                    rate_limited: true,
                    retry_after: Some(Duration::from_millis(1)),
                    reason: "429".into(),
                }
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::ChannelRateLimited);
        assert_eq!(e.details()["attempts"], 3);

        let e = fast()
            .run::<(), _, _>("x", |_| async {
                DeliveryOutcome::Retryable {
                    rate_limited: false,
                    retry_after: None,
                    reason: "connection refused".into(),
                }
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), ErrorCode::ChannelUnreachable);
        assert_eq!(e.details()["outcome"], "not_delivered");
    }

    #[tokio::test]
    async fn retry_after_past_the_budget_gives_up_at_once() {
        let start = Instant::now();
        let mut calls = 0;
        let e = fast()
            .run::<(), _, _>("x", |_| {
                calls += 1;
                async {
                    DeliveryOutcome::Retryable {
                        rate_limited: true,
                        retry_after: Some(Duration::from_secs(3600)),
                        reason: "429".into(),
                    }
                }
            })
            .await
            .unwrap_err();
        assert_eq!(calls, 1);
        assert!(start.elapsed() < Duration::from_secs(1));
        assert_eq!(e.code(), ErrorCode::ChannelRateLimited);
        assert_eq!(e.details()["retryAfterSeconds"], 3600.0);
    }

    #[tokio::test]
    async fn ambiguous_is_not_retried() {
        let mut calls = 0;
        let e = fast()
            .run::<(), _, _>("x", |_| {
                calls += 1;
                async {
                    DeliveryOutcome::Ambiguous {
                        reason: "connection closed".into(),
                    }
                }
            })
            .await
            .unwrap_err();
        assert_eq!(calls, 1);
        assert_eq!(e.details()["outcome"], "unknown");
    }
}
