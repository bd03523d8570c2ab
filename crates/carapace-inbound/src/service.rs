//! [`InboundService`]: the [`InboundSink`] every source delivers to.
//!
//! `deliver` bounds the message, drops a redelivery, records the message in the channel's
//! journal (durably — only then may the source move its cursor), and queues it on its
//! conversation's lane: one worker per session key handles its messages in arrival order
//! (access decision, media, the turn, the reply), so a slow turn in one conversation never
//! holds up another, and a conversation never races itself. `/stop` skips the queue.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use carapace_agent::AgentRuntime;
use carapace_channels::inbound::{
    ChatKind, ConnectionState, InboundMessage, InboundSink, InboundSource,
};
use carapace_channels::{ChannelAdapter, ChannelError};
use carapace_policy::Config;
use carapace_policy::access::ChannelAccess;
use carapace_policy::routing::{Peer, PeerKind, Route, RoutingSettings, route};
use carapace_tools::ToolContext;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::journal::{Journal, Pending};
use crate::limits::{
    CHANNEL_BURST, CHANNEL_RATE, MAX_QUEUED_PER_SESSION, RateLimiter, SENDER_BURST, SENDER_RATE,
    bound,
};
use crate::observer::{InboundEvent, InboundObserver, NoObserver};
use crate::pairing::PairingStore;
use crate::status::{ChannelStatus, Counter, StatusBoard};
use crate::tools::ReplyRoutes;

/// Knobs the configuration does not carry.
#[derive(Debug, Clone)]
pub struct InboundOptions {
    /// fsync journal records (default true).
    pub durable: bool,
    /// How long a reply keeps being retried while the platform is unreachable (default 10 min).
    pub reply_retry_budget: Duration,
    /// First wait between reply retries (default 2 s, doubling to 60 s).
    pub reply_retry_base: Duration,
    /// How long a source waits after failing for good before it is started again (default
    /// 60 s, doubling to 30 min).
    pub restart_base: Duration,
    /// A lane with nothing to do for this long ends its worker (default 60 s).
    pub lane_idle: Duration,
}

impl Default for InboundOptions {
    fn default() -> Self {
        InboundOptions {
            durable: true,
            reply_retry_budget: Duration::from_secs(600),
            reply_retry_base: Duration::from_secs(2),
            restart_base: Duration::from_secs(60),
            lane_idle: Duration::from_secs(60),
        }
    }
}

/// One message on its way through a lane.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    pub msg: InboundMessage,
    pub reply: Option<crate::journal::PlannedReply>,
    pub notes: Vec<String>,
}

struct Lane {
    tx: mpsc::UnboundedSender<Job>,
    depth: Arc<AtomicUsize>,
}

pub(crate) struct Inner {
    pub config: Arc<Config>,
    pub runtime: AgentRuntime,
    pub tools: ToolContext,
    pub routes: ReplyRoutes,
    pub routing: RoutingSettings,
    pub access: HashMap<String, ChannelAccess>,
    pub pairing: PairingStore,
    pub status: StatusBoard,
    pub observer: Arc<dyn InboundObserver>,
    pub opts: InboundOptions,
    pub sender_limits: RateLimiter,
    pub channel_limits: RateLimiter,
    pub limit_notices: RateLimiter,
    journals: Mutex<HashMap<String, Arc<Journal>>>,
    pub sources: RwLock<HashMap<String, Arc<dyn InboundSource>>>,
    adapters: Mutex<HashMap<String, Arc<dyn ChannelAdapter>>>,
    lanes: Mutex<HashMap<String, Lane>>,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
}

/// The conversation service. Cheap to clone (shared state).
#[derive(Clone)]
pub struct InboundService {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for InboundService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InboundService").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl InboundService {
    /// A service over the loaded config, the shared agent runtime, the tool context (session
    /// workspaces, the media store) and the routes table the runtime's tools were wrapped
    /// with ([`ReplyRoutes::wrap`]).
    pub fn new(
        config: Arc<Config>,
        runtime: AgentRuntime,
        tools: ToolContext,
        routes: ReplyRoutes,
    ) -> InboundService {
        InboundService::with_options(config, runtime, tools, routes, InboundOptions::default())
    }

    /// [`new`](Self::new) with options.
    pub fn with_options(
        config: Arc<Config>,
        runtime: AgentRuntime,
        tools: ToolContext,
        routes: ReplyRoutes,
        opts: InboundOptions,
    ) -> InboundService {
        let access = config
            .file
            .channels
            .iter()
            .map(|(k, c)| (k.clone(), ChannelAccess::from_config(k, Some(c))))
            .collect();
        InboundService {
            inner: Arc::new(Inner {
                routing: RoutingSettings::from_config(&config.file),
                pairing: PairingStore::new(&config.state_dir),
                status: StatusBoard::new(&config.state_dir),
                access,
                config,
                runtime,
                tools,
                routes,
                observer: Arc::new(NoObserver),
                opts,
                sender_limits: RateLimiter::new(SENDER_BURST, SENDER_RATE),
                channel_limits: RateLimiter::new(CHANNEL_BURST, CHANNEL_RATE),
                limit_notices: RateLimiter::new(1.0, 1.0 / 60.0),
                journals: Mutex::new(HashMap::new()),
                sources: RwLock::new(HashMap::new()),
                adapters: Mutex::new(HashMap::new()),
                lanes: Mutex::new(HashMap::new()),
                shutdown: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// Sets the observer (the gateway's audit log and metrics). Call before starting.
    pub fn observer(mut self, o: Arc<dyn InboundObserver>) -> InboundService {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.observer = o;
        }
        self
    }

    /// The sink to hand to sources.
    pub fn sink(&self) -> Arc<dyn InboundSink> {
        Arc::new(Sink(self.inner.clone()))
    }

    /// Every channel's status (with the sources' connection counters as of now).
    pub fn status(&self) -> Vec<ChannelStatus> {
        self.inner.refresh_links();
        self.inner.status.snapshot()
    }

    /// Every channel's connection figures in the Prometheus text format, for the gateway's
    /// `GET /metrics` to append (see [`crate::status::prometheus_text`]).
    pub fn metrics_text(&self) -> String {
        crate::status::prometheus_text(&self.status())
    }

    /// The pairing store.
    pub fn pairing(&self) -> &PairingStore {
        &self.inner.pairing
    }
}

impl Inner {
    pub fn event(&self, e: InboundEvent) {
        self.observer.event(&e);
    }

    /// The journal of `channel`, opened (and its pending messages queued) on first use.
    pub fn journal(self: &Arc<Self>, channel: &str) -> Result<Arc<Journal>, crate::InboundError> {
        if let Some(j) = lock(&self.journals).get(channel) {
            return Ok(j.clone());
        }
        let (j, pending) = Journal::open(&self.config.state_dir, channel, self.opts.durable)?;
        let j = Arc::new(j);
        {
            let mut m = lock(&self.journals);
            if let Some(existing) = m.get(channel) {
                return Ok(existing.clone());
            }
            m.insert(channel.to_string(), j.clone());
        }
        for Pending { msg, reply } in pending {
            tracing::info!(channel, event = %msg.event_id, "handling a message accepted before the restart");
            self.enqueue(Job {
                msg,
                reply,
                notes: Vec::new(),
            });
        }
        Ok(j)
    }

    /// The journal of `channel` if it is open.
    pub fn journal_if_open(&self, channel: &str) -> Option<Arc<Journal>> {
        lock(&self.journals).get(channel).cloned()
    }

    /// The outbound adapter of `channel` (cached).
    pub fn adapter(&self, channel: &str) -> Result<Arc<dyn ChannelAdapter>, ChannelError> {
        if let Some(a) = lock(&self.adapters).get(channel) {
            return Ok(a.clone());
        }
        let a = carapace_channels::from_config::adapter_from_config(&self.config, channel)?;
        lock(&self.adapters).insert(channel.to_string(), a.clone());
        Ok(a)
    }

    /// The access settings of `channel` (defaults when it has no section).
    pub fn access_of(&self, channel: &str) -> ChannelAccess {
        self.access
            .get(channel)
            .cloned()
            .unwrap_or_else(|| ChannelAccess::from_config(channel, None))
    }

    /// Where `msg`'s conversation goes.
    pub fn route_of(&self, msg: &InboundMessage) -> Route {
        let (kind, id) = match msg.chat.kind {
            ChatKind::Direct => (PeerKind::Direct, msg.sender.id.as_str()),
            ChatKind::Group => (PeerKind::Group, msg.chat.id.as_str()),
        };
        route(
            &self.config.file,
            &self.routing,
            &Peer {
                channel: &msg.channel,
                account: msg.account.as_deref(),
                kind,
                id,
                thread: msg.chat.thread.as_deref(),
            },
        )
    }

    /// Queues `job` on its conversation's lane; false when the lane is full.
    pub fn enqueue(self: &Arc<Self>, job: Job) -> bool {
        let key = self.route_of(&job.msg).session_key;
        let mut lanes = lock(&self.lanes);
        if let Some(l) = lanes.get(&key) {
            if l.depth.load(Ordering::SeqCst) >= MAX_QUEUED_PER_SESSION && job.reply.is_none() {
                return false;
            }
            l.depth.fetch_add(1, Ordering::SeqCst);
            match l.tx.send(job) {
                Ok(()) => return true,
                Err(mpsc::error::SendError(job)) => {
                    l.depth.fetch_sub(1, Ordering::SeqCst);
                    lanes.remove(&key);
                    drop(lanes);
                    return self.enqueue(job);
                }
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let depth = Arc::new(AtomicUsize::new(1));
        let _ = tx.send(job);
        lanes.insert(
            key.clone(),
            Lane {
                tx,
                depth: depth.clone(),
            },
        );
        drop(lanes);
        let me = self.clone();
        self.tasks
            .spawn(async move { me.lane_worker(key, rx, depth).await });
        true
    }

    async fn lane_worker(
        self: Arc<Self>,
        key: String,
        mut rx: mpsc::UnboundedReceiver<Job>,
        depth: Arc<AtomicUsize>,
    ) {
        loop {
            if self.shutdown.is_cancelled() {
                return; // what is left stays pending in the journal
            }
            let next = tokio::select! {
                j = rx.recv() => j,
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.opts.lane_idle) => {
                    let mut lanes = lock(&self.lanes);
                    if rx.is_empty() {
                        lanes.remove(&key);
                        return;
                    }
                    continue;
                }
            };
            let Some(job) = next else { return };
            self.handle(job).await;
            depth.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The sink handed to sources: the service's shared state.
pub(crate) struct Sink(pub Arc<Inner>);

#[async_trait::async_trait]
impl InboundSink for Sink {
    async fn deliver(&self, mut msg: InboundMessage) -> Result<(), ChannelError> {
        let inner = &self.0;
        let channel = msg.channel.clone();
        inner.status.count(&channel, Counter::Received);
        let journal = inner
            .journal(&channel)
            .map_err(|e| ChannelError::storage(&channel, e))?;
        if journal.seen(&msg.event_id) {
            inner.status.count(&channel, Counter::Duplicates);
            return Ok(());
        }
        let notes = bound(&mut msg);
        if !journal
            .accept(&msg)
            .map_err(|e| ChannelError::storage(&channel, e))?
        {
            inner.status.count(&channel, Counter::Duplicates);
            return Ok(());
        }
        inner.event(InboundEvent::Accepted {
            channel: channel.clone(),
            event_id: msg.event_id.clone(),
            sender: msg.sender.id.clone(),
        });
        let job = Job {
            msg,
            reply: None,
            notes,
        };
        if job.msg.text.trim() == "/stop" {
            let me = inner.clone();
            inner.tasks.spawn(async move { me.handle(job).await });
            return Ok(());
        }
        if !inner.enqueue(job.clone()) {
            // A flood into one conversation: recorded as handled, not run.
            inner.status.count(&channel, Counter::Limited);
            inner.event(InboundEvent::Dropped {
                channel: channel.clone(),
                event_id: job.msg.event_id.clone(),
                sender: job.msg.sender.id.clone(),
                reason: "queue-full".into(),
            });
            journal
                .done(&job.msg.event_id, "dropped:queue-full")
                .map_err(|e| ChannelError::storage(&channel, e))?;
        }
        Ok(())
    }

    fn state(&self, channel: &str, state: ConnectionState) {
        if let ConnectionState::Reconnecting { attempt, error } = &state
            && *attempt <= 1
        {
            tracing::warn!(channel, %error, "channel connection lost; reconnecting");
        }
        self.0.status.set_state(channel, state);
    }

    fn skipped(&self, channel: &str, what: &str) {
        self.0.status.count(channel, Counter::Skipped);
        self.0.status.error(channel, what);
    }
}
