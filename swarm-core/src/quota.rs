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

use crate::model::ShardStatus;

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
