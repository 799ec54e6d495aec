//! The status indicator: a [`SwarmStatus`] snapshot read from any bus and the
//! brief's `📊 SWARM STATUS` block rendered from it (for `swarm status`, the
//! prompt, the dashboard, the metrics and the examples). The worker share it
//! shows is core's [`Efficiency`], shared with the cost report.
//!
//! Taking a snapshot costs the same at 1,000 findings as at 1,000,000: it
//! reads the finding counter, the live workers, one quota value per shard and
//! one cost per tier, never the findings themselves.
//!
//! Bad values in the brief's keys (text under `cost:haiku`, a LIST where a
//! STRING belongs, NaN or infinite dollars, a negative `context:active`)
//! never blank the status: each field is read on its own, an unreadable one
//! is `?` in the block and `null` in JSON, and [`SwarmStatus::errors`] names
//! its key and why. Only a fault of the connection fails the snapshot.

use chrono::{DateTime, Utc};
use serde::Serialize;

use swarmbus_core::bus::{Counters, FindingStore, HaltSwitch, QuotaLedger, WorkerRegistry};
use swarmbus_core::keys::{ShardId, TierName};
use swarmbus_core::{Efficiency, HaltReport, Result, Tier};

/// What the status block shows and how it names things.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StatusConfig {
    /// The coordinator tier's name (`sonnet`).
    pub coordinator: TierName,
    /// The worker tier's name (`haiku`).
    pub worker: TierName,
    /// The librarian tier's name (`gemini`).
    pub librarian: TierName,
    /// The shards listed on the Librarians line (the brief: 1 to 5).
    pub shards: Vec<ShardId>,
    /// Tokens estimated per finding on the Redis Context line (the brief: 100).
    pub tokens_per_finding: u64,
}

impl Default for StatusConfig {
    fn default() -> Self {
        Self {
            coordinator: Tier::Coordinator.default_name(),
            worker: Tier::Worker.default_name(),
            librarian: Tier::Librarian.default_name(),
            shards: (1..=5).filter_map(|n| ShardId::new(n).ok()).collect(),
            tokens_per_finding: 100,
        }
    }
}

impl StatusConfig {
    /// Sets the tier names.
    pub fn tiers(mut self, coordinator: TierName, worker: TierName, librarian: TierName) -> Self {
        self.coordinator = coordinator;
        self.worker = worker;
        self.librarian = librarian;
        self
    }

    /// Sets the shards listed.
    pub fn shards(mut self, shards: Vec<ShardId>) -> Self {
        self.shards = shards;
        self
    }
}

/// One shard on the Librarians line: its `librarian:shard<N>:quota` value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ShardQuota {
    /// The shard.
    pub shard: ShardId,
    /// Remaining today, `None` when never written (shown as `unknown`) or
    /// unreadable (shown as `?`, with `readable` false).
    pub quota: Option<i64>,
    /// False when the value could not be read (see [`SwarmStatus::errors`]).
    pub readable: bool,
}

/// Spend of one tier, from `cost:<tier>`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TierCost {
    /// The tier.
    pub tier: TierName,
    /// Dollars; `None` when unreadable (see [`SwarmStatus::errors`]).
    pub usd: Option<f64>,
}

/// A field of the status that could not be read: the key and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StatusError {
    /// The key (or, when the error names none, the field).
    pub key: String,
    /// Why it could not be read.
    pub why: String,
}

/// A point-in-time view of the swarm.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SwarmStatus {
    /// Active findings; `None` when unreadable.
    pub findings: Option<u64>,
    /// `findings × tokens_per_finding`, the brief's estimate.
    pub tokens: Option<u64>,
    /// `context:active`, when set and readable.
    pub context_tokens: Option<u64>,
    /// Workers with a current heartbeat; `None` when unreadable.
    pub active_workers: Option<u64>,
    /// Quota per listed shard.
    pub shards: Vec<ShardQuota>,
    /// Coordinator, worker and librarian spend, in that order.
    pub costs: Vec<TierCost>,
    /// The worker share of spend; `None` when a cost it needs is unreadable.
    pub efficiency: Option<Efficiency>,
    /// The halt report, when halted.
    pub halted: Option<HaltReport>,
    /// Every field that could not be read: its key and why.
    pub errors: Vec<StatusError>,
    /// When the snapshot was taken.
    pub taken_at: DateTime<Utc>,
}

/// Keeps a read's value, or records why it failed when the failure is
/// about the data under a key; a fault of the connection is returned.
fn field<T>(errors: &mut Vec<StatusError>, name: &str, read: Result<T>) -> Result<Option<T>> {
    match read {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.key().is_some() => {
            errors.push(StatusError {
                key: e.key().unwrap_or(name).to_owned(),
                why: e.to_string(),
            });
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

impl SwarmStatus {
    /// Reads a snapshot from a bus: a constant number of reads whatever the
    /// number of findings. Each field is read on its own: a bad value makes
    /// that field unreadable (listed in [`SwarmStatus::errors`]); only a
    /// fault of the connection (or of the bus) is an error.
    pub async fn snapshot<B>(bus: &B, config: &StatusConfig) -> Result<Self>
    where
        B: FindingStore + WorkerRegistry + QuotaLedger + Counters + HaltSwitch + ?Sized,
    {
        let tiers = [
            config.coordinator.clone(),
            config.worker.clone(),
            config.librarian.clone(),
        ];
        let quota_reads = futures::future::join_all(config.shards.iter().map(|s| async move {
            bus.shard_quotas(std::slice::from_ref(s))
                .await
                .map(|v| v.into_iter().next().flatten())
        }));
        let cost_reads = futures::future::join_all(tiers.iter().map(|t| async move {
            let usd = bus
                .costs(std::slice::from_ref(t))
                .await?
                .into_iter()
                .next()
                .unwrap_or(0.0);
            if usd.is_finite() {
                Ok(usd)
            } else {
                Err(swarmbus_core::Error::decode(
                    format!("cost:{t}"),
                    format!("not a finite number of dollars: {usd}"),
                ))
            }
        }));
        let (findings, active_workers, quotas, costs, context_tokens, halted) = futures::join!(
            bus.count_findings(),
            bus.count_alive_workers(),
            quota_reads,
            cost_reads,
            bus.context_tokens(),
            bus.halted(),
        );
        let mut errors = Vec::new();
        let findings = field(&mut errors, "findings", findings)?;
        let active_workers = field(&mut errors, "workers", active_workers)?;
        let context_tokens = field(&mut errors, "context:active", context_tokens)?.flatten();
        let halted = field(&mut errors, "halt:reason", halted)?.flatten();
        let mut shards = Vec::with_capacity(config.shards.len());
        for (shard, quota) in config.shards.iter().zip(quotas) {
            let read = field(&mut errors, "librarian quota", quota)?;
            shards.push(ShardQuota {
                shard: *shard,
                quota: read.flatten(),
                readable: read.is_some(),
            });
        }
        let mut tier_costs = Vec::with_capacity(tiers.len());
        for (tier, usd) in tiers.into_iter().zip(costs) {
            let usd = field(&mut errors, "cost", usd)?;
            tier_costs.push(TierCost { tier, usd });
        }
        let usd = |i: usize| tier_costs.get(i).and_then(|c| c.usd);
        let efficiency = match (usd(0), usd(1)) {
            (Some(c), Some(w)) => Some(Efficiency::from_costs(c, w)),
            _ => None,
        };
        Ok(Self {
            findings,
            tokens: findings.map(|n| n.saturating_mul(config.tokens_per_finding)),
            context_tokens,
            active_workers,
            shards,
            efficiency,
            costs: tier_costs,
            halted,
            errors,
            taken_at: Utc::now(),
        })
    }

    /// The brief's status block, line for line as its `context_indicator.py`
    /// prints it; a last line says when the swarm is halted.
    pub fn render(&self) -> String {
        const UNREADABLE: &str = "?";
        let name = |i: usize| {
            self.costs
                .get(i)
                .map(|c| c.tier.display_name())
                .unwrap_or_default()
        };
        let usd = |i: usize| match self.costs.get(i) {
            None => Some(0.0),
            Some(c) => c.usd,
        };
        let dollars = |i: usize| match usd(i) {
            Some(v) => format!("${v:.4}"),
            None => format!("${UNREADABLE}"),
        };
        let count = |n: Option<u64>| n.map_or_else(|| UNREADABLE.to_owned(), |n| n.to_string());
        let (coordinator, worker, librarian) = (name(0), name(1), name(2));
        let shards: Vec<String> = self
            .shards
            .iter()
            .map(|s| match (s.readable, s.quota) {
                (false, _) => format!("Shard{}:{UNREADABLE}", s.shard),
                (true, Some(q)) => format!("Shard{}:{q}", s.shard),
                (true, None) => format!("Shard{}:unknown", s.shard),
            })
            .collect();
        // The brief prints the librarian tier as a constant `$0` (free tier);
        // a paid librarian shows its spend like the other tiers.
        let librarian_cost = match usd(2) {
            Some(0.0) => "$0".to_owned(),
            _ => dollars(2),
        };
        let (worker_share, coordinator_share) = match &self.efficiency {
            Some(e) => (e.worker.to_string(), e.coordinator.to_string()),
            None => (UNREADABLE.to_owned(), UNREADABLE.to_owned()),
        };
        let mut out = String::new();
        out.push_str("📊 SWARM STATUS\n");
        out.push_str(&format!(
            "Redis Context: {} findings, ~{} tokens\n",
            count(self.findings),
            count(self.tokens)
        ));
        out.push_str(&format!(
            "Active Workers: {} {worker}s\n",
            count(self.active_workers)
        ));
        out.push_str(&format!("Librarians: {}\n", shards.join(", ")));
        out.push_str(&format!(
            "Cost This Session: {coordinator} {} | {worker} {} | {librarian} {librarian_cost}\n",
            dollars(0),
            dollars(1)
        ));
        out.push_str(&format!(
            "Token Efficiency: {worker} {worker_share}% / {coordinator} {coordinator_share}%\n"
        ));
        if let Some(h) = &self.halted {
            out.push_str(&format!("HALTED: {h}\n"));
        }
        for e in &self.errors {
            out.push_str(&format!("? {}: {}\n", e.key, e.why));
        }
        out
    }

    /// The snapshot as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}
