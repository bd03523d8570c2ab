//! Checks both APIs share: tool names and JSON Schema objects for tool parameters.

use serde_json::Value;

/// Both APIs: `^[a-zA-Z0-9_-]{1,64}$`.
pub(crate) fn tool_name_ok(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

const TYPES: &[&str] = &[
    "object", "array", "string", "number", "integer", "boolean", "null",
];

/// A tool's parameter schema must be a JSON Schema object of `type: "object"`; nested schemas
/// must be schema objects with known types, `properties` an object of schemas, `required` a
/// list of property names.
pub(crate) fn check_parameters(v: &Value, path: &str, problems: &mut Vec<String>) {
    if v.get("type").and_then(Value::as_str) != Some("object") {
        problems.push(format!(
            "{path}: a tool schema must be a JSON Schema with type \"object\", got {v}"
        ));
        return;
    }
    check_schema(v, path, problems, 0);
}

fn check_schema(v: &Value, path: &str, problems: &mut Vec<String>, depth: usize) {
    if depth > 32 {
        problems.push(format!("{path}: schema nested too deeply"));
        return;
    }
    let Some(o) = v.as_object() else {
        // `true` / `false` are valid schemas too.
        if !v.is_boolean() {
            problems.push(format!("{path}: not a JSON Schema object: {v}"));
        }
        return;
    };
    match o.get("type") {
        None => {}
        Some(Value::String(t)) if TYPES.contains(&t.as_str()) => {}
        Some(Value::Array(ts))
            if ts
                .iter()
                .all(|t| t.as_str().is_some_and(|t| TYPES.contains(&t))) => {}
        Some(t) => problems.push(format!("{path}.type: {t} is not a JSON Schema type")),
    }
    if let Some(p) = o.get("properties") {
        match p.as_object() {
            Some(props) => {
                for (k, s) in props {
                    check_schema(s, &format!("{path}.properties.{k}"), problems, depth + 1);
                }
                if let Some(req) = o.get("required") {
                    match req.as_array() {
                        Some(r) => {
                            for x in r {
                                match x.as_str() {
                                    Some(n) if props.contains_key(n) => {}
                                    _ => problems.push(format!(
                                        "{path}.required: {x} is not one of the properties"
                                    )),
                                }
                            }
                        }
                        None => problems.push(format!("{path}.required: not an array")),
                    }
                }
            }
            None => problems.push(format!("{path}.properties: not an object")),
        }
    }
    if let Some(items) = o.get("items") {
        check_schema(items, &format!("{path}.items"), problems, depth + 1);
    }
    for k in ["oneOf", "anyOf", "allOf"] {
        if let Some(alts) = o.get(k) {
            match alts.as_array() {
                Some(a) if !a.is_empty() => {
                    for (i, s) in a.iter().enumerate() {
                        check_schema(s, &format!("{path}.{k}[{i}]"), problems, depth + 1);
                    }
                }
                _ => problems.push(format!("{path}.{k}: not a non-empty array")),
            }
        }
    }
    if let Some(e) = o.get("enum")
        && !e.as_array().is_some_and(|a| !a.is_empty())
    {
        problems.push(format!("{path}.enum: not a non-empty array"));
    }
}
