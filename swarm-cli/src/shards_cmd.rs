//! `swarm shards …` (filled by the Gemini issue).

use std::process::ExitCode;

use crate::ctx::Ctx;

/// Shard commands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ShardsCmd {}

/// Runs a shard command.
pub(crate) async fn run(cmd: ShardsCmd, _ctx: &Ctx) -> ExitCode {
    match cmd {}
}
