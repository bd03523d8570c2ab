//! The page's shared state: the gateway, the config, the chat backend, logins, uploads and the
//! files the agent sent (by opaque id).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use carapace_policy::{Config, ErrorCode, ErrorEnvelope};

use super::UiOptions;
use super::backend::ChatBackend;
use super::login::Logins;
use crate::gateway::Gateway;
use crate::reload::ConfigLoader;

/// Most uploads and sent files remembered (oldest forgotten first).
const MAX_FILES: usize = 512;

/// A file the person uploaded, placed by the inbound media path.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The chat session it was placed for.
    pub session_key: String,
    /// The name the person gave it.
    pub name: String,
    /// The sniffed type.
    pub mime: String,
    /// Size.
    pub bytes: u64,
    /// The media-store copy.
    pub store_path: PathBuf,
    /// The path the agent sees (`/workspace/media/inbound/…`), when it could be placed there.
    pub agent_path: Option<String>,
    /// The image for the model, when it is one.
    pub image: Option<carapace_agent::ImageData>,
    /// Why it is not in the workspace, when it is not.
    pub note: Option<String>,
}

/// A file the agent sent in a reply: the path as the agent named it, and the session whose
/// outbound policy decides whether it may leave.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The path as named in the `MEDIA:` line.
    pub path: String,
    /// The session that sent it.
    pub session_key: String,
}

/// Remembered files, by opaque id, in insertion order.
#[derive(Debug)]
pub struct Files<T> {
    map: HashMap<String, T>,
    order: std::collections::VecDeque<String>,
}

impl<T: Clone> Files<T> {
    fn new() -> Self {
        Files {
            map: HashMap::new(),
            order: std::collections::VecDeque::new(),
        }
    }

    /// Remembers `v` under a fresh random id.
    pub fn insert(&mut self, v: T) -> Result<String, ErrorEnvelope> {
        let id = random_hex(16)?;
        self.map.insert(id.clone(), v);
        self.order.push_back(id.clone());
        while self.order.len() > MAX_FILES {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
        Ok(id)
    }

    /// The file under `id`.
    pub fn get(&self, id: &str) -> Option<T> {
        self.map.get(id).cloned()
    }
}

struct Inner {
    gw: Gateway,
    config: Arc<Config>,
    loader: Option<ConfigLoader>,
    chat: Option<Arc<dyn ChatBackend>>,
    secure_cookies: bool,
    logins: Logins,
    uploads: Mutex<Files<Upload>>,
    sent: Mutex<Files<Sent>>,
    sandboxes: Arc<carapace_sandbox::SandboxManager>,
    sweeper: Arc<carapace_tools::StagingSweeper>,
}

/// The page's state. Cheap to clone.
#[derive(Clone)]
pub struct UiState {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl UiState {
    pub(super) fn new(gw: Gateway, opts: UiOptions) -> UiState {
        UiState {
            inner: Arc::new(Inner {
                gw,
                config: opts.config,
                loader: opts.loader,
                chat: opts.chat,
                secure_cookies: opts.secure_cookies,
                logins: Logins::default(),
                uploads: Mutex::new(Files::new()),
                sent: Mutex::new(Files::new()),
                sandboxes: Arc::new(carapace_sandbox::SandboxManager::new()),
                sweeper: Arc::new(carapace_tools::StagingSweeper::new()),
            }),
        }
    }

    /// The gateway (its token decides logins).
    pub fn gateway(&self) -> &Gateway {
        &self.inner.gw
    }

    /// The config in force: the file as it is now, else the one the gateway started with.
    pub fn config(&self) -> Arc<Config> {
        match &self.inner.loader {
            Some(l) => match l() {
                Ok(c) => Arc::new(c),
                Err(e) => {
                    tracing::warn!(error = %e.message, "web page: config reload failed; showing the start config");
                    Arc::clone(&self.inner.config)
                }
            },
            None => Arc::clone(&self.inner.config),
        }
    }

    /// The chat backend, if a model is configured.
    pub fn chat(&self) -> Option<&Arc<dyn ChatBackend>> {
        self.inner.chat.as_ref()
    }

    /// Whether cookies are `Secure`.
    pub fn secure_cookies(&self) -> bool {
        self.inner.secure_cookies
    }

    /// The logins.
    pub fn logins(&self) -> &Logins {
        &self.inner.logins
    }

    /// Uploaded files.
    pub fn uploads(&self) -> MutexGuard<'_, Files<Upload>> {
        lock(&self.inner.uploads)
    }

    /// A tool context over `config` (uploads are placed into session workspaces with it).
    pub fn tool_context(&self, config: Arc<Config>) -> carapace_tools::ToolContext {
        carapace_tools::ToolContext::with_parts(
            config,
            Arc::clone(&self.inner.sandboxes),
            Arc::clone(&self.inner.sweeper),
        )
    }

    /// Files the agent sent.
    pub fn sent(&self) -> MutexGuard<'_, Files<Sent>> {
        lock(&self.inner.sent)
    }
}

/// `n` random bytes from the OS, hex.
pub fn random_hex(n: usize) -> Result<String, ErrorEnvelope> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| {
        ErrorEnvelope::new(
            ErrorCode::Internal,
            format!("the OS random generator failed: {e}"),
        )
    })?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
