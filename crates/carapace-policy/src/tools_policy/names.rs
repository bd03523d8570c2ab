//! The entries of a tool list, as OpenClaw reads them: matching is case-insensitive, `bash` is
//! `exec` and `apply-patch` is `apply_patch`, `*` is a wildcard (`"*"` alone is every tool),
//! and `group:<id>` names a whole section.

use super::catalog::{Catalog, ToolMeta, group_names};

/// A tool name as the policy compares it: trimmed, lower-case, OpenClaw's aliases resolved.
pub fn normalize(name: &str) -> String {
    let n = name.trim().to_lowercase();
    match n.as_str() {
        "bash" => "exec".into(),
        "apply-patch" => "apply_patch".into(),
        _ => n,
    }
}

/// Whether one list entry names `tool` (whose facts are `meta`).
pub fn entry_matches(entry: &str, tool: &str, meta: &ToolMeta) -> bool {
    let e = normalize(entry);
    if let Some(g) = e.strip_prefix("group:") {
        return match g {
            "carapace" => true,
            "openclaw" => meta.openclaw_group,
            s => meta.section.as_str() == s,
        };
    }
    glob(&e, tool)
}

/// The first entry of `list` that names `tool`.
pub fn first_match<'a>(list: &'a [String], tool: &str, meta: &ToolMeta) -> Option<&'a str> {
    list.iter()
        .map(String::as_str)
        .find(|e| entry_matches(e, tool, meta))
}

/// Whether an allowlist lets `tool` through. As in OpenClaw, allowing `exec` also allows
/// `apply_patch` (anything a patch does, a command can do).
pub fn allows(list: &[String], tool: &str, meta: &ToolMeta, catalog: &Catalog) -> bool {
    if first_match(list, tool, meta).is_some() {
        return true;
    }
    tool == "apply_patch"
        && catalog
            .get("exec")
            .is_some_and(|m| first_match(list, "exec", m).is_some())
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob(pattern: &str, s: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = s.chars().collect();
    // Iterative matcher with one backtrack point (the classic wildcard algorithm).
    let (mut i, mut j) = (0usize, 0usize);
    let (mut star, mut mark) = (None::<usize>, 0usize);
    while j < t.len() {
        if i < p.len() && p[i] != '*' && p[i] == t[j] {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(si) = star {
            i = si + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    while i < p.len() && p[i] == '*' {
        i += 1;
    }
    i == p.len()
}

/// Checks one entry of a configured list: not empty, no NUL, and a `group:` entry names a
/// group that exists (an unknown group in a deny list would deny nothing while looking like
/// it denies something).
pub fn check_entry(entry: &str) -> Result<(), String> {
    if entry.trim().is_empty() {
        return Err("an empty entry names no tool".into());
    }
    if entry.contains('\0') {
        return Err(format!("{entry:?} contains a NUL byte"));
    }
    let e = normalize(entry);
    if e.starts_with("group:") && !group_names().contains(&e) {
        return Err(format!(
            "{entry:?} is not a tool group; groups: {}",
            group_names().join(", ")
        ));
    }
    Ok(())
}

/// Whether an entry can match some tool of `catalog` (groups and `*` always can).
pub fn names_something(entry: &str, catalog: &Catalog) -> bool {
    let e = normalize(entry);
    e.starts_with("group:") || catalog.iter().any(|(n, m)| entry_matches(&e, n, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*", "exec"));
        assert!(glob("ex*", "exec"));
        assert!(glob("*_patch", "apply_patch"));
        assert!(glob("a*p*h", "apply_patch"));
        assert!(!glob("ex", "exec"));
        assert!(!glob("exec*x", "exec"));
        assert!(glob("", ""));
        assert!(!glob("", "a"));
        assert!(glob("**", ""));
    }

    #[test]
    fn names() {
        assert_eq!(normalize(" Bash "), "exec");
        assert_eq!(normalize("APPLY-patch"), "apply_patch");
        assert!(check_entry("group:fs").is_ok());
        assert!(check_entry("group:nope").is_err());
        assert!(check_entry(" ").is_err());
        assert!(check_entry("whatever_plugin_tool").is_ok());
    }
}
