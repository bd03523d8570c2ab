//! Content type: sniffed from the bytes first (`infer`), then the declared type, then the
//! file name's extension.

/// Bytes looked at when sniffing.
pub const SNIFF_BYTES: usize = 8192;

/// A decided content type and the extension that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kind {
    /// MIME type.
    pub mime: String,
    /// Extension without the dot (`bin` when nothing is known).
    pub ext: String,
}

// (mime, ext) pairs for declared types and extensions `infer` cannot see in the bytes.
const TABLE: &[(&str, &str)] = &[
    ("image/png", "png"),
    ("image/jpeg", "jpg"),
    ("image/jpeg", "jpeg"),
    ("image/gif", "gif"),
    ("image/webp", "webp"),
    ("image/svg+xml", "svg"),
    ("application/pdf", "pdf"),
    ("text/plain", "txt"),
    ("text/markdown", "md"),
    ("text/csv", "csv"),
    ("text/html", "html"),
    ("application/json", "json"),
    ("audio/mpeg", "mp3"),
    ("audio/ogg", "ogg"),
    ("video/mp4", "mp4"),
    ("application/zip", "zip"),
];

fn mime_for_ext(ext: &str) -> Option<&'static str> {
    let ext = ext.to_ascii_lowercase();
    TABLE.iter().find(|(_, e)| *e == ext).map(|(m, _)| *m)
}

fn ext_for_mime(mime: &str) -> Option<&'static str> {
    TABLE.iter().find(|(m, _)| *m == mime).map(|(_, e)| *e)
}

/// The extension of `name` (lower-case, alphanumeric, at most 10 chars), if it has one.
pub fn extension(name: &str) -> Option<String> {
    let (stem, ext) = name.rsplit_once('.')?;
    if stem.is_empty() || ext.is_empty() || ext.len() > 10 {
        return None;
    }
    ext.chars()
        .all(|c| c.is_ascii_alphanumeric())
        .then(|| ext.to_ascii_lowercase())
}

/// Decides the type of content whose first bytes are `head`.
pub fn detect(head: &[u8], declared: Option<&str>, filename: Option<&str>) -> Kind {
    if let Some(t) = infer::get(head) {
        return Kind {
            mime: t.mime_type().to_string(),
            ext: t.extension().to_string(),
        };
    }
    let declared = declared
        .map(|d| {
            d.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|d| d.contains('/') && d != "application/octet-stream");
    if let Some(d) = declared {
        let ext = ext_for_mime(&d)
            .map(str::to_string)
            .or_else(|| filename.and_then(extension))
            .unwrap_or_else(|| "bin".into());
        return Kind { mime: d, ext };
    }
    if let Some(ext) = filename.and_then(extension) {
        let mime = mime_for_ext(&ext).unwrap_or("application/octet-stream");
        return Kind {
            mime: mime.to_string(),
            ext,
        };
    }
    Kind {
        mime: "application/octet-stream".into(),
        ext: "bin".into(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn bytes_beat_declared_beat_extension() {
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        let k = detect(png, Some("text/plain"), Some("x.txt"));
        assert_eq!((k.mime.as_str(), k.ext.as_str()), ("image/png", "png"));
        let k = detect(b"hello", Some("text/csv; charset=utf-8"), Some("x.txt"));
        assert_eq!((k.mime.as_str(), k.ext.as_str()), ("text/csv", "csv"));
        let k = detect(b"hello", Some("application/octet-stream"), Some("notes.MD"));
        assert_eq!((k.mime.as_str(), k.ext.as_str()), ("text/markdown", "md"));
        let k = detect(b"hello", None, Some("noext"));
        assert_eq!(
            (k.mime.as_str(), k.ext.as_str()),
            ("application/octet-stream", "bin")
        );
        assert_eq!(extension(".bashrc"), None);
        assert_eq!(extension("a.tar.gz"), Some("gz".into()));
        assert_eq!(extension("a.p/g"), None);
    }
}
