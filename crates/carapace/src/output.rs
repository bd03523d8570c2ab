//! How results and errors reach the terminal: `--json` prints the envelope on stdout; otherwise
//! a human line on stderr. The exit code comes from the one table in carapace-policy.

use std::io::Write as _;

use carapace_policy::ErrorEnvelope;
use serde_json::Value;

/// Writes a line to stdout; a closed pipe (`carapace … | head`) is not an error worth a panic.
pub fn out_line(s: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{s}");
}

/// Prints a successful result: `{"ok": true, ...}` with `--json`, else the human text.
pub fn emit_ok(json: bool, value: Value, human: &str) {
    if json {
        let mut obj = serde_json::Map::new();
        obj.insert("ok".into(), Value::Bool(true));
        match value {
            Value::Object(m) => obj.extend(m),
            other => {
                obj.insert("result".into(), other);
            }
        }
        out_line(&Value::Object(obj).to_string());
    } else if !human.is_empty() {
        out_line(human.trim_end());
    }
}

/// Prints an error and returns the exit code for it.
pub fn emit_error(json: bool, env: &ErrorEnvelope) -> i32 {
    if json {
        out_line(&env.to_response_json().to_string());
    } else {
        eprintln!("error[{}]: {}", env.code, env.message);
        if let Some(h) = &env.hint {
            eprintln!("  hint: {h}");
        }
        if !env.details.is_empty() {
            let facts: Vec<String> = env
                .details
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}={s}"),
                    v => format!("{k}={v}"),
                })
                .collect();
            eprintln!("  details: {}", facts.join(", "));
        }
    }
    env.code.exit_code()
}
