//! `swarm status`.

use std::process::ExitCode;

use crate::ctx::Ctx;

/// Options of `swarm status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// Print JSON instead of the status block.
    #[arg(long)]
    json: bool,
}

/// Prints the status.
pub(crate) async fn run(args: StatusArgs, ctx: &Ctx) -> ExitCode {
    let _ = (args.json, ctx);
    ExitCode::SUCCESS
}
