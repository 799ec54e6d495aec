//! Budgets per session, per worker and global: reserve an estimate before a
//! call, commit the actual cost after, refuse once a budget is reached.
//!
//! Each budget is a named integer counter of micro-dollars on the bus
//! (`budget-global`, `budget-session-<id>`, `budget-worker-<id>`) holding
//! what was spent plus what is reserved. A reservation is one atomic
//! `counter_try_add(name, estimate, limit)`, granted only while the counter is
//! below the limit and stays at or below it: many tasks racing, in one process
//! or many sharing a Redis, can never reserve past a limit. Committing adds
//! `actual - estimate`, so a call that cost more than estimated may take the
//! counter over the limit, and every later reservation is refused (`>=`).
//!
//! Amounts are rounded UP to micro-dollars and limits DOWN, so a budget
//! never under-counts.
//! A call needing several budgets reserves them in a fixed order (global,
//! session, worker) and gives back the ones it got when a later one refuses;
//! in between, a racing task may see the first counter higher than it ends
//! up, and be refused: budgets err on the side of refusing, never of
//! overspending. A reservation dropped without commit or release stays held
//! (it is `#[must_use]`).

use std::fmt;
use std::sync::Arc;

use swarmbus_core::bus::Counters;
use swarmbus_core::keys::{CounterName, SessionId, WorkerId};

use crate::error::{CostError, Result};
use crate::money::Money;

/// The limits. `None`: that budget is not enforced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BudgetLimits {
    /// Across every call on the bus.
    pub global: Option<Money>,
    /// Per session.
    pub per_session: Option<Money>,
    /// Per worker.
    pub per_worker: Option<Money>,
}

impl BudgetLimits {
    /// No budget enforced.
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// Sets the global limit.
    pub fn global(mut self, limit: Money) -> Self {
        self.global = Some(limit);
        self
    }

    /// Sets the per-session limit.
    pub fn per_session(mut self, limit: Money) -> Self {
        self.per_session = Some(limit);
        self
    }

    /// Sets the per-worker limit.
    pub fn per_worker(mut self, limit: Money) -> Self {
        self.per_worker = Some(limit);
        self
    }

    /// True when no budget is enforced.
    pub fn is_unlimited(&self) -> bool {
        self.global.is_none() && self.per_session.is_none() && self.per_worker.is_none()
    }
}

/// One budget.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BudgetScope {
    /// Every call.
    Global,
    /// One session's calls.
    Session(SessionId),
    /// One worker's calls.
    Worker(WorkerId),
}

impl BudgetScope {
    /// The counter holding the budget's spend and reservations, in
    /// micro-dollars. Fails when the id is too long to fit a counter name.
    pub fn counter(&self) -> Result<CounterName> {
        let name = match self {
            BudgetScope::Global => "budget-global".to_owned(),
            BudgetScope::Session(s) => format!("budget-session-{s}"),
            BudgetScope::Worker(w) => format!("budget-worker-{w}"),
        };
        CounterName::new(name).map_err(|e| CostError::InvalidInput {
            field: "budget scope",
            reason: e.to_string(),
        })
    }
}

impl fmt::Display for BudgetScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetScope::Global => f.write_str("global"),
            BudgetScope::Session(s) => write!(f, "session {s}"),
            BudgetScope::Worker(w) => write!(f, "worker {w}"),
        }
    }
}

#[derive(Debug)]
struct Hold {
    scope: BudgetScope,
    counter: CounterName,
    micros: i64,
}

/// Money held on budgets for a call in flight. Commit it with the actual
/// cost, or release it if the call was never made.
#[derive(Debug)]
#[must_use = "a reservation stays held until committed or released"]
pub struct Reservation {
    holds: Vec<Hold>,
    estimate: Money,
}

impl Reservation {
    /// The estimate reserved (before rounding up to micro-dollars).
    pub fn estimate(&self) -> Money {
        self.estimate
    }

    /// The budgets held.
    pub fn scopes(&self) -> impl Iterator<Item = &BudgetScope> {
        self.holds.iter().map(|h| &h.scope)
    }
}

/// Budgets on a bus's counters. `B` may be `dyn Bus`.
pub struct Budgets<B: ?Sized> {
    bus: Arc<B>,
    limits: BudgetLimits,
}

impl<B: ?Sized> Clone for Budgets<B> {
    fn clone(&self) -> Self {
        Self {
            bus: Arc::clone(&self.bus),
            limits: self.limits,
        }
    }
}

impl<B: ?Sized> fmt::Debug for Budgets<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Budgets")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl<B: Counters + ?Sized> Budgets<B> {
    /// Budgets with `limits` on `bus`.
    pub fn new(bus: Arc<B>, limits: BudgetLimits) -> Self {
        Self { bus, limits }
    }

    /// The limits.
    pub fn limits(&self) -> &BudgetLimits {
        &self.limits
    }

    /// The budgets that apply to a call of `worker` in `session`, with
    /// their limits, in reservation order.
    fn applicable(
        &self,
        worker: Option<&WorkerId>,
        session: Option<&SessionId>,
    ) -> Vec<(BudgetScope, Money)> {
        let mut out = Vec::with_capacity(3);
        if let Some(limit) = self.limits.global {
            out.push((BudgetScope::Global, limit));
        }
        if let (Some(limit), Some(s)) = (self.limits.per_session, session) {
            out.push((BudgetScope::Session(s.clone()), limit));
        }
        if let (Some(limit), Some(w)) = (self.limits.per_worker, worker) {
            out.push((BudgetScope::Worker(w.clone()), limit));
        }
        out
    }

    /// Reserves `estimate` on every budget that applies, or on none:
    /// [`CostError::BudgetExhausted`] names the budget that refused.
    pub async fn reserve(
        &self,
        worker: Option<&WorkerId>,
        session: Option<&SessionId>,
        estimate: Money,
    ) -> Result<Reservation> {
        let micros = estimate.to_micros_ceil().max(0);
        let mut holds: Vec<Hold> = Vec::new();
        for (scope, limit) in self.applicable(worker, session) {
            let counter = match scope.counter() {
                Ok(c) => c,
                Err(e) => {
                    self.give_back(&holds).await?;
                    return Err(e);
                }
            };
            let granted = match self
                .bus
                .counter_try_add(&counter, micros, limit.to_micros_floor())
                .await
            {
                Ok(granted) => granted,
                Err(e) => {
                    self.give_back(&holds).await?;
                    return Err(e.into());
                }
            };
            if granted.is_none() {
                self.give_back(&holds).await?;
                let spent = self
                    .bus
                    .counters(std::slice::from_ref(&counter))
                    .await?
                    .first()
                    .copied()
                    .unwrap_or(0);
                return Err(CostError::BudgetExhausted {
                    scope: scope.to_string(),
                    limit,
                    spent: Money::from_micros(spent),
                    requested: Money::from_micros(micros),
                });
            }
            holds.push(Hold {
                scope,
                counter,
                micros,
            });
        }
        Ok(Reservation { holds, estimate })
    }

    /// The call cost `actual`: each held budget moves by
    /// `actual - estimate` (both rounded up to micro-dollars).
    pub async fn commit(&self, reservation: Reservation, actual: Money) -> Result<()> {
        let actual = actual.to_micros_ceil().max(0);
        for hold in &reservation.holds {
            let delta = actual.saturating_sub(hold.micros);
            if delta != 0 {
                self.bus.counter_add(&hold.counter, delta).await?;
            }
        }
        Ok(())
    }

    /// The call was never made: gives the reservation back.
    pub async fn release(&self, reservation: Reservation) -> Result<()> {
        self.give_back(&reservation.holds).await
    }

    async fn give_back(&self, holds: &[Hold]) -> Result<()> {
        for hold in holds {
            if hold.micros != 0 {
                self.bus
                    .counter_add(&hold.counter, hold.micros.saturating_neg())
                    .await?;
            }
        }
        Ok(())
    }

    /// Spent plus reserved on one budget.
    pub async fn spent(&self, scope: &BudgetScope) -> Result<Money> {
        let counter = scope.counter()?;
        let value = self
            .bus
            .counters(std::slice::from_ref(&counter))
            .await?
            .first()
            .copied()
            .unwrap_or(0);
        Ok(Money::from_micros(value))
    }
}
