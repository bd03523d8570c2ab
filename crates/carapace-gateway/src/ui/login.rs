//! Login: the gateway token posted from a form becomes a session cookie.
//!
//! The token travels once, in a POST body; the answer is a redirect that sets an HttpOnly,
//! SameSite=Strict cookie holding a random login id (Secure over TLS). The token is never put
//! in a URL, so it is in no access log, no `Referer` and no history entry. A login lives 12
//! hours, and ends when the gateway's token changes (a reload with a new token logs everyone
//! out). Each login has its own CSRF token, which the page reads from `/ui/api/me` and sends
//! with every state change.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::state::{UiState, random_hex};

/// The cookie's name.
pub const COOKIE: &str = "carapace_ui";
/// How long a login lives.
pub const LOGIN_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most logins held at once (the oldest is dropped).
const MAX_LOGINS: usize = 64;

#[derive(Debug, Clone)]
struct Login {
    csrf: String,
    token_fp: [u8; 32],
    created: Instant,
}

/// A valid login, as the handlers see it.
#[derive(Debug, Clone)]
pub struct Session {
    /// The login id (the cookie's value).
    pub id: String,
    /// Its CSRF token.
    pub csrf: String,
}

/// Logins of this gateway process (in memory: a restart logs everyone out).
#[derive(Debug, Default)]
pub struct Logins {
    map: Mutex<HashMap<String, Login>>,
}

fn fingerprint(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

impl Logins {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Login>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn create(&self, token_secret: &str) -> Result<Session, carapace_policy::ErrorEnvelope> {
        let id = random_hex(32)?;
        let csrf = random_hex(32)?;
        let mut m = self.lock();
        m.retain(|_, l| l.created.elapsed() < LOGIN_TTL);
        while m.len() >= MAX_LOGINS {
            let oldest = m
                .iter()
                .min_by_key(|(_, l)| l.created)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => m.remove(&k),
                None => break,
            };
        }
        m.insert(
            id.clone(),
            Login {
                csrf: csrf.clone(),
                token_fp: fingerprint(token_secret),
                created: Instant::now(),
            },
        );
        Ok(Session { id, csrf })
    }

    /// The login named by the request's cookie, if it is live and was made with the token in
    /// force now.
    pub fn check(&self, headers: &HeaderMap, token_secret: Option<&str>) -> Option<Session> {
        let id = cookie_value(headers, COOKIE)?;
        let token_secret = token_secret?;
        let mut m = self.lock();
        let l = m.get(&id)?;
        let same_token = bool::from(l.token_fp.ct_eq(&fingerprint(token_secret)));
        if !same_token || l.created.elapsed() >= LOGIN_TTL {
            m.remove(&id);
            return None;
        }
        Some(Session {
            id,
            csrf: l.csrf.clone(),
        })
    }

    fn remove(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// The login form.
#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

impl std::fmt::Debug for LoginForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginForm(***)")
    }
}

fn redirect(to: &'static str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static(to));
    r
}

fn set_cookie(st: &UiState, value: &str, max_age: u64) -> Option<HeaderValue> {
    let secure = if st.secure_cookies() { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .ok()
}

/// `POST /ui/login`: a right token sets the cookie and goes to the page; a wrong one goes back
/// to the form, which says so.
pub async fn login(State(st): State<UiState>, Form(form): Form<LoginForm>) -> Response {
    let Some(token) = st.gateway().token() else {
        return redirect("/ui/login?failed=1");
    };
    if !token.matches(form.token.trim()) {
        tracing::warn!("web page: login with a wrong token refused");
        return redirect("/ui/login?failed=1");
    }
    let session = match st.logins().create(token.expose()) {
        Ok(s) => s,
        Err(e) => return super::guard::refuse(&e),
    };
    let mut r = redirect("/ui/");
    if let Some(c) = set_cookie(&st, &session.id, LOGIN_TTL.as_secs()) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

/// `POST /ui/logout`: ends the login and clears the cookie.
pub async fn logout(
    State(st): State<UiState>,
    axum::Extension(session): axum::Extension<Session>,
) -> Response {
    st.logins().remove(&session.id);
    let mut r = axum::Json(serde_json::json!({"ok": true})).into_response();
    if let Some(c) = set_cookie(&st, "", 0) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}
