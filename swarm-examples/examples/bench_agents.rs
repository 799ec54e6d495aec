//! Benchmarks of the agent runtime (numbers for docs/benchmarks.md).
//!
//! 1. The runtime's own cost per task on Redis, without model time: a task
//!    is pushed, claimed, handled by a handler that returns at once, its
//!    finding written and acknowledged, and seen by the coordinator's
//!    gather. Sequential, so the figure is one task's latency; p50 and p90.
//! 2. Throughput of agent workers (the full tool-use loop: prompt, model
//!    call, finding, usage record) against a mock model answering in 50 ms,
//!    with 1, 2, 4 and 8 in-process workers on MemoryBus.
//!
//! `cargo run --release -p swarm-examples --example bench_agents`
//! (Redis: `REDIS_URL`, else a redis-server started for the run.)

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use swarm_examples::{AnyError, repo_root};
use swarmbus_agents::agent::AgentWorker;
use swarmbus_agents::policy::KeywordPolicy;
use swarmbus_agents::runtime::{Coordinator, TaskHandler, TaskOutput, Worker, WorkerConfig};
use swarmbus_agents::scripted::ScriptedModel;
use swarmbus_agents::tools::{CommandAllowList, Toolbox, Workspace};
use swarmbus_core::llm::Usage;
use swarmbus_core::{Bus, SessionId, Task, WorkerId};
use swarmbus_memory::MemoryBus;
use swarmbus_redis::{RedisBus, RedisConfig};

struct Instant0;

#[async_trait]
impl TaskHandler for Instant0 {
    async fn handle(&self, task: &Task) -> Result<TaskOutput, String> {
        Ok(TaskOutput::new(task.kind.clone(), "done"))
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

async fn runtime_cost(bus: Arc<dyn Bus>, n: usize) -> Result<Vec<Duration>, AnyError> {
    let session = SessionId::new("bench")?;
    let w = WorkerId::new("bench-worker")?;
    let coord = Coordinator::shared(Arc::clone(&bus), session.clone(), KeywordPolicy::default());
    let cfg = WorkerConfig::new(w.clone()).claim_wait(Duration::from_millis(500));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(Worker::shared(Arc::clone(&bus), Instant0, cfg).run(async {
        let _ = rx.await;
    }));
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let task = Task::new(session.clone(), "grep", format!("task {i}"));
        let start = Instant::now();
        coord
            .dispatch(vec![task.clone()], std::slice::from_ref(&w))
            .await?;
        let got = coord.gather(&[task.id], Duration::from_secs(10)).await?;
        if got.findings.len() != 1 {
            return Err("a task did not finish".into());
        }
        times.push(start.elapsed());
    }
    let _ = tx.send(());
    worker.await??;
    times.sort();
    Ok(times)
}

async fn throughput(workers: usize, tasks: usize) -> Result<f64, AnyError> {
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let model = ScriptedModel::new("mock")
        .delay(Duration::from_millis(50))
        .responding(|_| {
            Ok(swarmbus_core::Completion::new(
                "done\nthe mock model answered",
                "mock",
                Usage::new(100, 10),
            ))
        });
    let ws = Arc::new(Workspace::new(repo_root())?);
    let session = SessionId::new("tput")?;
    let ids: Vec<WorkerId> = (0..workers)
        .map(|i| WorkerId::new(format!("w{i}")))
        .collect::<Result<_, _>>()?;
    let coord = Coordinator::shared(Arc::clone(&bus), session.clone(), KeywordPolicy::default());
    let all: Vec<Task> = (0..tasks)
        .map(|i| Task::new(session.clone(), "grep", format!("task {i}")))
        .collect();
    let task_ids: Vec<_> = all.iter().map(|t| t.id).collect();
    let start = Instant::now();
    coord.dispatch(all, &ids).await?;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let runs: Vec<_> = ids
        .iter()
        .map(|id| {
            let agent = AgentWorker::new(
                Arc::new(model.clone()),
                Arc::clone(&bus),
                Arc::clone(&ws),
                Toolbox::built_in(CommandAllowList::default()),
                id.clone(),
            );
            let mut rx = rx.clone();
            let cfg = WorkerConfig::new(id.clone()).claim_wait(Duration::from_millis(20));
            tokio::spawn(
                Worker::shared(Arc::clone(&bus), agent, cfg).run(async move {
                    let _ = rx.wait_for(|s| *s).await;
                }),
            )
        })
        .collect();
    let got = coord.gather(&task_ids, Duration::from_secs(120)).await?;
    let secs = start.elapsed().as_secs_f64();
    let _ = tx.send(true);
    for r in runs {
        r.await??;
    }
    if got.findings.len() != tasks {
        return Err(format!("{} of {tasks} tasks finished", got.findings.len()).into());
    }
    Ok(tasks as f64 / secs)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), AnyError> {
    let _server;
    let url = match std::env::var("REDIS_URL") {
        Ok(u) => u,
        Err(_) => {
            let s = swarmbus_redis::testing::RedisServer::start();
            let u = s.url();
            _server = s;
            u
        }
    };
    let redis: Arc<dyn Bus> = Arc::new(RedisBus::connect(RedisConfig::from_url(&url)?).await?);
    let _ = runtime_cost(Arc::clone(&redis), 20).await?; // warm-up
    let times = runtime_cost(Arc::clone(&redis), 300).await?;
    println!(
        "runtime cost per task on Redis (push → claim → handle → finding → ack → gathered), {} tasks: p50 {:.2} ms, p90 {:.2} ms",
        times.len(),
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.9).as_secs_f64() * 1e3
    );
    let mem: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let times = runtime_cost(mem, 300).await?;
    println!(
        "runtime cost per task on MemoryBus, {} tasks: p50 {:.3} ms, p90 {:.3} ms",
        times.len(),
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.9).as_secs_f64() * 1e3
    );
    let tasks = 64;
    let base = throughput(1, tasks).await?;
    println!("agent workers against a 50 ms mock model, {tasks} tasks:");
    println!("  1 worker:  {base:.1} tasks/s (ideal 20.0)");
    for w in [2, 4, 8] {
        let t = throughput(w, tasks).await?;
        println!(
            "  {w} workers: {t:.1} tasks/s ({:.2}x of 1 worker, ideal {w}x)",
            t / base
        );
    }
    Ok(())
}
