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
//! overspending.
//!
//! A reservation dropped without commit or release (an early return, a
//! panic, or its future cancelled, also half-way through `reserve`) is given
//! back by its `Drop`, on a task spawned on the current Tokio runtime.

use std::fmt;
use std::sync::Arc;

use swarmbus_core::bus::Counters;
use swarmbus_core::keys::{CounterName, SessionId, WorkerId};

use crate::error::{CostError, Result};
use swarmbus_core::money::Money;

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

/// Gives holds back, from `Drop` (type-erased: a reservation does not carry
/// the bus type).
trait GiveBack: Send + Sync {
    fn give_back_later(&self, holds: Vec<Hold>);
}

struct BusGiveBack<B: ?Sized>(Arc<B>);

impl<B: Counters + ?Sized + 'static> GiveBack for BusGiveBack<B> {
    fn give_back_later(&self, holds: Vec<Hold>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                holds = holds.len(),
                "a budget reservation was dropped outside a Tokio runtime: it stays held"
            );
            return;
        };
        let bus = Arc::clone(&self.0);
        runtime.spawn(async move {
            for hold in holds {
                if hold.micros == 0 {
                    continue;
                }
                if let Err(e) = bus
                    .counter_add(&hold.counter, hold.micros.saturating_neg())
                    .await
                {
                    tracing::warn!(budget = %hold.scope, error = %e,
                        "could not give back a dropped budget reservation");
                }
            }
        });
    }
}

/// Money held on budgets for a call in flight. Commit it with the actual
/// cost, or release it if the call was never made; dropped without either,
/// it is given back (in the background).
#[must_use = "a reservation is held until committed or released (or dropped)"]
pub struct Reservation {
    holds: Vec<Hold>,
    estimate: Money,
    giver: Arc<dyn GiveBack>,
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("holds", &self.holds)
            .field("estimate", &self.estimate)
            .finish_non_exhaustive()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let holds = std::mem::take(&mut self.holds);
        if !holds.is_empty() {
            self.giver.give_back_later(holds);
        }
    }
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

    /// Keeps the estimate on the budgets for good: the call was (maybe)
    /// made but its actual cost will not be committed (its booking failed).
    /// Nothing is given back, so the budgets never under-count it.
    pub fn keep(mut self) {
        self.holds.clear();
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

impl<B: Counters + ?Sized + 'static> Budgets<B> {
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
    /// [`CostError::BudgetExhausted`] names the budget that refused (also
    /// when giving back the budgets held before it fails: that failure is
    /// logged and the holds are given back in the background).
    pub async fn reserve(
        &self,
        worker: Option<&WorkerId>,
        session: Option<&SessionId>,
        estimate: Money,
    ) -> Result<Reservation> {
        let micros = estimate.to_micros_ceil().max(0);
        // Holds go into the reservation as they are granted: if this future
        // is dropped half-way, the reservation's Drop gives them back.
        let mut reservation = Reservation {
            holds: Vec::new(),
            estimate,
            giver: Arc::new(BusGiveBack(Arc::clone(&self.bus))),
        };
        for (scope, limit) in self.applicable(worker, session) {
            let counter = match scope.counter() {
                Ok(c) => c,
                Err(e) => return Err(self.undo(reservation, e).await),
            };
            let granted = match self
                .bus
                .counter_try_add(&counter, micros, limit.to_micros_floor())
                .await
            {
                Ok(granted) => granted,
                Err(e) => return Err(self.undo(reservation, e.into()).await),
            };
            if granted.is_none() {
                let spent = self
                    .bus
                    .counters(std::slice::from_ref(&counter))
                    .await
                    .ok()
                    .and_then(|v| v.first().copied());
                let refused = CostError::BudgetExhausted {
                    scope: scope.to_string(),
                    limit,
                    spent: Money::from_micros(spent.unwrap_or(0)),
                    requested: Money::from_micros(micros),
                };
                return Err(self.undo(reservation, refused).await);
            }
            reservation.holds.push(Hold {
                scope,
                counter,
                micros,
            });
        }
        Ok(reservation)
    }

    /// Gives back what `reservation` holds because of `cause`, and returns
    /// `cause`: a failed give-back is logged (what is left is given back
    /// when the reservation drops), never put in its place.
    async fn undo(&self, mut reservation: Reservation, cause: CostError) -> CostError {
        if let Err(e) = self.give_back(&mut reservation).await {
            tracing::warn!(error = %e, cause = %cause,
                "could not give back a partial budget reservation; retrying in the background");
        }
        cause
    }

    /// The call cost `actual`: each held budget moves by
    /// `actual - estimate` (both rounded up to micro-dollars). Should this
    /// future be dropped half-way, the budgets not yet moved keep the
    /// estimate (never under-counted).
    pub async fn commit(&self, mut reservation: Reservation, actual: Money) -> Result<()> {
        let actual = actual.to_micros_ceil().max(0);
        // Taken out first: a commit is never undone by the Drop.
        let holds = std::mem::take(&mut reservation.holds);
        for hold in &holds {
            let delta = actual.saturating_sub(hold.micros);
            if delta != 0 {
                self.bus.counter_add(&hold.counter, delta).await?;
            }
        }
        Ok(())
    }

    /// The call was never made: gives the reservation back.
    pub async fn release(&self, mut reservation: Reservation) -> Result<()> {
        self.give_back(&mut reservation).await
    }

    /// Gives back each hold in turn, removing it once given back; on an
    /// error the rest stay in the reservation (its Drop tries again).
    async fn give_back(&self, reservation: &mut Reservation) -> Result<()> {
        while let Some(hold) = reservation.holds.last() {
            if hold.micros != 0 {
                self.bus
                    .counter_add(&hold.counter, hold.micros.saturating_neg())
                    .await?;
            }
            reservation.holds.pop();
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
