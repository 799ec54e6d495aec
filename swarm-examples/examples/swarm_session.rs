//! The brief's complete example session, with a planning coordinator and
//! workers that think: the coordinator model plans three independent tasks,
//! three agent workers run them in parallel with sandboxed tools on this
//! repository, write findings and notify `channel:findings`; the coordinator
//! synthesises an answer citing them. Every call is priced in the ledger.
//! The status block is printed before and after.
//!
//! `cargo run -p swarm-examples --example swarm_session` (offline, scripted
//! models); `REDIS_URL` runs it on Redis.

use std::sync::Arc;

use swarm_examples::{
    AnyError, example_accountant, example_bus, model_run, print_run, repo_root, run_models,
};
use swarmbus_agents::status::{StatusConfig, SwarmStatus};
use swarmbus_cost::ReportFilter;

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let bus = example_bus().await?;
    let status = StatusConfig::default();
    println!("{}", SwarmStatus::snapshot(&*bus, &status).await?.render());
    let accountant = example_accountant(&bus)?;
    let (coordinator, worker) = run_models()?;
    let since = chrono::Utc::now();
    let report = model_run(
        Arc::clone(&bus),
        coordinator,
        worker,
        Arc::new(accountant.clone()),
        &repo_root(),
        3,
        "Summarise this repository: its crates, public traits and documentation",
    )
    .await?;
    print_run(&report);
    let cost = accountant
        .report(&ReportFilter::all().between(Some(since), None))
        .await?;
    println!("\n{}", cost.render());
    println!("{}", SwarmStatus::snapshot(&*bus, &status).await?.render());
    if !report.failed.is_empty() {
        return Err("some tasks were stopped".into());
    }
    Ok(())
}
