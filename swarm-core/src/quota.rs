//! Quota arithmetic shared by every [`crate::QuotaLedger`]: the Pacific day,
//! its midnight reset, the per-minute window, and what a grant or denial says.
//!
//! Google resets daily Gemini quotas at midnight America/Los_Angeles, so a
//! shard's daily count is keyed by the Pacific calendar date and an exhausted
//! shard is usable again at the next Pacific midnight, whatever the
//! `RetryInfo` delay of the 429 said.

use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, TimeZone, Utc};
use chrono_tz::America::Los_Angeles;
use serde::{Deserialize, Serialize};

use crate::keys::ShardId;
use crate::shard::{ShardState, ShardStatus};

/// The calendar date in America/Los_Angeles at `now`: the day a daily quota
/// counts against.
pub fn pacific_day(now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&Los_Angeles).date_naive()
}

/// The next midnight in America/Los_Angeles after `now`, in UTC: when a daily
/// quota resets. Correct across daylight-saving changes (the day before a
/// change is 23 or 25 hours long).
pub fn next_pacific_midnight(now: DateTime<Utc>) -> DateTime<Utc> {
    let today = pacific_day(now);
    let tomorrow = today.succ_opt().unwrap_or(today);
    let midnight = tomorrow.and_hms_opt(0, 0, 0).unwrap_or_default();
    // Midnight always exists in Los Angeles (the clocks change at 02:00), so
    // `earliest` is the one answer; the fallback only guards the type.
    match Los_Angeles.from_local_datetime(&midnight).earliest() {
        Some(t) => t.with_timezone(&Utc),
        None => now + ChronoDuration::hours(24),
    }
}

/// The start of the fixed one-minute window containing `now`, as Unix
/// minutes, and when the next window starts.
pub fn minute_window(now: DateTime<Utc>) -> (i64, DateTime<Utc>) {
    let minute = now.timestamp().div_euclid(60);
    let next = DateTime::from_timestamp((minute + 1) * 60, 0).unwrap_or(now);
    (minute, next)
}

/// A shard's limits. Google counts them per project and model, so they are
/// configuration (learnt from a 429's `quotaValue` where one reports it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QuotaLimits {
    /// Requests per Pacific day (`None`: not limited by the ledger).
    pub per_day: Option<u32>,
    /// Requests per minute (`None`: not limited by the ledger).
    pub per_minute: Option<u32>,
}

impl QuotaLimits {
    /// Limits per day and per minute.
    pub const fn new(per_day: Option<u32>, per_minute: Option<u32>) -> Self {
        Self {
            per_day,
            per_minute,
        }
    }

    /// The brief's free tier: 1,500 a day, 15 a minute.
    pub const fn free_tier() -> Self {
        Self::new(Some(1500), Some(15))
    }

    /// No limits.
    pub const fn unlimited() -> Self {
        Self::new(None, None)
    }
}

/// Why a shard was not granted a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Denial {
    /// Disabled (bad or leaked key, unusable project) until enabled by hand.
    Disabled {
        /// Why.
        reason: String,
    },
    /// The daily quota is used up (reported by the API or counted here).
    Exhausted {
        /// The next Pacific midnight.
        until: DateTime<Utc>,
    },
    /// Rate limited (a per-minute 429 or the per-minute window is full).
    Cooling {
        /// When to try again.
        until: DateTime<Utc>,
    },
}

impl Denial {
    /// The status the shard has while denied.
    pub fn status(&self) -> ShardStatus {
        match self {
            Denial::Disabled { .. } => ShardStatus::Disabled,
            Denial::Exhausted { .. } => ShardStatus::Exhausted,
            Denial::Cooling { .. } => ShardStatus::Cooling,
        }
    }

    /// When the shard is usable again (`None`: not without a person).
    pub fn until(&self) -> Option<DateTime<Utc>> {
        match self {
            Denial::Disabled { .. } => None,
            Denial::Exhausted { until } | Denial::Cooling { until } => Some(*until),
        }
    }
}

/// What a quota ledger has recorded about one shard, as every ledger reads
/// it back: the input of [`shard_state`], the one rule for a shard's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShardBook {
    /// Requests counted on the Pacific day of `now` (0 on another day).
    pub used_today: u32,
    /// Requests counted in the minute of `now` (0 in another minute).
    pub minute_used: u32,
    /// The cooling mark, if any (it may lie in the past).
    pub cooling_until: Option<DateTime<Utc>>,
    /// The exhaustion mark, if any (it may lie in the past).
    pub exhausted_until: Option<DateTime<Utc>>,
    /// Why the shard was disabled, if it was.
    pub disabled: Option<String>,
    /// Whether a call through the shard succeeded since it was enabled.
    pub tested: bool,
}

impl ShardBook {
    /// An empty book (never used).
    pub fn new() -> Self {
        Self::default()
    }
}

/// The one priority rule of shard states: disabled, then exhausted, then
/// cooling, then ok (tested) or untested. `exhausted` and `cooling` mean
/// "in force now". The Lua scripts of the Redis ledger state the same rule
/// in their one `shard_status` function; the conformance suite pins both.
pub const fn shard_status(
    disabled: bool,
    exhausted: bool,
    cooling: bool,
    tested: bool,
) -> ShardStatus {
    if disabled {
        ShardStatus::Disabled
    } else if exhausted {
        ShardStatus::Exhausted
    } else if cooling {
        ShardStatus::Cooling
    } else if tested {
        ShardStatus::Ok
    } else {
        ShardStatus::Untested
    }
}

/// A shard's state at `now` from its book and limits: marks in force, and
/// counts that deny the next request (the day's count at its limit is
/// exhaustion until the next Pacific midnight, the minute's at its limit is
/// cooling until the next minute), combined by [`shard_status`].
pub fn shard_state(
    shard: ShardId,
    book: &ShardBook,
    limits: QuotaLimits,
    now: DateTime<Utc>,
) -> ShardState {
    let exhausted_mark = book.exhausted_until.filter(|u| *u > now);
    let cooling_mark = book.cooling_until.filter(|u| *u > now);
    let day_full = limits.per_day.is_some_and(|d| book.used_today >= d);
    let minute_full = limits.per_minute.is_some_and(|m| book.minute_used >= m);
    let exhausted_until = exhausted_mark.or_else(|| day_full.then(|| next_pacific_midnight(now)));
    let cooling_until = cooling_mark.or_else(|| minute_full.then(|| minute_window(now).1));
    let mut state = ShardState::untested(shard);
    state.status = shard_status(
        book.disabled.is_some(),
        exhausted_until.is_some(),
        cooling_until.is_some(),
        book.tested,
    );
    state.used_today = book.used_today;
    state.remaining_today = if exhausted_until.is_some() {
        limits.per_day.map(|_| 0)
    } else {
        limits.per_day.map(|d| d.saturating_sub(book.used_today))
    };
    state.exhausted_until = exhausted_until;
    state.cooling_until = cooling_until;
    state.disabled_reason = book.disabled.clone();
    state
}

/// The answer of [`crate::QuotaLedger::try_acquire`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Acquire {
    /// One request granted and counted.
    Granted {
        /// What is left today after this one, when the limit is known.
        remaining_today: Option<u32>,
    },
    /// Not granted; nothing was counted.
    Denied(Denial),
}

impl Acquire {
    /// Whether the request was granted.
    pub fn is_granted(&self) -> bool {
        matches!(self, Acquire::Granted { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn midnight_in_winter_is_08_utc() {
        let now = utc("2026-01-15T20:00:00Z");
        assert_eq!(next_pacific_midnight(now), utc("2026-01-16T08:00:00Z"));
    }

    #[test]
    fn midnight_in_summer_is_07_utc() {
        let now = utc("2026-07-15T20:00:00Z");
        assert_eq!(next_pacific_midnight(now), utc("2026-07-16T07:00:00Z"));
    }

    #[test]
    fn the_day_springing_forward_is_23_hours() {
        // 2026-03-08 02:00 PST -> 03:00 PDT.
        let start = utc("2026-03-08T08:00:00Z"); // midnight PST
        let next = next_pacific_midnight(start);
        assert_eq!(next, utc("2026-03-09T07:00:00Z"));
        assert_eq!((next - start).num_hours(), 23);
    }

    #[test]
    fn the_day_falling_back_is_25_hours() {
        // 2026-11-01 02:00 PDT -> 01:00 PST.
        let start = utc("2026-11-01T07:00:00Z"); // midnight PDT
        let next = next_pacific_midnight(start);
        assert_eq!(next, utc("2026-11-02T08:00:00Z"));
        assert_eq!((next - start).num_hours(), 25);
    }

    #[test]
    fn the_pacific_day_lags_utc_in_the_evening() {
        assert_eq!(
            pacific_day(utc("2026-01-16T07:59:59Z")),
            NaiveDate::from_ymd_opt(2026, 1, 15).unwrap()
        );
        assert_eq!(
            pacific_day(utc("2026-01-16T08:00:00Z")),
            NaiveDate::from_ymd_opt(2026, 1, 16).unwrap()
        );
    }

    #[test]
    fn minute_windows_are_aligned() {
        let (m, next) = minute_window(utc("2026-01-15T20:00:59Z"));
        assert_eq!(next, utc("2026-01-15T20:01:00Z"));
        assert_eq!(m * 60, utc("2026-01-15T20:00:00Z").timestamp());
    }
}
