//! The HTTP surface: `POST /tools/invoke`, `/mcp`, `POST /v1/chat/completions`, the webhook,
//! `GET /healthz`, `GET /metrics`.
//!
//! Every response that is not a success is the error envelope (docs/errors.md) with the status of the one
//! table in carapace-policy, and carries the request id (header `x-request-id`, and
//! `requestId` in the body and in `error.details`). The outermost layer guarantees it even for
//! what the handlers do not produce: a panic becomes `INTERNAL` 500 with a JSON body, axum's
//! plain-text rejections and empty 404/405s are rewritten into envelopes.

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use carapace_policy::{ErrorCode, ErrorEnvelope};
use futures_util::FutureExt as _;
use http_body_util::BodyExt as _;
use serde_json::{Value, json};

use crate::gateway::{CallRequest, Gateway, Transport, panic_message};

/// The request id header, read from the client when sane and always echoed.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// The session key for calls that name none (`/tools/invoke` bodies, MCP arguments).
pub const SESSION_HEADER: &str = "x-carapace-session";
/// OpenClaw's header naming the caller's channel: a hint for the session's channel, used when
/// it names a configured channel and ignored otherwise.
pub const OPENCLAW_CHANNEL_HEADER: &str = "x-openclaw-message-channel";
/// The IETF draft header for an idempotency key (the body's `idempotencyKey` wins).
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// What a 401 says: a static bearer token, not OAuth (no `resource_metadata`, so MCP clients
/// have no authorization server to discover), and RFC 6750's `invalid_token` when a token was
/// sent and is wrong.
pub fn www_authenticate(token_sent: bool) -> HeaderValue {
    if token_sent {
        HeaderValue::from_static(
            "Bearer realm=\"carapace\", error=\"invalid_token\", error_description=\"the bearer token is not this gateway's token\"",
        )
    } else {
        HeaderValue::from_static("Bearer realm=\"carapace\"")
    }
}

/// The request id of the request being handled (an axum extension).
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

/// Builds the envelope response: status from the code, `requestId` in body and details.
pub fn error_response(env: &ErrorEnvelope, request_id: &str) -> Response {
    let env = env.clone().with_detail("requestId", request_id);
    let mut body = env.to_response_json();
    if let Value::Object(m) = &mut body {
        m.insert("requestId".into(), Value::String(request_id.to_string()));
    }
    let status =
        StatusCode::from_u16(env.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &body)
}

/// OpenClaw's `error.type` for a code (`not_found`, `invalid_request`, `unauthorized`,
/// `tool_error`), added to `/tools/invoke` errors so clients written for OpenClaw read them.
pub fn openclaw_error_type(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::NotFound | ErrorCode::ToolDenied => "not_found",
        ErrorCode::BadRequest
        | ErrorCode::TooLarge
        | ErrorCode::RequestTimeout
        | ErrorCode::IdempotencyKeyReused => "invalid_request",
        ErrorCode::Unauthorized => "unauthorized",
        _ => "tool_error",
    }
}

/// [`error_response`] for `/tools/invoke`: the envelope plus OpenClaw's `error.type`.
fn invoke_error_response(env: &ErrorEnvelope, request_id: &str) -> Response {
    let env = env.clone().with_detail("requestId", request_id);
    let mut body = env.to_response_json();
    if let Value::Object(m) = &mut body {
        m.insert("requestId".into(), Value::String(request_id.to_string()));
        if let Some(Value::Object(e)) = m.get_mut("error") {
            e.insert("type".into(), openclaw_error_type(env.code).into());
        }
    }
    let status =
        StatusCode::from_u16(env.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &body)
}

pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{\"ok\":false}".to_vec());
    let mut r = Response::new(Body::from(bytes));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

pub(crate) fn request_id_of(req: &Request) -> Arc<str> {
    req.extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| Arc::from("-"))
}

/// The routes, with every layer. `mcp` mounts `/mcp` (the streamable HTTP MCP endpoint).
pub fn router(gw: Gateway, mcp: Option<crate::mcp::HttpMcp>) -> Router {
    let mut protected = Router::new()
        .route("/tools/invoke", post(invoke))
        .route(
            "/v1/chat/completions",
            post(crate::chat_completions::chat_completions),
        )
        .route("/metrics", get(metrics));
    if let Some(m) = mcp {
        let state = crate::mcp_http::McpState {
            gw: gw.clone(),
            sessions: m.sessions.clone(),
        };
        let checked = tower::Layer::layer(
            &middleware::from_fn_with_state(state, crate::mcp_http::precheck),
            m.service,
        );
        protected = protected.route_service("/mcp", checked);
    }
    let protected = protected.route_layer(middleware::from_fn_with_state(gw.clone(), auth));
    Router::new()
        .route("/healthz", get(healthz))
        .merge(protected)
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(gw.clone(), outer))
        .with_state(gw)
}

/// Outermost layer: request id, panic → `INTERNAL`, non-JSON errors → envelopes, HTTP metrics.
async fn outer(State(gw): State<Gateway>, mut req: Request, next: Next) -> Response {
    let rid: Arc<str> = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .map(Arc::from)
        .unwrap_or_else(|| Arc::from(uuid::Uuid::new_v4().to_string()));
    let route: &'static str = match req.uri().path() {
        "/tools/invoke" => "/tools/invoke",
        "/mcp" => "/mcp",
        "/healthz" => "/healthz",
        "/metrics" => "/metrics",
        "/v1/chat/completions" => "/v1/chat/completions",
        _ => "other",
    };
    req.extensions_mut().insert(RequestId(rid.clone()));
    // Inner services that only see headers (rmcp's handlers) read the same id.
    if let Ok(v) = HeaderValue::from_str(&rid) {
        req.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
    let mut resp = match AssertUnwindSafe(next.run(req)).catch_unwind().await {
        Ok(r) => r,
        Err(payload) => {
            let what = panic_message(payload);
            tracing::error!(request_id = %rid, "handler panicked: {what}");
            error_response(
                &ErrorEnvelope::new(
                    ErrorCode::Internal,
                    "the gateway failed unexpectedly (a bug)",
                )
                .with_hint("this is a carapace bug; report it with the request id"),
                &rid,
            )
        }
    };
    let status = resp.status();
    if (status.is_client_error() || status.is_server_error()) && !is_json(&resp) {
        resp = envelope_for_bare(resp, &rid, route == "/mcp").await;
    }
    if let Ok(v) = HeaderValue::from_str(&rid) {
        resp.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
    let m = gw.metrics();
    m.http_responses
        .with_label_values(&[route, resp.status().as_str()])
        .inc();
    if let Some(n) = http_body::Body::size_hint(resp.body()).exact() {
        m.http_bytes_sent.inc_by(n);
    }
    resp
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Rewrites a response some inner layer produced without an envelope (axum rejections, rmcp's
/// transport errors, empty 405s) into one, keeping its status and its text as the message. On
/// `/mcp` the body is a JSON-RPC error object (what MCP clients read), carrying the envelope
/// in `error.data`.
async fn envelope_for_bare(resp: Response, rid: &str, mcp: bool) -> Response {
    let status = resp.status();
    let (parts, body) = resp.into_parts();
    let text = match body.collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).trim().to_string(),
        Err(_) => String::new(),
    };
    let code = match status.as_u16() {
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::PermissionDenied,
        404 => ErrorCode::NotFound,
        413 => ErrorCode::TooLarge,
        408 | 504 => ErrorCode::Timeout,
        409 => ErrorCode::AlreadyExists,
        429 => ErrorCode::ChannelRateLimited,
        s if (400..500).contains(&s) => ErrorCode::BadRequest,
        _ => ErrorCode::Internal,
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request failed")
            .to_string()
    } else {
        text.chars().take(500).collect()
    };
    let env = ErrorEnvelope::new(code, message).with_detail("httpStatus", status.as_u16());
    let mut r = if mcp {
        mcp_error_response(&env, rid)
    } else {
        error_response(&env, rid)
    };
    // Keep the original status (405 stays 405, rmcp's 406 stays 406) and its useful headers.
    *r.status_mut() = status;
    for name in [header::ALLOW, header::WWW_AUTHENTICATE] {
        if let Some(v) = parts.headers.get(&name) {
            r.headers_mut().insert(name, v.clone());
        }
    }
    r
}

/// A transport-level failure on `/mcp` as MCP clients read it: a JSON-RPC error object
/// (`id: null`, code -32000, message `CODE: message`, the envelope and request id in `data`)
/// with the status of the code.
pub fn mcp_error_response(env: &ErrorEnvelope, request_id: &str) -> Response {
    let env = env.clone().with_detail("requestId", request_id);
    let mut data = env.to_response_json();
    if let Value::Object(m) = &mut data {
        m.insert("requestId".into(), Value::String(request_id.to_string()));
    }
    let body = json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {
            "code": -32000,
            "message": format!("{}: {}", env.code, env.message),
            "data": data,
        },
    });
    let status =
        StatusCode::from_u16(env.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &body)
}

/// Bearer check for everything except `/healthz`.
async fn auth(State(gw): State<Gateway>, req: Request, next: Next) -> Response {
    let h = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match gw.check_auth(h) {
        Ok(()) => next.run(req).await,
        Err(env) => {
            let rid = request_id_of(&req);
            let mut r = match req.uri().path() {
                "/mcp" => mcp_error_response(&env, &rid),
                "/tools/invoke" => invoke_error_response(&env, &rid),
                _ => error_response(&env, &rid),
            };
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, www_authenticate(h.is_some()));
            r
        }
    }
}

async fn healthz() -> Response {
    json_response(StatusCode::OK, &json!({"ok": true, "status": "ok"}))
}

async fn metrics(State(gw): State<Gateway>) -> Response {
    gw.refresh_gauges();
    let mut text = gw.metrics().render();
    // Each receiving channel's connection state and counters (connects, reconnects, resumes,
    // messages), labelled by channel.
    if let Some(agent) = gw.agent() {
        text.push_str(&agent.inbound.metrics_text());
    }
    let mut r = Response::new(Body::from(text));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// Routes that depend on the config in force (the webhook path), else `NOT_FOUND`.
async fn fallback(State(gw): State<Gateway>, req: Request) -> Response {
    if crate::hooks::matches(&gw, &req) {
        let rid = request_id_of(&req);
        return crate::hooks::handle(gw, req, &rid).await;
    }
    not_found(req).await
}

async fn not_found(req: Request) -> Response {
    let rid = request_id_of(&req);
    error_response(
        &ErrorEnvelope::new(
            ErrorCode::NotFound,
            format!("no route {} {}", req.method(), req.uri().path()),
        )
        .with_hint("routes: POST /tools/invoke, /mcp, POST /v1/chat/completions (when enabled), POST <hooks.path>/… (when enabled), GET /healthz, GET /metrics"),
        &rid,
    )
}

fn header_string(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The success `result` of `/tools/invoke` in OpenClaw's shape: the result as text in
/// `content` (what OpenClaw's tools return), carapace's structured result in `details`.
pub fn openclaw_result(result: &Value) -> Value {
    let text = serde_json::to_string_pretty(result).unwrap_or_default();
    json!({"content": [{"type": "text", "text": text}], "details": result})
}

/// `POST /tools/invoke` (OpenClaw-compatible): `{ok: true, result: {content, details}}` or the
/// envelope.
async fn invoke(State(gw): State<Gateway>, req: Request) -> Response {
    let rid = request_id_of(&req);
    let header_session = header_string(&req, SESSION_HEADER);
    let header_channel = header_string(&req, OPENCLAW_CHANNEL_HEADER);
    let header_key = header_string(&req, IDEMPOTENCY_HEADER);
    let limit = gw.limits().max_body_bytes;
    let too_large = || too_large(limit);
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit
    {
        return invoke_error_response(&too_large(), &rid);
    }
    let body = match read_body(req.into_body(), limit).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return invoke_error_response(&too_large(), &rid),
        Err(BodyError::Other(r)) => return r.into_response(&rid),
    };
    let parsed = match crate::call::parse_invoke_body(&body) {
        Ok(c) => c,
        Err(env) => return invoke_error_response(&env, &rid),
    };
    let mut call = parsed.call;
    // The body wins; the headers fill in what it leaves out.
    if call.session_key.is_none() {
        call.session_key = header_session;
    }
    let idempotency_key = match parsed.idempotency_key {
        Some(k) => Some(k),
        None => match crate::call::idempotency_key(header_key) {
            Ok(k) => k,
            Err(env) => return invoke_error_response(&env, &rid),
        },
    };
    let creq = CallRequest {
        request_id: rid.to_string(),
        transport: Transport::Http,
        channel_hint: header_channel,
        idempotency_key,
    };
    match gw.call(call, &creq).await {
        Ok(result) => json_response(
            StatusCode::OK,
            &json!({"ok": true, "result": openclaw_result(&result)}),
        ),
        Err(env) => invoke_error_response(&env, &rid),
    }
}

/// `TOO_LARGE` for a body over `limit` bytes.
pub(crate) fn too_large(limit: u64) -> ErrorEnvelope {
    ErrorEnvelope::new(
        ErrorCode::TooLarge,
        format!("the request body is larger than the gateway's limit of {limit} bytes"),
    )
    .with_hint("raise gateway.maxBodyBytes, or save large media with media_save from a path or URL")
    .with_detail("limit", limit)
}

/// What a route of the agent answers when the gateway runs none.
pub(crate) fn no_agent() -> ErrorEnvelope {
    ErrorEnvelope::new(
        ErrorCode::NotFound,
        "this gateway runs no agent (its tool backend has no tool context)",
    )
}

/// Why a request body could not be read.
pub(crate) enum BodyError {
    /// Over the limit.
    TooLarge,
    /// Timed out, or the connection broke.
    Other(BodyFailure),
}

/// A body that timed out or broke, as the response to send.
pub(crate) struct BodyFailure {
    env: ErrorEnvelope,
    close: bool,
}

impl BodyFailure {
    /// The envelope response; a timed-out body also closes the connection (its remaining
    /// bytes, if any ever come, are not a request).
    pub(crate) fn into_response(self, rid: &str) -> Response {
        let mut r = error_response(&self.env, rid);
        if self.close {
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        r
    }
}

/// Reads a whole request body of at most `limit` bytes, under the body deadline.
pub(crate) async fn read_body(body: Body, limit: u64) -> Result<axum::body::Bytes, BodyError> {
    let cap = usize::try_from(limit).unwrap_or(usize::MAX);
    match axum::body::to_bytes(body, cap).await {
        Ok(b) => Ok(b),
        Err(e) => {
            let is_limit = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if is_limit {
                return Err(BodyError::TooLarge);
            }
            if let Some(t) = crate::deadline_body::find_body_timeout(&e) {
                return Err(BodyError::Other(BodyFailure {
                    env: ErrorEnvelope::new(ErrorCode::RequestTimeout, t.to_string())
                        .with_hint(
                            "send the whole body at once, or raise gateway.bodyTimeoutSeconds",
                        )
                        .with_detail("limitSeconds", t.0.as_secs()),
                    close: true,
                }));
            }
            Err(BodyError::Other(BodyFailure {
                env: ErrorEnvelope::new(
                    ErrorCode::BadRequest,
                    format!("cannot read the request body: {e}"),
                ),
                close: true,
            }))
        }
    }
}

/// A bound, not yet serving, gateway listener.
#[derive(Debug)]
pub struct Bound {
    listener: tokio::net::TcpListener,
    /// The address actually bound (port 0 resolved).
    pub addr: SocketAddr,
}

/// Binds `addr`. An address another process holds is `ADDRESS_IN_USE` (an environment
/// failure) naming the address and how to find its holder; a privileged port is
/// `PERMISSION_DENIED`; anything else (an address not on this machine) is `BAD_REQUEST`.
pub async fn bind(addr: SocketAddr) -> Result<Bound, ErrorEnvelope> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| bind_error(addr, &e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| ErrorEnvelope::new(ErrorCode::Internal, format!("local_addr: {e}")))?;
    Ok(Bound { listener, addr })
}

fn bind_error(addr: SocketAddr, e: &std::io::Error) -> ErrorEnvelope {
    let (code, hint) = match e.kind() {
        std::io::ErrorKind::AddrInUse => (
            ErrorCode::AddressInUse,
            format!(
                "another process listens on {addr} (another carapace? `ss -ltnp 'sport = :{}'` shows which); stop it, or pick another address with --bind or gateway.bind (port 0 picks a free one)",
                addr.port()
            ),
        ),
        std::io::ErrorKind::PermissionDenied => (
            ErrorCode::PermissionDenied,
            "ports below 1024 need privileges; pick a port above 1023 with --bind or gateway.bind"
                .to_string(),
        ),
        _ => (
            ErrorCode::BadRequest,
            "pick an address of this machine with --bind or gateway.bind (127.0.0.1:18789 by default)"
                .to_string(),
        ),
    };
    ErrorEnvelope::new(code, format!("cannot listen on {addr}: {e}"))
        .with_hint(hint)
        .with_detail("bind", addr.to_string())
}

/// Serves until `shutdown` resolves, then stops accepting and lets in-flight requests finish.
/// Connections are HTTP/1.1 under the deadlines and the cap of [`crate::listener`].
pub async fn serve(
    bound: Bound,
    gw: Gateway,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ErrorEnvelope> {
    crate::listener::serve(bound.listener, gw, app, shutdown).await;
    Ok(())
}
