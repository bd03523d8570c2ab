//! Model configuration of the agent runtime, OpenClaw-compatible, validated strictly
//! from the raw JSON value of the whole config file (after JSON5 parsing, before anything
//! else touches it). Pure: the environment is injected, nothing is read or written.
//!
//! Sections read:
//! - `models`: `mode` (`merge` | `replace`), `providers.<id>` {`baseUrl`, `apiKey` (`${ENV}`,
//!   a literal, or `{source: "env", id}`), `api` (`openai-completions` | `anthropic-messages`),
//!   `headers`, `authHeader`, `auth: "api-key"`, provider-level `contextWindow` /
//!   `contextTokens` / `maxTokens`, `models[]` {`id`, `name`, `api`, `input` (`text` /
//!   `image`), `contextWindow`, `contextTokens`, `maxTokens`, `headers`, `reasoning`, `cost`,
//!   `compat`}}, `proxy`;
//! - `agents.defaults` and each agent (`agents.entries.<id>`, `agents.list[]`): `model`
//!   (`"provider/model"` or `{primary, fallbacks}`), `models` (aliases), `modelPolicy.allow`,
//!   `timeoutSeconds`, `contextInjection`, `bootstrapMaxChars`, `bootstrapTotalMaxChars`, and
//!   (defaults only) `maxConcurrent`.
//!
//! Strictness follows the rest of carapace: in `models.*` (a section carapace owns here) an
//! unknown key is an error naming the JSON path and the allowed keys; a key OpenClaw defines
//! that only adds behaviour carapace lacks (`injectNumCtxForOpenAICompat`, `params`,
//! `bedrockDiscovery`…) is dropped with a warning; one that would restrict or redirect
//! something carapace cannot honour (`auth: "oauth"`, an `api` carapace does not speak, a
//! `file`/`exec` secret reference) is an error: fail closed.
//!
//! Built-in providers (`openai`, `anthropic`, `openrouter`) need no `models.providers` entry,
//! as in OpenClaw: their base URL and `${OPENAI_API_KEY}`-style key are known, and any model id
//! may be named. `models.mode: "replace"` turns them off.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::config::values::Secret;
use crate::error::{CarapaceError, ErrorCode};

/// Context window assumed for a model whose entry does not give one.
pub const DEFAULT_CONTEXT_WINDOW: u32 = 128_000;
/// Output-token limit assumed for a model whose entry does not give one.
pub const DEFAULT_MAX_TOKENS: u32 = 8_192;
/// OpenClaw's default turn timeout (`agents.defaults.timeoutSeconds`).
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 600;
/// Default cap on concurrent turns across sessions (`agents.defaults.maxConcurrent`).
pub const DEFAULT_MAX_CONCURRENT: u32 = 4;
/// Per-file cap of bootstrap files in the system prompt (`bootstrapMaxChars`).
pub const DEFAULT_BOOTSTRAP_MAX_CHARS: u32 = 20_000;
/// Total cap of bootstrap files in the system prompt (`bootstrapTotalMaxChars`).
pub const DEFAULT_BOOTSTRAP_TOTAL_MAX_CHARS: u32 = 60_000;

/// Keys of `agents.defaults` / per-agent objects this module handles. The config validator
/// should stop warning about them once it hands the raw value here.
pub const HANDLED_AGENT_KEYS: &[&str] = &[
    "model",
    "models",
    "modelPolicy",
    "timeoutSeconds",
    "contextInjection",
    "bootstrapMaxChars",
    "bootstrapTotalMaxChars",
    "maxConcurrent",
];

/// A model configuration problem: always `CONFIG_INVALID`, with the JSON path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ModelsError {
    /// JSON path of the bad value (`models.providers.local.api`).
    pub path: String,
    /// What is wrong, with the allowed values where there is a list.
    pub message: String,
}

impl CarapaceError for ModelsError {
    fn code(&self) -> ErrorCode {
        ErrorCode::ConfigInvalid
    }
    fn hint(&self) -> Option<String> {
        Some("fix the file and run `carapace config validate`; the model keys are listed in docs/agent.md".into())
    }
    fn details(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("path".into(), self.path.clone().into());
        m
    }
}

fn bad(path: impl Into<String>, message: impl Into<String>) -> ModelsError {
    ModelsError {
        path: path.into(),
        message: message.into(),
    }
}

/// The wire format of a provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelApi {
    /// OpenAI Chat Completions and compatible servers (`openai-completions`).
    OpenAiCompletions,
    /// The Anthropic Messages API (`anthropic-messages`).
    AnthropicMessages,
}

impl ModelApi {
    /// The values carapace speaks.
    pub const VALUES: &'static [&'static str] = &["openai-completions", "anthropic-messages"];
    /// OpenClaw's other values: valid there, not spoken by carapace (an error here).
    const OPENCLAW_OTHERS: &'static [&'static str] = &[
        "openai-responses",
        "openai-codex-responses",
        "google-generative-ai",
        "github-copilot",
        "bedrock-converse-stream",
        "ollama",
    ];

    /// Wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelApi::OpenAiCompletions => "openai-completions",
            ModelApi::AnthropicMessages => "anthropic-messages",
        }
    }

    fn parse(v: &Value, path: &str) -> Result<ModelApi, ModelsError> {
        match v.as_str() {
            Some("openai-completions") => Ok(ModelApi::OpenAiCompletions),
            Some("anthropic-messages") => Ok(ModelApi::AnthropicMessages),
            Some(s) if Self::OPENCLAW_OTHERS.contains(&s) => Err(bad(
                path,
                format!(
                    "{s:?} is an OpenClaw API carapace does not speak; use one of {} (most servers offer an OpenAI-compatible /v1)",
                    Self::VALUES.join(", ")
                ),
            )),
            _ => Err(bad(
                path,
                format!("{v} is not one of {}", Self::VALUES.join(", ")),
            )),
        }
    }
}

impl fmt::Display for ModelApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which field carries the output-token limit on the OpenAI wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaxTokensField {
    /// `max_tokens` (every compatible server).
    #[default]
    MaxTokens,
    /// `max_completion_tokens` (newer OpenAI models).
    MaxCompletionTokens,
}

/// Per-model wire adjustments (`compat`), the ones carapace implements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelCompat {
    /// `compat.maxTokensField`.
    pub max_tokens_field: MaxTokensField,
    /// `compat.supportsUsageInStreaming` (default true): send `stream_options.include_usage`.
    pub supports_usage_in_streaming: bool,
    /// `compat.supportsTools` (default true): false offers the model no tools.
    pub supports_tools: bool,
    /// `compat.requiresToolResultName`: tool messages also carry the tool's `name`.
    pub requires_tool_result_name: bool,
}

impl Default for ModelCompat {
    fn default() -> Self {
        ModelCompat {
            max_tokens_field: MaxTokensField::MaxTokens,
            supports_usage_in_streaming: true,
            supports_tools: true,
            requires_tool_result_name: false,
        }
    }
}

/// One model of a provider.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDefinition {
    /// The id sent on the wire (`gpt-4.1-mini`, `qwen/qwen3-32b`).
    pub id: String,
    /// Display name.
    pub name: Option<String>,
    /// Wire format, when it differs from the provider's.
    pub api: Option<ModelApi>,
    /// Accepts image input (`input` contains `"image"`).
    pub accepts_images: bool,
    /// Native context window, tokens.
    pub context_window: u32,
    /// Cap on the input actually used (`contextTokens`), if lower than the window.
    pub context_tokens: Option<u32>,
    /// Output-token limit per call.
    pub max_tokens: u32,
    /// Extra request headers for this model.
    pub headers: BTreeMap<String, Secret>,
    /// Reasoning model (informational).
    pub reasoning: bool,
    /// Wire adjustments.
    pub compat: ModelCompat,
    /// False for a model named through a built-in provider but not listed in the config: its
    /// limits are the defaults.
    pub listed: bool,
}

impl ModelDefinition {
    /// The input budget: `min(contextWindow, contextTokens)`.
    pub fn input_budget(&self) -> u32 {
        self.context_tokens
            .map_or(self.context_window, |c| c.min(self.context_window))
    }
}

/// One provider (`models.providers.<id>`, or a built-in one).
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    /// Provider id (`openai`, `local`).
    pub id: String,
    /// Base URL: for `openai-completions` up to and including `/v1`; for `anthropic-messages`
    /// the host part (`/v1/messages` is appended).
    pub base_url: String,
    /// Default wire format of its models.
    pub api: ModelApi,
    /// API key (never shown: `Secret` prints the reference).
    pub api_key: Option<Secret>,
    /// Extra request headers (values are secrets: they may carry tokens).
    pub headers: BTreeMap<String, Secret>,
    /// `authHeader: true`: send the key as `Authorization: Bearer` also on `anthropic-messages`.
    pub auth_header: bool,
    /// Its models.
    pub models: Vec<ModelDefinition>,
    /// Built in (any model id may be named).
    pub builtin: bool,
    defaults: LimitDefaults,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct LimitDefaults {
    context_window: Option<u32>,
    context_tokens: Option<u32>,
    max_tokens: Option<u32>,
}

impl ProviderConfig {
    /// The model `id`: the listed entry, or (built-in providers only) one with default limits.
    pub fn model(&self, id: &str) -> Option<ModelDefinition> {
        if let Some(m) = self.models.iter().find(|m| m.id == id) {
            return Some(m.clone());
        }
        self.builtin.then(|| ModelDefinition {
            id: id.to_string(),
            name: None,
            api: None,
            accepts_images: false,
            context_window: self
                .defaults
                .context_window
                .unwrap_or(DEFAULT_CONTEXT_WINDOW),
            context_tokens: self.defaults.context_tokens,
            max_tokens: self.defaults.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            headers: BTreeMap::new(),
            reasoning: false,
            compat: ModelCompat::default(),
            listed: false,
        })
    }
}

/// `provider/model`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelRef {
    /// Provider id.
    pub provider: String,
    /// Model id (may itself contain `/`).
    pub model: String,
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

/// Primary model and ordered fallbacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSelection {
    /// Tried first.
    pub primary: ModelRef,
    /// Tried in order when the one before fails (after its retries).
    pub fallbacks: Vec<ModelRef>,
}

impl ModelSelection {
    /// Primary then fallbacks, without duplicates.
    pub fn chain(&self) -> Vec<ModelRef> {
        let mut out = vec![self.primary.clone()];
        for f in &self.fallbacks {
            if !out.contains(f) {
                out.push(f.clone());
            }
        }
        out
    }
}

/// `agents.defaults.contextInjection`: whether workspace bootstrap files enter the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextInjection {
    /// Every turn (`always`; `continuation-skip` is treated the same).
    Always,
    /// Never (`never`).
    Never,
}

/// The run settings of one layer (defaults or one agent); `None` = not set here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentRunLayer {
    /// `model`.
    pub model: Option<ModelSelection>,
    /// `modelPolicy.allow` (patterns).
    pub allow: Option<Vec<String>>,
    /// `timeoutSeconds`.
    pub timeout_seconds: Option<u64>,
    /// `contextInjection`.
    pub context_injection: Option<ContextInjection>,
    /// `bootstrapMaxChars`.
    pub bootstrap_max_chars: Option<u32>,
    /// `bootstrapTotalMaxChars`.
    pub bootstrap_total_max_chars: Option<u32>,
}

/// The effective run settings of one agent.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRunSettings {
    /// Model chain; `None` when nothing is configured (a turn is then `MODEL_NOT_CONFIGURED`).
    pub model: Option<ModelSelection>,
    /// Turn wall-time limit in seconds.
    pub timeout_seconds: u64,
    /// Bootstrap injection.
    pub context_injection: ContextInjection,
    /// Per-file cap of bootstrap files (characters).
    pub bootstrap_max_chars: u32,
    /// Total cap of bootstrap files (characters).
    pub bootstrap_total_max_chars: u32,
    /// `modelPolicy.allow`, if any: a model override (a request naming another model) must
    /// match one pattern.
    pub allow: Option<Vec<String>>,
}

/// Everything the agent runtime needs from the configuration about models.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelsSettings {
    /// Providers by id (configured, and built-in unless `models.mode: "replace"`).
    pub providers: BTreeMap<String, ProviderConfig>,
    /// `models.proxy`: HTTP(S) proxy for every model call.
    pub proxy: Option<String>,
    /// Aliases from `agents.defaults.models.<ref>.alias`.
    pub aliases: BTreeMap<String, ModelRef>,
    /// `agents.defaults`.
    pub defaults: AgentRunLayer,
    /// Per-agent layers by agent id.
    pub agents: BTreeMap<String, AgentRunLayer>,
    /// `agents.defaults.maxConcurrent`: concurrent turns across all sessions.
    pub max_concurrent: u32,
    /// One line per ignored key and per unset secret reference.
    pub warnings: Vec<String>,
}

impl Default for ModelsSettings {
    fn default() -> Self {
        ModelsSettings {
            providers: builtin_providers(&|_| None),
            proxy: None,
            aliases: BTreeMap::new(),
            defaults: AgentRunLayer::default(),
            agents: BTreeMap::new(),
            max_concurrent: DEFAULT_MAX_CONCURRENT,
            warnings: Vec::new(),
        }
    }
}

impl ModelsSettings {
    /// Validates the model sections of a whole config value. `var` looks up `${ENV}`.
    pub fn from_config_value(
        root: &Value,
        var: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ModelsSettings, ModelsError> {
        let mut warnings = Vec::new();
        let empty = Map::new();
        let root_obj = root.as_object().unwrap_or(&empty);
        let models = match root_obj.get("models") {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(m)) => m,
            Some(v) => return Err(bad("models", format!("{v} is not an object"))),
        };
        check_keys(
            models,
            "models",
            &["mode", "providers", "proxy"],
            &["bedrockDiscovery"],
            &mut warnings,
        )?;
        let replace = match models.get("mode") {
            None => false,
            Some(Value::String(s)) if s == "merge" => false,
            Some(Value::String(s)) if s == "replace" => true,
            Some(v) => {
                return Err(bad(
                    "models.mode",
                    format!("{v} is not one of merge, replace"),
                ));
            }
        };
        let proxy = opt_str(models, "proxy", "models")?;
        if let Some(p) = &proxy
            && !(p.starts_with("http://") || p.starts_with("https://"))
        {
            return Err(bad(
                "models.proxy",
                format!("{p:?} is not an http(s) proxy URL"),
            ));
        }
        let mut providers = if replace {
            BTreeMap::new()
        } else {
            builtin_providers(var)
        };
        match models.get("providers") {
            None | Some(Value::Null) => {}
            Some(Value::Object(ps)) => {
                for (id, v) in ps {
                    let path = format!("models.providers.{id}");
                    check_provider_id(id, &path)?;
                    let base = providers.remove(id);
                    let p = parse_provider(id, v, &path, base, var, &mut warnings)?;
                    providers.insert(id.clone(), p);
                }
            }
            Some(v) => return Err(bad("models.providers", format!("{v} is not an object"))),
        }

        let agents = root_obj.get("agents").and_then(Value::as_object);
        let defaults_obj = agents
            .and_then(|a| a.get("defaults"))
            .and_then(Value::as_object);
        let mut aliases = BTreeMap::new();
        if let Some(d) = defaults_obj {
            parse_aliases(d, &providers, &mut aliases, &mut warnings)?;
        }
        let ctx = RefCtx {
            providers: &providers,
            aliases: &aliases,
        };
        let defaults = match defaults_obj {
            Some(d) => parse_layer(d, "agents.defaults", &ctx, &mut warnings)?,
            None => AgentRunLayer::default(),
        };
        let max_concurrent = match defaults_obj.and_then(|d| d.get("maxConcurrent")) {
            None => DEFAULT_MAX_CONCURRENT,
            Some(v) => positive_u32(v, "agents.defaults.maxConcurrent")?,
        };
        let mut per_agent = BTreeMap::new();
        if let Some(entries) = agents
            .and_then(|a| a.get("entries"))
            .and_then(Value::as_object)
        {
            for (id, v) in entries {
                if let Some(o) = v.as_object() {
                    let layer =
                        parse_layer(o, &format!("agents.entries.{id}"), &ctx, &mut warnings)?;
                    per_agent.insert(id.clone(), layer);
                }
            }
        }
        if let Some(list) = agents.and_then(|a| a.get("list")).and_then(Value::as_array) {
            for (i, v) in list.iter().enumerate() {
                let Some(o) = v.as_object() else { continue };
                let Some(id) = o.get("id").and_then(Value::as_str) else {
                    continue;
                };
                let layer = parse_layer(o, &format!("agents.list[{i}]"), &ctx, &mut warnings)?;
                per_agent.insert(id.to_string(), layer);
            }
        }
        Ok(ModelsSettings {
            providers,
            proxy,
            aliases,
            defaults,
            agents: per_agent,
            max_concurrent,
            warnings,
        })
    }

    /// The effective run settings of an agent: its layer over `agents.defaults`, key by key.
    pub fn run_settings(&self, agent_id: &str) -> AgentRunSettings {
        let a = self.agents.get(agent_id);
        let d = &self.defaults;
        macro_rules! pick {
            ($f:ident) => {
                a.and_then(|a| a.$f.clone()).or_else(|| d.$f.clone())
            };
        }
        AgentRunSettings {
            model: pick!(model),
            timeout_seconds: pick!(timeout_seconds).unwrap_or(DEFAULT_TIMEOUT_SECONDS),
            context_injection: pick!(context_injection).unwrap_or(ContextInjection::Always),
            bootstrap_max_chars: pick!(bootstrap_max_chars).unwrap_or(DEFAULT_BOOTSTRAP_MAX_CHARS),
            bootstrap_total_max_chars: pick!(bootstrap_total_max_chars)
                .unwrap_or(DEFAULT_BOOTSTRAP_TOTAL_MAX_CHARS),
            allow: pick!(allow),
        }
    }

    /// The provider and model a reference names, if configured.
    pub fn lookup(&self, r: &ModelRef) -> Option<(&ProviderConfig, ModelDefinition)> {
        let p = self.providers.get(&r.provider)?;
        Some((p, p.model(&r.model)?))
    }

    /// Resolves a model reference the way the config does (`provider/model`, an alias, or a
    /// bare id that exactly one configured provider lists).
    pub fn resolve_ref(&self, s: &str) -> Result<ModelRef, String> {
        RefCtx {
            providers: &self.providers,
            aliases: &self.aliases,
        }
        .resolve(s)
    }

    /// True when `agent_id` may use `r` as an override of its configured model: no
    /// `modelPolicy.allow` (allow any), or `r` matches one of its patterns (exact
    /// `provider/model`, an alias, or a trailing `*` prefix such as `openai/*`).
    pub fn override_allowed(&self, agent_id: &str, r: &ModelRef) -> bool {
        let Some(allow) = self.run_settings(agent_id).allow else {
            return true;
        };
        if allow.is_empty() {
            return true;
        }
        let full = r.to_string();
        allow.iter().any(|p| {
            if let Some(prefix) = p.strip_suffix('*') {
                full.starts_with(prefix)
            } else if let Some(a) = self.aliases.get(p) {
                a == r
            } else {
                *p == full
            }
        })
    }
}

/// The providers OpenClaw knows without configuration, with their usual key variables.
fn builtin_providers(var: &dyn Fn(&str) -> Option<String>) -> BTreeMap<String, ProviderConfig> {
    let mk = |id: &str, url: &str, api: ModelApi, env: &str| ProviderConfig {
        id: id.to_string(),
        base_url: url.to_string(),
        api,
        api_key: Some(Secret::resolve(&format!("${{{env}}}"), var)),
        headers: BTreeMap::new(),
        auth_header: false,
        models: Vec::new(),
        builtin: true,
        defaults: LimitDefaults::default(),
    };
    [
        mk(
            "openai",
            "https://api.openai.com/v1",
            ModelApi::OpenAiCompletions,
            "OPENAI_API_KEY",
        ),
        mk(
            "anthropic",
            "https://api.anthropic.com",
            ModelApi::AnthropicMessages,
            "ANTHROPIC_API_KEY",
        ),
        mk(
            "openrouter",
            "https://openrouter.ai/api/v1",
            ModelApi::OpenAiCompletions,
            "OPENROUTER_API_KEY",
        ),
    ]
    .into_iter()
    .map(|p| (p.id.clone(), p))
    .collect()
}

fn check_provider_id(id: &str, path: &str) -> Result<(), ModelsError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(bad(
            path,
            format!(
                "{id:?} is not a valid provider id (lower-case letters, digits, '-', '_', '.'; at most 64)"
            ),
        ))
    }
}

/// Unknown keys are errors; `dropped` are OpenClaw keys carapace ignores with a warning.
fn check_keys(
    obj: &Map<String, Value>,
    path: &str,
    handled: &[&str],
    dropped: &[&str],
    warnings: &mut Vec<String>,
) -> Result<(), ModelsError> {
    for k in obj.keys() {
        if handled.contains(&k.as_str()) {
            continue;
        }
        if dropped.contains(&k.as_str()) {
            warnings.push(format!("{path}.{k}: not implemented by carapace; ignored"));
            continue;
        }
        return Err(bad(
            format!("{path}.{k}"),
            format!("unknown key; allowed keys: {}", handled.join(", ")),
        ));
    }
    Ok(())
}

fn opt_str(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<String>, ModelsError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(v) => Err(bad(
            format!("{path}.{key}"),
            format!("{v} is not a non-empty string"),
        )),
    }
}

fn opt_bool(obj: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>, ModelsError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(bad(
            format!("{path}.{key}"),
            format!("{v} is not true or false"),
        )),
    }
}

fn positive_u32(v: &Value, path: &str) -> Result<u32, ModelsError> {
    v.as_u64()
        .filter(|n| *n > 0)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| bad(path, format!("{v} is not a positive integer")))
}

fn opt_positive(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<u32>, ModelsError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => positive_u32(v, &format!("{path}.{key}")).map(Some),
    }
}

/// A SecretInput: a string (`${ENV}` expanded) or `{source: "env", provider?, id}`.
fn parse_secret(
    v: &Value,
    path: &str,
    var: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<Secret, ModelsError> {
    let raw = match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => {
            check_keys(o, path, &["source", "provider", "id"], &[], warnings)?;
            match o.get("source").and_then(Value::as_str) {
                Some("env") => {}
                Some(s @ ("file" | "exec")) => {
                    return Err(bad(
                        format!("{path}.source"),
                        format!(
                            "{s:?} secret references are not supported by carapace; use an environment variable (\"${{NAME}}\" or {{source: \"env\", id: \"NAME\"}})"
                        ),
                    ));
                }
                _ => {
                    return Err(bad(
                        format!("{path}.source"),
                        "must be \"env\" (file and exec references are not supported)",
                    ));
                }
            }
            let id = o.get("id").and_then(Value::as_str).unwrap_or_default();
            let valid = !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
                && !id.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(bad(
                    format!("{path}.id"),
                    "must name an environment variable (upper-case letters, digits, '_')",
                ));
            }
            format!("${{{id}}}")
        }
        v => {
            return Err(bad(
                path,
                format!("{} is not a string or an env secret reference", kind(v)),
            ));
        }
    };
    let s = Secret::resolve(&raw, var);
    if s.expose().is_none() {
        warnings.push(format!(
            "{path}: references {}, which is not set; calls to this provider fail until it is",
            s.env_refs()
                .iter()
                .map(|r| format!("${{{r}}}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(s)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_headers(
    v: Option<&Value>,
    path: &str,
    var: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<BTreeMap<String, Secret>, ModelsError> {
    let mut out = BTreeMap::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Object(h)) => {
            for (name, value) in h {
                let p = format!("{path}.{name}");
                let valid_name = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
                if !valid_name {
                    return Err(bad(p, "is not a valid HTTP header name"));
                }
                let lower = name.to_ascii_lowercase();
                if [
                    "host",
                    "content-length",
                    "content-type",
                    "transfer-encoding",
                ]
                .contains(&lower.as_str())
                {
                    return Err(bad(p, "is set by carapace and cannot be configured"));
                }
                out.insert(name.clone(), parse_secret(value, &p, var, warnings)?);
            }
        }
        Some(v) => return Err(bad(path, format!("{} is not an object", kind(v)))),
    }
    Ok(out)
}

fn parse_provider(
    id: &str,
    v: &Value,
    path: &str,
    builtin: Option<ProviderConfig>,
    var: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<ProviderConfig, ModelsError> {
    let Some(o) = v.as_object() else {
        return Err(bad(path, format!("{} is not an object", kind(v))));
    };
    check_keys(
        o,
        path,
        &[
            "baseUrl",
            "apiKey",
            "api",
            "headers",
            "authHeader",
            "auth",
            "models",
            "contextWindow",
            "contextTokens",
            "maxTokens",
        ],
        &["injectNumCtxForOpenAICompat", "params", "localService"],
        warnings,
    )?;
    match o.get("auth") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "api-key" => {}
        Some(Value::String(s)) if ["aws-sdk", "oauth", "token"].contains(&s.as_str()) => {
            return Err(bad(
                format!("{path}.auth"),
                format!(
                    "{s:?} authentication is not supported by carapace; use \"api-key\" with apiKey"
                ),
            ));
        }
        Some(v) => {
            return Err(bad(
                format!("{path}.auth"),
                format!("{v} is not one of api-key"),
            ));
        }
    }
    let base_url = match (opt_str(o, "baseUrl", path)?, &builtin) {
        (Some(u), _) => u,
        (None, Some(b)) => b.base_url.clone(),
        (None, None) => return Err(bad(format!("{path}.baseUrl"), "is required")),
    };
    if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
        return Err(bad(
            format!("{path}.baseUrl"),
            format!("{base_url:?} is not an http(s) URL"),
        ));
    }
    let base_url = base_url.trim_end_matches('/').to_string();
    let api = match o.get("api") {
        None | Some(Value::Null) => builtin
            .as_ref()
            .map_or(ModelApi::OpenAiCompletions, |b| b.api),
        Some(v) => ModelApi::parse(v, &format!("{path}.api"))?,
    };
    let api_key = match o.get("apiKey") {
        None | Some(Value::Null) => builtin.as_ref().and_then(|b| b.api_key.clone()),
        Some(v) => Some(parse_secret(v, &format!("{path}.apiKey"), var, warnings)?),
    };
    let headers = parse_headers(o.get("headers"), &format!("{path}.headers"), var, warnings)?;
    let auth_header = opt_bool(o, "authHeader", path)?.unwrap_or(false);
    let defaults = LimitDefaults {
        context_window: opt_positive(o, "contextWindow", path)?,
        context_tokens: opt_positive(o, "contextTokens", path)?,
        max_tokens: opt_positive(o, "maxTokens", path)?,
    };
    let mut models = Vec::new();
    match o.get("models") {
        None | Some(Value::Null) if builtin.is_some() => {}
        None | Some(Value::Null) => {
            return Err(bad(
                format!("{path}.models"),
                "is required: list the models this provider serves ([{id, contextWindow, maxTokens}])",
            ));
        }
        Some(Value::Array(a)) => {
            for (i, m) in a.iter().enumerate() {
                let mp = format!("{path}.models[{i}]");
                let def = parse_model(m, &mp, &defaults, var, warnings)?;
                if models.iter().any(|x: &ModelDefinition| x.id == def.id) {
                    return Err(bad(
                        format!("{mp}.id"),
                        format!("model {:?} is listed twice", def.id),
                    ));
                }
                models.push(def);
            }
        }
        Some(v) => {
            return Err(bad(
                format!("{path}.models"),
                format!("{} is not an array", kind(v)),
            ));
        }
    }
    Ok(ProviderConfig {
        id: id.to_string(),
        base_url,
        api,
        api_key,
        headers,
        auth_header,
        models,
        builtin: builtin.is_some(),
        defaults,
    })
}

fn parse_model(
    v: &Value,
    path: &str,
    defaults: &LimitDefaults,
    var: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<ModelDefinition, ModelsError> {
    let Some(o) = v.as_object() else {
        return Err(bad(path, format!("{} is not an object", kind(v))));
    };
    check_keys(
        o,
        path,
        &[
            "id",
            "name",
            "api",
            "input",
            "contextWindow",
            "contextTokens",
            "maxTokens",
            "headers",
            "compat",
            "reasoning",
            "cost",
        ],
        &[],
        warnings,
    )?;
    let id = opt_str(o, "id", path)?.ok_or_else(|| bad(format!("{path}.id"), "is required"))?;
    let api = match o.get("api") {
        None | Some(Value::Null) => None,
        Some(v) => Some(ModelApi::parse(v, &format!("{path}.api"))?),
    };
    let mut accepts_images = false;
    match o.get("input") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) => {
            for (i, x) in a.iter().enumerate() {
                match x.as_str() {
                    Some("text") => {}
                    Some("image") => accepts_images = true,
                    _ => {
                        return Err(bad(
                            format!("{path}.input[{i}]"),
                            format!("{x} is not one of text, image"),
                        ));
                    }
                }
            }
        }
        Some(v) => {
            return Err(bad(
                format!("{path}.input"),
                format!("{} is not an array of \"text\" / \"image\"", kind(v)),
            ));
        }
    }
    let context_window = opt_positive(o, "contextWindow", path)?
        .or(defaults.context_window)
        .unwrap_or(DEFAULT_CONTEXT_WINDOW);
    let context_tokens = opt_positive(o, "contextTokens", path)?.or(defaults.context_tokens);
    let max_tokens = opt_positive(o, "maxTokens", path)?
        .or(defaults.max_tokens)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    if max_tokens >= context_window {
        return Err(bad(
            format!("{path}.maxTokens"),
            format!(
                "{max_tokens} leaves no room for input in a context window of {context_window}"
            ),
        ));
    }
    if let Some(c) = o.get("cost")
        && !c.is_object()
    {
        return Err(bad(
            format!("{path}.cost"),
            format!("{} is not an object", kind(c)),
        ));
    }
    let compat = match o.get("compat") {
        None | Some(Value::Null) => ModelCompat::default(),
        Some(Value::Object(c)) => parse_compat(c, &format!("{path}.compat"), warnings)?,
        Some(v) => {
            return Err(bad(
                format!("{path}.compat"),
                format!("{} is not an object", kind(v)),
            ));
        }
    };
    Ok(ModelDefinition {
        name: opt_str(o, "name", path)?,
        api,
        accepts_images,
        context_window,
        context_tokens,
        max_tokens,
        headers: parse_headers(o.get("headers"), &format!("{path}.headers"), var, warnings)?,
        reasoning: opt_bool(o, "reasoning", path)?.unwrap_or(false),
        compat,
        listed: true,
        id,
    })
}

fn parse_compat(
    c: &Map<String, Value>,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<ModelCompat, ModelsError> {
    check_keys(
        c,
        path,
        &[
            "maxTokensField",
            "supportsUsageInStreaming",
            "supportsTools",
            "requiresToolResultName",
        ],
        &[
            "supportsStore",
            "supportsDeveloperRole",
            "supportsReasoningEffort",
            "supportsStrictMode",
            "thinkingFormat",
            "requiresAssistantAfterToolResult",
            "requiresThinkingAsText",
            "toolSchemaProfile",
            "nativeWebSearchTool",
            "toolCallArgumentsEncoding",
            "requiresMistralToolIds",
            "requiresOpenAiAnthropicToolPayload",
            "supportedReasoningEfforts",
            "reasoningEffortMap",
        ],
        warnings,
    )?;
    let mut out = ModelCompat::default();
    match c.get("maxTokensField") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "max_tokens" => {}
        Some(Value::String(s)) if s == "max_completion_tokens" => {
            out.max_tokens_field = MaxTokensField::MaxCompletionTokens;
        }
        Some(v) => {
            return Err(bad(
                format!("{path}.maxTokensField"),
                format!("{v} is not one of max_tokens, max_completion_tokens"),
            ));
        }
    }
    if let Some(b) = opt_bool(c, "supportsUsageInStreaming", path)? {
        out.supports_usage_in_streaming = b;
    }
    if let Some(b) = opt_bool(c, "supportsTools", path)? {
        out.supports_tools = b;
    }
    if let Some(b) = opt_bool(c, "requiresToolResultName", path)? {
        out.requires_tool_result_name = b;
    }
    Ok(out)
}

struct RefCtx<'a> {
    providers: &'a BTreeMap<String, ProviderConfig>,
    aliases: &'a BTreeMap<String, ModelRef>,
}

impl RefCtx<'_> {
    fn resolve(&self, s: &str) -> Result<ModelRef, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("is empty; write \"provider/model\"".into());
        }
        if let Some(r) = self.aliases.get(s) {
            return Ok(r.clone());
        }
        if let Some((p, m)) = s.split_once('/')
            && let Some(provider) = self.providers.get(p)
        {
            if m.is_empty() {
                return Err(format!("{s:?} names no model after the provider"));
            }
            if provider.model(m).is_none() {
                return Err(format!(
                    "provider {p:?} does not list model {m:?}; listed: {}",
                    list_or_none(provider.models.iter().map(|x| x.id.as_str()))
                ));
            }
            return Ok(ModelRef {
                provider: p.to_string(),
                model: m.to_string(),
            });
        }
        // A bare id: exactly one configured provider must list it.
        let hits: Vec<&ProviderConfig> = self
            .providers
            .values()
            .filter(|p| p.models.iter().any(|m| m.id == s))
            .collect();
        match hits.as_slice() {
            [p] => Ok(ModelRef {
                provider: p.id.clone(),
                model: s.to_string(),
            }),
            [] => Err(format!(
                "{s:?} names no configured provider or model; providers: {}",
                list_or_none(self.providers.keys().map(String::as_str))
            )),
            many => Err(format!(
                "{s:?} is listed by several providers ({}); write \"provider/model\"",
                many.iter()
                    .map(|p| p.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    fn resolve_at(&self, v: &Value, path: &str) -> Result<ModelRef, ModelsError> {
        let s = v.as_str().ok_or_else(|| {
            bad(
                path,
                format!("{} is not a \"provider/model\" string", kind(v)),
            )
        })?;
        self.resolve(s).map_err(|m| bad(path, m))
    }
}

fn list_or_none<'a>(it: impl Iterator<Item = &'a str>) -> String {
    let v: Vec<&str> = it.collect();
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

/// `agents.defaults.models`: `{ "<provider/model>": {alias?, params?, …} }`.
fn parse_aliases(
    defaults: &Map<String, Value>,
    providers: &BTreeMap<String, ProviderConfig>,
    aliases: &mut BTreeMap<String, ModelRef>,
    warnings: &mut Vec<String>,
) -> Result<(), ModelsError> {
    let Some(v) = defaults.get("models") else {
        return Ok(());
    };
    let Some(map) = v.as_object() else {
        return Err(bad(
            "agents.defaults.models",
            format!("{} is not an object", kind(v)),
        ));
    };
    let no_aliases = BTreeMap::new();
    let ctx = RefCtx {
        providers,
        aliases: &no_aliases,
    };
    for (key, entry) in map {
        let path = format!("agents.defaults.models.{key}");
        let Some(e) = entry.as_object() else {
            return Err(bad(path, format!("{} is not an object", kind(entry))));
        };
        check_keys(
            e,
            &path,
            &["alias"],
            &["params", "agentRuntime", "codeMode"],
            warnings,
        )?;
        let Some(alias) = e.get("alias") else {
            continue;
        };
        let alias = alias
            .as_str()
            .filter(|a| !a.is_empty() && !a.contains('/'))
            .ok_or_else(|| {
                bad(
                    format!("{path}.alias"),
                    "is not a non-empty name without '/'",
                )
            })?;
        if key.ends_with("/*") {
            return Err(bad(
                format!("{path}.alias"),
                "a provider wildcard cannot have an alias",
            ));
        }
        let target = ctx.resolve(key).map_err(|m| bad(&path, m))?;
        if aliases.insert(alias.to_string(), target).is_some() {
            return Err(bad(
                format!("{path}.alias"),
                format!("alias {alias:?} is defined twice"),
            ));
        }
    }
    Ok(())
}

fn parse_layer(
    o: &Map<String, Value>,
    path: &str,
    ctx: &RefCtx<'_>,
    warnings: &mut Vec<String>,
) -> Result<AgentRunLayer, ModelsError> {
    let model = match o.get("model") {
        None | Some(Value::Null) => None,
        Some(v @ Value::String(_)) => Some(ModelSelection {
            primary: ctx.resolve_at(v, &format!("{path}.model"))?,
            fallbacks: Vec::new(),
        }),
        Some(Value::Object(m)) => {
            let mp = format!("{path}.model");
            check_keys(m, &mp, &["primary", "fallbacks"], &[], warnings)?;
            let primary = m
                .get("primary")
                .ok_or_else(|| bad(format!("{mp}.primary"), "is required"))?;
            let primary = ctx.resolve_at(primary, &format!("{mp}.primary"))?;
            let mut fallbacks = Vec::new();
            match m.get("fallbacks") {
                None | Some(Value::Null) => {}
                Some(Value::Array(a)) => {
                    for (i, f) in a.iter().enumerate() {
                        fallbacks.push(ctx.resolve_at(f, &format!("{mp}.fallbacks[{i}]"))?);
                    }
                }
                Some(v) => {
                    return Err(bad(
                        format!("{mp}.fallbacks"),
                        format!("{} is not an array of \"provider/model\"", kind(v)),
                    ));
                }
            }
            Some(ModelSelection { primary, fallbacks })
        }
        Some(v) => {
            return Err(bad(
                format!("{path}.model"),
                format!(
                    "{} is not \"provider/model\" or {{primary, fallbacks}}",
                    kind(v)
                ),
            ));
        }
    };
    let allow = match o.get("modelPolicy") {
        None | Some(Value::Null) => None,
        Some(Value::Object(p)) => {
            let pp = format!("{path}.modelPolicy");
            check_keys(p, &pp, &["allow"], &[], warnings)?;
            match p.get("allow") {
                None | Some(Value::Null) => None,
                Some(Value::Array(a)) => {
                    let mut out = Vec::new();
                    for (i, x) in a.iter().enumerate() {
                        match x.as_str() {
                            Some(s) if !s.is_empty() => out.push(s.to_string()),
                            _ => {
                                return Err(bad(
                                    format!("{pp}.allow[{i}]"),
                                    format!("{x} is not a model pattern string"),
                                ));
                            }
                        }
                    }
                    Some(out)
                }
                Some(v) => {
                    return Err(bad(
                        format!("{pp}.allow"),
                        format!("{} is not an array", kind(v)),
                    ));
                }
            }
        }
        Some(v) => {
            return Err(bad(
                format!("{path}.modelPolicy"),
                format!("{} is not an object", kind(v)),
            ));
        }
    };
    let context_injection = match o.get("contextInjection") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "always" => Some(ContextInjection::Always),
        Some(Value::String(s)) if s == "continuation-skip" => {
            warnings.push(format!(
                "{path}.contextInjection: \"continuation-skip\" is treated as \"always\" by carapace"
            ));
            Some(ContextInjection::Always)
        }
        Some(Value::String(s)) if s == "never" => Some(ContextInjection::Never),
        Some(v) => {
            return Err(bad(
                format!("{path}.contextInjection"),
                format!("{v} is not one of always, continuation-skip, never"),
            ));
        }
    };
    let timeout_seconds = match o.get("timeoutSeconds") {
        None | Some(Value::Null) => None,
        Some(v) => Some(u64::from(positive_u32(
            v,
            &format!("{path}.timeoutSeconds"),
        )?)),
    };
    Ok(AgentRunLayer {
        model,
        allow,
        timeout_seconds,
        context_injection,
        bootstrap_max_chars: opt_positive(o, "bootstrapMaxChars", path)?,
        bootstrap_total_max_chars: opt_positive(o, "bootstrapTotalMaxChars", path)?,
    })
}

impl ModelsSettings {
    /// What `config show --effective` prints: providers (base URL, API, key *reference*,
    /// models), aliases and each layer's model chain. Keys and header values are shown as
    /// their `${VAR}` reference or `***`, never their value.
    pub fn to_redacted_json(&self) -> Value {
        let chain = |m: &Option<ModelSelection>| match m {
            None => Value::Null,
            Some(s) => serde_json::json!({
                "primary": s.primary.to_string(),
                "fallbacks": s.fallbacks.iter().map(ModelRef::to_string).collect::<Vec<_>>(),
            }),
        };
        let providers: Map<String, Value> = self
            .providers
            .iter()
            .map(|(id, p)| {
                let headers: Map<String, Value> = p
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::String(v.shown())))
                    .collect();
                (
                    id.clone(),
                    serde_json::json!({
                        "baseUrl": p.base_url,
                        "api": p.api.as_str(),
                        "apiKey": p.api_key.as_ref().map(Secret::shown),
                        "headers": headers,
                        "builtin": p.builtin,
                        "models": p.models.iter().map(|m| serde_json::json!({
                            "id": m.id, "contextWindow": m.context_window,
                            "maxTokens": m.max_tokens, "image": m.accepts_images,
                        })).collect::<Vec<_>>(),
                    }),
                )
            })
            .collect();
        let agents: Map<String, Value> = self
            .agents
            .iter()
            .map(|(id, l)| (id.clone(), serde_json::json!({"model": chain(&l.model)})))
            .collect();
        serde_json::json!({
            "providers": providers,
            "proxy": self.proxy,
            "aliases": self.aliases.iter().map(|(k, v)| (k.clone(), Value::String(v.to_string()))).collect::<Map<String, Value>>(),
            "defaults": {"model": chain(&self.defaults.model), "maxConcurrent": self.max_concurrent},
            "agents": agents,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn env(n: &str) -> Option<String> {
        match n {
            "LOCAL_KEY" => Some("sk-local-secret".into()),
            "ANTHROPIC_API_KEY" => Some("sk-ant-secret".into()),
            _ => None,
        }
    }

    fn parse(v: Value) -> Result<ModelsSettings, ModelsError> {
        ModelsSettings::from_config_value(&v, &env)
    }

    fn err(v: Value) -> ModelsError {
        parse(v).unwrap_err()
    }

    fn local() -> Value {
        json!({
            "baseUrl": "http://127.0.0.1:8080/v1/",
            "apiKey": "${LOCAL_KEY}",
            "api": "openai-completions",
            "models": [
                {"id": "qwen3", "name": "Qwen 3", "input": ["text", "image"],
                 "contextWindow": 32768, "contextTokens": 16000, "maxTokens": 4096,
                 "cost": {"input": 0, "output": 0}},
                {"id": "llama/tiny", "contextWindow": 8192, "maxTokens": 1024},
            ]
        })
    }

    #[test]
    fn openclaw_shapes_parse() {
        let s = parse(json!({
            "models": {"mode": "merge", "providers": {"local": local()}},
            "agents": {
                "defaults": {
                    "model": {"primary": "local/qwen3", "fallbacks": ["local/llama/tiny", "anthropic/claude-sonnet-4-5"]},
                    "models": {"local/qwen3": {"alias": "q"}},
                    "timeoutSeconds": 120,
                    "maxConcurrent": 2,
                    "workspace": "/ignored/here",
                },
                "entries": {"research": {"model": "q", "contextInjection": "never"}},
                "list": [{"id": "ops", "model": "llama/tiny", "bootstrapMaxChars": 100}],
            }
        }))
        .unwrap();
        let p = &s.providers["local"];
        assert_eq!(p.base_url, "http://127.0.0.1:8080/v1");
        assert_eq!(
            p.api_key.as_ref().unwrap().expose(),
            Some("sk-local-secret")
        );
        assert!(
            !format!("{p:?}").contains("sk-local-secret"),
            "keys never print"
        );
        let q = p.model("qwen3").unwrap();
        assert!(q.accepts_images);
        assert_eq!(q.input_budget(), 16000);
        assert_eq!(s.max_concurrent, 2);
        let d = s.run_settings("main");
        let chain = d.model.unwrap().chain();
        assert_eq!(
            chain.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "local/qwen3",
                "local/llama/tiny",
                "anthropic/claude-sonnet-4-5"
            ]
        );
        assert_eq!(d.timeout_seconds, 120);
        let r = s.run_settings("research");
        assert_eq!(r.model.unwrap().primary.to_string(), "local/qwen3");
        assert_eq!(r.context_injection, ContextInjection::Never);
        assert_eq!(r.timeout_seconds, 120, "inherits the defaults key by key");
        let o = s.run_settings("ops");
        assert_eq!(o.model.unwrap().primary.to_string(), "local/llama/tiny");
        assert_eq!(o.bootstrap_max_chars, 100);
        // The built-in anthropic provider: any model id, key from the environment.
        let (ap, am) = s
            .lookup(&ModelRef {
                provider: "anthropic".into(),
                model: "claude-sonnet-4-5".into(),
            })
            .unwrap();
        assert_eq!(ap.api, ModelApi::AnthropicMessages);
        assert!(!am.listed);
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }

    #[test]
    fn the_spec_example_and_an_empty_config_parse() {
        let s = parse(json!({})).unwrap();
        assert!(s.run_settings("main").model.is_none());
        assert_eq!(s.max_concurrent, DEFAULT_MAX_CONCURRENT);
        parse(json!({
            "models": {"providers": {"openai": {"baseUrl": "https://api.openai.com/v1", "apiKey": "${OPENAI_API_KEY}",
                "api": "openai-completions", "models": [{"id": "gpt-4.1", "contextWindow": 1000000, "maxTokens": 32768}]}}},
            "agents": {"defaults": {"model": {"primary": "openai/gpt-4.1", "fallbacks": []}}}
        }))
        .unwrap();
    }

    #[test]
    fn errors_name_the_path_and_the_allowed_values() {
        let e = err(
            json!({"models": {"providers": {"local": {"baseUrl": "http://x/v1", "models": [], "api": "ollama"}}}}),
        );
        assert_eq!(e.path, "models.providers.local.api");
        assert!(e.message.contains("openai-completions"), "{e}");
        let e = err(
            json!({"models": {"providers": {"local": {"baseUrl": "http://x/v1", "models": [], "api": "grpc"}}}}),
        );
        assert!(e.message.contains("\"grpc\" is not one of"), "{e}");
        let e = err(
            json!({"models": {"providers": {"local": {"baseUrl": "http://x/v1", "models": [], "baseURL": "x"}}}}),
        );
        assert_eq!(e.path, "models.providers.local.baseURL");
        assert!(e.message.contains("allowed keys"), "{e}");
        let e = err(json!({"models": {"providers": {"local": {"models": []}}}}));
        assert_eq!(e.path, "models.providers.local.baseUrl");
        let e = err(json!({"models": {"providers": {"local": {"baseUrl": "http://x/v1"}}}}));
        assert_eq!(e.path, "models.providers.local.models");
        let e = err(
            json!({"models": {"providers": {"local": {"baseUrl": "http://x/v1", "models": [{"id": "a", "input": ["audio"]}]}}}}),
        );
        assert_eq!(e.path, "models.providers.local.models[0].input[0]");
        let e = err(
            json!({"models": {"providers": {"local": {"baseUrl": "http://x/v1", "models": [{"id": "a", "contextWindow": 0}]}}}}),
        );
        assert_eq!(e.path, "models.providers.local.models[0].contextWindow");
        let e = err(
            json!({"models": {"providers": {"local": {"baseUrl": "http://x/v1", "models": [{"id": "a", "contextWindow": 1000, "maxTokens": 1000}]}}}}),
        );
        assert_eq!(e.path, "models.providers.local.models[0].maxTokens");
        let e =
            err(json!({"models": {"providers": {"local": {"baseUrl": "ftp://x", "models": []}}}}));
        assert_eq!(e.path, "models.providers.local.baseUrl");
        let e =
            err(json!({"models": {"providers": {"Local": {"baseUrl": "http://x", "models": []}}}}));
        assert_eq!(e.path, "models.providers.Local");
        let e = err(json!({"models": {"mode": "append"}}));
        assert_eq!(e.path, "models.mode");
        let e = err(
            json!({"models": {"providers": {"local": local()}}, "agents": {"defaults": {"model": "local/nope"}}}),
        );
        assert_eq!(e.path, "agents.defaults.model");
        assert!(e.message.contains("qwen3"), "lists what exists: {e}");
        let e = err(
            json!({"models": {"providers": {"local": local()}}, "agents": {"defaults": {"model": {"primary": "local/qwen3", "fallbacks": ["nope/x"]}}}}),
        );
        assert_eq!(e.path, "agents.defaults.model.fallbacks[0]");
        let e = err(
            json!({"agents": {"defaults": {"model": {"primary": "anthropic/x", "fallback": []}}}}),
        );
        assert_eq!(e.path, "agents.defaults.model.fallback");
        let e = err(json!({"agents": {"defaults": {"model": 3}}}));
        assert_eq!(e.path, "agents.defaults.model");
        let e = err(json!({"agents": {"entries": {"a": {"timeoutSeconds": -1}}}}));
        assert_eq!(e.path, "agents.entries.a.timeoutSeconds");
        let e = err(json!({"agents": {"list": [{"id": "a", "contextInjection": "sometimes"}]}}));
        assert_eq!(e.path, "agents.list[0].contextInjection");
    }

    #[test]
    fn restricting_keys_carapace_cannot_honour_fail_closed() {
        let e = err(
            json!({"models": {"providers": {"local": {"baseUrl": "http://x/v1", "models": [], "auth": "oauth"}}}}),
        );
        assert_eq!(e.path, "models.providers.local.auth");
        let e = err(
            json!({"models": {"providers": {"local": {"baseUrl": "http://x/v1", "models": [],
            "apiKey": {"source": "file", "provider": "default", "id": "/providers/x"}}}}}),
        );
        assert_eq!(e.path, "models.providers.local.apiKey.source");
        let e = err(
            json!({"models": {"providers": {"local": {"baseUrl": "http://x/v1", "models": [{"id": "a", "compat": {"supportsTool": false}}]}}}}),
        );
        assert_eq!(
            e.path,
            "models.providers.local.models[0].compat.supportsTool"
        );
        let e = err(json!({"models": {"proxy": "socks5://x"}}));
        assert_eq!(e.path, "models.proxy");
    }

    #[test]
    fn additive_openclaw_keys_are_warnings() {
        let mut p = local();
        p["injectNumCtxForOpenAICompat"] = json!(true);
        p["models"][0]["compat"] = json!({"supportsStore": false, "supportsTools": false});
        let s = parse(json!({"models": {"providers": {"local": p}, "bedrockDiscovery": {"enabled": false}},
            "agents": {"defaults": {"models": {"local/qwen3": {"alias": "q", "params": {"temperature": 0.2}}}}}}))
        .unwrap();
        assert_eq!(s.warnings.len(), 4, "{:?}", s.warnings);
        assert!(
            !s.providers["local"]
                .model("qwen3")
                .unwrap()
                .compat
                .supports_tools
        );
    }

    #[test]
    fn secrets_resolve_from_the_environment_and_unset_ones_warn() {
        let s = parse(
            json!({"models": {"providers": {"local": {"baseUrl": "http://x/v1", "models": [],
            "apiKey": {"source": "env", "provider": "default", "id": "LOCAL_KEY"},
            "headers": {"X-Org": "${MISSING_ORG}"}}}}}),
        )
        .unwrap();
        let p = &s.providers["local"];
        assert_eq!(
            p.api_key.as_ref().unwrap().expose(),
            Some("sk-local-secret")
        );
        assert_eq!(p.headers["X-Org"].expose(), None);
        assert_eq!(s.warnings.len(), 1);
        assert!(s.warnings[0].contains("${MISSING_ORG}"));
        let e = err(
            json!({"models": {"providers": {"local": {"baseUrl": "http://x/v1", "models": [], "headers": {"Host": "x"}}}}}),
        );
        assert_eq!(e.path, "models.providers.local.headers.Host");
    }

    #[test]
    fn replace_mode_drops_the_builtins_and_bare_ids_resolve_when_unique() {
        let s = parse(
            json!({"models": {"mode": "replace", "providers": {"local": local()}},
            "agents": {"defaults": {"model": "qwen3"}}}),
        )
        .unwrap();
        assert_eq!(s.providers.keys().collect::<Vec<_>>(), ["local"]);
        assert_eq!(
            s.run_settings("x").model.unwrap().primary.to_string(),
            "local/qwen3"
        );
        let e = err(
            json!({"models": {"mode": "replace"}, "agents": {"defaults": {"model": "anthropic/claude"}}}),
        );
        assert!(e.message.contains("no configured provider"), "{e}");
        let mut other = local();
        other["baseUrl"] = json!("http://127.0.0.2/v1");
        let e = err(
            json!({"models": {"providers": {"a": local(), "b": other}}, "agents": {"defaults": {"model": "qwen3"}}}),
        );
        assert!(e.message.contains("several providers"), "{e}");
    }

    #[test]
    fn model_policy_allow_restricts_overrides() {
        let s = parse(json!({"models": {"providers": {"local": local()}},
            "agents": {"defaults": {"models": {"local/qwen3": {"alias": "q"}}, "modelPolicy": {"allow": ["q", "anthropic/*"]}},
                       "entries": {"free": {"modelPolicy": {"allow": []}}}}}))
        .unwrap();
        let r = |p: &str, m: &str| ModelRef {
            provider: p.into(),
            model: m.into(),
        };
        assert!(s.override_allowed("main", &r("local", "qwen3")));
        assert!(s.override_allowed("main", &r("anthropic", "claude-x")));
        assert!(!s.override_allowed("main", &r("local", "llama/tiny")));
        assert!(s.override_allowed("free", &r("local", "llama/tiny")));
    }
}
