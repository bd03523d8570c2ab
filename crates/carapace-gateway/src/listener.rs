//! The accept loop: HTTP/1.1 connections under deadlines and a connection cap, so that clients
//! which open sockets and then say nothing (or send headers and then no body) cannot exhaust
//! the gateway's file descriptors or starve `/healthz`.
//!
//! - **Header deadline** (`gateway.headerTimeoutSeconds`): hyper's header read timer runs from
//!   the moment a connection is ready for a request head — accepted, or done with the previous
//!   response — so it closes both half-open connections and idle keep-alive ones.
//! - **Body deadline** (`gateway.bodyTimeoutSeconds`, at most the request budget): see
//!   [`crate::deadline_body`].
//! - **Connection cap** (`gateway.maxConnections`, clamped below the fd limit by
//!   [`effective_cap`]): when a new connection would exceed it, the oldest connection that is
//!   not working on a request (idle, or still waiting for its body) is closed to make room; if
//!   every connection is working, the new one is closed at once. Either way the listener never
//!   holds more sockets than the cap, so `accept` keeps working and a fresh `/healthz` gets in.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{Notify, watch};
use tower::ServiceExt as _;

use crate::deadline_body::{DeadlineBody, STATE_IDLE, STATE_READING};
use crate::gateway::Gateway;

/// File descriptors kept free for everything else the gateway opens (audit log, config,
/// workspace files, sandboxes, upstream connections).
pub const FD_RESERVE_MIN: u64 = 64;

/// The connection cap in force: the configured one, but never more than the soft
/// `RLIMIT_NOFILE` minus a reserve (a quarter of the limit, at least [`FD_RESERVE_MIN`]), and
/// at least 1.
pub fn effective_cap(configured: usize) -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    cap_for_fd_limit(configured, soft)
}

/// [`effective_cap`] for a given soft fd limit.
pub fn cap_for_fd_limit(configured: usize, soft: u64) -> usize {
    let reserve = (soft / 4).max(FD_RESERVE_MIN);
    let room = if soft > reserve.saturating_mul(2) {
        soft - reserve
    } else {
        soft / 2
    };
    configured
        .min(usize::try_from(room).unwrap_or(usize::MAX))
        .max(1)
}

struct Conn {
    state: Arc<AtomicU8>,
    kill: Arc<Notify>,
}

/// The open connections, in accept order.
#[derive(Default)]
struct Registry {
    next_id: u64,
    conns: BTreeMap<u64, Conn>,
}

impl Registry {
    /// Closes the oldest idle connection, else the oldest one waiting for its body.
    fn evict_one(&mut self) -> bool {
        let pick = [STATE_IDLE, STATE_READING].into_iter().find_map(|want| {
            self.conns
                .iter()
                .find(|(_, c)| c.state.load(Ordering::Acquire) == want)
                .map(|(id, _)| *id)
        });
        match pick.and_then(|id| self.conns.remove(&id)) {
            Some(c) => {
                c.kill.notify_one();
                true
            }
            None => false,
        }
    }
}

/// Rate-limits one kind of warning to one line per interval.
struct Throttle(Mutex<Option<Instant>>);

impl Throttle {
    fn ready(&self) -> bool {
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(5)) {
            return false;
        }
        *last = Some(now);
        true
    }
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting, asks every
/// connection to finish its request and close, and returns when all have.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gw: Gateway,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let registry = Arc::new(Mutex::new(Registry::default()));
    let all_closed = Arc::new(Notify::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let shed_log = Arc::new(Throttle(Mutex::new(None)));
    let accept_log = Throttle(Mutex::new(None));
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // EMFILE/ENFILE and friends: the socket stays in the backlog; back off
                    // instead of spinning, and keep serving the connections we have.
                    if accept_log.ready() {
                        tracing::warn!("accept failed: {e}; retrying");
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let limits = gw.limits();
        let cap = effective_cap(limits.max_connections);
        let (id, state, kill) = {
            let mut reg = registry.lock().unwrap_or_else(|p| p.into_inner());
            let mut shed = None;
            while reg.conns.len() >= cap {
                if reg.evict_one() {
                    shed = Some("evicted");
                } else {
                    shed = Some("refused");
                    break;
                }
            }
            if let Some(how) = shed {
                gw.metrics()
                    .connections_shed
                    .with_label_values(&[how])
                    .inc();
                if shed_log.ready() {
                    tracing::warn!(
                        cap,
                        "connection cap reached: {how} a connection (gateway.maxConnections, clamped below the fd limit)"
                    );
                }
            }
            if reg.conns.len() >= cap {
                drop(stream);
                continue;
            }
            let id = reg.next_id;
            reg.next_id += 1;
            let state = Arc::new(AtomicU8::new(STATE_IDLE));
            let kill = Arc::new(Notify::new());
            reg.conns.insert(
                id,
                Conn {
                    state: state.clone(),
                    kill: kill.clone(),
                },
            );
            gw.metrics().connections_open.set(len_i64(reg.conns.len()));
            (id, state, kill)
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let registry = registry.clone();
        let all_closed = all_closed.clone();
        let mut stop = stop_rx.clone();
        let gw2 = gw.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let app = app.clone();
                let state = state.clone();
                let budget = limits.body_timeout;
                async move {
                    let req = req.map(|b| Body::new(DeadlineBody::new(b, budget, state.clone())));
                    let resp = match app.oneshot(req).await {
                        Ok(r) => r,
                        Err(never) => match never {},
                    };
                    // The request counts as working until its response body is dropped
                    // (sent, or the connection went away).
                    let guard = IdleOnDrop(state);
                    Ok::<_, Infallible>(resp.map(move |b| {
                        Body::new(b.map_frame(move |f| {
                            let _ = &guard;
                            f
                        }))
                    }))
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let mut draining = false;
            loop {
                tokio::select! {
                    _ = conn.as_mut() => break,
                    () = kill.notified() => break,
                    r = stop.wait_for(|s| *s), if !draining => {
                        let _ = r;
                        draining = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
            let mut reg = registry.lock().unwrap_or_else(|p| p.into_inner());
            reg.conns.remove(&id);
            gw2.metrics().connections_open.set(len_i64(reg.conns.len()));
            if reg.conns.is_empty() {
                all_closed.notify_waiters();
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    loop {
        let wait = all_closed.notified();
        tokio::pin!(wait);
        wait.as_mut().enable();
        if registry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .conns
            .is_empty()
        {
            return;
        }
        wait.await;
    }
}

fn len_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Marks the connection idle when the response body is dropped.
struct IdleOnDrop(Arc<AtomicU8>);

impl Drop for IdleOnDrop {
    fn drop(&mut self) {
        self.0.store(STATE_IDLE, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_stays_below_the_fd_limit() {
        assert_eq!(cap_for_fd_limit(512, 256), 192);
        assert_eq!(cap_for_fd_limit(512, 1024), 512);
        assert_eq!(cap_for_fd_limit(100, 1024), 100);
        assert_eq!(cap_for_fd_limit(512, 100), 50);
        assert_eq!(cap_for_fd_limit(512, 1), 1);
        assert_eq!(cap_for_fd_limit(512, u64::MAX), 512);
    }
}
