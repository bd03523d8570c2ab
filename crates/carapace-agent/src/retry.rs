//! Model calls with retries and fallbacks: 429 and 5xx (and broken connections or streams)
//! are retried with exponential backoff and jitter, honouring `Retry-After`; when a model
//! keeps failing — or fails in a way a retry cannot fix — the next model of the chain
//! (`agents.defaults.model.fallbacks`) is tried. Every attempt yields a [`ModelCallRecord`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use carapace_policy::models::{ModelDefinition, ModelRef};

use crate::error::{AgentError, Attempt};
use crate::guard::TurnGuard;
use crate::observe::{LiveEvent, ModelCallRecord, Observer};
use crate::provider::{Completion, ModelRequest, Provider, ProviderError, collect};

/// Retry budget per model.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per model, the first included.
    pub max_attempts: u32,
    /// First backoff delay; doubled per attempt, with ±25 % jitter.
    pub base_delay: Duration,
    /// Cap of a backoff delay.
    pub max_delay: Duration,
    /// A `Retry-After` longer than this is not waited for: the next model is tried instead.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`, or `None` to stop retrying this model.
    pub fn delay(&self, attempt: u32, e: &ProviderError) -> Option<Duration> {
        if !e.retryable() || attempt >= self.max_attempts {
            return None;
        }
        if let Some(r) = e.retry_after() {
            return (r <= self.max_retry_after).then_some(r);
        }
        let exp = self
            .base_delay
            .saturating_mul(1u32 << (attempt - 1).min(16))
            .min(self.max_delay);
        let jitter = 0.75 + fastrand::f64() * 0.5;
        Some(exp.mul_f64(jitter))
    }
}

/// One model of the chain, ready to call.
#[derive(Clone)]
pub(crate) struct Candidate {
    pub model_ref: ModelRef,
    pub def: ModelDefinition,
    pub api: &'static str,
    /// `Err` when the provider cannot be built (unset key, bad proxy): the attempt fails
    /// without a request.
    pub provider: Result<Arc<dyn Provider>, ProviderError>,
}

/// Where the records and live events go.
pub(crate) struct CallCtx<'a> {
    pub observer: &'a dyn Observer,
    pub live: Option<&'a tokio::sync::mpsc::UnboundedSender<LiveEvent>>,
    pub session_key: &'a str,
    pub turn: u64,
    pub round: u32,
}

/// Calls the chain until one model answers. Returns the completion and the index of the
/// candidate that gave it.
pub(crate) async fn call_chain(
    chain: &[Candidate],
    mut build: impl FnMut(&Candidate) -> ModelRequest,
    policy: &RetryPolicy,
    guard: &TurnGuard,
    ctx: &CallCtx<'_>,
) -> Result<(Completion, usize), AgentError> {
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut last: Option<(ProviderError, String)> = None;
    for (ci, cand) in chain.iter().enumerate() {
        let req = build(cand);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let started = Instant::now();
            let result = match &cand.provider {
                Err(e) => Err(e.clone()),
                Ok(p) => guard.run(call_once(p.as_ref(), &req, ctx)).await?,
            };
            let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let (outcome, status, usage) = match &result {
                Ok(c) => ("ok".to_string(), None, c.usage),
                Err(e) => (
                    e.code().as_str().to_string(),
                    e.status(),
                    Default::default(),
                ),
            };
            ctx.observer.model_call(&ModelCallRecord {
                session_key: ctx.session_key.to_string(),
                turn: ctx.turn,
                round: ctx.round,
                provider: cand.model_ref.provider.clone(),
                model: cand.model_ref.model.clone(),
                api: cand.api.to_string(),
                streamed: req.stream,
                attempt,
                input_tokens: usage.input,
                output_tokens: usage.output,
                latency_ms,
                outcome,
                status,
            });
            let e = match result {
                Ok(c) => return Ok((c, ci)),
                Err(e) => e,
            };
            tracing::warn!(model = %cand.model_ref, attempt, code = %e.code(), error = %e, "model call failed");
            attempts.push(Attempt {
                model: cand.model_ref.to_string(),
                code: e.code(),
                status: e.status(),
            });
            let delay = policy.delay(attempt, &e);
            let next = match (&delay, chain.get(ci + 1)) {
                (Some(_), _) => Some(cand.model_ref.to_string()),
                (None, Some(n)) => Some(n.model_ref.to_string()),
                (None, None) => None,
            };
            if let (Some(live), Some(next)) = (ctx.live, next) {
                let _ = live.send(LiveEvent::ModelRetry {
                    next,
                    code: e.code().as_str().to_string(),
                });
            }
            last = Some((e, cand.model_ref.to_string()));
            match delay {
                Some(d) => guard.sleep(d).await?,
                None => break,
            }
        }
    }
    match last {
        Some((last, model)) => Err(AgentError::Model {
            last,
            model,
            attempts,
        }),
        None => Err(AgentError::ModelNotConfigured {
            message: "no model to call".into(),
            hint: "set agents.defaults.model".into(),
        }),
    }
}

async fn call_once(
    p: &dyn Provider,
    req: &ModelRequest,
    ctx: &CallCtx<'_>,
) -> Result<Completion, ProviderError> {
    let stream = p.send(req).await?;
    let mut on_text = |t: &str| {
        if let Some(live) = ctx.live {
            let _ = live.send(LiveEvent::TextDelta {
                text: t.to_string(),
            });
        }
    };
    collect(p.id(), stream, &mut on_text).await
}
