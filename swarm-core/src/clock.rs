//! Time, injectable: one [`Clock`] every component that decides from the
//! date or the time reads (spend-limit stops, the Pacific-midnight quota
//! reset, price rows by effective date, model lifecycles, heartbeat ages,
//! retry-after dates, budgets by day and month), so tests set "today" and
//! move time forward (past a cooling delay, across a Pacific midnight)
//! without waiting, and no test depends on the day it runs.
//!
//! The system clock is the default everywhere; a component built without a
//! clock reads [`SystemClock`]. [`ManualClock`] is the one tests set.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use futures::future::BoxFuture;

/// Where the time comes from, and how to wait for it.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now.
    fn now(&self) -> DateTime<Utc>;

    /// Waits for `duration` (on this clock: a manual clock moves at once).
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;

    /// Today's date, UTC.
    fn today(&self) -> NaiveDate {
        self.now().date_naive()
    }
}

/// A clock shared by the components of one process.
pub type SharedClock = Arc<dyn Clock>;

/// The system clock as a [`SharedClock`]: the default of every component.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> DateTime<Utc> {
        (**self).now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        (**self).sleep(duration)
    }
}

/// The real clock: `Utc::now()` and `tokio::time::sleep`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// The system clock's pace from another starting time: `now()` is `start`
/// plus the time elapsed (monotonic) since the clock was made, and `sleep`
/// really waits. For a whole process run at another "today" (a rehearsal, a
/// process-level test: the CLI's `SWARM_NOW`), where a frozen clock would
/// stop heartbeats and turn every wait into none.
#[derive(Debug, Clone, Copy)]
pub struct OffsetClock {
    start: DateTime<Utc>,
    made: std::time::Instant,
}

impl OffsetClock {
    /// A clock showing `start` now, and running on from there.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self {
            start,
            made: std::time::Instant::now(),
        }
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        add(self.start, self.made.elapsed())
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that moves only when told to, or when something sleeps on it
/// (a sleep advances it by the duration at once). For tests.
#[derive(Debug)]
pub struct ManualClock {
    state: Mutex<ManualState>,
}

#[derive(Debug)]
struct ManualState {
    now: DateTime<Utc>,
    slept: Vec<Duration>,
}

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            state: Mutex::new(ManualState {
                now: start,
                slept: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualState> {
        // A panic while holding this lock cannot leave the state half
        // written (each update is one assignment), so a poisoned lock is
        // still good to read.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut s = self.lock();
        s.now = add(s.now, by);
    }

    /// Sets the time.
    pub fn set(&self, now: DateTime<Utc>) {
        self.lock().now = now;
    }

    /// A clock showing `rfc3339` (`"2026-11-29T11:00:00Z"`), for tests.
    ///
    /// # Errors
    /// When the text is not an RFC 3339 date-time.
    pub fn at(rfc3339: &str) -> Result<Self, chrono::ParseError> {
        Ok(Self::new(
            DateTime::parse_from_rfc3339(rfc3339)?.with_timezone(&Utc),
        ))
    }

    /// Every sleep asked of this clock, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.lock().slept.clone()
    }
}

/// `t + d`, saturating at the end of time.
fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.lock().now
    }

    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        {
            let mut s = self.lock();
            s.slept.push(duration);
            s.now = add(s.now, duration);
        }
        Box::pin(YieldOnce(false))
    }
}

/// Ready on its second poll, having woken its task on the first: a manual
/// sleep still lets other tasks run (a heartbeat loop on a `ManualClock`
/// would otherwise never give the executor back). Written here rather than
/// `tokio::task::yield_now` so that core needs no runtime feature.
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_offset_clock_starts_where_it_is_told_and_runs_on() {
        let start = DateTime::parse_from_rfc3339("2031-12-02T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let c = OffsetClock::starting_at(start);
        let a = c.now();
        std::thread::sleep(Duration::from_millis(20));
        let b = c.now();
        assert!(a >= start && (a - start).num_seconds() < 5);
        assert!(b > a);
        assert_eq!(c.today().to_string(), "2031-12-02");
    }

    #[tokio::test]
    async fn a_manual_sleep_moves_time_at_once() {
        let start = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let c = ManualClock::new(start);
        c.sleep(Duration::from_secs(58)).await;
        assert_eq!((c.now() - start).num_seconds(), 58);
        assert_eq!(c.sleeps(), vec![Duration::from_secs(58)]);
    }
}
