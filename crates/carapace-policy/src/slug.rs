//! OpenClaw-compatible sandbox scope keys and directory slugs, so that a carapace sandbox
//! directory has the same name OpenClaw would give it.

use sha2::{Digest, Sha256};

use crate::config::Scope;
use crate::session::SessionKey;

/// `slugifySessionKey`: lower-case, runs of `[^a-z0-9._-]` → `-`, trimmed of `-`, at most 32
/// characters (or `session`), then `-` and the first 8 hex digits of sha256 of the trimmed key.
pub fn slugify(key: &str) -> String {
    let trimmed = match key.trim() {
        "" => "session",
        t => t,
    };
    let hash = hex::encode(Sha256::digest(trimmed.as_bytes()));
    let lower = trimmed.to_lowercase();
    let mut safe = String::with_capacity(lower.len());
    let mut in_run = false;
    for c in lower.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-') {
            safe.push(c);
            in_run = false;
        } else if !in_run {
            safe.push('-');
            in_run = true;
        }
    }
    let safe = safe.trim_matches('-');
    let base: String = safe.chars().take(32).collect();
    let base = if base.is_empty() {
        "session".to_string()
    } else {
        base
    };
    format!("{base}-{}", &hash[..8])
}

/// `resolveSandboxScopeKey`: `shared`, the session key itself, or `agent:<agentId>`.
pub fn scope_key(scope: Scope, session: &SessionKey, agent_id: &str) -> String {
    match scope {
        Scope::Shared => "shared".to_string(),
        Scope::Session => {
            if session.raw.is_empty() {
                "main".to_string()
            } else {
                session.raw.clone()
            }
        }
        Scope::Agent => format!("agent:{agent_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_values() {
        // sha256("agent:main:main") starts with these 8 hex digits.
        let h = hex::encode(Sha256::digest(b"agent:main:main"));
        assert_eq!(
            slugify("agent:main:main"),
            format!("agent-main-main-{}", &h[..8])
        );
        assert_eq!(
            slugify("  "),
            format!("session-{}", &hex::encode(Sha256::digest(b"session"))[..8])
        );
        assert!(slugify("agent:main:telegram:dm:4242").starts_with("agent-main-telegram-dm-4242-"));
        assert!(slugify("---").starts_with("session-"));
        assert!(slugify("Ünïcode Käy").starts_with("n-code-k-y-"));
    }

    proptest! {
        #[test]
        fn slug_is_safe_bounded_and_stable(key in "\\PC{0,80}") {
            let s = slugify(&key);
            prop_assert!(s.len() <= 32 + 9);
            prop_assert!(s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')));
            prop_assert!(!s.starts_with('-'));
            prop_assert_eq!(&s, &slugify(&key));
            prop_assert!(s != "." && s != ".." && !s.contains('/'));
        }

        #[test]
        fn different_keys_rarely_collide(a in "[a-z:]{1,20}", b in "[a-z:]{1,20}") {
            prop_assume!(a.trim() != b.trim());
            prop_assert_ne!(slugify(&a), slugify(&b));
        }
    }
}
