//! `${ENV}` and `~` expansion, with the environment injected so this stays free of I/O.

/// Why a string's `${...}` references cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    /// A `${VAR}` reference to an unset variable.
    Missing(String),
    /// A `${` that does not start a `${NAME}` reference (a nested `${A${B}}`, an unclosed
    /// `${`, a name with other characters); the text from that `${` on.
    Malformed(String),
}

impl std::fmt::Display for ExpandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpandError::Missing(name) => write!(f, "references ${{{name}}}, which is not set"),
            ExpandError::Malformed(at) => {
                let shown: String = at.chars().take(40).collect();
                write!(
                    f,
                    "{shown:?} is not a ${{NAME}} reference (NAME is letters, digits and '_', not starting with a digit; no nesting); write $${{ for a literal ${{"
                )
            }
        }
    }
}

/// Expands every `${NAME}` in `s`. `$${` escapes a literal `${`. Any other `${` is
/// [`ExpandError::Malformed`]: a nested or broken reference is never left half-expanded.
pub fn expand_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        if i > 0 && rest[..i].ends_with('$') {
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) if is_var_name(&after[..j]) => {
                let name = &after[..j];
                out.push_str(&env(name).ok_or_else(|| ExpandError::Missing(name.to_string()))?);
                rest = &after[j + 1..];
            }
            _ => return Err(ExpandError::Malformed(rest[i..].to_string())),
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// Checks the reference syntax only (every variable treated as set).
pub fn check_syntax(s: &str) -> Result<(), ExpandError> {
    expand_env(s, &|_| Some(String::new())).map(drop)
}

/// Names of the variables referenced by `s`.
pub fn env_refs(s: &str) -> Vec<String> {
    let mut refs = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) if is_var_name(&after[..j]) => {
                refs.push(after[..j].to_string());
                rest = &after[j + 1..];
            }
            _ => rest = after,
        }
    }
    refs
}

fn is_var_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// Expands a leading `~` / `~/` to `home`.
pub fn expand_tilde(s: &str, home: &str) -> String {
    if s == "~" {
        home.to_string()
    } else if let Some(rest) = s.strip_prefix("~/") {
        format!("{}/{}", home.trim_end_matches('/'), rest)
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(n: &str) -> Option<String> {
        (n == "A").then(|| "1".to_string())
    }

    #[test]
    fn expands() {
        assert_eq!(expand_env("x${A}y", &env), Ok("x1y".into()));
        assert_eq!(expand_env("$${A}", &env), Ok("${A}".into()));
        assert_eq!(
            expand_env("${B}", &env),
            Err(ExpandError::Missing("B".into()))
        );
        for bad in ["${not a var}", "${A${A}}", "x${", "${}", "${1A}", "${A"] {
            assert!(
                matches!(expand_env(bad, &env), Err(ExpandError::Malformed(_))),
                "{bad:?}"
            );
        }
        assert_eq!(expand_env("$${A${A}}", &env), Ok("${A1}".into()));
        assert_eq!(expand_env("a $ b {c}", &env), Ok("a $ b {c}".into()));
        assert_eq!(env_refs("a${X}b${Y_2}"), vec!["X", "Y_2"]);
        assert_eq!(expand_tilde("~/a", "/h/"), "/h/a");
        assert_eq!(expand_tilde("~x/a", "/h"), "~x/a");
    }
}
