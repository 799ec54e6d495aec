//! The worker and coordinator runtime, and the halt protocol for multi-step
//! jobs.
//!
//! - [`Worker`]: heartbeats with a TTL in the background, claims tasks from
//!   its queue, runs a [`TaskHandler`], writes the finding (which notifies
//!   `channel:findings`), and acknowledges. A failed job is stopped and
//!   reported with [`swarmbus_core::bus::TaskQueue::fail_task`], never retried silently. A halted
//!   swarm stops every worker before its next task.
//! - [`Coordinator`]: routes work through a [`DelegationPolicy`], spreads the
//!   worker tier's tasks over workers, waits for their findings.
//! - [`Job`]: a multi-step job under the halt protocol: on a failure it
//!   stops, writes `halt:reason` (what failed, at which step, what was
//!   saved) and returns the report; drafts are saved to the bus before files
//!   are written.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;

use swarmbus_core::bus::{Bus, HaltSwitch};
use swarmbus_core::error::Error;
use swarmbus_core::keys::{Channel, FindingId, SessionId, TaskId, WorkerId};
use swarmbus_core::llm::Usage;
use swarmbus_core::{Finding, HaltReport, Progress, Task, TaskFailure, Tier};

use crate::error::{AgentError, Result};
use crate::policy::{DelegationPolicy, DelegationStats, KeywordPolicy, Routing};

/// What a handler produced for a task: becomes a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskOutput {
    /// The finding's title.
    pub title: String,
    /// The finding's body.
    pub body: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Findings the output relies on (cited by the finding).
    pub cites: Vec<FindingId>,
    /// Tokens the model calls of this task used (zero for local work).
    pub usage: Usage,
    /// The model that did the work (`None` for local work).
    pub model: Option<String>,
}

impl TaskOutput {
    /// An output.
    pub fn new(title: impl Into<String>, body: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            body: body.into(),
            tags: Vec::new(),
            cites: Vec::new(),
            usage: Usage::default(),
            model: None,
        }
    }

    /// Records the usage and the model of the task's calls.
    pub fn with_usage(mut self, usage: Usage, model: impl Into<String>) -> Self {
        self.usage = usage;
        self.model = Some(model.into());
        self
    }

    /// Adds findings to cite.
    pub fn citing(mut self, ids: impl IntoIterator<Item = FindingId>) -> Self {
        self.cites.extend(ids);
        self
    }

    /// Adds tags.
    pub fn with_tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }
}

/// Does the work of a task. An `Err` stops the task and is its report.
#[async_trait]
pub trait TaskHandler: Send + Sync {
    /// Handles one task.
    async fn handle(&self, task: &Task) -> std::result::Result<TaskOutput, String>;
}

#[async_trait]
impl<T: TaskHandler + ?Sized> TaskHandler for Arc<T> {
    async fn handle(&self, task: &Task) -> std::result::Result<TaskOutput, String> {
        (**self).handle(task).await
    }
}

/// How a worker runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerConfig {
    /// The worker's id.
    pub id: WorkerId,
    /// Heartbeat TTL: the worker counts as dead this long after its last beat.
    pub heartbeat_ttl: Duration,
    /// How long one claim waits for a task.
    pub claim_wait: Duration,
    /// Stop after this long with no task (`None`: run until stopped or halted).
    pub idle_exit: Option<Duration>,
    /// Stop after this many tasks, finished or failed (`None`: no limit).
    pub max_tasks: Option<u64>,
    /// When idle, take over the tasks of dead workers this often (`None`:
    /// never; someone else reclaims).
    pub reclaim_every: Option<Duration>,
    /// A task handed out this many times goes to the failed list instead of
    /// being reclaimed again.
    pub max_deliveries: u32,
}

impl WorkerConfig {
    /// Defaults: 60 s TTL, 1 s claims, run until stopped.
    pub fn new(id: WorkerId) -> Self {
        Self {
            id,
            heartbeat_ttl: Duration::from_secs(60),
            claim_wait: Duration::from_secs(1),
            idle_exit: None,
            max_tasks: None,
            reclaim_every: Some(Duration::from_secs(5)),
            max_deliveries: 3,
        }
    }

    /// Sets how often an idle worker reclaims dead workers' tasks (`None`:
    /// never).
    pub fn reclaim_every(mut self, every: Option<Duration>) -> Self {
        self.reclaim_every = every;
        self
    }

    /// Stops after `n` tasks (`1`: the CLI's `--once`).
    pub fn max_tasks(mut self, n: u64) -> Self {
        self.max_tasks = Some(n);
        self
    }

    /// Sets the heartbeat TTL (at least 1 ms; [`Worker::run`] refuses less).
    pub fn heartbeat_ttl(mut self, ttl: Duration) -> Self {
        self.heartbeat_ttl = ttl;
        self
    }

    /// Sets the claim wait.
    pub fn claim_wait(mut self, wait: Duration) -> Self {
        self.claim_wait = wait;
        self
    }

    /// Stops after `idle` with no task.
    pub fn idle_exit(mut self, idle: Duration) -> Self {
        self.idle_exit = Some(idle);
        self
    }
}

/// What a worker did before it stopped.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct WorkerReport {
    /// Findings written.
    pub findings: Vec<Finding>,
    /// Tasks stopped with a report.
    pub failed: Vec<TaskFailure>,
    /// The halt that stopped it, if one did.
    pub halted: Option<HaltReport>,
}

/// A worker: claims tasks from `worker:tasks:<id>` and turns them into
/// findings.
#[derive(Debug)]
pub struct Worker<B: ?Sized, H> {
    bus: Arc<B>,
    handler: H,
    config: WorkerConfig,
}

impl<B, H> Worker<B, H>
where
    B: Bus + 'static,
    H: TaskHandler,
{
    /// A worker on `bus` running `handler`.
    pub fn new(bus: B, handler: H, config: WorkerConfig) -> Self {
        Self::shared(Arc::new(bus), handler, config)
    }
}

impl<B, H> Worker<B, H>
where
    B: Bus + ?Sized + 'static,
    H: TaskHandler,
{
    /// A worker on a shared bus (`Arc<dyn Bus>` included).
    pub fn shared(bus: Arc<B>, handler: H, config: WorkerConfig) -> Self {
        Self {
            bus,
            handler,
            config,
        }
    }

    /// Runs until `stop` completes, the swarm halts, or the worker was idle
    /// for `idle_exit`. Bus errors stop the worker and are returned; its
    /// claimed task is then reclaimed by another worker once its heartbeat
    /// expires.
    ///
    /// A heartbeat TTL under 1 ms is refused with
    /// [`AgentError::InvalidConfig`] before anything starts.
    pub async fn run(self, stop: impl Future<Output = ()> + Send) -> Result<WorkerReport> {
        let id = self.config.id.clone();
        let period = beat_period(self.config.heartbeat_ttl)?;
        // Aborted when this future ends or is dropped (a worker cancelled
        // mid-task stops beating, so its task is reclaimed like a dead one's).
        let beat = AbortOnDrop({
            let (bus, id, ttl) = (self.bus.clone(), id.clone(), self.config.heartbeat_ttl);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(period);
                loop {
                    tick.tick().await;
                    if let Err(e) = bus.heartbeat(&id, ttl).await {
                        tracing::warn!(worker = %id, error = %e, "heartbeat failed");
                    }
                }
            })
        });
        // The first beat is written before any claim, so the worker is never
        // seen holding a task without a heartbeat.
        let first = self.bus.heartbeat(&id, self.config.heartbeat_ttl).await;
        let result = match first {
            Ok(()) => {
                tokio::pin!(stop);
                self.work(&mut stop).await
            }
            Err(e) => Err(e.into()),
        };
        drop(beat);
        let _ = self.bus.deregister(&id).await;
        result
    }

    async fn work(&self, stop: &mut (impl Future<Output = ()> + Unpin)) -> Result<WorkerReport> {
        let id = &self.config.id;
        let mut report = WorkerReport::default();
        let mut idle_since = tokio::time::Instant::now();
        let mut done = 0u64;
        let mut last_reclaim = tokio::time::Instant::now();
        loop {
            if let Some(h) = self.bus.halted().await? {
                tracing::info!(worker = %id, "swarm halted; stopping before the next task");
                report.halted = Some(h);
                return Ok(report);
            }
            let claim = tokio::select! {
                _ = &mut *stop => return Ok(report),
                c = self.bus.claim_task(id, self.config.claim_wait) => c?,
            };
            let Some(claim) = claim else {
                if let Some(every) = self.config.reclaim_every
                    && last_reclaim.elapsed() >= every
                {
                    last_reclaim = tokio::time::Instant::now();
                    let r = self
                        .bus
                        .reclaim_abandoned(id, self.config.max_deliveries)
                        .await?;
                    if !r.requeued.is_empty() || !r.dead_lettered.is_empty() {
                        tracing::info!(worker = %id, requeued = r.requeued.len(), dead_lettered = r.dead_lettered.len(), "took over the tasks of dead workers");
                        continue;
                    }
                }
                if self
                    .config
                    .idle_exit
                    .is_some_and(|idle| idle_since.elapsed() >= idle)
                {
                    return Ok(report);
                }
                continue;
            };
            let task = &claim.task;
            self.bus
                .progress(
                    id,
                    &Progress::new(
                        Some(task.id),
                        format!("{}: {}", task.kind, task.instructions),
                    ),
                )
                .await?;
            match self.handler.handle(task).await {
                Ok(out) => {
                    // A task's finding has the task's id: the coordinator
                    // reads it with one lookup, and a task redone after a
                    // reclaim cannot leave two findings.
                    let finding =
                        Finding::new(id.clone(), task.session.clone(), out.title, out.body)
                            .with_id(task_finding_id(task.id))
                            .with_task(task.id)
                            .with_tags(out.tags)
                            .citing(task.continues.clone())
                            .citing(out.cites);
                    match self.bus.put_finding(&finding).await {
                        Ok(_) => report.findings.push(finding),
                        Err(Error::Conflict { key }) => {
                            tracing::info!(worker = %id, task = %task.id, %key, "an earlier delivery of this task already wrote its finding");
                        }
                        Err(e) => return Err(e.into()),
                    }
                    self.bus.ack_task(&claim).await?;
                }
                Err(why) => {
                    tracing::warn!(worker = %id, task = %task.id, report = %why, "task failed; stopped and reported");
                    self.bus.fail_task(&claim, &why).await?;
                    report.failed.push(TaskFailure::new(&claim, why));
                }
            }
            idle_since = tokio::time::Instant::now();
            done += 1;
            if self.config.max_tasks.is_some_and(|max| done >= max) {
                return Ok(report);
            }
        }
    }
}

/// A task routed by the coordinator.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Routed {
    /// The task (its tier set by the routing).
    pub task: Task,
    /// Why it went there.
    pub routing: Routing,
    /// The worker it was queued for (`None` for coordinator-tier work, which
    /// the coordinator does itself).
    pub worker: Option<WorkerId>,
}

/// The coordinator: routes work, spreads it over workers, gathers findings.
#[derive(Debug)]
pub struct Coordinator<B: ?Sized, P = KeywordPolicy> {
    bus: Arc<B>,
    policy: P,
    session: SessionId,
    stats: DelegationStats,
}

impl<B: Bus> Coordinator<B, KeywordPolicy> {
    /// A coordinator with the default policy.
    pub fn new(bus: B, session: SessionId) -> Self {
        Self::shared(Arc::new(bus), session, KeywordPolicy::default())
    }
}

impl<B: Bus, P: DelegationPolicy> Coordinator<B, P> {
    /// A coordinator with a policy of your own.
    pub fn with_policy(bus: B, session: SessionId, policy: P) -> Self {
        Self::shared(Arc::new(bus), session, policy)
    }
}

impl<B: Bus + ?Sized, P: DelegationPolicy> Coordinator<B, P> {
    /// A coordinator on a shared bus (`Arc<dyn Bus>` included).
    pub fn shared(bus: Arc<B>, session: SessionId, policy: P) -> Self {
        Self {
            bus,
            policy,
            session,
            stats: DelegationStats::default(),
        }
    }

    /// The bus.
    pub fn bus(&self) -> &Arc<B> {
        &self.bus
    }

    /// The delegation counts so far.
    pub fn stats(&self) -> &DelegationStats {
        &self.stats
    }

    /// The session.
    pub fn session(&self) -> &SessionId {
        &self.session
    }

    /// Routes each task through the policy (by its kind and instructions) and
    /// queues worker-tier tasks round-robin over `workers`, all pushed before
    /// any is awaited, so independent tasks run in parallel.
    pub async fn dispatch(&self, tasks: Vec<Task>, workers: &[WorkerId]) -> Result<Vec<Routed>> {
        if let Some(h) = self.bus.halted().await? {
            return Err(AgentError::Halted(Box::new(h)));
        }
        let mut routed = Vec::with_capacity(tasks.len());
        let mut next = 0usize;
        for task in tasks {
            let routing = self
                .policy
                .route(&format!("{} {}", task.kind, task.instructions));
            self.stats.record(routing.tier);
            let task = task.with_tier(routing.tier);
            let worker = if routing.tier == Tier::Coordinator {
                None
            } else {
                let w = workers.get(next % workers.len().max(1)).cloned();
                next += 1;
                w
            };
            routed.push(Routed {
                task,
                routing,
                worker,
            });
        }
        let pushes = routed
            .iter()
            .filter_map(|r| r.worker.as_ref().map(|w| self.bus.push_task(w, &r.task)));
        futures::future::try_join_all(pushes).await?;
        Ok(routed)
    }

    /// Waits until every task in `tasks` has a finding or was stopped, or
    /// until `timeout`. Returns the findings by task; stopped tasks are
    /// reported with their failure. Wakes on `channel:findings` and checks
    /// the bus at least every 250 ms, so a lost notification only delays.
    pub async fn gather(&self, tasks: &[TaskId], timeout: Duration) -> Result<Gathered> {
        let mut notes = self.bus.subscribe(Channel::Findings).await?;
        // `Duration::MAX` means "no deadline": it cannot be added to an
        // instant, so it saturates to none instead of overflowing.
        let deadline = tokio::time::Instant::now().checked_add(timeout);
        loop {
            let gathered = self.collect(tasks).await?;
            if gathered.pending.is_empty() {
                return Ok(gathered);
            }
            if let Some(h) = self.bus.halted().await? {
                return Err(AgentError::Halted(Box::new(h)));
            }
            let now = tokio::time::Instant::now();
            let left = deadline.map_or(Duration::MAX, |d| d.saturating_duration_since(now));
            if left.is_zero() {
                return Ok(gathered);
            }
            let nap = left.min(Duration::from_millis(250));
            let _ = tokio::time::timeout(nap, notes.next()).await;
        }
    }

    async fn collect(&self, tasks: &[TaskId]) -> Result<Gathered> {
        // One lookup for all findings (they carry their task's id); the
        // failed list only when some task has none yet.
        let ids: Vec<FindingId> = tasks.iter().map(|t| task_finding_id(*t)).collect();
        let found = self.bus.get_findings(&ids).await?;
        let failed_all = if found.iter().any(Option::is_none) {
            self.bus.failed_tasks().await?
        } else {
            Vec::new()
        };
        let mut out = Gathered::default();
        for (t, f) in tasks.iter().zip(found) {
            if let Some(f) = f {
                out.findings.push(f);
            } else if let Some(f) = failed_all.iter().find(|f| f.task.id == *t) {
                out.failed.push(f.clone());
            } else {
                out.pending.push(*t);
            }
        }
        Ok(out)
    }
}

/// The id of the finding a [`Worker`] writes for a task: the task's own
/// uuid, so that one task has at most one finding and it can be looked up
/// directly.
pub fn task_finding_id(task: TaskId) -> FindingId {
    FindingId::from_uuid(task.uuid())
}

/// Aborts its task when dropped.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The heartbeat period for a TTL: a third of it, so two beats may be lost
/// before the worker counts as dead; at least 1 ms and at most an hour (a
/// TTL of `Duration::MAX` beats hourly instead of overflowing a timer).
fn beat_period(ttl: Duration) -> Result<Duration> {
    if ttl < Duration::from_millis(1) {
        return Err(AgentError::InvalidConfig {
            field: "heartbeat_ttl",
            reason: format!("{ttl:?} is under the 1 ms minimum"),
        });
    }
    Ok((ttl / 3).clamp(Duration::from_millis(1), Duration::from_secs(3600)))
}

/// What [`Coordinator::gather`] found.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Gathered {
    /// Findings, in the order the tasks were given.
    pub findings: Vec<Finding>,
    /// Tasks stopped with a report.
    pub failed: Vec<TaskFailure>,
    /// Tasks with neither yet.
    pub pending: Vec<TaskId>,
}

/// A multi-step job under the halt protocol.
#[derive(Debug)]
pub struct Job<'a, B: ?Sized> {
    bus: &'a B,
    name: String,
    saved: Vec<String>,
}

impl<'a, B: HaltSwitch + ?Sized> Job<'a, B> {
    /// A job named `name` (it appears as `by` in a halt report).
    pub fn new(bus: &'a B, name: impl Into<String>) -> Self {
        Self {
            bus,
            name: name.into(),
            saved: Vec::new(),
        }
    }

    /// Runs one step. Refuses to start when the swarm is halted. When the
    /// step fails: stops, writes `halt:reason` with what failed, this step's
    /// name and what was saved, and returns [`AgentError::Halted`] with the report.
    pub async fn step<T, F>(&mut self, step: &str, work: F) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        if let Some(h) = self.bus.halted().await? {
            return Err(AgentError::Halted(Box::new(h)));
        }
        match work.await {
            Ok(v) => Ok(v),
            Err(e) => {
                let report = HaltReport::new(e.to_string(), step)
                    .saved(self.saved.iter().cloned())
                    .by(self.name.clone());
                // If another job halted first, its report is the one kept and
                // the one returned.
                self.bus.halt(&report).await?;
                let kept = self.bus.halted().await?.unwrap_or(report);
                Err(AgentError::Halted(Box::new(kept)))
            }
        }
    }

    /// Saves a draft to the bus and remembers it for the halt report.
    pub async fn save_draft(&mut self, name: &str, content: &str) -> Result<()> {
        self.bus.save_draft(name, content).await?;
        self.saved.push(format!("draft {name}"));
        Ok(())
    }

    /// Saves `content` as a draft on the bus first, then writes the file.
    /// A failed write is [`AgentError::WriteFile`], which keeps the
    /// `io::Error` (its kind and OS code) as its source.
    pub async fn write_file(&mut self, draft: &str, path: &Path, content: &str) -> Result<()> {
        self.save_draft(draft, content).await?;
        tokio::fs::write(path, content)
            .await
            .map_err(|source| AgentError::WriteFile {
                path: path.to_path_buf(),
                source,
            })
    }

    /// What was saved so far.
    pub fn saved(&self) -> &[String] {
        &self.saved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmbus_core::bus::{FindingStore, TaskQueue, WorkerRegistry};
    use swarmbus_memory::MemoryBus;

    struct Upper;

    #[async_trait]
    impl TaskHandler for Upper {
        async fn handle(&self, task: &Task) -> std::result::Result<TaskOutput, String> {
            if task.instructions.contains("fail") {
                return Err(format!("cannot do {:?}", task.instructions));
            }
            Ok(TaskOutput::new(
                task.kind.clone(),
                task.instructions.to_uppercase(),
            ))
        }
    }

    fn w(s: &str) -> WorkerId {
        WorkerId::new(s).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn workers_turn_routed_tasks_into_findings_and_report_failures() {
        let bus = MemoryBus::new();
        let session = SessionId::new("s1").unwrap();
        let coord = Coordinator::new(bus.clone(), session.clone());
        let workers = [w("haiku-1"), w("haiku-2")];
        let tasks = vec![
            Task::new(session.clone(), "grep", "search the docs"),
            Task::new(session.clone(), "count", "count the files"),
            Task::new(session.clone(), "edit", "please fail this one"),
            Task::new(session.clone(), "plan", "decide the strategy"),
        ];
        let routed = coord.dispatch(tasks, &workers).await.unwrap();
        assert_eq!(routed[3].routing.tier, Tier::Coordinator);
        assert!(routed[3].worker.is_none());
        assert_eq!(coord.stats().worker(), 3);

        let runs: Vec<_> = workers
            .iter()
            .map(|id| {
                let cfg = WorkerConfig::new(id.clone())
                    .claim_wait(Duration::from_millis(50))
                    .idle_exit(Duration::from_millis(300));
                tokio::spawn(Worker::new(bus.clone(), Upper, cfg).run(futures::future::pending()))
            })
            .collect();
        let ids: Vec<TaskId> = routed
            .iter()
            .filter(|r| r.worker.is_some())
            .map(|r| r.task.id)
            .collect();
        let got = coord.gather(&ids, Duration::from_secs(10)).await.unwrap();
        assert_eq!(got.findings.len(), 2);
        assert_eq!(got.failed.len(), 1);
        assert!(got.failed[0].report.contains("please fail"));
        assert!(got.pending.is_empty());
        assert_eq!(got.findings[0].body, "SEARCH THE DOCS");
        for r in runs {
            r.await.unwrap().unwrap();
        }
        assert_eq!(
            bus.count_alive_workers().await.unwrap(),
            0,
            "workers deregister"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_task_redone_after_a_reclaim_keeps_one_finding() {
        let bus = MemoryBus::new();
        let session = SessionId::new("s").unwrap();
        let coord = Coordinator::new(bus.clone(), session.clone());
        let (dead, alive) = (w("dead"), w("alive"));
        let routed = coord
            .dispatch(
                vec![Task::new(session.clone(), "count", "count the files")],
                std::slice::from_ref(&dead),
            )
            .await
            .unwrap();
        let task = routed[0].task.clone();
        // The first holder writes the finding and dies before acknowledging.
        bus.heartbeat(&dead, Duration::from_millis(100))
            .await
            .unwrap();
        let claim = bus
            .claim_task(&dead, Duration::from_millis(100))
            .await
            .unwrap()
            .unwrap();
        let first = Finding::new(dead.clone(), session.clone(), "count", "COUNT THE FILES")
            .with_id(task_finding_id(task.id))
            .with_task(task.id);
        bus.put_finding(&first).await.unwrap();
        assert_eq!(claim.deliveries, 1);
        tokio::time::sleep(Duration::from_millis(250)).await;
        let r = bus.reclaim_abandoned(&alive, 5).await.unwrap();
        assert_eq!(r.requeued, vec![task.id]);

        let cfg = WorkerConfig::new(alive.clone())
            .claim_wait(Duration::from_millis(50))
            .idle_exit(Duration::from_millis(200));
        let report = Worker::new(bus.clone(), Upper, cfg)
            .run(futures::future::pending())
            .await
            .unwrap();
        assert!(
            report.findings.is_empty(),
            "the redone task wrote no second finding"
        );
        assert!(report.failed.is_empty());
        assert_eq!(bus.count_findings().await.unwrap(), 1);
        assert_eq!(bus.queued_tasks(&alive).await.unwrap(), 0, "acknowledged");
        let got = coord
            .gather(&[task.id], Duration::from_secs(1))
            .await
            .unwrap();
        assert_eq!(got.findings, vec![first]);
    }

    #[tokio::test]
    async fn a_halt_stops_workers_before_their_next_task() {
        let bus = MemoryBus::new();
        let session = SessionId::new("s").unwrap();
        bus.halt(&HaltReport::new("librarian down", "step 2"))
            .await
            .unwrap();
        bus.push_task(&w("h"), &Task::new(session, "k", "x"))
            .await
            .unwrap();
        let report = Worker::new(bus.clone(), Upper, WorkerConfig::new(w("h")))
            .run(futures::future::pending())
            .await
            .unwrap();
        assert_eq!(report.halted.unwrap().failed, "librarian down");
        assert!(report.findings.is_empty());
        assert_eq!(
            bus.queued_tasks(&w("h")).await.unwrap(),
            1,
            "the task waits, untouched"
        );
    }

    #[tokio::test]
    async fn a_failing_step_halts_with_what_failed_where_and_what_was_saved() {
        let bus = MemoryBus::new();
        let dir = std::env::temp_dir().join(format!("swarm-job-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut job = Job::new(&bus, "paper");
        let n = job.step("outline", async { Ok(3) }).await.unwrap();
        assert_eq!(n, 3);
        job.write_file("paper-outline", &dir.join("outline.md"), "# Outline")
            .await
            .unwrap();
        assert_eq!(
            bus.load_draft("paper-outline").await.unwrap().as_deref(),
            Some("# Outline")
        );
        let err = job
            .step("section 2 of 3", async {
                Err::<(), _>(AgentError::from(Error::from(
                    swarmbus_core::llm::ModelError::new(
                        "gemini",
                        "gemini-flash",
                        swarmbus_core::llm::ModelErrorKind::Exhausted,
                        swarmbus_core::llm::ModelAction::Fail,
                        "all shards exhausted",
                    ),
                )))
            })
            .await
            .unwrap_err();
        let AgentError::Halted(report) = err else {
            panic!("expected a halt")
        };
        assert_eq!(report.step, "section 2 of 3");
        assert!(report.failed.contains("all shards exhausted"));
        assert_eq!(report.saved, vec!["draft paper-outline".to_owned()]);
        assert_eq!(bus.halted().await.unwrap(), Some((*report).clone()));
        assert!(
            job.step("section 3", async { Ok(()) }).await.is_err(),
            "no step after a halt"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn a_heartbeat_ttl_of_zero_is_a_typed_error_not_a_panic() {
        let bus = MemoryBus::new();
        let cfg = WorkerConfig::new(w("h")).heartbeat_ttl(Duration::ZERO);
        let err = Worker::new(bus.clone(), Upper, cfg)
            .run(futures::future::pending())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                AgentError::InvalidConfig {
                    field: "heartbeat_ttl",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(bus.count_alive_workers().await.unwrap(), 0);
    }

    #[test]
    fn a_heartbeat_ttl_of_duration_max_beats_hourly() {
        assert_eq!(
            beat_period(Duration::MAX).unwrap(),
            Duration::from_secs(3600)
        );
        assert_eq!(
            beat_period(Duration::from_millis(1)).unwrap(),
            Duration::from_millis(1)
        );
    }

    #[tokio::test]
    async fn gather_with_duration_max_waits_without_overflowing() {
        let bus = MemoryBus::new();
        let session = SessionId::new("s").unwrap();
        let coord = Coordinator::new(bus.clone(), session.clone());
        let task = Task::new(session.clone(), "count", "count");
        let f = Finding::new(w("h"), session, "t", "b")
            .with_id(task_finding_id(task.id))
            .with_task(task.id);
        bus.put_finding(&f).await.unwrap();
        let got = coord.gather(&[task.id], Duration::MAX).await.unwrap();
        assert_eq!(got.findings, vec![f]);
    }

    #[tokio::test]
    async fn a_failed_write_keeps_its_io_error_as_the_source() {
        let bus = MemoryBus::new();
        let mut job = Job::new(&bus, "paper");
        let missing = std::env::temp_dir()
            .join(format!("swarm-missing-{}", uuid::Uuid::new_v4()))
            .join("out.md");
        let err = job.write_file("draft", &missing, "text").await.unwrap_err();
        let source = std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<std::io::Error>())
            .expect("io::Error source");
        assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
        assert_eq!(
            job.saved(),
            ["draft draft".to_owned()],
            "the draft was saved first"
        );
    }
}
