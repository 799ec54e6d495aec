//! The accountant: the ledger and the budgets together, for the usual cycle
//! of a model call: [`Accountant::reserve`] an estimate, make the call,
//! [`Accountant::settle`] with the usage the provider reported (or
//! [`Accountant::cancel`] if the call was not made).
//!
//! Spend is never under-reported: the reservation writes an estimate record
//! ([`crate::estimate`]) before the call is made. Until the call is booked
//! (its ledger entry takes the hold's id) or cancelled, reports show it as
//! estimated spend at the reserved amount, apart from the exact spend: a
//! worker killed between the provider's answer and the ledger record, or a
//! bus away at settle time, leaves the estimate on the books. A booking that
//! arrives later replaces it; a booking retried is booked once.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use swarmbus_core::Tier;
use swarmbus_core::accounting::{Hold, Meter, MeteredCall, Settled, Unsettled};
use swarmbus_core::bus::{Counters, Journal};
use swarmbus_core::clock::{SharedClock, SystemClock};
use swarmbus_core::error::Result as CoreResult;
use swarmbus_core::llm::Usage;

use crate::budget::{BudgetLimits, Budgets, Reservation};
use crate::error::{CostError, Result};
use crate::estimate::Estimate;
use crate::ledger::{Call, Ledger, LedgerEntry};
use crate::pricing::Cost;
use crate::report::{Report, ReportFilter};
use crate::table::PriceTable;
use crate::tiers::Tiers;
use swarmbus_core::money::Money;

/// A call whose estimate is held on its budgets and written to the
/// estimates journal. Dropped without settle or cancel, its budgets are
/// given back (in the background) but its estimate stays on the books: the
/// call may have been made.
#[derive(Debug)]
#[must_use = "settle or cancel a pending call, or its estimate stays on the books"]
pub struct Pending {
    call: Call,
    reservation: Reservation,
    estimate: Estimate,
    booked: Option<LedgerEntry>,
    tried: bool,
}

impl Pending {
    /// The call.
    pub fn call(&self) -> &Call {
        &self.call
    }

    /// The estimate held.
    pub fn estimate(&self) -> Money {
        self.reservation.estimate()
    }

    /// The hold's id (its estimate record's, and its ledger entry's once
    /// booked).
    pub fn hold(&self) -> uuid::Uuid {
        self.estimate.hold
    }

    /// The estimate record written for it.
    pub fn estimate_record(&self) -> &Estimate {
        &self.estimate
    }

    /// Its ledger entry, once booked.
    pub fn booked(&self) -> Option<&LedgerEntry> {
        self.booked.as_ref()
    }

    /// The model that answered and when: the booking records and prices
    /// these (before it is booked; no effect after).
    pub fn answered(&mut self, model: impl Into<String>, at: DateTime<Utc>) {
        if self.booked.is_none() {
            self.call.model = model.into();
            self.call.at = at;
        }
    }
}

/// Prices, records and budgets the calls of a swarm on one bus.
pub struct Accountant<B: ?Sized> {
    ledger: Ledger<B>,
    budgets: Budgets<B>,
    tiers: Tiers,
    clock: SharedClock,
}

impl<B: ?Sized> fmt::Debug for Accountant<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accountant")
            .field("ledger", &self.ledger)
            .field("budgets", &self.budgets)
            .field("tiers", &self.tiers)
            .field("clock", &self.clock)
            .finish()
    }
}

impl<B: ?Sized> Clone for Accountant<B> {
    fn clone(&self) -> Self {
        Self {
            ledger: self.ledger.clone(),
            budgets: self.budgets.clone(),
            tiers: self.tiers.clone(),
            clock: Arc::clone(&self.clock),
        }
    }
}

impl<B: Counters + Journal + ?Sized + 'static> Accountant<B> {
    /// An accountant on `bus` with a price table, the roles and budget limits.
    pub fn new(
        bus: Arc<B>,
        table: Arc<PriceTable>,
        tiers: Tiers,
        limits: BudgetLimits,
    ) -> Result<Self> {
        Ok(Self {
            ledger: Ledger::new(Arc::clone(&bus), table)?,
            budgets: Budgets::new(bus, limits),
            tiers,
            clock: Arc::new(SystemClock),
        })
    }

    /// Stamps calls with the time of `clock` (the system clock by default):
    /// the stamp chooses the price row in force.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger<B> {
        &self.ledger
    }

    /// The budgets.
    pub fn budgets(&self) -> &Budgets<B> {
        &self.budgets
    }

    /// The roles.
    pub fn tiers(&self) -> &Tiers {
        &self.tiers
    }

    /// A call of `role` (its tier, model and billing), made now (on the
    /// accountant's clock).
    pub fn call(&self, role: Tier) -> Option<Call> {
        self.tiers.call(role).map(|c| c.at(self.clock.now()))
    }

    /// Prices a call without recording it.
    pub fn quote(&self, call: &Call, usage: &Usage) -> Cost {
        self.ledger
            .table()
            .price(&call.model, usage, call.billing, call.at)
    }

    /// Holds the price of `estimate` on every budget that applies to `call`
    /// and writes the estimate record (an unpriced estimate is recorded as
    /// such, never as $0). Refused ([`CostError::is_budget_refusal`]) when a
    /// budget is reached, or when a budget applies and the call cannot be
    /// priced; an error when the estimate cannot be written (the budgets are
    /// given back: no call is made that the books would not show).
    pub async fn reserve(&self, call: Call, estimate: &Usage) -> Result<Pending> {
        let usd = match self.quote(&call, estimate) {
            Cost::Priced(p) => Some(p.usd),
            Cost::Unpriced(reason) => {
                let limits = self.budgets.limits();
                let applies = limits.global.is_some()
                    || (limits.per_session.is_some() && call.session.is_some())
                    || (limits.per_worker.is_some() && call.worker.is_some());
                if applies {
                    return Err(CostError::Unpriced {
                        model: call.model.clone(),
                        reason,
                    });
                }
                None
            }
        };
        let reservation = self
            .budgets
            .reserve(
                call.worker.as_ref(),
                call.session.as_ref(),
                usd.unwrap_or(Money::ZERO),
            )
            .await?;
        let record = Estimate::new(&call, usd);
        if let Err(e) = self.ledger.estimate(&record).await {
            // Written after all, its reply lost? Then this voids it.
            if let Err(void) = self.ledger.void(record.hold).await {
                tracing::debug!(error = %void, "could not void an estimate that may not exist");
            }
            if let Err(release) = self.budgets.release(reservation).await {
                tracing::warn!(error = %release, "could not give back a reservation");
            }
            return Err(e);
        }
        Ok(Pending {
            call,
            reservation,
            estimate: record,
            booked: None,
            tried: false,
        })
    }

    /// Books the call with the usage the provider reported: its ledger
    /// entry (and `cost:<tier>`) under the hold's id, which takes the
    /// estimate off the books. Idempotent: once booked, the same entry is
    /// returned (whatever `usage`); retried after an error, it first looks
    /// for the entry in the ledger (the error may have hidden a write), so a
    /// call is booked once. The budgets are not touched (see
    /// [`Accountant::settle`]).
    pub async fn book(&self, pending: &mut Pending, usage: Usage) -> Result<LedgerEntry> {
        if let Some(entry) = &pending.booked {
            return Ok(entry.clone());
        }
        if pending.tried
            && let Some(entry) = self.ledger.find(pending.hold()).await?
        {
            pending.booked = Some(entry.clone());
            return Ok(entry);
        }
        pending.tried = true;
        let entry = self
            .ledger
            .book(&pending.call, usage, pending.hold())
            .await?;
        pending.booked = Some(entry.clone());
        Ok(entry)
    }

    /// Books the call ([`Accountant::book`], once) and commits its actual
    /// cost to the budgets. An unpriced call keeps its estimate held. When
    /// the booking fails, the call stays on the books as estimated spend and
    /// its estimate stays held on the budgets.
    pub async fn settle(&self, mut pending: Pending, usage: Usage) -> Result<LedgerEntry> {
        let entry = match self.book(&mut pending, usage).await {
            Ok(entry) => entry,
            Err(e) => {
                pending.reservation.keep();
                return Err(e);
            }
        };
        let actual = entry
            .cost
            .usd()
            .unwrap_or_else(|| pending.reservation.estimate());
        self.budgets.commit(pending.reservation, actual).await?;
        Ok(entry)
    }

    /// The call was not made: voids its estimate and releases its
    /// reservation (a call booked already is settled instead). Should the
    /// void fail, the estimate stays on the books (over-, never
    /// under-reported) and the error is returned after the release.
    pub async fn cancel(&self, pending: Pending) -> Result<()> {
        if pending.booked.is_some() {
            return self.settle(pending, Usage::default()).await.map(|_| ());
        }
        let void = self.ledger.void(pending.hold()).await;
        let released = self.budgets.release(pending.reservation).await;
        void.and(released)
    }

    /// The call was made but cannot be booked now (the bus is away, the
    /// process is stopping): its estimate stays on the books, reported as
    /// estimated spend, and stays held on the budgets.
    pub fn abandon(&self, pending: Pending) {
        tracing::warn!(hold = %pending.hold(), estimate = %pending.estimate(),
            "a call could not be booked: it stays on the books at its estimate");
        pending.reservation.keep();
    }

    /// Records a call outside any budget.
    pub async fn record(&self, call: &Call, usage: Usage) -> Result<LedgerEntry> {
        self.ledger.record(call, usage).await
    }

    /// The report of the ledger's calls that pass `filter`.
    pub async fn report(&self, filter: &ReportFilter) -> Result<Report> {
        self.ledger.report(&self.tiers, filter).await
    }
}

impl<B: Counters + Journal + ?Sized + 'static> Accountant<B> {
    /// The ledger call of `call`: its tier, model and billing resolved once
    /// from the accountant's tiers (a role it does not know is billed on
    /// the role's default tier name), stamped with the call's time or now.
    pub fn call_of(&self, call: &MeteredCall) -> Call {
        let mut out = match self.tiers.get(call.role) {
            Some(t) => Call::new(t.name.clone(), call.model.as_str()).billing(t.billing),
            None => Call::new(call.role.default_name(), call.model.as_str()),
        }
        .role(call.role)
        .at(call.at.unwrap_or_else(|| self.clock.now()));
        if let Some(w) = &call.worker {
            out = out.worker(w.clone());
        }
        if let Some(s) = &call.session {
            out = out.session(s.clone());
        }
        out
    }
}

/// The accountant is the swarm's meter: a reservation holds the estimate
/// on the budgets and writes the estimate record; a settle books the usage
/// once (priced once, on the tier resolved at reserve) and commits the
/// budgets at that exact price; a cancel voids the estimate. A settle that
/// fails hands the hold back; dropped, the call stays on the books at its
/// estimate and its budgets are given back in the background.
#[async_trait::async_trait]
impl<B> Meter for Accountant<B>
where
    B: Counters + Journal + Send + Sync + ?Sized + 'static,
{
    async fn reserve(&self, call: MeteredCall, estimate: Usage) -> CoreResult<Hold> {
        let pending = Accountant::reserve(self, self.call_of(&call), &estimate).await?;
        let usd = pending.estimate_record().usd;
        Ok(Hold::new(pending.hold(), usd, pending))
    }

    async fn settle(
        &self,
        hold: Hold,
        model: &str,
        usage: Usage,
    ) -> std::result::Result<Settled, Unsettled> {
        let mut pending = match hold.into_state::<Pending>() {
            Ok(p) => *p,
            Err(hold) => {
                return Err(Unsettled {
                    error: foreign_hold(&hold),
                    hold,
                });
            }
        };
        // Priced at the time the call was reserved for (its own time when
        // it came with one): one price row for estimate and booking.
        let at = pending.call.at;
        pending.answered(model, at);
        let estimate = pending.estimate_record().usd;
        match self.book(&mut pending, usage).await {
            Ok(entry) => {
                let actual = entry.cost.usd().unwrap_or_else(|| pending.estimate());
                if let Err(e) = self.budgets.commit(pending.reservation, actual).await {
                    // Booked: only the budget counters lag; say so, the
                    // books are right.
                    tracing::warn!(error = %e, "a booked call's budgets were not committed");
                }
                Ok(Settled::new(
                    entry.hold.unwrap_or(entry.id),
                    entry.tier.clone(),
                    entry.cost.usd(),
                    estimate,
                ))
            }
            Err(e) => Err(Unsettled {
                error: e.into(),
                hold: Hold::new(pending.hold(), estimate, pending),
            }),
        }
    }

    async fn cancel(&self, hold: Hold) -> CoreResult<()> {
        match hold.into_state::<Pending>() {
            Ok(p) => Ok(Accountant::cancel(self, *p).await?),
            Err(hold) => Err(foreign_hold(&hold)),
        }
    }

    async fn record(&self, call: MeteredCall, usage: Usage) -> CoreResult<Settled> {
        let entry = Accountant::record(self, &self.call_of(&call), usage).await?;
        Ok(Settled::new(
            entry.hold.unwrap_or(entry.id),
            entry.tier.clone(),
            entry.cost.usd(),
            None,
        ))
    }
}

/// The error for a hold another meter made.
fn foreign_hold(hold: &Hold) -> swarmbus_core::Error {
    swarmbus_core::Error::InvalidInput {
        field: "hold",
        reason: format!("hold {} was not made by this accountant", hold.id()),
    }
}
