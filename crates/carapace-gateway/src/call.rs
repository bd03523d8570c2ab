//! How a request becomes a [`ToolCall`] (the `/tools/invoke` body, MCP `tools/call`
//! arguments), and the seam between the gateway and whatever runs the tools
//! ([`ToolBackend`]).
//!
//! [`ToolCall`] and [`ToolSpec`] are carapace-tools' (the one registry); this module only
//! parses the wire forms. The gateway never runs a tool itself: HTTP, MCP over HTTP and MCP
//! over stdio all hand a [`ToolCall`] to the backend with the [`Origin`] it came from, and the
//! backend's dispatch applies the tool policy of that surface. Tests plug in a stub; the CLI
//! plugs in carapace-tools.

use std::sync::Arc;

use carapace_policy::tools_policy::Surface;
use carapace_policy::{Config, ErrorCode, ErrorEnvelope, ResolveInput};
use futures_util::future::BoxFuture;
use serde_json::{Map, Value};

pub use carapace_tools::{Origin, ToolCall, ToolSpec};

/// The longest `idempotencyKey` accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 256;

/// A parsed `POST /tools/invoke` body.
#[derive(Debug, Clone, PartialEq)]
pub struct InvokeRequest {
    /// The call.
    pub call: ToolCall,
    /// `idempotencyKey`: a retry with the same key returns the first result.
    pub idempotency_key: Option<String>,
}

/// The body keys `/tools/invoke` accepts.
pub const INVOKE_KEYS: &[&str] = &[
    "tool",
    "name",
    "action",
    "args",
    "sessionKey",
    "agentId",
    "channel",
    "idempotencyKey",
    "dryRun",
];

/// Parses an OpenClaw-compatible `POST /tools/invoke` body:
/// `{tool | name, action?, args?, sessionKey?, agentId?, channel?, idempotencyKey?, dryRun?}`.
///
/// `name` is OpenClaw's other spelling of `tool` (its gateway method `tools.invoke` takes
/// `name`); both given must agree. `action` stays the call's action: the registry copies it
/// into the arguments of tools that take one, as OpenClaw does. Any other key is refused.
pub fn parse_invoke_body(body: &[u8]) -> Result<InvokeRequest, ErrorEnvelope> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        ErrorEnvelope::new(
            ErrorCode::BadRequest,
            format!("the request body is not valid JSON: {e}"),
        )
        .with_hint(
            "send a JSON object like {\"tool\": \"message\", \"args\": {\"target\": \"user:me\", \"message\": \"hi\"}}",
        )
    })?;
    let Value::Object(mut obj) = value else {
        return Err(bad("the request body must be a JSON object"));
    };
    let tool = tool_name(&mut obj)?;
    let args = match obj.remove("args") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(bad(format!(
                "\"args\" must be an object, not {}",
                json_kind(&other)
            ))
            .with_detail("field", "args"));
        }
    };
    let action = opt_string(&mut obj, "action")?;
    let session_key = opt_string(&mut obj, "sessionKey")?;
    let agent_id = opt_string(&mut obj, "agentId")?;
    let channel = opt_string(&mut obj, "channel")?;
    let idempotency_key = idempotency_key(opt_string(&mut obj, "idempotencyKey")?)?;
    // OpenClaw's reserved flag; accepted and ignored like upstream.
    obj.remove("dryRun");
    if let Some(key) = obj.keys().next() {
        return Err(bad(format!("unknown key {key:?} in the request body"))
            .with_hint(format!("allowed keys: {}", INVOKE_KEYS.join(", ")))
            .with_detail("field", key.clone()));
    }
    Ok(InvokeRequest {
        call: normalized(tool, action, args, session_key, agent_id, channel),
        idempotency_key,
    })
}

fn tool_name(obj: &mut Map<String, Value>) -> Result<String, ErrorEnvelope> {
    let mut one = |k: &str| -> Result<Option<String>, ErrorEnvelope> {
        match obj.remove(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(other) => Err(not_a_string(k, &other)),
        }
    };
    match (one("tool")?, one("name")?) {
        (Some(t), Some(n)) if t != n => Err(bad(format!(
            "\"tool\" ({t:?}) and \"name\" ({n:?}) name different tools"
        ))
        .with_hint("send one of them; name is OpenClaw's other spelling of tool")
        .with_detail("field", "name")),
        (Some(t), _) | (None, Some(t)) => Ok(t),
        (None, None) => Err(bad("\"tool\" is required").with_detail("field", "tool")),
    }
}

/// Checks an `idempotencyKey`: 1–256 printable ASCII characters.
pub fn idempotency_key(k: Option<String>) -> Result<Option<String>, ErrorEnvelope> {
    match k {
        None => Ok(None),
        Some(k)
            if !k.is_empty()
                && k.len() <= MAX_IDEMPOTENCY_KEY
                && k.bytes().all(|b| b.is_ascii_graphic() || b == b' ') =>
        {
            Ok(Some(k))
        }
        Some(_) => Err(bad(format!(
            "\"idempotencyKey\" must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters"
        ))
        .with_detail("field", "idempotencyKey")),
    }
}

/// An MCP `tools/call`: the call, and its `idempotencyKey` if the arguments carry one.
///
/// `sessionKey`, `agentId` and `idempotencyKey` are taken out of the arguments (they address
/// the session or the call, they are not the tool's own arguments); `action` stays in the args
/// and also becomes the call's action. `channel` stays in the args: for `message` it is the
/// destination channel.
pub fn from_mcp(
    tool: &str,
    arguments: Option<Map<String, Value>>,
    header_session: Option<String>,
) -> Result<(ToolCall, Option<String>), ErrorEnvelope> {
    let mut args = arguments.unwrap_or_default();
    let session_key = take_string(&mut args, "sessionKey").or(header_session);
    let agent_id = take_string(&mut args, "agentId");
    let key = idempotency_key(take_string(&mut args, "idempotencyKey"))?;
    Ok((
        normalized(tool.to_string(), None, args, session_key, agent_id, None),
        key,
    ))
}

fn normalized(
    tool: String,
    action: Option<String>,
    args: Map<String, Value>,
    session_key: Option<String>,
    agent_id: Option<String>,
    channel: Option<String>,
) -> ToolCall {
    let action = action.or_else(|| {
        args.get("action")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    ToolCall {
        tool,
        action,
        args: Value::Object(args),
        session_key: session_key.filter(|s| !s.trim().is_empty()),
        agent_id: agent_id.filter(|s| !s.is_empty()),
        channel: channel.filter(|s| !s.is_empty()),
    }
}

fn bad(msg: impl Into<String>) -> ErrorEnvelope {
    ErrorEnvelope::new(ErrorCode::BadRequest, msg)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn not_a_string(field: &str, v: &Value) -> ErrorEnvelope {
    bad(format!("{field:?} must be a string, not {}", json_kind(v))).with_detail("field", field)
}

fn opt_string(obj: &mut Map<String, Value>, key: &str) -> Result<Option<String>, ErrorEnvelope> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(not_a_string(key, &other)),
    }
}

fn take_string(obj: &mut Map<String, Value>, key: &str) -> Option<String> {
    match obj.get(key) {
        Some(Value::String(_)) => match obj.remove(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// Runs tools. The gateway holds one behind an `Arc` and swaps it when the config is reloaded.
pub trait ToolBackend: Send + Sync + 'static {
    /// Every tool this backend has (whatever the policy says), with its argument schema.
    fn specs(&self) -> Vec<ToolSpec>;

    /// The tools the session `input` names has on `surface` (MCP `tools/list`). The default:
    /// all of them (a backend without a policy).
    fn list(
        &self,
        _surface: Surface,
        _input: &ResolveInput<'_>,
    ) -> Result<Vec<ToolSpec>, ErrorEnvelope> {
        Ok(self.specs())
    }

    /// Runs one call from `origin`. Errors are typed envelopes (a tool the policy denies is
    /// `TOOL_DENIED`); a panic inside is caught by the gateway.
    fn invoke(
        &self,
        call: ToolCall,
        origin: Origin,
    ) -> BoxFuture<'static, Result<Value, ErrorEnvelope>>;

    /// How many sandboxes are alive right now, if the backend knows (for `/metrics`).
    fn sandboxes_alive(&self) -> Option<u64> {
        None
    }

    /// Why the session `input` names cannot call `tool` on `surface` (`TOOL_DENIED` naming
    /// the setting), for a tool [`ToolBackend::list`] did not offer. The default: none (a
    /// backend without a policy; the caller says `NOT_FOUND`).
    fn refusal(
        &self,
        _surface: Surface,
        _input: &ResolveInput<'_>,
        _tool: &str,
    ) -> Option<ErrorEnvelope> {
        None
    }

    /// The tools' context (session workspaces, sandboxes, the media store), when the backend
    /// is carapace-tools: the agent runtime and the inbound service are built on it. A
    /// backend without one (a test stub) runs no agent.
    fn tool_context(&self) -> Option<carapace_tools::ToolContext> {
        None
    }

    /// Stops the services the backend started (browsers, backend clients); the gateway calls
    /// it once when it stops. The default: nothing to stop.
    fn shutdown(&self) -> BoxFuture<'static, ()> {
        Box::pin(async {})
    }
}

/// Builds a backend from a (re)loaded config.
pub type BackendFactory =
    Arc<dyn Fn(&Config) -> Result<Arc<dyn ToolBackend>, ErrorEnvelope> + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openclaw_body_with_action_and_name() {
        let r = parse_invoke_body(
            br#"{"tool":"message","action":"send","args":{"channel":"inbox"},"sessionKey":"agent:main:main","dryRun":false,"idempotencyKey":"k-1"}"#,
        )
        .unwrap();
        let c = r.call;
        assert_eq!(c.tool, "message");
        assert_eq!(c.action.as_deref(), Some("send"));
        // The registry merges the action into the args of tools that take one.
        assert_eq!(c.args, json!({"channel": "inbox"}));
        assert_eq!(c.session_key.as_deref(), Some("agent:main:main"));
        assert_eq!(r.idempotency_key.as_deref(), Some("k-1"));
        let r = parse_invoke_body(br#"{"name":"ls"}"#).unwrap();
        assert_eq!(r.call.tool, "ls");
        let r = parse_invoke_body(br#"{"name":"ls","tool":"ls"}"#).unwrap();
        assert_eq!(r.call.tool, "ls");
    }

    #[test]
    fn bad_bodies_are_bad_request() {
        for body in [
            &b"{"[..],
            b"[]",
            b"{\"args\":{}}",
            b"{\"tool\":3}",
            b"{\"tool\":\"read\",\"args\":[]}",
            b"{\"tool\":\"read\",\"bogus\":1}",
            b"{\"tool\":\"read\",\"name\":\"ls\"}",
            b"{\"tool\":\"read\",\"idempotencyKey\":\"\"}",
            b"{\"tool\":\"read\",\"idempotencyKey\":7}",
        ] {
            let e = parse_invoke_body(body).unwrap_err();
            assert_eq!(
                e.code,
                ErrorCode::BadRequest,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn mcp_arguments_lose_session_fields_keep_channel() {
        let args = json!({"sessionKey": "agent:a:x", "agentId": "a", "channel": "inbox", "action": "send", "idempotencyKey": "abc"});
        let Value::Object(m) = args else { panic!() };
        let (c, k) = from_mcp("message", Some(m), Some("hdr".into())).unwrap();
        assert_eq!(c.session_key.as_deref(), Some("agent:a:x"));
        assert_eq!(c.agent_id.as_deref(), Some("a"));
        assert_eq!(c.action.as_deref(), Some("send"));
        assert_eq!(c.args, json!({"channel": "inbox", "action": "send"}));
        assert_eq!(k.as_deref(), Some("abc"));
        let (c, _) = from_mcp("read", None, Some("hdr".into())).unwrap();
        assert_eq!(c.session_key.as_deref(), Some("hdr"));
    }
}
