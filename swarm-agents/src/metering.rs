//! Budgets and the ledger, as the runtime sees them. Before each model call
//! its estimated cost is held on the budgets ([`BudgetGate::reserve`]; a
//! refusal stops the task); after it, the usage is recorded through core's
//! `UsageRecorder` (worker, task, tier, model) and the hold is committed
//! with the price the recorder returned, or released when no call was made.
//! [`Metering`] does both for a call.

use std::sync::Arc;

use async_trait::async_trait;
use swarmbus_core::Tier;
use swarmbus_core::accounting::{Quote, UsageRecord, UsageRecorder};
use swarmbus_core::clock::{Clock, SharedClock, SystemClock};
use swarmbus_core::keys::{SessionId, TaskId, WorkerId};
use swarmbus_core::llm::Usage;

/// Who makes a call, for what, on which model.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CallMeta {
    /// The worker (or coordinator) making it.
    pub worker: WorkerId,
    /// The session.
    pub session: SessionId,
    /// The task, when the call serves one.
    pub task: Option<TaskId>,
    /// The tier it is billed to.
    pub tier: Tier,
    /// The model asked (after the call: the model that answered).
    pub model: String,
}

impl CallMeta {
    /// A call of `worker` for `task`.
    pub fn new(
        worker: WorkerId,
        session: SessionId,
        task: impl Into<Option<TaskId>>,
        tier: Tier,
        model: impl Into<String>,
    ) -> Self {
        Self {
            worker,
            session,
            task: task.into(),
            tier,
            model: model.into(),
        }
    }

    /// The model that answered.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }
}

/// An estimate held on the budgets for one call in flight.
#[derive(Debug)]
#[non_exhaustive]
pub struct SpendHold {
    /// An id the gate gave it.
    pub id: u64,
}

impl SpendHold {
    /// A hold with the gate's id.
    pub fn new(id: u64) -> Self {
        Self { id }
    }
}

/// Holds a call's estimated cost on the budgets before it is made.
#[async_trait]
pub trait BudgetGate: Send + Sync {
    /// Holds the price of `estimate` for `call`; `Err` (why) refuses the
    /// call: the task stops with that report.
    async fn reserve(&self, call: &CallMeta, estimate: &Usage) -> Result<SpendHold, String>;

    /// The call `call` was made, used `usage` and was recorded at `usd`
    /// (`None`: unpriced): commits the hold (a gate may price `usage`
    /// exactly itself).
    async fn commit(&self, hold: SpendHold, call: &CallMeta, usage: &Usage, usd: Option<f64>);

    /// The call was not made (or failed without usage): releases the hold.
    async fn release(&self, hold: SpendHold);
}

/// The budget gate and the usage recorder of one runtime; either may be
/// absent (then that side is not enforced or not recorded).
#[derive(Clone)]
pub struct Metering {
    /// Reserves before each call.
    pub budget: Option<Arc<dyn BudgetGate>>,
    /// Records each call's usage.
    pub recorder: Option<Arc<dyn UsageRecorder>>,
    /// Stamps each record (the stamp chooses the price row in force).
    pub clock: SharedClock,
}

impl Default for Metering {
    fn default() -> Self {
        Self {
            budget: None,
            recorder: None,
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for Metering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metering")
            .field("budget", &self.budget.is_some())
            .field("recorder", &self.recorder.is_some())
            .finish()
    }
}

impl Metering {
    /// Neither budget nor ledger.
    pub fn none() -> Self {
        Self::default()
    }

    /// Records through `recorder`.
    pub fn recorder(mut self, recorder: Arc<dyn UsageRecorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Reserves through `budget`.
    pub fn budget(mut self, budget: Arc<dyn BudgetGate>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Stamps records with the time of `clock` (the system clock by
    /// default).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// What the recorder says `usage` of `call` would cost, before the
    /// call ([`Quote::Unknown`] without a recorder).
    pub fn quote(&self, call: &CallMeta, usage: &Usage) -> Quote {
        match &self.recorder {
            Some(r) => r.quote(
                &UsageRecord::new(call.tier.default_name(), call.model.clone(), *usage)
                    .worker(call.worker.clone())
                    .at(self.clock.now()),
            ),
            None => Quote::Unknown,
        }
    }

    /// Reserves `estimate` for `call`; `Err` is the budget's refusal.
    pub async fn reserve(
        &self,
        call: &CallMeta,
        estimate: &Usage,
    ) -> Result<Option<SpendHold>, String> {
        match &self.budget {
            Some(b) => b.reserve(call, estimate).await.map(Some),
            None => Ok(None),
        }
    }

    /// Releases a hold of a call that was not made.
    pub async fn release(&self, hold: Option<SpendHold>) {
        if let (Some(b), Some(h)) = (&self.budget, hold) {
            b.release(h).await;
        }
    }

    /// Records the call's usage (with worker, task, tier and model) and
    /// commits the hold with its price. Returns the dollars it cost when
    /// priced; `Err` when the ledger could not record it.
    pub async fn settle(
        &self,
        hold: Option<SpendHold>,
        call: &CallMeta,
        usage: Usage,
    ) -> Result<Option<f64>, String> {
        let usd = match &self.recorder {
            Some(r) => {
                let mut record =
                    UsageRecord::new(call.tier.default_name(), call.model.clone(), usage)
                        .worker(call.worker.clone())
                        .at(self.clock.now());
                if let Some(t) = call.task {
                    record = record.task(t);
                }
                match r.record_usage(&record).await {
                    Ok(cost) => cost.usd,
                    Err(e) => {
                        self.release(hold).await;
                        return Err(format!("the ledger did not record the call: {e}"));
                    }
                }
            }
            None => None,
        };
        if let (Some(b), Some(h)) = (&self.budget, hold) {
            b.commit(h, call, &usage, usd).await;
        }
        Ok(usd)
    }
}
