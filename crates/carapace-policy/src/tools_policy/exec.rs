//! `tools.exec.security: "allowlist"`: which command lines `exec` runs.
//!
//! A line runs only when [`super::shell::split`] can read all of it and the executable of
//! **every** simple command on it is allowlisted. An entry is either
//!
//! - an absolute path (`/usr/bin/git`, `/usr/bin/*`, `/opt/tools/**`): it matches a command
//!   word that is exactly such a path (`*` stays within one path segment, `**` crosses them;
//!   a word with `.`, `..` or an empty segment matches nothing), or
//! - a bare name (`git`, `python3*`): it matches that command word as typed, which `sh` then
//!   finds on the sandbox's `PATH`. carapace fixes that `PATH` (system directories the sandbox
//!   cannot write), refuses `env` overrides and assignments in allowlist mode, so a bare name
//!   always means the system's binary of that name.
//!
//! Shell keywords and the builtins that run or rewire other code (`eval`, `exec`, `command`,
//! `.`, `source`, `trap`, `alias`, `export`, `set`, …) are never allowlisted. Allowlisting a
//! program that itself runs programs (`sh`, `env`, `xargs`, `find`, `awk`, `git -c …`) allows
//! whatever that program can run: that is the allowlist owner's choice, and docs say so.

use super::names::glob;
use super::shell::{ShellRefusal, split};

/// Words that are never an allowlisted executable, whatever the list says.
pub const NEVER: &[&str] = &[
    // keywords
    "if", "then", "else", "elif", "fi", "do", "done", "case", "esac", "while", "until", "for", "in",
    "{", "}", "!", "[[", "]]", "function", "select", "time", "coproc",
    // builtins that evaluate code or change what later words mean
    "eval", "exec", "command", "builtin", ".", "source", "trap", "alias", "unalias", "export",
    "unset", "readonly", "set", "local", "typeset", "declare", "hash", "enable", "fc",
];

/// Why a command line was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRefusal {
    /// One sentence.
    pub reason: String,
    /// The executable at fault, when one is.
    pub executable: Option<String>,
}

/// Checks one entry of `tools.exec.allowlist` (at load): an absolute path without `.`/`..`/
/// empty segments, or a bare name; no whitespace, quotes or shell metacharacters.
pub fn check_entry(entry: &str) -> Result<(), String> {
    if entry.is_empty() {
        return Err("an empty entry allows nothing".into());
    }
    if let Some(c) = entry
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || "'\"`$\\;&|<>()#~=?[]{}".contains(*c))
    {
        return Err(format!(
            "{entry:?} contains {c:?}; an entry is an absolute path or a bare executable name (\"*\" wildcards allowed)"
        ));
    }
    if let Some(rest) = entry.strip_prefix('/') {
        if rest
            .split('/')
            .any(|seg| seg.is_empty() || seg == "." || seg == "..")
        {
            return Err(format!(
                "{entry:?} has an empty, \".\" or \"..\" segment; write the path as sh would see it"
            ));
        }
    } else if entry.contains('/') {
        return Err(format!(
            "{entry:?} is a relative path; write an absolute path or a bare name"
        ));
    }
    Ok(())
}

/// Whether `word` (a command word) is matched by `entry`.
fn entry_matches(entry: &str, word: &str) -> bool {
    match (entry.starts_with('/'), word.starts_with('/')) {
        (true, true) => {
            if word[1..]
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
            {
                return false;
            }
            path_glob(entry, word)
        }
        (false, false) => !word.contains('/') && glob(entry, word),
        _ => false,
    }
}

/// `**` crosses segments; `*` stays inside one.
fn path_glob(pattern: &str, path: &str) -> bool {
    let p: Vec<&str> = pattern.split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    fn go(p: &[&str], s: &[&str]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some(&"**") => (0..=s.len()).any(|k| go(&p[1..], &s[k..])),
            Some(seg) => !s.is_empty() && glob(seg, s[0]) && go(&p[1..], &s[1..]),
        }
    }
    go(&p, &s)
}

/// Checks a command line against an allowlist. `Ok` means every simple command's executable
/// is allowlisted and nothing on the line could make `sh` run something else.
pub fn check_command(line: &str, allowlist: &[String]) -> Result<(), CommandRefusal> {
    let commands = split(line).map_err(|ShellRefusal { what, at }| CommandRefusal {
        reason: format!(
            "the command line has {what} at byte {at}; with tools.exec.security \"allowlist\" only plain commands joined by ;, &&, || and | run"
        ),
        executable: None,
    })?;
    if commands.is_empty() {
        return Err(CommandRefusal {
            reason: "the command line runs nothing".into(),
            executable: None,
        });
    }
    for c in &commands {
        let Some(word) = c.words.first() else {
            continue;
        };
        if let Some(ch) = c.first_word_special {
            let why = if ch == '=' {
                "an environment assignment".to_string()
            } else {
                format!("{ch:?}, which sh would expand")
            };
            return Err(CommandRefusal {
                reason: format!(
                    "the command word {word:?} has {why}; with tools.exec.security \"allowlist\" the executable must be written plainly"
                ),
                executable: Some(word.clone()),
            });
        }
        if NEVER.contains(&word.as_str()) {
            return Err(CommandRefusal {
                reason: format!(
                    "{word:?} is a shell keyword or a builtin that runs other code; it is never allowlisted"
                ),
                executable: Some(word.clone()),
            });
        }
        if !allowlist.iter().any(|e| entry_matches(e, word)) {
            return Err(CommandRefusal {
                reason: format!("{word:?} is not in the exec allowlist"),
                executable: Some(word.clone()),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn entries() {
        assert!(check_entry("/usr/bin/git").is_ok());
        assert!(check_entry("/opt/**").is_ok());
        assert!(check_entry("git").is_ok());
        for bad in [
            "",
            "bin/git",
            "/usr/../bin/sh",
            "/usr//bin",
            "git status",
            "a;b",
            "$X",
        ] {
            assert!(check_entry(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn matching() {
        assert!(entry_matches("/usr/bin/*", "/usr/bin/git"));
        assert!(!entry_matches("/usr/bin/*", "/usr/bin/x/y"));
        assert!(entry_matches("/opt/**", "/opt/a/b/c"));
        assert!(!entry_matches(
            "/usr/bin/*",
            "/usr/bin/../../workspace/evil"
        ));
        assert!(!entry_matches("/usr/bin/git", "git"));
        assert!(!entry_matches("git", "/usr/bin/git"));
        assert!(!entry_matches("git", "./git"));
        assert!(entry_matches("python3*", "python3.11"));
    }

    #[test]
    fn allowed_lines() {
        let a = list(&["ls", "git", "wc", "/usr/bin/head", "cd"]);
        for ok in [
            "ls -la",
            "git status && git log --oneline | /usr/bin/head -n 5",
            "cd sub; ls",
            "ls '*.txt' *.rs",
            "ls # a comment with $(rm -rf /)",
        ] {
            assert_eq!(check_command(ok, &a), Ok(()), "{ok:?}");
        }
    }
}
