//! Shared pieces of the runnable examples (see `examples/`).
//!
//! # Layout
//!
//! - [`LocalWork`] (from `swarmbus-agents`): real work on this repository's own
//!   files (search, count, read headings), standing in for a worker model so
//!   the examples run with no API key.
//! - [`repo_root`]: where this repository is.
//! - [`example_session`]: the brief's complete example session on any bus.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use swarmbus_agents::local::LocalWork;
use swarmbus_agents::runtime::{Coordinator, Worker, WorkerConfig};
use swarmbus_core::model::estimate_tokens;
use swarmbus_core::status::{StatusConfig, SwarmStatus};
use swarmbus_core::{Bus, Channel, SessionId, Task, Tier, Usage, WorkerId};
use swarmbus_cost::{Accountant, BudgetLimits, PriceTable, ReportFilter, Tiers};

/// Any error of an example.
pub type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The brief's example session on `bus`: prints the status block, routes three
/// independent tasks, runs three workers in parallel, gathers their findings and
/// prints the status again. Returns the final snapshot.
pub async fn example_session<B: Bus + Clone + 'static>(bus: B) -> Result<SwarmStatus, AnyError> {
    let status = StatusConfig::default();
    println!("{}", SwarmStatus::snapshot(&bus, &status).await?.render());

    let session = SessionId::new(format!(
        "example-{}",
        chrono::Utc::now().format("%Y%m%d-%H%M%S")
    ))?;
    let coordinator = Coordinator::new(bus.clone(), session.clone());
    let workers: Vec<WorkerId> = (1..=3)
        .map(|i| WorkerId::new(format!("haiku-{i}")))
        .collect::<Result<_, _>>()?;

    // The coordinator watches the channel while the workers run.
    let mut notes = bus.subscribe(Channel::Findings).await?;

    let tasks = vec![
        Task::new(
            session.clone(),
            "grep",
            "Search the sources for trait definitions",
        )
        .with_payload(serde_json::json!({ "pattern": "pub trait" })),
        Task::new(
            session.clone(),
            "count",
            "Count lines of Rust and Markdown per crate",
        ),
        Task::new(
            session.clone(),
            "headings",
            "Read the README and docs and list their sections",
        ),
    ];
    let routed = coordinator.dispatch(tasks, &workers).await?;
    println!(
        "I'll spawn {} workers in parallel for these independent tasks:",
        workers.len()
    );
    for r in &routed {
        let who = r
            .worker
            .as_ref()
            .map_or("coordinator".to_owned(), ToString::to_string);
        println!(
            "  {who}: {} ({:?} tier, {:?})",
            r.task.instructions, r.task.tier, r.routing.reason
        );
    }

    let handler = LocalWork::new(repo_root());
    let accountant = Accountant::new(
        Arc::new(bus.clone()),
        Arc::new(PriceTable::built_in()?),
        Tiers::default(),
        BudgetLimits::default(),
    )?;
    let runs: Vec<_> = workers
        .iter()
        .map(|id| {
            let cfg = WorkerConfig::new(id.clone())
                .claim_wait(Duration::from_millis(100))
                .idle_exit(Duration::from_millis(500));
            tokio::spawn(Worker::new(bus.clone(), handler.clone(), cfg).run(std::future::pending()))
        })
        .collect();

    let ids: Vec<_> = routed.iter().map(|r| r.task.id).collect();
    let gathered = coordinator.gather(&ids, Duration::from_secs(30)).await?;
    let mut heard = 0;
    while let Ok(Some(Ok(_))) = tokio::time::timeout(
        Duration::from_millis(50),
        futures::StreamExt::next(&mut notes),
    )
    .await
    {
        heard += 1;
    }
    println!(
        "\nAll {} workers completed; {heard} notifications on channel:findings. Their findings:",
        workers.len()
    );
    for f in &gathered.findings {
        println!(
            "  [{}] {}: {}",
            f.worker,
            f.title,
            f.body.lines().next().unwrap_or("")
        );
    }
    for f in &gathered.failed {
        println!("  FAILED {}: {}", f.task.instructions, f.report);
    }
    for r in runs {
        r.await??;
    }

    // The accountant prices every call. The workers here did local work with
    // no model, so each is priced as the worker model would have been: the
    // text it read as input, its finding as output. The coordinator made one
    // call to route the tasks and read the findings back.
    for f in &gathered.findings {
        let read = f.task.map_or(0, |t| handler.chars_read(t));
        let input = u64::from(estimate_tokens(&f.body)) + (read / 4) as u64;
        let call = accountant
            .call(Tier::Worker)
            .ok_or("no worker tier")?
            .worker(f.worker.clone())
            .session(session.clone());
        accountant
            .record(&call, Usage::new(input, u64::from(f.tokens)))
            .await?;
    }
    let read_back: u64 = gathered.findings.iter().map(|f| u64::from(f.tokens)).sum();
    let call = accountant
        .call(Tier::Coordinator)
        .ok_or("no coordinator tier")?
        .session(session.clone());
    accountant
        .record(&call, Usage::new(800 + read_back, 300))
        .await?;
    let report = accountant
        .report(&ReportFilter::all().session(session.clone()))
        .await?;
    println!("\n{}", report.render());
    println!("{}\n", coordinator.stats().summary());
    let after = SwarmStatus::snapshot(&bus, &status).await?;
    println!("{}", after.render());
    if !gathered.failed.is_empty() || !gathered.pending.is_empty() {
        return Err("some tasks did not complete".into());
    }
    Ok(after)
}
