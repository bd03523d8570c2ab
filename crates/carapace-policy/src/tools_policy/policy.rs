//! Resolution of the tool policy of one session on one surface, with the setting behind every
//! decision.
//!
//! A tool is available when **no** layer blocks it; every layer is a filter, so deny always
//! wins and a later allow never re-opens what an earlier layer closed. The layers, in order:
//!
//! 1. the profile (`agents.*.tools.profile`, else `tools.profile`) with `alsoAllow`;
//! 2. the global lists `tools.allow` / `tools.deny`;
//! 3. the agent's lists `agents.*.tools.allow` / `deny`;
//! 4. the sandbox tool policy, only when the session is sandboxed (`agents.*.tools.sandbox.
//!    tools`, else `tools.sandbox.tools`, else carapace's default);
//! 5. the sub-agent lists `tools.subagents.tools`, only for `…:subagent:…` session keys;
//! 6. `exec` itself: `tools.exec.security: "deny"`, and `apply_patch` with
//!    `tools.exec.applyPatch.enabled: false`;
//! 7. the surface: `POST /tools/invoke` (OpenClaw's default HTTP deny, `gateway.tools`), MCP
//!    (`gateway.mcp.tools.deny`); the CLI and the agent runtime add nothing.

use serde::Serialize;

use super::catalog::{Catalog, ToolMeta};
use super::names::{allows, first_match, names_something, normalize};
use crate::config::{AgentToolsSettings, Config, ExecSecurity, ToolLists, ToolProfile};
use crate::error::{ErrorCode, ErrorEnvelope};
use crate::resolve::{ResolveError, ResolveInput};

/// Where a call comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Surface {
    /// `carapace tool invoke` (in-process).
    Cli,
    /// `POST /tools/invoke`.
    Http,
    /// MCP, stdio and streamable HTTP.
    Mcp,
    /// carapace's agent runtime: the tools the model sees.
    Agent,
}

impl Surface {
    /// Every surface.
    pub const ALL: &'static [Surface] =
        &[Surface::Cli, Surface::Http, Surface::Mcp, Surface::Agent];

    /// `cli`, `http`, `mcp`, `agent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Surface::Cli => "cli",
            Surface::Http => "http",
            Surface::Mcp => "mcp",
            Surface::Agent => "agent",
        }
    }

    fn phrase(self) -> &'static str {
        match self {
            Surface::Cli => "in this session",
            Surface::Http => "over POST /tools/invoke",
            Surface::Mcp => "over MCP",
            Surface::Agent => "to this session's model",
        }
    }
}

/// What the HTTP surface denies unless `gateway.tools.allow` names it: OpenClaw's
/// `/tools/invoke` serves neither `exec` nor the file tools by default.
pub const HTTP_DEFAULT_DENY: &[&str] = &["group:fs", "group:runtime"];
/// The sandbox tool policy when none is configured: the file tools, `exec`, and carapace's
/// outbound plane (`message`, `media_save`, whose every byte passes the outbound checks).
pub const SANDBOX_DEFAULT_ALLOW: &[&str] = &[
    "group:fs",
    "group:runtime",
    "group:messaging",
    "group:media",
];
/// …and what it denies: the host-side browser (network access from a sandbox that has none),
/// as OpenClaw does. An explicit allow of it removes it from this default deny.
pub const SANDBOX_DEFAULT_DENY: &[&str] = &["browser"];

/// Why a layer blocks a tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum BlockReason {
    /// A deny list names it.
    Denied {
        /// The entry that matched (`exec`, `group:runtime`, `*`).
        entry: String,
    },
    /// An allowlist is set and does not name it.
    NotAllowed,
    /// The profile does not include it.
    NotInProfile {
        /// The profile.
        profile: ToolProfile,
    },
    /// `tools.exec.security` is `deny`.
    ExecSecurityDeny,
    /// `tools.exec.applyPatch.enabled` is `false`.
    ApplyPatchDisabled,
    /// The surface does not serve it by default.
    SurfaceDefault,
}

/// One layer's verdict against a tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Block {
    /// The setting that decided (a JSON path, or a description of a built-in default).
    pub setting: String,
    /// Why.
    pub reason: BlockReason,
}

/// One tool's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolDecision {
    /// The tool.
    pub tool: String,
    /// Available: no layer blocks it.
    pub allowed: bool,
    /// Every layer that blocks it, in layer order (deny lists first within a layer).
    pub blocked_by: Vec<Block>,
}

/// A list as configured, with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingList {
    /// JSON path, or a description of the built-in default.
    pub setting: String,
    /// The entries (for a profile: its tools and the `alsoAllow` entries).
    pub entries: Vec<String>,
    /// For a deny list whose match is not an ordinary "listed" (exec security, a surface
    /// default): what to report instead.
    #[serde(skip)]
    reason: Option<BlockReason>,
}

impl SettingList {
    fn new(setting: impl Into<String>, entries: Vec<String>) -> SettingList {
        SettingList {
            setting: setting.into(),
            entries,
            reason: None,
        }
    }

    fn because(mut self, reason: BlockReason) -> SettingList {
        self.reason = Some(reason);
        self
    }
}

/// One layer, as `explain` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyLayer {
    /// `profile`, `global`, `agent`, `sandbox`, `subagent`, `exec`, `surface`.
    pub name: &'static str,
    /// Whether it applies to this session and surface.
    pub applies: bool,
    /// Its allowlist, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow: Option<SettingList>,
    /// Its deny lists.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<SettingList>,
    /// Why it applies or not, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip)]
    profile: Option<ToolProfile>,
}

impl PolicyLayer {
    fn new(name: &'static str, applies: bool) -> PolicyLayer {
        PolicyLayer {
            name,
            applies,
            allow: None,
            deny: Vec::new(),
            note: None,
            profile: None,
        }
    }

    fn blocks(&self, tool: &str, meta: &ToolMeta, catalog: &Catalog) -> Vec<Block> {
        let mut out = Vec::new();
        if !self.applies {
            return out;
        }
        for d in &self.deny {
            if let Some(e) = first_match(&d.entries, tool, meta) {
                out.push(Block {
                    setting: d.setting.clone(),
                    reason: d.reason.clone().unwrap_or(BlockReason::Denied {
                        entry: e.to_string(),
                    }),
                });
            }
        }
        if let Some(a) = &self.allow
            && !a.entries.is_empty()
            && !allows(&a.entries, tool, meta, catalog)
        {
            out.push(Block {
                setting: a.setting.clone(),
                reason: match self.profile {
                    Some(profile) => BlockReason::NotInProfile { profile },
                    None => BlockReason::NotAllowed,
                },
            });
        }
        out
    }
}

/// The exec policy of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecPolicy {
    /// `deny`, `allowlist` or `full`.
    pub security: ExecSecurity,
    /// Where it came from.
    pub security_from: String,
    /// With `allowlist`: the executables that may run.
    pub allowlist: Vec<String>,
    /// Where the allowlist came from.
    pub allowlist_from: String,
}

/// The tool policy of one session on one surface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveTools {
    /// The surface.
    pub surface: Surface,
    /// The agent.
    pub agent_id: String,
    /// The session key.
    pub session_key: String,
    /// Whether the session is sandboxed (the sandbox tool policy applies).
    pub sandboxed: bool,
    /// The layers, in order.
    pub layers: Vec<PolicyLayer>,
    /// One decision per tool of the catalog, in catalog order.
    pub tools: Vec<ToolDecision>,
    /// The exec policy.
    pub exec: ExecPolicy,
    /// Plain-language notes (entries that name no carapace tool, …).
    pub notes: Vec<String>,
}

impl EffectiveTools {
    /// The decision about `tool`, if it is a tool of the catalog.
    pub fn decision(&self, tool: &str) -> Option<&ToolDecision> {
        self.tools.iter().find(|d| d.tool == tool)
    }

    /// The tools available, in catalog order.
    pub fn allowed(&self) -> Vec<&str> {
        self.tools
            .iter()
            .filter(|d| d.allowed)
            .map(|d| d.tool.as_str())
            .collect()
    }

    /// Why `tool` is blocked, in words naming the setting (`tools.deny lists it`), or `None`
    /// when it is available.
    pub fn reason(&self, tool: &str) -> Option<String> {
        let first = self.decision(tool)?.blocked_by.first()?;
        Some(match &first.reason {
            BlockReason::Denied { entry } if entry == tool => {
                format!("{} lists it", first.setting)
            }
            BlockReason::Denied { entry } => format!("{} lists {entry:?}", first.setting),
            BlockReason::NotAllowed => format!("{} does not list it", first.setting),
            BlockReason::NotInProfile { profile } => {
                format!(
                    "{} is {:?}, which does not include it",
                    first.setting,
                    profile.as_str()
                )
            }
            BlockReason::ExecSecurityDeny => format!("{} is \"deny\"", first.setting),
            BlockReason::ApplyPatchDisabled => format!("{} is false", first.setting),
            BlockReason::SurfaceDefault => format!(
                "POST /tools/invoke serves neither exec nor the file tools unless {} lists them (OpenClaw's default)",
                first.setting
            ),
        })
    }

    /// The typed refusal of a call to `tool`, when the policy blocks it: `TOOL_DENIED`, naming
    /// the setting, with what to change in the hint.
    pub fn refusal(&self, tool: &str) -> Option<ErrorEnvelope> {
        let d = self.decision(tool)?;
        let first = d.blocked_by.first()?;
        let why = self.reason(tool)?;
        let hint = match &first.reason {
            BlockReason::Denied { entry } => format!(
                "remove {entry:?} from {} to allow it (every other layer must allow it too)",
                first.setting
            ),
            BlockReason::NotAllowed => format!("add {tool:?} to {}", first.setting),
            BlockReason::NotInProfile { .. } => format!(
                "add {tool:?} to the alsoAllow list next to {}, or set it to \"full\"",
                first.setting
            ),
            BlockReason::ExecSecurityDeny => format!(
                "set {} to \"allowlist\" (with tools.exec.allowlist) or \"full\"",
                first.setting
            ),
            BlockReason::ApplyPatchDisabled => format!("set {} to true", first.setting),
            BlockReason::SurfaceDefault if self.surface == Surface::Http => format!(
                "add {tool:?} to gateway.tools.allow to serve it over /tools/invoke, or call it over MCP"
            ),
            BlockReason::SurfaceDefault => format!("see {}", first.setting),
        };
        let mut e = ErrorEnvelope::new(
            ErrorCode::ToolDenied,
            format!(
                "the {tool} tool is not available {}: {why}",
                self.surface.phrase()
            ),
        )
        .with_hint(hint)
        .with_detail("tool", tool)
        .with_detail("surface", self.surface.as_str())
        .with_detail("setting", first.setting.clone())
        .with_detail("agent", self.agent_id.clone())
        .with_detail("session", self.session_key.clone());
        if let Ok(v) = serde_json::to_value(&d.blocked_by) {
            e = e.with_detail("blockedBy", v);
        }
        Some(e)
    }
}

struct Lists<'a> {
    path: String,
    allow: Option<&'a Vec<String>>,
    deny: Option<&'a Vec<String>>,
}

impl Config {
    /// The JSON path of an agent's own layer (`agents.entries.<id>` or `agents.list[<i>]`).
    pub fn agent_layer_path(&self, agent_id: &str) -> Option<String> {
        if self.file.agents.entries.contains_key(agent_id) {
            return Some(format!("agents.entries.{agent_id}"));
        }
        self.file
            .agents
            .list
            .iter()
            .position(|a| a.id.as_deref() == Some(agent_id))
            .map(|i| format!("agents.list[{i}]"))
    }

    /// The tool policy of the session `input` names, on `surface`, over `catalog`.
    pub fn tool_policy(
        &self,
        input: &ResolveInput<'_>,
        surface: Surface,
        catalog: &Catalog,
    ) -> Result<EffectiveTools, ResolveError> {
        let eff = self.resolve(input)?;
        let agent_id = eff.agent_id.clone();
        let agent_path = self
            .agent_layer_path(&agent_id)
            .unwrap_or_else(|| format!("agents.list[id={agent_id}]"));
        let agent_tools: Option<&AgentToolsSettings> =
            self.agent_layer(&agent_id).and_then(|a| a.tools.as_ref());
        let at = |k: &str| format!("{agent_path}.tools.{k}");
        let t = &self.file.tools;

        let subagent = crate::session::SessionKey::parse(&eff.session_key)
            .rest
            .starts_with("subagent:");
        let agent_sb = agent_tools
            .and_then(|a| a.sandbox.as_ref())
            .and_then(|s| s.tools.as_ref());
        let global_sb = t.sandbox.as_ref().and_then(|s| s.tools.as_ref());
        let exec = self.exec_policy(&agent_id);

        let mut layers = vec![
            profile_layer(
                agent_tools
                    .and_then(|a| a.profile)
                    .map(|p| (p, at("profile"))),
                t.profile.map(|p| (p, "tools.profile".to_string())),
                agent_tools.and_then(|a| a.also_allow.as_ref()),
                t.also_allow.as_ref(),
                catalog,
            ),
            list_layer(
                "global",
                true,
                &Lists {
                    path: "tools".into(),
                    allow: t.allow.as_ref(),
                    deny: t.deny.as_ref(),
                },
            ),
            list_layer(
                "agent",
                agent_tools.is_some(),
                &Lists {
                    path: format!("{agent_path}.tools"),
                    allow: agent_tools.and_then(|a| a.allow.as_ref()),
                    deny: agent_tools.and_then(|a| a.deny.as_ref()),
                },
            ),
            sandbox_layer(
                eff.sandboxed,
                agent_sb,
                global_sb,
                &at("sandbox.tools"),
                catalog,
            ),
        ];
        if agent_tools.is_none()
            && let Some(l) = layers.get_mut(2)
        {
            l.note = Some(format!("agent {agent_id} has no tools settings"));
        }
        let sub = t.subagents.as_ref().and_then(|s| s.tools.as_ref());
        let mut sub_layer = list_layer(
            "subagent",
            subagent,
            &Lists {
                path: "tools.subagents.tools".into(),
                allow: sub.and_then(|s| s.allow.as_ref()),
                deny: sub.and_then(|s| s.deny.as_ref()),
            },
        );
        if let (Some(a), Some(also)) = (
            &mut sub_layer.allow,
            sub.and_then(|s| s.also_allow.as_ref()),
        ) {
            a.entries.extend(also.iter().cloned());
        }
        if !subagent {
            sub_layer.note = Some("not a sub-agent session".into());
        }
        layers.push(sub_layer);

        let mut exec_layer = PolicyLayer::new("exec", true);
        if exec.security == ExecSecurity::Deny {
            exec_layer.deny.push(
                SettingList::new(exec.security_from.clone(), vec!["exec".into()])
                    .because(BlockReason::ExecSecurityDeny),
            );
        }
        if t.exec.apply_patch.as_ref().and_then(|a| a.enabled) == Some(false) {
            exec_layer.deny.push(
                SettingList::new("tools.exec.applyPatch.enabled", vec!["apply_patch".into()])
                    .because(BlockReason::ApplyPatchDisabled),
            );
        }
        exec_layer.note = Some(format!(
            "exec security {:?} (from {})",
            exec.security.as_str(),
            exec.security_from
        ));
        layers.push(exec_layer);
        layers.push(self.surface_layer(surface, catalog));

        let mut notes = Vec::new();
        for l in &layers {
            for list in l.allow.iter().chain(l.deny.iter()) {
                for e in &list.entries {
                    if e != NOTHING && !names_something(e, catalog) {
                        notes.push(format!(
                            "{e:?} in {} names no carapace tool (carapace has {})",
                            list.setting,
                            catalog.names().join(", ")
                        ));
                    }
                }
            }
        }
        if eff.sandboxed && agent_sb.is_none() && global_sb.is_none() {
            notes.push(
                "the session is sandboxed and no sandbox tool policy is configured: carapace's default applies (the file tools, exec, message and media_save; not browser)"
                    .into(),
            );
        }

        let tools = catalog
            .iter()
            .map(|(name, meta)| {
                let mut blocked_by: Vec<Block> = layers
                    .iter()
                    .flat_map(|l| l.blocks(name, meta, catalog))
                    .collect();
                // Deny wins: a deny is named before an allowlist that leaves the tool out.
                blocked_by.sort_by_key(|b| {
                    matches!(
                        b.reason,
                        BlockReason::NotAllowed | BlockReason::NotInProfile { .. }
                    )
                });
                ToolDecision {
                    tool: name.to_string(),
                    allowed: blocked_by.is_empty(),
                    blocked_by,
                }
            })
            .collect();

        Ok(EffectiveTools {
            surface,
            agent_id,
            session_key: eff.session_key,
            sandboxed: eff.sandboxed,
            layers,
            tools,
            exec,
            notes,
        })
    }

    /// The exec policy of an agent: the agent's `tools.exec.security` / `allowlist`, else the
    /// global ones, else `full` and an empty list.
    pub fn exec_policy(&self, agent_id: &str) -> ExecPolicy {
        let p = self
            .agent_layer_path(agent_id)
            .unwrap_or_else(|| format!("agents.list[id={agent_id}]"));
        let ax = self
            .agent_layer(agent_id)
            .and_then(|a| a.tools.as_ref())
            .and_then(|t| t.exec.as_ref());
        let g = &self.file.tools.exec;
        let (security, security_from) = match (ax.and_then(|x| x.security), g.security) {
            (Some(s), _) => (s, format!("{p}.tools.exec.security")),
            (None, Some(s)) => (s, "tools.exec.security".to_string()),
            (None, None) => (ExecSecurity::Full, "built-in default".to_string()),
        };
        let (allowlist, allowlist_from) = match (ax.and_then(|x| x.allowlist.clone()), &g.allowlist)
        {
            (Some(l), _) => (l, format!("{p}.tools.exec.allowlist")),
            (None, Some(l)) => (l.clone(), "tools.exec.allowlist".to_string()),
            (None, None) => (Vec::new(), "built-in default (empty)".to_string()),
        };
        ExecPolicy {
            security,
            security_from,
            allowlist,
            allowlist_from,
        }
    }

    fn surface_layer(&self, surface: Surface, catalog: &Catalog) -> PolicyLayer {
        let g = &self.file.gateway;
        let mut layer = PolicyLayer::new("surface", true);
        match surface {
            Surface::Http => {
                let allow = g
                    .tools
                    .as_ref()
                    .and_then(|t| t.allow.clone())
                    .unwrap_or_default();
                // The default deny, minus what gateway.tools.allow re-allows, by tool name.
                let defaults: Vec<String> = catalog
                    .iter()
                    .filter(|(n, m)| {
                        first_match(&to_vec(HTTP_DEFAULT_DENY), n, m).is_some()
                            && !allows(&allow, n, m, catalog)
                    })
                    .map(|(n, _)| n.to_string())
                    .collect();
                layer.deny.push(
                    SettingList::new("gateway.tools.allow", defaults)
                        .because(BlockReason::SurfaceDefault),
                );
                if let Some(d) = g.tools.as_ref().and_then(|t| t.deny.clone()) {
                    layer.deny.push(SettingList::new("gateway.tools.deny", d));
                }
                layer.note = Some(format!(
                    "OpenClaw's default for /tools/invoke; gateway.tools.allow re-allows: {}",
                    if allow.is_empty() {
                        "nothing".to_string()
                    } else {
                        allow.join(", ")
                    }
                ));
            }
            Surface::Mcp => {
                if let Some(d) = g
                    .mcp
                    .as_ref()
                    .and_then(|m| m.tools.as_ref())
                    .and_then(|t| t.deny.clone())
                {
                    layer
                        .deny
                        .push(SettingList::new("gateway.mcp.tools.deny", d));
                }
                layer.note = Some(
                    "MCP serves every tool the other layers allow, except what gateway.mcp.tools.deny names"
                        .into(),
                );
            }
            Surface::Cli => layer.note = Some("the CLI adds no restriction of its own".into()),
            Surface::Agent => {
                layer.note = Some("the model sees exactly the tools the other layers allow".into())
            }
        }
        layer
    }
}

/// The entry of a profile's list that allows nothing carapace has.
const NOTHING: &str = "(no carapace tool)";

fn to_vec(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn profile_layer(
    agent: Option<(ToolProfile, String)>,
    global: Option<(ToolProfile, String)>,
    agent_also: Option<&Vec<String>>,
    global_also: Option<&Vec<String>>,
    catalog: &Catalog,
) -> PolicyLayer {
    let mut layer = PolicyLayer::new("profile", true);
    let also = agent_also.or(global_also);
    match agent.or(global) {
        Some((p, from)) if p != ToolProfile::Full => {
            let mut entries: Vec<String> = catalog
                .iter()
                .filter(|(_, m)| m.profiles.contains(&p))
                .map(|(n, _)| n.to_string())
                .collect();
            entries.extend(also.into_iter().flatten().cloned());
            if entries.is_empty() {
                // An empty list means "no restriction": a profile that includes nothing
                // carapace has must still allow nothing.
                entries.push(NOTHING.into());
            }
            layer.allow = Some(SettingList::new(from, entries));
            layer.profile = Some(p);
        }
        Some((_, from)) => layer.note = Some(format!("{from} is \"full\": no restriction")),
        None => layer.note = Some("no tools.profile: no restriction".into()),
    }
    layer
}

fn list_layer(name: &'static str, applies: bool, l: &Lists<'_>) -> PolicyLayer {
    let mut layer = PolicyLayer::new(name, applies);
    if let Some(a) = l.allow {
        layer.allow = Some(SettingList::new(format!("{}.allow", l.path), a.clone()));
    }
    if let Some(d) = l.deny {
        layer
            .deny
            .push(SettingList::new(format!("{}.deny", l.path), d.clone()));
    }
    layer
}

fn sandbox_layer(
    sandboxed: bool,
    agent: Option<&ToolLists>,
    global: Option<&ToolLists>,
    agent_path: &str,
    catalog: &Catalog,
) -> PolicyLayer {
    let mut layer = PolicyLayer::new("sandbox", sandboxed);
    if !sandboxed {
        layer.note =
            Some("the session is not sandboxed: the sandbox tool policy does not apply".into());
    }
    let pick =
        |f: fn(&ToolLists) -> Option<&Vec<String>>, key: &str| -> Option<(Vec<String>, String)> {
            if let Some(v) = agent.and_then(f) {
                return Some((v.clone(), format!("{agent_path}.{key}")));
            }
            global
                .and_then(f)
                .map(|v| (v.clone(), format!("tools.sandbox.tools.{key}")))
        };
    let allow = pick(|l| l.allow.as_ref(), "allow");
    let also = pick(|l| l.also_allow.as_ref(), "alsoAllow");
    let deny = pick(|l| l.deny.as_ref(), "deny");
    let explicit: Vec<String> = allow
        .iter()
        .chain(also.iter())
        .flat_map(|(v, _)| v.clone())
        .collect();
    let (mut allow_entries, allow_from) = match allow {
        Some((v, p)) => (v, p),
        None => (
            to_vec(SANDBOX_DEFAULT_ALLOW),
            "tools.sandbox.tools.allow (default)".to_string(),
        ),
    };
    allow_entries.extend(also.map(|(v, _)| v).unwrap_or_default());
    layer.allow = Some(SettingList::new(allow_from, allow_entries));
    layer.deny.push(match deny {
        Some((v, p)) => SettingList::new(p, v),
        None => SettingList::new(
            "tools.sandbox.tools.deny (default)",
            // An explicit allow re-allows what the default denies.
            SANDBOX_DEFAULT_DENY
                .iter()
                .filter(|d| {
                    let name = normalize(d);
                    catalog
                        .get(&name)
                        .is_none_or(|m| first_match(&explicit, &name, m).is_none())
                })
                .map(|s| s.to_string())
                .collect(),
        ),
    });
    layer
}
