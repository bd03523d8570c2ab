//! `${ENV}` and `~` expansion, with the environment injected so this stays free of I/O.

/// A `${VAR}` reference to an unset variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingVar(pub String);

/// Expands every `${NAME}` in `s`. `$${` escapes a literal `${`.
pub fn expand_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, MissingVar> {
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
                out.push_str(&env(name).ok_or_else(|| MissingVar(name.to_string()))?);
                rest = &after[j + 1..];
            }
            _ => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
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
        assert_eq!(expand_env("${B}", &env), Err(MissingVar("B".into())));
        assert_eq!(expand_env("${not a var}", &env), Ok("${not a var}".into()));
        assert_eq!(env_refs("a${X}b${Y_2}"), vec!["X", "Y_2"]);
        assert_eq!(expand_tilde("~/a", "/h/"), "/h/a");
        assert_eq!(expand_tilde("~x/a", "/h"), "~x/a");
    }
}
