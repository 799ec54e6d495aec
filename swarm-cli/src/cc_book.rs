//! Booking Claude Code's calls in the ledger, each exactly once, whichever
//! source reports it (a transcript read by a hook, the same transcript read
//! by another hook, an OpenTelemetry `api_request` event).
//!
//! A call is claimed on the bus before it is booked: the counter
//! `cc-booked-<key>` (key: request id, else message id) goes from 0 to 1 in
//! one atomic step ([`Counters::counter_try_add`]), so two processes racing
//! on one call book it once. The first report's tokens are kept in the
//! draft `cc-call-<key>`; a later report of the same call that disagrees is
//! said on stderr. Tiers: calls of the main session are the coordinator
//! tier, a subagent's the worker tier, with the agent id as the worker.
//! Every call goes through the accountant's meter: reserved at its exact
//! usage (on the books as estimated spend) before the claim, settled
//! (priced by swarm-cost from its own model and buckets, booked) after it,
//! cancelled when another report claimed it first. Claude Code's
//! `cost_usd` (OpenTelemetry) is only compared.

use std::sync::Arc;

use swarmbus_claude_code::CallUsage;
use swarmbus_core::Tier;
use swarmbus_core::accounting::{Hold, Meter, MeteredCall};
use swarmbus_core::bus::Bus;
use swarmbus_core::keys::{CounterName, SessionId, WorkerId};
use swarmbus_cost::{Accountant, BudgetLimits, Money, ReportFilter};

/// What one booking pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Booked {
    /// Calls newly booked.
    pub(crate) booked: u64,
    /// Calls already in the ledger (another source or an earlier read).
    pub(crate) already: u64,
    /// Calls without a request or message id (not booked: they could not be
    /// told apart from a repeat).
    pub(crate) unkeyed: u64,
    /// The price of the newly booked calls.
    pub(crate) usd: Money,
    /// Reports of one call that disagree, in words.
    pub(crate) disagreements: Vec<String>,
    /// Calls whose Claude Code price differs from swarm-cost's, in words.
    pub(crate) cost_differences: Vec<String>,
}

impl Booked {
    /// Adds another pass.
    pub(crate) fn merge(&mut self, other: Booked) {
        self.booked += other.booked;
        self.already += other.already;
        self.unkeyed += other.unkeyed;
        self.usd += other.usd;
        self.disagreements.extend(other.disagreements);
        self.cost_differences.extend(other.cost_differences);
    }

    /// Says the disagreements and price differences on stderr.
    pub(crate) fn warn(&self) {
        for d in &self.disagreements {
            eprintln!(
                "swarm: two reports of one Claude Code call disagree: {d} (the first booked is kept)"
            );
        }
        for d in &self.cost_differences {
            eprintln!("swarm: Claude Code's price differs from the ledger's: {d}");
        }
    }
}

/// Books calls on a bus.
pub(crate) struct Booker {
    bus: Arc<dyn Bus>,
    accountant: Accountant<dyn Bus>,
}

impl std::fmt::Debug for Booker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Booker").finish_non_exhaustive()
    }
}

/// A name made of the characters bus names allow, at most 128 bytes.
pub(crate) fn safe_name(prefix: &str, key: &str) -> String {
    let mut s = String::with_capacity(prefix.len() + key.len());
    s.push_str(prefix);
    for c in key.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
            s.push(c);
        } else {
            s.push('_');
        }
        if s.len() >= 120 {
            break;
        }
    }
    s
}

impl Booker {
    /// A booker on `bus` with the context's accountant: the built-in price
    /// table, the context's tiers (`--worker-tier`, `SWARM_WORKER_TIER`, …)
    /// and clock.
    pub(crate) fn new(bus: Arc<dyn Bus>, ctx: &crate::ctx::Ctx) -> Result<Self, String> {
        let table = ctx.prices().map_err(|e| format!("price table: {e}"))?;
        let accountant = ctx
            .accountant(Arc::clone(&bus), table, BudgetLimits::unlimited())
            .map_err(|e| format!("accountant: {e}"))?;
        Ok(Self { bus, accountant })
    }

    /// The metered call of `c`: the coordinator role for the main
    /// session, the worker role for a subagent (its agent id the worker),
    /// its own model and time; the meter resolves the tier.
    fn metered_call(c: &CallUsage) -> MeteredCall {
        let role = if c.is_subagent() {
            Tier::Worker
        } else {
            Tier::Coordinator
        };
        let mut call = MeteredCall::new(role, c.model.as_str());
        if let Some(at) = c.at {
            call = call.at(at);
        }
        if let Some(w) = c.agent_id.as_deref().and_then(|a| WorkerId::new(a).ok()) {
            call = call.worker(w);
        }
        if let Some(s) = c.session.as_deref().and_then(|s| SessionId::new(s).ok()) {
            call = call.session(s);
        }
        call
    }

    /// Whether a call is already booked.
    pub(crate) async fn is_booked(&self, c: &CallUsage) -> Result<bool, String> {
        let Some(key) = c.dedup_key() else {
            return Ok(false);
        };
        let name = CounterName::new(safe_name("cc-booked-", &key)).map_err(|e| e.to_string())?;
        let v = self
            .bus
            .counters(&[name])
            .await
            .map_err(|e| e.to_string())?;
        Ok(v.first().copied().unwrap_or(0) > 0)
    }

    /// The price swarm-cost gives a call (`None` when unpriced).
    pub(crate) fn price(&self, c: &CallUsage) -> Option<Money> {
        let call = self.accountant.call_of(&Self::metered_call(c));
        self.accountant.quote(&call, &c.usage).usd()
    }

    /// Books each call not booked yet.
    pub(crate) async fn book(&self, calls: &[CallUsage]) -> Result<Booked, String> {
        let mut out = Booked::default();
        for c in calls {
            if let (Some(theirs), Some(ours)) = (c.cost_usd, self.price(c)) {
                let theirs_micros = (theirs * 1e6).round() as i64;
                let ours_micros = ours.to_micros_floor();
                // Claude Code rounds to a micro-dollar: more than one apart is a difference.
                if (theirs_micros - ours_micros).abs() > 1 {
                    out.cost_differences.push(format!(
                        "{} ({}): Claude Code ${theirs:.6}, swarm-cost ${ours}",
                        c.request_id.as_deref().unwrap_or("?"),
                        c.model
                    ));
                }
            }
            let Some(key) = c.dedup_key() else {
                out.unkeyed += 1;
                continue;
            };
            let counter =
                CounterName::new(safe_name("cc-booked-", &key)).map_err(|e| e.to_string())?;
            let draft = safe_name("cc-call-", &key);
            // On the books (at its exact usage) before it is claimed: a
            // process that dies after the claim leaves it as estimated
            // spend, never lost.
            let hold = Meter::reserve(&self.accountant, Self::metered_call(c), c.usage)
                .await
                .map_err(|e| format!("holding call {key}: {e}"))?;
            let claimed = match self.bus.counter_try_add(&counter, 1, 1).await {
                Ok(claimed) => claimed,
                Err(e) => {
                    self.cancel(hold).await;
                    return Err(format!("claiming call {key}: {e}"));
                }
            };
            if claimed.is_none() {
                self.cancel(hold).await;
                out.already += 1;
                if let Ok(Some(first)) = self.bus.load_draft(&draft).await
                    && let Ok(first) = serde_json::from_str::<CallUsage>(&first)
                    && let Some(d) = first.disagreement(c)
                {
                    out.disagreements.push(format!(
                        "{key}: {} says {d} ({} vs {})",
                        first.source.as_str(),
                        first.source.as_str(),
                        c.source.as_str()
                    ));
                }
                continue;
            }
            match Meter::settle(&self.accountant, hold, &c.model, c.usage).await {
                Ok(settled) => {
                    out.booked += 1;
                    if let Some(usd) = settled.cost {
                        out.usd += usd;
                    }
                    if let Ok(json) = serde_json::to_string(c) {
                        // Only for telling disagreements: a failure here loses nothing booked.
                        let _ = self.bus.save_draft(&draft, &json).await;
                    }
                }
                Err(unsettled) => {
                    // Claimed and on the books at its exact usage as
                    // estimated spend (the hold dropped keeps it there):
                    // giving the claim back would book it twice.
                    return Err(format!("booking call {key}: {}", unsettled.error));
                }
            }
        }
        Ok(out)
    }

    /// Gives back the hold of a call another report booked.
    async fn cancel(&self, hold: Hold) {
        if let Err(e) = Meter::cancel(&self.accountant, hold).await {
            tracing::warn!(error = %e, "a Claude Code call's estimate was not voided");
        }
    }

    /// Booked spend: (this session's, everything's).
    pub(crate) async fn spent(&self, session: Option<&str>) -> Result<(Money, Money), String> {
        let all = self
            .accountant
            .report(&ReportFilter::all())
            .await
            .map_err(|e| e.to_string())?;
        let session_usd = session
            .and_then(|s| all.by_session.get(s))
            .map_or(Money::ZERO, |t| t.usd);
        Ok((session_usd, all.total.usd))
    }
}
