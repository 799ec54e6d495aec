//! Reports from ledger entries: totals per tier, model, worker and session,
//! the brief's `Cost This Session` and `Token Efficiency` lines, the worker
//! share against the 90 % target, and the savings against running every call
//! on the coordinator model.
//!
//! Unpriced calls are counted and named everywhere, never added as $0.
//! Estimated spend (calls held on a budget whose exact price never arrived,
//! see [`crate::estimate`]) is reported apart, never added to the exact
//! spend.
//! Percentages are computed in integer tenths of a percent.

use std::collections::BTreeMap;
use swarmbus_core::{Efficiency, Percent};

use chrono::{DateTime, Utc};
use serde::Serialize;
use swarmbus_core::Tier;
use swarmbus_core::keys::{SessionId, TierName, WorkerId};
use swarmbus_core::llm::Usage;

use crate::estimate::Estimate;
use crate::ledger::LedgerEntry;
use crate::pricing::Billing;
use crate::table::PriceTable;
use crate::tiers::Tiers;
use swarmbus_core::money::{Money, permille};

/// Which entries a report covers (all conditions must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReportFilter {
    /// Only this session's calls.
    pub session: Option<SessionId>,
    /// Only this worker's calls.
    pub worker: Option<WorkerId>,
    /// Only calls at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only calls before this time.
    pub until: Option<DateTime<Utc>>,
}

impl ReportFilter {
    /// Every call.
    pub fn all() -> Self {
        Self::default()
    }

    /// Only `session`'s calls.
    pub fn session(mut self, session: SessionId) -> Self {
        self.session = Some(session);
        self
    }

    /// Only `worker`'s calls.
    pub fn worker(mut self, worker: WorkerId) -> Self {
        self.worker = Some(worker);
        self
    }

    /// Only calls in `[since, until)`.
    pub fn between(mut self, since: Option<DateTime<Utc>>, until: Option<DateTime<Utc>>) -> Self {
        self.since = since;
        self.until = until;
        self
    }

    /// Whether `entry` passes.
    pub fn admits(&self, entry: &LedgerEntry) -> bool {
        self.session
            .as_ref()
            .is_none_or(|s| entry.session.as_ref() == Some(s))
            && self
                .worker
                .as_ref()
                .is_none_or(|w| entry.worker.as_ref() == Some(w))
            && self.since.is_none_or(|t| entry.at >= t)
            && self.until.is_none_or(|t| entry.at < t)
    }

    /// Whether `estimate` passes.
    pub fn admits_estimate(&self, estimate: &Estimate) -> bool {
        self.session
            .as_ref()
            .is_none_or(|s| estimate.session.as_ref() == Some(s))
            && self
                .worker
                .as_ref()
                .is_none_or(|w| estimate.worker.as_ref() == Some(w))
            && self.since.is_none_or(|t| estimate.at >= t)
            && self.until.is_none_or(|t| estimate.at < t)
    }
}

/// The sums of outstanding estimates: calls held on a budget whose exact
/// price has not been booked (yet).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct EstimatedTotals {
    /// Outstanding holds.
    pub calls: u64,
    /// Of them, held without a price (not in `usd`, never $0).
    pub unpriced_calls: u64,
    /// The dollars they were reserved at.
    pub usd: Money,
}

impl EstimatedTotals {
    fn add(&mut self, estimate: &Estimate) {
        self.calls += 1;
        match estimate.usd {
            Some(usd) => self.usd += usd,
            None => self.unpriced_calls += 1,
        }
    }
}

/// The sums of some calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Totals {
    /// Calls, priced or not.
    pub calls: u64,
    /// Calls without a price (not in `usd`).
    pub unpriced_calls: u64,
    /// Tokens of every call.
    pub usage: Usage,
    /// Spend of the priced calls.
    pub usd: Money,
    /// List-price shadow cost of the free-tier calls.
    pub shadow_usd: Money,
}

impl Totals {
    fn add(&mut self, entry: &LedgerEntry) {
        self.calls += 1;
        self.usage += entry.usage;
        match entry.cost.usd() {
            Some(usd) => self.usd += usd,
            None => self.unpriced_calls += 1,
        }
        if let Some(shadow) = entry.cost.shadow() {
            self.shadow_usd += shadow;
        }
    }
}

/// Totals per role.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RoleTotals {
    /// The coordinator tier.
    pub coordinator: Totals,
    /// The worker tier.
    pub worker: Totals,
    /// The librarian tier.
    pub librarian: Totals,
    /// Tiers with no role in the configuration.
    pub other: Totals,
}

/// The tier names of the roles, from the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TierNames {
    /// The coordinator's (`sonnet`).
    pub coordinator: TierName,
    /// The workers' (`haiku`).
    pub worker: TierName,
    /// The librarians' (`gemini`).
    pub librarian: TierName,
}

/// How much of the work the workers did, against the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WorkerShare {
    /// Worker calls among worker + coordinator calls.
    pub calls: Percent,
    /// Worker spend among worker + coordinator spend.
    pub spend: Percent,
    /// Worker tokens among worker + coordinator tokens.
    pub tokens: Percent,
    /// The target share of calls.
    pub target: Percent,
    /// Whether the calls share reaches the target (false with no calls).
    pub on_target: bool,
}

/// What the same calls would have cost on the coordinator model.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Savings {
    /// The coordinator model.
    pub coordinator_model: String,
    /// Calls priced both ways.
    pub compared_calls: u64,
    /// Calls left out: unpriced, or the coordinator model cannot price them.
    pub uncomparable_calls: u64,
    /// What the compared calls cost.
    pub actual_usd: Money,
    /// What they would have cost on the coordinator model (free-tier calls at
    /// its standard rates).
    pub on_coordinator_usd: Money,
    /// The difference.
    pub saved_usd: Money,
}

/// A ledger report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Report {
    /// Every call covered.
    pub total: Totals,
    /// Ledger and estimate records that did not decode.
    pub skipped_records: u64,
    /// Role names from the configuration.
    pub tier_names: TierNames,
    /// Totals per role.
    pub roles: RoleTotals,
    /// Totals per tier name.
    pub by_tier: BTreeMap<String, Totals>,
    /// Totals per model as called.
    pub by_model: BTreeMap<String, Totals>,
    /// Totals per worker (`-` for calls without one).
    pub by_worker: BTreeMap<String, Totals>,
    /// Totals per session (`-` for calls without one).
    pub by_session: BTreeMap<String, Totals>,
    /// Why calls are unpriced, with how many.
    pub unpriced: BTreeMap<String, u64>,
    /// The brief's Token Efficiency split.
    pub efficiency: Efficiency,
    /// Worker share against the target.
    pub worker_share: WorkerShare,
    /// Savings against the coordinator model.
    pub savings: Savings,
    /// Estimated spend: what the outstanding holds were reserved at (calls
    /// made, or maybe made, whose exact price was never booked). Apart from
    /// every exact figure above, never added to them.
    pub estimated_usd: Money,
    /// How many holds are outstanding.
    pub estimated_calls: u64,
    /// Of them, held without a price (not in `estimated_usd`).
    pub estimated_unpriced_calls: u64,
    /// Estimated spend per tier name.
    pub estimated_by_tier: BTreeMap<String, EstimatedTotals>,
}

const NONE_KEY: &str = "-";

impl Report {
    /// Builds the report of `entries`, with role names from `tiers` and the
    /// savings priced with `table`.
    pub fn build<'a>(
        entries: impl IntoIterator<Item = &'a LedgerEntry>,
        tiers: &Tiers,
        table: &PriceTable,
    ) -> Report {
        let mut report = Report {
            total: Totals::default(),
            skipped_records: 0,
            tier_names: TierNames {
                coordinator: tiers.coordinator.name.clone(),
                worker: tiers.worker.name.clone(),
                librarian: tiers.librarian.name.clone(),
            },
            roles: RoleTotals::default(),
            by_tier: BTreeMap::new(),
            by_model: BTreeMap::new(),
            by_worker: BTreeMap::new(),
            by_session: BTreeMap::new(),
            unpriced: BTreeMap::new(),
            efficiency: Efficiency::default(),
            worker_share: WorkerShare::default(),
            savings: Savings {
                coordinator_model: tiers.coordinator.model.clone(),
                ..Savings::default()
            },
            estimated_usd: Money::ZERO,
            estimated_calls: 0,
            estimated_unpriced_calls: 0,
            estimated_by_tier: BTreeMap::new(),
        };
        let mut seen = std::collections::HashSet::new();
        for entry in entries {
            if !seen.insert(entry.id) {
                continue;
            }
            report.add(entry, tiers, table);
        }
        report.finish(tiers);
        report
    }

    /// Adds outstanding estimates (their bookings never arrived) as
    /// estimated spend, apart from the exact spend. A hold counted already
    /// is not counted again.
    pub fn add_estimates<'a>(&mut self, estimates: impl IntoIterator<Item = &'a Estimate>) {
        let mut total = EstimatedTotals {
            calls: self.estimated_calls,
            unpriced_calls: self.estimated_unpriced_calls,
            usd: self.estimated_usd,
        };
        let mut seen = std::collections::HashSet::new();
        for estimate in estimates {
            if !seen.insert(estimate.hold) {
                continue;
            }
            total.add(estimate);
            self.estimated_by_tier
                .entry(estimate.tier.to_string())
                .or_default()
                .add(estimate);
        }
        self.estimated_calls = total.calls;
        self.estimated_unpriced_calls = total.unpriced_calls;
        self.estimated_usd = total.usd;
    }

    fn add(&mut self, entry: &LedgerEntry, tiers: &Tiers, table: &PriceTable) {
        self.total.add(entry);
        let role = entry.role.or_else(|| tiers.role_of(&entry.tier));
        let role_totals = match role {
            Some(Tier::Coordinator) => &mut self.roles.coordinator,
            Some(Tier::Worker) => &mut self.roles.worker,
            Some(Tier::Librarian) => &mut self.roles.librarian,
            _ => &mut self.roles.other,
        };
        role_totals.add(entry);
        let key = |id: Option<&str>| id.unwrap_or(NONE_KEY).to_owned();
        self.by_tier
            .entry(entry.tier.to_string())
            .or_default()
            .add(entry);
        self.by_model
            .entry(entry.model.clone())
            .or_default()
            .add(entry);
        self.by_worker
            .entry(key(entry.worker.as_ref().map(WorkerId::as_str)))
            .or_default()
            .add(entry);
        self.by_session
            .entry(key(entry.session.as_ref().map(SessionId::as_str)))
            .or_default()
            .add(entry);
        if let Some(why) = entry.cost.unpriced() {
            *self.unpriced.entry(why.to_string()).or_default() += 1;
        }
        self.compare_with_coordinator(entry, role, tiers, table);
    }

    fn compare_with_coordinator(
        &mut self,
        entry: &LedgerEntry,
        role: Option<Tier>,
        tiers: &Tiers,
        table: &PriceTable,
    ) {
        let Some(actual) = entry.cost.usd() else {
            self.savings.uncomparable_calls += 1;
            return;
        };
        let on_coordinator = if role == Some(Tier::Coordinator) {
            Some(actual)
        } else {
            // The coordinator has no free tier to fall back on: it pays list.
            let billing = match entry.billing {
                Billing::FreeTier => Billing::Standard,
                other => other,
            };
            table
                .price(&tiers.coordinator.model, &entry.usage, billing, entry.at)
                .usd()
        };
        match on_coordinator {
            Some(usd) => {
                self.savings.compared_calls += 1;
                self.savings.actual_usd += actual;
                self.savings.on_coordinator_usd += usd;
            }
            None => self.savings.uncomparable_calls += 1,
        }
    }

    fn finish(&mut self, tiers: &Tiers) {
        let (worker, coordinator) = (&self.roles.worker, &self.roles.coordinator);
        let spend = permille(worker.usd.picos(), (worker.usd + coordinator.usd).picos());
        let spent = !(worker.usd + coordinator.usd).is_zero();
        self.efficiency = Efficiency::from_permille(spend, spent);
        let both_calls = worker.calls.saturating_add(coordinator.calls);
        let calls = permille(i128::from(worker.calls), i128::from(both_calls));
        let tokens = permille(
            i128::from(worker.usage.total_tokens()),
            i128::from(worker.usage.total_tokens()) + i128::from(coordinator.usage.total_tokens()),
        );
        self.worker_share = WorkerShare {
            calls: Percent::from_permille(calls),
            spend: Percent::from_permille(spend),
            tokens: Percent::from_permille(tokens),
            target: Percent::from_permille(tiers.worker_target_permille),
            on_target: worker.calls + coordinator.calls > 0
                && calls >= tiers.worker_target_permille,
        };
        self.savings.saved_usd = self.savings.on_coordinator_usd - self.savings.actual_usd;
    }

    /// The brief's line: `Cost This Session: Sonnet $X | Haiku $Y | Gemini $0`
    /// (four decimals; a librarian that spent nothing shows `$0`). A tier with
    /// unpriced calls says so: `Haiku $0.0089 (+2 unpriced)`.
    pub fn cost_line(&self) -> String {
        let part = |name: &TierName, totals: &Totals, bare_zero: bool| {
            let usd = if bare_zero && totals.usd.is_zero() {
                "$0".to_owned()
            } else {
                format!("${:.4}", totals.usd)
            };
            let unpriced = if totals.unpriced_calls > 0 {
                format!(" (+{} unpriced)", totals.unpriced_calls)
            } else {
                String::new()
            };
            format!("{} {usd}{unpriced}", name.display_name())
        };
        format!(
            "Cost This Session: {} | {} | {}",
            part(&self.tier_names.coordinator, &self.roles.coordinator, false),
            part(&self.tier_names.worker, &self.roles.worker, false),
            part(&self.tier_names.librarian, &self.roles.librarian, true),
        )
    }

    /// The brief's line: `Token Efficiency: Haiku a% / Sonnet b%`, the
    /// worker and coordinator shares of their spend, as the brief computes it.
    pub fn efficiency_line(&self) -> String {
        format!(
            "Token Efficiency: {} {}% / {} {}%",
            self.tier_names.worker.display_name(),
            self.efficiency.worker,
            self.tier_names.coordinator.display_name(),
            self.efficiency.coordinator,
        )
    }

    /// The report as text: the brief's two lines, then totals, worker share,
    /// savings, unpriced calls and the tables per tier, model, worker and
    /// session (exact amounts).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(self.cost_line());
        line(self.efficiency_line());
        line(format!(
            "Calls: {} ({} unpriced) | Spend: ${} | Free-tier shadow: ${}",
            self.total.calls, self.total.unpriced_calls, self.total.usd, self.total.shadow_usd
        ));
        if self.estimated_calls > 0 {
            let unpriced = if self.estimated_unpriced_calls > 0 {
                format!(", {} UNPRICED", self.estimated_unpriced_calls)
            } else {
                String::new()
            };
            line(format!(
                "Estimated (unsettled): ${} in {} calls{unpriced} (reserved, not booked; not in Spend)",
                self.estimated_usd, self.estimated_calls
            ));
            for (tier, t) in &self.estimated_by_tier {
                line(format!(
                    "  {tier}: ${} est. in {} calls{}",
                    t.usd,
                    t.calls,
                    if t.unpriced_calls > 0 {
                        format!(" ({} UNPRICED)", t.unpriced_calls)
                    } else {
                        String::new()
                    }
                ));
            }
        }
        let share = &self.worker_share;
        line(format!(
            "Worker share: calls {}% (target {}%: {}) | spend {}% | tokens {}%",
            share.calls,
            share.target,
            if share.on_target { "met" } else { "missed" },
            share.spend,
            share.tokens
        ));
        let s = &self.savings;
        line(format!(
            "Savings vs {}: ${} (${} on it instead of ${}; {} calls compared, {} not)",
            s.coordinator_model,
            s.saved_usd,
            s.on_coordinator_usd,
            s.actual_usd,
            s.compared_calls,
            s.uncomparable_calls
        ));
        for (why, n) in &self.unpriced {
            line(format!("UNPRICED ×{n}: {why}"));
        }
        if self.skipped_records > 0 {
            line(format!(
                "Skipped {} ledger records that did not decode",
                self.skipped_records
            ));
        }
        for (title, table) in [
            ("tier", &self.by_tier),
            ("model", &self.by_model),
            ("worker", &self.by_worker),
            ("session", &self.by_session),
        ] {
            if table.is_empty() {
                continue;
            }
            line(format!("By {title}:"));
            for (name, t) in table {
                line(format!(
                    "  {name}: {} calls{}, in {} / cache read {} / cache write {} / out {} tokens, ${}{}",
                    t.calls,
                    if t.unpriced_calls > 0 {
                        format!(" ({} UNPRICED)", t.unpriced_calls)
                    } else {
                        String::new()
                    },
                    t.usage.input_tokens,
                    t.usage.cache_read_tokens,
                    t.usage.cache_write_5m_tokens + t.usage.cache_write_1h_tokens,
                    t.usage.output_tokens,
                    t.usd,
                    if t.shadow_usd.is_zero() {
                        String::new()
                    } else {
                        format!(" (shadow ${})", t.shadow_usd)
                    }
                ));
            }
        }
        out
    }
}
