//! The page's guards: security headers on every response, same-origin on every state change,
//! a live login on every API call and the login's CSRF token on every API state change.
//!
//! Same-origin is decided from what the browser says about the request, never from a cookie:
//! a request that is not `GET`/`HEAD` must carry `Origin` equal to the page's own origin
//! (`http(s)://<Host>`), and when the browser sends `Sec-Fetch-Site` it must be
//! `same-origin`. A request with neither header is refused (every current browser sends
//! `Origin` on a POST; a script outside a browser has no business with the page's API). API
//! reads (`GET /ui/api/…`) from another site are refused too, so another page cannot embed a
//! file the agent sent.

use std::panic::AssertUnwindSafe;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use carapace_policy::{ErrorCode, ErrorEnvelope};
use futures_util::FutureExt as _;
use subtle::ConstantTimeEq;

use super::state::UiState;

/// The header the page sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The Content-Security-Policy of every response: scripts and styles only from the page's own
/// files (no inline script, no eval), images from itself, fetches only to itself,
/// forms only to itself, never framed.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// An envelope as the page's JSON error (status of the one table).
pub fn refuse(env: &ErrorEnvelope) -> Response {
    let rid = uuid::Uuid::new_v4().to_string();
    crate::server::error_response(env, &rid)
}

fn header_str<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Checks that a state-changing request comes from the page's own origin.
pub fn check_same_origin(h: &HeaderMap) -> Result<(), ErrorEnvelope> {
    let denied = |why: String| {
        ErrorEnvelope::new(ErrorCode::PermissionDenied, why)
            .with_hint("the control page only accepts changes made from the page itself; open it at the gateway's address")
    };
    let site = header_str(h, "sec-fetch-site");
    if let Some(s) = site
        && s != "same-origin"
    {
        return Err(
            denied(format!("a {s} request may not change anything here"))
                .with_detail("secFetchSite", s),
        );
    }
    let host = header_str(h, header::HOST.as_str()).unwrap_or("");
    match header_str(h, header::ORIGIN.as_str()) {
        Some(o) => {
            let ok = !host.is_empty()
                && (o == format!("http://{host}") || o == format!("https://{host}"));
            if ok {
                Ok(())
            } else {
                Err(
                    denied(format!("the request comes from another origin ({o})"))
                        .with_detail("origin", o),
                )
            }
        }
        None if site.is_some() => Ok(()),
        None => Err(denied(
            "the request says nothing about where it comes from (no Origin header)".into(),
        )),
    }
}

fn is_json(resp: &Response) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// An error some extractor answered in plain text (bad JSON, a wrong content type) as the
/// envelope, keeping its status and its text as the message.
async fn envelope_for_bare(resp: Response) -> Response {
    let status = resp.status();
    let text = match http_body_util::BodyExt::collect(resp.into_body()).await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).trim().to_string(),
        Err(_) => String::new(),
    };
    let code = match status.as_u16() {
        401 => ErrorCode::Unauthorized,
        403 => ErrorCode::PermissionDenied,
        404 => ErrorCode::NotFound,
        413 => ErrorCode::TooLarge,
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
    let mut r =
        refuse(&ErrorEnvelope::new(code, message).with_detail("httpStatus", status.as_u16()));
    *r.status_mut() = status;
    r
}

fn set(h: &mut HeaderMap, name: &'static str, value: &'static str) {
    h.insert(name, HeaderValue::from_static(value));
}

/// Outer layer of the page: same-origin for state changes and cross-site API reads, then the
/// security headers on whatever comes back.
pub async fn headers_and_origin(req: Request, next: Next) -> Response {
    let safe = matches!(*req.method(), Method::GET | Method::HEAD);
    let api = req.uri().path().starts_with("/ui/api/");
    let refused = if !safe {
        check_same_origin(req.headers()).err()
    } else if api {
        match header_str(req.headers(), "sec-fetch-site") {
            Some(s @ ("cross-site" | "same-site")) => Some(
                ErrorEnvelope::new(
                    ErrorCode::PermissionDenied,
                    format!("a {s} page may not read the control page's data"),
                )
                .with_detail("secFetchSite", s),
            ),
            _ => None,
        }
    } else {
        None
    };
    let mut resp = match refused {
        Some(env) => {
            tracing::warn!(path = %req.uri().path(), "web page: cross-origin request refused");
            refuse(&env)
        }
        None => match AssertUnwindSafe(next.run(req)).catch_unwind().await {
            Ok(r) => r,
            Err(payload) => {
                let what = crate::gateway::panic_message(payload);
                tracing::error!("web page handler panicked: {what}");
                refuse(
                    &ErrorEnvelope::new(
                        ErrorCode::Internal,
                        "the page failed unexpectedly (a bug)",
                    )
                    .with_hint("this is a carapace bug; report it with the request id"),
                )
            }
        },
    };
    if (resp.status().is_client_error() || resp.status().is_server_error()) && !is_json(&resp) {
        resp = envelope_for_bare(resp).await;
    }
    let h = resp.headers_mut();
    set(h, "content-security-policy", CSP);
    set(h, "x-frame-options", "DENY");
    set(h, "x-content-type-options", "nosniff");
    // `same-origin`, not `no-referrer`: with `no-referrer` a browser sends `Origin: null` on
    // the login form's POST, which the origin check must refuse.
    set(h, "referrer-policy", "same-origin");
    set(h, "cross-origin-opener-policy", "same-origin");
    set(h, "cross-origin-resource-policy", "same-origin");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, "cache-control", "no-store");
    }
    resp
}

/// API layer: a live login, and its CSRF token on every state change. The login is handed to
/// the handler as an extension.
pub async fn require_login(State(st): State<UiState>, mut req: Request, next: Next) -> Response {
    let token = st.gateway().token();
    let Some(session) = st
        .logins()
        .check(req.headers(), token.as_ref().map(|t| t.expose()))
    else {
        return refuse(
            &ErrorEnvelope::new(ErrorCode::Unauthorized, "not logged in to the control page")
                .with_hint("open /ui/login and enter the gateway token"),
        );
    };
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let sent = header_str(req.headers(), CSRF_HEADER).unwrap_or("");
        let ok = !sent.is_empty() && bool::from(sent.as_bytes().ct_eq(session.csrf.as_bytes()));
        if !ok {
            return refuse(
                &ErrorEnvelope::new(
                    ErrorCode::PermissionDenied,
                    "the request lacks this login's CSRF token",
                )
                .with_hint("reload the page; changes are only accepted from the page itself"),
            );
        }
    }
    req.extensions_mut().insert(session);
    next.run(req).await
}
