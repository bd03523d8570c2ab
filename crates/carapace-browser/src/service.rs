//! [`BrowserService`]: one Chromium process shared by every call, a fresh browser context and
//! page per call, a cap on concurrent pages, a per-call timeout, and a relaunch when the
//! process died.

use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::browser::{
    BrowserContextId, EventDownloadWillBegin, SetDownloadBehaviorBehavior,
    SetDownloadBehaviorParams,
};
use chromiumoxide::cdp::browser_protocol::page::NavigateParams;
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams,
};
use chromiumoxide::error::CdpError;
use chromiumoxide::handler::HandlerConfig;
use futures::StreamExt;
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::capture::{pdf, screenshot, set_viewport};
use crate::error::BrowserError;
use crate::intercept::{Refusal, intercept};
use crate::process::{BrowserEnv, ChromiumProcess};
use crate::proxy::Socks5Proxy;
use crate::request::{Action, Capture, CaptureRequest};
use crate::url_policy::{Origin, UrlPolicy, WorkspaceScope};

/// Default `browser.maxPages`.
pub const DEFAULT_MAX_PAGES: usize = 4;
/// Default `browser.timeoutSeconds`.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 30;
/// How long Chromium gets to print its DevTools address.
pub const LAUNCH_TIMEOUT: Duration = Duration::from_secs(20);
/// How long closing a page and its context may take after the call.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(5);

/// What the service needs from the `browser` config section.
#[derive(Debug, Clone, PartialEq)]
pub struct BrowserSettings {
    /// `browser.executablePath`; `None` searches PATH.
    pub executable_path: Option<PathBuf>,
    /// `browser.allowPrivateNetwork`.
    pub allow_private_network: bool,
    /// `browser.maxPages` (at least 1).
    pub max_pages: usize,
    /// `browser.timeoutSeconds`, for the whole call (waiting for a page slot included).
    pub timeout: Duration,
}

impl Default for BrowserSettings {
    fn default() -> Self {
        BrowserSettings {
            executable_path: None,
            allow_private_network: false,
            max_pages: DEFAULT_MAX_PAGES,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECONDS),
        }
    }
}

impl BrowserSettings {
    /// From the `browser` section.
    pub fn from_config(config: &carapace_policy::Config) -> BrowserSettings {
        let b = &config.file.browser;
        BrowserSettings {
            executable_path: b.executable_path.as_ref().map(PathBuf::from),
            allow_private_network: b.allow_private_network.unwrap_or(false),
            max_pages: b.max_pages.map_or(DEFAULT_MAX_PAGES, |n| {
                usize::try_from(n.max(1)).unwrap_or(1)
            }),
            timeout: Duration::from_secs(
                b.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS).max(1),
            ),
        }
    }
}

/// One running Chromium and its DevTools connection.
struct Instance {
    browser: chromiumoxide::Browser,
    handler: JoinHandle<()>,
    /// `None` once stopped.
    process: StdMutex<Option<ChromiumProcess>>,
    // Every connection of this Chromium goes through it; stops with the instance.
    _proxy: Socks5Proxy,
}

impl Instance {
    fn alive(&self) -> bool {
        if self.handler.is_finished() {
            return false;
        }
        match self.process.lock() {
            Ok(mut p) => p.as_mut().is_some_and(|p| !p.has_exited()),
            Err(_) => false,
        }
    }

    fn pid(&self) -> Option<u32> {
        self.process
            .lock()
            .ok()
            .and_then(|p| p.as_ref().map(ChromiumProcess::pid))
    }

    /// Stops the DevTools connection and Chromium, and removes its profile.
    async fn stop(&self) {
        self.handler.abort();
        let process = self.process.lock().ok().and_then(|mut p| p.take());
        if let Some(p) = process {
            p.shutdown().await;
        }
    }
}

/// True when the instance is dead or dies within half a second (polled, not slept blindly).
async fn died_soon(instance: &Instance) -> bool {
    for _ in 0..20 {
        if !instance.alive() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    !instance.alive()
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.handler.abort();
        // `process` is dropped after this: it kills the whole process group.
    }
}

/// The browser engine. Cheap to share (`Arc`); every call gets its own page.
pub struct BrowserService {
    settings: BrowserSettings,
    env: BrowserEnv,
    slots: Arc<Semaphore>,
    instance: Mutex<Option<Arc<Instance>>>,
}

impl std::fmt::Debug for BrowserService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserService")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl BrowserService {
    /// A service over the process environment; Chromium is started by the first call, not
    /// here.
    pub fn new(settings: BrowserSettings) -> BrowserService {
        BrowserService::with_env(settings, BrowserEnv::from_process())
    }

    /// A service whose Chromium is found on `env.path` and keeps its profile (and every temp
    /// file) beneath `env.temp_dir`.
    pub fn with_env(settings: BrowserSettings, env: BrowserEnv) -> BrowserService {
        let slots = Arc::new(Semaphore::new(settings.max_pages.max(1)));
        BrowserService {
            settings,
            env,
            slots,
            instance: Mutex::new(None),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &BrowserSettings {
        &self.settings
    }

    /// The pid (and process group) of the running Chromium, if one runs. For diagnostics and
    /// the crash-recovery tests.
    pub async fn chromium_pid(&self) -> Option<u32> {
        self.instance.lock().await.as_ref().and_then(|i| i.pid())
    }

    /// The environment Chromium is found and run in.
    pub fn env(&self) -> &BrowserEnv {
        &self.env
    }

    /// Stops Chromium and waits until its process group is gone and its profile directory
    /// (with Chromium's own temp files) is removed. Calls still running fail; the next call
    /// starts a new Chromium.
    pub async fn shutdown(&self) {
        let inst = self.instance.lock().await.take();
        if let Some(i) = inst {
            i.stop().await;
        }
    }

    /// The URL policy for a session: this service's private-network switch and the session's
    /// workspace (for `file:` URLs).
    pub fn policy(&self, workspace: Option<WorkspaceScope>) -> UrlPolicy {
        UrlPolicy {
            allow_private_network: self.settings.allow_private_network,
            workspace,
        }
    }

    /// Runs one call: checks the URL, waits for a page slot, loads, captures. The whole call is
    /// bounded by `browser.timeoutSeconds` (`TIMEOUT`).
    pub async fn capture(
        &self,
        req: &CaptureRequest,
        policy: &UrlPolicy,
    ) -> Result<Capture, BrowserError> {
        let deadline = Instant::now() + self.settings.timeout;
        let timeout = |phase: &'static str| BrowserError::Timeout {
            action: req.action.name(),
            url: req.url.clone(),
            timeout: self.settings.timeout,
            phase,
        };
        // Refusals first: they need no Chromium.
        let allowed = tokio::time::timeout_at(deadline, policy.check(&req.url, Origin::Caller))
            .await
            .map_err(|_| timeout("checking the URL"))??;
        let _slot = tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| timeout("waiting for a page slot"))?
            .map_err(|_| BrowserError::Internal("page slots closed".into()))?;

        let mut relaunched = false;
        loop {
            let instance = tokio::time::timeout_at(deadline, self.instance())
                .await
                .map_err(|_| timeout("starting Chromium"))??;
            let res = self
                .on_page(&instance, req, &allowed.url, policy, deadline)
                .await;
            match res {
                Err(PageError::Cdp(e)) => {
                    // The DevTools socket can report the death (e.g. "oneshot canceled") a
                    // moment before the process is reaped; give it that moment to be sure.
                    let dead = died_soon(&instance).await;
                    if dead {
                        self.forget(&instance).await;
                    }
                    if dead && !relaunched {
                        tracing::warn!(error = %e, "chromium died during a call; relaunching once");
                        relaunched = true;
                        continue;
                    }
                    return Err(BrowserError::Internal(e.to_string()));
                }
                Err(PageError::Timeout(phase)) => return Err(timeout(phase)),
                Err(PageError::Browser(e)) => return Err(e),
                Ok(c) => return Ok(c),
            }
        }
    }

    /// The running instance, started (or restarted, when it died) as needed.
    async fn instance(&self) -> Result<Arc<Instance>, BrowserError> {
        let mut guard = self.instance.lock().await;
        if let Some(i) = guard.as_ref() {
            if i.alive() {
                return Ok(i.clone());
            }
            tracing::warn!(pid = ?i.pid(), "chromium is gone; starting a new one");
            guard.take();
        }
        let binary = self
            .env
            .find_chromium(self.settings.executable_path.as_deref())?;
        let proxy = Socks5Proxy::start(self.settings.allow_private_network)
            .await
            .map_err(|e| BrowserError::LaunchFailed {
                path: binary.clone(),
                reason: format!("cannot start the connection proxy: {e}"),
            })?;
        let process =
            ChromiumProcess::launch(&binary, LAUNCH_TIMEOUT, &proxy.url(), &self.env).await?;
        let config = HandlerConfig {
            ignore_https_errors: false,
            viewport: None,
            request_timeout: self.settings.timeout + Duration::from_secs(5),
            request_intercept: false,
            cache_enabled: false,
            ..HandlerConfig::default()
        };
        let (browser, mut handler) =
            chromiumoxide::Browser::connect_with_config(process.ws_url.clone(), config)
                .await
                .map_err(|e| BrowserError::LaunchFailed {
                    path: binary.clone(),
                    reason: format!("DevTools connection: {e}"),
                })?;
        let handler = tokio::spawn(async move {
            while let Some(ev) = handler.next().await {
                if let Err(e) = ev {
                    tracing::debug!(error = %e, "devtools handler");
                    if matches!(e, CdpError::Ws(_)) {
                        break;
                    }
                }
            }
        });
        let inst = Arc::new(Instance {
            browser,
            handler,
            process: StdMutex::new(Some(process)),
            _proxy: proxy,
        });
        *guard = Some(inst.clone());
        Ok(inst)
    }

    /// Drops `dead` if it is still the current instance.
    async fn forget(&self, dead: &Arc<Instance>) {
        let mut guard = self.instance.lock().await;
        if guard.as_ref().is_some_and(|i| Arc::ptr_eq(i, dead)) {
            guard.take();
        }
    }

    /// One page in its own browser context; always closed afterwards.
    async fn on_page(
        &self,
        inst: &Instance,
        req: &CaptureRequest,
        url: &str,
        policy: &UrlPolicy,
        deadline: Instant,
    ) -> Result<Capture, PageError> {
        let ctx = within(deadline, "opening a page", async {
            inst.browser
                .create_browser_context(CreateBrowserContextParams::default())
                .await
        })
        .await?;
        // A page that answers with a download saves nothing anywhere.
        let denied = within(deadline, "opening a page", async {
            inst.browser
                .execute(SetDownloadBehaviorParams {
                    behavior: SetDownloadBehaviorBehavior::Deny,
                    browser_context_id: Some(ctx.clone()),
                    download_path: None,
                    events_enabled: Some(true),
                })
                .await
        })
        .await;
        if let Err(e) = denied {
            cleanup(inst, None, ctx).await;
            return Err(e);
        }
        let page = within(deadline, "opening a page", async {
            let mut params = CreateTargetParams::new("about:blank");
            params.browser_context_id = Some(ctx.clone());
            inst.browser.new_page(params).await
        })
        .await;
        // Download events come on the browser's session, not the page's.
        let downloads = inst
            .browser
            .event_listener::<EventDownloadWillBegin>()
            .await;
        let res = match (&page, downloads) {
            (Ok(page), Ok(downloads)) => {
                self.run(page, downloads, req, url, policy, deadline).await
            }
            (Ok(_), Err(e)) => Err(PageError::Cdp(e)),
            (Err(_), _) => Err(PageError::Timeout("opening a page")),
        };
        cleanup(inst, page.ok(), ctx).await;
        res
    }

    async fn run(
        &self,
        page: &Page,
        mut downloads: chromiumoxide::listeners::EventStream<EventDownloadWillBegin>,
        req: &CaptureRequest,
        url: &str,
        policy: &UrlPolicy,
        deadline: Instant,
    ) -> Result<Capture, PageError> {
        let (w, h) = match &req.action {
            Action::Screenshot(o) => (o.width, o.height),
            Action::Pdf => (
                crate::request::DEFAULT_WIDTH,
                crate::request::DEFAULT_HEIGHT,
            ),
        };
        let refusal: Refusal = Arc::new(StdMutex::new(None));
        let guard = within(deadline, "opening a page", async {
            set_viewport(page, w, h).await?;
            intercept(page, policy.clone(), refusal.clone()).await
        })
        .await?;
        let _guard = AbortOnDrop(guard);

        // chromiumoxide answers a Page.navigate only once the load lifecycle event fired —
        // which never happens when the URL is a download: watch for that too.
        let main_frame = page.target_id().inner().clone();
        let nav = within(deadline, "loading", async {
            tokio::select! {
                r = page.execute(NavigateParams::new(url)) => r.map(Some),
                _ = async {
                    while let Some(ev) = downloads.next().await {
                        if ev.frame_id.inner() == main_frame.as_str() {
                            return;
                        }
                    }
                    std::future::pending::<()>().await;
                } => Ok(None),
            }
        })
        .await;
        if let Some(e) = refusal.lock().ok().and_then(|mut r| r.take()) {
            return Err(PageError::Browser(e));
        }
        let Some(nav) = nav? else {
            return Err(PageError::Browser(BrowserError::NavigationFailed {
                url: req.url.clone(),
                reason: "the URL answers with a download, not a page (nothing was saved)".into(),
            }));
        };
        if let Some(err) = nav.result.error_text {
            return Err(PageError::Browser(BrowserError::NavigationFailed {
                url: req.url.clone(),
                reason: err,
            }));
        }

        match &req.action {
            Action::Screenshot(o) => {
                if o.wait_ms > 0 {
                    let until = (Instant::now() + Duration::from_millis(o.wait_ms)).min(deadline);
                    tokio::time::sleep_until(until).await;
                }
                within(deadline, "capturing", screenshot(page, &req.url, o)).await
            }
            Action::Pdf => within(deadline, "capturing", pdf(page)).await,
        }
    }
}

/// Why one attempt on a page failed.
pub(crate) enum PageError {
    /// A typed refusal or failure for the caller.
    Browser(BrowserError),
    /// The deadline passed in this phase.
    Timeout(&'static str),
    /// A DevTools failure: retried once when Chromium turns out to be dead.
    Cdp(CdpError),
}

impl From<CdpError> for PageError {
    fn from(e: CdpError) -> Self {
        PageError::Cdp(e)
    }
}

impl From<BrowserError> for PageError {
    fn from(e: BrowserError) -> Self {
        PageError::Browser(e)
    }
}

/// Runs `fut` until `deadline`.
async fn within<T, E: Into<PageError>>(
    deadline: Instant,
    phase: &'static str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, PageError> {
    match tokio::time::timeout_at(deadline, fut).await {
        Ok(r) => r.map_err(Into::into),
        Err(_) => Err(PageError::Timeout(phase)),
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn cleanup(inst: &Instance, page: Option<Page>, ctx: BrowserContextId) {
    let _ = tokio::time::timeout(CLEANUP_TIMEOUT, async {
        if let Some(p) = page {
            let _ = p.close().await;
        }
        let _ = inst.browser.dispose_browser_context(ctx).await;
    })
    .await;
}
