//! Webhook in: `POST {hooks.path}/{*rest}` hands the request to the inbound service
//! ([`carapace_inbound::InboundService::handle_webhook`]), which checks `hooks.token`, parses
//! OpenClaw's hook body and runs or queues the turn. Served only while `hooks.enabled` is
//! true in the config in force; the gateway's bearer token is not asked for here (the hook
//! has its own). See docs/inbound.md.

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use carapace_inbound::WebhookRequest;

use crate::gateway::Gateway;
use crate::server::{BodyError, error_response, json_response, read_body, too_large};

/// Whether `req` is a webhook call the config in force serves.
pub(crate) fn matches(gw: &Gateway, req: &Request) -> bool {
    let Some(agent) = gw.agent() else {
        return false;
    };
    let hooks = &agent.config.file.hooks;
    if !hooks.is_enabled() || req.method() != Method::POST {
        return false;
    }
    let base = hooks.base_path();
    req.uri()
        .path()
        .strip_prefix(base.as_str())
        .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1)
}

/// Serves one webhook call.
pub(crate) async fn handle(gw: Gateway, req: Request, rid: &str) -> Response {
    let Some(agent) = gw.agent() else {
        return error_response(&crate::server::no_agent(), rid);
    };
    let limit = gw.limits().max_body_bytes;
    let (parts, body) = req.into_parts();
    let body = match read_body(body, limit).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return error_response(&too_large(limit), rid),
        Err(BodyError::Other(r)) => return r.into_response(rid),
    };
    let resp = agent
        .inbound
        .handle_webhook(WebhookRequest {
            path: parts.uri.path(),
            query: parts.uri.query(),
            headers: &parts.headers,
            body: &body,
        })
        .await;
    let status = StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &resp.body)
}
