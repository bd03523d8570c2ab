//! What the policy knows about a tool: its OpenClaw section (which `group:*` it is in), the
//! profiles that include it, and its effects (what it can do to the world, which also decides
//! whether its calls are audited). The tools crate declares these in each tool's spec; the
//! policy receives them as a [`Catalog`], so this crate never needs to know the tools.

use serde::{Deserialize, Serialize};

use crate::config::ToolProfile;

/// What a tool can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Effect {
    /// Reads files of the session's mounts.
    ReadsWorkspace,
    /// Creates, changes or deletes files of the session's mounts.
    WritesWorkspace,
    /// Runs processes (in the sandbox, or on the host when the session is unsandboxed).
    RunsProcesses,
    /// Sends bytes to a chat channel.
    SendsOutbound,
    /// Reaches the network from the host (downloads, page loads).
    Network,
    /// Adds files to the media store.
    WritesMedia,
}

impl Effect {
    /// Wire form.
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::ReadsWorkspace => "readsWorkspace",
            Effect::WritesWorkspace => "writesWorkspace",
            Effect::RunsProcesses => "runsProcesses",
            Effect::SendsOutbound => "sendsOutbound",
            Effect::Network => "network",
            Effect::WritesMedia => "writesMedia",
        }
    }
}

/// OpenClaw's tool sections; `group:<section>` names every tool of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Section {
    /// Files (`read`, `write`, `edit`, `apply_patch`, and carapace's `ls`).
    Fs,
    /// Processes (`exec`).
    Runtime,
    /// Web search and fetch (no carapace tool).
    Web,
    /// Memory (no carapace tool).
    Memory,
    /// Sessions (no carapace tool).
    Sessions,
    /// Browser and canvas (`browser`).
    Ui,
    /// Messaging (`message`).
    Messaging,
    /// Cron and gateway control (no carapace tool).
    Automation,
    /// Nodes (no carapace tool).
    Nodes,
    /// Agents (no carapace tool).
    Agents,
    /// Media (`media_save`).
    Media,
    /// Not one of OpenClaw's sections (a tool of a test backend): in no group but
    /// `group:carapace`.
    Other,
}

impl Section {
    /// Every section, in OpenClaw's order.
    pub const ALL: &'static [Section] = &[
        Section::Fs,
        Section::Runtime,
        Section::Web,
        Section::Memory,
        Section::Sessions,
        Section::Ui,
        Section::Messaging,
        Section::Automation,
        Section::Nodes,
        Section::Agents,
        Section::Media,
    ];

    /// The section id (`fs`); its group is `group:fs`.
    pub fn as_str(self) -> &'static str {
        match self {
            Section::Fs => "fs",
            Section::Runtime => "runtime",
            Section::Web => "web",
            Section::Memory => "memory",
            Section::Sessions => "sessions",
            Section::Ui => "ui",
            Section::Messaging => "messaging",
            Section::Automation => "automation",
            Section::Nodes => "nodes",
            Section::Agents => "agents",
            Section::Media => "media",
            Section::Other => "other",
        }
    }
}

/// The group names a policy list may use: one per section, `group:openclaw` (OpenClaw's
/// built-in non-coding tools) and `group:carapace` (every carapace tool).
pub fn group_names() -> Vec<String> {
    let mut v: Vec<String> = Section::ALL
        .iter()
        .map(|s| format!("group:{}", s.as_str()))
        .collect();
    v.push("group:openclaw".into());
    v.push("group:carapace".into());
    v
}

/// The policy facts of one tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolMeta {
    /// Its section (and so its `group:*`).
    pub section: Section,
    /// The profiles that include it (every tool is in `full`).
    pub profiles: Vec<ToolProfile>,
    /// What it can do.
    pub effects: Vec<Effect>,
    /// Whether `group:openclaw` names it (OpenClaw puts its non-coding tools there).
    pub openclaw_group: bool,
}

impl ToolMeta {
    /// Whether calls of the tool are audited: anything beyond reading the workspace.
    pub fn audited(&self) -> bool {
        self.effects.iter().any(|e| *e != Effect::ReadsWorkspace)
    }
}

/// Every tool the policy decides about, by name, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Catalog {
    tools: Vec<(String, ToolMeta)>,
}

impl Catalog {
    /// A catalog of `tools` (names as given; keep them lower-case).
    pub fn new(tools: impl IntoIterator<Item = (String, ToolMeta)>) -> Catalog {
        Catalog {
            tools: tools.into_iter().collect(),
        }
    }

    /// The tools, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ToolMeta)> {
        self.tools.iter().map(|(n, m)| (n.as_str(), m))
    }

    /// One tool's facts.
    pub fn get(&self, name: &str) -> Option<&ToolMeta> {
        self.tools.iter().find(|(n, _)| n == name).map(|(_, m)| m)
    }

    /// The names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.tools.iter().map(|(n, _)| n.as_str()).collect()
    }
}
