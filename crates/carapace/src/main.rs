//! The `carapace` command (docs/getting-started.md walks through it; docs/errors.md has the
//! codes and exit codes).

mod cli;
mod context;
mod output;

use clap::Parser;

fn main() {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => std::process::exit(cli::usage_error(e)),
    };
    init_tracing(cli.verbose);
    let json = cli.json;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let env = carapace_policy::ErrorEnvelope::new(
                carapace_policy::ErrorCode::Internal,
                format!("cannot start the async runtime: {e}"),
            );
            std::process::exit(output::emit_error(json, &env));
        }
    };
    let code = match runtime.block_on(cli::run(cli)) {
        Ok(()) => 0,
        Err(env) => output::emit_error(json, &env),
    };
    std::process::exit(code);
}

/// Logs go to stderr; `RUST_LOG` overrides, `-v` raises the default level.
fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
