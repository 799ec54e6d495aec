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
//! - `claude_cmd.rs`: `swarm claude generate`.
//! - `shards_cmd.rs`: `swarm shards test`.
//! - `cost_cmd.rs`: `swarm cost quote` and `swarm cost report`.
//! - `librarian_cmd.rs`: `swarm librarian serve` (the daemon) and `swarm librarian ask`.
//! - `run_cmd.rs`: `swarm run GOAL` (plan, workers, synthesis, status, cost).
//! - `worker_cmd.rs`: `swarm worker run` (a worker process on the bus).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod claude_cmd;
mod cost_cmd;
mod ctx;
mod gemini_cmd;
mod librarian_cmd;
mod run_cmd;
mod shards_cmd;
mod status_cmd;
mod worker_cmd;

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
    /// Call Claude (the Messages API) directly.
    #[command(subcommand)]
    Claude(claude_cmd::ClaudeCmd),
    /// Librarian shard operations.
    #[command(subcommand)]
    Shards(shards_cmd::ShardsCmd),
    /// Price calls and report spend.
    #[command(subcommand)]
    Cost(cost_cmd::CostCmd),
    /// Answer questions over the swarm's findings.
    #[command(subcommand)]
    Librarian(librarian_cmd::LibrarianCmd),
    /// Run a goal: plan, workers in parallel, synthesis, status and cost.
    Run(Box<run_cmd::RunArgs>),
    /// Worker processes on the bus.
    #[command(subcommand)]
    Worker(worker_cmd::WorkerCmd),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr, filtered by RUST_LOG (default: warnings). Keys never
    // reach them: every crate holds them as secrets.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let ctx = ctx::Ctx::new(cli.ctx);
    match cli.command {
        Command::Status(args) => status_cmd::run(args, &ctx).await,
        Command::Monitor(args) => status_cmd::monitor(args, &ctx).await,
        Command::Gemini(cmd) => gemini_cmd::run(cmd, &ctx).await,
        Command::Claude(cmd) => claude_cmd::run(cmd, &ctx).await,
        Command::Shards(cmd) => shards_cmd::run(cmd, &ctx).await,
        Command::Cost(cmd) => cost_cmd::run(cmd, &ctx).await,
        Command::Librarian(cmd) => librarian_cmd::run(cmd, &ctx).await,
        Command::Run(args) => run_cmd::run(*args, &ctx).await,
        Command::Worker(cmd) => worker_cmd::run(cmd, &ctx).await,
    }
}
