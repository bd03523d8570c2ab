//! `carapace doctor [--fix]`: finds files in the media dir, the agent workspaces, the sandbox
//! directories and `extraRoots` that an outbound send would refuse, says why for each, and with
//! `--fix` adds the read bits that are missing (`chmod g+r,o+r`).
//!
//! Never widened: files that look like secrets (keys, `.env`, tokens, credentials…) and
//! anything under the state dir's `secrets/`; hardlinked files (a chmod would change the other
//! name too) and files owned by another user are reported, never changed. The walk goes
//! through carapace-fs and never follows a symlink.
//!
//! The scan is `carapace_media::doctor::scan`, the same one the web page's doctor view runs;
//! this file only prints it. The walk is bounded: at most [`MAX_DEPTH`] directory levels below
//! each root and [`MAX_ENTRIES`] entries in all. A directory past a bound, or one that cannot be listed, is
//! reported with where and why, and the command then fails with `SCAN_INCOMPLETE` (exit 3)
//! after printing the findings it has: a partial scan never reads as a clean one.

use carapace_media::doctor::{Fix, MAX_DEPTH, MAX_ENTRIES, scan};
use carapace_policy::{ErrorCode, ErrorEnvelope};
use clap::Args;
use serde_json::{Value, json};

use super::Global;
use crate::context::load_config;
use crate::output::emit_ok;

/// `carapace doctor`
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Fix the modes that can be fixed safely (adds group/others read; never on secrets).
    #[arg(long)]
    fix: bool,
}

/// Runs `doctor`.
pub async fn run(args: DoctorArgs, g: &Global) -> Result<(), ErrorEnvelope> {
    let config = load_config(g.config.as_deref(), true)?;
    let fix = if args.fix { Fix::All } else { Fix::None };
    let uid = rustix::process::geteuid().as_raw();
    let r = tokio::task::spawn_blocking(move || scan(&config, &fix, uid))
        .await
        .map_err(|e| {
            ErrorEnvelope::new(
                ErrorCode::Internal,
                format!("the doctor scan failed unexpectedly (a bug): {e}"),
            )
        })?;
    let (findings, fixed, scanned, stopped) = (&r.findings, r.fixed, r.scanned, &r.stopped);
    let allow_owner_only = r.allow_owner_only;
    let mut human = String::new();
    for f in findings {
        // The reader's message names the file already; say it once.
        let shown = f.path.display().to_string();
        if f.reason.contains(&shown) {
            human.push_str(&format!("{} [{}] {}", f.code, f.root, f.reason));
        } else {
            human.push_str(&format!("{} [{}] {shown}: {}", f.code, f.root, f.reason));
        }
        match (&f.fixed_mode, &f.not_fixed) {
            (Some(m), _) => human.push_str(&format!("\n    fixed: now {m}")),
            (None, Some(why)) => human.push_str(&format!("\n    not fixed: {why}")),
            (None, None) => {
                human.push_str("\n    fix: chmod 644 it, or run `carapace doctor --fix`")
            }
        }
        human.push('\n');
    }
    if allow_owner_only {
        human.push_str("note: tools.message.outboundMediaPolicy.allowOwnerOnly is true, so owner-only files are sent as they are\n");
    }
    human.push_str(&format!(
        "{} file(s) an outbound send would refuse, {} fixed, {} entries scanned in {} root(s)",
        findings.len(),
        fixed,
        scanned,
        r.roots.len()
    ));
    let report =
        json!({"findings": findings, "fixed": fixed, "scanned": scanned, "roots": r.roots});
    let unfixed = r.unfixed();
    if stopped.is_empty() && unfixed == 0 {
        emit_ok(g.json, report, &human);
        return Ok(());
    }
    if stopped.is_empty() {
        // Findings left: a non-zero exit, so a script (or CI) notices.
        if !g.json {
            emit_ok(false, Value::Null, &human);
        }
        let mut env = ErrorEnvelope::new(
            ErrorCode::FilesNotSendable,
            format!("{unfixed} file(s) an outbound send would refuse are left ({fixed} fixed)"),
        )
        .with_hint(if args.fix {
            "the files above need a change carapace does not make for you (see `not fixed:` for each)"
        } else {
            "run `carapace doctor --fix` to add the missing read bits where that is safe; the rest say what to do"
        })
        .with_detail("left", unfixed)
        .with_detail("fixed", fixed);
        // The findings are in the report printed above; the JSON envelope carries them.
        if let (true, Value::Object(m)) = (g.json, report) {
            for (k, v) in m {
                env = env.with_detail(&k, v);
            }
        }
        return Err(env);
    }
    // An incomplete scan is not a clean bill of health: report what was found, say where the
    // scan stopped, and exit non-zero (SCAN_INCOMPLETE).
    if !g.json {
        human.push_str("\nthe scan is INCOMPLETE:");
        for s in stopped {
            human.push_str(&format!(
                "\n  [{}] {}: {}",
                s.root,
                s.path.display(),
                s.reason
            ));
        }
        emit_ok(false, Value::Null, &human);
    }
    let mut env = ErrorEnvelope::new(
        ErrorCode::ScanIncomplete,
        format!(
            "doctor did not scan everything: {} place(s) were skipped (depth bound {MAX_DEPTH}, entry bound {MAX_ENTRIES}, or unreadable)",
            stopped.len()
        ),
    )
    .with_hint("the findings above cover what was scanned; fix or move the deep or unreadable trees and run doctor again");
    env = env.with_detail(
        "stopped",
        serde_json::to_value(stopped).unwrap_or(Value::Null),
    );
    if let Value::Object(m) = report {
        for (k, v) in m {
            env = env.with_detail(&k, v);
        }
    }
    Err(env)
}
