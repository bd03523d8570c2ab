//! Request interception, the browser's security boundary: every request a page makes (the
//! page itself, each redirect hop, each subresource) is paused over DevTools `Fetch` and let go
//! only when the [`UrlPolicy`] allows it. Workspace files are answered from the fd that passed
//! the checks; Chromium never opens a path itself. Connections `Fetch` does not see go through
//! the SOCKS5 proxy (`proxy.rs`), which applies the same address rule.

use std::sync::{Arc, Mutex as StdMutex};

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::fetch::{
    ContinueRequestParams, EnableParams as FetchEnableParams, EventRequestPaused,
    FailRequestParams, FulfillRequestParams, HeaderEntry, RequestPattern, RequestStage,
};
use chromiumoxide::cdp::browser_protocol::network::{ErrorReason, ResourceType};
use chromiumoxide::error::CdpError;
use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::error::BrowserError;
use crate::url_policy::{Decision, Origin, UrlPolicy};

/// A refusal the request interceptor recorded for the main document.
pub(crate) type Refusal = Arc<StdMutex<Option<BrowserError>>>;

/// Pauses every request of the page and lets it go only when the URL policy allows it: the
/// page, each redirect hop and each subresource. Workspace files are served from the fd that
/// passed the checks (`Fetch.fulfillRequest`): Chromium never opens a path itself. A refused main document is recorded in
/// `refusal` so the caller gets the typed reason instead of `net::ERR_BLOCKED_BY_CLIENT`.
pub(crate) async fn intercept(
    page: &Page,
    policy: UrlPolicy,
    refusal: Refusal,
) -> Result<JoinHandle<()>, CdpError> {
    let mut events = page.event_listener::<EventRequestPaused>().await?;
    page.execute(FetchEnableParams {
        patterns: Some(vec![RequestPattern {
            url_pattern: Some("*".into()),
            resource_type: None,
            request_stage: Some(RequestStage::Request),
        }]),
        handle_auth_requests: None,
    })
    .await?;
    let page = page.clone();
    // In Chromium a page's main frame id is its target id.
    let main_frame = page.target_id().inner().clone();
    Ok(tokio::spawn(async move {
        while let Some(ev) = events.next().await {
            let page = page.clone();
            let main_frame = main_frame.clone();
            let policy = policy.clone();
            let refusal = refusal.clone();
            tokio::spawn(async move {
                // The main frame's document (the URL, its redirects, script navigations of
                // the top page) is the caller's; frames and everything else are the page's.
                let main_document = ev.resource_type == ResourceType::Document
                    && ev.frame_id.inner() == main_frame.as_str();
                let origin = if main_document {
                    Origin::Caller
                } else {
                    Origin::Page
                };
                match policy.decide(&ev.request.url, origin).await {
                    Ok(Decision::Continue) => {
                        let _ = page
                            .execute(ContinueRequestParams::new(ev.request_id.clone()))
                            .await;
                    }
                    Ok(Decision::Fulfil { body, mime }) => {
                        use base64::Engine as _;
                        let mut f = FulfillRequestParams::new(ev.request_id.clone(), 200);
                        f.response_headers = Some(vec![
                            HeaderEntry::new("Content-Type", mime),
                            HeaderEntry::new("Content-Length", body.len().to_string()),
                        ]);
                        f.body = Some(
                            base64::engine::general_purpose::STANDARD
                                .encode(&body)
                                .into(),
                        );
                        let _ = page.execute(f).await;
                    }
                    Err(e) => {
                        tracing::info!(url = %ev.request.url, error = %e, "browser request refused");
                        if main_document
                            && let Ok(mut r) = refusal.lock()
                            && r.is_none()
                        {
                            *r = Some(e);
                        }
                        let _ = page
                            .execute(FailRequestParams::new(
                                ev.request_id.clone(),
                                ErrorReason::BlockedByClient,
                            ))
                            .await;
                    }
                }
            });
        }
    }))
}
