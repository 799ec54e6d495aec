//! `swarm cost …` (filled by the cost issue).

use std::process::ExitCode;

use crate::ctx::Ctx;

/// Cost commands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum CostCmd {}

/// Runs a cost command.
pub(crate) async fn run(cmd: CostCmd, _ctx: &Ctx) -> ExitCode {
    match cmd {}
}
