//! [`MediaError`]: every refusal of the media store and the outbound reader, with its docs/errors.md
//! code and the facts behind it.

use std::path::PathBuf;

use carapace_fs::FsError;
use carapace_policy::{CarapaceError, ErrorCode, mode_string};
use serde_json::{Map, Value, json};

/// A typed media / outbound error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The file has no others-read bit and `allowOwnerOnly` is off.
    #[error("File {path} has mode {} and cannot be sent over an outbound channel.", mode_string(*.mode))]
    PermsTooRestrictive {
        /// The path as the caller named it.
        path: String,
        /// The host path.
        host_path: PathBuf,
        /// Permission bits.
        mode: u32,
    },
    /// The path is not inside any allowed root.
    #[error("File {path} is outside the directories files may be sent from.")]
    OutsideRoots {
        /// The path as given.
        path: String,
        /// The allowed roots (host paths).
        roots: Vec<PathBuf>,
    },
    /// Larger than the channel accepts.
    #[error(
        "File {path} is {size} bytes; channel {channel} accepts at most {limit} bytes per file."
    )]
    OutboundTooLarge {
        /// The path as given.
        path: String,
        /// The channel.
        channel: String,
        /// Size (fstat).
        size: u64,
        /// Limit.
        limit: u64,
    },
    /// The OS refused the open (EACCES/EPERM).
    #[error("Permission denied opening {path}: {}; carapace runs as uid {process_uid}.", owner_desc(*.owner_uid, *.mode))]
    PermissionDenied {
        /// The path as given.
        path: String,
        /// Host path.
        host_path: PathBuf,
        /// Owner, if visible.
        owner_uid: Option<u32>,
        /// Mode, if visible.
        mode: Option<u32>,
        /// carapace's effective uid.
        process_uid: u32,
    },
    /// A filesystem refusal (symlink, hardlink, not a regular file, not found, …), with the
    /// path as the caller named it.
    #[error("{path}: {source}")]
    Fs {
        /// The path as given.
        path: String,
        /// The fs error.
        #[source]
        source: FsError,
    },
    /// More than `media.maxBytes`.
    #[error("{what} is larger than the media store limit of {limit} bytes")]
    TooLarge {
        /// What was saved.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// A download refused by policy (scheme, private address, too many redirects).
    #[error("download of {url} refused: {reason}")]
    DownloadRefused {
        /// The URL (of the hop that was refused).
        url: String,
        /// Why.
        reason: String,
        /// The address that was refused, if any.
        address: Option<String>,
    },
    /// A download that failed upstream (HTTP status, connection).
    #[error("download of {url} failed: {reason}")]
    DownloadFailed {
        /// The URL.
        url: String,
        /// What happened.
        reason: String,
        /// Upstream HTTP status, when there was one.
        status: Option<u16>,
    },
    /// A media reference with a URL scheme carapace does not fetch (`file:`, `data:`, `ftp://`,
    /// …): only http and https URLs are URLs.
    #[error("{reference:?} is a {scheme}: URL; only http and https URLs can be attached")]
    UnsupportedScheme {
        /// The reference as given (a `data:` URL is cut to its first 64 characters).
        reference: String,
        /// The scheme, lower-cased.
        scheme: String,
    },
    /// The request is malformed (bad base64, empty input, bad path).
    #[error("{0}")]
    BadRequest(String),
    /// An internal failure (a join error, an I/O error outside carapace-fs).
    #[error("{0}")]
    Internal(String),
}

fn owner_desc(owner: Option<u32>, mode: Option<u32>) -> String {
    match (owner, mode) {
        (Some(u), Some(m)) => format!("the file is owned by uid {u} with mode {}", mode_string(m)),
        (Some(u), None) => format!("the file is owned by uid {u}"),
        _ => "the operating system refused access".into(),
    }
}

impl MediaError {
    /// Wraps an [`FsError`] met on `path`; EACCES becomes [`MediaError::PermissionDenied`].
    pub fn fs(path: &str, e: FsError) -> MediaError {
        match e {
            FsError::PermissionDenied {
                host_path,
                owner_uid,
                mode,
                process_uid,
                ..
            } => MediaError::PermissionDenied {
                path: path.to_string(),
                host_path,
                owner_uid,
                mode,
                process_uid,
            },
            source => MediaError::Fs {
                path: path.to_string(),
                source,
            },
        }
    }
}

impl CarapaceError for MediaError {
    fn code(&self) -> ErrorCode {
        match self {
            MediaError::PermsTooRestrictive { .. } => ErrorCode::OutboundMediaPermsTooRestrictive,
            MediaError::OutsideRoots { .. } => ErrorCode::OutboundMediaOutsideRoots,
            MediaError::OutboundTooLarge { .. } => ErrorCode::OutboundMediaTooLarge,
            MediaError::PermissionDenied { .. } => ErrorCode::PermissionDenied,
            MediaError::Fs { source, .. } => source.code(),
            MediaError::TooLarge { .. } => ErrorCode::TooLarge,
            // A refused address (private, loopback, a redirect to one) is the network policy's
            // refusal; a refused scheme or credentials in the URL is a bad request.
            MediaError::DownloadRefused {
                address: Some(_), ..
            } => ErrorCode::NetworkPolicyRefused,
            MediaError::DownloadRefused { .. }
            | MediaError::BadRequest(_)
            | MediaError::UnsupportedScheme { .. } => ErrorCode::BadRequest,
            MediaError::DownloadFailed { .. } => ErrorCode::BadRequest,
            MediaError::Internal(_) => ErrorCode::Internal,
        }
    }

    fn hint(&self) -> Option<String> {
        match self {
            MediaError::PermsTooRestrictive { path, .. } => Some(format!(
                "Either `chmod 644 {path}` if it is meant to be shared, or set tools.message.outboundMediaPolicy.allowOwnerOnly: true to send owner-only files, or (as the operator, on the host) copy it into the media store with `carapace media save <host path>`, which writes 0644. The media_save tool refuses private files like a send does."
            )),
            MediaError::OutsideRoots { .. } => Some(
                "Send files from the session's workspace or the media dir, or list their directory in tools.message.outboundMediaPolicy.extraRoots; the operator can copy a host file into the media store with `carapace media save <host path>`."
                    .into(),
            ),
            MediaError::OutboundTooLarge { .. } => Some(
                "Send a smaller file (compress or resize it), or raise the channel's mediaMaxMb if the platform allows it."
                    .into(),
            ),
            MediaError::PermissionDenied { .. } => Some(
                "Make the file readable by carapace's user (chown/chmod it), or write it from a process running as that user."
                    .into(),
            ),
            MediaError::Fs { source, .. } => source.hint(),
            MediaError::TooLarge { .. } => {
                Some("Raise media.maxBytes in the config, or save a smaller file.".into())
            }
            MediaError::UnsupportedScheme { .. } => Some(
                "Give an http(s) URL, or a file path (/workspace/…, or a media-store path from media_save); for inline content use `buffer` (base64) with `filename`. A file whose name really starts with such a prefix can be named ./<name>."
                    .into(),
            ),
            MediaError::DownloadRefused { address: Some(_), .. } => Some(
                "Downloads from private, loopback and link-local addresses are refused; set media.allowPrivateNetwork: true to allow them."
                    .into(),
            ),
            _ => None,
        }
    }

    fn details(&self) -> Map<String, Value> {
        let mut d = Map::new();
        let s = |p: &std::path::Path| json!(p.to_string_lossy());
        match self {
            MediaError::PermsTooRestrictive {
                path,
                host_path,
                mode,
            } => {
                d.insert("path".into(), json!(path));
                d.insert("hostPath".into(), s(host_path));
                d.insert("mode".into(), json!(mode_string(*mode)));
                d.insert("required".into(), json!("others-read (o+r), e.g. 0644"));
            }
            MediaError::OutsideRoots { path, roots } => {
                d.insert("path".into(), json!(path));
                d.insert(
                    "allowedRoots".into(),
                    json!(
                        roots
                            .iter()
                            .map(|r| r.to_string_lossy())
                            .collect::<Vec<_>>()
                    ),
                );
            }
            MediaError::OutboundTooLarge {
                path,
                channel,
                size,
                limit,
            } => {
                d.insert("path".into(), json!(path));
                d.insert("channel".into(), json!(channel));
                d.insert("size".into(), json!(size));
                d.insert("limit".into(), json!(limit));
            }
            MediaError::PermissionDenied {
                path,
                host_path,
                owner_uid,
                mode,
                process_uid,
            } => {
                d.insert("path".into(), json!(path));
                d.insert("hostPath".into(), s(host_path));
                if let Some(u) = owner_uid {
                    d.insert("ownerUid".into(), json!(u));
                }
                if let Some(m) = mode {
                    d.insert("mode".into(), json!(mode_string(*m)));
                }
                d.insert("processUid".into(), json!(process_uid));
            }
            MediaError::Fs { path, source } => {
                d.extend(source.details());
                d.insert("path".into(), json!(path));
            }
            MediaError::TooLarge { what, limit } => {
                d.insert("what".into(), json!(what));
                d.insert("limit".into(), json!(limit));
            }
            MediaError::DownloadRefused {
                url,
                reason,
                address,
            } => {
                d.insert("url".into(), json!(url));
                d.insert("reason".into(), json!(reason));
                if let Some(a) = address {
                    // The same facts as the browser's refusal: which host, which address, and
                    // the setting that would allow it.
                    if let Some(host) = reqwest::Url::parse(url)
                        .ok()
                        .and_then(|u| u.host_str().map(str::to_string))
                    {
                        d.insert("host".into(), json!(host));
                    }
                    d.insert("address".into(), json!(a));
                    d.insert("setting".into(), json!("media.allowPrivateNetwork"));
                }
            }
            MediaError::DownloadFailed {
                url,
                reason,
                status,
            } => {
                d.insert("url".into(), json!(url));
                d.insert("reason".into(), json!(reason));
                if let Some(st) = status {
                    d.insert("status".into(), json!(st));
                }
            }
            MediaError::UnsupportedScheme { reference, scheme } => {
                d.insert("reference".into(), json!(reference));
                d.insert("scheme".into(), json!(scheme));
                d.insert("allowedSchemes".into(), json!(["http", "https"]));
            }
            MediaError::BadRequest(_) | MediaError::Internal(_) => {}
        }
        d
    }
}
