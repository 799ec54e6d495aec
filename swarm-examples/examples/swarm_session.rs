//! The brief's "complete example session": a coordinator routes three
//! independent tasks through the delegation policy, three workers run them in
//! parallel on this repository's own files, write findings and notify
//! `channel:findings`; the status block is printed before and after.
//!
//! `cargo run -p swarm-examples --example swarm_session`

use std::time::Duration;

use swarmbus_core::runtime::{Coordinator, Worker, WorkerConfig};
use swarmbus_core::status::{StatusConfig, SwarmStatus};
use swarmbus_core::{Bus, Channel, MemoryBus, SessionId, Task, WorkerId};
use swarm_examples::{LocalWork, repo_root};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let bus = MemoryBus::new();
    println!("Bus: in-memory");
    session(bus).await
}

async fn session<B: Bus + Clone + 'static>(bus: B) -> Result<(), AnyError> {
    let status = StatusConfig::default();
    println!("{}", SwarmStatus::snapshot(&bus, &status).await?.render());

    let session = SessionId::new(format!("example-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S")))?;
    let coordinator = Coordinator::new(bus.clone(), session.clone());
    let workers: Vec<WorkerId> = (1..=3)
        .map(|i| WorkerId::new(format!("haiku-{i}")))
        .collect::<Result<_, _>>()?;

    // The coordinator watches the channel while the workers run.
    let mut notes = bus.subscribe(Channel::Findings).await?;

    let tasks = vec![
        Task::new(session.clone(), "grep", "Search the sources for trait definitions")
            .with_payload(serde_json::json!({ "pattern": "pub trait" })),
        Task::new(session.clone(), "count", "Count lines of Rust and Markdown per crate"),
        Task::new(session.clone(), "headings", "Read the README and docs and list their sections"),
    ];
    let routed = coordinator.dispatch(tasks, &workers).await?;
    println!("I'll spawn {} workers in parallel for these independent tasks:", workers.len());
    for r in &routed {
        let who = r.worker.as_ref().map_or("coordinator".to_owned(), ToString::to_string);
        println!("  {who}: {} ({:?} tier, {:?})", r.task.instructions, r.task.tier, r.routing.reason);
    }

    let handler = LocalWork::new(repo_root());
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
    while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_millis(50), futures::StreamExt::next(&mut notes)).await {
        heard += 1;
    }
    println!("\nAll {} workers completed; {heard} notifications on channel:findings. Their findings:", workers.len());
    for f in &gathered.findings {
        println!("  [{}] {}: {}", f.worker, f.title, f.body.lines().next().unwrap_or(""));
    }
    for f in &gathered.failed {
        println!("  FAILED {}: {}", f.task.instructions, f.report);
    }
    for r in runs {
        r.await??;
    }
    println!("{}\n", coordinator.stats().summary());
    println!("{}", SwarmStatus::snapshot(&bus, &status).await?.render());
    if !gathered.failed.is_empty() || !gathered.pending.is_empty() {
        return Err("some tasks did not complete".into());
    }
    Ok(())
}
