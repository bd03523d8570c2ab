//! Downloads into the media store: http(s) only, at most [`MAX_REDIRECTS`] redirects, every
//! resolved address of every hop checked by [`crate::netguard::resolve_public`] (unless private
//! networks are allowed) and the connection pinned to exactly those addresses, so a DNS answer
//! cannot change between the check and the connect. The body is streamed to disk and capped.

use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

use reqwest::Url;

use crate::netguard::{AddressRefused, resolve_public};
use crate::{MediaError, MediaStore, SavedMedia};

/// Redirects followed at most.
pub const MAX_REDIRECTS: usize = 5;
/// Whole-download timeout.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// Resolves `url`'s host and checks every address; returns the addresses to pin.
async fn vet(url: &Url, allow_private: bool) -> Result<Vec<SocketAddr>, MediaError> {
    let refused = |reason: String, address: Option<String>| MediaError::DownloadRefused {
        url: url.to_string(),
        reason,
        address,
    };
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refused(
            format!(
                "scheme {:?} is not allowed (http and https only)",
                url.scheme()
            ),
            None,
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refused(
            "URLs with credentials are not allowed".into(),
            None,
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| refused("the URL has no host".into(), None))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| refused("the URL has no port".into(), None))?;
    resolve_public(host, port, allow_private)
        .await
        .map_err(|e| match e {
            AddressRefused::Unresolvable { .. } => MediaError::DownloadFailed {
                url: url.to_string(),
                reason: e.to_string(),
                status: None,
            },
            AddressRefused::NonPublic { address, .. } => {
                refused(e.to_string(), Some(address.to_string()))
            }
        })
}

fn client_for(url: &Url, addrs: &[SocketAddr]) -> Result<reqwest::Client, MediaError> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .timeout(TIMEOUT)
        .no_proxy()
        .user_agent(concat!("carapace/", env!("CARGO_PKG_VERSION")));
    if let Some(host) = url.host_str()
        && host.parse::<std::net::IpAddr>().is_err()
        && !host.starts_with('[')
    {
        b = b.resolve_to_addrs(host, addrs);
    }
    b.build()
        .map_err(|e| MediaError::Internal(format!("HTTP client: {}", e.without_url())))
}

/// A `Read` over chunks sent by the async side.
struct ChunkReader {
    rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, String>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(c)) => {
                    self.cur = c;
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(std::io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn filename_from(url: &Url, resp: &reqwest::Response) -> Option<String> {
    if let Some(cd) = resp
        .headers()
        .get(reqwest::header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        && let Some(i) = cd.find("filename=")
    {
        let v = cd[i + 9..]
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"');
        if !v.is_empty() {
            return Some(v.to_string());
        }
    }
    url.path_segments()
        .and_then(|mut s| s.next_back())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

impl MediaStore {
    /// Downloads `url` into the store (see the module docs for the rules).
    pub async fn download(&self, url: &str) -> Result<SavedMedia, MediaError> {
        let mut url = Url::parse(url)
            .map_err(|e| MediaError::BadRequest(format!("{url:?} is not a valid URL: {e}")))?;
        let allow_private = self.settings().allow_private_network;
        let mut hops = 0;
        let resp =
            loop {
                let addrs = vet(&url, allow_private).await?;
                let client = client_for(&url, &addrs)?;
                let resp = client.get(url.clone()).send().await.map_err(|e| {
                    MediaError::DownloadFailed {
                        url: url.to_string(),
                        reason: e.without_url().to_string(),
                        status: None,
                    }
                })?;
                let status = resp.status();
                if status.is_redirection() {
                    hops += 1;
                    if hops > MAX_REDIRECTS {
                        return Err(MediaError::DownloadRefused {
                            url: url.to_string(),
                            reason: format!("more than {MAX_REDIRECTS} redirects"),
                            address: None,
                        });
                    }
                    let loc = resp
                        .headers()
                        .get(reqwest::header::LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .ok_or_else(|| MediaError::DownloadFailed {
                            url: url.to_string(),
                            reason: format!("HTTP {} without a Location", status.as_u16()),
                            status: Some(status.as_u16()),
                        })?;
                    url = url.join(loc).map_err(|e| MediaError::DownloadFailed {
                        url: url.to_string(),
                        reason: format!("bad redirect Location {loc:?}: {e}"),
                        status: Some(status.as_u16()),
                    })?;
                    continue;
                }
                if !status.is_success() {
                    return Err(MediaError::DownloadFailed {
                        url: url.to_string(),
                        reason: format!("HTTP {}", status.as_u16()),
                        status: Some(status.as_u16()),
                    });
                }
                break resp;
            };
        let limit = self.settings().max_bytes;
        if let Some(len) = resp.content_length()
            && len > limit
        {
            return Err(MediaError::TooLarge {
                what: url.to_string(),
                limit,
            });
        }
        let declared = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let original = filename_from(&url, &resp);
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let pump = async move {
            let mut resp = resp;
            loop {
                match resp.chunk().await {
                    Ok(Some(c)) => {
                        if tx.send(Ok(c.to_vec())).await.is_err() {
                            break; // the writer stopped (cap reached)
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(Err(e.without_url().to_string())).await;
                        break;
                    }
                }
            }
        };
        let root = self
            .root()
            .try_clone()
            .map_err(|e| MediaError::fs(&self.dir().to_string_lossy(), e))?;
        let store = MediaStore::from_parts(root, self.settings().clone());
        let what = url.to_string();
        let writer = tokio::task::spawn_blocking(move || {
            let mut r = ChunkReader {
                rx,
                cur: Vec::new(),
                pos: 0,
            };
            store
                .save_stream(&mut r, original.as_deref(), declared.as_deref())
                .map_err(|e| match e {
                    MediaError::TooLarge { limit, .. } => MediaError::TooLarge { what, limit },
                    MediaError::Fs {
                        source: carapace_fs::FsError::Io { source, .. },
                        ..
                    } => MediaError::DownloadFailed {
                        url: what,
                        reason: format!("the body failed while streaming: {source}"),
                        status: None,
                    },
                    e => e,
                })
        });
        let (_, res) = tokio::join!(pump, writer);
        res.map_err(|e| MediaError::Internal(format!("download writer: {e}")))?
    }
}
