//! The page's files, embedded in the binary: `GET /` and `GET /ui` lead to the page, which
//! sends a browser without a login to the login form.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use carapace_policy::{ErrorCode, ErrorEnvelope};

use super::state::UiState;

const APP_HTML: &str = include_str!("../../ui/index.html");
const LOGIN_HTML: &str = include_str!("../../ui/login.html");
const APP_JS: &str = include_str!("../../ui/app.js");
const LOGIN_JS: &str = include_str!("../../ui/login.js");
const STYLE_CSS: &str = include_str!("../../ui/style.css");
const ICON_SVG: &str = include_str!("../../ui/icon.svg");

fn file(body: &'static str, ct: &'static str) -> Response {
    let mut r = body.into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

fn see_other(to: &'static str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    r
}

/// `GET /`, `GET /ui`: to the page.
pub async fn root() -> Response {
    see_other("/ui/")
}

/// `GET /ui/`: the page, or the login form without a login.
pub async fn page(State(st): State<UiState>, headers: axum::http::HeaderMap) -> Response {
    let token = st.gateway().token();
    if st
        .logins()
        .check(&headers, token.as_ref().map(|t| t.expose()))
        .is_none()
    {
        return see_other("/ui/login");
    }
    file(APP_HTML, "text/html; charset=utf-8")
}

/// `GET /ui/login`: the login form.
pub async fn login_page() -> Response {
    file(LOGIN_HTML, "text/html; charset=utf-8")
}

/// `GET /ui/assets/{name}`: scripts, style, icon.
pub async fn asset(Path(name): Path<String>) -> Response {
    match name.as_str() {
        "app.js" => file(APP_JS, "text/javascript; charset=utf-8"),
        "login.js" => file(LOGIN_JS, "text/javascript; charset=utf-8"),
        "style.css" => file(STYLE_CSS, "text/css; charset=utf-8"),
        "icon.svg" => file(ICON_SVG, "image/svg+xml"),
        _ => super::guard::refuse(&ErrorEnvelope::new(
            ErrorCode::NotFound,
            format!("no asset {name}"),
        )),
    }
}
