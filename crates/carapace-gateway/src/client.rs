//! A client for a running gateway: what `carapace tool invoke --gateway URL` and
//! `carapace message ... --gateway URL` use.

use std::path::Path;
use std::time::Duration;

use carapace_policy::{ErrorCode, ErrorEnvelope};
use serde_json::{Value, json};

use crate::call::ToolCall;

/// The environment variable a client reads the token from first.
pub const TOKEN_ENV: &str = "CARAPACE_TOKEN";

/// The token a client should present: `$CARAPACE_TOKEN`, else the state dir's stored token.
pub fn resolve_token(state_dir: &Path) -> Result<String, ErrorEnvelope> {
    if let Ok(t) = std::env::var(TOKEN_ENV)
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_string());
    }
    match crate::auth::read_stored_token(state_dir)? {
        Some(t) => Ok(t),
        None => Err(ErrorEnvelope::new(
            ErrorCode::Unauthorized,
            format!(
                "no gateway token: $CARAPACE_TOKEN is not set and {} does not exist",
                state_dir.join(crate::auth::TOKEN_REL_PATH).display()
            ),
        )
        .with_hint("export CARAPACE_TOKEN=<token>, or run the client with the gateway's CARAPACE_STATE_DIR")),
    }
}

/// `POST <url>/tools/invoke` with the bearer token. `url` is the gateway's base URL
/// (`http://127.0.0.1:18789`) or the full endpoint URL. The result is the tool's structured
/// result (`result.details` of the answer); a typed error from the gateway comes back as the
/// same envelope.
pub async fn invoke(url: &str, token: &str, call: ToolCall) -> Result<Value, ErrorEnvelope> {
    let endpoint = endpoint(url);
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| ErrorEnvelope::new(ErrorCode::Internal, format!("HTTP client: {e}")))?;
    let mut body = json!({ "tool": call.tool, "args": call.args });
    for (k, v) in [
        ("action", call.action),
        ("sessionKey", call.session_key),
        ("agentId", call.agent_id),
        ("channel", call.channel),
    ] {
        if let Some(v) = v {
            body[k] = Value::String(v);
        }
    }
    let resp = client
        .post(&endpoint)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .map_err(|e| unreachable_gateway(&endpoint, &e))?;
    let status = resp.status();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| unreachable_gateway(&endpoint, &e))?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|_| {
        ErrorEnvelope::new(
            ErrorCode::Internal,
            format!(
                "the gateway at {endpoint} answered HTTP {status} without a JSON body: {}",
                String::from_utf8_lossy(&bytes)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ),
        )
        .with_detail("httpStatus", status.as_u16())
    })?;
    if v.get("ok").and_then(Value::as_bool) == Some(true) {
        // OpenClaw's shape: `{content, details}`, carapace's structured result in `details`.
        let result = v.get("result").cloned().unwrap_or(Value::Null);
        return Ok(match result.get("details") {
            Some(d) if result.get("content").is_some() => d.clone(),
            _ => result,
        });
    }
    match v
        .get("error")
        .cloned()
        .and_then(|e| serde_json::from_value::<ErrorEnvelope>(e).ok())
    {
        Some(env) => Err(env),
        None => Err(ErrorEnvelope::new(
            ErrorCode::Internal,
            format!("the gateway at {endpoint} answered HTTP {status} with an unknown body"),
        )
        .with_detail("httpStatus", status.as_u16())
        .with_detail("body", v)),
    }
}

fn endpoint(url: &str) -> String {
    let u = url.trim_end_matches('/');
    if u.ends_with("/tools/invoke") {
        u.to_string()
    } else {
        format!("{u}/tools/invoke")
    }
}

fn unreachable_gateway(endpoint: &str, e: &reqwest::Error) -> ErrorEnvelope {
    let msg = if e.is_timeout() {
        format!("the gateway at {endpoint} did not answer in time")
    } else {
        format!("cannot reach the gateway at {endpoint}: {e}")
    };
    ErrorEnvelope::new(ErrorCode::ChannelUnreachable, msg)
        .with_hint("is `carapace up` running? check the URL (the address `carapace up` printed)")
        .with_detail("gateway", endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(endpoint("http://h:1"), "http://h:1/tools/invoke");
        assert_eq!(endpoint("http://h:1/"), "http://h:1/tools/invoke");
        assert_eq!(
            endpoint("http://h:1/tools/invoke"),
            "http://h:1/tools/invoke"
        );
    }
}
