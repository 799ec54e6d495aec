//! Librarian shards as the quota ledger sees them: [`ShardStatus`] (the
//! value of `librarian:shard<N>:status`) and [`ShardState`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::keys::ShardId;

/// A librarian shard's availability, the value of `librarian:shard<N>:status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ShardStatus {
    /// Usable.
    Ok,
    /// Rate limited for a short while.
    Cooling,
    /// The day's quota is used up until the Pacific midnight reset.
    Exhausted,
    /// The key is invalid, leaked or the project unusable: never used again
    /// until enabled by hand.
    Disabled,
    /// Never used or tested.
    Untested,
}

impl ShardStatus {
    /// The stored string.
    pub const fn as_str(self) -> &'static str {
        match self {
            ShardStatus::Ok => "ok",
            ShardStatus::Cooling => "cooling",
            ShardStatus::Exhausted => "exhausted",
            ShardStatus::Disabled => "disabled",
            ShardStatus::Untested => "untested",
        }
    }

    /// Parses the stored string.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ok" => ShardStatus::Ok,
            "cooling" => ShardStatus::Cooling,
            "exhausted" => ShardStatus::Exhausted,
            "disabled" => ShardStatus::Disabled,
            "untested" => ShardStatus::Untested,
            _ => return None,
        })
    }
}

impl std::fmt::Display for ShardStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One shard's state in the quota ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ShardState {
    /// The shard.
    pub shard: ShardId,
    /// Its status now.
    pub status: ShardStatus,
    /// Requests granted this Pacific day.
    pub used_today: u32,
    /// What is left today, when the daily limit is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_today: Option<u32>,
    /// Cooling (rate limited) until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooling_until: Option<DateTime<Utc>>,
    /// Exhausted until then (the next Pacific midnight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exhausted_until: Option<DateTime<Utc>>,
    /// Why it was disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
}

impl ShardState {
    /// A shard never used.
    pub fn untested(shard: ShardId) -> Self {
        Self {
            shard,
            status: ShardStatus::Untested,
            used_today: 0,
            remaining_today: None,
            cooling_until: None,
            exhausted_until: None,
            disabled_reason: None,
        }
    }

    /// When it is next usable: now for `ok`/`untested`, the end of cooling or
    /// exhaustion, `None` when disabled.
    pub fn next_usable(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self.status {
            ShardStatus::Ok | ShardStatus::Untested => Some(now),
            ShardStatus::Cooling => self.cooling_until.or(Some(now)),
            ShardStatus::Exhausted => self.exhausted_until,
            ShardStatus::Disabled => None,
        }
    }
}
