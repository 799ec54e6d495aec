//! `swarm gemini …` (filled by the Gemini issue).

use std::process::ExitCode;

use crate::ctx::Ctx;

/// Gemini commands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum GeminiCmd {}

/// Runs a Gemini command.
pub(crate) async fn run(cmd: GeminiCmd, _ctx: &Ctx) -> ExitCode {
    match cmd {}
}
