//! The body deadline: a request body that has not fully arrived by a fixed instant (its head
//! plus `gateway.bodyTimeoutSeconds`) fails with [`BodyTimeout`], whoever is reading it. The
//! deadline is for the whole body, not per chunk, so a trickle of one byte a second does not
//! keep a connection alive either.
//!
//! The body also tells the connection's state to the listener's cap: reading its body, or
//! working (body complete), so that eviction prefers connections that are not doing work.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;

/// Connection state: no request in flight.
pub const STATE_IDLE: u8 = 0;
/// Connection state: a request whose body has not fully arrived.
pub const STATE_READING: u8 = 1;
/// Connection state: a request being handled (its body complete).
pub const STATE_WORKING: u8 = 2;

/// The request body did not arrive within the deadline.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive within {} s", .0.as_secs())]
pub struct BodyTimeout(pub Duration);

/// A request body with a deadline.
pub struct DeadlineBody {
    inner: Incoming,
    sleep: Pin<Box<tokio::time::Sleep>>,
    budget: Duration,
    state: Arc<AtomicU8>,
    done: bool,
}

impl DeadlineBody {
    /// Wraps `inner`; it must be complete within `budget` from now. Marks `state` reading (or
    /// working, for a body that is already complete).
    pub fn new(inner: Incoming, budget: Duration, state: Arc<AtomicU8>) -> Self {
        let done = inner.is_end_stream();
        state.store(
            if done { STATE_WORKING } else { STATE_READING },
            Ordering::Release,
        );
        DeadlineBody {
            inner,
            sleep: Box::pin(tokio::time::sleep(budget)),
            budget,
            state,
            done,
        }
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(None) => {
                self.done = true;
                self.state.store(STATE_WORKING, Ordering::Release);
                Poll::Ready(None)
            }
            Poll::Ready(Some(r)) => {
                if self.inner.is_end_stream() {
                    self.done = true;
                    self.state.store(STATE_WORKING, Ordering::Release);
                }
                Poll::Ready(Some(r.map_err(Into::into)))
            }
            Poll::Pending => {
                if self.sleep.as_mut().poll(cx).is_ready() {
                    self.done = true;
                    return Poll::Ready(Some(Err(Box::new(BodyTimeout(self.budget)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The [`BodyTimeout`] somewhere in `e`'s source chain, if any.
pub fn find_body_timeout(e: &(dyn std::error::Error + 'static)) -> Option<BodyTimeout> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<BodyTimeout>() {
            return Some(*t);
        }
        cur = err.source();
    }
    None
}
