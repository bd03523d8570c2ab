//! JSON5 text → `serde_json::Value`, safely:
//!
//! - the nesting depth is bounded ([`MAX_DEPTH`]) by a flat scan *before* any recursive parser
//!   runs, so a deeply nested file is a `CONFIG_INVALID` naming the depth, not a stack
//!   overflow (which would kill a running gateway on hot reload);
//! - `NaN`, `Infinity` and `-Infinity` (JSON5 allows them) are refused with their JSON path,
//!   instead of silently becoming `null` (= "not set") as they would in a `serde_json::Value`.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Deepest nesting of objects and arrays a config file may have. carapace's own keys are at
/// most six levels deep; OpenClaw sections carapace ignores get the rest.
pub const MAX_DEPTH: usize = 64;

/// Why the text is not a usable document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawError {
    /// Not JSON5 (the parser's message).
    Syntax(String),
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep {
        /// 1-based line of the bracket that went past the bound.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// A non-finite number.
    NonFinite {
        /// JSON path of the value.
        path: String,
        /// `NaN`, `Infinity` or `-Infinity`.
        value: String,
    },
}

/// Parses JSON5 text with the two guards above.
pub fn parse(text: &str) -> Result<Value, RawError> {
    check_depth(text)?;
    let raw: Raw = json5::from_str(text).map_err(|e| RawError::Syntax(e.to_string()))?;
    raw.into_value(&mut String::new())
}

/// A flat scan of the brackets outside strings and comments.
fn check_depth(text: &str) -> Result<(), RawError> {
    let b = text.as_bytes();
    let (mut depth, mut line, mut col) = (0usize, 1usize, 0usize);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        col += 1;
        match c {
            b'\n' => {
                line += 1;
                col = 0;
            }
            b'"' | b'\'' => {
                i += 1;
                while i < b.len() && b[i] != c {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    if i < b.len() && b[i] == b'\n' {
                        line += 1;
                        col = 0;
                    }
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    if b[i] == b'\n' {
                        line += 1;
                        col = 0;
                    }
                    i += 1;
                }
                i += 1;
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(RawError::TooDeep { line, column: col });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// The parsed tree before the finite-number check.
enum Raw {
    Null,
    Bool(bool),
    Num(Number),
    NonFinite(f64),
    Str(String),
    Arr(Vec<Raw>),
    Obj(Vec<(String, Raw)>),
}

impl Raw {
    fn into_value(self, path: &mut String) -> Result<Value, RawError> {
        Ok(match self {
            Raw::Null => Value::Null,
            Raw::Bool(b) => Value::Bool(b),
            Raw::Num(n) => Value::Number(n),
            Raw::Str(s) => Value::String(s),
            Raw::NonFinite(f) => {
                return Err(RawError::NonFinite {
                    path: if path.is_empty() {
                        "(root)".into()
                    } else {
                        path.clone()
                    },
                    value: if f.is_nan() {
                        "NaN".into()
                    } else if f > 0.0 {
                        "Infinity".into()
                    } else {
                        "-Infinity".into()
                    },
                });
            }
            Raw::Arr(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    out.push(item.into_value(path)?);
                    path.truncate(len);
                }
                Value::Array(out)
            }
            Raw::Obj(entries) => {
                let mut out = Map::new();
                for (k, v) in entries {
                    let len = path.len();
                    if !path.is_empty() {
                        path.push('.');
                    }
                    path.push_str(&k);
                    let v = v.into_value(path)?;
                    path.truncate(len);
                    out.insert(k, v);
                }
                Value::Object(out)
            }
        })
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Raw, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON5 value")
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(b))
    }
    fn visit_i64<E>(self, n: i64) -> Result<Raw, E> {
        Ok(Raw::Num(n.into()))
    }
    fn visit_u64<E>(self, n: u64) -> Result<Raw, E> {
        Ok(Raw::Num(n.into()))
    }
    fn visit_f64<E>(self, f: f64) -> Result<Raw, E> {
        Ok(Number::from_f64(f).map_or(Raw::NonFinite(f), Raw::Num))
    }
    fn visit_str<E>(self, s: &str) -> Result<Raw, E> {
        Ok(Raw::Str(s.to_string()))
    }
    fn visit_string<E>(self, s: String) -> Result<Raw, E> {
        Ok(Raw::Str(s))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut v = Vec::new();
        while let Some(x) = seq.next_element()? {
            v.push(x);
        }
        Ok(Raw::Arr(v))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut v = Vec::new();
        while let Some((k, x)) = map.next_entry::<String, Raw>()? {
            v.push((k, x));
        }
        Ok(Raw::Obj(v))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_bounded_before_parsing() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            parse(&deep),
            Err(RawError::TooDeep {
                line: 1,
                column: 65
            })
        ));
        let ok = format!(
            "{{a: {}1{}}}",
            "[".repeat(MAX_DEPTH - 1),
            "]".repeat(MAX_DEPTH - 1)
        );
        assert!(parse(&ok).is_ok());
        // Brackets in strings and comments do not count.
        let s = format!(
            "{{a: \"{}\", /* {} */ b: '{}'}} // {}",
            "[".repeat(200),
            "{".repeat(200),
            "[".repeat(200),
            "[".repeat(200)
        );
        assert!(parse(&s).is_ok(), "{:?}", parse(&s));
    }

    #[test]
    fn non_finite_numbers_name_their_path() {
        for (text, value) in [
            ("NaN", "NaN"),
            ("Infinity", "Infinity"),
            ("-Infinity", "-Infinity"),
        ] {
            let e = parse(&format!("{{media: {{ttlHours: {text}}}, l: [1]}}")).unwrap_err();
            assert_eq!(
                e,
                RawError::NonFinite {
                    path: "media.ttlHours".into(),
                    value: value.into()
                }
            );
        }
        let e = parse("{a: [1, NaN]}").unwrap_err();
        assert!(matches!(e, RawError::NonFinite { path, .. } if path == "a[1]"));
        assert_eq!(parse("{a: 1.5, b: -2, c: 'x'}").unwrap()["a"], 1.5);
    }
}
