//! The one registry of tools: what a call is ([`ToolCall`]), what a tool is ([`ToolSpec`]:
//! name, description, argument schema, and the policy facts — section, profiles, effects),
//! and the one dispatch every surface goes through ([`dispatch`]).
//!
//! [`dispatch`] is where the tool policy is applied, for every surface alike: the CLI, HTTP
//! `/tools/invoke`, MCP and the agent runtime. [`list`] answers "which tools does this session
//! have here" with the very same decision, so a tool that is not listed is exactly a tool whose
//! call is refused (`TOOL_DENIED`, naming the setting).

use std::sync::OnceLock;

use carapace_policy::config::{ExecSecurity, ToolProfile};
use carapace_policy::tools_policy::{
    Catalog, Effect, EffectiveTools, Section, Surface, ToolMeta, check_command,
};
use carapace_policy::{ErrorCode, ResolveInput};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{ToolContext, ToolError};

/// One tool call, whatever surface it came through.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCall {
    /// Tool name (`read`, `exec`, `message`, …).
    pub tool: String,
    /// Action, for tools that have several (`message`, `browser`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The tool's own arguments (a JSON object; `null` = none).
    #[serde(default)]
    pub args: Value,
    /// Session key (`agent:main:telegram:dm:42`; `main` is the default agent's main session).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    /// Explicit agent id (wins over the session key's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Explicit channel id of the session (wins over the session key's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

impl ToolCall {
    /// A call with only a tool name and arguments.
    pub fn new(tool: impl Into<String>, args: Value) -> ToolCall {
        ToolCall {
            tool: tool.into(),
            args,
            ..ToolCall::default()
        }
    }

    fn input(&self) -> ResolveInput<'_> {
        ResolveInput {
            agent: self.agent_id.as_deref(),
            channel: self.channel.as_deref(),
            session_key: self.session_key.as_deref(),
        }
    }
}

/// A tool as the outside world sees it, and as the policy sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec {
    /// Name.
    pub name: String,
    /// One paragraph for the model.
    pub description: String,
    /// JSON schema of `args` (an object schema; unknown arguments are refused).
    pub input_schema: Value,
    /// Section, profiles and effects (which group it is in, what it can do).
    #[serde(default = "ToolSpec::unknown_meta")]
    pub meta: ToolMeta,
    /// Argument names accepted besides the schema's (OpenClaw's spellings: `file_path`, `cmd`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

impl ToolSpec {
    /// A spec with the facts of an unknown tool (see [`ToolSpec::with_meta`]). The schema
    /// gets `additionalProperties: false` when it says nothing about extra arguments.
    pub fn new(name: &str, description: impl Into<String>, mut input_schema: Value) -> ToolSpec {
        if let Some(o) = input_schema.as_object_mut() {
            o.entry("additionalProperties")
                .or_insert(Value::Bool(false));
        }
        ToolSpec {
            name: name.to_string(),
            description: description.into(),
            input_schema,
            meta: ToolSpec::unknown_meta(),
            aliases: Vec::new(),
        }
    }

    /// The facts of a tool the registry does not know: no section, every effect (so its calls
    /// are audited).
    pub fn unknown_meta() -> ToolMeta {
        ToolMeta {
            section: Section::Other,
            profiles: Vec::new(),
            effects: vec![
                Effect::ReadsWorkspace,
                Effect::WritesWorkspace,
                Effect::RunsProcesses,
                Effect::SendsOutbound,
                Effect::Network,
                Effect::WritesMedia,
            ],
            openclaw_group: false,
        }
    }

    /// Sets the section, the profiles that include it and its effects.
    pub fn with_meta(
        mut self,
        section: Section,
        profiles: &[ToolProfile],
        effects: &[Effect],
    ) -> ToolSpec {
        self.meta = ToolMeta {
            section,
            profiles: profiles.to_vec(),
            effects: effects.to_vec(),
            openclaw_group: !matches!(section, Section::Fs | Section::Runtime),
        };
        self
    }

    /// Argument names accepted besides the schema's.
    pub fn with_aliases(mut self, aliases: &[&str]) -> ToolSpec {
        self.aliases = aliases.iter().map(|s| s.to_string()).collect();
        self
    }

    /// Whether the schema names `arg` (or it is an alias).
    pub fn accepts(&self, arg: &str) -> bool {
        self.aliases.iter().any(|a| a == arg)
            || self
                .input_schema
                .get("properties")
                .and_then(Value::as_object)
                .is_some_and(|p| p.contains_key(arg))
    }

    /// The argument names the schema lists.
    pub fn argument_names(&self) -> Vec<String> {
        self.input_schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// Every tool, in a stable order (built once).
pub fn specs() -> &'static [ToolSpec] {
    static SPECS: OnceLock<Vec<ToolSpec>> = OnceLock::new();
    SPECS.get_or_init(|| {
        vec![
            crate::read::spec(),
            crate::write::spec(),
            crate::edit::spec(),
            crate::apply_patch::spec(),
            crate::ls::spec(),
            crate::exec::spec(),
            crate::browser::spec(),
            crate::message::spec(),
            crate::media_save::spec(),
        ]
    })
}

/// One tool's spec.
pub fn spec(name: &str) -> Option<&'static ToolSpec> {
    specs().iter().find(|s| s.name == name)
}

/// The policy's view of the tools.
pub fn catalog() -> Catalog {
    Catalog::new(specs().iter().map(|s| (s.name.clone(), s.meta.clone())))
}

/// Where a call comes from, besides the call itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The surface.
    pub surface: Surface,
    /// A channel a client named as context only (OpenClaw's `x-openclaw-message-channel`):
    /// used as the session's channel when it is a configured one, ignored otherwise — it never
    /// breaks a call.
    pub channel_hint: Option<String>,
}

impl Origin {
    /// A call from `surface` with no hints.
    pub fn new(surface: Surface) -> Origin {
        Origin {
            surface,
            channel_hint: None,
        }
    }
}

/// The policy of the session `input` names, on `surface`.
pub fn policy(
    ctx: &ToolContext,
    surface: Surface,
    input: &ResolveInput<'_>,
) -> Result<EffectiveTools, ToolError> {
    Ok(ctx.config.tool_policy(input, surface, &catalog())?)
}

/// The tools the session `input` names has on `surface` (MCP `tools/list`, the model's
/// tools): exactly the ones [`dispatch`] runs.
pub fn list(
    ctx: &ToolContext,
    surface: Surface,
    input: &ResolveInput<'_>,
) -> Result<Vec<ToolSpec>, ToolError> {
    let p = policy(ctx, surface, input)?;
    Ok(specs()
        .iter()
        .filter(|s| p.decision(&s.name).is_some_and(|d| d.allowed))
        .cloned()
        .collect())
}

/// Why the session `input` names cannot call `tool` on `surface` (`TOOL_DENIED` naming the
/// setting, or `NOT_FOUND` for a tool that does not exist); `None` when it can.
pub fn refusal(
    ctx: &ToolContext,
    surface: Surface,
    input: &ResolveInput<'_>,
    tool: &str,
) -> Option<ToolError> {
    if spec(tool).is_none() {
        return Some(unknown_tool(tool));
    }
    match policy(ctx, surface, input) {
        Ok(p) => p.refusal(tool).map(ToolError),
        Err(e) => Some(e),
    }
}

fn unknown_tool(tool: &str) -> ToolError {
    ToolError::new(ErrorCode::NotFound, format!("unknown tool {tool:?}"))
        .with_hint(format!(
            "carapace's tools: {}",
            specs()
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .with_detail("tool", tool)
}

/// The session's key as the policy reads it (`main` → the default agent's main session) and
/// its channel (a hint that names a configured channel fills an empty `channel`).
fn canonical(ctx: &ToolContext, origin: &Origin, mut call: ToolCall) -> ToolCall {
    call.session_key = call
        .session_key
        .as_deref()
        .map(|k| ctx.config.expand_session_key(k))
        .filter(|k| !k.is_empty());
    if call.channel.is_none()
        && let Some(h) = &origin.channel_hint
        && ctx.config.channel_ids().iter().any(|c| c == h)
    {
        call.channel = Some(h.clone());
    }
    call
}

/// The arguments as the tool reads them: an object; `action` merged from the call when the
/// tool has one (and the args lack it), as OpenClaw does; every key one the tool knows.
fn checked_args(spec: &ToolSpec, call: &mut ToolCall) -> Result<(), ToolError> {
    let mut args = match std::mem::take(&mut call.args) {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        other => {
            return Err(ToolError::bad_request(format!(
                "{}: arguments must be a JSON object, not {}",
                spec.name,
                match other {
                    Value::Array(_) => "an array",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    _ => "a boolean",
                }
            ))
            .with_detail("tool", spec.name.clone()));
        }
    };
    let has_action = spec.accepts("action");
    match (&call.action, args.get("action")) {
        (Some(a), None) if has_action => {
            args.insert("action".into(), Value::String(a.clone()));
        }
        (None, Some(Value::String(a))) => call.action = Some(a.clone()),
        _ => {}
    }
    if let Some(k) = args.keys().find(|k| !spec.accepts(k)) {
        return Err(
            ToolError::bad_request(format!("{}: unknown argument {k:?}", spec.name))
                .with_hint(format!(
                    "{} takes: {}",
                    spec.name,
                    spec.argument_names().join(", ")
                ))
                .with_detail("tool", spec.name.clone())
                .with_detail("argument", k.clone()),
        );
    }
    call.args = Value::Object(args);
    Ok(())
}

/// `exec` under `tools.exec.security: "allowlist"`: the command line must pass the allowlist;
/// the call may not set its environment (a `PATH`, `LD_PRELOAD` or `GIT_SSH_COMMAND` would run
/// something else), and `HOME` is pointed where no `.profile` can be planted (the login shell
/// would source one before the allowlisted command).
fn exec_allowlist(p: &EffectiveTools, call: &mut ToolCall) -> Result<(), ToolError> {
    if p.exec.security != ExecSecurity::Allowlist {
        return Ok(());
    }
    let Some(args) = call.args.as_object_mut() else {
        return Ok(());
    };
    let command = args
        .get("command")
        .or_else(|| args.get("cmd"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let refuse = |message: String, executable: Option<String>| {
        let mut e = ToolError::new(ErrorCode::CommandNotAllowed, message)
            .with_hint(format!(
                "{} is \"allowlist\": add the executable to {} (absolute path or bare name), write the command plainly, or set the security to \"full\"",
                p.exec.security_from, p.exec.allowlist_from
            ))
            .with_detail("setting", p.exec.security_from.clone())
            .with_detail("allowlist", p.exec.allowlist.clone())
            .with_detail("command", command.chars().take(512).collect::<String>());
        if let Some(x) = executable {
            e = e.with_detail("executable", x);
        }
        e
    };
    if args
        .get("env")
        .is_some_and(|e| e.as_object().is_none_or(|m| !m.is_empty()))
    {
        return Err(refuse(
            "exec: the env argument is refused with tools.exec.security \"allowlist\" (an environment variable can make an allowlisted program run another)".into(),
            None,
        ));
    }
    check_command(&command, &p.exec.allowlist)
        .map_err(|r| refuse(format!("exec: {}", r.reason), r.executable))?;
    let mut env = Map::new();
    env.insert("HOME".into(), Value::String("/dev/null".into()));
    args.insert("env".into(), Value::Object(env));
    Ok(())
}

/// Runs one call from `origin`: the tool must exist, the session's policy on that surface
/// must allow it (`TOOL_DENIED` naming the setting otherwise), its arguments must be ones it
/// takes, and `exec` must pass the exec policy. This is the only way a tool runs.
pub async fn dispatch(
    ctx: &ToolContext,
    origin: &Origin,
    call: ToolCall,
) -> Result<Value, ToolError> {
    let call = prepare(ctx, origin, call)?;
    crate::run(ctx, &call).await
}

/// Every check of [`dispatch`], without running the tool: the call as the tool will read it.
fn prepare(ctx: &ToolContext, origin: &Origin, call: ToolCall) -> Result<ToolCall, ToolError> {
    let Some(spec) = spec(&call.tool) else {
        return Err(unknown_tool(&call.tool));
    };
    let mut call = canonical(ctx, origin, call);
    let p = policy(ctx, origin.surface, &call.input())?;
    if let Some(refusal) = p.refusal(&call.tool) {
        return Err(ToolError(refusal));
    }
    checked_args(spec, &mut call)?;
    if call.tool == "exec" {
        exec_allowlist(&p, &mut call)?;
    }
    Ok(call)
}

/// [`dispatch`] of a `message` call with a progress callback (the CLI's progress bar for
/// large uploads): the same checks, the same policy.
pub async fn dispatch_message(
    ctx: &ToolContext,
    origin: &Origin,
    call: ToolCall,
    progress: Option<carapace_channels::Progress>,
) -> Result<Value, ToolError> {
    if call.tool != "message" {
        return Err(ToolError::bad_request(format!(
            "dispatch_message runs the message tool, not {:?}",
            call.tool
        )));
    }
    let call = prepare(ctx, origin, call)?;
    crate::message::send(ctx, &call, progress).await
}

/// The tools of one surface for an embedder: the agent runtime's `ToolExecutor` is these three
/// calls on [`Surface::Agent`] (the model sees [`SurfaceTools::tools`]; a call it makes
/// anyway is [`SurfaceTools::unavailable`]'s refusal; the rest runs through [`dispatch`]).
#[derive(Debug, Clone)]
pub struct SurfaceTools {
    /// The tools' context.
    pub ctx: ToolContext,
    /// The surface whose policy applies.
    pub surface: Surface,
}

impl SurfaceTools {
    /// The tools of `surface` over `ctx`.
    pub fn new(ctx: ToolContext, surface: Surface) -> SurfaceTools {
        SurfaceTools { ctx, surface }
    }

    /// The tools the session has here (none when its policy cannot be resolved, e.g. an
    /// unconfigured channel: nothing is offered that could not run).
    pub fn tools(&self, session_key: &str, agent_id: &str, channel: Option<&str>) -> Vec<ToolSpec> {
        list(
            &self.ctx,
            self.surface,
            &ResolveInput {
                agent: Some(agent_id),
                channel,
                session_key: Some(session_key),
            },
        )
        .unwrap_or_default()
    }

    /// Why the session cannot call `tool` here (`TOOL_DENIED` naming the setting).
    pub fn unavailable(
        &self,
        session_key: &str,
        agent_id: &str,
        channel: Option<&str>,
        tool: &str,
    ) -> Option<ToolError> {
        refusal(
            &self.ctx,
            self.surface,
            &ResolveInput {
                agent: Some(agent_id),
                channel,
                session_key: Some(session_key),
            },
            tool,
        )
    }

    /// Runs one call on this surface.
    pub async fn invoke(&self, call: ToolCall) -> Result<Value, ToolError> {
        dispatch(&self.ctx, &Origin::new(self.surface), call).await
    }
}
