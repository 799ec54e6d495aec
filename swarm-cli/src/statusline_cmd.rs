//! `swarm statusline`: Claude Code's `statusLine` command. Reads the status
//! line JSON on stdin (its `session_id` is used when present) and prints one
//! line: findings, active workers, spend per tier and the worker share
//! against the 90 % target. It never fails: a value it cannot read (Redis
//! down, a bad number) is printed as `?` and the exit status is 0, so the
//! status line never shows an error instead of what is known.

use std::io::Read as _;
use std::process::ExitCode;
use std::time::Duration;

use swarmbus_core::Efficiency;

use crate::ctx::{BusUse, Ctx};

/// How long the whole line may take to gather.
const BUDGET: Duration = Duration::from_millis(400);

fn usd(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_finite() && x >= 0.0 => format!("${x:.4}"),
        _ => "$?".to_owned(),
    }
}

/// Prints the line.
pub(crate) async fn run(ctx: &Ctx) -> ExitCode {
    // The input is only informative; never wait on a terminal.
    let mut input = String::new();
    let _ = std::io::stdin().take(1 << 20).read_to_string(&mut input);
    let tiers = ctx.tiers();
    let (c, w, l) = (
        tiers.coordinator.name.clone(),
        tiers.worker.name.clone(),
        tiers.librarian.name.clone(),
    );
    let gathered = tokio::time::timeout(BUDGET, async {
        let bus = ctx.bus(BusUse::ONE_SHOT).await.ok()?;
        let findings = bus.count_findings().await.ok();
        let workers = bus.count_alive_workers().await.ok();
        let costs = bus.costs(&[c.clone(), w.clone(), l.clone()]).await.ok();
        Some((findings, workers, costs))
    })
    .await
    .ok()
    .flatten();
    let (findings, workers, costs) = gathered.unwrap_or((None, None, None));
    let cost = |i: usize| costs.as_ref().and_then(|v| v.get(i).copied());
    let n = |v: Option<u64>| v.map_or("?".to_owned(), |n| n.to_string());
    let share = match (cost(0), cost(1)) {
        (Some(a), Some(b)) if a.is_finite() && b.is_finite() && a >= 0.0 && b >= 0.0 => {
            let e = Efficiency::from_costs(a, b);
            format!("{} {}% (target 90%)", w.display_name(), e.worker)
        }
        _ => format!("{} ?% (target 90%)", w.display_name()),
    };
    println!(
        "🐝 {} findings · {} {}s active · {} {} | {} {} · {}",
        n(findings),
        n(workers),
        w.display_name(),
        c.display_name(),
        usd(cost(0)),
        w.display_name(),
        usd(cost(1)),
        share
    );
    ExitCode::SUCCESS
}
