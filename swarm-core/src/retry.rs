//! The one retry policy: whether a failed call is made again, after how
//! long, and with what changed (the same target, the next shard or key, a
//! fallback model). In the spirit of tower's `retry::Policy` and
//! `retry::budget`, for a crate with no runtime: a policy DECIDES, the
//! caller sleeps and sends.
//!
//! - A failure is read in core's vocabulary ([`Failure`]): the
//!   [`ModelAction`] of a [`ModelError`], or what a [`crate::Error`] says
//!   ([`crate::Error::retry_at`], the bus's [`Retry`] mapped onto the same
//!   actions), with the retry delay the server named.
//! - The caller says how many retries this target has had and how much time
//!   is left ([`Attempt`]); the policy answers a [`Decision`]: retry after a
//!   wait with a [`Change`], or give up and why ([`GiveUp`]).
//! - [`Backoff`], the one implementation, waits `base × 2^retries` capped
//!   at `cap`, raised to the server's delay, with jitter only from a seed
//!   the caller gives (the same seed, the same waits: tests are exact), and
//!   stops after `max_retries` or when the wait does not fit in the time
//!   left.
//! - A [`RetryBudget`] (a token bucket shared by many calls: successes
//!   deposit, retries withdraw) bounds retries of the same target as a share
//!   of the calls that succeed. A cap on attempts bounds one call; only a
//!   budget bounds a storm: when every call fails, `max_retries = 2`
//!   triples the load on a provider already failing, while a budget of 10 %
//!   adds at most a tenth (tower's `retry::budget` makes the same argument).
//!   Rotation and fallback move a call elsewhere instead of repeating it, so
//!   they draw nothing.
//!
//! ```
//! use std::time::Duration;
//! use swarmbus_core::retry::{Attempt, Backoff, Change, Decision, Failure, RetryPolicy};
//! use swarmbus_core::ModelAction;
//!
//! let mut policy = Backoff::new(Duration::from_millis(500), Duration::from_secs(8))
//!     .max_retries(2)
//!     .rotate(true);
//! let overloaded = Failure::new(ModelAction::Retry);
//! // First and second failure: the same shard again, 500 ms then 1 s later.
//! assert_eq!(
//!     policy.decide(&Attempt::new(overloaded, 0)),
//!     Decision::Retry { wait: Duration::from_millis(500), change: Change::Same }
//! );
//! assert_eq!(
//!     policy.decide(&Attempt::new(overloaded, 1)),
//!     Decision::Retry { wait: Duration::from_secs(1), change: Change::Same }
//! );
//! // Retries used up: the next shard, at once.
//! assert_eq!(
//!     policy.decide(&Attempt::new(overloaded, 2)),
//!     Decision::Retry { wait: Duration::ZERO, change: Change::Rotate }
//! );
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::error::{Error, Retry};
use crate::llm::{ModelAction, ModelError, ModelErrorKind};

/// A failed attempt as a retry policy reads it: core's action, the delay
/// the server named, and the kind when the failure is a model's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Failure {
    /// What to do about it.
    pub action: ModelAction,
    /// The retry delay the server named (a floor for any wait).
    pub retry_after: Option<Duration>,
    /// The kind, for a model's failure.
    pub kind: Option<ModelErrorKind>,
}

impl Failure {
    /// A failure whose action is `action`, with no delay and no kind.
    pub const fn new(action: ModelAction) -> Self {
        Self {
            action,
            retry_after: None,
            kind: None,
        }
    }

    /// Sets the server's retry delay.
    pub const fn with_retry_after(mut self, after: Option<Duration>) -> Self {
        self.retry_after = after;
        self
    }

    /// Sets the kind.
    pub const fn with_kind(mut self, kind: ModelErrorKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// A model's failure: its action, delay and kind.
    pub fn of_model(e: &ModelError) -> Self {
        Self::new(e.action)
            .with_retry_after(e.retry_after)
            .with_kind(e.kind)
    }

    /// What core's error says at `now` (the caller's clock): a model's
    /// failure as [`Failure::of_model`]; any other through its [`Retry`]
    /// ([`Failure::of_retry`]).
    pub fn of_error(e: &Error, now: DateTime<Utc>) -> Self {
        match e {
            Error::Model(m) => Self::of_model(m),
            other => Self::of_retry(other.retry_at(now)),
        }
    }

    /// The bus's [`Retry`] in the same actions: `Retry` is a transient
    /// fault, `After(d)` a named wait, `Stop` stops, and `Never` and
    /// `Unknown` (the write may have applied: making it again may apply it
    /// twice) are not retried.
    pub fn of_retry(r: Retry) -> Self {
        match r {
            Retry::Retry => Self::new(ModelAction::Retry),
            Retry::After(after) => {
                Self::new(ModelAction::RetryAfter { after }).with_retry_after(Some(after))
            }
            Retry::Stop => Self::new(ModelAction::Stop { until: None }),
            _ => Self::new(ModelAction::Fail),
        }
    }

    /// The wait this failure names at `now`, if any: the delay of a
    /// `RetryAfter` (or the server's, when longer), the time until a
    /// `WaitUntil`, else the server's delay.
    pub fn named_wait(&self, now: DateTime<Utc>) -> Option<Duration> {
        match self.action {
            ModelAction::RetryAfter { after } => {
                Some(after.max(self.retry_after.unwrap_or_default()))
            }
            ModelAction::WaitUntil { until } => {
                Some((until - now).to_std().unwrap_or(Duration::ZERO))
            }
            _ => self.retry_after,
        }
    }
}

/// One failed attempt, as the caller tells it to a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Attempt {
    /// What failed.
    pub failure: Failure,
    /// Retries this target has had before this failure (0 after the first
    /// attempt failed).
    pub retries: u32,
    /// The time left to the caller's deadline (`None`: no deadline); a wait
    /// that does not end within it is not taken.
    pub time_left: Option<Duration>,
    /// The caller's clock, for a failure that names a moment.
    pub now: DateTime<Utc>,
}

impl Attempt {
    /// The `retries`-th retry's question about `failure`, with no deadline,
    /// at the system clock's now.
    pub fn new(failure: Failure, retries: u32) -> Self {
        Self {
            failure,
            retries,
            time_left: None,
            now: Utc::now(),
        }
    }

    /// Sets the time left to the caller's deadline.
    pub fn time_left(mut self, left: Duration) -> Self {
        self.time_left = Some(left);
        self
    }

    /// Sets the caller's now.
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }
}

/// What a retry changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Change {
    /// The same call to the same target.
    Same,
    /// The same call to the next target (shard, key): this one cannot
    /// serve it now.
    Rotate,
    /// The same call to the fallback model: this model is failing.
    Fallback,
}

/// Why a policy gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GiveUp {
    /// Retrying cannot help (the request is wrong, the key unusable, or
    /// this policy does not retry this action).
    NotRetryable,
    /// Stop all work (a halt, a spend limit).
    Stop,
    /// The target's retries are used.
    Attempts {
        /// Retries made.
        used: u32,
        /// The limit.
        limit: u32,
    },
    /// The wait does not fit in the time left.
    WaitTooLong {
        /// The wait.
        wait: Duration,
        /// The time left.
        left: Duration,
    },
    /// The retry budget is empty: too many calls are failing.
    Budget,
}

impl std::fmt::Display for GiveUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GiveUp::NotRetryable => f.write_str("not retryable"),
            GiveUp::Stop => f.write_str("all work stops"),
            GiveUp::Attempts { limit: 0, .. } => f.write_str("retries are off"),
            GiveUp::Attempts { used, .. } => {
                write!(f, "{used} retries of this call used, the limit")
            }
            GiveUp::WaitTooLong { wait, left } => write!(
                f,
                "the wait of {:.3} s does not fit in the {:.3} s left",
                wait.as_secs_f64(),
                left.as_secs_f64()
            ),
            GiveUp::Budget => f.write_str("the retry budget is spent"),
        }
    }
}

/// A policy's answer about one failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Wait this long, then make the call again with `change`.
    Retry {
        /// How long to wait first.
        wait: Duration,
        /// What to change.
        change: Change,
    },
    /// Do not retry: the failure stands.
    GiveUp(GiveUp),
}

/// Decides whether, when and how a failed call is made again. The caller
/// keeps the counters (retries of the current target, its deadline) and
/// does the waiting; a policy only decides, and may keep state (a seeded
/// jitter, a budget).
pub trait RetryPolicy: Send {
    /// The decision about one failed attempt.
    fn decide(&mut self, attempt: &Attempt) -> Decision;

    /// Tells the policy a call succeeded (a budget deposits).
    fn succeeded(&mut self) {}
}

impl<P: RetryPolicy + ?Sized> RetryPolicy for Box<P> {
    fn decide(&mut self, attempt: &Attempt) -> Decision {
        (**self).decide(attempt)
    }

    fn succeeded(&mut self) {
        (**self).succeeded();
    }
}

/// How a wait is spread, drawn from the seed a [`Backoff`] was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Jitter {
    /// The computed wait exactly.
    #[default]
    None,
    /// Uniform in `[1 ms, wait]` ("full jitter").
    Full,
    /// Uniform in `[wait / 2, wait]` ("equal jitter").
    Equal,
}

/// A token bucket of retries, shared by the calls it bounds (put it in an
/// `Arc`): a success deposits `percent` hundredths of a retry, a retry
/// withdraws one, and the bucket holds at most `capacity` retries. It
/// starts full, so a cold start may retry at once.
#[derive(Debug)]
pub struct RetryBudget {
    /// Hundredths of a retry in the bucket.
    tokens: AtomicU64,
    capacity: u64,
    percent: u64,
}

impl RetryBudget {
    /// A budget of at most `capacity` banked retries, refilled by
    /// `percent` % of a retry per success (10: one retry per ten
    /// successes).
    pub fn new(capacity: u32, percent: u32) -> Self {
        let capacity = u64::from(capacity).saturating_mul(100);
        Self {
            tokens: AtomicU64::new(capacity),
            capacity,
            percent: u64::from(percent),
        }
    }

    /// Deposits for one success.
    pub fn deposit(&self) {
        let _ = self
            .tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                Some(t.saturating_add(self.percent).min(self.capacity))
            });
    }

    /// Withdraws one retry; false when the bucket holds less than one.
    pub fn withdraw(&self) -> bool {
        self.tokens
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| t.checked_sub(100))
            .is_ok()
    }

    /// Whole retries in the bucket now.
    pub fn available(&self) -> u64 {
        self.tokens.load(Ordering::Relaxed) / 100
    }
}

/// The one [`RetryPolicy`]: capped exponential backoff, the server's delay
/// as a floor, optional seeded jitter, a cap on retries per target, the
/// caller's deadline, an optional [`RetryBudget`], and rotation or fallback
/// once the target is used up.
///
/// What it retries, by the failure's action:
///
/// - `Retry`, and `RetryAfter` of a transient kind
///   ([`ModelErrorKind::is_transient`]: a server error, overload, timeout
///   or broken connection whose server named a delay): the same target
///   after the backoff, at least the named delay, while retries, time and
///   budget last (unless [`Backoff::retry_transient`] is off); then the
///   fallback (when on and the kind allows one,
///   [`ModelErrorKind::allows_fallback`]), else the next target (when
///   rotating), else give up.
/// - Any other `RetryAfter` (a rate limit): waited the same way when
///   [`Backoff::retry_named_waits`] is on (the default), else as above
///   once the target is used up.
/// - `Rotate`, `WaitUntil` (a quota gone until a moment, often hours away)
///   and `Disable`: the next target at once when rotating, else give up;
///   a caller that would rather wait reads [`crate::Error::retry_at`] and
///   gives the policy [`Failure::of_retry`].
/// - `Fail`: give up. `Stop`: give up and stop.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    max_retries: Option<u32>,
    jitter: Jitter,
    jitter_floor: bool,
    retry_transient: bool,
    retry_named_waits: bool,
    rotate: bool,
    fallback: bool,
    rng: u64,
    budget: Option<Arc<RetryBudget>>,
}

impl Backoff {
    /// Waits of `base × 2^retries`, at most `cap` (the server's delay may
    /// exceed it); no cap on retries, no jitter, no rotation, no fallback.
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self {
            base,
            cap,
            max_retries: None,
            jitter: Jitter::None,
            jitter_floor: false,
            retry_transient: true,
            retry_named_waits: true,
            rotate: false,
            fallback: false,
            rng: 0,
            budget: None,
        }
    }

    /// Waits exactly what the server names and never retries a failure
    /// that names none (a caller above a client that retries those itself).
    pub fn named_waits_only() -> Self {
        Self::new(Duration::ZERO, Duration::ZERO).retry_transient(false)
    }

    /// At most `n` retries of the same target.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = Some(n);
        self
    }

    /// Spreads waits with `jitter`, drawn from `seed` (the same seed gives
    /// the same waits).
    pub fn jitter(mut self, jitter: Jitter, seed: u64) -> Self {
        self.jitter = jitter;
        self.rng = seed;
        self
    }

    /// Whether the server's delay is jittered with the backoff (callers
    /// that got the same delay do not come back together), or a floor the
    /// jittered wait is raised to (the default).
    pub fn jitter_floor(mut self, on: bool) -> Self {
        self.jitter_floor = on;
        self
    }

    /// Whether a transient fault that names no wait (`Retry`) is retried
    /// (default on).
    pub fn retry_transient(mut self, on: bool) -> Self {
        self.retry_transient = on;
        self
    }

    /// Whether a wait the server named for a failure that is not transient
    /// (`RetryAfter` of a rate limit) is waited on the same target (default
    /// on); off, such a failure moves on or gives up.
    pub fn retry_named_waits(mut self, on: bool) -> Self {
        self.retry_named_waits = on;
        self
    }

    /// Whether a target that cannot serve is left for the next one.
    pub fn rotate(mut self, on: bool) -> Self {
        self.rotate = on;
        self
    }

    /// Whether a failing model's used-up retries move to the fallback.
    pub fn fallback(mut self, on: bool) -> Self {
        self.fallback = on;
        self
    }

    /// Draws retries of the same target from `budget`.
    pub fn budget(mut self, budget: Arc<RetryBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The wait before the retry after `retries` retries, for a failure
    /// whose named wait is `floor`.
    pub fn wait(&mut self, retries: u32, floor: Duration) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(retries.min(20)))
            .min(self.cap);
        if self.jitter_floor {
            let d = exp.max(floor);
            self.spread(d)
        } else {
            self.spread(exp).max(floor)
        }
    }

    fn spread(&mut self, d: Duration) -> Duration {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        match self.jitter {
            Jitter::None => d,
            Jitter::Full => Duration::from_micros(self.draw(micros)).max(Duration::from_millis(1)),
            Jitter::Equal => {
                let half = micros / 2;
                Duration::from_micros(half.saturating_add(self.draw(micros - half)))
            }
        }
    }

    /// Uniform in `[0, bound]` from a splitmix64 stream.
    fn draw(&mut self, bound: u64) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        match bound.checked_add(1) {
            Some(n) => z % n,
            None => z,
        }
    }

    fn moved(&self, failure: &Failure) -> Option<Decision> {
        let change = if self.fallback && failure.kind.is_some_and(ModelErrorKind::allows_fallback) {
            Change::Fallback
        } else if self.rotate {
            Change::Rotate
        } else {
            return None;
        };
        Some(Decision::Retry {
            wait: Duration::ZERO,
            change,
        })
    }
}

impl RetryPolicy for Backoff {
    fn decide(&mut self, attempt: &Attempt) -> Decision {
        let failure = &attempt.failure;
        let rotate_now = Decision::Retry {
            wait: Duration::ZERO,
            change: Change::Rotate,
        };
        let transient = match failure.action {
            ModelAction::Retry => true,
            ModelAction::RetryAfter { .. } => {
                failure.kind.is_some_and(ModelErrorKind::is_transient)
            }
            _ => false,
        };
        let floor = match failure.action {
            ModelAction::Stop { .. } => return Decision::GiveUp(GiveUp::Stop),
            ModelAction::Rotate | ModelAction::WaitUntil { .. } | ModelAction::Disable
                if self.rotate =>
            {
                return rotate_now;
            }
            ModelAction::Retry | ModelAction::RetryAfter { .. }
                if transient && self.retry_transient =>
            {
                failure.named_wait(attempt.now).unwrap_or_default()
            }
            ModelAction::RetryAfter { .. } if self.retry_named_waits => {
                failure.named_wait(attempt.now).unwrap_or_default()
            }
            ModelAction::Retry | ModelAction::RetryAfter { .. } => {
                return self
                    .moved(failure)
                    .unwrap_or(Decision::GiveUp(GiveUp::NotRetryable));
            }
            _ => return Decision::GiveUp(GiveUp::NotRetryable),
        };
        if let Some(limit) = self.max_retries
            && attempt.retries >= limit
        {
            return self
                .moved(failure)
                .unwrap_or(Decision::GiveUp(GiveUp::Attempts {
                    used: attempt.retries,
                    limit,
                }));
        }
        let wait = self.wait(attempt.retries, floor);
        if let Some(left) = attempt.time_left
            && wait >= left
        {
            return self
                .moved(failure)
                .unwrap_or(Decision::GiveUp(GiveUp::WaitTooLong { wait, left }));
        }
        if let Some(budget) = &self.budget
            && !budget.withdraw()
        {
            return self
                .moved(failure)
                .unwrap_or(Decision::GiveUp(GiveUp::Budget));
        }
        Decision::Retry {
            wait,
            change: Change::Same,
        }
    }

    fn succeeded(&mut self) {
        if let Some(b) = &self.budget {
            b.deposit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MS: Duration = Duration::from_millis(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn retry() -> Failure {
        Failure::new(ModelAction::Retry)
    }

    fn decide(p: &mut Backoff, f: Failure, retries: u32) -> Decision {
        p.decide(&Attempt::new(f, retries))
    }

    fn same(wait: Duration) -> Decision {
        Decision::Retry {
            wait,
            change: Change::Same,
        }
    }

    #[test]
    fn waits_double_up_to_the_cap() {
        let mut p = Backoff::new(ms(100), ms(350));
        let waits: Vec<_> = (0..4).map(|n| decide(&mut p, retry(), n)).collect();
        assert_eq!(
            waits,
            [same(ms(100)), same(ms(200)), same(ms(350)), same(ms(350))]
        );
    }

    #[test]
    fn the_servers_delay_is_a_floor_above_the_cap() {
        let mut p = Backoff::new(ms(100), ms(350));
        let f = retry().with_retry_after(Some(Duration::from_secs(2)));
        assert_eq!(decide(&mut p, f, 0), same(Duration::from_secs(2)));
        let named = Failure::of_retry(Retry::After(Duration::from_secs(7)));
        assert_eq!(decide(&mut p, named, 0), same(Duration::from_secs(7)));
    }

    #[test]
    fn a_cap_on_retries_gives_up_or_moves_on() {
        let mut p = Backoff::new(MS, MS).max_retries(2);
        assert_eq!(
            decide(&mut p, retry(), 2),
            Decision::GiveUp(GiveUp::Attempts { used: 2, limit: 2 })
        );
        let mut p = p.rotate(true);
        assert_eq!(
            decide(&mut p, retry(), 2),
            Decision::Retry {
                wait: Duration::ZERO,
                change: Change::Rotate
            }
        );
        let mut p = p.fallback(true);
        let overloaded = retry().with_kind(ModelErrorKind::Overloaded);
        assert_eq!(
            decide(&mut p, overloaded, 2),
            Decision::Retry {
                wait: Duration::ZERO,
                change: Change::Fallback
            }
        );
    }

    #[test]
    fn fail_stop_and_unknown_are_never_retried() {
        let mut p = Backoff::new(MS, MS).rotate(true);
        assert_eq!(
            decide(&mut p, Failure::new(ModelAction::Fail), 0),
            Decision::GiveUp(GiveUp::NotRetryable)
        );
        assert_eq!(
            decide(&mut p, Failure::new(ModelAction::Stop { until: None }), 0),
            Decision::GiveUp(GiveUp::Stop)
        );
        assert_eq!(
            decide(&mut p, Failure::of_retry(Retry::Unknown), 0),
            Decision::GiveUp(GiveUp::NotRetryable)
        );
    }

    #[test]
    fn rotate_and_disable_move_to_the_next_target_at_once() {
        let mut p = Backoff::new(MS, MS).rotate(true);
        for a in [ModelAction::Rotate, ModelAction::Disable] {
            assert_eq!(
                decide(&mut p, Failure::new(a), 0),
                Decision::Retry {
                    wait: Duration::ZERO,
                    change: Change::Rotate
                }
            );
        }
        let mut p = Backoff::new(MS, MS);
        assert_eq!(
            decide(&mut p, Failure::new(ModelAction::Rotate), 0),
            Decision::GiveUp(GiveUp::NotRetryable)
        );
    }

    #[test]
    fn named_waits_only_waits_what_the_server_named() {
        let mut p = Backoff::named_waits_only().max_retries(3);
        assert_eq!(
            decide(&mut p, retry(), 0),
            Decision::GiveUp(GiveUp::NotRetryable)
        );
        let f = Failure::of_retry(Retry::After(Duration::from_secs(30)));
        assert_eq!(decide(&mut p, f, 0), same(Duration::from_secs(30)));
        let a = Attempt::new(f, 0).time_left(Duration::from_secs(30));
        assert_eq!(
            p.decide(&a),
            Decision::GiveUp(GiveUp::WaitTooLong {
                wait: Duration::from_secs(30),
                left: Duration::from_secs(30)
            })
        );
    }

    #[test]
    fn a_quota_gone_until_a_moment_rotates_and_is_never_waited_in_the_call() {
        let now: DateTime<Utc> = "2026-01-15T20:00:00Z".parse().unwrap();
        let until = now + chrono::Duration::seconds(90);
        let f = Failure::new(ModelAction::WaitUntil { until });
        assert_eq!(f.named_wait(now), Some(Duration::from_secs(90)));
        let mut p = Backoff::new(MS, MS);
        assert_eq!(
            p.decide(&Attempt::new(f, 0).at(now)),
            Decision::GiveUp(GiveUp::NotRetryable)
        );
        let mut p = p.rotate(true);
        assert_eq!(
            p.decide(&Attempt::new(f, 0).at(now)),
            Decision::Retry {
                wait: Duration::ZERO,
                change: Change::Rotate
            }
        );
    }

    #[test]
    fn a_transient_fault_with_a_named_delay_is_retried_even_when_rate_limits_are_not() {
        let mut p = Backoff::new(MS, MS).retry_named_waits(false).fallback(true);
        let after = ModelAction::RetryAfter {
            after: Duration::from_secs(3),
        };
        let overloaded = Failure::new(after).with_kind(ModelErrorKind::Overloaded);
        assert_eq!(decide(&mut p, overloaded, 0), same(Duration::from_secs(3)));
        let limited = Failure::new(after).with_kind(ModelErrorKind::RateLimited);
        assert_eq!(
            decide(&mut p, limited, 0),
            Decision::GiveUp(GiveUp::NotRetryable)
        );
    }

    #[test]
    fn an_empty_budget_stops_retries_and_successes_refill_it() {
        let budget = Arc::new(RetryBudget::new(1, 50));
        let mut p = Backoff::new(MS, MS).budget(budget.clone());
        assert_eq!(decide(&mut p, retry(), 0), same(MS));
        assert_eq!(decide(&mut p, retry(), 0), Decision::GiveUp(GiveUp::Budget));
        p.succeeded();
        assert_eq!(budget.available(), 0);
        p.succeeded();
        assert_eq!(budget.available(), 1);
        // Never more than the capacity.
        for _ in 0..10 {
            p.succeeded();
        }
        assert_eq!(budget.available(), 1);
        assert_eq!(decide(&mut p, retry(), 0), same(MS));
    }

    #[test]
    fn the_same_seed_gives_the_same_waits() {
        let waits = |seed| {
            let mut p = Backoff::new(ms(100), Duration::from_secs(8)).jitter(Jitter::Full, seed);
            (0..8)
                .map(|n| p.wait(n, Duration::ZERO))
                .collect::<Vec<_>>()
        };
        assert_eq!(waits(7), waits(7));
        assert_ne!(waits(7), waits(8));
    }

    #[test]
    fn give_up_reasons_read_as_sentences() {
        assert_eq!(
            GiveUp::Attempts { used: 2, limit: 2 }.to_string(),
            "2 retries of this call used, the limit"
        );
        assert_eq!(
            GiveUp::Attempts { used: 0, limit: 0 }.to_string(),
            "retries are off"
        );
    }

    proptest! {
        #[test]
        fn jittered_waits_stay_in_their_band(
            seed in any::<u64>(),
            retries in 0u32..40,
            base_ms in 0u64..2_000,
            cap_ms in 0u64..60_000,
            floor_ms in 0u64..120_000,
        ) {
            let (base, cap, floor) = (ms(base_ms), ms(cap_ms), ms(floor_ms));
            let exp = base.saturating_mul(2u32.saturating_pow(retries.min(20))).min(cap);
            let mut full = Backoff::new(base, cap).jitter(Jitter::Full, seed);
            let w = full.wait(retries, floor);
            prop_assert!(w >= floor && w <= exp.max(floor).max(MS));
            let mut equal = Backoff::new(base, cap).jitter(Jitter::Equal, seed).jitter_floor(true);
            let d = exp.max(floor);
            let w = equal.wait(retries, floor);
            prop_assert!(w >= d / 2 && w <= d, "{w:?} outside [{:?}, {d:?}]", d / 2);
        }

        #[test]
        fn a_capped_policy_never_retries_past_its_limit(
            limit in 0u32..10,
            retries in 0u32..20,
            left_ms in 0u64..10_000,
        ) {
            let mut p = Backoff::new(ms(10), Duration::from_secs(1)).max_retries(limit);
            let a = Attempt::new(retry(), retries).time_left(ms(left_ms));
            match p.decide(&a) {
                Decision::Retry { wait, change } => {
                    prop_assert!(retries < limit);
                    prop_assert!(wait < ms(left_ms));
                    prop_assert_eq!(change, Change::Same);
                }
                Decision::GiveUp(_) => {}
            }
        }
    }
}
