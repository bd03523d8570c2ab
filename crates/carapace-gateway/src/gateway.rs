//! The shared heart of every surface: the backend in force, the token, the limits, and the one
//! call pipeline (tool lookup → run under the request budget with panics caught → metrics →
//! audit) that HTTP, MCP-over-HTTP and MCP-over-stdio all go through.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use carapace_policy::tools_policy::Surface;
use carapace_policy::{Config, ErrorCode, ErrorEnvelope, ResolveInput};
use serde_json::Value;

use crate::agent::AgentServices;
use crate::audit::{AuditLog, AuditRecord};
use crate::auth::Token;
use crate::call::{Origin, ToolBackend, ToolCall, ToolSpec};
use crate::idempotency::{Begin, IdempotencyCache};
use crate::metrics::Metrics;

/// Default largest request body (`gateway.maxBodyBytes`).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 8 * 1024 * 1024;
/// Default most open connections (`gateway.maxConnections`), before the fd-limit clamp.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;
/// Default header deadline and keep-alive idle timeout (`gateway.headerTimeoutSeconds`).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(15);
/// Default body deadline (`gateway.bodyTimeoutSeconds`).
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// Limits taken from the config (and re-taken on reload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body.
    pub max_body_bytes: u64,
    /// Budget of one tool call; past it the caller gets `TIMEOUT` (504).
    pub request_timeout: Duration,
    /// Most connections open at once, as configured (the listener clamps it below the fd
    /// limit; see [`crate::listener::effective_cap`]).
    pub max_connections: usize,
    /// A connection that has not sent a whole request head this long after it became ready
    /// for one (accepted, or done with the previous response) is closed.
    pub header_timeout: Duration,
    /// A request whose body has not fully arrived this long after its head is answered
    /// `REQUEST_TIMEOUT` and its connection closed. Never longer than `request_timeout`.
    pub body_timeout: Duration,
}

impl Limits {
    /// `gateway.maxBodyBytes` (default 8 MiB), `gateway.requestTimeoutSeconds` (default the
    /// exec timeout plus 30 s, so a command that uses its whole timeout still answers),
    /// `gateway.maxConnections` (512), `gateway.headerTimeoutSeconds` (15 s) and
    /// `gateway.bodyTimeoutSeconds` (60 s, at most the request budget).
    pub fn from_config(config: &Config) -> Limits {
        let g = &config.file.gateway;
        let request_timeout = Duration::from_secs(
            g.request_timeout_seconds
                .unwrap_or(config.file.tools.exec.timeout_seconds.saturating_add(30))
                .max(1),
        );
        let secs =
            |v: Option<u64>, d: Duration| v.map(|s| Duration::from_secs(s.max(1))).unwrap_or(d);
        Limits {
            max_body_bytes: g.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES).max(1),
            request_timeout,
            max_connections: g
                .max_connections
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX).max(1))
                .unwrap_or(DEFAULT_MAX_CONNECTIONS),
            header_timeout: secs(g.header_timeout_seconds, DEFAULT_HEADER_TIMEOUT),
            body_timeout: secs(g.body_timeout_seconds, DEFAULT_BODY_TIMEOUT).min(request_timeout),
        }
    }
}

struct BackendSlot {
    backend: Arc<dyn ToolBackend>,
    /// Every tool the backend has, and whether its calls are audited (its effects go beyond
    /// reading the workspace).
    audited: HashMap<String, bool>,
    specs: Arc<Vec<ToolSpec>>,
}

impl BackendSlot {
    fn new(backend: Arc<dyn ToolBackend>) -> BackendSlot {
        let specs = backend.specs();
        BackendSlot {
            audited: specs
                .iter()
                .map(|s| (s.name.clone(), s.meta.audited()))
                .collect(),
            specs: Arc::new(specs),
            backend,
        }
    }
}

pub(crate) struct Inner {
    backend: RwLock<Arc<BackendSlot>>,
    token: RwLock<Option<Token>>,
    limits: RwLock<Limits>,
    audit: Option<AuditLog>,
    metrics: Metrics,
    idempotency: IdempotencyCache,
    /// The agent runtime and the inbound service of the config in force (`None`: the backend
    /// has no tool context, or the gateway has not started them yet).
    agent: RwLock<Option<Arc<AgentServices>>>,
}

/// The gateway's shared state. Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("limits", &self.limits())
            .finish_non_exhaustive()
    }
}

/// Where a call came from (for audit lines and logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `POST /tools/invoke`.
    Http,
    /// `/mcp`.
    McpHttp,
    /// `carapace mcp`.
    McpStdio,
    /// A tool call of carapace's own agent (a model's tool call in a turn).
    Agent,
}

impl Transport {
    /// `http`, `mcp-http`, `mcp-stdio`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::McpHttp => "mcp-http",
            Transport::McpStdio => "mcp-stdio",
            Transport::Agent => "agent",
        }
    }

    /// The tool-policy surface: `/tools/invoke` is `http`, both MCP transports are `mcp`.
    pub fn surface(self) -> Surface {
        match self {
            Transport::Http => Surface::Http,
            Transport::McpHttp | Transport::McpStdio => Surface::Mcp,
            Transport::Agent => Surface::Agent,
        }
    }
}

/// How a call arrived, besides the call itself.
#[derive(Debug, Clone)]
pub struct CallRequest {
    /// The request id.
    pub request_id: String,
    /// The transport (and so the policy surface).
    pub transport: Transport,
    /// A channel the client named as context only (`x-openclaw-message-channel`).
    pub channel_hint: Option<String>,
    /// `idempotencyKey`.
    pub idempotency_key: Option<String>,
}

impl CallRequest {
    /// A request with no hint and no idempotency key.
    pub fn new(request_id: &str, transport: Transport) -> CallRequest {
        CallRequest {
            request_id: request_id.to_string(),
            transport,
            channel_hint: None,
            idempotency_key: None,
        }
    }
}

impl Gateway {
    /// A gateway over `backend`. `token: None` means no authentication (stdio MCP only: the
    /// peer is the process that started us). `audit: None` disables the audit log (tests).
    pub fn new(
        backend: Arc<dyn ToolBackend>,
        token: Option<Token>,
        limits: Limits,
        audit: Option<AuditLog>,
    ) -> Result<Gateway, ErrorEnvelope> {
        let metrics = Metrics::new().map_err(|e| {
            ErrorEnvelope::new(ErrorCode::Internal, format!("metrics registry: {e}"))
        })?;
        Ok(Gateway {
            inner: Arc::new(Inner {
                backend: RwLock::new(Arc::new(BackendSlot::new(backend))),
                token: RwLock::new(token),
                limits: RwLock::new(limits),
                audit,
                metrics,
                idempotency: IdempotencyCache::default(),
                agent: RwLock::new(None),
            }),
        })
    }

    pub(crate) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn upgrade(w: &std::sync::Weak<Inner>) -> Option<Gateway> {
        w.upgrade().map(|inner| Gateway { inner })
    }

    /// The agent runtime and inbound service in force, if the gateway runs an agent.
    pub fn agent(&self) -> Option<Arc<AgentServices>> {
        self.inner
            .agent
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts `services` in force and returns the ones they replace (the caller shuts those
    /// down).
    pub fn set_agent(&self, services: Option<Arc<AgentServices>>) -> Option<Arc<AgentServices>> {
        std::mem::replace(
            &mut *self.inner.agent.write().unwrap_or_else(|p| p.into_inner()),
            services,
        )
    }

    /// The backend in force.
    pub fn backend(&self) -> Arc<dyn ToolBackend> {
        self.slot().backend.clone()
    }

    /// Why the session `input` names cannot call `tool` on `surface` (the backend's policy).
    pub fn refusal(
        &self,
        surface: Surface,
        input: &ResolveInput<'_>,
        tool: &str,
    ) -> Option<ErrorEnvelope> {
        self.slot().backend.refusal(surface, input, tool)
    }

    /// The limits in force.
    pub fn limits(&self) -> Limits {
        *self.inner.limits.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The token in force (`None`: no authentication).
    pub fn token(&self) -> Option<Token> {
        self.inner
            .token
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Checks an `Authorization` header against the token in force.
    pub fn check_auth(&self, header: Option<&str>) -> Result<(), ErrorEnvelope> {
        let guard = self.inner.token.read().unwrap_or_else(|p| p.into_inner());
        match guard.as_ref() {
            Some(t) => t.check_header(header),
            None => Ok(()),
        }
    }

    /// Metrics (for `/metrics` and the HTTP layer).
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The audit log, if enabled.
    pub fn audit_log(&self) -> Option<&AuditLog> {
        self.inner.audit.as_ref()
    }

    /// Every tool, with its schema (whatever the policy says).
    pub fn specs(&self) -> Arc<Vec<ToolSpec>> {
        self.slot().specs.clone()
    }

    /// The tools the session `input` names has on `surface`, as the backend's policy decides.
    pub fn list(
        &self,
        surface: Surface,
        input: &ResolveInput<'_>,
    ) -> Result<Vec<ToolSpec>, ErrorEnvelope> {
        self.slot().backend.list(surface, input)
    }

    fn slot(&self) -> Arc<BackendSlot> {
        self.inner
            .backend
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Swaps in a new backend, token and limits (config reload). Calls already running finish
    /// on the backend they started with.
    pub fn apply(&self, backend: Arc<dyn ToolBackend>, token: Option<Token>, limits: Limits) {
        let slot = Arc::new(BackendSlot::new(backend));
        *self
            .inner
            .backend
            .write()
            .unwrap_or_else(|p| p.into_inner()) = slot;
        *self.inner.token.write().unwrap_or_else(|p| p.into_inner()) = token;
        *self.inner.limits.write().unwrap_or_else(|p| p.into_inner()) = limits;
    }

    /// Stops the services of the backend in force (the gateway is stopping).
    pub async fn shutdown_backend(&self) {
        self.slot().backend.shutdown().await;
    }

    /// Refreshes gauges that are read, not counted. When the backend cannot count its
    /// sandboxes, the `exec` calls running now are the count (a bwrap sandbox lives exactly as
    /// long as its command).
    pub fn refresh_gauges(&self) {
        let m = &self.inner.metrics;
        let n = match self.slot().backend.sandboxes_alive() {
            Some(n) => i64::try_from(n).unwrap_or(i64::MAX),
            None => m.execs_in_flight.get(),
        };
        m.sandboxes_alive.set(n);
    }

    /// Runs one tool call: unknown tool → `NOT_FOUND`; with an idempotency key, a repeat of
    /// a call of the last window gets its outcome without running again; the call runs in its
    /// own task under the request budget (`TIMEOUT` past it, `INTERNAL` if it panics) and the
    /// backend applies the tool policy of the request's surface; then metrics and, for tools
    /// whose effects go beyond reading, one audit line.
    pub async fn call(&self, call: ToolCall, req: &CallRequest) -> Result<Value, ErrorEnvelope> {
        let slot = self.slot();
        let m = &self.inner.metrics;
        let request_id = req.request_id.as_str();
        let Some(&audited) = slot.audited.get(&call.tool) else {
            m.calls.with_label_values(&["(unknown)", "NOT_FOUND"]).inc();
            let mut names: Vec<&str> = slot.audited.keys().map(String::as_str).collect();
            names.sort_unstable();
            return Err(ErrorEnvelope::new(
                ErrorCode::NotFound,
                format!("there is no tool named {:?}", call.tool),
            )
            .with_hint(format!("carapace's tools: {}", names.join(", ")))
            .with_detail("tool", call.tool.clone()));
        };
        let budget = self.limits().request_timeout;
        let pending = match &req.idempotency_key {
            None => None,
            Some(key) => match self.inner.idempotency.begin(key, &call)? {
                Begin::Run(p) => Some(p),
                Begin::Replay(outcome) => {
                    m.calls.with_label_values(&[&call.tool, "REPLAYED"]).inc();
                    return outcome;
                }
                Begin::Wait(rx) => {
                    m.calls.with_label_values(&[&call.tool, "REPLAYED"]).inc();
                    return match tokio::time::timeout(budget, crate::idempotency::wait(rx)).await
                    {
                        Ok(o) => o,
                        Err(_) => Err(timeout(&call.tool, budget)
                            .with_hint("the first call with this idempotencyKey is still running; retry with the same key later")),
                    };
                }
            },
        };
        let started = Instant::now();
        m.in_flight.inc();
        let is_exec = call.tool == "exec";
        if is_exec {
            m.execs_in_flight.inc();
        }
        let origin = Origin {
            surface: req.transport.surface(),
            channel_hint: req.channel_hint.clone(),
        };
        let run = slot.backend.invoke(call.clone(), origin);
        // The outcome is recorded for the idempotency key when the call finishes, even past
        // the budget: a retry must never run a call the first attempt is still running.
        let task = tokio::spawn(async move {
            let r = run.await;
            if let Some(p) = pending {
                p.finish(&r);
            }
            r
        });
        let result = match tokio::time::timeout(budget, task).await {
            Ok(Ok(r)) => r,
            Ok(Err(join)) => {
                let what = if join.is_panic() {
                    panic_message(join.into_panic())
                } else {
                    "the task was cancelled".to_string()
                };
                tracing::error!(request_id, tool = %call.tool, "tool call failed: {what}");
                Err(ErrorEnvelope::new(
                    ErrorCode::Internal,
                    format!("the {} tool failed unexpectedly (a bug): {what}", call.tool),
                )
                .with_hint("this is a carapace bug; report it with the request id")
                .with_detail("tool", call.tool.clone()))
            }
            Err(_) => Err(timeout(&call.tool, budget)),
        };
        m.in_flight.dec();
        if is_exec {
            m.execs_in_flight.dec();
        }
        let elapsed = started.elapsed();
        let outcome = match &result {
            Ok(_) => "ok",
            Err(e) => e.code.as_str(),
        };
        m.calls.with_label_values(&[&call.tool, outcome]).inc();
        m.call_seconds
            .with_label_values(&[&call.tool])
            .observe(elapsed.as_secs_f64());
        if audited {
            let rec =
                AuditRecord::from_call(request_id, req.transport.as_str(), &call, &result, elapsed);
            if call.tool == "message"
                && result.is_ok()
                && let Some(b) = rec.bytes
            {
                let ch = call
                    .args
                    .get("channel")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                m.channel_bytes_sent.with_label_values(&[ch]).inc_by(b);
            }
            if let Some(log) = &self.inner.audit {
                log.append(&rec);
            }
        }
        result
    }
}

fn timeout(tool: &str, budget: Duration) -> ErrorEnvelope {
    ErrorEnvelope::new(
        ErrorCode::Timeout,
        format!(
            "the {tool} call ran past the gateway's request budget of {} s",
            budget.as_secs()
        ),
    )
    .with_hint("raise gateway.requestTimeoutSeconds, or pass a smaller timeoutSeconds to exec")
    .with_detail("tool", tool)
    .with_detail("budgetSeconds", budget.as_secs())
}

/// The text of a panic payload.
pub fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}
