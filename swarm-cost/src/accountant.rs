//! The accountant: the ledger and the budgets together, for the usual cycle
//! of a model call: [`Accountant::reserve`] an estimate, make the call,
//! [`Accountant::settle`] with the usage the provider reported (or
//! [`Accountant::cancel`] if the call was not made).

use std::fmt;
use std::sync::Arc;

use swarmbus_core::bus::{Counters, Journal};
use swarmbus_core::clock::{SharedClock, SystemClock};
use swarmbus_core::llm::Usage;
use swarmbus_core::model::Tier;

use crate::budget::{BudgetLimits, Budgets, Reservation};
use crate::error::{CostError, Result};
use crate::ledger::{Call, Ledger, LedgerEntry};
use crate::money::Money;
use crate::pricing::Cost;
use crate::report::{Report, ReportFilter};
use crate::table::PriceTable;
use crate::tiers::Tiers;

/// A call whose estimate is held on its budgets.
#[derive(Debug)]
#[must_use = "settle or cancel a pending call, or its reservation stays held"]
pub struct Pending {
    call: Call,
    reservation: Reservation,
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

    /// Holds the price of `estimate` on every budget that applies to `call`.
    /// Refused ([`CostError::is_budget_refusal`]) when a budget is reached, or
    /// when a budget applies and the call cannot be priced.
    pub async fn reserve(&self, call: Call, estimate: &Usage) -> Result<Pending> {
        let usd = match self.quote(&call, estimate) {
            Cost::Priced(p) => p.usd,
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
                Money::ZERO
            }
        };
        let reservation = self
            .budgets
            .reserve(call.worker.as_ref(), call.session.as_ref(), usd)
            .await?;
        Ok(Pending { call, reservation })
    }

    /// Records the call with the usage the provider reported and commits its
    /// actual cost to the budgets. An unpriced call keeps its estimate held.
    pub async fn settle(&self, pending: Pending, usage: Usage) -> Result<LedgerEntry> {
        let entry = self.ledger.record(&pending.call, usage).await?;
        let actual = entry
            .cost
            .usd()
            .unwrap_or_else(|| pending.reservation.estimate());
        self.budgets.commit(pending.reservation, actual).await?;
        Ok(entry)
    }

    /// The call was not made: releases its reservation.
    pub async fn cancel(&self, pending: Pending) -> Result<()> {
        self.budgets.release(pending.reservation).await
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

/// The runtime reports every model call through core's `UsageRecorder`: the
/// accountant prices it with the tier's role and billing, appends it to the
/// ledger and keeps `cost:<tier>` current. An unpriced call is recorded and
/// reported as `usd: None`, never as $0.
#[async_trait::async_trait]
impl<B> swarmbus_core::accounting::UsageRecorder for Accountant<B>
where
    B: Counters + Journal + Send + Sync + ?Sized + 'static,
{
    async fn record_usage(
        &self,
        record: &swarmbus_core::accounting::UsageRecord,
    ) -> swarmbus_core::error::Result<swarmbus_core::accounting::RecordedCost> {
        let mut call = Call::new(record.tier.clone(), record.model.as_str()).at(record.at);
        if let Some(role) = self.tiers.role_of(&record.tier) {
            call = call.role(role);
            if let Some(tier) = self.tiers.get(role) {
                call = call.billing(tier.billing);
            }
        }
        if let Some(worker) = &record.worker {
            call = call.worker(worker.clone());
        }
        let entry = self.record(&call, record.usage).await?;
        Ok(swarmbus_core::accounting::RecordedCost::new(
            entry.cost.usd().map(Money::to_f64_lossy),
        ))
    }

    fn quote(&self, record: &swarmbus_core::accounting::UsageRecord) -> swarmbus_core::Quote {
        let mut call = Call::new(record.tier.clone(), record.model.as_str()).at(record.at);
        if let Some(role) = self.tiers.role_of(&record.tier)
            && let Some(tier) = self.tiers.get(role)
        {
            call = call.billing(tier.billing);
        }
        match Accountant::quote(self, &call, &record.usage) {
            Cost::Priced(p) => swarmbus_core::Quote::Usd(p.usd.to_f64_lossy()),
            Cost::Unpriced(_) => swarmbus_core::Quote::Unpriced,
        }
    }
}
