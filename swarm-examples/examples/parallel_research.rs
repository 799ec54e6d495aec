//! Parallel research: the coordinator plans independent tasks and five agent
//! workers research them at once; the answer cites every finding. Shows the
//! delegation statistics: every task stayed on the worker tier.
//!
//! `cargo run -p swarm-examples --example parallel_research`

use std::sync::Arc;

use swarm_examples::{
    AnyError, Counted, example_accountant, example_bus, model_run, print_run, repo_root, run_models,
};

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let bus = example_bus().await?;
    let accountant = example_accountant(&bus)?;
    let (coordinator, worker) = run_models()?;
    let worker = Counted::new(worker);
    let report = model_run(
        Arc::clone(&bus),
        coordinator,
        worker.clone(),
        Arc::new(accountant),
        &repo_root(),
        5,
        "Research how this repository is organised",
    )
    .await?;
    print_run(&report);
    let on_workers = report.routed.iter().filter(|r| r.worker.is_some()).count();
    println!(
        "{on_workers} of {} tasks ran on workers; worker model calls: {}",
        report.routed.len(),
        worker.requests()
    );
    Ok(())
}
