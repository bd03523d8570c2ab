//! `idempotencyKey`: a call retried with the same key within [`WINDOW`] gets the first call's
//! outcome and does not run again — so a client that lost the answer to a `message` send can
//! retry without the message arriving twice.
//!
//! - The first call with a key runs; its outcome (success or typed error) is kept for the
//!   window. A retry while it still runs waits for that outcome instead of running in parallel.
//! - The outcome is recorded when the call *finishes*, not when its HTTP answer is sent: a call
//!   answered `TIMEOUT` keeps running (see the gateway's request budget), and a retry gets the
//!   real outcome, never a second send.
//! - The same key for a different call (another tool, other arguments, another session) is
//!   `IDEMPOTENCY_KEY_REUSED` and nothing runs.
//! - At most [`MAX_KEYS`] keys are kept; past that the oldest finished ones are forgotten
//!   first. Keys live in the gateway process (a restart forgets them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use carapace_policy::{ErrorCode, ErrorEnvelope};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::call::ToolCall;

/// How long an outcome is kept.
pub const WINDOW: Duration = Duration::from_secs(600);
/// Most keys kept at once.
pub const MAX_KEYS: usize = 10_000;

/// A call's outcome.
pub type Outcome = Result<Value, ErrorEnvelope>;

enum State {
    Running(watch::Receiver<Option<Outcome>>),
    Done(Outcome),
}

struct Entry {
    fingerprint: [u8; 32],
    at: Instant,
    state: State,
}

/// The keys seen in the last [`WINDOW`].
#[derive(Default, Clone)]
pub struct IdempotencyCache {
    inner: Arc<Mutex<HashMap<String, Entry>>>,
}

impl std::fmt::Debug for IdempotencyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdempotencyCache")
    }
}

/// What [`IdempotencyCache::begin`] decided.
pub enum Begin {
    /// First time: run the call, then [`Pending::finish`] with its outcome.
    Run(Pending),
    /// Seen and finished: this is the outcome.
    Replay(Outcome),
    /// Seen and still running: wait for this.
    Wait(watch::Receiver<Option<Outcome>>),
}

/// A running first call. Dropping it unfinished (the call panicked) forgets the key, so a
/// retry runs again and waiters are told the first attempt failed.
pub struct Pending {
    cache: IdempotencyCache,
    key: String,
    tx: Option<watch::Sender<Option<Outcome>>>,
}

impl Pending {
    /// Records the outcome for the window and hands it to everyone waiting.
    pub fn finish(mut self, outcome: &Outcome) {
        if let Some(tx) = self.tx.take() {
            let mut map = self.cache.lock();
            if let Some(e) = map.get_mut(&self.key) {
                e.state = State::Done(outcome.clone());
                e.at = Instant::now();
            }
            drop(map);
            let _ = tx.send(Some(outcome.clone()));
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.tx.is_some() {
            self.cache.lock().remove(&self.key);
        }
    }
}

/// What identifies "the same call".
pub fn fingerprint(call: &ToolCall) -> [u8; 32] {
    let canonical = serde_json::json!([
        call.tool,
        call.action,
        canonical_value(&call.args),
        call.session_key,
        call.agent_id,
        call.channel,
    ]);
    Sha256::digest(canonical.to_string().as_bytes()).into()
}

/// Objects with their keys sorted, so `{"a":1,"b":2}` and `{"b":2,"a":1}` are the same call.
fn canonical_value(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), canonical_value(&m[k]));
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(canonical_value).collect()),
        other => other.clone(),
    }
}

impl IdempotencyCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Looks `key` up for `call`.
    pub fn begin(&self, key: &str, call: &ToolCall) -> Result<Begin, ErrorEnvelope> {
        let fp = fingerprint(call);
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, e| {
            matches!(e.state, State::Running(_)) || now.duration_since(e.at) < WINDOW
        });
        if let Some(e) = map.get(key) {
            if e.fingerprint != fp {
                return Err(ErrorEnvelope::new(
                    ErrorCode::IdempotencyKeyReused,
                    format!(
                        "the idempotencyKey {key:?} was used in the last {} minutes for a different call",
                        WINDOW.as_secs() / 60
                    ),
                )
                .with_hint("use a new key for a new call; retry a call with exactly the same tool, arguments and session")
                .with_detail("idempotencyKey", key));
            }
            return Ok(match &e.state {
                State::Done(o) => Begin::Replay(o.clone()),
                State::Running(rx) => Begin::Wait(rx.clone()),
            });
        }
        if map.len() >= MAX_KEYS {
            let mut done: Vec<(String, Instant)> = map
                .iter()
                .filter(|(_, e)| matches!(e.state, State::Done(_)))
                .map(|(k, e)| (k.clone(), e.at))
                .collect();
            done.sort_by_key(|(_, at)| *at);
            for (k, _) in done.into_iter().take(map.len() + 1 - MAX_KEYS) {
                map.remove(&k);
            }
        }
        let (tx, rx) = watch::channel(None);
        map.insert(
            key.to_string(),
            Entry {
                fingerprint: fp,
                at: now,
                state: State::Running(rx),
            },
        );
        Ok(Begin::Run(Pending {
            cache: self.clone(),
            key: key.to_string(),
            tx: Some(tx),
        }))
    }
}

/// Waits for a running first call's outcome (or learns it failed unexpectedly).
pub async fn wait(mut rx: watch::Receiver<Option<Outcome>>) -> Outcome {
    loop {
        if let Some(o) = rx.borrow().clone() {
            return o;
        }
        if rx.changed().await.is_err() {
            return Err(ErrorEnvelope::new(
                ErrorCode::Internal,
                "the first call with this idempotencyKey failed unexpectedly (a bug); retry it",
            ));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(args: Value) -> ToolCall {
        ToolCall::new("message", args)
    }

    #[tokio::test]
    async fn first_runs_retry_replays_mismatch_is_refused() {
        let c = IdempotencyCache::default();
        let a = call(json!({"target": "user:me", "message": "hi"}));
        let Begin::Run(p) = c.begin("k", &a).unwrap() else {
            panic!()
        };
        // While running, a retry waits.
        let Begin::Wait(rx) = c.begin("k", &a).unwrap() else {
            panic!()
        };
        p.finish(&Ok(json!({"sent": 1})));
        assert_eq!(wait(rx).await.unwrap(), json!({"sent": 1}));
        // Key order does not matter.
        let same = call(json!({"message": "hi", "target": "user:me"}));
        let Begin::Replay(o) = c.begin("k", &same).unwrap() else {
            panic!()
        };
        assert_eq!(o.unwrap(), json!({"sent": 1}));
        let other = call(json!({"target": "user:me", "message": "bye"}));
        let e = c.begin("k", &other).err().unwrap();
        assert_eq!(e.code, ErrorCode::IdempotencyKeyReused);
    }

    #[tokio::test]
    async fn an_abandoned_first_call_forgets_the_key() {
        let c = IdempotencyCache::default();
        let a = call(json!({}));
        let Begin::Run(p) = c.begin("k", &a).unwrap() else {
            panic!()
        };
        let Begin::Wait(rx) = c.begin("k", &a).unwrap() else {
            panic!()
        };
        drop(p);
        assert_eq!(wait(rx).await.unwrap_err().code, ErrorCode::Internal);
        assert!(matches!(c.begin("k", &a).unwrap(), Begin::Run(_)));
    }
}
