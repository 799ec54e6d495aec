//! A goal run end to end on scripted models (coordinator + three agent
//! workers with sandboxed tools), on MemoryBus and on a real Redis: the plan
//! is dispatched, every task ends in a finding, the answer cites them, and
//! the ledger's totals equal exactly the usage the models reported. A worker
//! killed mid-task on Redis has its task reclaimed and finished once; a halt
//! stops every worker before its next step.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;
use std::time::Duration;

use swarm_examples::{model_run, repo_root, scripted_coordinator, scripted_worker};
use swarmbus_agents::agent::AgentWorker;

use swarmbus_agents::runtime::{Worker, WorkerConfig, task_finding_id};
use swarmbus_agents::scripted::ScriptedModel;
use swarmbus_agents::tools::{CommandAllowList, Toolbox, Workspace};
use swarmbus_core::accounting::Meter;
use swarmbus_core::llm::Usage;
use swarmbus_core::{Bus, BusLimits, HaltReport, SessionId, Task, WorkerId};
use swarmbus_cost::{Accountant, BudgetLimits, PriceTable, ReportFilter, Tiers};
use swarmbus_memory::MemoryBus;
use swarmbus_redis::testing::RedisServer;
use swarmbus_redis::{RedisBus, RedisConfig};

fn accountant(bus: &Arc<dyn Bus>) -> Accountant<dyn Bus> {
    Accountant::new(
        Arc::clone(bus),
        Arc::new(PriceTable::built_in().unwrap()),
        Tiers::default(),
        BudgetLimits::unlimited(),
    )
    .unwrap()
}

async fn goal_run_checks(bus: Arc<dyn Bus>) {
    let acc = accountant(&bus);
    let coordinator = scripted_coordinator(&Tiers::default().coordinator.model);
    let worker = scripted_worker(&Tiers::default().worker.model);
    let recorder: Arc<dyn Meter> = Arc::new(acc.clone());
    let report = model_run(
        Arc::clone(&bus),
        Arc::new(coordinator.clone()),
        Arc::new(worker.clone()),
        recorder,
        &repo_root(),
        3,
        "summarise this repository's crates",
    )
    .await
    .unwrap();

    assert_eq!(report.routed.len(), 3);
    assert_eq!(report.findings.len(), 3, "{:?}", report.failed);
    let mut workers: Vec<_> = report
        .findings
        .iter()
        .map(|f| f.worker.to_string())
        .collect();
    workers.sort();
    assert_eq!(
        workers,
        ["haiku-1", "haiku-2", "haiku-3"],
        "one task per worker"
    );
    let mut cited = report.answer.cites.clone();
    let mut found: Vec<_> = report.findings.iter().map(|f| f.id.clone()).collect();
    cited.sort();
    found.sort();
    assert_eq!(cited, found, "the answer cites every finding it used");
    assert_eq!(
        bus.get_finding(&report.answer.id)
            .await
            .unwrap()
            .unwrap()
            .cites
            .len(),
        3
    );

    // The ledger holds every call, and its totals are the models' usage.
    let ledger = acc.report(&ReportFilter::all()).await.unwrap();
    let served = coordinator.usage_served() + worker.usage_served();
    assert_eq!(
        ledger.total.calls,
        2 + 3 * 2,
        "plan + synthesis + two calls per worker"
    );
    assert_eq!(ledger.total.usage, served);
    assert_eq!(ledger.roles.worker.calls, 6);
    assert_eq!(ledger.roles.coordinator.calls, 2);
    assert_eq!(ledger.roles.worker.usage, worker.usage_served());
    assert_eq!(ledger.total.unpriced_calls, 0, "{:?}", ledger.unpriced);
    // The workers' second calls read the cached prefix.
    assert_eq!(ledger.roles.worker.usage.cache_read_tokens, 3 * 1_800);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goal_run_on_memory_bus_records_exactly_the_models_usage() {
    goal_run_checks(Arc::new(MemoryBus::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_goal_run_on_redis_records_exactly_the_models_usage() {
    let server = RedisServer::start();
    let bus = RedisBus::connect(RedisConfig::from_url(&server.url()).unwrap())
        .await
        .unwrap();
    goal_run_checks(Arc::new(bus)).await;
}

fn agent(
    bus: &Arc<dyn Bus>,
    model: ScriptedModel,
    id: &WorkerId,
    recorder: Arc<dyn Meter>,
) -> AgentWorker {
    AgentWorker::new(
        Arc::new(model),
        Arc::clone(bus),
        Arc::new(Workspace::new(repo_root()).unwrap()),
        Toolbox::built_in(CommandAllowList::default()),
        id.clone(),
    )
    .meter(recorder)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_task_on_redis_is_reclaimed_and_the_task_finished_once() {
    let server = RedisServer::start();
    // The progress beat a worker writes when it starts a task uses the bus's
    // heartbeat TTL, so the bus gets the short TTL too.
    let mut limits = BusLimits::default();
    limits.heartbeat_ttl = Duration::from_millis(300);
    let redis = RedisBus::connect(RedisConfig::from_url(&server.url()).unwrap().limits(limits))
        .await
        .unwrap();
    let bus: Arc<dyn Bus> = Arc::new(redis);
    let acc = accountant(&bus);
    let (dead, alive) = (
        WorkerId::new("haiku-dead").unwrap(),
        WorkerId::new("haiku-alive").unwrap(),
    );
    let task = Task::new(
        SessionId::new("s").unwrap(),
        "list",
        "List the workspace's files",
    );
    bus.push_task(&dead, &task).await.unwrap();

    // The first worker's model never answers in time: it is killed mid-call.
    let slow = ScriptedModel::new("claude-haiku-4-5")
        .delay(Duration::from_secs(600))
        .then_text("never", Usage::new(1, 1));
    let cfg = WorkerConfig::new(dead.clone())
        .heartbeat_ttl(Duration::from_millis(300))
        .claim_wait(Duration::from_millis(50));
    let doomed = tokio::spawn(
        Worker::shared(
            Arc::clone(&bus),
            agent(&bus, slow.clone(), &dead, Arc::new(acc.clone())),
            cfg,
        )
        .run(futures::future::pending()),
    );
    for _ in 0..100 {
        if !slow.requests().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        slow.requests().len(),
        1,
        "the task was claimed and the call started"
    );
    doomed.abort(); // killed: no ack, no finding, heartbeat stops
    let _ = doomed.await;

    // Another worker takes over once the heartbeat expired.
    let fast = scripted_worker("claude-haiku-4-5");
    let cfg = WorkerConfig::new(alive.clone())
        .claim_wait(Duration::from_millis(50))
        .reclaim_every(Some(Duration::from_millis(100)))
        .max_tasks(1);
    let report = tokio::time::timeout(
        Duration::from_secs(30),
        Worker::shared(
            Arc::clone(&bus),
            agent(&bus, fast.clone(), &alive, Arc::new(acc.clone())),
            cfg,
        )
        .run(futures::future::pending()),
    )
    .await
    .expect("reclaimed in time")
    .unwrap();
    assert_eq!(report.findings.len(), 1);
    assert_eq!(report.findings[0].id, task_finding_id(task.id));
    assert!(!bus.is_alive(&dead).await.unwrap());
    assert_eq!(bus.queued_tasks(&dead).await.unwrap(), 0);
    assert_eq!(bus.queued_tasks(&alive).await.unwrap(), 0);
    assert!(bus.failed_tasks().await.unwrap().is_empty());
    assert!(
        bus.get_finding(&task_finding_id(task.id))
            .await
            .unwrap()
            .is_some()
    );
    // Only calls that returned are in the ledger.
    let ledger = acc.report(&ReportFilter::all()).await.unwrap();
    assert_eq!(ledger.total.usage, fast.usage_served());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halt_stops_every_worker_before_its_next_step() {
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let acc = accountant(&bus);
    let s = SessionId::new("s").unwrap();
    let ids: Vec<WorkerId> = (1..=3)
        .map(|i| WorkerId::new(format!("haiku-{i}")).unwrap())
        .collect();
    for id in &ids {
        for n in 0..2 {
            bus.push_task(id, &Task::new(s.clone(), "list", format!("list {n}")))
                .await
                .unwrap();
        }
    }
    // Every model call takes 200 ms; the halt lands while they are busy.
    let model = scripted_worker("claude-haiku-4-5").delay(Duration::from_millis(200));
    let runs: Vec<_> = ids
        .iter()
        .map(|id| {
            let cfg = WorkerConfig::new(id.clone()).claim_wait(Duration::from_millis(50));
            tokio::spawn(
                Worker::shared(
                    Arc::clone(&bus),
                    agent(&bus, model.clone(), id, Arc::new(acc.clone())),
                    cfg,
                )
                .run(futures::future::pending()),
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    bus.halt(&HaltReport::new("librarian down", "section 2"))
        .await
        .unwrap();
    let calls_at_halt = model.requests().len();
    for r in runs {
        let report = tokio::time::timeout(Duration::from_secs(10), r)
            .await
            .expect("stopped")
            .unwrap()
            .unwrap();
        assert!(report.halted.is_some());
        assert!(report.findings.is_empty());
    }
    assert_eq!(calls_at_halt, 3, "one call in flight per worker");
    assert_eq!(model.requests().len(), 3, "no call after the halt");
    let failed = bus.failed_tasks().await.unwrap();
    assert_eq!(failed.len(), 3, "each in-flight task stopped with a report");
    assert!(
        failed
            .iter()
            .all(|f| f.report.contains("swarm halted: librarian down"))
    );
    for id in &ids {
        assert_eq!(
            bus.queued_tasks(id).await.unwrap(),
            1,
            "the next task waits untouched"
        );
    }
}
