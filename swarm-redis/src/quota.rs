//! [`QuotaLedger`]: per-shard quota accounting shared by every process, as
//! Lua scripts over one HASH per shard (`swarm:quota:shard<N>`), keeping the
//! brief's `librarian:shard<N>:status` and `:quota` current in the same
//! script.
//!
//! The Pacific day, its next midnight and the minute window are computed in
//! Rust from the caller's `now` (`swarmbus_core::quota`) and passed in, so
//! every process agrees on them and tests control the clock. Rules, in the
//! order a request meets them:
//!
//! 1. disabled → denied until enabled by hand;
//! 2. exhausted until a time still ahead → denied;
//! 3. cooling until a time still ahead → denied;
//! 4. the day's count (a new Pacific day starts at 0) at the daily limit →
//!    exhausted until the next Pacific midnight, denied;
//! 5. the minute's count at the per-minute limit → denied, cooling until
//!    the next minute (nothing is marked: the window passes by itself);
//! 6. otherwise counted and granted; the grant that reaches the daily limit
//!    marks the shard exhausted until the next Pacific midnight.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use redis::Value;
use swarmbus_core::ShardState;
use swarmbus_core::bus::QuotaLedger;
use swarmbus_core::error::Result;
use swarmbus_core::keys::{Key, ShardId};
use swarmbus_core::quota::{
    Acquire, Denial, QuotaLimits, ShardBook, minute_window, next_pacific_midnight, pacific_day,
    shard_state,
};

use crate::bus::{RedisBus, int, items, text};
use crate::errors::unexpected_reply;
use crate::scripts;

fn limit_arg(limit: Option<u32>) -> i64 {
    limit.map_or(-1, i64::from)
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// A time as the ledger keeps it beside its microseconds: RFC 3339 text,
/// exact to the nanosecond.
fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn parse_stamp(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The ledger fields of one shard.
const FIELDS: [&str; 11] = [
    "day",
    "used",
    "minute",
    "minute_used",
    "cooling_until",
    "cooling_at",
    "exhausted_until",
    "exhausted_at",
    "disabled",
    "reason",
    "tested",
];

impl RedisBus {
    fn shard_keys(&self, shard: ShardId) -> [String; 3] {
        [
            self.ledger_key(shard),
            self.key(&Key::ShardStatus(shard)),
            self.key(&Key::ShardQuota(shard)),
        ]
    }

    async fn mark(
        &self,
        shard: ShardId,
        operation: &'static str,
        args: &[&dyn crate::bus::ToArg],
    ) -> Result<()> {
        let keys = self.shard_keys(shard);
        let keys = [keys[0].as_str(), keys[1].as_str(), keys[2].as_str()];
        let _: String = self
            .eval(operation, &scripts::QUOTA_MARK, &keys, args)
            .await?;
        Ok(())
    }

    /// Works out a shard's state from its ledger fields at `now`, by the
    /// one rule of `swarmbus_core::quota::shard_state`.
    fn shard_state(
        shard: ShardId,
        fields: &HashMap<&str, Option<String>>,
        limits: QuotaLimits,
        now: DateTime<Utc>,
    ) -> ShardState {
        let get = |f: &str| fields.get(f).cloned().flatten();
        let num = |f: &str| get(f).and_then(|v| v.parse::<i64>().ok());
        let count = |f: &str| u32::try_from(num(f).unwrap_or(0).max(0)).unwrap_or(u32::MAX);
        let today = pacific_day(now).to_string();
        let (minute, _) = minute_window(now);
        let mut book = ShardBook::new();
        if get("day").as_deref() == Some(today.as_str()) {
            book.used_today = count("used");
        }
        if num("minute") == Some(minute) {
            book.minute_used = count("minute_used");
        }
        let stamp = |at: &str| get(at).as_deref().and_then(parse_stamp);
        book.exhausted_until = stamp("exhausted_at");
        book.cooling_until = stamp("cooling_at");
        if get("disabled").as_deref() == Some("1") {
            book.disabled = Some(get("reason").unwrap_or_default());
        }
        book.tested = get("tested").as_deref() == Some("1");
        shard_state(shard, &book, limits, now)
    }
}

#[async_trait]
impl QuotaLedger for RedisBus {
    async fn try_acquire(
        &self,
        shard: ShardId,
        limits: QuotaLimits,
        now: DateTime<Utc>,
    ) -> Result<Acquire> {
        let keys = self.shard_keys(shard);
        let keys = [keys[0].as_str(), keys[1].as_str(), keys[2].as_str()];
        let (minute, next_minute) = minute_window(now);
        let next_midnight = next_pacific_midnight(now);
        let day = pacific_day(now).to_string();
        // With an operation id: a request sent again after a lost reply
        // is counted once and answered as the first time.
        let reply: Value = self
            .eval_once(
                "try_acquire",
                &scripts::QUOTA_ACQUIRE,
                &keys,
                &[
                    &micros(now),
                    &day,
                    &minute,
                    &stamp(next_minute),
                    &micros(next_midnight),
                    &stamp(next_midnight),
                    &limit_arg(limits.per_day),
                    &limit_arg(limits.per_minute),
                ],
                None,
            )
            .await?;
        let parts = items(reply).ok_or_else(|| unexpected_reply("try_acquire", "not an array"))?;
        let [tag, detail] = parts.as_slice() else {
            return Err(unexpected_reply("try_acquire", "not a pair"));
        };
        let tag = text(tag).ok_or_else(|| unexpected_reply("try_acquire", "tag"))?;
        let until = || {
            text(detail)
                .as_deref()
                .and_then(parse_stamp)
                .ok_or_else(|| unexpected_reply("try_acquire", "time"))
        };
        Ok(match tag.as_str() {
            "granted" => {
                let remaining =
                    int(detail).ok_or_else(|| unexpected_reply("try_acquire", "remaining"))?;
                Acquire::Granted {
                    remaining_today: u32::try_from(remaining).ok(),
                }
            }
            "disabled" => Acquire::Denied(Denial::Disabled {
                reason: text(detail).unwrap_or_default(),
            }),
            "exhausted" => Acquire::Denied(Denial::Exhausted { until: until()? }),
            "cooling" => Acquire::Denied(Denial::Cooling { until: until()? }),
            other => return Err(unexpected_reply("try_acquire", other)),
        })
    }

    async fn release(&self, shard: ShardId, limits: QuotaLimits, now: DateTime<Utc>) -> Result<()> {
        let keys = self.shard_keys(shard);
        let keys = [keys[0].as_str(), keys[1].as_str(), keys[2].as_str()];
        let (minute, _) = minute_window(now);
        let day = pacific_day(now).to_string();
        let _: i64 = self
            .eval_once(
                "release",
                &scripts::QUOTA_RELEASE,
                &keys,
                &[&micros(now), &day, &minute, &limit_arg(limits.per_day)],
                None,
            )
            .await?;
        Ok(())
    }

    async fn cool_until(
        &self,
        shard: ShardId,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now = micros(now);
        self.mark(
            shard,
            "cool_until",
            &[&"cool", &now, &micros(until), &stamp(until)],
        )
        .await
    }

    async fn exhaust_until(
        &self,
        shard: ShardId,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now = micros(now);
        self.mark(
            shard,
            "exhaust_until",
            &[&"exhaust", &now, &micros(until), &stamp(until)],
        )
        .await
    }

    async fn disable(&self, shard: ShardId, reason: &str, now: DateTime<Utc>) -> Result<()> {
        let now = micros(now);
        self.mark(shard, "disable", &[&"disable", &now, &reason])
            .await
    }

    async fn enable(&self, shard: ShardId, now: DateTime<Utc>) -> Result<()> {
        let now = micros(now);
        self.mark(shard, "enable", &[&"enable", &now]).await
    }

    async fn mark_ok(&self, shard: ShardId, limits: QuotaLimits, now: DateTime<Utc>) -> Result<()> {
        let day = pacific_day(now).to_string();
        self.mark(
            shard,
            "mark_ok",
            &[&"ok", &micros(now), &day, &limit_arg(limits.per_day)],
        )
        .await
    }

    async fn shard_states(
        &self,
        shards: &[ShardId],
        limits: QuotaLimits,
        now: DateTime<Utc>,
    ) -> Result<Vec<ShardState>> {
        if shards.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for shard in shards {
            pipe.cmd("HMGET")
                .arg(self.ledger_key(*shard))
                .arg(&FIELDS[..]);
        }
        let rows: Vec<Vec<Option<String>>> = self.pipeline("shard_states", &pipe).await?;
        Ok(shards
            .iter()
            .zip(rows)
            .map(|(shard, row)| {
                let fields: HashMap<&str, Option<String>> =
                    FIELDS.iter().copied().zip(row).collect();
                Self::shard_state(*shard, &fields, limits, now)
            })
            .collect())
    }

    async fn shard_quotas(&self, shards: &[ShardId]) -> Result<Vec<Option<i64>>> {
        let keys: Vec<String> = shards
            .iter()
            .map(|s| self.key(&Key::ShardQuota(*s)))
            .collect();
        self.read_numbers::<i64>("shard_quotas", &keys).await
    }
}
