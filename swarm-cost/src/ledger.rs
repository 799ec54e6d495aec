//! The ledger: one JSON record per call in a bus journal (`cost-ledger`), so
//! any process on the same bus can report on it, and the brief's
//! `cost:<tier>` float keys kept current for its Python tools.
//!
//! A record is appended once per call with a fresh id (a call booked against
//! a budget hold takes the hold's id), in one atomic step with its
//! `cost:<tier>` increment. The bus applies its own retries once;
//! a failure it reports as [`swarmbus_core::Retry::Unknown`] may have been
//! recorded, and readers drop repeated ids should a caller append again.
//!
//! Beside it, the estimates journal (`cost-estimates`, see
//! [`crate::estimate`]) keeps what each held call was reserved at, so that a
//! call whose booking never arrived is reported as estimated spend.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use swarmbus_core::Tier;
use swarmbus_core::bus::{Counters, Journal};
use swarmbus_core::keys::{JournalName, SessionId, TierName, WorkerId};
use swarmbus_core::llm::Usage;
use uuid::Uuid;

use crate::error::Result;
use crate::estimate::{DEFAULT_ESTIMATES_JOURNAL, Estimate, EstimateEvent, Estimates};
use crate::pricing::{Billing, Cost};
use crate::report::{Report, ReportFilter};
use crate::table::PriceTable;
use crate::tiers::Tiers;

/// The journal the ledger writes by default.
pub const DEFAULT_JOURNAL: &str = "cost-ledger";

/// How many records one journal read fetches.
const PAGE: usize = 1000;

/// Who made a call, to which model, how billed and when.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Call {
    /// The tier (`cost:<tier>`).
    pub tier: TierName,
    /// The role of the tier, when known (else reports look the tier name up
    /// in their configuration).
    pub role: Option<Tier>,
    /// The model id as called.
    pub model: String,
    /// How it is billed.
    pub billing: Billing,
    /// The worker that made it.
    pub worker: Option<WorkerId>,
    /// The session it belongs to.
    pub session: Option<SessionId>,
    /// When it was made (chooses the price row in force).
    pub at: DateTime<Utc>,
}

impl Call {
    /// A standard-billed call of `tier` to `model`, made now.
    pub fn new(tier: TierName, model: impl Into<String>) -> Self {
        Self {
            tier,
            role: None,
            model: model.into(),
            billing: Billing::Standard,
            worker: None,
            session: None,
            at: Utc::now(),
        }
    }

    /// Sets the role.
    pub fn role(mut self, role: Tier) -> Self {
        self.role = Some(role);
        self
    }

    /// Sets the billing mode.
    pub fn billing(mut self, billing: Billing) -> Self {
        self.billing = billing;
        self
    }

    /// Sets the worker.
    pub fn worker(mut self, worker: WorkerId) -> Self {
        self.worker = Some(worker);
        self
    }

    /// Sets the session.
    pub fn session(mut self, session: SessionId) -> Self {
        self.session = Some(session);
        self
    }

    /// Sets the time.
    pub fn at(mut self, at: DateTime<Utc>) -> Self {
        self.at = at;
        self
    }
}

/// One call in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LedgerEntry {
    /// Unique id (readers drop repeats).
    pub id: Uuid,
    /// When the call was made.
    pub at: DateTime<Utc>,
    /// The tier.
    pub tier: TierName,
    /// The tier's role, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Tier>,
    /// The model as called.
    pub model: String,
    /// The worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerId>,
    /// The session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionId>,
    /// How it was billed.
    pub billing: Billing,
    /// Tokens per bucket.
    pub usage: Usage,
    /// Its price, or why it has none.
    pub cost: Cost,
    /// The budget hold it settles (then `id` is the hold's id too): its
    /// estimate is off the books once this entry is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Uuid>,
}

impl LedgerEntry {
    /// Prices `usage` for `call` with `table`.
    pub fn priced(call: &Call, usage: Usage, table: &PriceTable) -> Self {
        Self {
            id: Uuid::new_v4(),
            at: call.at,
            tier: call.tier.clone(),
            role: call.role,
            model: call.model.clone(),
            worker: call.worker.clone(),
            session: call.session.clone(),
            billing: call.billing,
            usage,
            cost: table.price(&call.model, &usage, call.billing, call.at),
            hold: None,
        }
    }

    /// Prices `usage` for `call` with `table`, settling `hold`: the entry
    /// takes the hold's id, so a booking retried after an outage is read
    /// once.
    pub fn settling(call: &Call, usage: Usage, table: &PriceTable, hold: Uuid) -> Self {
        Self {
            id: hold,
            hold: Some(hold),
            ..Self::priced(call, usage, table)
        }
    }
}

/// What was read from the journal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entries {
    /// The entries, oldest first, repeated ids dropped.
    pub entries: Vec<LedgerEntry>,
    /// Records that did not decode: (position, what was wrong).
    pub skipped: Vec<(u64, String)>,
}

/// The ledger on a bus. `B` is any bus with counters and journals, `dyn Bus`
/// included.
pub struct Ledger<B: ?Sized> {
    bus: Arc<B>,
    table: Arc<PriceTable>,
    journal: JournalName,
    estimates: JournalName,
}

impl<B: ?Sized> Clone for Ledger<B> {
    fn clone(&self) -> Self {
        Self {
            bus: Arc::clone(&self.bus),
            table: Arc::clone(&self.table),
            journal: self.journal.clone(),
            estimates: self.estimates.clone(),
        }
    }
}

impl<B: ?Sized> fmt::Debug for Ledger<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger")
            .field("journal", &self.journal)
            .field("estimates", &self.estimates)
            .field("price_rows", &self.table.rows().len())
            .finish_non_exhaustive()
    }
}

impl<B: Counters + Journal + ?Sized> Ledger<B> {
    /// A ledger in the `cost-ledger` journal of `bus`, priced with `table`.
    pub fn new(bus: Arc<B>, table: Arc<PriceTable>) -> Result<Self> {
        Ok(Self {
            bus,
            table,
            journal: JournalName::new(DEFAULT_JOURNAL)?,
            estimates: JournalName::new(DEFAULT_ESTIMATES_JOURNAL)?,
        })
    }

    /// Uses another journal (several ledgers on one bus), and
    /// `<journal>-estimates` for its estimates (where that name fits; else
    /// the default `cost-estimates`).
    pub fn with_journal(mut self, journal: JournalName) -> Self {
        if let Ok(estimates) = JournalName::new(format!("{journal}-estimates")) {
            self.estimates = estimates;
        }
        self.journal = journal;
        self
    }

    /// The journal written.
    pub fn journal(&self) -> &JournalName {
        &self.journal
    }

    /// The journal of the estimates.
    pub fn estimates_journal(&self) -> &JournalName {
        &self.estimates
    }

    /// The price table.
    pub fn table(&self) -> &PriceTable {
        &self.table
    }

    /// The price table, shared (to give a provider as its model catalog).
    pub fn shared_table(&self) -> Arc<PriceTable> {
        Arc::clone(&self.table)
    }

    /// The bus.
    pub fn bus(&self) -> &Arc<B> {
        &self.bus
    }

    /// Prices a call and records it: appends the entry and adds its cost to
    /// `cost:<tier>` in one atomic step (nothing is added for an unpriced or
    /// $0 call).
    pub async fn record(&self, call: &Call, usage: Usage) -> Result<LedgerEntry> {
        let entry = LedgerEntry::priced(call, usage, &self.table);
        self.append(&entry).await?;
        Ok(entry)
    }

    /// Records an entry priced elsewhere: the journal record and the
    /// `cost:<tier>` total change together ([`Journal::append_with_cost`]),
    /// so a crash between them cannot leave them disagreeing.
    pub async fn append(&self, entry: &LedgerEntry) -> Result<()> {
        let record = swarmbus_core::codec::encode(self.journal.as_str(), entry)?;
        // The brief's tools read float dollars; the ledger stays exact.
        let usd = entry.cost.usd().map_or(0.0, |usd| usd.to_f64_lossy());
        self.bus
            .append_with_cost(&self.journal, &[record], &entry.tier, usd)
            .await?;
        Ok(())
    }

    /// Books `usage` of `call` as the settlement of `hold`: the entry takes
    /// the hold's id ([`LedgerEntry::settling`]), which takes its estimate
    /// off the books.
    pub async fn book(&self, call: &Call, usage: Usage, hold: Uuid) -> Result<LedgerEntry> {
        let entry = LedgerEntry::settling(call, usage, &self.table, hold);
        self.append(&entry).await?;
        Ok(entry)
    }

    /// The entry with this id (a hold's id: its booking), if the journal has
    /// one. Reads the whole journal.
    pub async fn find(&self, id: Uuid) -> Result<Option<LedgerEntry>> {
        Ok(self
            .entries()
            .await?
            .entries
            .into_iter()
            .find(|e| e.id == id))
    }

    /// Writes the estimate of a call about to be made.
    pub async fn estimate(&self, estimate: &Estimate) -> Result<()> {
        self.event(&EstimateEvent::Estimate(estimate.clone())).await
    }

    /// Takes the estimate of `hold` off the books: its call was never made.
    pub async fn void(&self, hold: Uuid) -> Result<()> {
        self.event(&EstimateEvent::Void {
            hold,
            at: chrono::Utc::now(),
        })
        .await
    }

    async fn event(&self, event: &EstimateEvent) -> Result<()> {
        let record = swarmbus_core::codec::encode(self.estimates.as_str(), event)?;
        self.bus.append(&self.estimates, &[record]).await?;
        Ok(())
    }

    /// Every record of `journal`, oldest first.
    async fn records(&self, journal: &JournalName) -> Result<Vec<String>> {
        let mut out = Vec::new();
        loop {
            let page = self.bus.read(journal, out.len() as u64, PAGE).await?;
            let last = page.len() < PAGE;
            out.extend(page);
            if last {
                break;
            }
        }
        Ok(out)
    }

    /// Reads every entry, oldest first. A record that does not decode is
    /// reported in [`Entries::skipped`], not fatal.
    pub async fn entries(&self) -> Result<Entries> {
        let mut out = Entries::default();
        let mut seen = std::collections::HashSet::new();
        for (position, record) in self.records(&self.journal).await?.iter().enumerate() {
            match serde_json::from_str::<LedgerEntry>(record) {
                Ok(entry) => {
                    if seen.insert(entry.id) {
                        out.entries.push(entry);
                    }
                }
                Err(e) => out.skipped.push((position as u64, e.to_string())),
            }
        }
        Ok(out)
    }

    /// Reads the estimates journal. A record that does not decode is
    /// reported in [`Estimates::skipped`], not fatal.
    pub async fn estimates(&self) -> Result<Estimates> {
        let records = self.records(&self.estimates).await?;
        Ok(Estimates::decode(records.iter().map(String::as_str)))
    }

    /// The report of the entries that pass `filter`, with the outstanding
    /// estimates that pass it as estimated spend, apart.
    pub async fn report(&self, tiers: &Tiers, filter: &ReportFilter) -> Result<Report> {
        let read = self.entries().await?;
        let estimates = self.estimates().await?;
        let mut report = Report::build(
            read.entries.iter().filter(|e| filter.admits(e)),
            tiers,
            &self.table,
        );
        let booked: std::collections::HashSet<Uuid> = read.entries.iter().map(|e| e.id).collect();
        report.add_estimates(
            estimates
                .outstanding(&booked)
                .filter(|e| filter.admits_estimate(e)),
        );
        report.skipped_records = (read.skipped.len() + estimates.skipped.len()) as u64;
        Ok(report)
    }
}
