//! Session keys, OpenClaw style: `agent:<agentId>:<rest>`.

/// The agent id used when nothing names one.
pub const DEFAULT_AGENT_ID: &str = "main";

/// A parsed session key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKey {
    /// The key as given (trimmed).
    pub raw: String,
    /// The agent id named by the key, if it has the `agent:<id>:` form.
    pub agent_id: Option<String>,
    /// What follows `agent:<id>:`, or the whole key.
    pub rest: String,
}

impl SessionKey {
    /// Parses a key. Never fails: a key without the `agent:` prefix has no agent id.
    pub fn parse(raw: &str) -> SessionKey {
        let raw = raw.trim().to_string();
        let mut parts = raw.splitn(3, ':');
        if let (Some("agent"), Some(id), Some(rest)) = (parts.next(), parts.next(), parts.next())
            && !id.is_empty()
        {
            return SessionKey {
                agent_id: Some(normalize_agent_id(id)),
                rest: rest.to_string(),
                raw: raw.clone(),
            };
        }
        SessionKey {
            agent_id: None,
            rest: raw.clone(),
            raw,
        }
    }

    /// The main session key of an agent: `agent:<id>:main`.
    pub fn main_of(agent_id: &str) -> SessionKey {
        SessionKey::parse(&format!("agent:{agent_id}:main"))
    }

    /// `agent:<id>:main` (or a bare `main`).
    pub fn is_main(&self) -> bool {
        self.rest == "main"
    }

    /// The first segment after the agent id (`telegram` in `agent:main:telegram:dm:42`).
    pub fn channel_segment(&self) -> Option<&str> {
        self.agent_id.as_ref()?;
        self.rest.split(':').next().filter(|s| !s.is_empty())
    }
}

/// Normalises an agent id the way OpenClaw does: lower-case, runs of characters outside
/// `[a-z0-9_-]` become `-`, trimmed of `-`, at most 64 characters, empty → `main`.
pub fn normalize_agent_id(id: &str) -> String {
    let lower = id.trim().to_lowercase();
    let mut out = String::with_capacity(lower.len());
    let mut dash = false;
    for c in lower.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
            out.push(c);
            dash = false;
        } else if !dash {
            out.push('-');
            dash = true;
        }
    }
    let t: String = out.trim_matches('-').chars().take(64).collect();
    if t.is_empty() {
        DEFAULT_AGENT_ID.to_string()
    } else {
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        let k = SessionKey::parse("agent:main:telegram:dm:4242");
        assert_eq!(k.agent_id.as_deref(), Some("main"));
        assert_eq!(k.channel_segment(), Some("telegram"));
        assert!(!k.is_main());
        assert!(SessionKey::parse("agent:research:main").is_main());
        let bare = SessionKey::parse("telegram:dm:1");
        assert_eq!(bare.agent_id, None);
        assert_eq!(bare.channel_segment(), None);
        assert_eq!(normalize_agent_id(" Re Search!! "), "re-search");
        assert_eq!(normalize_agent_id("???"), "main");
    }
}
