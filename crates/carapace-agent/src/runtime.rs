//! [`AgentRuntime`]: sessions, lanes and the public API the CLI and the gateway wrap.
//!
//! - **One lane per session key**: one turn at a time; later messages wait in arrival order
//!   (a fair mutex) behind the running turn, up to [`RuntimeOptions::max_queue`] waiting
//!   (then `SESSION_BUSY`).
//! - **A global cap** (`agents.defaults.maxConcurrent`) on turns running at once across lanes.
//! - **`/stop`** cancels the running turn and every message queued behind it; **`/new`** (or
//!   `/reset`) does that and points the session key at a fresh transcript.
//! - Sessions are loaded from their transcript on first use — after a restart too — and kept
//!   in memory between turns; a transcript a crash left torn or mid-turn is repaired by
//!   appending what is missing (interrupted tool results, the turn's end) and a `resumed` event.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use carapace_policy::models::{ModelRef, ModelsSettings};
use carapace_policy::{Config, ResolveInput};
use tokio::sync::{Semaphore, mpsc::UnboundedSender};
use tokio_util::sync::CancellationToken;

use crate::error::AgentError;
use crate::guard::{CancelReason, TurnGuard};
use crate::message::{ContentPart, ImageData, Message, ToolChoice, ToolDef};
use crate::observe::{LiveEvent, NoObserver, Observer};
use crate::prompt::{PromptInput, system_prompt};
use crate::provider::{HttpSettings, ProviderError, provider_for};
use crate::retry::{Candidate, RetryPolicy};
use crate::time::now_rfc3339;
use crate::tools::{SessionInfo, ToolExecutor};
use crate::transcript::{Event, SessionStore, TurnStatus, history};
use crate::turn::{LoadedSession, ProviderCache, TurnEnv, TurnOutcome, api_name};

/// Knobs of the runtime that the configuration does not carry.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Ask providers for streamed answers (default true).
    pub stream: bool,
    /// Model calls per turn (default 24).
    pub max_rounds: u32,
    /// Characters of one tool result the model reads; `None` (default) follows OpenClaw's
    /// automatic cap: 16,000 below a 100K-token window, 32,000 from 100K, 64,000 from 200K.
    pub max_tool_result_chars: Option<usize>,
    /// Messages that may wait behind a running turn, per session (default 8).
    pub max_queue: usize,
    /// Retries per model.
    pub retry: RetryPolicy,
    /// HTTP client settings (the proxy comes from `models.proxy`).
    pub http: HttpSettings,
    /// Extra instructions added to every system prompt.
    pub system_prompt: Option<String>,
    /// fsync every transcript event (default true).
    pub durable: bool,
    /// Sessions kept in memory between turns (default 2,000); beyond it idle ones are
    /// forgotten and reloaded from their transcript on their next message.
    pub max_loaded_sessions: usize,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            stream: true,
            max_rounds: 24,
            max_tool_result_chars: None,
            max_queue: 8,
            retry: RetryPolicy::default(),
            http: HttpSettings::default(),
            system_prompt: None,
            durable: true,
            max_loaded_sessions: 2_000,
        }
    }
}

/// One message for a session.
#[derive(Debug, Clone, Default)]
pub struct TurnRequest {
    /// Session key (`agent:main:telegram:direct:42`).
    pub session_key: String,
    /// Agent id; default: the session key's, else `main`.
    pub agent_id: Option<String>,
    /// The channel the message came from.
    pub channel: Option<String>,
    /// The message text.
    pub text: String,
    /// Images sent with it (given to models whose config accepts images).
    pub images: Vec<ImageData>,
    /// A model override (`provider/model` or an alias), checked against `modelPolicy.allow`.
    pub model: Option<String>,
    /// Streamed or not, instead of [`RuntimeOptions::stream`].
    pub stream: Option<bool>,
    /// Tool choice per round (round 1 takes the first; the last one repeats); empty: auto.
    pub tool_choice: Vec<ToolChoice>,
    /// Live events of this turn (text deltas, tool calls).
    pub events: Option<UnboundedSender<LiveEvent>>,
}

impl TurnRequest {
    /// A text message for a session.
    pub fn new(session_key: &str, text: &str) -> TurnRequest {
        TurnRequest {
            session_key: session_key.to_string(),
            text: text.to_string(),
            ..TurnRequest::default()
        }
    }
}

/// What [`AgentRuntime::send`] did with a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// It ran a turn.
    Turn(TurnOutcome),
    /// `/stop`: whether a turn was running or queued.
    Stopped {
        /// True when something was cancelled.
        cancelled: bool,
    },
    /// `/new` or `/reset`: the session key now names a fresh session.
    Reset {
        /// The new session id.
        session_id: String,
    },
}

struct Lane {
    state: tokio::sync::Mutex<Option<LoadedSession>>,
    waiting: AtomicUsize,
    /// Bumped by `stop`: turns queued before it give up.
    epoch: AtomicU64,
    running: Mutex<Option<(CancellationToken, CancelReason)>>,
}

impl Lane {
    fn new() -> Lane {
        Lane {
            state: tokio::sync::Mutex::new(None),
            waiting: AtomicUsize::new(0),
            epoch: AtomicU64::new(0),
            running: Mutex::new(None),
        }
    }
}

struct Inner {
    config: Arc<Config>,
    models: Arc<ModelsSettings>,
    tools: Arc<dyn ToolExecutor>,
    observer: Arc<dyn Observer>,
    opts: RuntimeOptions,
    store: SessionStore,
    lanes: Mutex<HashMap<String, Arc<Lane>>>,
    global: Semaphore,
    providers: ProviderCache,
    shutdown: CancellationToken,
}

/// The agent runtime. Cheap to clone (shared state).
#[derive(Clone)]
pub struct AgentRuntime {
    inner: Arc<Inner>,
}

/// Builds an [`AgentRuntime`].
pub struct AgentRuntimeBuilder {
    config: Arc<Config>,
    models: Arc<ModelsSettings>,
    tools: Arc<dyn ToolExecutor>,
    observer: Arc<dyn Observer>,
    opts: RuntimeOptions,
}

impl AgentRuntimeBuilder {
    /// Options.
    pub fn options(mut self, opts: RuntimeOptions) -> Self {
        self.opts = opts;
        self
    }
    /// Where model-call records go.
    pub fn observer(mut self, o: Arc<dyn Observer>) -> Self {
        self.observer = o;
        self
    }
    /// The runtime. Sessions live under the config's state directory.
    pub fn build(self) -> AgentRuntime {
        let mut opts = self.opts;
        if opts.http.proxy.is_none() {
            opts.http.proxy = self.models.proxy.clone();
        }
        let store = SessionStore::new(&self.config.state_dir).with_durable(opts.durable);
        let cap = self.models.max_concurrent.max(1) as usize;
        AgentRuntime {
            inner: Arc::new(Inner {
                config: self.config,
                models: self.models,
                tools: self.tools,
                observer: self.observer,
                opts,
                store,
                lanes: Mutex::new(HashMap::new()),
                global: Semaphore::new(cap),
                providers: Mutex::new(HashMap::new()),
                shutdown: CancellationToken::new(),
            }),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl AgentRuntime {
    /// A builder over the loaded config, its model settings and the tool executor.
    pub fn builder(
        config: Arc<Config>,
        models: Arc<ModelsSettings>,
        tools: Arc<dyn ToolExecutor>,
    ) -> AgentRuntimeBuilder {
        AgentRuntimeBuilder {
            config,
            models,
            tools,
            observer: Arc::new(NoObserver),
            opts: RuntimeOptions::default(),
        }
    }

    /// The session store (list, show, reset without running turns).
    pub fn sessions(&self) -> &SessionStore {
        &self.inner.store
    }

    /// Handles a message the way a chat channel should: `/stop` stops the session's running and
    /// queued turns at once (it does not wait in the queue), `/new` and `/reset` start a fresh
    /// session, anything else runs a turn.
    pub async fn send(&self, req: TurnRequest) -> Result<Reply, AgentError> {
        match req.text.trim() {
            "/stop" => Ok(Reply::Stopped {
                cancelled: self.stop(&req.session_key),
            }),
            "/new" | "/reset" => Ok(Reply::Reset {
                session_id: self
                    .reset(&req.session_key, req.agent_id.as_deref())
                    .await?,
            }),
            _ => self.run_turn(req).await.map(Reply::Turn),
        }
    }

    fn lane(&self, key: &str) -> Arc<Lane> {
        let mut lanes = lock(&self.inner.lanes);
        Arc::clone(
            lanes
                .entry(key.to_string())
                .or_insert_with(|| Arc::new(Lane::new())),
        )
    }

    /// Cancels the session's running turn and every turn queued behind it. True when there was
    /// one.
    pub fn stop(&self, session_key: &str) -> bool {
        let Some(lane) = lock(&self.inner.lanes).get(session_key).cloned() else {
            return false;
        };
        lane.epoch.fetch_add(1, Ordering::SeqCst);
        let queued = lane.waiting.load(Ordering::SeqCst) > 0;
        let running = match lock(&lane.running).as_ref() {
            Some((tok, reason)) => {
                reason.set("stop");
                tok.cancel();
                true
            }
            None => false,
        };
        running || queued
    }

    /// `/new`: stops the session's turns, then points the key at a fresh session. Returns the
    /// new session id.
    pub async fn reset(
        &self,
        session_key: &str,
        agent_id: Option<&str>,
    ) -> Result<String, AgentError> {
        let lane = self.lane(session_key);
        lane.epoch.fetch_add(1, Ordering::SeqCst);
        if let Some((tok, reason)) = lock(&lane.running).as_ref() {
            reason.set("new");
            tok.cancel();
        }
        let mut state = lane.state.lock().await;
        let agent = SessionStore::agent_of(session_key, agent_id);
        *state = None;
        let id = match self.inner.store.reset(session_key, Some(&agent))? {
            Some(id) => id,
            None => {
                // No session yet: create one now so the id is real.
                let open = self.inner.store.open(session_key, &agent)?;
                open.id
            }
        };
        Ok(id)
    }

    /// Cancels every running turn (shutdown); new turns are refused.
    pub fn shutdown(&self) {
        self.inner.shutdown.cancel();
        for lane in lock(&self.inner.lanes).values() {
            if let Some((tok, reason)) = lock(&lane.running).as_ref() {
                reason.set("shutdown");
                tok.cancel();
            }
        }
    }

    /// Number of sessions held in memory.
    pub fn loaded_sessions(&self) -> usize {
        lock(&self.inner.lanes).len()
    }

    /// Messages waiting behind the session's running turn.
    pub fn queued(&self, session_key: &str) -> usize {
        lock(&self.inner.lanes)
            .get(session_key)
            .map_or(0, |l| l.waiting.load(Ordering::SeqCst))
    }

    /// Turns running now (holding one of the `maxConcurrent` slots).
    pub fn running(&self) -> usize {
        (self.inner.models.max_concurrent.max(1) as usize)
            .saturating_sub(self.inner.global.available_permits())
    }

    /// Runs one turn: waits for the session's lane and a global slot, then runs it to a final
    /// answer or a limit.
    pub async fn run_turn(&self, req: TurnRequest) -> Result<TurnOutcome, AgentError> {
        let out = self.turn_in_lane(req).await;
        self.evict_idle();
        out
    }

    async fn turn_in_lane(&self, req: TurnRequest) -> Result<TurnOutcome, AgentError> {
        if req.session_key.trim().is_empty() {
            return Err(AgentError::BadRequest("the session key is empty".into()));
        }
        if req.text.trim().is_empty() && req.images.is_empty() {
            return Err(AgentError::BadRequest("the message is empty".into()));
        }
        if self.inner.shutdown.is_cancelled() {
            return Err(AgentError::Cancelled { reason: "shutdown" });
        }
        let agent_id = SessionStore::agent_of(&req.session_key, req.agent_id.as_deref());
        let session = SessionInfo {
            session_key: req.session_key.clone(),
            agent_id: agent_id.clone(),
            channel: req.channel.clone(),
        };
        // Configuration problems are refused before anything is queued or written.
        let chain = self.chain(&agent_id, req.model.as_deref())?;

        let lane = self.lane(&req.session_key);
        let queued = lane.waiting.fetch_add(1, Ordering::SeqCst);
        if queued >= self.inner.opts.max_queue {
            lane.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(AgentError::Busy {
                session_key: req.session_key.clone(),
                queued,
            });
        }
        let epoch = lane.epoch.load(Ordering::SeqCst);
        let mut state = lane.state.lock().await;
        lane.waiting.fetch_sub(1, Ordering::SeqCst);
        let token = self.inner.shutdown.child_token();
        let reason = CancelReason::default();
        *lock(&lane.running) = Some((token.clone(), reason.clone()));
        let _clear = ClearRunning(&lane);
        // Checked after publishing the token: a `stop` is either seen here or cancels it.
        if lane.epoch.load(Ordering::SeqCst) != epoch {
            return Err(AgentError::Cancelled { reason: "stop" });
        }
        let settings = self.inner.models.run_settings(&agent_id);
        let guard = TurnGuard {
            cancel: token,
            reason,
            deadline: tokio::time::Instant::now() + Duration::from_secs(settings.timeout_seconds),
            timeout_secs: settings.timeout_seconds,
        };
        let _permit = guard
            .run(self.inner.global.acquire())
            .await?
            .map_err(|_| AgentError::Cancelled { reason: "shutdown" })?;

        if state.is_none() {
            *state = Some(self.load(&session)?);
        }
        let Some(sess) = state.as_mut() else {
            return Err(AgentError::BadRequest("session not loaded".into()));
        };

        let specs = self.inner.tools.tools(&session);
        let tool_defs: Vec<ToolDef> = specs
            .iter()
            .map(|s| ToolDef {
                name: s.name.clone(),
                description: s.description.clone(),
                parameters: s.input_schema.clone(),
            })
            .collect();
        let workspace = self.inner.config.agent_workspace(&agent_id).value;
        let sandboxed = self
            .inner
            .config
            .resolve(&ResolveInput {
                agent: Some(&agent_id),
                channel: req.channel.as_deref(),
                session_key: Some(&req.session_key),
            })
            .ok()
            .map(|e| e.sandboxed);
        let system = system_prompt(&PromptInput {
            agent_id: &agent_id,
            workspace: &workspace,
            tools: &tool_defs,
            sandboxed,
            extra: self.inner.opts.system_prompt.as_deref(),
            settings: &settings,
        });
        let max_tool_result_chars = self.inner.opts.max_tool_result_chars.unwrap_or_else(|| {
            match chain.first().map_or(0, |c| c.def.context_window) {
                w if w >= 200_000 => 64_000,
                w if w >= 100_000 => 32_000,
                _ => 16_000,
            }
        });
        let mut user = Vec::new();
        if !req.text.is_empty() {
            user.push(ContentPart::Text {
                text: req.text.clone(),
            });
        }
        user.extend(
            req.images
                .iter()
                .cloned()
                .map(|image| ContentPart::Image { image }),
        );
        let env = TurnEnv {
            session: &session,
            chain,
            tools: self.inner.tools.as_ref(),
            tool_defs,
            system,
            observer: self.inner.observer.as_ref(),
            live: req.events.as_ref(),
            retry: &self.inner.opts.retry,
            max_rounds: self.inner.opts.max_rounds,
            max_tool_result_chars,
            stream: req.stream.unwrap_or(self.inner.opts.stream),
            tool_choice: &req.tool_choice,
        };
        sess.writer = Some(self.inner.store.writer(&agent_id, &sess.id)?);
        let out = crate::turn::run(&env, sess, user, &guard).await;
        sess.writer = None;
        if let Err(e) = self
            .inner
            .store
            .touch(&req.session_key, &agent_id, sess.last_turn)
        {
            tracing::warn!(error = %e, "session index not updated");
        }
        out
    }

    /// Past `max_loaded_sessions`, forgets idle sessions (nobody running, waiting or holding
    /// the lane); they are reloaded from their transcript when needed.
    fn evict_idle(&self) {
        let mut lanes = lock(&self.inner.lanes);
        let cap = self.inner.opts.max_loaded_sessions;
        if lanes.len() <= cap {
            return;
        }
        let idle: Vec<String> = lanes
            .iter()
            .filter(|(_, l)| Arc::strong_count(l) == 1 && l.waiting.load(Ordering::SeqCst) == 0)
            .map(|(k, _)| k.clone())
            .take(lanes.len() - cap)
            .collect();
        for k in idle {
            lanes.remove(&k);
        }
    }

    /// The model chain of a turn, every provider built (or its error kept for its attempt).
    fn chain(
        &self,
        agent_id: &str,
        override_ref: Option<&str>,
    ) -> Result<Vec<Candidate>, AgentError> {
        let models = &self.inner.models;
        let refs: Vec<ModelRef> = match override_ref {
            Some(s) => {
                let r = models
                    .resolve_ref(s)
                    .map_err(|m| AgentError::ModelNotConfigured {
                        message: format!("model {s:?}: {m}"),
                        hint: "name a configured model as \"provider/model\"".into(),
                    })?;
                if !models.override_allowed(agent_id, &r) {
                    return Err(AgentError::ModelNotConfigured {
                        message: format!("model {r} is not allowed for agent {agent_id} by modelPolicy.allow"),
                        hint: "use the agent's configured model, or add it to agents.defaults.modelPolicy.allow".into(),
                    });
                }
                vec![r]
            }
            None => match models.run_settings(agent_id).model {
                Some(sel) => sel.chain(),
                None => {
                    return Err(AgentError::ModelNotConfigured {
                        message: format!("no model is configured for agent {agent_id}"),
                        hint: "set agents.defaults.model.primary to \"provider/model\" (and the provider in models.providers)".into(),
                    });
                }
            },
        };
        let mut out = Vec::new();
        for r in refs {
            let Some((p, def)) = models.lookup(&r) else {
                return Err(AgentError::ModelNotConfigured {
                    message: format!("model {r} is not configured"),
                    hint: "add it to models.providers.<id>.models".into(),
                });
            };
            let key = r.to_string();
            let cached = lock(&self.inner.providers).get(&key).cloned();
            let provider = match cached {
                Some(p) => Ok(p),
                None => match provider_for(p, &def, &self.inner.opts.http) {
                    Ok(built) => {
                        lock(&self.inner.providers).insert(key, Arc::clone(&built));
                        Ok(built)
                    }
                    Err(e) => Err::<_, ProviderError>(e),
                },
            };
            out.push(Candidate {
                api: api_name(def.api.unwrap_or(p.api)),
                model_ref: r,
                def,
                provider,
            });
        }
        Ok(out)
    }

    /// Loads a session from its transcript, repairing what a crash left.
    fn load(&self, session: &SessionInfo) -> Result<LoadedSession, AgentError> {
        let mut open = self
            .inner
            .store
            .open(&session.session_key, &session.agent_id)?;
        let h = history(&open.events);
        let torn = open.report.torn_tail || open.writer.torn_tail();
        let repair = torn
            || !open.report.skipped_lines.is_empty()
            || !h.unanswered.is_empty()
            || h.unfinished_turn.is_some();
        if repair {
            tracing::warn!(
                session = %session.session_key,
                torn_tail = torn,
                skipped = open.report.skipped_lines.len(),
                interrupted = h.unanswered.len(),
                "transcript repaired on resume"
            );
            for (turn, round, c) in &h.unanswered {
                open.writer.append(&Event::ToolResult {
                    turn: *turn,
                    round: *round,
                    timestamp: now_rfc3339(),
                    call_id: c.id.clone(),
                    name: c.name.clone(),
                    ok: false,
                    content: crate::transcript::history::interrupted_content(),
                    truncated: false,
                    interrupted: true,
                })?;
            }
            if let Some(turn) = h.unfinished_turn {
                open.writer.append(&Event::TurnEnd {
                    turn,
                    timestamp: now_rfc3339(),
                    status: TurnStatus::Cancelled,
                    rounds: 0,
                    error: Some(
                        carapace_policy::ErrorEnvelope::new(
                            carapace_policy::ErrorCode::TurnCancelled,
                            "the turn was interrupted (carapace stopped while it ran)",
                        )
                        .with_detail("reason", "restart"),
                    ),
                })?;
            }
            open.writer.append(&Event::Resumed {
                timestamp: now_rfc3339(),
                torn_tail: torn,
                skipped_lines: open.report.skipped_lines.clone(),
                interrupted_calls: h.unanswered.len(),
                unfinished_turn: h.unfinished_turn,
            })?;
        }
        // The rebuilt history already answers unanswered calls as interrupted.
        let mut messages: Vec<Message> = h.messages;
        let pending: Vec<Message> = h
            .unanswered
            .iter()
            .map(|(_, _, c)| Message::Tool {
                call_id: c.id.clone(),
                name: c.name.clone(),
                content: crate::transcript::history::interrupted_content(),
                is_error: true,
            })
            .collect();
        messages.extend(pending);
        Ok(LoadedSession {
            id: open.id,
            writer: None,
            history: messages,
            last_turn: h.last_turn,
            last_compaction: (0, 0),
        })
    }
}

struct ClearRunning<'a>(&'a Lane);

impl Drop for ClearRunning<'_> {
    fn drop(&mut self) {
        *lock(&self.0.running) = None;
    }
}
