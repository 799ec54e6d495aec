//! Riding out outages: the bus's retry pacing (capped exponential backoff
//! with jitter), the log of one outage (one warning when it starts, one
//! info line when Redis answers again, however many requests failed), and
//! a worker taking back its own in-flight tasks when it starts.
//!
//! How long a transient failure is retried is [`RedisConfig::retry_for`]
//! (`crate::RedisConfig::ride_outages` for "never give up"); the long-running
//! commands of `swarm` (worker, librarian, MCP server, `status --watch`)
//! never give up unless told to.
//!
//! [`RedisConfig::retry_for`]: crate::RedisConfig::retry_for

use std::sync::Mutex;
use std::time::Duration;

use redis::RedisError;
use swarmbus_core::error::Result;
use swarmbus_core::keys::WorkerId;
use tokio::time::Instant;

use crate::bus::RedisBus;

/// The first wait between two attempts.
pub(crate) const FIRST_DELAY: Duration = Duration::from_millis(20);

/// The longest wait between two attempts (the cap of the backoff).
pub(crate) const MAX_DELAY: Duration = Duration::from_millis(500);

/// Failures starting again this soon after a recovery continue the same
/// outage (a flapping connection warns once, not on every flap).
pub(crate) const SETTLE: Duration = Duration::from_secs(2);

/// The bus's retry pacing, as core's one retry policy: waits from
/// [`FIRST_DELAY`] doubling to [`MAX_DELAY`], each between half and all of
/// it (so processes that lost Redis together do not all come back in the
/// same millisecond), no cap on attempts (the caller's deadline bounds
/// them).
pub(crate) fn retry_policy() -> swarmbus_core::Backoff {
    swarmbus_core::Backoff::new(FIRST_DELAY, MAX_DELAY)
        .jitter(swarmbus_core::retry::Jitter::Equal, rand::random())
}

#[derive(Debug, Default)]
struct State {
    /// When the current outage started (`None`: Redis answers).
    since: Option<Instant>,
    /// When the last outage ended.
    recovered: Option<Instant>,
    /// Whether the current outage was announced.
    warned: bool,
}

/// One log line when an outage starts and one when it ends.
#[derive(Debug, Default)]
pub(crate) struct OutageLog {
    state: Mutex<State>,
}

impl OutageLog {
    /// A transient failure of `operation`; `give_up` is the retry budget.
    pub(crate) fn failed(&self, operation: &'static str, e: &RedisError, give_up: Duration) {
        let Ok(mut s) = self.state.lock() else { return };
        if s.since.is_some() {
            return;
        }
        let now = Instant::now();
        let flap = s
            .recovered
            .is_some_and(|r| now.saturating_duration_since(r) < SETTLE);
        s.since = Some(now);
        if flap && s.warned {
            return;
        }
        s.warned = true;
        let give_up = if give_up >= crate::config::RIDE_OUTAGES {
            "never gives up".to_owned()
        } else {
            format!("gives up after {give_up:?}")
        };
        tracing::warn!(
            operation,
            error = %e.category(),
            "redis unreachable; retrying with backoff ({give_up})"
        );
    }

    /// A request succeeded.
    pub(crate) fn answered(&self) {
        let Ok(mut s) = self.state.lock() else { return };
        let Some(since) = s.since.take() else { return };
        let now = Instant::now();
        s.recovered = Some(now);
        if s.warned {
            tracing::info!(
                down_ms = u64::try_from(now.saturating_duration_since(since).as_millis())
                    .unwrap_or(u64::MAX),
                "redis answers again"
            );
        }
    }

    /// Whether an outage is under way (for tests and status).
    pub(crate) fn in_outage(&self) -> bool {
        self.state
            .lock()
            .map(|s| s.since.is_some())
            .unwrap_or(false)
    }
}

/// Moves every task of `inflight` back to the head of `queue`, oldest
/// first. Running it twice moves nothing the second time, so it is safe to
/// retry. KEYS: in-flight list, queue. Reply: how many were moved.
const TAKE_BACK: &str = r#"
local n = 0
while true do
  local raw = redis.call('RPOPLPUSH', KEYS[1], KEYS[2])
  if not raw then break end
  n = n + 1
end
return n
"#;

impl RedisBus {
    /// A worker starting under `worker` takes back its own in-flight tasks
    /// (`swarm:tasks:inflight:<id>`, left by an earlier run of the same id
    /// that died or lost Redis): they go back to the head of its queue, in
    /// order, to be claimed first. Returns how many.
    pub async fn take_back_inflight(&self, worker: &WorkerId) -> Result<u64> {
        let inflight = self.inflight_key(worker);
        let queue = self.key(&swarmbus_core::keys::Key::WorkerTasks(worker.clone()));
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(TAKE_BACK).arg(2).arg(&inflight).arg(&queue);
        let n: i64 = self.query("take_back_inflight", &cmd).await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Whether the bus is between a failure and the next answer.
    pub fn in_outage(&self) -> bool {
        self.inner.outage.in_outage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_to_its_cap_and_jitter_stays_within_half() {
        let mut p = retry_policy();
        let first = p.wait(0, Duration::ZERO);
        assert!(
            first >= FIRST_DELAY / 2 && first <= FIRST_DELAY,
            "{first:?}"
        );
        for n in 20..120 {
            let j = p.wait(n, Duration::ZERO);
            assert!(j >= MAX_DELAY / 2 && j <= MAX_DELAY, "{j:?}");
        }
    }
}
