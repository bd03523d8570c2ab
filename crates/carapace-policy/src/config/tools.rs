//! The tool-policy keys of the configuration (OpenClaw's, plus carapace's per-surface ones):
//! `tools.profile` / `allow` / `alsoAllow` / `deny`, `tools.sandbox.tools`,
//! `tools.subagents.tools`, `tools.exec.security` / `allowlist` / `applyPatch`, the same under
//! `agents.*.tools`, `gateway.tools` (HTTP `/tools/invoke`) and `gateway.mcp.tools` (MCP).
//!
//! These are only the typed shapes; what they mean is `crate::tools_policy`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

string_enum! {
    /// `tools.profile`: a base allowlist (OpenClaw's profiles, mapped onto carapace's tools).
    ToolProfile { Minimal = "minimal", Coding = "coding", Messaging = "messaging", Full = "full" }
}

string_enum! {
    /// `tools.exec.security`: whether `exec` runs, and which command lines.
    ExecSecurity { Deny = "deny", Allowlist = "allowlist", Full = "full" }
}

/// An `allow` / `alsoAllow` / `deny` triple (`tools.sandbox.tools`, `tools.subagents.tools`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolLists {
    /// Only these tools (tool names, `group:*`, `*` globs); absent or empty: no restriction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// Added to `allow` (and to a profile's list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub also_allow: Option<Vec<String>>,
    /// Never these tools. Deny wins over every allow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Vec<String>>,
}

/// `tools.sandbox` / `agents.*.tools.sandbox`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SandboxToolsSettings {
    /// The tools a sandboxed session may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<ToolLists>,
}

/// `tools.exec.applyPatch`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApplyPatchSettings {
    /// `false` turns `apply_patch` off (carapace's default is on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `agents.*.tools.exec`: the per-agent exec policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentExecSettings {
    /// Overrides `tools.exec.security` for this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<ExecSecurity>,
    /// Overrides `tools.exec.allowlist` for this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowlist: Option<Vec<String>>,
}

/// `agents.entries.<id>.tools` / `agents.list[].tools`: one agent's tool policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentToolsSettings {
    /// Replaces `tools.profile` for this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ToolProfile>,
    /// This agent's allowlist (applies after the global one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// Replaces `tools.alsoAllow` for this agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub also_allow: Option<Vec<String>>,
    /// This agent's denylist (applies with the global one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Vec<String>>,
    /// Replaces `tools.sandbox.tools` lists for this agent, list by list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxToolsSettings>,
    /// Per-agent exec policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<AgentExecSettings>,
}

/// `gateway.tools` (HTTP `/tools/invoke`) and `gateway.mcp.tools` (MCP).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SurfaceToolsSettings {
    /// Removes tools from the surface's default deny list (it is not an allowlist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// More tools this surface never serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Vec<String>>,
}

/// `gateway.mcp`: carapace's MCP surface settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewayMcpSettings {
    /// The tools MCP (stdio and HTTP) serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<SurfaceToolsSettings>,
}
