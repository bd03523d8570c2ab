//! Which URLs the browser may load: the page itself, every redirect hop and every subresource
//! request go through [`UrlPolicy::check`].
//!
//! - Schemes: `http`, `https` and `file` for anything the caller names; subresources may also
//!   be `data:`, `blob:` and `about:` (they reach no network and no file).
//! - `http(s)`: the host is resolved and **every** address must be public
//!   ([`carapace_media::netguard::resolve_public`], the one home of that rule, shared with media
//!   downloads and the SOCKS5 proxy), unless `browser.allowPrivateNetwork`. IP literals are
//!   checked without resolving.
//! - `file`: the path is mapped onto the session's workspace (container path `/workspace/...`
//!   or the host path of the workspace) and then opened through the workspace's
//!   [`carapace_fs::Root`]: containment is the kernel's (`RESOLVE_BENEATH`), not a string
//!   prefix check. Anything else — `..` (already folded by URL parsing), symlinks leading out,
//!   FIFOs, missing files, another host (`file://server/...`) — is refused.
//!
//! The pure parts ([`parse_target`], [`address_error`], [`WorkspaceScope::map_file_url`]) are
//! tested exhaustively; [`UrlPolicy::check`] adds DNS resolution.

use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use carapace_fs::{FsError, HardlinkPolicy, ReadOptions, Root, SymlinkPolicy, VerifiedFile};
use carapace_media::netguard::{AddressRefused, resolve_public};
use url::{Host, Url};

use crate::error::BrowserError;

/// Largest workspace file the browser loads (page or subresource).
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// What to do with one request the page makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Let Chromium fetch it (a checked http(s) URL, or an inert scheme).
    Continue,
    /// Serve these bytes (a workspace file, read from the fd that passed the checks).
    Fulfil {
        /// The file's content.
        body: Vec<u8>,
        /// Content type guessed from the extension.
        mime: &'static str,
    },
}

/// The content type Chromium is told for a workspace file, from its extension.
pub fn mime_for_path(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("html" | "htm") => "text/html",
        Some("xhtml") => "application/xhtml+xml",
        Some("css") => "text/css",
        Some("js" | "mjs") => "text/javascript",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("avif") => "image/avif",
        Some("ico") => "image/x-icon",
        Some("bmp") => "image/bmp",
        Some("woff") => "font/woff",
        Some("woff2") => "font/woff2",
        Some("ttf") => "font/ttf",
        Some("otf") => "font/otf",
        Some("pdf") => "application/pdf",
        Some("xml") => "application/xml",
        Some("txt" | "md" | "csv" | "log") => "text/plain",
        _ => "application/octet-stream",
    }
}

/// What a URL names, once parsed and checked for scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An `http`/`https` URL: its host still has to be resolved and checked.
    Net {
        /// The parsed URL.
        url: Url,
        /// The host as written (domain or IP literal, IPv6 without brackets).
        host: String,
        /// The IP when the host is a literal.
        literal: Option<IpAddr>,
        /// The port (scheme default when absent).
        port: u16,
    },
    /// A local `file:` URL: the absolute path it names.
    File {
        /// The parsed URL.
        url: Url,
        /// The (percent-decoded) path.
        path: PathBuf,
    },
    /// `data:`, `blob:`, `about:` — allowed for subresources only (see [`Origin`]).
    Inert,
}

/// Who asks: the caller (the `url` argument) or the page (redirects, subresources).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The URL the tool was called with, and redirects of it.
    Caller,
    /// A request the page makes by itself (images, frames, scripts...).
    Page,
}

/// Parses `raw` and sorts it by scheme. Pure.
pub fn parse_target(raw: &str, origin: Origin) -> Result<Target, BrowserError> {
    let url = Url::parse(raw.trim())
        .map_err(|e| BrowserError::BadRequest(format!("invalid URL {raw:?}: {e}")))?;
    match url.scheme() {
        "http" | "https" => {
            let (host, literal) = match url.host() {
                Some(Host::Domain(d)) => (d.to_string(), None),
                Some(Host::Ipv4(a)) => (a.to_string(), Some(IpAddr::V4(a))),
                Some(Host::Ipv6(a)) => (a.to_string(), Some(IpAddr::V6(a))),
                None => {
                    return Err(BrowserError::BadRequest(format!("URL {raw:?} has no host")));
                }
            };
            let port = url.port_or_known_default().unwrap_or(80);
            Ok(Target::Net {
                url,
                host,
                literal,
                port,
            })
        }
        "file" => {
            match url.host() {
                None => {}
                Some(Host::Domain("localhost")) => {}
                Some(h) => {
                    return Err(BrowserError::FileRefused {
                        url: raw.to_string(),
                        source: FsError::InvalidPath {
                            path: PathBuf::from(format!("//{h}{}", url.path())),
                            reason: "file URLs must name a local file (no host)",
                        },
                    });
                }
            }
            let path = url.to_file_path().map_err(|()| {
                BrowserError::BadRequest(format!("URL {raw:?} does not name a local file"))
            })?;
            Ok(Target::File { url, path })
        }
        "data" | "blob" | "about" if origin == Origin::Page => Ok(Target::Inert),
        other => Err(BrowserError::SchemeRefused {
            url: raw.to_string(),
            scheme: other.to_string(),
        }),
    }
}

/// The browser's error for a refusal of [`carapace_media::netguard`]: a non-public address is
/// [`BrowserError::PrivateNetworkRefused`] (`NETWORK_POLICY_REFUSED`), anything else
/// [`BrowserError::Unresolvable`].
pub fn address_error(url: &str, refused: AddressRefused) -> BrowserError {
    match refused {
        AddressRefused::NonPublic { host, address } => BrowserError::PrivateNetworkRefused {
            url: url.to_string(),
            host,
            address: address.to_string(),
        },
        AddressRefused::Unresolvable { host, reason } => BrowserError::Unresolvable {
            url: url.to_string(),
            host,
            reason,
        },
    }
}

/// The session's workspace, as the browser sees it.
#[derive(Debug, Clone)]
pub struct WorkspaceScope {
    root: Arc<Root>,
    container_prefix: Option<PathBuf>,
}

impl WorkspaceScope {
    /// `root` is the workspace's host directory; `container_prefix` the path the agent knows it
    /// by (`/workspace`), if any.
    pub fn new(root: Root, container_prefix: Option<PathBuf>) -> WorkspaceScope {
        WorkspaceScope {
            root: Arc::new(root),
            container_prefix,
        }
    }

    /// The host directory.
    pub fn host_path(&self) -> &Path {
        self.root.host_path()
    }

    /// Maps the path of a `file:` URL onto the workspace and opens it through the
    /// [`Root`]: it must be a regular file beneath the root (symlinks followed only while they
    /// stay inside; hardlinked files refused, as for anything whose bytes leave carapace).
    /// Returns the host path Chromium is given.
    pub fn map_file_url(&self, url: &str, path: &Path) -> Result<PathBuf, BrowserError> {
        let (rel, _) = self.open(url, path)?;
        Ok(self.root.host_path().join(rel))
    }

    /// Like [`WorkspaceScope::map_file_url`], then reads the file from the fd that passed the
    /// checks (at most [`MAX_FILE_BYTES`]): what Chromium is served instead of opening the
    /// path itself, so a symlink swapped in after the check changes nothing.
    pub fn read_file_url(&self, url: &str, path: &Path) -> Result<Vec<u8>, BrowserError> {
        let (_, mut f) = self.open(url, path)?;
        f.read_capped(Some(MAX_FILE_BYTES))
            .map_err(|source| BrowserError::FileRefused {
                url: url.to_string(),
                source,
            })
    }

    fn open(&self, url: &str, path: &Path) -> Result<(PathBuf, VerifiedFile), BrowserError> {
        let rel = self.relative(path);
        let opts = ReadOptions {
            max_bytes: Some(MAX_FILE_BYTES),
            symlinks: SymlinkPolicy::FollowInside,
            hardlinks: HardlinkPolicy::Refuse,
        };
        let f = self
            .root
            .open_file(&rel, &opts)
            .map_err(|source| BrowserError::FileRefused {
                url: url.to_string(),
                source,
            })?;
        Ok((rel, f))
    }

    /// The path relative to the workspace when it lies under the container prefix or the host
    /// path (component-wise); otherwise the absolute path itself, which the [`Root`] refuses
    /// with its one escape error.
    fn relative(&self, path: &Path) -> PathBuf {
        let prefixes = self
            .container_prefix
            .iter()
            .map(PathBuf::as_path)
            .chain(std::iter::once(self.root.host_path()));
        for p in prefixes {
            if let Ok(rest) = path.strip_prefix(p)
                && rest.components().all(|c| matches!(c, Component::Normal(_)))
            {
                return rest.to_path_buf();
            }
        }
        path.to_path_buf()
    }
}

/// The policy one call runs under.
#[derive(Debug, Clone)]
pub struct UrlPolicy {
    /// `browser.allowPrivateNetwork`.
    pub allow_private_network: bool,
    /// The session's workspace; `None` refuses every `file:` URL.
    pub workspace: Option<WorkspaceScope>,
}

/// A URL that passed the policy: what Chromium is actually given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    /// The URL to load (for `file:`, rewritten to the host path of the workspace file).
    pub url: String,
}

impl UrlPolicy {
    /// Decides one request of the page: refused, let through, or served from the workspace.
    pub async fn decide(&self, raw: &str, origin: Origin) -> Result<Decision, BrowserError> {
        match parse_target(raw, origin)? {
            Target::File { path, .. } => {
                let Some(ws) = &self.workspace else {
                    return Err(no_workspace(raw, path));
                };
                let body = ws.read_file_url(raw, &path)?;
                Ok(Decision::Fulfil {
                    body,
                    mime: mime_for_path(&path),
                })
            }
            Target::Inert | Target::Net { .. } => {
                self.check(raw, origin).await?;
                Ok(Decision::Continue)
            }
        }
    }

    /// Checks `raw`; resolves http(s) hosts (every address must pass).
    pub async fn check(&self, raw: &str, origin: Origin) -> Result<Allowed, BrowserError> {
        match parse_target(raw, origin)? {
            Target::Inert => Ok(Allowed {
                url: raw.to_string(),
            }),
            Target::Net {
                url,
                host,
                literal,
                port,
            } => {
                // An IP literal is passed in its canonical form, so no resolver is asked.
                let name = literal.map_or(host, |ip| ip.to_string());
                resolve_public(&name, port, self.allow_private_network)
                    .await
                    .map_err(|e| address_error(raw, e))?;
                Ok(Allowed {
                    url: url.to_string(),
                })
            }
            Target::File { path, .. } => {
                let Some(ws) = &self.workspace else {
                    return Err(no_workspace(raw, path));
                };
                let host_path = ws.map_file_url(raw, &path)?;
                let url = Url::from_file_path(&host_path).map_err(|()| {
                    BrowserError::Internal(format!("cannot make a file URL of {host_path:?}"))
                })?;
                Ok(Allowed {
                    url: url.to_string(),
                })
            }
        }
    }
}

fn no_workspace(raw: &str, path: PathBuf) -> BrowserError {
    BrowserError::FileRefused {
        url: raw.to_string(),
        source: FsError::InvalidPath {
            path,
            reason: "this session has no workspace for file URLs",
        },
    }
}
