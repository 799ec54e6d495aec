//! Estimated spend: what a call was reserved at, kept on the books until
//! its exact price is booked.
//!
//! [`crate::Accountant::reserve`] writes an [`Estimate`] (hold id, tier,
//! model, worker, session, the dollars held) to the `cost-estimates`
//! journal before the call is made. Booking the call writes its ledger
//! entry under the hold's id ([`crate::LedgerEntry::hold`]); cancelling it
//! writes a [`EstimateEvent::Void`]. An estimate whose hold has neither is
//! *outstanding*: the process died between the provider's answer and the
//! ledger record, or the bus was away when it tried. Reports show the
//! outstanding estimates as estimated spend, apart from the exact spend,
//! until the booking arrives (a hold id is booked once: readers drop a
//! repeated id).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use swarmbus_core::Tier;
use swarmbus_core::keys::{SessionId, TierName, WorkerId};
use uuid::Uuid;

use crate::ledger::Call;
use swarmbus_core::money::Money;

/// The journal estimates are written to by default.
pub const DEFAULT_ESTIMATES_JOURNAL: &str = "cost-estimates";

/// A call's reservation, written before the call is made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Estimate {
    /// The hold's id: the ledger entry of the call takes it.
    pub hold: Uuid,
    /// When the hold was taken.
    pub at: DateTime<Utc>,
    /// The tier.
    pub tier: TierName,
    /// The tier's role, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Tier>,
    /// The model asked.
    pub model: String,
    /// The worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<WorkerId>,
    /// The session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<SessionId>,
    /// The dollars held (`None`: the estimate could not be priced; never
    /// counted as $0).
    pub usd: Option<Money>,
}

impl Estimate {
    /// The estimate of `call` at `usd`, under a fresh hold id.
    pub fn new(call: &Call, usd: Option<Money>) -> Self {
        Self {
            hold: Uuid::new_v4(),
            at: call.at,
            tier: call.tier.clone(),
            role: call.role,
            model: call.model.clone(),
            worker: call.worker.clone(),
            session: call.session.clone(),
            usd,
        }
    }
}

/// One record of the estimates journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EstimateEvent {
    /// A hold was taken.
    Estimate(Estimate),
    /// The call of a hold was never made: its estimate is off the books.
    Void {
        /// The hold.
        hold: Uuid,
        /// When it was voided.
        at: DateTime<Utc>,
    },
}

/// What was read from the estimates journal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Estimates {
    /// Every estimate, oldest first, repeated holds dropped.
    pub estimates: Vec<Estimate>,
    /// The voided holds.
    pub voided: HashSet<Uuid>,
    /// Records that did not decode: (position, what was wrong).
    pub skipped: Vec<(u64, String)>,
}

impl Estimates {
    /// Decodes the journal's records (from position 0, in order).
    pub fn decode<'a>(records: impl IntoIterator<Item = &'a str>) -> Self {
        let mut out = Self::default();
        let mut seen = HashSet::new();
        for (position, record) in records.into_iter().enumerate() {
            match serde_json::from_str::<EstimateEvent>(record) {
                Ok(EstimateEvent::Estimate(e)) => {
                    if seen.insert(e.hold) {
                        out.estimates.push(e);
                    }
                }
                Ok(EstimateEvent::Void { hold, .. }) => {
                    out.voided.insert(hold);
                }
                Err(e) => out.skipped.push((position as u64, e.to_string())),
            }
        }
        out
    }

    /// The estimates whose hold is neither voided nor in `booked` (the
    /// ledger's entry ids): spend that happened but has no exact figure yet.
    pub fn outstanding<'a>(
        &'a self,
        booked: &'a HashSet<Uuid>,
    ) -> impl Iterator<Item = &'a Estimate> {
        self.estimates
            .iter()
            .filter(move |e| !self.voided.contains(&e.hold) && !booked.contains(&e.hold))
    }
}
