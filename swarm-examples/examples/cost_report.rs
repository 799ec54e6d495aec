//! The cost report of a model-backed run: every call priced from the price
//! table, the worker share of calls, tokens and dollars against the 90 %
//! target, the savings against running every call on the coordinator model,
//! and what the prompt cache's reads cost instead of fresh input.
//!
//! `cargo run -p swarm-examples --example cost_report`

use std::sync::Arc;

use swarm_examples::{
    AnyError, Counted, example_accountant, example_bus, model_run, repo_root, run_models,
};
use swarmbus_cost::ReportFilter;

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let bus = example_bus().await?;
    let accountant = example_accountant(&bus)?;
    let (coordinator, worker) = run_models()?;
    let (coordinator, worker) = (Counted::new(coordinator), Counted::new(worker));
    let since = chrono::Utc::now();
    let report = model_run(
        Arc::clone(&bus),
        coordinator.clone(),
        worker.clone(),
        Arc::new(accountant.clone()),
        &repo_root(),
        3,
        "Summarise this repository's crates",
    )
    .await?;
    println!(
        "{} findings, answer {}",
        report.findings.len(),
        report.answer.id
    );
    let cost = accountant
        .report(&ReportFilter::all().between(Some(since), None))
        .await?;
    print!("{}", cost.render());
    let served = coordinator.usage_served() + worker.usage_served();
    println!(
        "Ledger tokens {} = models' tokens {}: {}",
        cost.total.usage.total_tokens(),
        served.total_tokens(),
        if cost.total.usage == served {
            "exact"
        } else {
            "MISMATCH"
        }
    );
    if cost.total.usage != served {
        return Err("the ledger does not match the models' usage".into());
    }
    Ok(())
}
