//! The system prompt: carapace's own short sections, the caller's extra text, and the agent
//! workspace's bootstrap files (OpenClaw's convention: `AGENTS.md`, `SOUL.md`, `TOOLS.md`,
//! `IDENTITY.md`, `USER.md`, `HEARTBEAT.md`, `BOOTSTRAP.md`, `MEMORY.md` or `memory.md`, in
//! that order), each cut at `bootstrapMaxChars` (`USER.md` at most 4,000) and all of them at
//! `bootstrapTotalMaxChars`, with a notice when anything was cut. The files are read through
//! carapace-fs beneath the workspace: a symlink leading out of it is refused, never followed.

use std::path::Path;

use carapace_fs::{ReadOptions, Root, SymlinkPolicy};
use carapace_policy::models::{AgentRunSettings, ContextInjection};

use crate::message::ToolDef;

/// The bootstrap files, in injection order.
pub const BOOTSTRAP_FILES: &[&str] = &[
    "AGENTS.md",
    "SOUL.md",
    "TOOLS.md",
    "IDENTITY.md",
    "USER.md",
    "HEARTBEAT.md",
    "BOOTSTRAP.md",
    "MEMORY.md",
];

const USER_MD_CAP: usize = 4_000;

/// What the prompt is built from.
pub(crate) struct PromptInput<'a> {
    pub agent_id: &'a str,
    pub workspace: &'a Path,
    pub tools: &'a [ToolDef],
    pub sandboxed: Option<bool>,
    pub extra: Option<&'a str>,
    pub settings: &'a AgentRunSettings,
}

/// Builds the system prompt.
pub(crate) fn system_prompt(p: &PromptInput<'_>) -> String {
    let mut s = String::new();
    s.push_str("You are a personal assistant running inside carapace");
    if p.agent_id != carapace_policy::session::DEFAULT_AGENT_ID {
        s.push_str(&format!(" (agent \"{}\")", p.agent_id));
    }
    s.push_str(".\n\n## Tooling\n");
    if p.tools.is_empty() {
        s.push_str("No tools are available in this session.\n");
    } else {
        for t in p.tools {
            let first = t.description.split(". ").next().unwrap_or_default();
            s.push_str(&format!("- {}: {}\n", t.name, first.trim_end_matches('.')));
        }
        s.push_str(
            "Tool results are JSON. A failed call returns {\"ok\": false, \"error\": {code, message, hint}}: \
             read the hint and recover (for example, save a file with media_save before sending it) instead of giving up.\n",
        );
    }
    s.push_str(
        "\n## Workspace\nYour working directory is /workspace; relative paths are relative to it.",
    );
    match p.sandboxed {
        Some(true) => {
            s.push_str(" Commands run in a sandbox that sees only the mounted workspace.")
        }
        Some(false) => s.push_str(" Commands run on the host, in the agent workspace."),
        None => {}
    }
    s.push('\n');
    if let Some(extra) = p.extra.filter(|e| !e.trim().is_empty()) {
        s.push_str("\n## Instructions\n");
        s.push_str(extra.trim());
        s.push('\n');
    }
    if p.settings.context_injection == ContextInjection::Always {
        let files = bootstrap(p.workspace, p.settings);
        if !files.sections.is_empty() {
            s.push_str("\n# Project Context\nThe following workspace files are loaded for you:\n");
            for (name, text) in &files.sections {
                s.push_str(&format!("\n## {name}\n{text}\n"));
            }
            if files.truncated {
                s.push_str("\n(Some workspace files were truncated to fit; read them with the read tool for the full text.)\n");
            }
        }
    }
    // Last, and the date only: everything before it stays byte-identical from turn to turn, so
    // providers that cache prompt prefixes can.
    let today = crate::time::now_rfc3339();
    s.push_str(&format!("\n## Current date\n{} (UTC)\n", &today[..10]));
    s
}

/// The bootstrap sections read from a workspace.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Bootstrap {
    pub sections: Vec<(String, String)>,
    pub truncated: bool,
}

pub(crate) fn bootstrap(workspace: &Path, settings: &AgentRunSettings) -> Bootstrap {
    let mut out = Bootstrap::default();
    let Ok(root) = Root::open(workspace) else {
        return out;
    };
    let per_file = settings.bootstrap_max_chars as usize;
    let mut total_left = settings.bootstrap_total_max_chars as usize;
    let opts = ReadOptions {
        max_bytes: Some(4 << 20),
        symlinks: SymlinkPolicy::FollowInside,
        ..ReadOptions::default()
    };
    for name in BOOTSTRAP_FILES {
        let bytes = match root.read(Path::new(name), &opts) {
            Ok(b) => b,
            Err(_) if *name == "MEMORY.md" => match root.read(Path::new("memory.md"), &opts) {
                Ok(b) => b,
                Err(_) => continue,
            },
            Err(e) => {
                if !matches!(e, carapace_fs::FsError::NotFound { .. }) {
                    tracing::warn!(file = name, error = %e, "bootstrap file not loaded");
                }
                continue;
            }
        };
        let text = strip_front_matter(&String::from_utf8_lossy(&bytes))
            .trim()
            .to_string();
        if text.is_empty() || total_left == 0 {
            out.truncated |= total_left == 0 && !text.is_empty();
            continue;
        }
        let cap = if *name == "USER.md" {
            per_file.min(USER_MD_CAP)
        } else {
            per_file
        }
        .min(total_left);
        let (cut, was_cut) = cut_chars(&text, cap);
        out.truncated |= was_cut;
        total_left -= cut.chars().count();
        out.sections.push((name.to_string(), cut));
    }
    out
}

fn strip_front_matter(s: &str) -> &str {
    if !s.starts_with("---") {
        return s;
    }
    match s[3..].find("\n---") {
        Some(end) => s[3 + end + 4..].trim_start(),
        None => s,
    }
}

/// The first `max` characters of `s`, and whether anything was cut.
pub(crate) fn cut_chars(s: &str, max: usize) -> (String, bool) {
    match s.char_indices().nth(max) {
        Some((i, _)) => (s[..i].to_string(), true),
        None => (s.to_string(), false),
    }
}
