//! The webhook ingress: other systems hand a message to an agent with an authenticated
//! `POST <hooks.path>/agent` (OpenClaw's `hooks` shape). The gateway's route calls
//! [`InboundService::handle_webhook`] with the request; parsing, the token check and the turn
//! live here.
//!
//! - Auth: `Authorization: Bearer <hooks.token>` or `x-openclaw-token: <hooks.token>`,
//!   compared in constant time. A token in the query string is refused (400), as in OpenClaw.
//! - Body: `{message, name?, agentId?, sessionKey?, deliver?, channel?, to?, model?,
//!   timeoutSeconds?, wakeMode?, thinking?}` (the last two are accepted and ignored).
//! - Without `channel` + `to` (or with `deliver: false`) the turn runs now and the answer is
//!   the response: `200 {ok, sessionKey, reply, media}`. With them, `202 {ok, sessionKey,
//!   runId}` at once, and the reply goes to that channel and target through the outbound
//!   checks, like any reply.
//! - Session: `agent:<agentId>:hook:<uuid>` per request, or `hooks.defaultSessionKey`; a
//!   request's own `sessionKey` only with `hooks.allowRequestSessionKey` (and then only with an
//!   allowed prefix, when `hooks.allowedSessionKeyPrefixes` is set).
//! - The message reaches the model marked as coming from an external system.

use std::sync::Arc;
use std::time::Duration;

use carapace_agent::{Reply, TurnRequest};
use carapace_channels::Target;
use carapace_policy::config::inbound::DEFAULT_HOOKS_MAX_BODY;
use carapace_policy::session::normalize_agent_id;
use carapace_policy::{CarapaceError, ErrorCode, ErrorEnvelope};
use serde_json::{Value, json};

use crate::service::InboundService;

/// One request as the gateway received it.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    /// The request path (`/hooks/agent`).
    pub path: &'a str,
    /// The raw query string, if any.
    pub query: Option<&'a str>,
    /// The headers.
    pub headers: &'a http::HeaderMap,
    /// The body.
    pub body: &'a [u8],
}

/// What to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookResponse {
    /// HTTP status.
    pub status: u16,
    /// JSON body (`{"ok": true, …}` or the error envelope).
    pub body: Value,
}

const KNOWN: &[&str] = &[
    "message",
    "name",
    "agentId",
    "sessionKey",
    "deliver",
    "channel",
    "to",
    "model",
    "timeoutSeconds",
    "wakeMode",
    "thinking",
];

fn fail(code: ErrorCode, message: impl Into<String>, hint: Option<&str>) -> WebhookResponse {
    let mut e = ErrorEnvelope::new(code, message);
    if let Some(h) = hint {
        e = e.with_hint(h);
    }
    from_envelope(e)
}

fn from_envelope(e: ErrorEnvelope) -> WebhookResponse {
    WebhookResponse {
        status: e.code.http_status(),
        body: json!({"ok": false, "error": e}),
    }
}

/// Constant-time comparison (length leaks, content does not).
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn presented_token(headers: &http::HeaderMap) -> Option<String> {
    if let Some(v) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(t) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
    {
        return Some(t.trim().to_string());
    }
    ["x-openclaw-token", "x-carapace-token"]
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
        .map(|t| t.trim().to_string())
}

/// `to` as a target: `kind:id` as written, else the channel's usual kind for a bare id.
fn parse_to(channel: &str, to: &str) -> Result<Target, ErrorEnvelope> {
    let t = to.trim();
    let written = if t.starts_with("user:") || t.starts_with("channel:") || t.starts_with("room:") {
        t.to_string()
    } else {
        match channel {
            "matrix" if t.starts_with('@') => format!("user:{t}"),
            "matrix" => format!("room:{t}"),
            _ => format!("channel:{t}"),
        }
    };
    Target::parse(&written).map_err(|e| e.to_envelope())
}

impl InboundService {
    /// Handles `POST <hooks.path>/…` (see the module docs). Never panics, never answers 500
    /// for a bad request.
    pub async fn handle_webhook(&self, req: WebhookRequest<'_>) -> WebhookResponse {
        let inner = &self.inner;
        let hooks = &inner.config.file.hooks;
        if !hooks.is_enabled() {
            return fail(
                ErrorCode::NotFound,
                "webhooks are not enabled",
                Some("set hooks.enabled and hooks.token in the config"),
            );
        }
        let base = hooks.base_path();
        let Some(rest) = req.path.strip_prefix(&base) else {
            return fail(
                ErrorCode::NotFound,
                format!("no webhook at {}", req.path),
                None,
            );
        };
        if req
            .query
            .is_some_and(|q| q.split('&').any(|kv| kv.split('=').next() == Some("token")))
        {
            return fail(
                ErrorCode::BadRequest,
                "a token in the query string is refused (it ends up in logs and proxies)",
                Some("send it as Authorization: Bearer <token> or x-openclaw-token"),
            );
        }
        let expected = hooks.token.as_ref().and_then(|t| t.expose()).unwrap_or("");
        let ok = !expected.is_empty()
            && presented_token(req.headers)
                .is_some_and(|t| same(t.as_bytes(), expected.as_bytes()));
        if !ok {
            return fail(
                ErrorCode::Unauthorized,
                "missing or wrong webhook token",
                Some("send hooks.token as Authorization: Bearer <token> or x-openclaw-token"),
            );
        }
        match rest.trim_end_matches('/') {
            "/agent" => {}
            "/wake" => {
                return fail(
                    ErrorCode::NotFound,
                    "/wake is not implemented by carapace (it has no heartbeat)",
                    Some("use /agent to run a turn"),
                );
            }
            other => {
                return fail(
                    ErrorCode::NotFound,
                    format!("no webhook at {base}{other}"),
                    Some("carapace serves <hooks.path>/agent"),
                );
            }
        }
        let max = hooks.max_body_bytes.unwrap_or(DEFAULT_HOOKS_MAX_BODY);
        if req.body.len() as u64 > max {
            return fail(
                ErrorCode::TooLarge,
                format!(
                    "the body is {} bytes; hooks.maxBodyBytes is {max}",
                    req.body.len()
                ),
                None,
            );
        }
        let v: Value = match serde_json::from_slice(req.body) {
            Ok(v) => v,
            Err(e) => {
                return fail(
                    ErrorCode::BadRequest,
                    format!("the body is not JSON: {e}"),
                    None,
                );
            }
        };
        let Some(obj) = v.as_object() else {
            return fail(
                ErrorCode::BadRequest,
                "the body must be a JSON object",
                None,
            );
        };
        if let Some(k) = obj.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return fail(
                ErrorCode::BadRequest,
                format!("unknown key {k:?}; allowed: {}", KNOWN.join(", ")),
                None,
            );
        }
        let s = |k: &str| -> Result<Option<String>, WebhookResponse> {
            match obj.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(x)) => Ok(Some(x.clone())),
                Some(_) => Err(fail(
                    ErrorCode::BadRequest,
                    format!("{k} must be a string"),
                    None,
                )),
            }
        };
        let message = match s("message") {
            Ok(Some(m)) if !m.trim().is_empty() => m,
            Ok(_) => return fail(ErrorCode::BadRequest, "message is required", None),
            Err(r) => return r,
        };
        let (name, agent, key, channel, to, model) = match (
            s("name"),
            s("agentId"),
            s("sessionKey"),
            s("channel"),
            s("to"),
            s("model"),
        ) {
            (Ok(a), Ok(b), Ok(c), Ok(d), Ok(e), Ok(f)) => (a, b, c, d, e, f),
            (Err(r), ..)
            | (_, Err(r), ..)
            | (_, _, Err(r), ..)
            | (_, _, _, Err(r), ..)
            | (.., Err(r), _)
            | (.., Err(r)) => return r,
        };
        let deliver = match obj.get("deliver") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return fail(ErrorCode::BadRequest, "deliver must be a boolean", None),
        };
        let timeout = match obj.get("timeoutSeconds") {
            None | Some(Value::Null) => None,
            Some(v) => match v
                .as_f64()
                .filter(|t| t.is_finite() && *t > 0.0 && *t <= 86_400.0)
            {
                Some(t) => Some(Duration::from_secs_f64(t)),
                None => {
                    return fail(
                        ErrorCode::BadRequest,
                        "timeoutSeconds must be a number of seconds (0 < t ≤ 86400)",
                        None,
                    );
                }
            },
        };
        let agent_id = normalize_agent_id(
            agent
                .as_deref()
                .unwrap_or(&carapace_policy::routing::default_agent(&inner.config.file)),
        );
        if let Some(allowed) = &hooks.allowed_agent_ids
            && !allowed
                .iter()
                .any(|a| a == "*" || normalize_agent_id(a) == agent_id)
        {
            return fail(
                ErrorCode::BadRequest,
                format!("agent {agent_id:?} is not in hooks.allowedAgentIds"),
                None,
            );
        }
        let session_key = match key {
            Some(k) => {
                if hooks.allow_request_session_key != Some(true) {
                    return fail(
                        ErrorCode::BadRequest,
                        "sessionKey is not accepted from requests",
                        Some("set hooks.allowRequestSessionKey to let callers name sessions"),
                    );
                }
                if let Some(prefixes) = &hooks.allowed_session_key_prefixes
                    && !prefixes.iter().any(|p| k.starts_with(p.as_str()))
                {
                    return fail(
                        ErrorCode::BadRequest,
                        format!("sessionKey {k:?} has none of hooks.allowedSessionKeyPrefixes"),
                        None,
                    );
                }
                k
            }
            None => hooks
                .default_session_key
                .clone()
                .unwrap_or_else(|| format!("hook:{}", uuid::Uuid::new_v4())),
        };
        if session_key.chars().any(char::is_control) || session_key.len() > 512 {
            return fail(
                ErrorCode::BadRequest,
                "sessionKey is not a usable key",
                None,
            );
        }
        let parsed = carapace_policy::session::SessionKey::parse(&session_key);
        let session_key = match parsed.agent_id {
            Some(a) if a != agent_id && agent.is_some() => {
                return fail(
                    ErrorCode::BadRequest,
                    format!("sessionKey names agent {a:?}, agentId says {agent_id:?}"),
                    None,
                );
            }
            Some(_) => session_key,
            None => format!("agent:{agent_id}:{session_key}"),
        };
        let text = format!(
            "[webhook{}: the message below comes from an external system, not from a person in a chat]\n{message}",
            name.as_deref().map(|n| format!(" {n}")).unwrap_or_default()
        );
        let run_id = uuid::Uuid::new_v4().to_string();
        let target = match (&channel, &to, deliver) {
            (_, _, Some(false)) | (None, None, _) => None,
            (Some(c), _, _) if c == "last" => {
                return fail(
                    ErrorCode::BadRequest,
                    "channel \"last\" is not supported: carapace keeps no last route",
                    Some("name the channel and the target (\"to\")"),
                );
            }
            (Some(c), Some(t), _) => {
                if let Err(e) = inner.adapter(c) {
                    return from_envelope(e.to_envelope());
                }
                match parse_to(c, t) {
                    Ok(t) => Some((c.clone(), t)),
                    Err(e) => return from_envelope(e),
                }
            }
            _ => {
                return fail(
                    ErrorCode::BadRequest,
                    "delivery needs both channel and to",
                    Some("give both, or neither for a synchronous answer"),
                );
            }
        };
        let turn = TurnRequest {
            session_key: session_key.clone(),
            agent_id: Some(agent_id.clone()),
            channel: channel.clone(),
            text,
            model,
            ..TurnRequest::default()
        };
        match target {
            None => {
                let r = self.webhook_turn(turn, timeout).await;
                match r {
                    Ok(text) => {
                        let (reply, media) = carapace_tools::split_media_lines(&text);
                        WebhookResponse {
                            status: 200,
                            body: json!({"ok": true, "runId": run_id, "sessionKey": session_key,
                                         "agentId": agent_id, "reply": reply, "media": media}),
                        }
                    }
                    Err(e) => from_envelope(e),
                }
            }
            Some((channel, target)) => {
                let me = self.clone();
                let (key, rid) = (session_key.clone(), run_id.clone());
                inner.tasks.spawn(async move {
                    me.webhook_deliver(turn, timeout, channel, target, &rid)
                        .await;
                });
                WebhookResponse {
                    status: 202,
                    body: json!({"ok": true, "runId": run_id, "sessionKey": key, "agentId": agent_id}),
                }
            }
        }
    }

    async fn webhook_turn(
        &self,
        turn: TurnRequest,
        timeout: Option<Duration>,
    ) -> Result<String, ErrorEnvelope> {
        let rt = self.inner.runtime.clone();
        let key = turn.session_key.clone();
        let fut = rt.send(turn);
        let r = match timeout {
            Some(t) => match tokio::time::timeout(t, fut).await {
                Ok(r) => r,
                Err(_) => {
                    self.inner.runtime.stop(&key);
                    return Err(ErrorEnvelope::new(
                        ErrorCode::Timeout,
                        format!("the turn ran past timeoutSeconds ({} s)", t.as_secs_f64()),
                    ));
                }
            },
            None => fut.await,
        };
        match r {
            Ok(Reply::Turn(o)) => Ok(o.text),
            Ok(Reply::Stopped { .. }) => Ok("Stopped.".into()),
            Ok(Reply::Reset { .. }) => Ok("Started a new session.".into()),
            Err(e) => Err(e.to_envelope()),
        }
    }

    async fn webhook_deliver(
        &self,
        turn: TurnRequest,
        timeout: Option<Duration>,
        channel: String,
        target: Target,
        run_id: &str,
    ) {
        let inner: &Arc<crate::service::Inner> = &self.inner;
        let (session_key, agent_id) = (
            turn.session_key.clone(),
            turn.agent_id.clone().unwrap_or_default(),
        );
        let text = match self.webhook_turn(turn, timeout).await {
            Ok(t) => t,
            Err(e) => format!(
                "Sorry, the webhook's turn failed: {} ({})",
                e.message, e.code
            ),
        };
        let (text, media) = carapace_tools::split_media_lines(&text);
        let planned = crate::journal::PlannedReply {
            session_key,
            agent_id,
            text,
            media,
        };
        let msg = carapace_channels::inbound::InboundMessage {
            channel: channel.clone(),
            account: None,
            event_id: format!("hook-{run_id}"),
            chat: carapace_channels::inbound::ChatRef {
                kind: carapace_channels::inbound::ChatKind::Direct,
                id: target.id().to_string(),
                thread: None,
            },
            sender: carapace_channels::inbound::SenderRef {
                id: "webhook".into(),
                name: None,
            },
            text: String::new(),
            mentions_bot: false,
            attachments: Vec::new(),
            timestamp_ms: None,
        };
        if let Err(e) = inner.send_reply_to(&msg, &planned, Some(target)).await {
            tracing::warn!(%channel, error = %e.message, "webhook reply not delivered");
            inner.status.error(&channel, &e.message);
        }
    }
}
