//! The brief's failure handling: a librarian fails during paper generation.
//! The job stops, writes `halt:reason` (what failed, at which step, what was
//! saved), every worker stops before its next task, and the caller gets the
//! report to decide: retry, skip the librarian, or pause.
//!
//! `cargo run -p swarm-examples --example paper_protocol`

use std::time::Duration;

use swarm_examples::{AnyError, LocalWork, repo_root};
use swarmbus_agents::AgentError;
use swarmbus_agents::runtime::{Job, Worker, WorkerConfig};
use swarmbus_core::{
    Error, HaltSwitch, ModelAction, ModelError, ModelErrorKind, SessionId, Task, TaskQueue,
    WorkerId,
};
use swarmbus_memory::MemoryBus;

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let bus = MemoryBus::new();
    let worker = WorkerId::new("haiku-1")?;
    let session = SessionId::new("paper")?;
    bus.push_task(
        &worker,
        &Task::new(session, "count", "count lines for the paper's appendix"),
    )
    .await?;

    let dir = std::env::temp_dir().join("swarm-halt-example");
    std::fs::create_dir_all(&dir)?;
    let mut job = Job::new(&bus, "paper-generation");
    job.step("outline", async { Ok(()) }).await?;
    // Drafts go to the bus before any file is written.
    job.write_file(
        "paper-outline",
        &dir.join("outline.md"),
        "# Outline\n1. Intro\n2. Results\n",
    )
    .await?;
    let failed = job
        .step("section 2 of 3: ask the librarian", async {
            Err::<String, _>(AgentError::from(Error::from(ModelError::new(
                "gemini",
                "gemini-flash-latest",
                ModelErrorKind::MalformedResponse,
                ModelAction::Fail,
                "shard 2 returned a malformed response",
            ))))
        })
        .await;
    let Err(AgentError::Halted(report)) = failed else {
        return Err("the failing step should have halted the swarm".into());
    };
    println!(
        "HALTED by {}: {}",
        report.by.as_deref().unwrap_or("?"),
        report
    );
    println!(
        "halt:reason = {}",
        serde_json::to_string(&bus.halted().await?)?
    );

    // A worker started now stops before taking its task.
    let cfg = WorkerConfig::new(worker.clone()).claim_wait(Duration::from_millis(50));
    let run = Worker::new(bus.clone(), LocalWork::new(repo_root()), cfg)
        .run(std::future::pending())
        .await?;
    println!(
        "worker stopped before its next task: halted={}, tasks still queued: {}",
        run.halted.is_some(),
        bus.queued_tasks(&worker).await?
    );
    println!("The user decides: retry, skip the librarian, or pause. Clearing the halt.");
    bus.clear_halt().await?;
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
