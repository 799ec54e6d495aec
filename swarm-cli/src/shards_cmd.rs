//! `swarm shards test`: the shard test protocol.
//!
//! Probes every shard of `GEMINI_API_KEY_SHARD1..N` (project labels and
//! limits from `GEMINI_SHARD<N>_PROJECT`, `_PER_DAY`, `_PER_MINUTE`) with a
//! minimal request, records each one's state and quota in the swarm's
//! ledger (`librarian:shard<N>:status` / `:quota` on the bus), and prints
//! each shard's state, quota and latency and the operational fraction.
//! Exits 1 when fewer than `--require` percent (default 80) are
//! operational: paper-like work must not start.
//!
//! `--json` prints one object:
//! `{"model", "tested_at", "shards": [{"shard", "project", "status",
//! "operational", "probed", "quota_remaining", "latency_ms", "next_usable",
//! "error": null | {"kind", "message"}}], "operational", "total",
//! "operational_fraction", "required_fraction", "ready"}`; a failure before
//! any probe is `{"error": {"kind", "message"}}`.

use std::process::ExitCode;

use serde_json::json;
use swarmbus_gemini::ShardTestReport;
use swarmbus_gemini::client::DEFAULT_MODEL;
use swarmbus_gemini::probe::PAPER_WORK_MIN_PERCENT;

use crate::ctx::{BusUse, Ctx};

/// Shard commands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum ShardsCmd {
    /// Test every shard with a minimal request and report which work.
    Test(TestArgs),
}

/// `swarm shards test`.
#[derive(Debug, clap::Args)]
pub(crate) struct TestArgs {
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// The model to probe.
    #[arg(long, env = "GEMINI_MODEL", default_value = DEFAULT_MODEL)]
    model: String,
    /// The operational percentage required to exit 0.
    #[arg(long, default_value_t = PAPER_WORK_MIN_PERCENT, value_parser = clap::value_parser!(u8).range(0..=100))]
    require: u8,
}

/// Runs a shard command.
pub(crate) async fn run(cmd: ShardsCmd, ctx: &Ctx) -> ExitCode {
    match cmd {
        ShardsCmd::Test(args) => test(args, ctx).await,
    }
}

fn failure(json_out: bool, kind: &str, message: String) -> ExitCode {
    if json_out {
        println!("{}", json!({"error": {"kind": kind, "message": message}}));
        ExitCode::FAILURE
    } else {
        crate::ctx::fail("shards test", format!("{kind}: {message}"))
    }
}

async fn test(args: TestArgs, ctx: &Ctx) -> ExitCode {
    let shards = match ctx.gemini_shards() {
        Ok(s) if s.is_empty() => {
            return failure(
                args.json,
                "config",
                "no shard configured: set GEMINI_API_KEY_SHARD1, GEMINI_API_KEY_SHARD2, …".into(),
            );
        }
        Ok(s) => s,
        Err(e) => return failure(args.json, e.kind().as_str(), e.to_string()),
    };
    let bus = match ctx.bus(BusUse::ONE_SHOT).await {
        Ok(b) => b,
        Err(e) => return failure(args.json, "ledger", e.to_string()),
    };
    // Without the price table the probe still runs, without lifecycle checks.
    let pool = match ctx.shard_pool(shards, &args.model, bus, ctx.prices().ok()) {
        Ok(p) => p,
        Err(e) => return failure(args.json, e.kind().as_str(), e.to_string()),
    };
    let report = match pool.test_shards().await {
        Ok(r) => r,
        Err(e) => return failure(args.json, e.kind().as_str(), e.to_string()),
    };
    let ready = report.meets(args.require);
    if args.json {
        println!("{}", report_json(&report, args.require, ready));
    } else {
        print_report(&report, args.require, ready);
    }
    if ready {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn report_json(report: &ShardTestReport, require: u8, ready: bool) -> serde_json::Value {
    let shards: Vec<serde_json::Value> = report
        .shards
        .iter()
        .map(|s| {
            json!({
                "shard": s.shard.get(),
                "project": s.project,
                "status": s.status.as_str(),
                "operational": s.operational,
                "probed": s.probed,
                "quota_remaining": s.remaining_today,
                "latency_ms": s.latency.map(|d| d.as_millis() as u64),
                "next_usable": s.next_usable.map(|t| t.to_rfc3339()),
                "error": s.error_kind.map(|k| json!({
                    "kind": k.as_str(),
                    "message": s.error.clone().unwrap_or_default(),
                })),
            })
        })
        .collect();
    json!({
        "model": report.model,
        "tested_at": report.tested_at.to_rfc3339(),
        "shards": shards,
        "operational": report.operational(),
        "total": report.total(),
        "operational_fraction": report.operational_fraction(),
        "required_fraction": f64::from(require) / 100.0,
        "ready": ready,
    })
}

fn print_report(report: &ShardTestReport, require: u8, ready: bool) {
    println!(
        "Shard test ({}): {}/{} operational ({:.0}%)",
        report.model,
        report.operational(),
        report.total(),
        report.operational_fraction() * 100.0
    );
    for s in &report.shards {
        let quota = s
            .remaining_today
            .map_or_else(|| "quota ?".to_owned(), |q| format!("quota {q}"));
        let latency = s
            .latency
            .map_or_else(|| "-".to_owned(), |d| format!("{} ms", d.as_millis()));
        let project = s
            .project
            .as_deref()
            .map(|p| format!(" [{p}]"))
            .unwrap_or_default();
        let mut line = format!(
            "  shard{}{project}  {:<9}  {quota:<11}  {latency}",
            s.shard,
            s.status.as_str()
        );
        if let Some(t) = s.next_usable {
            line.push_str(&format!("  next usable {}", t.to_rfc3339()));
        }
        if let (Some(k), Some(e)) = (s.error_kind, &s.error) {
            line.push_str(&format!("  {k}: {e}"));
        }
        println!("{line}");
    }
    if ready {
        println!("Ready: at least {require}% of shards are operational.");
    } else {
        println!(
            "NOT READY: fewer than {require}% of shards are operational; do not start paper work."
        );
    }
}
