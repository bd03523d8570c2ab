//! The pass over the raw JSON value that runs before typed deserialization.
//!
//! carapace reads OpenClaw's `openclaw.json`, which has far more than carapace handles. This pass
//! decides, object by object, what happens to a key carapace does not know:
//!
//! * **strict** objects (carapace owns them: `agents.defaults.sandbox`, `tools.fs`, `media`, …)
//!   reject unknown keys — except keys OpenClaw defines there and carapace does not implement,
//!   which are dropped with a warning;
//! * **mixed** objects (shared with the rest of OpenClaw: the top level, `agents.defaults`,
//!   `channels.<id>`, `gateway`, …) drop unknown keys with one warning each, unless the key is a
//!   near miss of a key carapace handles (`sandbx`), which is an error.
//!
//! It also normalises the channel array form into the map form and expands `${ENV}` and `~`.

use serde_json::{Map, Value};

use super::expand::{expand_env, expand_tilde};

/// Channel ids carapace implements.
pub const HANDLED_CHANNELS: &[&str] =
    &["inbox", "matrix", "discord", "telegram", "slack", "webhook"];

/// Keys whose string values are secrets: never expanded here (see `Secret`), never shown.
const SECRET_KEYS: &[&str] = &["botToken", "token", "accessToken", "appToken"];

enum Kind {
    /// Unknown keys are errors, except these OpenClaw keys, which are dropped with a warning.
    Strict(&'static [&'static str]),
    /// Unknown keys are dropped with a warning, except near misses of `known` (the first list)
    /// that are not keys OpenClaw itself defines there (the second list).
    Mixed(&'static [&'static str], &'static [&'static str]),
}

/// OpenClaw keys of a per-agent `tools.exec` carapace does not read (the table of OpenClaw
/// settings decides which are refused).
const PER_AGENT_EXEC_OPENCLAW: &[&str] = &[
    "host",
    "ask",
    "node",
    "timeoutSec",
    "backgroundMs",
    "pathPrepend",
    "safeBins",
    "safeBinTrustedDirs",
    "safeBinProfiles",
    "strictInlineEval",
    "applyPatch",
    "reviewer",
    "notifyOnExit",
];

/// The rules, by path pattern (`*` = any map key, `[]` = any array element).
fn rule(pattern: &str) -> Option<Kind> {
    const SANDBOX_OPENCLAW: &[&str] = &[
        "browser",
        "perSession",
        "sessionToolsVisibility",
        "ssh",
        "novnc",
        "tools",
    ];
    const DOCKER_OPENCLAW: &[&str] = &[
        "workdir",
        "setupCommand",
        "dns",
        "extraHosts",
        "seccompProfile",
        "apparmorProfile",
        "ulimits",
        "memorySwap",
        "cpuShares",
        "capAdd",
        "dangerouslyAllowReservedContainerTargets",
    ];
    const AGENT_KNOWN: &[&str] = &["id", "default", "workspace", "sandbox", "tools"];
    const AGENT_OPENCLAW: &[&str] = &[
        "name",
        "model",
        "models",
        "identity",
        "heartbeat",
        "subagents",
        "skills",
    ];
    const EXEC_OPENCLAW: &[&str] = &[
        "host",
        "ask",
        "node",
        "backgroundMs",
        "yieldMs",
        "pathPrepend",
        "safeBins",
        "safeBinTrustedDirs",
        "safeBinProfiles",
        "strictInlineEval",
        "commandHighlighting",
        "reviewer",
        "approvalRunningNoticeMs",
        "notifyOnExit",
        "notifyOnExitEmptySuccess",
        "cleanupMs",
        "remote",
    ];
    Some(match pattern {
        "" => Kind::Mixed(
            &[
                "agents", "tools", "media", "channels", "gateway", "browser", "session", "hooks",
                "bindings",
            ],
            &[
                "meta",
                "env",
                "wizard",
                "diagnostics",
                "logging",
                "update",
                "ui",
                "auth",
                "models",
                "broadcast",
                "audio",
                "messages",
                "commands",
                "approvals",
                "cron",
                "web",
                "discovery",
                "canvasHost",
                "talk",
                "skills",
                "plugins",
                "memory",
                "secrets",
                "acp",
                "nodeHost",
                "mcp",
            ],
        ),
        "agents" => Kind::Strict(&[]),
        // `tools` is per agent only: the global tool policy is `tools.*` (a `tools` here is
        // dropped, and refused by the table of OpenClaw settings).
        "agents.defaults" => Kind::Mixed(
            &["id", "default", "workspace", "sandbox"],
            &[
                "name",
                "model",
                "models",
                "identity",
                "heartbeat",
                "subagents",
                "skills",
                "tools",
            ],
        ),
        "agents.entries.*" | "agents.list[]" => Kind::Mixed(AGENT_KNOWN, AGENT_OPENCLAW),
        "agents.entries.*.tools" | "agents.list[].tools" => {
            Kind::Strict(&["byProvider", "elevated", "fs", "loopDetection"])
        }
        "agents.entries.*.tools.exec" | "agents.list[].tools.exec" => {
            Kind::Strict(PER_AGENT_EXEC_OPENCLAW)
        }
        "agents.entries.*.tools.sandbox" | "agents.list[].tools.sandbox" => Kind::Strict(&[]),
        "agents.entries.*.tools.sandbox.tools" | "agents.list[].tools.sandbox.tools" => {
            Kind::Strict(&[])
        }
        "agents.defaults.sandbox" | "agents.entries.*.sandbox" | "agents.list[].sandbox" => {
            Kind::Strict(SANDBOX_OPENCLAW)
        }
        "agents.defaults.sandbox.docker"
        | "agents.entries.*.sandbox.docker"
        | "agents.list[].sandbox.docker" => Kind::Strict(DOCKER_OPENCLAW),
        "agents.defaults.sandbox.prune"
        | "agents.entries.*.sandbox.prune"
        | "agents.list[].sandbox.prune" => Kind::Strict(&[]),
        "tools" => Kind::Mixed(
            &[
                "fs",
                "exec",
                "message",
                "profile",
                "allow",
                "deny",
                "alsoAllow",
                "sandbox",
                "subagents",
            ],
            &[
                "byProvider",
                "web",
                "media",
                "links",
                "elevated",
                "agentToAgent",
                "sessions",
                "loopDetection",
                "experimental",
                "codeExecution",
            ],
        ),
        "tools.sandbox" => Kind::Strict(&[]),
        "tools.sandbox.tools" => Kind::Strict(&[]),
        // carapace has no sub-agents; only the tool lists of sub-agent sessions are read.
        "tools.subagents" => Kind::Mixed(&["tools"], &[]),
        "tools.subagents.tools" => Kind::Strict(&[]),
        "tools.fs" => Kind::Strict(&["workspaceOnly"]),
        // Strict: an unknown key in the exec policy could be a restriction carapace would
        // silently not apply.
        "tools.exec" => Kind::Strict(EXEC_OPENCLAW),
        "tools.exec.applyPatch" => Kind::Strict(&["workspaceOnly", "allowModels"]),
        "tools.message" => Kind::Mixed(&["outboundMediaPolicy"], &["crossContext", "broadcast"]),
        "tools.message.outboundMediaPolicy" => Kind::Strict(&[]),
        "media" => Kind::Strict(&[]),
        "channels.*" => Kind::Mixed(
            &[
                "id",
                "enabled",
                "botToken",
                "token",
                "accessToken",
                "homeserver",
                "userId",
                "url",
                "headers",
                "dir",
                "session",
                "mediaMaxMb",
                "apiBaseUrl",
                "receive",
                "dmPolicy",
                "allowFrom",
                "dm",
                "groupPolicy",
                "groupAllowFrom",
                "groups",
                "rooms",
                "requireMention",
                "allowlistOnly",
                "autoJoin",
                "autoJoinAllowlist",
                "textChunkLimit",
                "encryption",
                "appToken",
                "mode",
                "intents",
                "allowBots",
            ],
            &[
                "name",
                "accounts",
                "defaultAccount",
                "streaming",
                "proxy",
                "webhookUrl",
                "webhookSecret",
                "webhookPath",
                "guilds",
                "actions",
                "chunkMode",
                "replyToMode",
                "threadReplies",
                "signingSecret",
                "historyLimit",
                "initialSyncLimit",
                "deviceName",
                "password",
                "tokenFile",
                "markdown",
                "linkPreview",
                "reactionNotifications",
                "blockStreaming",
                "configWrites",
                "capabilities",
                "retry",
                "network",
                "commands",
            ],
        ),
        "channels.*.dm" => Kind::Mixed(
            &["enabled", "policy", "allowFrom"],
            &["groupEnabled", "groupChannels"],
        ),
        "channels.*.groups.*"
        | "channels.*.rooms.*"
        | "channels.*.groups.*.topics.*"
        | "channels.*.rooms.*.topics.*" => Kind::Strict(&[
            "systemPrompt",
            "skills",
            "autoReply",
            "historyLimit",
            "allowBots",
            "botLoopProtection",
        ]),
        "session" => Kind::Mixed(
            &["dmScope", "mainKey", "identityLinks", "sendPolicy"],
            &[
                "scope",
                "reset",
                "resetByType",
                "resetByChannel",
                "resetTriggers",
                "idleMinutes",
                "store",
                "typingIntervalSeconds",
                "typingMode",
                "agentToAgent",
                "threadBindings",
                "maintenance",
                "parentForkMaxTokens",
            ],
        ),
        "hooks" => Kind::Mixed(
            &[
                "enabled",
                "token",
                "path",
                "allowedAgentIds",
                "defaultSessionKey",
                "allowRequestSessionKey",
                "allowedSessionKeyPrefixes",
                "maxBodyBytes",
            ],
            &["mappings", "presets", "transformsDir", "gmail", "internal"],
        ),
        "channels.*.session" => Kind::Strict(&[]),
        "channels.*.intents" => Kind::Strict(&[]),
        "gateway" => Kind::Mixed(
            &[
                "bind",
                "port",
                "maxBodyBytes",
                "requestTimeoutSeconds",
                "maxConnections",
                "headerTimeoutSeconds",
                "bodyTimeoutSeconds",
                "auth",
                "tools",
                "mcp",
                "http",
            ],
            &[
                "mode",
                "controlUi",
                "remote",
                "tailscale",
                "reload",
                "trustedProxies",
                "tls",
                "customBindHost",
                "nodes",
            ],
        ),
        "gateway.tools" | "gateway.mcp" | "gateway.mcp.tools" => Kind::Strict(&[]),
        "gateway.http" => Kind::Mixed(&["endpoints"], &["securityHeaders"]),
        "gateway.http.endpoints" => Kind::Mixed(&["chatCompletions"], &["responses"]),
        "gateway.http.endpoints.chatCompletions" => Kind::Mixed(&["enabled"], &[]),
        "gateway.auth" => Kind::Mixed(
            &["mode", "token"],
            &["password", "allowTailscale", "rateLimit"],
        ),
        "browser" => Kind::Mixed(
            &[
                "executablePath",
                "allowPrivateNetwork",
                "maxPages",
                "timeoutSeconds",
            ],
            &[
                "enabled",
                "headless",
                "noSandbox",
                "profiles",
                "cdpUrl",
                "attachOnly",
                "defaultProfile",
                "color",
                "ssrfPolicy",
            ],
        ),
        _ => return None,
    })
}

/// An error found by the pass: the JSON path and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrepassError {
    /// JSON path, e.g. `agents.defaults.sandbx`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// What the pass produced besides the rewritten value.
#[derive(Debug, Default)]
pub struct PrepassReport {
    /// One line per ignored section or key.
    pub warnings: Vec<String>,
}

/// Environment the pass may consult (injected: the policy crate does no I/O).
pub struct Env<'a> {
    /// Looks up an environment variable.
    pub var: &'a dyn Fn(&str) -> Option<String>,
    /// The home directory, for `~`.
    pub home: &'a str,
}

/// Runs the pass over the whole document.
pub fn run(root: &mut Value, env: &Env<'_>) -> Result<PrepassReport, PrepassError> {
    let mut report = PrepassReport::default();
    if !root.is_object() {
        return Err(PrepassError {
            path: "(root)".into(),
            message: format!("the config must be a JSON5 object, found {}", kind_of(root)),
        });
    }
    normalise_channels(root, &mut report)?;
    walk(root, "", "", env, &mut report)?;
    Ok(report)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `channels: [ {id: "telegram", ...} ]` → `channels: { telegram: {...} }`, and drops channels
/// carapace does not implement (with a warning).
fn normalise_channels(root: &mut Value, report: &mut PrepassReport) -> Result<(), PrepassError> {
    let Some(obj) = root.as_object_mut() else {
        return Ok(());
    };
    let Some(channels) = obj.get_mut("channels") else {
        return Ok(());
    };
    if let Value::Array(items) = channels {
        let mut map = Map::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("channels[{i}]");
            let id = item
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| PrepassError {
                    path: path.clone(),
                    message: "an element of the channel list needs a string \"id\"".into(),
                })?
                .to_string();
            if map.insert(id.clone(), item.clone()).is_some() {
                return Err(PrepassError {
                    path,
                    message: format!("channel {id:?} is listed twice"),
                });
            }
        }
        *channels = Value::Object(map);
    }
    let Value::Object(map) = channels else {
        return Err(PrepassError {
            path: "channels".into(),
            message: format!(
                "{} is not an object or an array of channels",
                kind_of(channels)
            ),
        });
    };
    let unhandled: Vec<String> = map
        .keys()
        .filter(|k| !HANDLED_CHANNELS.contains(&k.as_str()))
        .cloned()
        .collect();
    for k in unhandled {
        if let Some(near) = near_miss(&k, HANDLED_CHANNELS) {
            return Err(PrepassError {
                path: format!("channels.{k}"),
                message: format!(
                    "unknown channel {k:?} (did you mean {near:?}?); carapace handles {}",
                    HANDLED_CHANNELS.join(", ")
                ),
            });
        }
        report.warnings.push(format!(
            "channels.{k}: channel not handled by carapace (it handles {}); ignored",
            HANDLED_CHANNELS.join(", ")
        ));
        map.remove(&k);
    }
    Ok(())
}

fn walk(
    v: &mut Value,
    path: &str,
    pattern: &str,
    env: &Env<'_>,
    report: &mut PrepassReport,
) -> Result<(), PrepassError> {
    match v {
        Value::Object(map) => {
            if pattern == "tools.exec" {
                alias_timeout_sec(map)?;
            }
            if let Some(kind) = rule(pattern) {
                apply_rule(map, path, pattern, &kind, report)?;
            }
            let secret_object = pattern.ends_with(".headers");
            for (k, child) in map.iter_mut() {
                let child_path = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let child_pattern = child_pattern(pattern, k);
                let secret_url = pattern == "channels.*" && k == "url";
                if secret_object || secret_url || SECRET_KEYS.contains(&k.as_str()) {
                    continue; // resolved later by `Secret::resolve`
                }
                walk(child, &child_path, &child_pattern, env, report)?;
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                walk(
                    child,
                    &format!("{path}[{i}]"),
                    &format!("{pattern}[]"),
                    env,
                    report,
                )?;
            }
        }
        Value::String(s) => {
            let expanded = expand_env(s, env.var).map_err(|e| PrepassError {
                path: path.to_string(),
                message: e.to_string(),
            })?;
            *s = expand_tilde(&expanded, env.home);
        }
        _ => {}
    }
    Ok(())
}

/// The pattern of a child: map keys of `agents.entries` and `channels` become `*`.
fn child_pattern(pattern: &str, key: &str) -> String {
    if pattern == "agents.entries"
        || pattern == "channels"
        || pattern == "channels.*.groups"
        || pattern == "channels.*.rooms"
        || pattern == "channels.*.groups.*.topics"
        || pattern == "channels.*.rooms.*.topics"
    {
        format!("{pattern}.*")
    } else if pattern.is_empty() {
        key.to_string()
    } else {
        format!("{pattern}.{key}")
    }
}

/// OpenClaw's `tools.exec.timeoutSec` is carapace's `timeoutSeconds` (a limit: it must not be
/// dropped). Both given with different values is an error.
fn alias_timeout_sec(map: &mut Map<String, Value>) -> Result<(), PrepassError> {
    let Some(v) = map.remove("timeoutSec") else {
        return Ok(());
    };
    match map.get("timeoutSeconds") {
        Some(w) if *w != v => Err(PrepassError {
            path: "tools.exec.timeoutSec".into(),
            message: format!(
                "{v} contradicts tools.exec.timeoutSeconds {w}; OpenClaw's timeoutSec is carapace's timeoutSeconds: keep one"
            ),
        }),
        _ => {
            map.insert("timeoutSeconds".into(), v);
            Ok(())
        }
    }
}

/// Drops `k` from `map`: the table of OpenClaw settings decides whether that is refused,
/// warned about, or silent.
fn drop_key(
    map: &mut Map<String, Value>,
    k: &str,
    at: &str,
    pattern: &str,
    default_warning: &str,
    report: &mut PrepassReport,
) -> Result<(), PrepassError> {
    let Some(v) = map.remove(k) else {
        return Ok(());
    };
    for f in super::openclaw_keys::check(&child_pattern(pattern, k), at, &v, default_warning) {
        match f {
            super::openclaw_keys::Finding::Refuse { path, message } => {
                return Err(PrepassError { path, message });
            }
            super::openclaw_keys::Finding::Warn(w) => report.warnings.push(w),
        }
    }
    Ok(())
}

fn apply_rule(
    map: &mut Map<String, Value>,
    path: &str,
    pattern: &str,
    kind: &Kind,
    report: &mut PrepassReport,
) -> Result<(), PrepassError> {
    let keys: Vec<String> = map.keys().cloned().collect();
    for k in keys {
        let at = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        match kind {
            Kind::Strict(openclaw) => {
                if openclaw.contains(&k.as_str()) {
                    drop_key(
                        map,
                        &k,
                        &at,
                        pattern,
                        "OpenClaw setting not implemented by carapace; ignored",
                        report,
                    )?;
                }
                // Other unknown keys are left for serde's deny_unknown_fields.
            }
            Kind::Mixed(known, openclaw) => {
                if known.contains(&k.as_str()) {
                    continue;
                }
                let near = if openclaw.contains(&k.as_str()) {
                    None
                } else {
                    near_miss(&k, known)
                };
                if let Some(near) = near {
                    return Err(PrepassError {
                        path: at,
                        message: format!("unknown key {k:?} (did you mean {near:?}?)"),
                    });
                }
                let what = if path.is_empty() {
                    "section not handled by carapace; ignored"
                } else {
                    "setting not handled by carapace; ignored"
                };
                drop_key(map, &k, &at, pattern, what, report)?;
            }
        }
    }
    Ok(())
}

/// A known key within edit distance 2 of `k` (case-insensitive), for typo detection.
fn near_miss<'a>(k: &str, known: &[&'a str]) -> Option<&'a str> {
    if k.len() < 4 {
        return None;
    }
    let lk = k.to_lowercase();
    known
        .iter()
        .copied()
        .filter(|c| c.len() >= 4)
        .find(|c| levenshtein(&lk, &c.to_lowercase()) <= 2)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance() {
        assert_eq!(levenshtein("sandbx", "sandbox"), 1);
        assert_eq!(levenshtein("model", "sandbox"), 6);
        assert_eq!(
            near_miss("sandbx", &["workspace", "sandbox"]),
            Some("sandbox")
        );
        assert_eq!(near_miss("models", &["workspace", "sandbox"]), None);
    }
}
