//! The reconnect backoff every inbound source shares: exponential with "equal jitter" (half
//! fixed, half random), reset after a success, and a sleep that ends early on shutdown.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Exponential backoff with jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Default for Backoff {
    /// 1 s doubling to 60 s.
    fn default() -> Self {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(60))
    }
}

impl Backoff {
    /// Starts at `base`, doubles per failure, never waits longer than `max`.
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max: max.max(base),
            attempt: 0,
        }
    }

    /// Failures since the last [`reset`](Self::reset).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Records a failure and returns how long to wait before the next try: between half and
    /// all of `min(max, base * 2^(failures-1))`.
    pub fn next_delay(&mut self) -> Duration {
        self.attempt = self.attempt.saturating_add(1);
        let exp = self.attempt.saturating_sub(1).min(20);
        let full = self.base.saturating_mul(1u32 << exp).min(self.max);
        let half = full / 2;
        let jitter = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(fastrand::u64(0..=jitter))
    }

    /// Records a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Sleeps `d`, or less when `shutdown` is cancelled. True when it was cancelled.
pub async fn sleep_or_cancel(d: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let mut last_cap = Duration::ZERO;
        for i in 1..=10u32 {
            let d = b.next_delay();
            let cap = Duration::from_millis(100)
                .saturating_mul(1 << (i - 1).min(20))
                .min(Duration::from_secs(2));
            assert!(d >= cap / 2 && d <= cap, "{i}: {d:?} vs {cap:?}");
            assert!(cap >= last_cap);
            last_cap = cap;
        }
        assert_eq!(b.attempt(), 10);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_cancelled_sleep_returns_at_once() {
        let t = CancellationToken::new();
        t.cancel();
        assert!(sleep_or_cancel(Duration::from_secs(3600), &t).await);
        assert!(!sleep_or_cancel(Duration::from_millis(1), &CancellationToken::new()).await);
    }
}
