//! The accounting seam: one [`Meter`] prices each model call once.
//!
//! Every model call of the runtime (a worker's step, the coordinator's plan
//! and synthesis, the librarian's answer) and every call booked from
//! outside (Claude Code's) goes through the same three steps:
//!
//! 1. [`Meter::reserve`] an estimate of its usage for a [`MeteredCall`]:
//!    the meter resolves the call's tier once, holds the estimate's price on
//!    every budget that applies and returns a [`Hold`]; a refusal
//!    ([`Error::Refused`]) means the call must not be made.
//! 2. [`Meter::settle`] the hold with the model that answered and the usage
//!    it reported: the meter prices that usage exactly, once, books it and
//!    returns [`Settled`] (exact [`Money`], or `None` when the model has no
//!    price: never $0). When booking fails the hold comes back in
//!    [`Unsettled`], to be settled again or dropped (the call then stays on
//!    the books at its estimate).
//! 3. [`Meter::cancel`] the hold of a call that was not made.
//!
//! Money crosses this seam as [`Money`] (exact pico-dollars), never as a
//! float. `swarmbus-cost`'s `Accountant` implements the meter; core knows no
//! prices.

use std::any::Any;
use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::error::{Error, Result};
use crate::keys::{SessionId, TaskId, TierName, WorkerId};
use crate::llm::Usage;
use crate::money::Money;
use crate::policy::Tier;

/// Who makes a model call, for what, on which model: what a [`Meter`] needs
/// to resolve the call's tier and the budgets that apply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MeteredCall {
    /// The role the call is billed to; the meter resolves its tier name
    /// and billing from its one tier configuration.
    pub role: Tier,
    /// The model asked.
    pub model: String,
    /// The worker (or coordinator, or librarian) making it.
    pub worker: Option<WorkerId>,
    /// The session it belongs to.
    pub session: Option<SessionId>,
    /// The task it serves.
    pub task: Option<TaskId>,
    /// When it was made; `None`: now, on the meter's clock (the time
    /// chooses the price row in force).
    pub at: Option<DateTime<Utc>>,
}

impl MeteredCall {
    /// A call of `role` to `model`.
    pub fn new(role: Tier, model: impl Into<String>) -> Self {
        Self {
            role,
            model: model.into(),
            worker: None,
            session: None,
            task: None,
            at: None,
        }
    }

    /// Made by `worker`.
    pub fn worker(mut self, worker: WorkerId) -> Self {
        self.worker = Some(worker);
        self
    }

    /// In `session`.
    pub fn session(mut self, session: SessionId) -> Self {
        self.session = Some(session);
        self
    }

    /// For `task` (none when `None`).
    pub fn task(mut self, task: impl Into<Option<TaskId>>) -> Self {
        self.task = task.into();
        self
    }

    /// Made at `at` rather than now.
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = Some(at);
        self
    }
}

/// A call's estimate held by a [`Meter`] until the call is settled or
/// cancelled. The meter keeps what it needs in the hold's state (opaque to
/// the caller). Dropped unsettled, a hold behaves as the meter documents
/// (the accountant keeps the estimate on the books: the call may have been
/// made).
#[must_use = "settle or cancel a hold, or its estimate stays on the books"]
pub struct Hold {
    id: uuid::Uuid,
    estimate: Option<Money>,
    state: Box<dyn Any + Send + Sync>,
}

impl Hold {
    /// A hold `id` of `estimate` (`None`: the call has no price) carrying
    /// the meter's own `state`.
    pub fn new(id: uuid::Uuid, estimate: Option<Money>, state: impl Any + Send + Sync) -> Self {
        Self {
            id,
            estimate,
            state: Box::new(state),
        }
    }

    /// The hold's id (the accountant's estimate record and ledger entry
    /// carry it).
    pub fn id(&self) -> uuid::Uuid {
        self.id
    }

    /// The estimate held, `None` when the model has no price.
    pub fn estimate(&self) -> Option<Money> {
        self.estimate
    }

    /// The meter's state, when it is a `T`; the hold back otherwise (a
    /// hold of another meter).
    pub fn into_state<T: Any>(self) -> std::result::Result<Box<T>, Self> {
        let Self {
            id,
            estimate,
            state,
        } = self;
        state.downcast::<T>().map_err(|state| Self {
            id,
            estimate,
            state,
        })
    }
}

impl fmt::Debug for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hold")
            .field("id", &self.id)
            .field("estimate", &self.estimate)
            .finish_non_exhaustive()
    }
}

/// A settled call: its exact price, once.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Settled {
    /// The hold it settled.
    pub hold: uuid::Uuid,
    /// The tier it was booked on (`cost:<tier>`).
    pub tier: TierName,
    /// The exact price; `None` when the model that answered has no price
    /// (never counted as $0).
    pub cost: Option<Money>,
    /// The estimate that was held.
    pub estimate: Option<Money>,
}

impl Settled {
    /// A settlement of `hold` on `tier` at `cost`.
    pub fn new(
        hold: uuid::Uuid,
        tier: TierName,
        cost: Option<Money>,
        estimate: Option<Money>,
    ) -> Self {
        Self {
            hold,
            tier,
            cost,
            estimate,
        }
    }

    /// What the call counts against a dollar limit: its price, else (an
    /// unpriced answer) the estimate held, else `None`.
    pub fn counted(&self) -> Option<Money> {
        self.cost.or(self.estimate)
    }
}

/// A settle that did not book: the error and the hold, to settle again
/// (the accountant books a call once however often it is settled) or to
/// drop (the call stays on the books at its estimate).
#[derive(Debug)]
pub struct Unsettled {
    /// Why it was not booked.
    pub error: Error,
    /// The hold, unsettled.
    pub hold: Hold,
}

impl fmt::Display for Unsettled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "call {} not booked: {}", self.hold.id, self.error)
    }
}

impl std::error::Error for Unsettled {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl From<Unsettled> for Error {
    fn from(u: Unsettled) -> Self {
        u.error
    }
}

/// Prices, budgets and books model calls: reserve → [`Hold`], settle →
/// exact [`Money`], cancel. See the [module documentation](self).
#[async_trait]
pub trait Meter: Send + Sync {
    /// Holds the price of `estimate` for `call` on every budget that
    /// applies. [`Error::Refused`] when a budget refuses it (or cannot
    /// price it): the call must not be made.
    async fn reserve(&self, call: MeteredCall, estimate: Usage) -> Result<Hold>;

    /// The call of `hold` was answered by `model` with `usage`: prices and
    /// books it once and commits its budgets at the exact price.
    async fn settle(
        &self,
        hold: Hold,
        model: &str,
        usage: Usage,
    ) -> std::result::Result<Settled, Unsettled>;

    /// The call of `hold` was not made (or failed without usage): gives
    /// its estimate back.
    async fn cancel(&self, hold: Hold) -> Result<()>;

    /// Books a call made outside any budget (no estimate held first). The
    /// default reserves `usage` and settles it.
    async fn record(&self, call: MeteredCall, usage: Usage) -> Result<Settled> {
        let model = call.model.clone();
        let hold = self.reserve(call, usage).await?;
        self.settle(hold, &model, usage).await.map_err(Error::from)
    }
}

#[async_trait]
impl<M: Meter + ?Sized> Meter for std::sync::Arc<M> {
    async fn reserve(&self, call: MeteredCall, estimate: Usage) -> Result<Hold> {
        (**self).reserve(call, estimate).await
    }

    async fn settle(
        &self,
        hold: Hold,
        model: &str,
        usage: Usage,
    ) -> std::result::Result<Settled, Unsettled> {
        (**self).settle(hold, model, usage).await
    }

    async fn cancel(&self, hold: Hold) -> Result<()> {
        (**self).cancel(hold).await
    }

    async fn record(&self, call: MeteredCall, usage: Usage) -> Result<Settled> {
        (**self).record(call, usage).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_gives_its_state_back_to_its_own_meter_only() {
        let id = uuid::Uuid::new_v4();
        let hold = Hold::new(id, Some(Money::from_micros(5)), 7_u32);
        let hold = hold.into_state::<String>().unwrap_err();
        assert_eq!(hold.id(), id);
        assert_eq!(hold.estimate(), Some(Money::from_micros(5)));
        assert_eq!(*hold.into_state::<u32>().unwrap(), 7);
    }

    #[test]
    fn an_unpriced_answer_counts_at_its_estimate() {
        let tier = TierName::new("haiku").unwrap();
        let s = Settled::new(
            uuid::Uuid::nil(),
            tier.clone(),
            None,
            Some(Money::from_usd(1)),
        );
        assert_eq!(s.counted(), Some(Money::from_usd(1)));
        let s = Settled::new(uuid::Uuid::nil(), tier, Some(Money::ZERO), None);
        assert_eq!(s.counted(), Some(Money::ZERO));
    }
}
