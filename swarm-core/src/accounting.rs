//! Accounting seams between the runtime and the accountant: the runtime
//! reports every model call's usage through [`UsageRecorder`];
//! `swarmbus-cost`'s accountant implements it (prices the call, appends it
//! to the ledger, keeps `cost:<tier>` current). Core knows no prices.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::keys::{TaskId, TierName, WorkerId};
use crate::llm::Usage;

/// One model call to account for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UsageRecord {
    /// The tier the call belongs to (`haiku`, `sonnet`, `gemini`).
    pub tier: TierName,
    /// The model that answered.
    pub model: String,
    /// Its usage.
    pub usage: Usage,
    /// The worker that made the call, when a worker did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerId>,
    /// The task it was for, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
    /// When the call was made.
    pub at: DateTime<Utc>,
}

impl UsageRecord {
    /// A record of `usage` by `model` on `tier`, now.
    pub fn new(tier: TierName, model: impl Into<String>, usage: Usage) -> Self {
        Self {
            tier,
            model: model.into(),
            usage,
            worker: None,
            task: None,
            at: Utc::now(),
        }
    }

    /// Sets the worker.
    pub fn worker(mut self, worker: WorkerId) -> Self {
        self.worker = Some(worker);
        self
    }

    /// Sets the task.
    pub fn task(mut self, task: TaskId) -> Self {
        self.task = Some(task);
        self
    }

    /// Sets the time.
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = at;
        self
    }
}

/// What recording a call cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RecordedCost {
    /// The price in US dollars (for display; the ledger keeps exact money),
    /// `None` when the model is unpriced (never reported as $0).
    pub usd: Option<f64>,
}

impl RecordedCost {
    /// A cost.
    pub const fn new(usd: Option<f64>) -> Self {
        Self { usd }
    }
}

/// Records model calls: the accountant's side of the runtime.
#[async_trait]
pub trait UsageRecorder: Send + Sync {
    /// Prices and records one call.
    async fn record_usage(&self, record: &UsageRecord) -> Result<RecordedCost>;

    /// Prices `record` without recording it (an estimate before a call).
    /// The default cannot tell ([`Quote::Unknown`]).
    fn quote(&self, record: &UsageRecord) -> Quote {
        let _ = record;
        Quote::Unknown
    }
}

/// A price asked before a call ([`UsageRecorder::quote`]).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Quote {
    /// The recorder cannot price in advance.
    Unknown,
    /// The model has no price: never counted as $0.
    Unpriced,
    /// Dollars.
    Usd(f64),
}

#[async_trait]
impl<R: UsageRecorder + ?Sized> UsageRecorder for std::sync::Arc<R> {
    async fn record_usage(&self, record: &UsageRecord) -> Result<RecordedCost> {
        (**self).record_usage(record).await
    }

    fn quote(&self, record: &UsageRecord) -> Quote {
        (**self).quote(record)
    }
}
