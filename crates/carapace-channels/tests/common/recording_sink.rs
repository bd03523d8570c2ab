//! An `InboundSink` that records what the WebSocket sources hand over, for the source tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use carapace_channels::ChannelError;
use carapace_channels::inbound::{ConnectionState, InboundMessage, InboundSink};
use tokio::sync::Notify;

/// How long a test waits for something before it fails (a hang guard, not a timing assert).
pub const PATIENCE: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct RecordingSink {
    /// Messages accepted, in order.
    pub msgs: Mutex<Vec<InboundMessage>>,
    /// Every state report.
    pub states: Mutex<Vec<(String, ConnectionState)>>,
    /// Deliveries to refuse (each refusal counts one down).
    pub refuse: AtomicUsize,
    /// Deliveries refused so far.
    pub refused: AtomicUsize,
    /// While set, `deliver` waits (the message is not accepted yet).
    pub hold: AtomicBool,
    /// Deliveries currently waiting on `hold`.
    pub waiting: AtomicUsize,
    changed: Notify,
}

impl RecordingSink {
    pub fn messages(&self) -> Vec<InboundMessage> {
        self.msgs.lock().unwrap().clone()
    }

    pub fn texts(&self) -> Vec<String> {
        self.messages().into_iter().map(|m| m.text).collect()
    }

    pub fn last_state(&self) -> Option<ConnectionState> {
        self.states.lock().unwrap().last().map(|s| s.1.clone())
    }

    pub fn release(&self) {
        self.hold.store(false, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// Waits until `cond` holds for this sink.
    pub async fn wait(&self, what: &str, cond: impl Fn(&RecordingSink) -> bool) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let n = self.changed.notified();
            tokio::pin!(n);
            n.as_mut().enable();
            if cond(self) {
                return;
            }
            tokio::select! {
                _ = &mut n => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = tokio::time::sleep_until(deadline) => panic!("timed out waiting for {what}; messages {:?}, states {:?}", self.texts(), self.states.lock().unwrap()),
            }
        }
    }

    pub async fn wait_messages(&self, n: usize) {
        self.wait(&format!("{n} message(s)"), |s| {
            s.msgs.lock().unwrap().len() >= n
        })
        .await;
    }
}

#[async_trait::async_trait]
impl InboundSink for RecordingSink {
    async fn deliver(&self, msg: InboundMessage) -> Result<(), ChannelError> {
        if self.hold.load(Ordering::SeqCst) {
            // Counts down also when the source drops this delivery (its connection ended).
            struct Waiting<'a>(&'a AtomicUsize);
            impl Drop for Waiting<'_> {
                fn drop(&mut self) {
                    self.0.fetch_sub(1, Ordering::SeqCst);
                }
            }
            self.waiting.fetch_add(1, Ordering::SeqCst);
            let _waiting = Waiting(&self.waiting);
            self.changed.notify_waiters();
            while self.hold.load(Ordering::SeqCst) {
                let n = self.changed.notified();
                tokio::pin!(n);
                n.as_mut().enable();
                if !self.hold.load(Ordering::SeqCst) {
                    break;
                }
                n.await;
            }
        }
        if self
            .refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            self.refused.fetch_add(1, Ordering::SeqCst);
            self.changed.notify_waiters();
            return Err(ChannelError::Unreachable {
                channel: msg.channel.clone(),
                attempts: 1,
                reason: "the test sink refused the message".into(),
            });
        }
        self.msgs.lock().unwrap().push(msg);
        self.changed.notify_waiters();
        Ok(())
    }

    fn state(&self, channel: &str, state: ConnectionState) {
        self.states
            .lock()
            .unwrap()
            .push((channel.to_string(), state));
        self.changed.notify_waiters();
    }
}
