//! One goal, end to end: plan → route → dispatch to workers → wait with a
//! deadline → synthesise an answer finding that cites the findings it used.
//! The halt switch and context safety are checked before every step.
//!
//! Planning and synthesis are traits: [`Planner`] and [`Synthesiser`] have
//! a model-backed implementation (`crate::coordinator`) and an offline one
//! ([`OfflinePlanner`], [`ExtractiveSynthesis`]) that says so in its output.
//! Workers are not started here: they run wherever their ids are served
//! (tokio tasks in this process, or `swarm worker run` processes on Redis).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use swarmbus_core::bus::Bus;
use swarmbus_core::keys::{FindingId, SessionId, WorkerId};
use swarmbus_core::llm::Usage;
use swarmbus_core::{Finding, Task, TaskFailure};

use crate::context::{ContextGuard, ContextVerdict};
use crate::error::{AgentError, Result};
use crate::plan::Plan;
use crate::policy::{DelegationPolicy, KeywordPolicy};
use crate::runtime::{Coordinator, Routed, TaskHandler, task_finding_id};
use crate::synthesis::{Pick, extractive_answer};

/// Makes the plan for a goal.
#[async_trait]
pub trait Planner: Send + Sync {
    /// Plans at most `max_tasks` independent tasks for `goal`.
    async fn plan(&self, goal: &str, max_tasks: usize) -> Result<Planned>;
}

/// A plan and what making it cost.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Planned {
    /// The plan.
    pub plan: Plan,
    /// Tokens the planning call used (zero offline).
    pub usage: Usage,
    /// Who planned (`offline` or the model id).
    pub by: String,
}

impl Planned {
    /// A plan made by `by`.
    pub fn new(plan: Plan, usage: Usage, by: impl Into<String>) -> Self {
        Self {
            plan,
            usage,
            by: by.into(),
        }
    }
}

/// Writes the answer to a goal from findings.
#[async_trait]
pub trait Synthesiser: Send + Sync {
    /// The answer to `goal` from `findings`; it cites the ids it used.
    async fn synthesise(&self, goal: &str, findings: &[Finding]) -> Result<Answer>;
}

/// An answer and what it cites.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Answer {
    /// The text.
    pub text: String,
    /// The findings it used.
    pub cites: Vec<FindingId>,
    /// Tokens the synthesis used (zero offline).
    pub usage: Usage,
    /// Who wrote it (`extractive` or the model id).
    pub by: String,
}

impl Answer {
    /// An answer.
    pub fn new(
        text: impl Into<String>,
        cites: Vec<FindingId>,
        usage: Usage,
        by: impl Into<String>,
    ) -> Self {
        Self {
            text: text.into(),
            cites,
            usage,
            by: by.into(),
        }
    }
}

/// The offline planner: [`crate::local::offline_plan`] for any goal.
#[derive(Debug, Clone)]
pub struct OfflinePlanner {
    pattern: String,
}

impl OfflinePlanner {
    /// The grep task searches for `pattern`.
    pub fn new(pattern: impl Into<String>) -> Self {
        Self {
            pattern: pattern.into(),
        }
    }

    /// The search pattern.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

#[async_trait]
impl Planner for OfflinePlanner {
    async fn plan(&self, _goal: &str, max_tasks: usize) -> Result<Planned> {
        let mut plan = crate::local::offline_plan(&self.pattern);
        plan.tasks.truncate(max_tasks.max(1));
        Ok(Planned::new(plan, Usage::default(), "offline"))
    }
}

/// The offline synthesis: [`extractive_answer`] with [`Pick::Every`],
/// citing every finding.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtractiveSynthesis;

#[async_trait]
impl Synthesiser for ExtractiveSynthesis {
    async fn synthesise(&self, goal: &str, findings: &[Finding]) -> Result<Answer> {
        let extract = extractive_answer(goal, findings, Pick::Every);
        Ok(Answer::new(
            extract.text,
            extract.citations,
            Usage::default(),
            "extractive",
        ))
    }
}

/// How a goal run goes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RunConfig {
    /// The session of every task and finding.
    pub session: SessionId,
    /// The workers tasks are queued for (round-robin).
    pub workers: Vec<WorkerId>,
    /// The coordinator's id (author of the answer finding).
    pub coordinator: WorkerId,
    /// Most tasks a plan may have.
    pub max_tasks: usize,
    /// How long to wait for the workers.
    pub deadline: Duration,
    /// Context safety.
    pub guard: ContextGuard,
    /// Tokens per finding for `context:active` (the brief's 100).
    pub tokens_per_finding: u64,
}

impl RunConfig {
    /// Defaults: at most 8 tasks, a 10-minute deadline, the brief's 5,000
    /// finding limit.
    pub fn new(session: SessionId, workers: Vec<WorkerId>, coordinator: WorkerId) -> Self {
        Self {
            session,
            workers,
            coordinator,
            max_tasks: 8,
            deadline: Duration::from_secs(600),
            guard: ContextGuard::default(),
            tokens_per_finding: 100,
        }
    }

    /// Sets the deadline.
    pub fn deadline(mut self, d: Duration) -> Self {
        self.deadline = d;
        self
    }

    /// Sets the most tasks a plan may have.
    pub fn max_tasks(mut self, n: usize) -> Self {
        self.max_tasks = n;
        self
    }

    /// Sets the context guard.
    pub fn guard(mut self, guard: ContextGuard) -> Self {
        self.guard = guard;
        self
    }
}

/// What a goal run did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RunReport {
    /// The goal.
    pub goal: String,
    /// The plan and who made it.
    pub planned: Planned,
    /// Every task, where it went and why.
    pub routed: Vec<Routed>,
    /// Findings of the tasks.
    pub findings: Vec<Finding>,
    /// Tasks stopped with a report.
    pub failed: Vec<TaskFailure>,
    /// The answer finding (it cites the findings used).
    pub answer: Finding,
    /// Who wrote the answer.
    pub answered_by: String,
    /// Tokens of the coordinator's own calls (plan + synthesis).
    pub coordinator_usage: Usage,
}

impl RunReport {
    /// The run as text: the plan and where each task went, the findings,
    /// the stopped tasks and the answer (what `swarm run` and the examples
    /// print).
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Plan ({} tasks, by {}):",
            self.routed.len(),
            self.planned.by
        );
        for r in &self.routed {
            let _ = writeln!(
                out,
                "  {} → {} ({:?} tier, {:?}): {}",
                r.task.kind,
                r.worker
                    .as_ref()
                    .map_or("coordinator".to_owned(), ToString::to_string),
                r.routing.tier,
                r.routing.reason,
                r.task.instructions
            );
        }
        let _ = writeln!(out, "Findings:");
        for f in &self.findings {
            let _ = writeln!(out, "  [{}] {} ({})", f.id, f.title, f.worker);
        }
        for f in &self.failed {
            let _ = writeln!(out, "  STOPPED {}: {}", f.task.instructions, f.report);
        }
        let _ = write!(
            out,
            "\nAnswer (finding {}, by {}):\n{}",
            self.answer.id, self.answered_by, self.answer.body
        );
        out
    }
}

/// The coordinator side of a goal run.
pub struct GoalRun<P = KeywordPolicy> {
    bus: Arc<dyn Bus>,
    planner: Arc<dyn Planner>,
    synthesiser: Arc<dyn Synthesiser>,
    coordinator_work: Option<Arc<dyn TaskHandler>>,
    policy: Option<P>,
    config: RunConfig,
}

impl<P> std::fmt::Debug for GoalRun<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoalRun")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl GoalRun<KeywordPolicy> {
    /// A run with the keyword delegation policy.
    pub fn new(
        bus: Arc<dyn Bus>,
        planner: Arc<dyn Planner>,
        synthesiser: Arc<dyn Synthesiser>,
        config: RunConfig,
    ) -> Self {
        Self {
            bus,
            planner,
            synthesiser,
            coordinator_work: None,
            policy: Some(KeywordPolicy::default()),
            config,
        }
    }
}

impl<P: DelegationPolicy + Clone> GoalRun<P> {
    /// Uses another delegation policy.
    pub fn with_policy<Q: DelegationPolicy + Clone>(self, policy: Q) -> GoalRun<Q> {
        GoalRun {
            bus: self.bus,
            planner: self.planner,
            synthesiser: self.synthesiser,
            coordinator_work: self.coordinator_work,
            policy: Some(policy),
            config: self.config,
        }
    }

    /// Who does the tasks the policy keeps on the coordinator tier (without
    /// one they are done by the workers like the rest, and counted as
    /// coordinator work in the statistics).
    pub fn coordinator_work(mut self, handler: Arc<dyn TaskHandler>) -> Self {
        self.coordinator_work = Some(handler);
        self
    }

    /// Stops with [`AgentError::Halted`] or [`AgentError::ContextFull`]
    /// when the swarm must not take another step.
    async fn check_step(&self) -> Result<()> {
        if let Some(h) = self.bus.halted().await? {
            return Err(AgentError::Halted(Box::new(h)));
        }
        match self
            .config
            .guard
            .check_bus(&*self.bus, self.config.tokens_per_finding)
            .await?
        {
            ContextVerdict::PauseAndSummarise { findings, limit } => {
                Err(AgentError::ContextFull { findings, limit })
            }
            _ => Ok(()),
        }
    }

    /// Runs `goal`: plan, dispatch, wait, synthesise. A malformed plan, a
    /// halt, a full context or a missed deadline stops the run with the
    /// error that says so; failed tasks are reported in the answer's run
    /// report (and the answer is written from the findings there are).
    pub async fn run(&self, goal: &str) -> Result<RunReport> {
        let cfg = &self.config;
        self.check_step().await?;
        let planned = self.planner.plan(goal, cfg.max_tasks).await?;

        self.check_step().await?;
        let policy = self
            .policy
            .clone()
            .ok_or_else(|| AgentError::InvalidConfig {
                field: "policy",
                reason: "no delegation policy".into(),
            })?;
        let coordinator = Coordinator::shared(Arc::clone(&self.bus), cfg.session.clone(), policy);
        let tasks: Vec<Task> = planned
            .plan
            .tasks
            .iter()
            .map(|t| {
                let mut payload = t.payload.clone();
                payload.insert("allow_write".into(), t.allow_write.into());
                payload.insert("goal".into(), goal.into());
                Task::new(cfg.session.clone(), t.kind.clone(), t.instructions.clone())
                    .with_payload(serde_json::Value::Object(payload))
            })
            .collect();
        // Without a coordinator handler every task goes to a worker, but
        // the routing is still recorded.
        let workers_for_all = self.coordinator_work.is_none();
        let mut routed = coordinator.dispatch(tasks, &cfg.workers).await?;
        if workers_for_all {
            for (i, r) in routed.iter_mut().filter(|r| r.worker.is_none()).enumerate() {
                let w = cfg.workers.get(i % cfg.workers.len().max(1)).cloned();
                if let Some(w) = &w {
                    self.bus.push_task(w, &r.task).await?;
                }
                r.worker = w;
            }
        } else if let Some(handler) = &self.coordinator_work {
            for r in routed.iter().filter(|r| r.worker.is_none()) {
                self.check_step().await?;
                let finding = match handler.handle(&r.task).await {
                    Ok(out) => Finding::new(
                        cfg.coordinator.clone(),
                        cfg.session.clone(),
                        out.title,
                        out.body,
                    )
                    .with_id(task_finding_id(r.task.id))
                    .with_task(r.task.id)
                    .with_tags(out.tags)
                    .citing(out.cites),
                    Err(why) => Finding::new(
                        cfg.coordinator.clone(),
                        cfg.session.clone(),
                        format!("FAILED: {}", r.task.kind),
                        why,
                    )
                    .with_id(task_finding_id(r.task.id))
                    .with_task(r.task.id)
                    .with_tags(["failed"]),
                };
                self.bus.put_finding(&finding).await?;
            }
        }
        let ids: Vec<_> = routed.iter().map(|r| r.task.id).collect();
        let gathered = coordinator.gather(&ids, cfg.deadline).await?;
        if !gathered.pending.is_empty() {
            return Err(AgentError::Deadline {
                pending: gathered.pending.len(),
                total: ids.len(),
                after: cfg.deadline,
            });
        }

        self.check_step().await?;
        let answer = self
            .synthesiser
            .synthesise(goal, &gathered.findings)
            .await?;
        let mut body = answer.text.clone();
        if !gathered.failed.is_empty() {
            body.push_str("\n\nTasks stopped with a report:\n");
            for f in &gathered.failed {
                body.push_str(&format!("- {}: {}\n", f.task.instructions, f.report));
            }
        }
        let finding = Finding::new(
            cfg.coordinator.clone(),
            cfg.session.clone(),
            format!("Answer: {}", crate::error::cut(goal, 120)),
            body,
        )
        .with_tags(["answer", "synthesis"])
        .citing(answer.cites.iter().cloned());
        self.bus.put_finding(&finding).await?;
        let coordinator_usage = planned.usage + answer.usage;
        Ok(RunReport {
            goal: goal.to_owned(),
            planned,
            routed,
            findings: gathered.findings,
            failed: gathered.failed,
            answer: finding,
            answered_by: answer.by,
            coordinator_usage,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalWork;
    use crate::runtime::{Worker, WorkerConfig};
    use swarmbus_core::{FindingStore, HaltReport, HaltSwitch, TaskQueue};
    use swarmbus_memory::MemoryBus;

    fn w(s: &str) -> WorkerId {
        WorkerId::new(s).unwrap()
    }

    fn repo() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_offline_run_plans_dispatches_and_answers_citing_every_finding() {
        let bus = MemoryBus::new();
        let shared: Arc<dyn Bus> = Arc::new(bus.clone());
        let ids = vec![w("haiku-1"), w("haiku-2"), w("haiku-3")];
        let runs: Vec<_> = ids
            .iter()
            .map(|id| {
                let cfg = WorkerConfig::new(id.clone())
                    .claim_wait(Duration::from_millis(50))
                    .idle_exit(Duration::from_millis(500));
                tokio::spawn(
                    Worker::new(bus.clone(), LocalWork::new(repo()), cfg)
                        .run(futures::future::pending()),
                )
            })
            .collect();
        let cfg = RunConfig::new(SessionId::new("run").unwrap(), ids, w("sonnet"))
            .deadline(Duration::from_secs(30));
        let run = GoalRun::new(
            shared,
            Arc::new(OfflinePlanner::new("pub fn")),
            Arc::new(ExtractiveSynthesis),
            cfg,
        );
        let report = run.run("summarise this crate").await.unwrap();
        assert_eq!(report.planned.by, "offline");
        assert_eq!(report.findings.len(), 3);
        assert!(report.failed.is_empty());
        let mut cited = report.answer.cites.clone();
        let mut found: Vec<_> = report.findings.iter().map(|f| f.id.clone()).collect();
        cited.sort();
        found.sort();
        assert_eq!(cited, found);
        assert!(
            report
                .answer
                .body
                .starts_with("Extractive summary (offline")
        );
        assert_eq!(
            bus.get_finding(&report.answer.id).await.unwrap(),
            Some(report.answer.clone())
        );
        for r in runs {
            r.await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn a_halted_swarm_does_not_even_plan() {
        let bus = MemoryBus::new();
        bus.halt(&HaltReport::new("librarian down", "step 1"))
            .await
            .unwrap();
        let cfg = RunConfig::new(SessionId::new("run").unwrap(), vec![w("h")], w("sonnet"));
        let run = GoalRun::new(
            Arc::new(bus.clone()),
            Arc::new(OfflinePlanner::new("x")),
            Arc::new(ExtractiveSynthesis),
            cfg,
        );
        let e = run.run("goal").await.unwrap_err();
        assert_eq!(e.halt_report().unwrap().failed, "librarian down");
        assert_eq!(bus.queued_tasks(&w("h")).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn over_the_context_limit_the_run_stops_to_summarise() {
        let bus = MemoryBus::new();
        for i in 0..3 {
            bus.put_finding(&Finding::new(
                w("x"),
                SessionId::new("old").unwrap(),
                format!("f{i}"),
                "b",
            ))
            .await
            .unwrap();
        }
        let cfg = RunConfig::new(SessionId::new("run").unwrap(), vec![w("h")], w("sonnet"))
            .guard(ContextGuard::new(2));
        let run = GoalRun::new(
            Arc::new(bus.clone()),
            Arc::new(OfflinePlanner::new("x")),
            Arc::new(ExtractiveSynthesis),
            cfg,
        );
        let e = run.run("goal").await.unwrap_err();
        assert!(
            matches!(
                e,
                AgentError::ContextFull {
                    findings: 3,
                    limit: 2
                }
            ),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn a_missed_deadline_is_reported_not_waited_out() {
        let bus = MemoryBus::new();
        let cfg = RunConfig::new(
            SessionId::new("run").unwrap(),
            vec![w("nobody")],
            w("sonnet"),
        )
        .deadline(Duration::from_millis(100));
        let run = GoalRun::new(
            Arc::new(bus.clone()),
            Arc::new(OfflinePlanner::new("x")),
            Arc::new(ExtractiveSynthesis),
            cfg,
        );
        let e = run.run("goal").await.unwrap_err();
        assert!(
            matches!(
                e,
                AgentError::Deadline {
                    pending: 3,
                    total: 3,
                    ..
                }
            ),
            "{e:?}"
        );
    }
}
