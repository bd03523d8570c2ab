//! The web control page: what a person who ran `carapace up` opens in a browser.
//!
//! Served by the gateway on its own address, built into the binary (the assets under
//! `crates/carapace-gateway/ui/` are plain HTML, CSS and JavaScript embedded with
//! `include_str!`; no build step). Views: chat with the agent on the `web` channel, sessions,
//! sandboxes, channels and pairing, doctor, audit. docs/web.md describes each and the security
//! model:
//!
//! - **Login** posts the gateway token from a form; the answer is an HttpOnly, SameSite=Strict
//!   session cookie (Secure when served over TLS). The token never appears in a URL, a log
//!   line or the browser history ([`login`]).
//! - **Every state change** must come from the page itself (`Origin` equal to the page's,
//!   `Sec-Fetch-Site: same-origin` when the browser sends it) and carry the login's CSRF token
//!   in `x-csrf-token` ([`guard`]).
//! - **Every response** carries a strict Content-Security-Policy (`script-src 'self'`, no
//!   inline script, no eval), `frame-ancestors 'none'` and `X-Frame-Options: DENY`; the page
//!   renders what the model or a peer wrote with `textContent` only.
//!
//! The chat view talks to the agent through [`ChatBackend`], so the page does not depend on how
//! the gateway builds its runtime; [`RuntimeChat`] is the implementation over
//! `carapace_agent::AgentRuntime`.

mod assets;
mod audit_view;
mod backend;
mod chat;
mod doctor;
mod gateway_chat;
mod guard;
mod login;
mod runtime_chat;
mod sandboxes;
mod state;
mod upload;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use carapace_policy::Config;

use crate::gateway::Gateway;
use crate::reload::ConfigLoader;

pub use backend::{ChatBackend, ChatEvent, ChatTurn, ToolOutcome};
pub use gateway_chat::GatewayChat;
pub use runtime_chat::RuntimeChat;
pub use state::UiState;

/// The config setting that names the chat model (shown when none is configured).
pub const MODEL_SETTING: &str = "agents.defaults.model.primary";

/// What the page needs besides the gateway.
pub struct UiOptions {
    /// The config the gateway started with.
    pub config: Arc<Config>,
    /// Re-reads the config file, so the views show what is in force after a reload (the start
    /// config is used when it fails).
    pub loader: Option<ConfigLoader>,
    /// The agent behind the chat view; `None`: the page says no model is configured.
    pub chat: Option<Arc<dyn ChatBackend>>,
    /// Mark the login cookie `Secure` (set when the page is served over TLS).
    pub secure_cookies: bool,
}

impl UiOptions {
    /// Options over the start config, without hot reload, TLS or chat.
    pub fn new(config: Arc<Config>, chat: Option<Arc<dyn ChatBackend>>) -> UiOptions {
        UiOptions {
            config,
            loader: None,
            chat,
            secure_cookies: false,
        }
    }
}

impl std::fmt::Debug for UiOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UiOptions")
            .field("chat", &self.chat.is_some())
            .field("secure_cookies", &self.secure_cookies)
            .finish_non_exhaustive()
    }
}

/// The page's routes: `GET /` (to the page), `/ui/…` (page, assets, login) and `/ui/api/…`
/// (the JSON the views read, the chat stream). Merge it into the gateway's router.
pub fn router(gw: Gateway, opts: UiOptions) -> Router {
    let st = UiState::new(gw, opts);
    let api = Router::new()
        .route("/ui/api/me", get(views::me))
        .route("/ui/api/chat", post(chat::send))
        .route("/ui/api/upload", post(upload::upload))
        .route("/ui/api/media/{id}", get(chat::media))
        .route("/ui/api/sessions", get(views::sessions))
        .route("/ui/api/sessions/show", get(views::session_show))
        .route("/ui/api/sessions/reset", post(views::session_reset))
        .route("/ui/api/sandboxes", get(sandboxes::list))
        .route("/ui/api/sandboxes/explain", get(sandboxes::explain))
        .route("/ui/api/sandboxes/recreate", post(sandboxes::recreate))
        .route("/ui/api/channels", get(views::channels))
        .route("/ui/api/pairing/approve", post(views::pairing_approve))
        .route("/ui/api/pairing/reject", post(views::pairing_reject))
        .route("/ui/api/doctor", get(doctor::show))
        .route("/ui/api/doctor/fix", post(doctor::fix))
        .route("/ui/api/audit", get(audit_view::show))
        .route("/ui/logout", post(login::logout))
        .route_layer(middleware::from_fn_with_state(
            st.clone(),
            guard::require_login,
        ));
    Router::new()
        .route("/", get(assets::root))
        .route("/ui", get(assets::root))
        .route("/ui/", get(assets::page))
        .route("/ui/login", get(assets::login_page).post(login::login))
        .route("/ui/assets/{name}", get(assets::asset))
        .merge(api)
        .layer(middleware::from_fn_with_state(
            st.clone(),
            guard::headers_and_origin,
        ))
        .with_state(st)
}
