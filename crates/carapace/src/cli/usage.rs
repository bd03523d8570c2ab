//! A command line clap cannot parse (a typo, a missing argument): with `--json` the error
//! envelope on stdout like every other failure (`BAD_REQUEST`, exit 2, docs/errors.md);
//! without it clap's own text on stderr, with the same exit code. `--help` and `--version`
//! print as usual and exit 0.

use carapace_policy::{ErrorCode, ErrorEnvelope};
use clap::error::{ContextKind, ContextValue, ErrorKind};

/// Reports a parse error and returns the exit code.
pub fn usage_error(e: clap::Error) -> i32 {
    let wants_json = std::env::args()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json");
    usage_error_for(e, wants_json)
}

/// [`usage_error`] with the `--json` choice made by the caller.
pub fn usage_error_for(e: clap::Error, json: bool) -> i32 {
    let is_display = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    if is_display || !json {
        let _ = e.print();
        return if is_display {
            0
        } else {
            ErrorCode::BadRequest.exit_code()
        };
    }
    crate::output::emit_error(true, &envelope(&e))
}

/// The envelope of a parse error: clap's first line as the message, its tip and usage line
/// as the hint, the kind and the offending argument as details.
pub fn envelope(e: &clap::Error) -> ErrorEnvelope {
    let text = e.render().to_string();
    // clap's first paragraph (a missing argument puts the arguments on the next lines).
    let first: Vec<&str> = text
        .lines()
        .map(str::trim)
        .skip_while(|l| l.is_empty())
        .take_while(|l| !l.is_empty())
        .collect();
    let message = if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        // clap's answer here is the whole help text: say what is missing instead.
        "a subcommand is missing".to_string()
    } else {
        match first.join(" ").trim_start_matches("error: ") {
            "" => "invalid command line".to_string(),
            m => m.to_string(),
        }
    };
    let tips: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("tip: ") || l.starts_with("Usage: "))
        .collect();
    let mut hint = tips.join("; ");
    if !hint.is_empty() {
        hint.push_str("; ");
    }
    hint.push_str("see `carapace --help`");
    let mut env = ErrorEnvelope::new(ErrorCode::BadRequest, message)
        .with_hint(hint)
        .with_detail("kind", format!("{:?}", e.kind()));
    if let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) {
        env = env.with_detail("argument", arg.clone());
    }
    if let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidSubcommand) {
        env = env.with_detail("argument", arg.clone());
    }
    env
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use clap::Parser as _;

    use super::*;

    #[test]
    fn a_typo_is_bad_request_with_the_suggestion() {
        let e = crate::cli::Cli::try_parse_from(["carapace", "--json", "config", "valdate"])
            .unwrap_err();
        let env = envelope(&e);
        assert_eq!(env.code, ErrorCode::BadRequest);
        assert!(env.message.contains("valdate"), "{}", env.message);
        assert!(env.hint.unwrap().contains("validate"));
    }

    #[test]
    fn a_missing_subcommand_is_said_so() {
        let e = crate::cli::Cli::try_parse_from(["carapace", "--json", "sandbox"]).unwrap_err();
        let env = envelope(&e);
        assert_eq!(env.message, "a subcommand is missing");
        assert!(env.hint.unwrap().contains("Usage: carapace sandbox"));
    }

    #[test]
    fn a_missing_argument_is_named_in_the_message() {
        let e = crate::cli::Cli::try_parse_from([
            "carapace",
            "--json",
            "message",
            "upload-file",
            "--target",
            "user:me",
        ])
        .unwrap_err();
        let env = envelope(&e);
        assert!(env.message.contains("--file-path"), "{}", env.message);
    }
}
