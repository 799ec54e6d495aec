//! # swarm
//!
//! The `swarm` command line.
//!
//! # Layout
//!
//! - `main.rs`: argument parsing and dispatch.
//! - `ctx.rs`: what every command shares: the bus (Redis when `REDIS_URL` is set,
//!   else in-memory) and the environment (`.env`).
//! - `status_cmd.rs`: `swarm status` (the brief's status block) and `swarm monitor`.
//! - `gemini_cmd.rs`: `swarm gemini generate`.
//! - `shards_cmd.rs`: `swarm shards test`.
//! - `cost_cmd.rs`: `swarm cost quote` and `swarm cost report`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cost_cmd;
mod ctx;
mod gemini_cmd;
mod shards_cmd;
mod status_cmd;

/// Run and inspect a swarm of LLM agents sharing a Redis bus.
#[derive(Debug, Parser)]
#[command(name = "swarm", version, about)]
struct Cli {
    #[command(flatten)]
    ctx: ctx::CtxArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the swarm status block (or JSON).
    Status(status_cmd::StatusArgs),
    /// Print every message on the swarm's channels as it arrives.
    Monitor(status_cmd::MonitorArgs),
    /// Call Gemini directly.
    #[command(subcommand)]
    Gemini(gemini_cmd::GeminiCmd),
    /// Librarian shard operations.
    #[command(subcommand)]
    Shards(shards_cmd::ShardsCmd),
    /// Price calls and report spend.
    #[command(subcommand)]
    Cost(cost_cmd::CostCmd),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let ctx = ctx::Ctx::new(cli.ctx);
    match cli.command {
        Command::Status(args) => status_cmd::run(args, &ctx).await,
        Command::Monitor(args) => status_cmd::monitor(args, &ctx).await,
        Command::Gemini(cmd) => gemini_cmd::run(cmd, &ctx).await,
        Command::Shards(cmd) => shards_cmd::run(cmd, &ctx).await,
        Command::Cost(cmd) => cost_cmd::run(cmd, &ctx).await,
    }
}
