//! The typed configuration model of docs/config.md. Every field is optional in the file; defaults are
//! applied by resolution, so a per-agent override can say "not set" and fall through.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::inbound::{Binding, DmSettings, GroupRule, HooksConfig, IdList, SessionConfig};
use super::tools::{
    AgentToolsSettings, ApplyPatchSettings, ExecSecurity, GatewayMcpSettings, SandboxToolsSettings,
    SurfaceToolsSettings, ToolProfile,
};
use super::values::{
    AutoJoin, Backend, DmPolicy, GroupPolicy, Mode, SandboxMode, Scope, Secret, SessionAgentAccess,
    WorkspaceAccess,
};

/// The whole handled configuration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigFile {
    /// `agents`
    #[serde(default)]
    pub agents: AgentsConfig,
    /// `tools`
    #[serde(default)]
    pub tools: ToolsConfig,
    /// `media`
    #[serde(default)]
    pub media: MediaConfig,
    /// `channels`, normalised to the map form.
    #[serde(default)]
    pub channels: BTreeMap<String, ChannelConfig>,
    /// `gateway`
    #[serde(default)]
    pub gateway: GatewayConfig,
    /// `browser`
    #[serde(default)]
    pub browser: BrowserConfig,
    /// `session` (how conversations map to session keys).
    #[serde(default, skip_serializing_if = "is_default")]
    pub session: SessionConfig,
    /// `hooks` (the webhook ingress).
    #[serde(default, skip_serializing_if = "is_default")]
    pub hooks: HooksConfig,
    /// `bindings` (which agent answers which conversations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<Binding>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// `agents`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentsConfig {
    /// `agents.defaults`
    #[serde(default)]
    pub defaults: AgentSettings,
    /// `agents.entries.<id>` (OpenClaw map shape).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub entries: BTreeMap<String, AgentSettings>,
    /// `agents.list[]` (OpenClaw array shape).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub list: Vec<AgentSettings>,
}

/// Settings of `agents.defaults` or of one agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AgentSettings {
    /// Agent id (only in `agents.list[]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// OpenClaw's "this is the default agent" flag (accepted, informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<bool>,
    /// Workspace directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
    /// Sandbox settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxSettings>,
    /// This agent's tool policy (`agents.entries.<id>.tools` / `agents.list[].tools`; refused in
    /// `agents.defaults`, where the global policy is `tools.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<AgentToolsSettings>,
}

/// `sandbox` (defaults or per-agent override; unset keys fall through).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SandboxSettings {
    /// off | non-main | all
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<SandboxMode>,
    /// auto | bwrap | docker
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
    /// session | agent | shared
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// none | ro | rw | session
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_access: Option<WorkspaceAccess>,
    /// ro | none
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_agent_access: Option<SessionAgentAccess>,
    /// Where sandbox workspaces live.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_root: Option<String>,
    /// umask of every sandboxed process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub umask: Option<Mode>,
    /// Docker backend settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerSettings>,
    /// Pruning of idle sandboxes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneSettings>,
}

/// `sandbox.docker`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DockerSettings {
    /// Image to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Container name prefix (OpenClaw: `openclaw-sbx-`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_prefix: Option<String>,
    /// Docker network; `none` by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Extra binds `host:container[:ro|rw]`; concatenated across layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binds: Option<Vec<String>>,
    /// Environment; merged across layers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    /// `uid:gid` to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Read-only root filesystem.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root: Option<bool>,
    /// tmpfs mounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<Vec<String>>,
    /// Capabilities dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap_drop: Option<Vec<String>>,
    /// Memory limit ("512m", "1g").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<String>,
    /// CPU limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// PID limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
}

/// `sandbox.prune`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PruneSettings {
    /// Remove sandboxes idle this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_hours: Option<f64>,
    /// Remove sandboxes older than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_days: Option<f64>,
}

/// `tools`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ToolsConfig {
    /// `tools.profile`: the base allowlist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ToolProfile>,
    /// `tools.allow`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    /// `tools.alsoAllow`: added to the profile's list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub also_allow: Option<Vec<String>>,
    /// `tools.deny`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Vec<String>>,
    /// `tools.sandbox.tools`: the tools of sandboxed sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxToolsSettings>,
    /// `tools.subagents.tools`: the tools of sub-agent sessions (`…:subagent:…` keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subagents: Option<SandboxToolsSettings>,
    /// `tools.fs`
    #[serde(default)]
    pub fs: FsToolSettings,
    /// `tools.exec`
    #[serde(default)]
    pub exec: ExecToolSettings,
    /// `tools.message`
    #[serde(default)]
    pub message: MessageToolSettings,
}

/// `tools.fs`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FsToolSettings {
    /// Mode of files the tools create.
    #[serde(default = "default_file_mode")]
    pub new_file_mode: Mode,
    /// Mode of directories the tools create.
    #[serde(default = "default_dir_mode")]
    pub new_dir_mode: Mode,
    /// Largest file `read` returns whole.
    #[serde(default = "default_max_read")]
    pub max_read_bytes: u64,
}

impl Default for FsToolSettings {
    fn default() -> Self {
        FsToolSettings {
            new_file_mode: default_file_mode(),
            new_dir_mode: default_dir_mode(),
            max_read_bytes: default_max_read(),
        }
    }
}

/// `tools.exec`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ExecToolSettings {
    /// Default timeout of one command.
    #[serde(default = "default_exec_timeout")]
    pub timeout_seconds: u64,
    /// Output cap (stdout and stderr each).
    #[serde(default = "default_exec_output")]
    pub max_output_bytes: u64,
    /// `deny` | `allowlist` | `full` (unset: `full`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<ExecSecurity>,
    /// The executables `security: "allowlist"` lets run (absolute paths or bare names, `*`
    /// globs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowlist: Option<Vec<String>>,
    /// `tools.exec.applyPatch`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply_patch: Option<ApplyPatchSettings>,
}

impl Default for ExecToolSettings {
    fn default() -> Self {
        ExecToolSettings {
            timeout_seconds: default_exec_timeout(),
            max_output_bytes: default_exec_output(),
            security: None,
            allowlist: None,
            apply_patch: None,
        }
    }
}

/// `tools.message`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MessageToolSettings {
    /// `tools.message.outboundMediaPolicy`
    #[serde(default)]
    pub outbound_media_policy: OutboundMediaPolicy,
}

/// `tools.message.outboundMediaPolicy`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct OutboundMediaPolicy {
    /// Send files without the others-read bit.
    #[serde(default)]
    pub allow_owner_only: bool,
    /// More host directories files may be sent from.
    #[serde(default)]
    pub extra_roots: Vec<String>,
}

/// `media`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MediaConfig {
    /// Media directory (default `<state>/media`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// Mode of saved media files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_mode: Option<Mode>,
    /// Largest media file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<u64>,
    /// Age after which `media prune` removes files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_hours: Option<f64>,
    /// Allow downloads from private and loopback addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_private_network: Option<bool>,
}

/// One channel (`channels.<id>` or an element of the array form).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChannelConfig {
    /// Id (array form only; the map key otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// OpenClaw's enable switch; `false` makes the channel unconfigured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Telegram / Slack bot token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_token: Option<Secret>,
    /// Discord bot token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
    /// Matrix access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<Secret>,
    /// Matrix homeserver base URL (shown without userinfo or query).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "super::values::serialize_redacted_url"
    )]
    pub homeserver: Option<String>,
    /// Matrix user id of the bot (optional; looked up with whoami when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Webhook URL: a secret (for Discord and Slack webhooks the URL is the credential), shown
    /// as its `${VAR}` reference or as `scheme://host/***`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "super::values::serialize_secret_url"
    )]
    pub url: Option<Secret>,
    /// Webhook headers (values may hold secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, Secret>>,
    /// Inbox directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dir: Option<String>,
    /// Per-channel session policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<ChannelSessionSettings>,
    /// Per-attachment limit in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_max_mb: Option<f64>,
    /// Replaces the platform's API base URL (shown without userinfo or query).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "super::values::serialize_redacted_url"
    )]
    pub api_base_url: Option<String>,
    /// Receive messages on this channel (default true where carapace can receive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive: Option<bool>,
    /// Who may DM the bot (default `pairing`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dm_policy: Option<DmPolicy>,
    /// Senders allowed to DM (`"*"` with `dmPolicy: "open"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_from: Option<IdList>,
    /// OpenClaw's older nesting of `dmPolicy` / `allowFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dm: Option<DmSettings>,
    /// Which groups the bot answers in (default `allowlist`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_policy: Option<GroupPolicy>,
    /// Senders allowed to trigger the bot in groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_allow_from: Option<IdList>,
    /// Per-group rules (and the group allowlist), keyed by chat id or `"*"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<BTreeMap<String, GroupRule>>,
    /// Matrix's legacy name of `groups`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rooms: Option<BTreeMap<String, GroupRule>>,
    /// Groups: answer only when mentioned (default true; per-group rules win).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_mention: Option<bool>,
    /// Force allowlist rules for DMs and groups (`pairing`/`open` act as `allowlist`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowlist_only: Option<bool>,
    /// Matrix: which invites the bot joins (default `always`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_join: Option<AutoJoin>,
    /// Matrix: rooms (ids or aliases) joined under `autoJoin: "allowlist"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_join_allowlist: Option<Vec<String>>,
    /// Longest text message sent (characters; replies are split at it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_chunk_limit: Option<u32>,
    /// Matrix end-to-end encryption: carapace has none, so `true` is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<bool>,
    /// Slack app-level token (`xapp-…`) that opens Socket Mode connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_token: Option<Secret>,
    /// Slack transport: only `"socket"` (the default) is implemented; `"http"` is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Discord: privileged Gateway intents.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intents: Option<super::inbound::DiscordIntentsConfig>,
    /// Discord / Slack: messages of other bots (`false`, `true`, `"mentions"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_bots: Option<super::inbound::AllowBotsSetting>,
}

/// `channels.<id>.session`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ChannelSessionSettings {
    /// Overrides the agent's `workspaceAccess` for sessions of this channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_access: Option<WorkspaceAccess>,
    /// Overrides `sessionAgentAccess` for sessions of this channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_agent_access: Option<SessionAgentAccess>,
}

/// `gateway`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewayConfig {
    /// `host:port`, or OpenClaw's `loopback` / `lan`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<String>,
    /// OpenClaw's separate port key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Largest request body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// Budget of one tool call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout_seconds: Option<u64>,
    /// Most connections open at once (clamped below the process's file descriptor limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u64>,
    /// Deadline for a request's headers, counted from when the connection is ready for the
    /// next request (so it is also the keep-alive idle timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_timeout_seconds: Option<u64>,
    /// Deadline for a request's whole body, counted from its headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_timeout_seconds: Option<u64>,
    /// `gateway.auth`
    #[serde(default)]
    pub auth: GatewayAuth,
    /// `gateway.tools`: what `POST /tools/invoke` serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<SurfaceToolsSettings>,
    /// `gateway.mcp`: what MCP serves (carapace's key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<GatewayMcpSettings>,
    /// `gateway.http`: OpenClaw's optional HTTP endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<GatewayHttp>,
}

impl GatewayConfig {
    /// `gateway.http.endpoints.chatCompletions.enabled` (default false, as in OpenClaw).
    pub fn chat_completions_enabled(&self) -> bool {
        self.http
            .as_ref()
            .and_then(|h| h.endpoints.as_ref())
            .and_then(|e| e.chat_completions.as_ref())
            .and_then(|c| c.enabled)
            .unwrap_or(false)
    }
}

/// `gateway.http`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewayHttp {
    /// `gateway.http.endpoints`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<GatewayHttpEndpoints>,
}

/// `gateway.http.endpoints`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewayHttpEndpoints {
    /// `POST /v1/chat/completions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_completions: Option<EndpointToggle>,
}

/// An optional endpoint: `{enabled}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EndpointToggle {
    /// On or off (default off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// `gateway.auth`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GatewayAuth {
    /// OpenClaw's auth mode; only `token` is supported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Bearer token (else the generated one under `secrets/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<Secret>,
}

/// `browser`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BrowserConfig {
    /// Chromium binary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executable_path: Option<String>,
    /// Allow private and loopback targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_private_network: Option<bool>,
    /// Concurrent pages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pages: Option<u32>,
    /// Per-call timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
}

fn default_file_mode() -> Mode {
    Mode(0o644)
}
fn default_dir_mode() -> Mode {
    Mode(0o755)
}
fn default_max_read() -> u64 {
    16 * 1024 * 1024
}
fn default_exec_timeout() -> u64 {
    120
}
fn default_exec_output() -> u64 {
    200_000
}
