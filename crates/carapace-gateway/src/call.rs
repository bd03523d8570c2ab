//! What a caller asks for ([`ToolCall`]), what a tool looks like from outside ([`ToolSpec`]),
//! and the seam between the gateway and whatever runs the tools ([`ToolBackend`]).
//!
//! The gateway never runs a tool itself: HTTP, MCP over HTTP and MCP over stdio all turn a
//! request into a [`ToolCall`] and hand it to the backend. Tests plug in a stub; the CLI plugs
//! in carapace-tools.

use std::sync::Arc;

use carapace_policy::{Config, ErrorCode, ErrorEnvelope};
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One tool call, whatever surface it came through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCall {
    /// Tool name (`read`, `write`, `exec`, `message`, ...).
    pub tool: String,
    /// Tool action (`send`, `upload-file`, `screenshot`, ...), when the tool has actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The tool's own arguments (an object).
    #[serde(default = "empty_object")]
    pub args: Value,
    /// Session key (`agent:<id>:<rest>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_key: Option<String>,
    /// Explicit agent id (wins over the one in the session key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// Explicit channel id of the session (wins over the one in the session key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

impl ToolCall {
    /// A call with only a tool name and arguments.
    pub fn new(tool: impl Into<String>, args: Value) -> ToolCall {
        ToolCall {
            tool: tool.into(),
            action: None,
            args,
            session_key: None,
            agent_id: None,
            channel: None,
        }
    }

    /// Parses an OpenClaw-compatible `POST /tools/invoke` body:
    /// `{tool, action?, args?, sessionKey?, agentId?, channel?, dryRun?}`.
    ///
    /// As in OpenClaw, a top-level `action` is copied into `args.action` when the args omit
    /// it; an `action` inside the args is also accepted as the call's action.
    pub fn from_invoke_body(body: &[u8]) -> Result<ToolCall, ErrorEnvelope> {
        let value: Value = serde_json::from_slice(body).map_err(|e| {
            ErrorEnvelope::new(
                ErrorCode::BadRequest,
                format!("the request body is not valid JSON: {e}"),
            )
            .with_hint(
                "send a JSON object like {\"tool\": \"read\", \"args\": {\"path\": \"notes.txt\"}}",
            )
        })?;
        let Value::Object(mut obj) = value else {
            return Err(bad("the request body must be a JSON object"));
        };
        let tool = match obj.remove("tool") {
            Some(Value::String(s)) if !s.trim().is_empty() => s,
            Some(Value::String(_)) | None => {
                return Err(bad("\"tool\" is required").with_detail("field", "tool"));
            }
            Some(other) => return Err(not_a_string("tool", &other)),
        };
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
        // OpenClaw's reserved flag; accepted and ignored like upstream.
        obj.remove("dryRun");
        if let Some(key) = obj.keys().next() {
            return Err(bad(format!("unknown key {key:?} in the request body"))
                .with_hint("allowed keys: tool, action, args, sessionKey, agentId, channel, dryRun")
                .with_detail("field", key.clone()));
        }
        Ok(ToolCall::normalized(
            tool,
            action,
            args,
            session_key,
            agent_id,
            channel,
        ))
    }

    /// Builds a call from MCP `tools/call` arguments: `sessionKey` and `agentId` are taken out
    /// of the arguments (they address the session, they are not the tool's own arguments);
    /// `action` stays in the args and also becomes the call's action. `channel` stays in the
    /// args: for `message` it is the destination channel.
    pub fn from_mcp(
        tool: &str,
        arguments: Option<Map<String, Value>>,
        header_session: Option<String>,
    ) -> ToolCall {
        let mut args = arguments.unwrap_or_default();
        let session_key = take_string(&mut args, "sessionKey").or(header_session);
        let agent_id = take_string(&mut args, "agentId");
        ToolCall::normalized(tool.to_string(), None, args, session_key, agent_id, None)
    }

    fn normalized(
        tool: String,
        action: Option<String>,
        mut args: Map<String, Value>,
        session_key: Option<String>,
        agent_id: Option<String>,
        channel: Option<String>,
    ) -> ToolCall {
        let action = match (action, args.get("action")) {
            (Some(a), None) => {
                args.insert("action".into(), Value::String(a.clone()));
                Some(a)
            }
            (Some(a), Some(_)) => Some(a),
            (None, Some(Value::String(a))) => Some(a.clone()),
            (None, _) => None,
        };
        ToolCall {
            tool,
            action,
            args: Value::Object(args),
            session_key: session_key.filter(|s| !s.is_empty()),
            agent_id: agent_id.filter(|s| !s.is_empty()),
            channel: channel.filter(|s| !s.is_empty()),
        }
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

/// A tool as the outside world sees it: name, description and a JSON schema of its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec {
    /// Tool name.
    pub name: String,
    /// One paragraph for humans and models.
    pub description: String,
    /// JSON Schema (an object schema) of the arguments.
    pub input_schema: Value,
}

/// Runs tools. The gateway holds one behind an `Arc` and swaps it when the config is reloaded.
pub trait ToolBackend: Send + Sync + 'static {
    /// Every tool this backend runs, with its argument schema.
    fn specs(&self) -> Vec<ToolSpec>;

    /// Runs one call. Errors are typed envelopes; a panic inside is caught by the gateway.
    fn invoke(&self, call: ToolCall) -> BoxFuture<'static, Result<Value, ErrorEnvelope>>;

    /// How many sandboxes are alive right now, if the backend knows (for `/metrics`).
    fn sandboxes_alive(&self) -> Option<u64> {
        None
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
    fn openclaw_body_with_action_mapping() {
        let c = ToolCall::from_invoke_body(
            br#"{"tool":"message","action":"send","args":{"channel":"inbox"},"sessionKey":"agent:main:main","dryRun":false}"#,
        )
        .unwrap();
        assert_eq!(c.tool, "message");
        assert_eq!(c.action.as_deref(), Some("send"));
        assert_eq!(c.args, json!({"channel": "inbox", "action": "send"}));
        assert_eq!(c.session_key.as_deref(), Some("agent:main:main"));
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
        ] {
            let e = ToolCall::from_invoke_body(body).unwrap_err();
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
        let args = json!({"sessionKey": "agent:a:x", "agentId": "a", "channel": "inbox", "action": "send"});
        let Value::Object(m) = args else { panic!() };
        let c = ToolCall::from_mcp("message", Some(m), Some("hdr".into()));
        assert_eq!(c.session_key.as_deref(), Some("agent:a:x"));
        assert_eq!(c.agent_id.as_deref(), Some("a"));
        assert_eq!(c.action.as_deref(), Some("send"));
        assert_eq!(c.args, json!({"channel": "inbox", "action": "send"}));
        let c = ToolCall::from_mcp("read", None, Some("hdr".into()));
        assert_eq!(c.session_key.as_deref(), Some("hdr"));
    }
}
