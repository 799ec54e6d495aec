//! Tasks: the work queued for a worker ([`Task`]), a claim on it
//! ([`ClaimedTask`], [`TaskReceipt`]), why it was stopped ([`TaskFailure`])
//! and what a reclaim pass did ([`ReclaimReport`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::keys::{FindingId, SessionId, TaskId, WorkerId};
use crate::policy::Tier;

/// A unit of work for a worker, stored as JSON in `worker:tasks:<id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Task {
    /// Unique id.
    pub id: TaskId,
    /// The session it belongs to.
    pub session: SessionId,
    /// Short name of the kind of work (`grep`, `summarise`).
    pub kind: String,
    /// What to do, in words.
    pub instructions: String,
    /// Arguments for the handler.
    #[serde(default)]
    pub payload: serde_json::Value,
    /// The tier it was routed to.
    pub tier: Tier,
    /// A finding this task continues from (the active loop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continues: Option<FindingId>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

impl Task {
    /// A new worker-tier task with a fresh id.
    pub fn new(
        session: SessionId,
        kind: impl Into<String>,
        instructions: impl Into<String>,
    ) -> Self {
        Self {
            id: TaskId::random(),
            session,
            kind: kind.into(),
            instructions: instructions.into(),
            payload: serde_json::Value::Null,
            tier: Tier::Worker,
            continues: None,
            created_at: Utc::now(),
        }
    }

    /// Sets the handler's arguments.
    pub fn with_payload(mut self, payload: serde_json::Value) -> Self {
        self.payload = payload;
        self
    }

    /// Sets the tier.
    pub fn with_tier(mut self, tier: Tier) -> Self {
        self.tier = tier;
        self
    }

    /// Continues from a finding.
    pub fn continuing(mut self, finding: FindingId) -> Self {
        self.continues = Some(finding);
        self
    }
}

/// A task a worker has claimed and not yet acknowledged or failed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ClaimedTask {
    /// The task.
    pub task: Task,
    /// Who claimed it.
    pub worker: WorkerId,
    /// How many times it has been handed out, this time included.
    pub deliveries: u32,
    /// An opaque receipt the bus uses to find the claim again.
    pub receipt: TaskReceipt,
}

/// The receipt of a claimed task: opaque (on Redis, the task's bytes as
/// queued), only given back to acknowledge or fail the claim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskReceipt(String);

impl TaskReceipt {
    /// Wraps a bus's own receipt (for bus implementations).
    pub fn new(receipt: impl Into<String>) -> Self {
        Self(receipt.into())
    }

    /// The receipt as the bus made it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for TaskReceipt {
    fn from(receipt: String) -> Self {
        Self(receipt)
    }
}

impl From<&str> for TaskReceipt {
    fn from(receipt: &str) -> Self {
        Self(receipt.to_owned())
    }
}

impl ClaimedTask {
    /// Builds a claim (for bus implementations).
    pub fn new(
        task: Task,
        worker: WorkerId,
        deliveries: u32,
        receipt: impl Into<TaskReceipt>,
    ) -> Self {
        Self {
            task,
            worker,
            deliveries,
            receipt: receipt.into(),
        }
    }
}

/// Why a task was stopped: kept with the task, never retried silently.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TaskFailure {
    /// The task.
    pub task: Task,
    /// The worker that held it last.
    pub worker: WorkerId,
    /// What went wrong.
    pub report: String,
    /// How many times it was handed out.
    pub deliveries: u32,
    /// Whether it was dead-lettered by reclaim (too many deliveries) rather
    /// than failed by its worker.
    #[serde(default)]
    pub dead_lettered: bool,
    /// When it was stopped.
    pub at: DateTime<Utc>,
}

impl TaskFailure {
    /// A failure report for a claim.
    pub fn new(claim: &ClaimedTask, report: impl Into<String>) -> Self {
        Self {
            task: claim.task.clone(),
            worker: claim.worker.clone(),
            report: report.into(),
            deliveries: claim.deliveries,
            dead_lettered: false,
            at: Utc::now(),
        }
    }

    /// Marks it dead-lettered.
    pub fn dead_lettered(mut self) -> Self {
        self.dead_lettered = true;
        self
    }
}

/// What a reclaim pass did.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct ReclaimReport {
    /// Tasks moved to the receiving worker's queue.
    pub requeued: Vec<TaskId>,
    /// Tasks over the delivery limit, moved to the failed list.
    pub dead_lettered: Vec<TaskId>,
    /// Dead workers whose tasks were taken.
    pub from_workers: Vec<WorkerId>,
}
