//! The doctor view: files in the media dir, the agent workspaces, the sandbox directories and
//! `extraRoots` that an outbound send would refuse, with the reason, and the fix (add the
//! missing read bits) as a button — for one file or for all that can be fixed safely.
//!
//! The scan is `carapace_media::doctor::scan`, the one `carapace doctor` runs: the same walk,
//! the same bounds, the outbound reader's own codes and messages, the same files never widened
//! (secrets, hardlinks, another user's). A place it did not cover is listed and `complete` is
//! false, so a partial scan never reads as a clean one.

use std::path::PathBuf;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use carapace_media::doctor::{Fix, Report, scan};
use carapace_policy::ErrorCode;
use serde::{Deserialize, Serialize};

use super::state::UiState;

/// What the page gets: the report, and whether it covered everything.
#[derive(Serialize)]
struct View {
    ok: bool,
    complete: bool,
    #[serde(flatten)]
    report: Report,
}

async fn run(st: UiState, fix: Fix) -> Response {
    let config = st.config();
    let uid = rustix::process::geteuid().as_raw();
    match tokio::task::spawn_blocking(move || scan(&config, &fix, uid)).await {
        Ok(report) => Json(View {
            ok: true,
            complete: report.complete(),
            report,
        })
        .into_response(),
        Err(e) => super::guard::refuse(&carapace_policy::ErrorEnvelope::new(
            ErrorCode::Internal,
            format!("the scan failed unexpectedly (a bug): {e}"),
        )),
    }
}

/// `GET /ui/api/doctor`: the findings.
pub async fn show(State(st): State<UiState>) -> Response {
    run(st, Fix::None).await
}

/// A `{path?}` body: one file, or every file that can be fixed safely.
#[derive(Debug, Deserialize)]
pub struct FixBody {
    path: Option<PathBuf>,
}

/// `POST /ui/api/doctor/fix {path?}`: adds the missing read bits, then reports again.
pub async fn fix(State(st): State<UiState>, Json(b): Json<FixBody>) -> Response {
    let fix = match b.path {
        Some(p) => Fix::One(p),
        None => Fix::All,
    };
    run(st, fix).await
}
