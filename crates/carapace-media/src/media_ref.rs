//! What a media reference (an attachment `path`, `media`, `filePath`, a `MEDIA:` line) names:
//! a URL to download, or a file path. One rule for every surface:
//!
//! - `http:` / `https:` in any case (`HTTP://`, `Https://`) is a URL, downloaded through the
//!   media store's guarded downloader (URL schemes are case-insensitive, RFC 3986 §3.1).
//! - Any other `<scheme>://…`, and the well-known schemes that need no `//` (`file:`,
//!   `data:`, `javascript:`, `blob:`, `mailto:`, …), are refused with
//!   `MediaError::UnsupportedScheme` — never taken as a file path (`file:/etc/passwd` is not
//!   the file `./file:/etc/passwd`, and not `/etc/passwd` either).
//! - Everything else is a path. A file whose name really starts like a scheme (`data:x.png`)
//!   is named `./data:x.png`.

use crate::MediaError;

/// Schemes refused even without `//` after the colon.
const OPAQUE_SCHEMES: &[&str] = &[
    "file",
    "data",
    "javascript",
    "vbscript",
    "blob",
    "about",
    "mailto",
    "tel",
    "ftp",
    "ftps",
    "sftp",
    "ssh",
    "smb",
    "ws",
    "wss",
    "gopher",
    "ldap",
    "mxc",
    "content",
    "chrome",
];

/// A classified media reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaRef<'a> {
    /// An http(s) URL (as given; the URL parser lower-cases the scheme).
    Url(&'a str),
    /// A file path (container path, relative to `/workspace`, or a host path).
    Path(&'a str),
}

/// The scheme of `s` (RFC 3986: a letter, then letters, digits, `+`, `-`, `.`), lower-cased,
/// and what follows the colon. Single letters are not schemes here.
fn scheme(s: &str) -> Option<(String, &str)> {
    let (head, rest) = s.split_once(':')?;
    let mut chars = head.chars();
    let first = chars.next()?;
    if head.len() < 2
        || !first.is_ascii_alphabetic()
        || !chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return None;
    }
    Some((head.to_ascii_lowercase(), rest))
}

/// Classifies `reference` (see the module docs).
pub fn classify(reference: &str) -> Result<MediaRef<'_>, MediaError> {
    let s = reference.trim();
    let Some((scheme, rest)) = scheme(s) else {
        return Ok(MediaRef::Path(reference));
    };
    if scheme == "http" || scheme == "https" {
        return Ok(MediaRef::Url(s));
    }
    if rest.starts_with("//") || OPAQUE_SCHEMES.contains(&scheme.as_str()) {
        let shown: String = s.chars().take(64).collect();
        return Err(MediaError::UnsupportedScheme {
            reference: shown,
            scheme,
        });
    }
    Ok(MediaRef::Path(reference))
}

/// True when `reference` is an http(s) URL.
pub fn is_url(reference: &str) -> bool {
    matches!(classify(reference), Ok(MediaRef::Url(_)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use carapace_policy::{CarapaceError, ErrorCode};

    #[test]
    fn classification() {
        for url in [
            "http://x/a.png",
            "HTTP://x/a.png",
            "Https://x/a.png",
            "hTtPs://x",
            " https://x ",
        ] {
            assert!(matches!(classify(url).unwrap(), MediaRef::Url(_)), "{url}");
        }
        for path in [
            "a.png",
            "/workspace/a.png",
            "./data:x.png",
            "C:/x.png",
            "shot:1.png",
            "my file.png",
            "/s/media/a---b.png",
        ] {
            assert_eq!(classify(path).unwrap(), MediaRef::Path(path), "{path}");
        }
        for bad in [
            "file:///etc/passwd",
            "FILE:/etc/passwd",
            "file:etc/passwd",
            "data:image/png;base64,AAAA",
            "javascript:alert(1)",
            "ftp://x/a.png",
            "s3://bucket/a.png",
            "gs://b/o",
            "mxc://server/id",
        ] {
            let e = classify(bad).unwrap_err();
            assert_eq!(e.code(), ErrorCode::BadRequest, "{bad}");
            assert!(e.hint().unwrap().contains("http"), "{bad}");
            assert!(e.details()["scheme"].is_string());
        }
        let long = format!("data:text/plain,{}", "x".repeat(1000));
        let e = classify(&long).unwrap_err();
        assert_eq!(
            e.details()["reference"].as_str().unwrap().chars().count(),
            64
        );
    }
}
