//! Per-caller token buckets: `rate` requests a second, bursts of twice
//! that, refilled continuously.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets by caller.
#[derive(Debug)]
pub(crate) struct Limiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limiter {
    /// `rate` requests a second per caller (at least 0.1).
    pub(crate) fn new(rate: f64) -> Self {
        let rate = if rate.is_finite() {
            rate.max(0.1)
        } else {
            50.0
        };
        Self {
            rate,
            burst: (rate * 2.0).max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request for `who` at `now`, or says how long to wait.
    pub(crate) fn check(&self, who: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = match self.buckets.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        let (tokens, last) = buckets.entry(who.to_string()).or_insert((self.burst, now));
        let elapsed = now.saturating_duration_since(*last).as_secs_f64();
        *tokens = (*tokens + elapsed * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - *tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let l = Limiter::new(2.0);
        let t0 = Instant::now();
        for _ in 0..4 {
            assert!(l.check("a", t0).is_ok());
        }
        let wait = l.check("a", t0).err();
        assert!(wait.is_some_and(|w| w > Duration::ZERO && w <= Duration::from_millis(500)));
        assert!(l.check("b", t0).is_ok(), "callers have their own buckets");
        assert!(l.check("a", t0 + Duration::from_millis(500)).is_ok());
    }
}
