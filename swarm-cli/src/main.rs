//! # swarm
//!
//! The `swarm` command line.
//!
//! # Layout
//!
//! - `main.rs`: the sandbox launcher hook (first thing: a worker's commands
//!   are confined by a second copy of this binary), argument parsing and
//!   dispatch.
//! - `ctx.rs`: the one context every command composes through, built once
//!   from the global options: the clock, the bus (Redis at `--redis-url`,
//!   `REDIS_URL` or `redis://127.0.0.1:6379`; in-process with `--memory`),
//!   the tier configuration (`--worker-tier`, `SWARM_WORKER_TIER`, …), the
//!   price table, the accountant, the Claude client and the Gemini shard
//!   pool; and `.env` (this folder's only), read before the arguments are
//!   parsed.
//! - `ops.rs`: the operations behind the MCP tools and their CLI twins.
//! - `mcp.rs`: `swarm mcp`, the MCP server over stdio.
//! - `status_cmd.rs`: `swarm status [--watch]` (the brief's status block) and `swarm monitor`.
//! - `findings_cmd.rs`: `swarm findings list|show|put|reindex`.
//! - `task_cmd.rs`: `swarm task push|list|apply`, `swarm halt`, `swarm resume`.
//! - `demo_cmd.rs`: `swarm demo`.
//! - `prompt_cmd.rs`: `swarm prompt coordinator|worker`.
//! - `gemini_cmd.rs`: `swarm gemini generate`.
//! - `claude_cmd.rs`: `swarm claude generate`.
//! - `shards_cmd.rs`: `swarm shards test`.
//! - `cost_cmd.rs`: `swarm cost quote|report|record|prices`.
//! - `librarian_cmd.rs`: `swarm librarian serve` (the daemon) and `swarm librarian ask`.
//! - `run_cmd.rs`: `swarm run GOAL` (plan, workers, synthesis, status, cost).
//! - `worker_cmd.rs`: `swarm worker run` (a worker process on the bus).
//! - `cc_book.rs`: Claude Code's calls booked in the ledger exactly once.
//! - `hook_cmd.rs`: `swarm hook EVENT` (Claude Code's hooks).
//! - `budget_cmd.rs`: `swarm budget set|show|clear`.
//! - `init_cmd.rs`: `swarm init claude-code [DIR]`.
//! - `statusline_cmd.rs`: `swarm statusline` (Claude Code's status line).
//! - `lazy_bus.rs`: a bus that connects on first use (`swarm mcp` without Redis).
//! - `otlp_cmd.rs`: `swarm otlp serve` (a local OTLP/HTTP receiver) and `swarm otlp import`
//!   (Claude Code's OpenTelemetry api_request events booked).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod budget_cmd;
mod cc_book;
mod claude_cmd;
mod cost_cmd;
mod ctx;
mod demo_cmd;
mod findings_cmd;
mod gemini_cmd;
mod hook_cmd;
mod init_cmd;
mod lazy_bus;
mod librarian_cmd;
mod mcp;
mod mcp_wire;
mod ops;
mod otlp_cmd;
mod prompt_cmd;
mod run_cmd;
mod serve;
mod shards_cmd;
mod status_cmd;
mod statusline_cmd;
mod task_cmd;
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
    /// Serve the swarm's tools over MCP on stdio (`claude mcp add swarm -- swarm mcp`).
    Mcp(mcp::McpArgs),
    /// Serve the swarm over HTTP: MCP at /mcp (Streamable HTTP), Prometheus
    /// /metrics, /healthz and /readyz; bearer tokens off loopback.
    Serve(Box<serve::ServeArgs>),
    /// Bearer tokens of `swarm serve`.
    #[command(subcommand)]
    Token(serve::TokenCmd),
    /// Read and write findings (the MCP tools' twins for shell-only agents).
    #[command(subcommand)]
    Findings(findings_cmd::FindingsCmd),
    /// Queue tasks and see the queues.
    #[command(subcommand)]
    Task(task_cmd::TaskCmd),
    /// Halt the swarm (writes `halt:reason`).
    Halt(task_cmd::HaltArgs),
    /// Clear the halt.
    Resume,
    /// Run the brief's example session on an in-process bus.
    Demo(demo_cmd::DemoArgs),
    /// Print a starter prompt for a Claude Code coordinator or worker.
    Prompt(prompt_cmd::PromptArgs),
    /// Run a goal: plan, workers in parallel, synthesis, status and cost.
    Run(Box<run_cmd::RunArgs>),
    /// Worker processes on the bus.
    #[command(subcommand)]
    Worker(worker_cmd::WorkerCmd),
    /// Claude Code hook: reads the hook payload on stdin (`swarm init claude-code` sets these up).
    Hook(hook_cmd::HookArgs),
    /// Caps on Claude Code's spend (per session, total).
    #[command(subcommand)]
    Budget(budget_cmd::BudgetCmd),
    /// Book Claude Code's OpenTelemetry api_request events.
    #[command(subcommand)]
    Otlp(otlp_cmd::OtlpCmd),
    /// Set a project up (`swarm init claude-code [DIR]`).
    #[command(subcommand)]
    Init(init_cmd::InitCmd),
    /// One status line for Claude Code's statusLine (reads its JSON on stdin; never fails).
    Statusline,
}

fn main() -> ExitCode {
    // First, before any thread: started as the sandbox launcher of a
    // worker's command, this process confines the command and exits here.
    swarmbus_agents::sandbox::launcher_hook();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(run()),
        Err(e) => ctx::fail("cannot start the async runtime", e),
    }
}

async fn run() -> ExitCode {
    // `.env` first (this folder's only), so that clap's `env = "REDIS_URL"`
    // sees what it sets; a provider base URL from it is named on stderr.
    ctx::load_dotenv();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
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
    if let Command::Mcp(args) = cli.command {
        return mcp::run(args, ctx).await;
    }
    if let Command::Serve(args) = cli.command {
        return serve::run(*args, ctx).await;
    }
    match cli.command {
        Command::Status(args) => status_cmd::run(args, &ctx).await,
        Command::Monitor(args) => status_cmd::monitor(args, &ctx).await,
        Command::Gemini(cmd) => gemini_cmd::run(cmd, &ctx).await,
        Command::Claude(cmd) => claude_cmd::run(cmd, &ctx).await,
        Command::Shards(cmd) => shards_cmd::run(cmd, &ctx).await,
        Command::Cost(cmd) => cost_cmd::run(cmd, &ctx).await,
        Command::Librarian(cmd) => librarian_cmd::run(cmd, &ctx).await,
        Command::Findings(cmd) => findings_cmd::run(cmd, &ctx).await,
        Command::Task(cmd) => task_cmd::run(cmd, &ctx).await,
        Command::Halt(args) => task_cmd::halt(args, &ctx).await,
        Command::Resume => task_cmd::resume(&ctx).await,
        Command::Demo(args) => demo_cmd::run(args, &ctx).await,
        Command::Prompt(args) => prompt_cmd::run(args, &ctx).await,
        Command::Mcp(_) | Command::Serve(_) => ExitCode::SUCCESS,
        Command::Token(cmd) => serve::token_run(cmd, &ctx).await,
        Command::Run(args) => run_cmd::run(*args, &ctx).await,
        Command::Worker(cmd) => worker_cmd::run(cmd, &ctx).await,
        Command::Hook(args) => hook_cmd::run(args, &ctx).await,
        Command::Budget(cmd) => budget_cmd::run(cmd, &ctx).await,
        Command::Otlp(cmd) => otlp_cmd::run(cmd, ctx).await,
        Command::Init(cmd) => init_cmd::run(cmd),
        Command::Statusline => statusline_cmd::run(&ctx).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};
    use proptest::prelude::*;

    use super::Cli;

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn out_of_range_durations_and_counts_are_refused() {
        for args in [
            &["swarm", "monitor", "--seconds", "-1"][..],
            &["swarm", "monitor", "--seconds", "18446744073709551616"],
            &["swarm", "status", "--watch", "--interval", "0"],
            &["swarm", "status", "--shards", "4294967295"],
            &["swarm", "librarian", "ask", "--via-bus", "99999999999", "q"],
            &["swarm", "findings", "list", "--limit", "1000"],
            &["swarm", "demo", "--timeout", "18446744073709551615"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
        // A wait too long for the clock saturates at run time (a test of
        // status_cli runs it).
        assert!(
            Cli::try_parse_from(["swarm", "monitor", "--seconds", "18446744073709551615"]).is_ok()
        );
    }

    /// Every `swarm …` command line of the Claude Code guide and the README
    /// parses as written.
    #[test]
    fn the_commands_of_the_guide_and_the_readme_parse() {
        let mut seen = 0;
        for doc in [
            include_str!("../../docs/claude-code.md"),
            include_str!("../../README.md"),
        ] {
            for block in doc.split("```sh\n").skip(1) {
                let block = block.split("```").next().unwrap_or_default();
                for line in block.lines() {
                    let Some(cmd) = line.trim().strip_prefix("swarm ") else {
                        continue;
                    };
                    let cmd = cmd.split("  #").next().unwrap_or_default();
                    let argv = shell_words(cmd);
                    let parsed = Cli::try_parse_from(
                        std::iter::once("swarm".to_owned()).chain(argv.iter().cloned()),
                    );
                    assert!(parsed.is_ok(), "{line}: {:?}", parsed.err());
                    seen += 1;
                }
            }
        }
        assert!(seen > 15, "only {seen} commands found");
    }

    /// Splits a command line on spaces outside quotes (enough for the docs).
    fn shell_words(s: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut quote: Option<char> = None;
        let mut any = false;
        for c in s.chars() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), c) => cur.push(c),
                (None, '"' | '\'') => {
                    quote = Some(c);
                    any = true;
                }
                (None, ' ') => {
                    if any || !cur.is_empty() {
                        out.push(std::mem::take(&mut cur));
                    }
                    any = false;
                }
                (None, c) => cur.push(c),
            }
        }
        if any || !cur.is_empty() {
            out.push(cur);
        }
        out
    }

    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("status".to_owned()),
            Just("monitor".to_owned()),
            Just("findings".to_owned()),
            Just("list".to_owned()),
            Just("show".to_owned()),
            Just("put".to_owned()),
            Just("task".to_owned()),
            Just("push".to_owned()),
            Just("halt".to_owned()),
            Just("resume".to_owned()),
            Just("demo".to_owned()),
            Just("prompt".to_owned()),
            Just("coordinator".to_owned()),
            Just("worker".to_owned()),
            Just("mcp".to_owned()),
            Just("librarian".to_owned()),
            Just("ask".to_owned()),
            Just("serve".to_owned()),
            Just("--seconds".to_owned()),
            Just("--watch".to_owned()),
            Just("--interval".to_owned()),
            Just("--count".to_owned()),
            Just("--limit".to_owned()),
            Just("--shards".to_owned()),
            Just("--json".to_owned()),
            Just("--memory".to_owned()),
            Just("--redis-url".to_owned()),
            Just("--via-bus".to_owned()),
            Just("--timeout".to_owned()),
            Just("--title".to_owned()),
            Just("--".to_owned()),
            Just("-".to_owned()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            ".*",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// No argument vector makes parsing (with its range checks) panic;
        /// what parses carries only bounded durations and counts.
        #[test]
        fn no_argument_vector_panics(args in proptest::collection::vec(word(), 0..8)) {
            let argv = std::iter::once("swarm".to_owned()).chain(args);
            if let Ok(super::Cli { command: super::Command::Status(s), .. }) = Cli::try_parse_from(argv) {
                let _ = s.config(&swarmbus_cost::Tiers::default());
            }
        }
    }
}
