//! Resolution of the effective sandbox policy for (agent, channel, session key) — docs/config.md:
//! channel `session.workspaceAccess` > agent override > `agents.defaults` > built-in default;
//! per-agent values override key by key; `binds` concatenate; `env` merges; `mode: non-main`
//! leaves `agent:<id>:main` unsandboxed; `workspaceAccess: "session"` forces scope `session`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Serialize;

use crate::binds::{Bind, parse_bind};
use crate::config::{
    AgentSettings, Backend, Config, DockerSettings, Mode, SandboxMode, SandboxSettings, Scope,
    SessionAgentAccess, WorkspaceAccess,
};
use crate::session::{DEFAULT_AGENT_ID, SessionKey, normalize_agent_id};
use crate::slug::{scope_key, slugify};

/// Which configuration layer decided a value (what `explain` prints as "why").
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "layer", content = "name", rename_all = "camelCase")]
pub enum Layer {
    /// carapace's built-in default.
    Default,
    /// `agents.defaults`.
    AgentDefaults,
    /// A per-agent override.
    Agent(String),
    /// `channels.<id>.session`.
    Channel(String),
    /// Implied by another value (scope forced by `workspaceAccess: "session"`).
    Forced,
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Layer::Default => f.write_str("built-in default"),
            Layer::AgentDefaults => f.write_str("agents.defaults"),
            Layer::Agent(id) => write!(f, "agent {id}"),
            Layer::Channel(id) => write!(f, "channels.{id}.session"),
            Layer::Forced => f.write_str("forced by workspaceAccess \"session\""),
        }
    }
}

/// A value and the layer that decided it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decided<T> {
    /// The value.
    pub value: T,
    /// Who decided it.
    pub from: Layer,
}

/// What the caller names.
#[derive(Debug, Clone, Default)]
pub struct ResolveInput<'a> {
    /// Explicit agent id (wins over the session key's).
    pub agent: Option<&'a str>,
    /// Explicit channel id (wins over the session key's).
    pub channel: Option<&'a str>,
    /// Session key.
    pub session_key: Option<&'a str>,
}

/// Effective Docker settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveDocker {
    /// Image.
    pub image: String,
    /// Container name prefix.
    pub container_prefix: String,
    /// Network (`none` by default).
    pub network: String,
    /// Validated binds, defaults first then the agent's.
    pub binds: Vec<Bind>,
    /// Environment, merged.
    pub env: BTreeMap<String, String>,
    /// `uid:gid`, if configured.
    pub user: Option<String>,
    /// Read-only root filesystem.
    pub read_only_root: bool,
    /// tmpfs mounts.
    pub tmpfs: Vec<String>,
    /// Dropped capabilities.
    pub cap_drop: Vec<String>,
    /// Memory limit.
    pub memory: Option<String>,
    /// CPU limit.
    pub cpus: Option<f64>,
    /// PID limit.
    pub pids_limit: Option<i64>,
}

/// Effective prune settings.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectivePrune {
    /// Idle hours.
    pub idle_hours: f64,
    /// Max age in days.
    pub max_age_days: f64,
}

/// The effective sandbox policy of one session.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveSandbox {
    /// Agent id.
    pub agent_id: String,
    /// Session key.
    pub session_key: String,
    /// Channel, when the session belongs to a configured one.
    pub channel: Option<String>,
    /// `mode` as configured.
    pub mode: Decided<SandboxMode>,
    /// Whether this session runs sandboxed.
    pub sandboxed: bool,
    /// Backend.
    pub backend: Decided<Backend>,
    /// Effective scope.
    pub scope: Decided<Scope>,
    /// Workspace access.
    pub workspace_access: Decided<WorkspaceAccess>,
    /// What `/agent` shows with `session` access.
    pub session_agent_access: Decided<SessionAgentAccess>,
    /// Root of sandbox workspaces.
    pub workspace_root: Decided<PathBuf>,
    /// The agent's workspace.
    pub agent_workspace: Decided<PathBuf>,
    /// umask of sandboxed processes.
    pub umask: Decided<Mode>,
    /// Scope key (`agent:main`, the session key, or `shared`).
    pub scope_key: String,
    /// Slug of the scope key (the directory / container name part).
    pub scope_slug: String,
    /// `<workspaceRoot>/<scope-slug>`.
    pub sandbox_dir: PathBuf,
    /// Docker settings.
    pub docker: EffectiveDocker,
    /// Prune settings.
    pub prune: EffectivePrune,
    /// Plain-language notes for `explain`.
    pub notes: Vec<String>,
}

/// Failure to resolve (a bind that fails validation after merging, an unknown channel).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The explicitly named channel is not configured.
    #[error("channel {0:?} is not configured")]
    UnknownChannel(String),
}

impl crate::error::CarapaceError for ResolveError {
    fn code(&self) -> crate::error::ErrorCode {
        crate::error::ErrorCode::ChannelNotConfigured
    }
    fn hint(&self) -> Option<String> {
        Some(
            "add it under `channels` in the config, or pick one `carapace config show` lists"
                .into(),
        )
    }
}

impl Config {
    /// Channel ids that are configured (the `inbox` channel always is).
    pub fn channel_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .file
            .channels
            .iter()
            .filter(|(_, c)| c.enabled != Some(false))
            .map(|(k, _)| k.clone())
            .collect();
        if !ids.iter().any(|i| i == "inbox") {
            ids.push("inbox".into());
        }
        ids.sort();
        ids
    }

    /// The per-agent settings layer of `agent_id`, from `agents.entries` or `agents.list`.
    pub fn agent_layer(&self, agent_id: &str) -> Option<&AgentSettings> {
        self.file.agents.entries.get(agent_id).or_else(|| {
            self.file
                .agents
                .list
                .iter()
                .find(|a| a.id.as_deref() == Some(agent_id))
        })
    }

    /// The agent's workspace directory.
    pub fn agent_workspace(&self, agent_id: &str) -> Decided<PathBuf> {
        if let Some(w) = self.agent_layer(agent_id).and_then(|a| a.workspace.clone()) {
            return Decided {
                value: PathBuf::from(w),
                from: Layer::Agent(agent_id.into()),
            };
        }
        if let Some(w) = &self.file.agents.defaults.workspace {
            return Decided {
                value: PathBuf::from(w),
                from: Layer::AgentDefaults,
            };
        }
        Decided {
            value: self.state_dir.join("workspace"),
            from: Layer::Default,
        }
    }

    /// Media directory.
    pub fn media_dir(&self) -> PathBuf {
        self.file
            .media
            .dir
            .as_ref()
            .map(PathBuf::from)
            .unwrap_or_else(|| self.state_dir.join("media"))
    }

    /// Inbox channel directory.
    pub fn inbox_dir(&self) -> PathBuf {
        self.file
            .channels
            .get("inbox")
            .and_then(|c| c.dir.as_ref())
            .map(PathBuf::from)
            .unwrap_or_else(|| self.state_dir.join("inbox"))
    }

    /// Gateway listen address.
    pub fn gateway_bind(&self) -> SocketAddr {
        let b = self.file.gateway.bind.as_deref().unwrap_or("loopback");
        gateway_bind(b, self.file.gateway.port)
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)))
    }

    /// The default agent: the one marked `default: true` (`agents.list[]` first, then
    /// `agents.entries`), else `main`.
    pub fn default_agent_id(&self) -> String {
        let a = &self.file.agents;
        a.list
            .iter()
            .find(|x| x.default == Some(true))
            .and_then(|x| x.id.clone())
            .or_else(|| {
                a.entries
                    .iter()
                    .find(|(_, x)| x.default == Some(true))
                    .map(|(id, _)| id.clone())
            })
            .unwrap_or_else(|| DEFAULT_AGENT_ID.to_string())
    }

    /// OpenClaw's shorthand: the session key `main` is the default agent's main session,
    /// `agent:<default>:main`. Any other key is returned trimmed.
    pub fn expand_session_key(&self, key: &str) -> String {
        match key.trim() {
            "main" => format!("agent:{}:main", self.default_agent_id()),
            k => k.to_string(),
        }
    }

    /// Resolves the effective sandbox policy.
    pub fn resolve(&self, input: &ResolveInput<'_>) -> Result<EffectiveSandbox, ResolveError> {
        let key = input
            .session_key
            .map(|k| SessionKey::parse(&self.expand_session_key(k)));
        let agent_id = input
            .agent
            .map(normalize_agent_id)
            .or_else(|| key.as_ref().and_then(|k| k.agent_id.clone()))
            .unwrap_or_else(|| self.default_agent_id());
        let key = key.unwrap_or_else(|| SessionKey::main_of(&agent_id));
        let channels = self.channel_ids();
        let channel = match input.channel {
            Some(c) if channels.iter().any(|x| x == c) => Some(c.to_string()),
            Some(c) => return Err(ResolveError::UnknownChannel(c.to_string())),
            None => key
                .channel_segment()
                .filter(|c| channels.iter().any(|x| x == c))
                .map(str::to_string),
        };

        let layers = Layers {
            defaults: self.file.agents.defaults.sandbox.as_ref(),
            agent: self.agent_layer(&agent_id).and_then(|a| a.sandbox.as_ref()),
            agent_id: &agent_id,
        };
        let mode = layers.decide(|s| s.mode, SandboxMode::Off);
        let backend = layers.decide(|s| s.backend, Backend::Auto);
        let configured_scope = layers.decide(|s| s.scope, Scope::Agent);
        let channel_session = channel
            .as_ref()
            .and_then(|c| self.file.channels.get(c))
            .and_then(|c| c.session.as_ref());
        let channel_layer = || Layer::Channel(channel.clone().unwrap_or_default());
        let workspace_access = match channel_session.and_then(|s| s.workspace_access) {
            Some(value) => Decided {
                value,
                from: channel_layer(),
            },
            None => layers.decide(|s| s.workspace_access, WorkspaceAccess::None),
        };
        let session_agent_access = match channel_session.and_then(|s| s.session_agent_access) {
            Some(value) => Decided {
                value,
                from: channel_layer(),
            },
            None => layers.decide(|s| s.session_agent_access, SessionAgentAccess::Ro),
        };
        let workspace_root = layers.decide(
            |s| s.workspace_root.as_ref().map(PathBuf::from),
            self.state_dir.join("sandboxes"),
        );
        let umask = layers.decide(|s| s.umask, Mode(0o022));
        let prune = EffectivePrune {
            idle_hours: layers
                .decide(|s| s.prune.as_ref().and_then(|p| p.idle_hours), 24.0)
                .value,
            max_age_days: layers
                .decide(|s| s.prune.as_ref().and_then(|p| p.max_age_days), 7.0)
                .value,
        };
        let docker = merge_docker(
            layers.defaults.and_then(|s| s.docker.as_ref()),
            layers.agent.and_then(|s| s.docker.as_ref()),
        );

        let mut notes = Vec::new();
        let scope = if workspace_access.value == WorkspaceAccess::Session {
            if configured_scope.value != Scope::Session {
                notes.push(format!(
                    "workspaceAccess \"session\" forces a per-session sandbox (scope \"session\"; configured scope \"{}\" from {} does not apply)",
                    configured_scope.value, configured_scope.from
                ));
            }
            Decided {
                value: Scope::Session,
                from: Layer::Forced,
            }
        } else {
            configured_scope
        };
        let sandboxed = match mode.value {
            SandboxMode::Off => {
                notes.push("sandbox mode is \"off\": exec runs on the host, as carapace's own user; file tools stay confined to the agent workspace".into());
                false
            }
            SandboxMode::NonMain if key.is_main() => {
                notes.push(format!("mode \"non-main\" and {} is the agent's main session: not sandboxed; exec runs on the host", key.raw));
                false
            }
            _ => true,
        };
        let mut skey = scope_key(scope.value, &key, &agent_id);
        // A channel that overrides workspaceAccess gets a sandbox of its own when the scope is
        // shared across sessions (agent/shared): sessions with different mount tables must not
        // share one runtime (a Docker container would be recreated on every switch, and a
        // read-only channel would see another channel's scratch files). OpenClaw has no
        // per-channel access, so every key OpenClaw itself would compute is unchanged.
        if matches!(workspace_access.from, Layer::Channel(_)) && scope.value != Scope::Session {
            skey = format!("{skey}|access={}", workspace_access.value);
            notes.push(format!(
                "channel {} overrides workspaceAccess, so its sessions get their own {} sandbox (scope key {skey:?})",
                channel.as_deref().unwrap_or("?"),
                scope.value
            ));
        }
        let slug = slugify(&skey);
        let sandbox_dir = workspace_root.value.join(&slug);

        Ok(EffectiveSandbox {
            docker,
            prune,
            agent_workspace: self.agent_workspace(&agent_id),
            agent_id,
            session_key: key.raw.clone(),
            channel,
            mode,
            sandboxed,
            backend,
            scope,
            workspace_access,
            session_agent_access,
            workspace_root,
            umask,
            scope_key: skey,
            scope_slug: slug,
            sandbox_dir,
            notes,
        })
    }
}

/// The two configured sandbox layers of one agent.
struct Layers<'a> {
    defaults: Option<&'a SandboxSettings>,
    agent: Option<&'a SandboxSettings>,
    agent_id: &'a str,
}

impl Layers<'_> {
    /// The agent's value, else `agents.defaults`', else the built-in default.
    fn decide<T>(&self, f: impl Fn(&SandboxSettings) -> Option<T>, default: T) -> Decided<T> {
        if let Some(value) = self.agent.and_then(&f) {
            return Decided {
                value,
                from: Layer::Agent(self.agent_id.to_string()),
            };
        }
        if let Some(value) = self.defaults.and_then(&f) {
            return Decided {
                value,
                from: Layer::AgentDefaults,
            };
        }
        Decided {
            value: default,
            from: Layer::Default,
        }
    }
}

/// Defaults first, then the agent's values key by key; binds concatenate, env merges.
fn merge_docker(d: Option<&DockerSettings>, a: Option<&DockerSettings>) -> EffectiveDocker {
    fn get<T: Clone>(
        d: Option<&DockerSettings>,
        a: Option<&DockerSettings>,
        f: impl Fn(&DockerSettings) -> Option<T>,
    ) -> Option<T> {
        a.and_then(&f).or_else(|| d.and_then(&f))
    }
    let binds = [d, a]
        .into_iter()
        .flatten()
        .flat_map(|s| s.binds.iter().flatten())
        .filter_map(|b| parse_bind(b).ok()) // validated at load; cannot fail here
        .collect();
    let mut env = BTreeMap::new();
    for s in [d, a].into_iter().flatten() {
        if let Some(e) = &s.env {
            env.extend(e.clone());
        }
    }
    EffectiveDocker {
        image: get(d, a, |s| s.image.clone()).unwrap_or_else(|| DEFAULT_DOCKER_IMAGE.to_string()),
        container_prefix: get(d, a, |s| s.container_prefix.clone())
            .unwrap_or_else(|| "carapace-sbx-".to_string()),
        network: get(d, a, |s| s.network.clone()).unwrap_or_else(|| "none".to_string()),
        binds,
        env,
        user: get(d, a, |s| s.user.clone()),
        read_only_root: get(d, a, |s| s.read_only_root).unwrap_or(true),
        tmpfs: get(d, a, |s| s.tmpfs.clone())
            .unwrap_or_else(|| vec!["/tmp".into(), "/var/tmp".into(), "/run".into()]),
        cap_drop: get(d, a, |s| s.cap_drop.clone()).unwrap_or_else(|| vec!["ALL".into()]),
        memory: get(d, a, |s| s.memory.clone()),
        cpus: get(d, a, |s| s.cpus),
        pids_limit: get(d, a, |s| s.pids_limit),
    }
}

/// Default Docker image name.
pub const DEFAULT_DOCKER_IMAGE: &str = "carapace-sandbox:latest";
/// Default gateway port (OpenClaw's).
pub const DEFAULT_PORT: u16 = 18789;

/// `gateway.bind`: `host:port`, or OpenClaw's `loopback` / `lan` with `gateway.port`.
pub fn gateway_bind(bind: &str, port: Option<u16>) -> Result<SocketAddr, String> {
    let port = port.unwrap_or(DEFAULT_PORT);
    match bind {
        "loopback" => Ok(SocketAddr::from(([127, 0, 0, 1], port))),
        "lan" => Ok(SocketAddr::from(([0, 0, 0, 0], port))),
        other => other.parse::<SocketAddr>().map_err(|_| {
            format!("{other:?} is not \"loopback\", \"lan\" or an address like \"127.0.0.1:18789\"")
        }),
    }
}
