//! `swarm otlp import FILE…`: books the `api_request` events of OTLP/HTTP
//! JSON log bodies (as Claude Code exports them with
//! `OTEL_LOGS_EXPORTER=otlp`, `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`), each
//! call once: a call a hook already booked from a transcript is not booked
//! again, and where both report it and disagree, that is said.

use std::process::ExitCode;

use swarmbus_claude_code::otlp;

use crate::cc_book::{Booked, Booker};
use crate::ctx::{Ctx, fail};

/// `swarm otlp`.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum OtlpCmd {
    /// Book the api_request events of OTLP/HTTP JSON logs bodies (files).
    Import {
        /// The files (`POST /v1/logs` bodies).
        files: Vec<std::path::PathBuf>,
    },
}

/// Runs `swarm otlp`.
pub(crate) async fn run(cmd: OtlpCmd, ctx: &Ctx) -> ExitCode {
    let OtlpCmd::Import { files } = cmd;
    let bus = match ctx.open().await {
        Ok(b) => b,
        Err(code) => return code,
    };
    let booker = match Booker::new(bus, ctx.clock()) {
        Ok(b) => b,
        Err(e) => return fail("otlp import", e),
    };
    let mut all = Booked::default();
    for f in files {
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) => return fail("otlp import", format!("{}: {e}", f.display())),
        };
        let events = match otlp::parse_logs(&text) {
            Ok(e) => e,
            Err(e) => return fail("otlp import", format!("{}: {e}", f.display())),
        };
        for s in &events.skipped {
            eprintln!("swarm: otlp import: {}: skipped an event: {s}", f.display());
        }
        match booker.book(&events.calls).await {
            Ok(b) => all.merge(b),
            Err(e) => return fail("otlp import", e),
        }
    }
    all.warn();
    println!(
        "booked {} calls (${}), {} already booked, {} without a request id",
        all.booked, all.usd, all.already, all.unkeyed
    );
    ExitCode::SUCCESS
}
