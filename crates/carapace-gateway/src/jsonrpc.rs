//! The JSON-RPC check every incoming MCP message passes before rmcp sees it, on stdio and on
//! `/mcp` alike, so that malformed input gets the error JSON-RPC defines instead of being
//! dropped, misnamed or ending the session:
//!
//! - not UTF-8, not JSON → `-32700` parse error (`id: null`);
//! - JSON that is not a JSON-RPC 2.0 message → `-32600` invalid request (with its `id` when it
//!   has a usable one);
//! - a known method whose `params` do not have the method's shape (`tools/call` without a
//!   string `name`, `arguments` that is not an object, …) → `-32602` invalid params.
//!
//! Messages that pass are handed on unchanged.

use rmcp::model::{
    CallToolRequestParams, ClientJsonRpcMessage, InitializeRequestParams, PaginatedRequestParams,
};
use serde_json::{Value, json};

/// JSON-RPC's parse error.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC's invalid request.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC's invalid params.
pub const INVALID_PARAMS: i64 = -32602;

/// A JSON-RPC error response to send instead of handing the message on.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// The request's id, when it had a usable one (else `null`).
    pub id: Value,
    /// `-32700`, `-32600` or `-32602`.
    pub code: i64,
    /// What is wrong.
    pub message: String,
}

impl Rejection {
    /// The response object.
    pub fn to_json(&self) -> Value {
        json!({"jsonrpc": "2.0", "id": self.id, "error": {"code": self.code, "message": self.message}})
    }

    fn new(id: Value, code: i64, message: impl Into<String>) -> Rejection {
        Rejection {
            id,
            code,
            message: message.into(),
        }
    }
}

/// Checks one message (a line on stdio, a POST body on `/mcp`).
pub fn check(bytes: &[u8]) -> Result<(), Rejection> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Rejection::new(
            Value::Null,
            PARSE_ERROR,
            format!("Parse error: the message is not UTF-8 ({e})"),
        )
    })?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Rejection::new(
            Value::Null,
            PARSE_ERROR,
            format!("Parse error: the message is not JSON ({e})"),
        )
    })?;
    match &value {
        Value::Array(items) if items.is_empty() => Err(Rejection::new(
            Value::Null,
            INVALID_REQUEST,
            "Invalid Request: an empty batch",
        )),
        Value::Array(items) => {
            for item in items {
                check_one(item)?;
            }
            Ok(())
        }
        v => check_one(v),
    }
}

fn check_one(v: &Value) -> Result<(), Rejection> {
    let Value::Object(m) = v else {
        return Err(Rejection::new(
            Value::Null,
            INVALID_REQUEST,
            "Invalid Request: a JSON-RPC message is an object",
        ));
    };
    let id = match m.get("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
        _ => Value::Null,
    };
    if m.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(Rejection::new(
            id,
            INVALID_REQUEST,
            "Invalid Request: \"jsonrpc\" must be \"2.0\"",
        ));
    }
    if let Some(method) = m.get("method") {
        let Some(method) = method.as_str() else {
            return Err(Rejection::new(
                id,
                INVALID_REQUEST,
                "Invalid Request: \"method\" must be a string",
            ));
        };
        if let Some(i) = m.get("id")
            && !matches!(i, Value::String(_) | Value::Number(_))
        {
            return Err(Rejection::new(
                Value::Null,
                INVALID_REQUEST,
                "Invalid Request: \"id\" must be a string or a number",
            ));
        }
        check_params(method, m.get("params")).map_err(|why| {
            Rejection::new(
                id.clone(),
                INVALID_PARAMS,
                format!("Invalid params for {method}: {why}"),
            )
        })?;
    }
    serde_json::from_value::<ClientJsonRpcMessage>(v.clone())
        .map(drop)
        .map_err(|e| Rejection::new(id, INVALID_REQUEST, format!("Invalid Request: {e}")))
}

/// The shape of `params` of the methods carapace serves.
fn check_params(method: &str, params: Option<&Value>) -> Result<(), String> {
    fn shape<T: serde::de::DeserializeOwned>(
        p: Option<&Value>,
        required: bool,
    ) -> Result<(), String> {
        match p {
            None if required => Err("\"params\" is required".into()),
            None | Some(Value::Null) if !required => Ok(()),
            Some(Value::Object(_)) => {
                serde_json::from_value::<T>(p.cloned().unwrap_or(Value::Null))
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
            Some(other) => Err(format!(
                "\"params\" must be an object, not {}",
                match other {
                    Value::Array(_) => "an array",
                    Value::String(_) => "a string",
                    Value::Number(_) => "a number",
                    Value::Bool(_) => "a boolean",
                    _ => "null",
                }
            )),
            None => Err("\"params\" is required".into()),
        }
    }
    match method {
        "initialize" => shape::<InitializeRequestParams>(params, true),
        "tools/call" => shape::<CallToolRequestParams>(params, true),
        "tools/list" => shape::<PaginatedRequestParams>(params, false),
        _ => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn code(s: &str) -> Option<i64> {
        check(s.as_bytes()).err().map(|r| r.code)
    }

    #[test]
    fn classifies() {
        assert_eq!(code("garbage"), Some(PARSE_ERROR));
        assert_eq!(check(b"\xff\xfe").unwrap_err().code, PARSE_ERROR);
        assert_eq!(code("[]"), Some(INVALID_REQUEST));
        assert_eq!(code("[1,2]"), Some(INVALID_REQUEST));
        assert_eq!(code("5"), Some(INVALID_REQUEST));
        assert_eq!(
            code(r#"{"id":1,"method":"tools/list"}"#),
            Some(INVALID_REQUEST)
        );
        let r = check(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":5}}"#)
            .unwrap_err();
        assert_eq!((r.code, r.id), (INVALID_PARAMS, json!(7)));
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"}"#),
            Some(INVALID_PARAMS)
        );
        assert_eq!(
            code(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ls","arguments":[1]}}"#
            ),
            Some(INVALID_PARAMS)
        );
        assert_eq!(
            code(
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ls","arguments":{}}}"#
            ),
            None
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#),
            None
        );
        assert_eq!(
            code(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#),
            None
        );
    }
}
