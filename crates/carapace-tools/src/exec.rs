//! `exec`: `command` (run by `sh -lc`), `workdir?`, `env?`, `timeoutSeconds?` → `exitCode`,
//! `stdout`, `stderr`, `timedOut`, `truncated` (+ `signal`, `durationMs`, `backend`,
//! `sandboxed`). A non-zero exit and a timeout are successful calls. Runs in the session's
//! sandbox, or on the host (said in `backend`/`sandboxed`) only when the policy leaves the
//! session unsandboxed.

use carapace_policy::config::ToolProfile;
use carapace_policy::tools_policy::{Effect, Section};
use carapace_sandbox::ExecParams;
use serde_json::{Value, json};

use crate::args::Args;
use crate::{ToolCall, ToolContext, ToolError, ToolSpec};

pub(crate) fn spec() -> ToolSpec {
    ToolSpec::new(
        "exec",
        "Run a shell command (sh -lc) in the session's sandbox, cwd /workspace. Returns exitCode, stdout, stderr, timedOut, truncated; a non-zero exit is a normal result.",
        json!({
            "type": "object",
            "properties": {
                "command": {"type": "string"},
                "workdir": {"type": "string", "description": "Working directory (default /workspace)"},
                "env": {"type": "object", "additionalProperties": {"type": "string"}},
                "timeoutSeconds": {"type": "integer", "minimum": 1, "description": "Kill the command (and its children) after this long; at most tools.exec.timeoutSeconds, which is also the default. The result says which applied."}
            },
            "required": ["command"]
        }),
    )
    .with_meta(Section::Runtime, &[ToolProfile::Coding], &[Effect::RunsProcesses, Effect::ReadsWorkspace, Effect::WritesWorkspace])
    .with_aliases(&["cmd", "cwd", "timeout"])
}

pub(crate) async fn run(ctx: &ToolContext, call: &ToolCall) -> Result<Value, ToolError> {
    let a = Args::new("exec", &call.args)?;
    let params = ExecParams {
        command: a.name(&["command", "cmd"])?.to_string(),
        workdir: a.opt_name(&["workdir", "cwd"])?.map(str::to_string),
        env: a.opt_string_map("env")?,
        timeout_seconds: a.opt_u64("timeoutSeconds")?.or(a.opt_u64("timeout")?),
    };
    for k in params.env.keys() {
        if k.is_empty() || k.contains('=') {
            return Err(ToolError::bad_request(format!(
                "exec: environment variable name {k:?} is not valid (empty, or contains '=')"
            ))
            .with_detail("argument", format!("env.{k}")));
        }
    }
    let session = ctx.session(call)?;
    let timeout = carapace_sandbox::effective_timeout_seconds(&ctx.config, params.timeout_seconds);
    let out = ctx.sandboxes.exec(&ctx.config, &session, params).await?;
    let mut value = serde_json::to_value(out).map_err(|e| {
        ToolError::new(
            carapace_policy::ErrorCode::Internal,
            format!("exec: cannot encode the result: {e}"),
        )
    })?;
    // The timeout that applied (a request above tools.exec.timeoutSeconds is capped at it).
    if let Some(obj) = value.as_object_mut() {
        obj.insert("timeoutSeconds".into(), timeout.into());
    }
    Ok(value)
}
