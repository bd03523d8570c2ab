//! The layer in front of rmcp's `/mcp` service: a POST body is read under the gateway's body
//! limit and deadline and passes [`crate::jsonrpc::check`]; a body that fails gets its
//! JSON-RPC error (`-32700`, `-32600`, `-32602`) as an `application/json` 400 instead of
//! rmcp's answer (a 415 for bad JSON, `-32601` for a `tools/call` with bad params).
//!
//! A `DELETE` (the client ends its session) is answered as the MCP spec says: an unknown or
//! already ended session is 404 (a JSON-RPC error), a known one is closed and answered 200
//! (rmcp says 202, which clients log as a failed termination).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use carapace_policy::{ErrorCode, ErrorEnvelope};

use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::SessionManager as _;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;

use crate::gateway::Gateway;
use crate::server::{BodyError, RequestId, error_response, mcp_error_response, read_body};

/// What the layer needs: the gateway (limits) and the endpoint's sessions.
#[derive(Clone)]
pub(crate) struct McpState {
    pub(crate) gw: Gateway,
    pub(crate) sessions: Arc<LocalSessionManager>,
}

/// The middleware (mounted on `/mcp` only).
pub(crate) async fn precheck(State(st): State<McpState>, req: Request, next: Next) -> Response {
    if req.method() == Method::DELETE {
        return delete(&st, req, next).await;
    }
    let gw = st.gw;
    if req.method() != Method::POST {
        return next.run(req).await;
    }
    let rid = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.to_string())
        .unwrap_or_else(|| "-".into());
    let limit = gw.limits().max_body_bytes;
    let (parts, body) = req.into_parts();
    let bytes = match read_body(body, limit).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            return error_response(
                &ErrorEnvelope::new(
                    ErrorCode::TooLarge,
                    format!("the request body is larger than the gateway's limit of {limit} bytes"),
                )
                .with_hint("raise gateway.maxBodyBytes")
                .with_detail("limit", limit),
                &rid,
            );
        }
        Err(BodyError::Other(f)) => return f.into_response(&rid),
    };
    if let Err(r) = crate::jsonrpc::check(&bytes) {
        let body = serde_json::to_vec(&r.to_json()).unwrap_or_default();
        let mut resp = Response::new(Body::from(body));
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return resp;
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// `DELETE /mcp`: 404 for a session that does not exist (any more), 200 once closed.
async fn delete(st: &McpState, req: Request, next: Next) -> Response {
    let rid = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.to_string())
        .unwrap_or_else(|| "-".into());
    let id = req
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(id) = id {
        let known = st
            .sessions
            .has_session(&Arc::<str>::from(id.as_str()))
            .await
            .unwrap_or(false);
        if !known {
            return mcp_error_response(
                &ErrorEnvelope::new(
                    ErrorCode::NotFound,
                    format!("there is no MCP session {id:?} (it ended, or the gateway restarted)"),
                )
                .with_hint("start a new session with initialize"),
                &rid,
            );
        }
    }
    let mut resp = next.run(req).await;
    if resp.status() == StatusCode::ACCEPTED {
        *resp.status_mut() = StatusCode::OK;
    }
    resp
}
