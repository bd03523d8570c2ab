//! Command-line surface. One file per command group; this file only lists them.
//!
//! To add a command group: a file here with a clap `Args`/`Subcommand` type and an
//! `async fn run(args, &Global) -> Result<(), ErrorEnvelope>`, one variant in [`Command`] and
//! one arm in [`run`].

mod agent;
mod channels;
mod chat;
mod config;
mod doctor;
mod gateway;
mod mcp;
mod media;
mod message;
mod pairing;
mod paths;
mod sandbox;
mod sessions;
mod tool;
mod usage;

pub use usage::usage_error;

use std::path::PathBuf;

use carapace_policy::ErrorEnvelope;
use clap::{Parser, Subcommand};

/// carapace: per-session sandboxes, safe media and outbound channels for AI agents.
#[derive(Debug, Parser)]
#[command(
    name = "carapace",
    version,
    about = "Per-session sandboxes, safe media and outbound channels for AI agents",
    propagate_version = true
)]
pub struct Cli {
    /// Config file (else $CARAPACE_CONFIG, else <state>/carapace.json5; missing = defaults).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON (the {"ok": ...} envelope) on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// More log output on stderr (-v info, -vv debug; RUST_LOG overrides).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// Options every command sees.
#[derive(Debug, Clone)]
pub struct Global {
    /// `--config`
    pub config: Option<PathBuf>,
    /// `--json`
    pub json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Validate or show the configuration.
    #[command(subcommand)]
    Config(config::ConfigCmd),
    /// Start the gateway on the embedded defaults; prints the address, token and MCP setup.
    Up(gateway::UpArgs),
    /// Run the gateway (`carapace gateway run [--bind ADDR]`).
    #[command(subcommand)]
    Gateway(gateway::GatewayCmd),
    /// MCP server on stdio (for MCP clients that start their servers).
    Mcp(mcp::McpArgs),
    /// Run a tool, in-process or on a running gateway with --gateway (`carapace tool invoke exec --args '{"command": "ls"}'`).
    #[command(subcommand)]
    Tool(tool::ToolCmd),
    /// Sandboxes: list, explain (policy, why, mounts, backend), recreate.
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCmd),
    /// Send text and files to a channel (`send`, `upload-file`).
    #[command(subcommand)]
    Message(message::MessageCmd),
    /// The media store: save a file or URL (0644), list, prune.
    #[command(subcommand)]
    Media(media::MediaCmd),
    /// Find files an outbound send would refuse, say why, fix modes with --fix.
    Doctor(doctor::DoctorArgs),
    /// Who may DM the bot: pending pairing requests, approve or reject a code.
    #[command(subcommand)]
    Pairing(pairing::PairingCmd),
    /// Receiving channels: connection, cursor, last error (`carapace channels status`).
    #[command(subcommand)]
    Channels(channels::ChannelsCmd),
    /// One turn of carapace's agent: prints the reply and what the tools did.
    Agent(agent::AgentArgs),
    /// A conversation with carapace's agent on the terminal (streamed; /new, /stop, /exit).
    Chat(chat::ChatArgs),
    /// The agent's sessions: list, show a transcript, reset a key.
    #[command(subcommand)]
    Sessions(sessions::SessionsCmd),
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), ErrorEnvelope> {
    let global = Global {
        config: cli.config,
        json: cli.json,
    };
    match cli.command {
        Command::Config(cmd) => config::run(cmd, &global).await,
        Command::Up(args) => gateway::up(args, &global).await,
        Command::Gateway(cmd) => gateway::run(cmd, &global).await,
        Command::Mcp(args) => mcp::run(args, &global).await,
        Command::Tool(cmd) => tool::run(cmd, &global).await,
        Command::Sandbox(cmd) => sandbox::run(cmd, &global).await,
        Command::Message(cmd) => message::run(cmd, &global).await,
        Command::Media(cmd) => media::run(cmd, &global).await,
        Command::Doctor(args) => doctor::run(args, &global).await,
        Command::Pairing(cmd) => pairing::run(cmd, &global).await,
        Command::Channels(cmd) => channels::run(cmd, &global).await,
        Command::Agent(args) => agent::run(args, &global).await,
        Command::Chat(args) => chat::run(args, &global).await,
        Command::Sessions(cmd) => sessions::run(cmd, &global).await,
    }
}
