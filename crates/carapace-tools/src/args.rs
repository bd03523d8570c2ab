//! Argument access with `BAD_REQUEST` errors that name the argument.
//!
//! Two kinds of string: **content** ([`Args::opt_str`]: file text, message text, patch input —
//! any character, NUL included, is data) and **names** ([`Args::opt_name`] / [`Args::name`]:
//! paths, commands, URLs, channels, targets, file names — things handed to the kernel or a
//! parser as C strings, where a NUL byte would be cut or refused deep down). A NUL byte in a
//! name is refused here, naming the argument, before anything runs.

use serde_json::Value;

use crate::ToolError;

/// The arguments of a call, checked to be an object (or null = none).
pub(crate) struct Args<'a> {
    tool: &'static str,
    obj: Option<&'a serde_json::Map<String, Value>>,
}

impl<'a> Args<'a> {
    pub(crate) fn new(tool: &'static str, v: &'a Value) -> Result<Args<'a>, ToolError> {
        match v {
            Value::Object(m) => Ok(Args { tool, obj: Some(m) }),
            Value::Null => Ok(Args { tool, obj: None }),
            _ => Err(ToolError::bad_request(format!(
                "{tool}: arguments must be a JSON object"
            ))),
        }
    }

    fn get(&self, name: &str) -> Option<&'a Value> {
        self.obj.and_then(|m| m.get(name)).filter(|v| !v.is_null())
    }

    /// An optional string (any of the given names; the first is the documented one).
    pub(crate) fn opt_str(&self, names: &[&str]) -> Result<Option<&'a str>, ToolError> {
        for n in names {
            match self.get(n) {
                Some(Value::String(s)) => return Ok(Some(s)),
                Some(_) => {
                    return Err(ToolError::bad_request(format!(
                        "{}: argument {n:?} must be a string",
                        self.tool
                    ))
                    .with_detail("argument", *n));
                }
                None => {}
            }
        }
        Ok(None)
    }

    /// A required string.
    pub(crate) fn str(&self, names: &[&str]) -> Result<&'a str, ToolError> {
        self.opt_str(names)?.ok_or_else(|| self.missing(names))
    }

    fn missing(&self, names: &[&str]) -> ToolError {
        ToolError::bad_request(format!(
            "{}: missing required argument {:?}",
            self.tool,
            names.first().copied().unwrap_or("")
        ))
        .with_detail("argument", names.first().copied().unwrap_or(""))
    }

    /// An optional name (path, command, URL, id): a string without NUL bytes.
    pub(crate) fn opt_name(&self, names: &[&str]) -> Result<Option<&'a str>, ToolError> {
        for n in names {
            if let Some(Value::String(s)) = self.get(n) {
                no_nul(self.tool, n, s)?;
            }
        }
        self.opt_str(names)
    }

    /// A required name.
    pub(crate) fn name(&self, names: &[&str]) -> Result<&'a str, ToolError> {
        self.opt_name(names)?.ok_or_else(|| self.missing(names))
    }

    /// An optional non-negative integer.
    pub(crate) fn opt_u64(&self, name: &str) -> Result<Option<u64>, ToolError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                ToolError::bad_request(format!(
                    "{}: argument {name:?} must be a non-negative integer",
                    self.tool
                ))
                .with_detail("argument", name)
            }),
        }
    }

    /// An optional object of strings.
    pub(crate) fn opt_string_map(
        &self,
        name: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, ToolError> {
        let mut out = std::collections::BTreeMap::new();
        match self.get(name) {
            None => Ok(out),
            Some(Value::Object(m)) => {
                for (k, v) in m {
                    let s = match v {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        Value::Bool(b) => b.to_string(),
                        _ => {
                            return Err(ToolError::bad_request(format!(
                                "{}: {name}.{k} must be a string",
                                self.tool
                            ))
                            .with_detail("argument", format!("{name}.{k}")));
                        }
                    };
                    no_nul(self.tool, &format!("{name} (a key)"), k)?;
                    no_nul(self.tool, &format!("{name}.{k}"), &s)?;
                    out.insert(k.clone(), s);
                }
                Ok(out)
            }
            Some(_) => Err(ToolError::bad_request(format!(
                "{}: argument {name:?} must be an object of strings",
                self.tool
            ))
            .with_detail("argument", name)),
        }
    }
}

/// `BAD_REQUEST` naming the argument when `value` holds a NUL byte.
pub(crate) fn no_nul(tool: &str, argument: &str, value: &str) -> Result<(), ToolError> {
    match value.find('\0') {
        None => Ok(()),
        Some(at) => Err(ToolError::bad_request(format!(
            "{tool}: argument {argument:?} contains a NUL byte (at byte {at})"
        ))
        .with_hint(
            "paths, commands, URLs, names and environment variables cannot contain NUL bytes",
        )
        .with_detail("argument", argument)
        .with_detail("offset", at)),
    }
}
