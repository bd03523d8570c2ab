//! The one table of OpenClaw settings carapace does not implement, and what it does with each
//! instead of silently dropping it.
//!
//! The rule it encodes: a setting that **restricts** something (a deny list, an allowlist, a
//! security mode, approvals, a confinement, a limit) and that carapace cannot honour is
//! `CONFIG_INVALID` naming the key — a user who believes a tool is off must never find it on. A
//! setting that only **adds** a feature carapace lacks is dropped with one warning. A setting
//! whose restriction carapace already enforces by construction (every file tool is confined to
//! the session's mounts; nothing ever leaves the sandbox "elevated") is accepted silently.
//!
//! [`crate::config::prepass`] consults [`check`] for every key it drops; `docs/config.md` is
//! checked against [`doc_table`] by a test, so the page and the code cannot drift apart.

use serde_json::Value;

/// What carapace does with a matching key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `CONFIG_INVALID`: the key restricts something carapace cannot honour.
    Refuse,
    /// Dropped with one warning: the key adds a feature carapace does not have.
    Warn,
    /// Dropped without a warning: carapace already enforces what the key asks for.
    Accept,
}

/// Which values a row applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Every value.
    Any,
    /// Only this JSON value (written as JSON text: `true`, `"off"`).
    Is(&'static str),
    /// Every value but this one.
    IsNot(&'static str),
}

impl When {
    fn matches(self, v: &Value) -> bool {
        let lit = |s: &str| serde_json::from_str::<Value>(s).ok();
        match self {
            When::Any => true,
            When::Is(s) => lit(s).as_ref() == Some(v),
            When::IsNot(s) => lit(s).as_ref() != Some(v),
        }
    }

    fn describe(self) -> String {
        match self {
            When::Any => "any value".into(),
            When::Is(s) => format!("`{s}`"),
            When::IsNot(s) => format!("other than `{s}`"),
        }
    }
}

/// One row: a key (a path pattern: `agents.*` is any agent layer — `agents.defaults`,
/// `agents.entries.<id>`, `agents.list[]`), which values, the verdict, and why / what to do.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// The key.
    pub path: &'static str,
    /// Which of its values.
    pub when: When,
    /// What carapace does.
    pub verdict: Verdict,
    /// Why, and what to write instead.
    pub why: &'static str,
}

const fn row(path: &'static str, when: When, verdict: Verdict, why: &'static str) -> Row {
    Row {
        path,
        when,
        verdict,
        why,
    }
}

use Verdict::{Accept, Refuse, Warn};
use When::{Any, Is, IsNot};

/// The table. The first row whose path and value match decides.
pub const ROWS: &[Row] = &[
    // --- tool policy -------------------------------------------------------------------
    row(
        "tools.byProvider",
        Any,
        Refuse,
        "tool policy per model provider is not implemented; write the restriction in tools.deny or the agent's tools.deny",
    ),
    row(
        "agents.*.tools.byProvider",
        Any,
        Refuse,
        "tool policy per model provider is not implemented; write the restriction in the agent's tools.deny",
    ),
    row(
        "agents.defaults.tools",
        Any,
        Refuse,
        "the global tool policy is tools.* and a per-agent one is agents.list[].tools (or agents.entries.<id>.tools); carapace reads none here",
    ),
    row(
        "agents.defaults.sandbox.tools",
        Any,
        Refuse,
        "the sandbox tool policy is tools.sandbox.tools (per agent: agents.list[].tools.sandbox.tools)",
    ),
    row(
        "agents.*.sandbox.tools",
        Any,
        Refuse,
        "the sandbox tool policy is tools.sandbox.tools (per agent: agents.list[].tools.sandbox.tools)",
    ),
    // --- exec ----------------------------------------------------------------------------
    row(
        "tools.exec.ask",
        IsNot("\"off\""),
        Refuse,
        "exec approval prompts are not implemented: carapace runs a command or refuses it; use tools.exec.security \"allowlist\" with tools.exec.allowlist, or \"deny\"",
    ),
    row(
        "tools.exec.ask",
        Is("\"off\""),
        Accept,
        "no approval prompts, which is carapace's behaviour",
    ),
    row(
        "agents.*.tools.exec.ask",
        IsNot("\"off\""),
        Refuse,
        "exec approval prompts are not implemented; use the agent's tools.exec.security",
    ),
    row(
        "agents.*.tools.exec.ask",
        Is("\"off\""),
        Accept,
        "no approval prompts, which is carapace's behaviour",
    ),
    row(
        "tools.exec.host",
        IsNot("\"sandbox\""),
        Refuse,
        "carapace runs exec in the session's sandbox (on the gateway host only when the sandbox mode leaves the session unsandboxed); other hosts and their approval defaults are not implemented",
    ),
    row(
        "tools.exec.host",
        Is("\"sandbox\""),
        Accept,
        "carapace's behaviour",
    ),
    row(
        "agents.*.tools.exec.host",
        IsNot("\"sandbox\""),
        Refuse,
        "carapace runs exec in the session's sandbox; other hosts are not implemented",
    ),
    row(
        "agents.*.tools.exec.host",
        Is("\"sandbox\""),
        Accept,
        "carapace's behaviour",
    ),
    row(
        "tools.exec.reviewer",
        Any,
        Refuse,
        "exec approval reviewers are not implemented",
    ),
    row(
        "tools.exec.strictInlineEval",
        Is("true"),
        Refuse,
        "approvals for interpreter inline code are not implemented; use tools.exec.security \"allowlist\"",
    ),
    row(
        "agents.*.tools.exec.timeoutSec",
        Any,
        Refuse,
        "per-agent exec timeouts are not implemented; the timeout is tools.exec.timeoutSeconds",
    ),
    row(
        "tools.exec.applyPatch.allowModels",
        Any,
        Refuse,
        "limiting apply_patch to some models is not implemented; deny apply_patch with tools.deny or tools.exec.applyPatch.enabled: false",
    ),
    row(
        "tools.exec.applyPatch.workspaceOnly",
        Is("false"),
        Warn,
        "apply_patch only ever writes inside the session's mounts",
    ),
    row(
        "tools.exec.applyPatch.workspaceOnly",
        Any,
        Accept,
        "apply_patch is always confined to the session's mounts",
    ),
    row(
        "tools.exec.safeBins",
        Any,
        Warn,
        "safe bins are not implemented; list the executables in tools.exec.allowlist",
    ),
    row(
        "tools.exec.pathPrepend",
        Any,
        Warn,
        "exec's PATH is fixed by carapace",
    ),
    // --- files ---------------------------------------------------------------------------
    row(
        "tools.fs.workspaceOnly",
        Is("false"),
        Warn,
        "the file tools only ever reach the session's mounts",
    ),
    row(
        "tools.fs.workspaceOnly",
        Any,
        Accept,
        "the file tools are always confined to the session's mounts",
    ),
    row(
        "agents.*.tools.fs",
        Any,
        Accept,
        "its keys are judged one by one",
    ),
    row(
        "agents.*.tools.fs.workspaceOnly",
        Is("false"),
        Warn,
        "the file tools only ever reach the session's mounts",
    ),
    row(
        "agents.*.tools.fs.workspaceOnly",
        Any,
        Accept,
        "the file tools are always confined to the session's mounts",
    ),
    // --- elevated: carapace has no way out of the sandbox --------------------------------
    row(
        "tools.elevated.enabled",
        Is("false"),
        Accept,
        "carapace has no elevated mode: exec never leaves the sandbox",
    ),
    row(
        "tools.elevated.enabled",
        Any,
        Warn,
        "carapace has no elevated mode: exec never leaves the sandbox",
    ),
    row(
        "tools.elevated.allowFrom",
        Any,
        Accept,
        "nobody can elevate in carapace",
    ),
    row(
        "tools.elevated",
        Any,
        Accept,
        "carapace has no elevated mode: exec never leaves the sandbox",
    ),
    row(
        "agents.*.tools.elevated.enabled",
        Is("false"),
        Accept,
        "carapace has no elevated mode",
    ),
    row(
        "agents.*.tools.elevated.enabled",
        Any,
        Warn,
        "carapace has no elevated mode: exec never leaves the sandbox",
    ),
    row(
        "agents.*.tools.elevated.allowFrom",
        Any,
        Accept,
        "nobody can elevate in carapace",
    ),
    row(
        "agents.*.tools.elevated",
        Any,
        Accept,
        "carapace has no elevated mode",
    ),
    // --- message -------------------------------------------------------------------------
    row(
        "tools.message.crossContext.allowWithinProvider",
        Is("false"),
        Refuse,
        "cross-conversation limits on the message tool are not implemented: it sends to the target it is given",
    ),
    row(
        "tools.message.crossContext.allowAcrossProviders",
        Is("false"),
        Refuse,
        "cross-channel limits on the message tool are not implemented: it sends to the channel it is given",
    ),
    row(
        "tools.message.crossContext.allowWithinProvider",
        Any,
        Accept,
        "the message tool sends to the target it is given",
    ),
    row(
        "tools.message.crossContext.allowAcrossProviders",
        Any,
        Accept,
        "the message tool sends to the channel it is given",
    ),
    row(
        "tools.message.crossContext.marker",
        Any,
        Warn,
        "cross-context markers are not implemented",
    ),
    row(
        "tools.message.crossContext",
        Any,
        Accept,
        "its keys are judged one by one",
    ),
    row(
        "tools.message.broadcast.enabled",
        Is("false"),
        Accept,
        "the message tool has no broadcast action",
    ),
    row(
        "tools.message.broadcast",
        Any,
        Warn,
        "the message tool has no broadcast action",
    ),
    // --- other OpenClaw tools ------------------------------------------------------------
    row(
        "tools.loopDetection",
        Any,
        Warn,
        "not implemented; the agent's round limit bounds every turn",
    ),
    row(
        "agents.*.tools.loopDetection",
        Any,
        Warn,
        "not implemented; the agent's round limit bounds every turn",
    ),
    // --- sandbox -------------------------------------------------------------------------
    row(
        "agents.*.sandbox.perSession",
        Is("true"),
        Refuse,
        "write scope: \"session\" for a sandbox per session",
    ),
    row(
        "agents.*.sandbox.docker.seccompProfile",
        Any,
        Refuse,
        "custom seccomp profiles are not implemented",
    ),
    row(
        "agents.*.sandbox.docker.apparmorProfile",
        Any,
        Refuse,
        "AppArmor profiles are not implemented",
    ),
    row(
        "agents.*.sandbox.docker.ulimits",
        Any,
        Refuse,
        "Docker ulimits are not implemented; use docker.pidsLimit / memory / cpus",
    ),
    row(
        "agents.*.sandbox.docker.memorySwap",
        Any,
        Refuse,
        "a swap limit is not implemented; docker.memory is",
    ),
    row(
        "agents.*.sandbox.docker.cpuShares",
        Any,
        Refuse,
        "CPU shares are not implemented; docker.cpus is",
    ),
];

/// Replaces a leading agent layer (`agents.defaults`, `agents.entries.*`, `agents.list[]`)
/// with `agents.*`.
fn generic(pattern: &str) -> Option<String> {
    for p in ["agents.defaults", "agents.entries.*", "agents.list[]"] {
        if let Some(rest) = pattern.strip_prefix(p)
            && (rest.is_empty() || rest.starts_with('.'))
        {
            return Some(format!("agents.*{rest}"));
        }
    }
    None
}

fn row_for(pattern: &str, v: &Value) -> Option<&'static Row> {
    let g = generic(pattern);
    ROWS.iter()
        .find(|r| r.path == pattern && r.when.matches(v))
        .or_else(|| {
            g.as_deref()
                .and_then(|g| ROWS.iter().find(|r| r.path == g && r.when.matches(v)))
        })
}

/// What checking a dropped key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// A restricting key: the JSON path and the message.
    Refuse {
        /// JSON path of the key.
        path: String,
        /// Why it is refused and what to write instead.
        message: String,
    },
    /// One warning line.
    Warn(String),
}

/// Checks a key the prepass is about to drop: `pattern` is its path pattern (`tools.exec.ask`,
/// `agents.list[].tools.byProvider`), `path` its JSON path. Object values are checked key by
/// key too (a restricting `crossContext.allowWithinProvider: false` inside a dropped
/// `crossContext`). Returns the refusal if any, else the warnings (none when accepted);
/// `default_warning` is used when no row speaks about the key itself.
pub fn check(pattern: &str, path: &str, value: &Value, default_warning: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    visit(pattern, path, value, Some(default_warning), &mut out);
    if let Some(r) = out.iter().find(|f| matches!(f, Finding::Refuse { .. })) {
        return vec![r.clone()];
    }
    out
}

fn visit(pattern: &str, path: &str, value: &Value, default: Option<&str>, out: &mut Vec<Finding>) {
    match row_for(pattern, value) {
        Some(r) => match r.verdict {
            Verdict::Refuse => out.push(Finding::Refuse {
                path: path.to_string(),
                message: format!(
                    "{} restricts what carapace would run, but carapace does not implement it ({}); carapace refuses the file rather than ignore a restriction",
                    shown(value),
                    r.why
                ),
            }),
            Verdict::Warn => out.push(Finding::Warn(format!(
                "{path}: OpenClaw setting not implemented by carapace ({}); ignored",
                r.why
            ))),
            Verdict::Accept => {}
        },
        None => {
            if let Some(d) = default {
                out.push(Finding::Warn(format!("{path}: {d}")));
            }
        }
    }
    if let Value::Object(m) = value {
        for (k, v) in m {
            let child = format!("{pattern}.{k}");
            // Children only speak when a row names them; the key itself already warned.
            visit(&child, &format!("{path}.{k}"), v, None, out);
        }
    }
}

fn shown(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 60 {
        "this setting".into()
    } else {
        s
    }
}

/// The two lists of docs/config.md, generated from [`ROWS`]: restricting keys carapace refuses,
/// then keys it drops with a warning or accepts.
pub fn doc_table() -> String {
    let mut s = String::new();
    s.push_str("| key | values | carapace | why |\n|---|---|---|---|\n");
    for verdict in [Verdict::Refuse, Verdict::Warn, Verdict::Accept] {
        for r in ROWS.iter().filter(|r| r.verdict == verdict) {
            let what = match r.verdict {
                Verdict::Refuse => "**refused** (`CONFIG_INVALID`)",
                Verdict::Warn => "ignored, one warning",
                Verdict::Accept => "accepted (already enforced)",
            };
            s.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                r.path,
                r.when.describe(),
                what,
                r.why.replace('|', "\\|")
            ));
        }
    }
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_decide_by_value() {
        let f = check("tools.exec.ask", "tools.exec.ask", &json!("on-miss"), "x");
        assert!(matches!(&f[..], [Finding::Refuse { path, .. }] if path == "tools.exec.ask"));
        assert!(check("tools.exec.ask", "tools.exec.ask", &json!("off"), "x").is_empty());
        let f = check(
            "agents.list[].tools.byProvider",
            "agents.list[2].tools.byProvider",
            &json!({}),
            "x",
        );
        assert!(
            matches!(&f[..], [Finding::Refuse { path, .. }] if path == "agents.list[2].tools.byProvider")
        );
        // A restricting child inside a dropped object.
        let f = check(
            "tools.message.crossContext",
            "tools.message.crossContext",
            &json!({"allowWithinProvider": true, "allowAcrossProviders": false}),
            "x",
        );
        assert!(
            matches!(&f[..], [Finding::Refuse { path, .. }] if path == "tools.message.crossContext.allowAcrossProviders")
        );
        // Elevated off is already true; on is a feature carapace lacks.
        assert!(
            check(
                "tools.elevated",
                "tools.elevated",
                &json!({"enabled": false}),
                "x"
            )
            .is_empty()
        );
        let f = check(
            "tools.elevated",
            "tools.elevated",
            &json!({"enabled": true}),
            "x",
        );
        assert!(matches!(&f[..], [Finding::Warn(w)] if w.starts_with("tools.elevated.enabled:")));
        // No row: the default warning.
        let f = check("tools.web", "tools.web", &json!({}), "not handled; ignored");
        assert_eq!(
            f,
            vec![Finding::Warn("tools.web: not handled; ignored".into())]
        );
    }

    #[test]
    fn doc_table_lists_every_row() {
        let t = doc_table();
        assert_eq!(t.lines().count(), ROWS.len() + 2);
    }

    /// docs/config.md carries the generated table verbatim.
    #[test]
    fn docs_carry_the_table() {
        let doc = include_str!("../../../../docs/config.md");
        assert!(
            doc.contains(&doc_table()),
            "docs/config.md lacks the current table of OpenClaw settings; paste this:\n{}",
            doc_table()
        );
    }
}
