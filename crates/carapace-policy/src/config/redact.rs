//! Showing URLs without the credentials they may carry.
//!
//! A URL can be a credential in three places: its userinfo (`https://user:pass@host`), its
//! query (`?access_token=…`, `?sig=…`) and, for webhook URLs (Discord, Slack, most chat
//! webhooks), its path (`/api/webhooks/<id>/<token>`). [`redact_url`] hides the first two and
//! is for URLs that are not themselves secrets (a homeserver, an API base URL);
//! [`redact_secret_url`] keeps only scheme, host and port and is for URLs that are.

/// `scheme://host[:port]` and the rest, with userinfo, query and fragment replaced by `***`.
pub fn redact_url(u: &str) -> String {
    let Some((scheme, rest)) = split_scheme(u) else {
        return redact_opaque(u);
    };
    let (authority, tail) = split_authority(rest);
    let host = match authority.rfind('@') {
        Some(i) => format!("***@{}", &authority[i + 1..]),
        None => authority.to_string(),
    };
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    let mut out = format!("{scheme}://{host}{}", &tail[..path_end]);
    if tail[path_end..].starts_with('?') {
        out.push_str("?***");
    } else if tail[path_end..].starts_with('#') {
        out.push_str("#***");
    }
    out
}

/// `scheme://host[:port]/***`: for URLs that are secrets as a whole (webhook URLs).
pub fn redact_secret_url(u: &str) -> String {
    let Some((scheme, rest)) = split_scheme(u) else {
        return "***".into();
    };
    let (authority, _) = split_authority(rest);
    let host = authority.rsplit('@').next().unwrap_or(authority);
    format!("{scheme}://{host}/***")
}

/// True if the URL carries userinfo or a query (either may be a credential).
pub fn url_may_carry_credentials(u: &str) -> bool {
    match split_scheme(u) {
        Some((_, rest)) => {
            let (authority, tail) = split_authority(rest);
            authority.contains('@') || tail.contains('?')
        }
        None => true,
    }
}

fn split_scheme(u: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = u.split_once("://")?;
    (!scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
    .then_some((scheme, rest))
}

fn split_authority(rest: &str) -> (&str, &str) {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    rest.split_at(end)
}

/// Something that is not a URL at all: show its length only.
fn redact_opaque(u: &str) -> String {
    format!(
        "(a {}-character value that is not a URL)",
        u.chars().count()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts() {
        assert_eq!(
            redact_url("https://bob:pw@matrix.example.org:8448/x?access_token=s3cret#f"),
            "https://***@matrix.example.org:8448/x?***"
        );
        assert_eq!(redact_url("http://127.0.0.1:8008"), "http://127.0.0.1:8008");
        assert_eq!(
            redact_secret_url("https://discord.com/api/webhooks/1/TOKEN"),
            "https://discord.com/***"
        );
        assert_eq!(
            redact_secret_url("https://u:p@hooks.slack.com/services/T/B/X"),
            "https://hooks.slack.com/***"
        );
        assert!(!redact_url("ftp:not-a-url-secret").contains("secret"));
        assert!(url_may_carry_credentials("https://h/x?token=1"));
        assert!(url_may_carry_credentials("https://u@h/"));
        assert!(!url_may_carry_credentials("https://h/x"));
    }
}
