//! The shard test protocol (the brief's "paper generation testing
//! protocol"): test every shard with a minimal request, record each one's
//! state, quota and latency in the ledger and the report, compute the
//! operational fraction, and refuse paper-like work below 80 %.
//!
//! A shard the ledger already knows to be disabled, exhausted or cooling is
//! reported as such without spending a request. A probe whose answer is
//! blocked or malformed still proves the key, quota and project work, so the
//! shard counts as operational.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use swarmbus_core::ShardStatus;
use swarmbus_core::bus::QuotaLedger;
use swarmbus_core::keys::ShardId;
use swarmbus_core::quota::Acquire;

use crate::error::{Action, Error, ErrorKind, Result};
use crate::pool::{PoolShard, ShardPool};
use crate::wire::GenerateContentRequest;

/// The operational share paper-like work requires, in percent.
pub const PAPER_WORK_MIN_PERCENT: u8 = 80;

/// The prompt of a probe: as small as a request gets.
pub const PROBE_PROMPT: &str = "Reply with the single word: OK";

/// One shard's test result.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ShardProbe {
    /// The shard.
    pub shard: ShardId,
    /// Its project label.
    pub project: Option<String>,
    /// Its status after the test.
    pub status: ShardStatus,
    /// Whether it can serve now.
    pub operational: bool,
    /// Whether a request was sent (false when the ledger already knew it
    /// could not serve).
    pub probed: bool,
    /// Requests left today, when the limit is known.
    pub remaining_today: Option<u32>,
    /// The probe's round trip.
    #[serde(serialize_with = "millis")]
    pub latency: Option<Duration>,
    /// When it is usable again, when not now.
    pub next_usable: Option<DateTime<Utc>>,
    /// The error kind, when the probe failed or the shard is unusable.
    pub error_kind: Option<ErrorKind>,
    /// The error message or denial reason (no key).
    pub error: Option<String>,
}

fn millis<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(d.as_millis() as u64),
        None => s.serialize_none(),
    }
}

/// The result of testing every shard.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ShardTestReport {
    /// The model probed.
    pub model: String,
    /// When.
    pub tested_at: DateTime<Utc>,
    /// Each shard, in number order.
    pub shards: Vec<ShardProbe>,
}

impl ShardTestReport {
    /// Shards that can serve.
    pub fn operational(&self) -> usize {
        self.shards.iter().filter(|s| s.operational).count()
    }

    /// All shards.
    pub fn total(&self) -> usize {
        self.shards.len()
    }

    /// Operational shards over all shards (0 with no shards).
    pub fn operational_fraction(&self) -> f64 {
        if self.shards.is_empty() {
            0.0
        } else {
            self.operational() as f64 / self.total() as f64
        }
    }

    /// Whether at least `percent` % of the shards are operational (exact
    /// integer comparison: 4 of 5 is 80 %).
    pub fn meets(&self, percent: u8) -> bool {
        self.total() > 0 && self.operational() * 100 >= usize::from(percent) * self.total()
    }

    /// Whether paper-like work may start (at least 80 % operational).
    pub fn ready_for_paper_work(&self) -> bool {
        self.meets(PAPER_WORK_MIN_PERCENT)
    }

    /// Fails with [`Error::NotEnoughShards`] below `percent` %.
    pub fn require(&self, percent: u8) -> Result<()> {
        if self.meets(percent) {
            Ok(())
        } else {
            Err(Error::NotEnoughShards {
                operational: self.operational(),
                total: self.total(),
                required_percent: percent,
            })
        }
    }
}

impl<L: QuotaLedger + ?Sized> ShardPool<L> {
    /// Tests every shard (concurrently) and records the results in the
    /// ledger.
    pub async fn test_shards(&self) -> Result<ShardTestReport> {
        let tested_at = self.clock.now();
        let probes = futures::future::join_all(self.shards.iter().map(|s| self.probe(s))).await;
        let shards = probes.into_iter().collect::<Result<Vec<_>>>()?;
        Ok(ShardTestReport {
            model: self.config.model.clone(),
            tested_at,
            shards,
        })
    }

    async fn probe(&self, shard: &PoolShard) -> Result<ShardProbe> {
        let mut probe = ShardProbe {
            shard: shard.id,
            project: shard.project.clone(),
            status: ShardStatus::Untested,
            operational: false,
            probed: false,
            remaining_today: None,
            latency: None,
            next_usable: None,
            error_kind: None,
            error: None,
        };
        match self
            .ledger
            .try_acquire(shard.id, shard.limits(), self.clock.now())
            .await?
        {
            Acquire::Granted { .. } => {}
            Acquire::Denied(d) => {
                probe.status = d.status();
                probe.next_usable = d.until();
                probe.remaining_today = self.remaining(shard).await?;
                probe.error_kind = Some(match d.status() {
                    ShardStatus::Exhausted => ErrorKind::QuotaExhausted,
                    ShardStatus::Cooling => ErrorKind::RateLimited,
                    _ => ErrorKind::PermissionDenied,
                });
                probe.error = Some(match &d {
                    swarmbus_core::quota::Denial::Disabled { reason } => reason.clone(),
                    other => format!("{} (known to the ledger; not probed)", other.status()),
                });
                return Ok(probe);
            }
            _ => {
                return Err(Error::Config {
                    reason: "the quota ledger gave an answer this version does not know".into(),
                });
            }
        }
        probe.probed = true;
        let started = Instant::now();
        let result = shard
            .client
            .generate(
                &self.config.model,
                &GenerateContentRequest::user(PROBE_PROMPT),
            )
            .await;
        probe.latency = Some(started.elapsed());
        let now = self.clock.now();
        match result {
            Ok(_) => {
                self.ledger.mark_ok(shard.id, shard.limits(), now).await?;
                probe.operational = true;
            }
            Err(e) if matches!(e.kind(), ErrorKind::Blocked | ErrorKind::MalformedResponse) => {
                self.ledger.mark_ok(shard.id, shard.limits(), now).await?;
                probe.operational = true;
                probe.error_kind = Some(e.kind());
                probe.error = Some(format!("answered, but: {e}"));
            }
            Err(e) => {
                let action = e.action();
                if action != Action::Fail {
                    self.apply(shard, &e, action).await?;
                }
                probe.error_kind = Some(e.kind());
                probe.error = Some(e.to_string());
            }
        }
        let state = self
            .ledger
            .shard_states(&[shard.id], shard.limits(), self.clock.now())
            .await?
            .into_iter()
            .next();
        if let Some(st) = state {
            probe.status = st.status;
            probe.remaining_today = st.remaining_today;
            if !probe.operational {
                probe.next_usable = st.next_usable(self.clock.now());
            }
        }
        Ok(probe)
    }

    async fn remaining(&self, shard: &PoolShard) -> Result<Option<u32>> {
        Ok(self
            .ledger
            .shard_states(&[shard.id], shard.limits(), self.clock.now())
            .await?
            .into_iter()
            .next()
            .and_then(|s| s.remaining_today))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(ops: &[bool]) -> ShardTestReport {
        ShardTestReport {
            model: "m".into(),
            tested_at: Utc::now(),
            shards: ops
                .iter()
                .enumerate()
                .map(|(i, ok)| ShardProbe {
                    shard: ShardId::new(i as u32 + 1).unwrap(),
                    project: None,
                    status: if *ok {
                        ShardStatus::Ok
                    } else {
                        ShardStatus::Disabled
                    },
                    operational: *ok,
                    probed: true,
                    remaining_today: None,
                    latency: None,
                    next_usable: None,
                    error_kind: None,
                    error: None,
                })
                .collect(),
        }
    }

    #[test]
    fn four_of_five_is_exactly_enough_for_paper_work() {
        assert!(report(&[true, true, true, true, false]).ready_for_paper_work());
        let r = report(&[true, true, true, false, false]);
        assert!(!r.ready_for_paper_work());
        assert!((r.operational_fraction() - 0.6).abs() < 1e-9);
        assert!(matches!(
            r.require(80),
            Err(Error::NotEnoughShards {
                operational: 3,
                total: 5,
                required_percent: 80
            })
        ));
        assert!(!report(&[]).ready_for_paper_work());
    }
}
