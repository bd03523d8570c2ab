//! The configuration: JSON5 text → validated, typed [`Config`] (docs/config.md).
//!
//! Parsing is a pure function of the text and an injected environment ([`prepass::Env`]); the
//! CLI reads the file and the process environment and hands them in.

#[macro_use]
pub mod values;
mod agent_models;
mod checks;
pub mod expand;
pub mod inbound;
mod inbound_checks;
pub mod model;
pub mod openclaw_keys;
pub mod prepass;
pub mod raw;
pub mod redact;
pub mod tools;

use std::path::PathBuf;

use serde_json::{Map, Value};

pub use inbound::{
    AllowBotsSetting, Binding, BindingMatch, BindingPeer, DiscordIntentsConfig, DmSettings,
    GroupRule, HooksConfig, IdList, SessionConfig,
};
pub use model::*;
pub use tools::{
    AgentExecSettings, AgentToolsSettings, ApplyPatchSettings, ExecSecurity, GatewayMcpSettings,
    SandboxToolsSettings, SurfaceToolsSettings, ToolLists, ToolProfile,
};
pub use values::{
    AutoJoin, Backend, DmPolicy, DmScope, GroupPolicy, Mode, SandboxMode, Scope, Secret,
    SessionAgentAccess, WorkspaceAccess,
};

use crate::error::{CarapaceError, ErrorCode};

/// A configuration problem. Always `CONFIG_INVALID`, exit code 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The text is not JSON5.
    #[error("{source_name}: not valid JSON5: {message}")]
    Syntax {
        /// File the text came from.
        source_name: String,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A value is wrong.
    #[error("{source_name}: {path}: {message}")]
    Invalid {
        /// File the text came from.
        source_name: String,
        /// JSON path of the bad value.
        path: String,
        /// What is wrong, with the allowed values where there is a list.
        message: String,
    },
}

impl CarapaceError for ConfigError {
    fn code(&self) -> ErrorCode {
        ErrorCode::ConfigInvalid
    }
    fn hint(&self) -> Option<String> {
        Some("fix the file and run `carapace config validate`; the keys are listed in docs/config.md".into())
    }
    fn details(&self) -> Map<String, Value> {
        let mut m = Map::new();
        match self {
            ConfigError::Syntax { source_name, .. } => {
                m.insert("file".into(), source_name.clone().into());
            }
            ConfigError::Invalid {
                source_name, path, ..
            } => {
                m.insert("file".into(), source_name.clone().into());
                m.insert("path".into(), path.clone().into());
            }
        }
        m
    }
}

/// A loaded configuration with the facts resolution needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The handled sections, typed.
    pub file: ConfigFile,
    /// carapace's state directory.
    pub state_dir: PathBuf,
    /// One line per ignored section or key, and per unset secret reference.
    pub warnings: Vec<String>,
    /// The model sections (`models`, `agents.*.model` …), validated by [`crate::models`].
    pub models: std::sync::Arc<crate::models::ModelsSettings>,
}

/// What `parse` needs from the outside world.
pub struct LoadEnv<'a> {
    /// Environment lookup.
    pub var: &'a dyn Fn(&str) -> Option<String>,
    /// Home directory for `~`.
    pub home: &'a str,
    /// State directory (already resolved from `$CARAPACE_STATE_DIR` or `~/.carapace`).
    pub state_dir: PathBuf,
}

impl Config {
    /// The configuration of a missing file: all defaults.
    pub fn defaults(state_dir: PathBuf) -> Config {
        Config {
            file: ConfigFile::default(),
            state_dir,
            warnings: Vec::new(),
            models: std::sync::Arc::new(crate::models::ModelsSettings::default()),
        }
    }

    /// Parses and validates JSON5 text.
    pub fn parse(text: &str, source_name: &str, env: &LoadEnv<'_>) -> Result<Config, ConfigError> {
        let mut value: Value = raw::parse(text).map_err(|e| match e {
            raw::RawError::Syntax(message) => ConfigError::Syntax {
                source_name: source_name.to_string(),
                message,
            },
            raw::RawError::TooDeep { line, column } => ConfigError::Invalid {
                source_name: source_name.to_string(),
                path: "(document)".into(),
                message: format!(
                    "objects and arrays nested deeper than {} levels (at line {line} column {column}); carapace reads at most {} levels",
                    raw::MAX_DEPTH,
                    raw::MAX_DEPTH
                ),
            },
            raw::RawError::NonFinite { path, value } => ConfigError::Invalid {
                source_name: source_name.to_string(),
                path,
                message: format!("{value} is not a finite number; write a plain number"),
            },
        })?;
        let model_sections = agent_models::take(&mut value);
        let report = prepass::run(
            &mut value,
            &prepass::Env {
                var: env.var,
                home: env.home,
            },
        )
        .map_err(|e| ConfigError::Invalid {
            source_name: source_name.to_string(),
            path: e.path,
            message: e.message,
        })?;
        let mut file: ConfigFile = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::Invalid {
                source_name: source_name.to_string(),
                path: if path == "." { "(root)".into() } else { path },
                message: tidy_serde_message(&e.inner().to_string()),
            }
        })?;
        let mut warnings = report.warnings;
        resolve_secrets(&mut file, env.var, &mut warnings).map_err(|(path, message)| {
            ConfigError::Invalid {
                source_name: source_name.to_string(),
                path,
                message,
            }
        })?;
        validate(&file).map_err(|(path, message)| ConfigError::Invalid {
            source_name: source_name.to_string(),
            path,
            message,
        })?;
        let models = crate::models::ModelsSettings::from_config_value(&model_sections, env.var)
            .map_err(|e| ConfigError::Invalid {
                source_name: source_name.to_string(),
                path: e.path,
                message: e.message,
            })?;
        warnings.extend(models.warnings.iter().cloned());
        Ok(Config {
            file,
            state_dir: env.state_dir.clone(),
            warnings,
            models: std::sync::Arc::new(models),
        })
    }
}

/// serde says "unknown field `x`, expected one of `a`, `b`"; users read JSON5, so say "key".
fn tidy_serde_message(m: &str) -> String {
    let m = if m.starts_with("unknown field") {
        m.replace("unknown field", "unknown key").replace('`', "\"")
    } else {
        m.replace('`', "")
    };
    match m.find(" at line ") {
        Some(i) => m[..i].to_string(),
        None => m,
    }
}

fn resolve_secrets(
    file: &mut ConfigFile,
    var: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<(), (String, String)> {
    let mut fix = |s: &mut Secret, path: String| -> Result<(), (String, String)> {
        // At deserialization the secret kept the raw text; resolve references now.
        let raw = s.shown_raw();
        // A broken reference is an error that names the path, never the text (it is a secret).
        expand::check_syntax(&raw).map_err(|_| {
            (
                path.clone(),
                "holds a ${ that is not a ${NAME} reference (NAME is letters, digits and '_'; no nesting); write $${ for a literal ${".to_string(),
            )
        })?;
        *s = Secret::resolve(&raw, var);
        if s.expose().is_none() {
            warnings.push(format!(
                "{path}: references {}, which is not set; the channel cannot authenticate until it is",
                s.env_refs().iter().map(|r| format!("${{{r}}}")).collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(())
    };
    for (id, ch) in file.channels.iter_mut() {
        for (key, slot) in [
            ("botToken", &mut ch.bot_token),
            ("token", &mut ch.token),
            ("accessToken", &mut ch.access_token),
            ("url", &mut ch.url),
            ("appToken", &mut ch.app_token),
        ] {
            if let Some(s) = slot.as_mut() {
                fix(s, format!("channels.{id}.{key}"))?;
            }
        }
        if let Some(h) = ch.headers.as_mut() {
            for (name, s) in h.iter_mut() {
                fix(s, format!("channels.{id}.headers.{name}"))?;
            }
        }
    }
    if let Some(s) = file.gateway.auth.token.as_mut() {
        fix(s, "gateway.auth.token".into())?;
    }
    if let Some(s) = file.hooks.token.as_mut() {
        fix(s, "hooks.token".into())?;
    }
    Ok(())
}

/// Checks that need more than one value's type.
fn validate(file: &ConfigFile) -> Result<(), (String, String)> {
    let mut seen = std::collections::BTreeSet::new();
    for id in file.agents.entries.keys() {
        check_agent_id(id, &format!("agents.entries.{id}"))?;
        seen.insert(id.clone());
    }
    for (i, a) in file.agents.list.iter().enumerate() {
        let path = format!("agents.list[{i}]");
        let id = a.id.as_deref().ok_or_else(|| {
            (
                path.clone(),
                "an agent in the list needs an \"id\"".to_string(),
            )
        })?;
        check_agent_id(id, &format!("{path}.id"))?;
        if !seen.insert(id.to_string()) {
            return Err((
                format!("{path}.id"),
                format!(
                    "agent {id:?} is configured twice (agents.entries and agents.list, or twice in the list)"
                ),
            ));
        }
    }
    for (path, a) in agent_layers(file) {
        if let Some(sb) = &a.sandbox {
            validate_sandbox(sb, &format!("{path}.sandbox"))?;
            checks::sandbox_layer(sb, &format!("{path}.sandbox"))?;
        }
        checks::agent_layer(a, &path)?;
    }
    checks::file(file)?;
    checks::tools(file)?;
    inbound_checks::file(file)?;
    if let Some(m) = file.media.max_bytes
        && m == 0
    {
        return Err(("media.maxBytes".into(), "0 is not a usable limit".into()));
    }
    if file.tools.fs.max_read_bytes == 0 {
        return Err((
            "tools.fs.maxReadBytes".into(),
            "0 is not a usable limit".into(),
        ));
    }
    if file.tools.exec.timeout_seconds == 0 {
        return Err((
            "tools.exec.timeoutSeconds".into(),
            "0 is not a usable timeout".into(),
        ));
    }
    for (id, ch) in &file.channels {
        if let Some(mb) = ch.media_max_mb
            && !(mb > 0.0 && mb.is_finite())
        {
            return Err((
                format!("channels.{id}.mediaMaxMb"),
                format!("{mb} is not a positive number of MiB"),
            ));
        }
        for (key, url, secret) in [
            ("apiBaseUrl", ch.api_base_url.as_deref(), false),
            ("homeserver", ch.homeserver.as_deref(), false),
            ("url", ch.url.as_ref().and_then(Secret::expose), true),
        ] {
            if let Some(u) = url
                && !(u.starts_with("http://") || u.starts_with("https://"))
            {
                // The URL may carry a credential (a webhook URL is one): never echo it.
                let shown = if secret {
                    redact::redact_secret_url(u)
                } else {
                    redact::redact_url(u)
                };
                return Err((
                    format!("channels.{id}.{key}"),
                    format!("{shown} is not an http(s) URL"),
                ));
            }
        }
    }
    if let Some(b) = &file.gateway.bind {
        crate::resolve::gateway_bind(b, file.gateway.port)
            .map_err(|m| ("gateway.bind".to_string(), m))?;
    }
    if let Some(m) = &file.gateway.auth.mode
        && m != "token"
    {
        return Err((
            "gateway.auth.mode".into(),
            format!("{m:?} is not supported; carapace supports \"token\""),
        ));
    }
    Ok(())
}

fn check_agent_id(id: &str, path: &str) -> Result<(), (String, String)> {
    if crate::session::normalize_agent_id(id) != id {
        return Err((
            path.to_string(),
            format!(
                "{id:?} is not a valid agent id (lower-case letters, digits, '-' and '_', at most 64)"
            ),
        ));
    }
    Ok(())
}

fn validate_sandbox(sb: &SandboxSettings, path: &str) -> Result<(), (String, String)> {
    if let Some(d) = &sb.docker {
        for (i, b) in d.binds.iter().flatten().enumerate() {
            crate::binds::parse_bind(b).map_err(|m| (format!("{path}.docker.binds[{i}]"), m))?;
        }
        if let Some(m) = &d.memory {
            crate::limits::parse_memory(m).map_err(|e| (format!("{path}.docker.memory"), e))?;
        }
        if let Some(c) = d.cpus
            && !(c > 0.0 && c.is_finite())
        {
            return Err((
                format!("{path}.docker.cpus"),
                format!("{c} is not a positive number"),
            ));
        }
    }
    if let Some(p) = &sb.prune {
        for (k, v) in [("idleHours", p.idle_hours), ("maxAgeDays", p.max_age_days)] {
            if let Some(v) = v
                && !(v >= 0.0 && v.is_finite())
            {
                return Err((
                    format!("{path}.prune.{k}"),
                    format!("{v} is not a non-negative number"),
                ));
            }
        }
    }
    if let Some(root) = &sb.workspace_root
        && !root.starts_with('/')
    {
        return Err((
            format!("{path}.workspaceRoot"),
            format!("{root:?} is not an absolute path (\"~/...\" is fine)"),
        ));
    }
    Ok(())
}

/// `agents.defaults` and every per-agent layer, with its JSON path.
fn agent_layers(file: &ConfigFile) -> Vec<(String, &AgentSettings)> {
    let mut v = vec![("agents.defaults".to_string(), &file.agents.defaults)];
    v.extend(
        file.agents
            .entries
            .iter()
            .map(|(id, a)| (format!("agents.entries.{id}"), a)),
    );
    v.extend(
        file.agents
            .list
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("agents.list[{i}]"), a)),
    );
    v
}
