//! Findings written around the library join the finding index.
//!
//! The brief's agents write `finding:<name>` with `redis-cli SET` or Python:
//! such a key is in no index, so no count or listing sees it. Adoption puts
//! it there:
//!
//! - [`RedisBus::reindex_findings`]: one step of an incremental `SCAN`
//!   (`MATCH <prefix>finding:*`, never KEYS) whose cursor is kept in
//!   `swarm:findings:reindex`, so a restarted run resumes; each step is one
//!   SCAN and a few short scripts, so Redis is never held for more than a
//!   few milliseconds.
//! - [`RedisBus::spawn_finding_adopter`]: a background task for long-running
//!   processes. It switches on keyspace notifications for what it needs
//!   (`CONFIG SET notify-keyspace-events`, keeping the flags already set) and
//!   adopts each key written as it is announced; where CONFIG is refused (an
//!   ACL user without `+config`, a managed Redis) it runs a full incremental
//!   reindex every interval instead.
//!
//! Adoption is one script per batch: a STRING or HASH key whose id is in
//! neither the active nor the archived index is added to the active index
//! (scored by the server's time: the raw finding's `created_at`), to the
//! feed, and announced on `channel:findings`; adopting again changes
//! nothing. A key of another type is reported, never adopted. A key found
//! missing (deleted or expired: announced by a notification, or met by a
//! listing) leaves both indices, so it leaves the count.

use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use redis::{Script, Value};
use swarmbus_core::error::{Error, Result};
use swarmbus_core::keys::{Channel, FindingId};
use swarmbus_core::{Unreadable, UnreadableReason};

use crate::bus::{RedisBus, int, items, text};
use crate::errors::unexpected_reply;

/// Keys per adoption script call: short enough that one call holds Redis
/// well under a millisecond or two.
const KEYS_PER_SCRIPT: usize = 100;

/// The most keys one reindex step asks SCAN for.
pub const MAX_REINDEX_BATCH: usize = 2000;

/// Adopts or forgets finding keys.
///
/// KEYS: active index, archived index, feed, then the finding keys. ARGV:
/// the `channel:findings` name, then the ids (in the order of the keys).
/// Returns `{adopted, removed, {key, type, …}}`: how many joined the active
/// index, how many left the indices (missing keys), and the keys of another
/// type with their type.
pub(crate) static SYNC_KEYS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local adopted, removed, other = 0, 0, {}
for i = 4, #KEYS do
  local id = ARGV[i - 2]
  local ty = redis.call('TYPE', KEYS[i])['ok']
  if ty == 'none' then
    removed = removed + redis.call('ZREM', KEYS[1], id) + redis.call('ZREM', KEYS[2], id)
  elseif ty == 'string' or ty == 'hash' then
    if not redis.call('ZSCORE', KEYS[1], id) and not redis.call('ZSCORE', KEYS[2], id) then
      redis.call('ZADD', KEYS[1], now, id)
      redis.call('XADD', KEYS[3], '*', 'finding', id)
      redis.call('PUBLISH', ARGV[1], KEYS[i])
      adopted = adopted + 1
    end
  else
    other[#other + 1] = KEYS[i]
    other[#other + 1] = ty
  end
end
return {adopted, removed, other}
"#,
    )
});

/// Where a reindex stands: the position of its `SCAN`. Persisted by each
/// step in `swarm:findings:reindex`, so that a run can be resumed by
/// passing `None` to [`RedisBus::reindex_findings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ReindexCursor {
    /// The SCAN cursor (0: the beginning).
    pub scan: u64,
}

impl ReindexCursor {
    /// The beginning of a full pass.
    pub const fn start() -> Self {
        Self { scan: 0 }
    }
}

/// What one reindex step did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReindexStep {
    /// Keys that joined the index in this step.
    pub adopted: u64,
    /// Finding keys SCAN returned in this step.
    pub scanned: u64,
    /// Finding keys that cannot be adopted (another type, an invalid id).
    pub unreadable: Vec<Unreadable>,
    /// Where the next step starts; `None` when the pass is complete.
    pub next_cursor: Option<ReindexCursor>,
}

/// How a [`FindingAdopter`] learns of new keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdoptionMode {
    /// Still setting up.
    Starting,
    /// Keyspace notifications: each key is adopted as it is written.
    KeyspaceNotifications,
    /// CONFIG was refused: a full incremental reindex every interval.
    PeriodicReindex,
}

impl AdoptionMode {
    fn from_u8(n: u8) -> Self {
        match n {
            1 => AdoptionMode::KeyspaceNotifications,
            2 => AdoptionMode::PeriodicReindex,
            _ => AdoptionMode::Starting,
        }
    }
}

/// The handle of a background adopter
/// ([`RedisBus::spawn_finding_adopter`]). Dropping it or calling
/// [`FindingAdopter::stop`] ends the task.
#[derive(Debug)]
pub struct FindingAdopter {
    task: tokio::task::JoinHandle<()>,
    shared: Arc<AdopterState>,
}

#[derive(Debug, Default)]
struct AdopterState {
    mode: AtomicU8,
    adopted: AtomicU64,
}

impl FindingAdopter {
    /// How it learns of new keys (notifications, or the periodic fallback).
    pub fn mode(&self) -> AdoptionMode {
        AdoptionMode::from_u8(self.shared.mode.load(Ordering::Relaxed))
    }

    /// Keys adopted so far by this adopter.
    pub fn adopted(&self) -> u64 {
        self.shared.adopted.load(Ordering::Relaxed)
    }

    /// Ends the task and waits until it has stopped.
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for FindingAdopter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The keyspace-notification classes adoption needs: `K` (keyspace
/// channel), `$` (SET and other string commands), `h` (HSET), `g` (DEL,
/// RENAME, …), `x` (expired).
const NEEDED_EVENTS: [char; 5] = ['K', '$', 'h', 'g', 'x'];

/// The flags to set so that `current` also announces what adoption needs,
/// or `None` when it already does. Flags already set are kept.
pub(crate) fn events_to_set(current: &str) -> Option<String> {
    let has = |c: char| current.contains(c) || ("$hgx".contains(c) && current.contains('A'));
    let missing: String = NEEDED_EVENTS.iter().filter(|c| !has(**c)).collect();
    if missing.is_empty() {
        None
    } else {
        Some(format!("{current}{missing}"))
    }
}

/// Why [`RedisBus::follow_keyspace`] stopped.
enum FollowEnd {
    /// The server refused the subscription (an ACL without the channels):
    /// asking again would be refused again.
    Refused(Error),
    /// The connection was lost or an adoption failed: worth another try.
    Lost(Error),
}

impl From<Error> for FollowEnd {
    fn from(e: Error) -> Self {
        FollowEnd::Lost(e)
    }
}

/// Whether the server refused a command for good: an ACL permission error
/// (`NOPERM`), or an error reply such as CONFIG renamed or disabled
/// (`ERR unknown command`). Not a connection error, a time-out or a
/// transient server state (`LOADING`, `TRYAGAIN`, …), which the next try may
/// get past.
fn is_refusal(e: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    matches!(
        e.kind(),
        ErrorKind::Server(ServerErrorKind::NoPerm | ServerErrorKind::ResponseError)
            | ErrorKind::Extension
    )
}

impl RedisBus {
    fn reindex_cursor_key(&self) -> String {
        self.internal("findings:reindex")
    }

    /// The `SCAN` pattern of finding keys in this key space.
    fn finding_pattern(&self) -> String {
        format!("{}finding:*", self.key_space().prefix())
    }

    /// The id of a full finding key, or why it has none.
    fn id_of(&self, key: &str) -> std::result::Result<FindingId, Unreadable> {
        let invalid = |reason: String| Unreadable::new(key, UnreadableReason::InvalidId { reason });
        let rest = key
            .strip_prefix(self.key_space().prefix())
            .and_then(|k| k.strip_prefix("finding:"))
            .ok_or_else(|| invalid("not a finding key of this namespace".into()))?;
        FindingId::new(rest).map_err(|e| invalid(e.to_string()))
    }

    /// Adopts the keys of these ids that are in no index, and removes from
    /// the indices those whose key is gone. Returns (adopted, removed, keys
    /// of another type).
    pub(crate) async fn sync_finding_keys(
        &self,
        ids: &[FindingId],
    ) -> Result<(u64, u64, Vec<Unreadable>)> {
        let names = self.names();
        let channel = self.key_space().channel(Channel::Findings);
        let (mut adopted, mut removed, mut other) = (0, 0, Vec::new());
        for chunk in ids.chunks(KEYS_PER_SCRIPT) {
            let finding_keys: Vec<String> = chunk.iter().map(|id| self.finding_key(id)).collect();
            let mut keys: Vec<&str> = vec![
                &names.findings_active,
                &names.findings_archived,
                &names.feed,
            ];
            keys.extend(finding_keys.iter().map(String::as_str));
            let ids: Vec<&str> = chunk.iter().map(FindingId::as_str).collect();
            // Idempotent: a replay adopts nothing twice (its counts may then
            // be lower than what the first, lost, reply said).
            let reply: Value = self
                .eval("adopt_findings", &SYNC_KEYS, &keys, &[&channel, &ids])
                .await?;
            let mut parts = items(reply)
                .ok_or_else(|| unexpected_reply("adopt_findings", "not an array"))?
                .into_iter();
            let mut count = || parts.next().as_ref().and_then(int).unwrap_or(0);
            adopted += u64::try_from(count()).unwrap_or(0);
            removed += u64::try_from(count()).unwrap_or(0);
            let found = parts.next().and_then(items).unwrap_or_default();
            for pair in found.chunks(2) {
                if let [k, t] = pair {
                    other.push(Unreadable::new(
                        text(k).unwrap_or_default(),
                        UnreadableReason::WrongType {
                            found: text(t).unwrap_or_else(|| "unknown".into()),
                        },
                    ));
                }
            }
        }
        // The search index follows: adopted keys are indexed, missing ones
        // retired (each checked again inside the index script).
        self.index_ids(ids).await?;
        Ok((adopted, removed, other))
    }

    /// Adopts these full keys (ignoring those that are not finding keys of
    /// this key space).
    async fn sync_keys(&self, keys: &[String]) -> Result<(u64, Vec<Unreadable>)> {
        let mut ids = Vec::with_capacity(keys.len());
        let mut bad = Vec::new();
        for key in keys {
            match self.id_of(key) {
                Ok(id) => ids.push(id),
                Err(u) => bad.push(u),
            }
        }
        let (adopted, _, other) = self.sync_finding_keys(&ids).await?;
        bad.extend(other);
        Ok((adopted, bad))
    }

    /// One step of an incremental reindex: `SCAN` from `cursor` (`None`:
    /// where the last step of any process left off, kept in
    /// `swarm:findings:reindex`, else the beginning) for up to `batch`
    /// (1 to [`MAX_REINDEX_BATCH`]) keys matching `<prefix>finding:*`, and
    /// adopt those in no index. The next cursor is persisted; at the end of
    /// a pass it is cleared and `next_cursor` is `None`. Call it until then
    /// for a full pass; each step holds Redis for a few milliseconds at
    /// most. On a Cluster it scans the master of the namespace's slot,
    /// where every key of the swarm lives.
    pub async fn reindex_findings(
        &self,
        cursor: Option<ReindexCursor>,
        batch: usize,
    ) -> Result<ReindexStep> {
        let batch = batch.clamp(1, MAX_REINDEX_BATCH);
        let cursor_key = self.reindex_cursor_key();
        let from = match cursor {
            Some(c) => c.scan,
            None => {
                let mut get = redis::cmd("GET");
                get.arg(&cursor_key);
                let stored: Option<String> = self.query("reindex_findings", &get).await?;
                stored.and_then(|s| s.parse().ok()).unwrap_or(0)
            }
        };
        let mut scan = redis::cmd("SCAN");
        scan.arg(from)
            .arg("MATCH")
            .arg(self.finding_pattern())
            .arg("COUNT")
            .arg(batch);
        let (next, keys): (u64, Vec<String>) = self
            .query_on_swarm_node("reindex_findings", &scan)
            .await
            .map_err(|e| self.fail(&e, "reindex_findings"))?;
        let (adopted, unreadable) = self.sync_keys(&keys).await?;
        let mut save = redis::cmd(if next == 0 { "DEL" } else { "SET" });
        save.arg(&cursor_key);
        if next != 0 {
            save.arg(next);
        }
        let _: Value = self.query("reindex_findings", &save).await?;
        Ok(ReindexStep {
            adopted,
            scanned: keys.len() as u64,
            unreadable,
            next_cursor: (next != 0).then_some(ReindexCursor { scan: next }),
        })
    }

    /// A full pass from the beginning, step after step; returns how many
    /// keys were adopted.
    async fn reindex_pass(&self, batch: usize) -> Result<u64> {
        let mut cursor = Some(ReindexCursor::start());
        let mut adopted = 0;
        while let Some(c) = cursor {
            let step = self.reindex_findings(Some(c), batch).await?;
            adopted += step.adopted;
            cursor = step.next_cursor;
            // Leave room for other clients between steps.
            tokio::task::yield_now().await;
        }
        Ok(adopted)
    }

    /// Switches on the keyspace notifications adoption needs, keeping the
    /// flags already set. Fails where the server refuses CONFIG.
    async fn enable_keyspace_events(&self) -> std::result::Result<(), redis::RedisError> {
        let mut get = redis::cmd("CONFIG");
        get.arg("GET").arg("notify-keyspace-events");
        let reply: Value = self.query_on_swarm_node("adopt_findings", &get).await?;
        let current = match reply {
            Value::Map(m) => m.into_iter().nth(0).and_then(|(_, v)| text(&v)),
            other => items(other).and_then(|v| v.get(1).and_then(text)),
        }
        .unwrap_or_default();
        if let Some(flags) = events_to_set(&current) {
            let mut set = redis::cmd("CONFIG");
            set.arg("SET").arg("notify-keyspace-events").arg(&flags);
            let _: Value = self.query_on_swarm_node("adopt_findings", &set).await?;
        }
        Ok(())
    }

    /// Starts a background task that adopts every finding key written
    /// around the library within seconds (see the [module docs](self)):
    /// keyspace notifications where the server allows `CONFIG SET`, else a
    /// full incremental reindex every `interval` (a few seconds is a good
    /// value; clamped to 10 ms .. 1 day). Either way it first runs one full pass, for
    /// the keys written before it started. Errors are logged and retried;
    /// the task runs until the handle is stopped or dropped.
    ///
    /// Must be called within a Tokio runtime.
    pub fn spawn_finding_adopter(&self, interval: Duration) -> FindingAdopter {
        // Bounded both ways: no busy loop, and no deadline arithmetic that
        // could overflow.
        let interval = interval.clamp(Duration::from_millis(10), Duration::from_secs(86_400));
        let shared = Arc::new(AdopterState::default());
        let bus = self.clone();
        let state = shared.clone();
        let task = tokio::spawn(async move { bus.run_adopter(interval, &state).await });
        FindingAdopter { task, shared }
    }

    async fn run_adopter(&self, interval: Duration, state: &AdopterState) {
        const BATCH: usize = 1000;
        // Once the server has refused notifications (CONFIG, or the
        // subscription itself: an ACL user without the `__keyspace@*__`
        // channels), it is the periodic reindex for good: asking again would
        // only log the same refusal every interval.
        let mut periodic = false;
        loop {
            if !periodic {
                match self.enable_keyspace_events().await {
                    Ok(()) => {
                        state.mode.store(1, Ordering::Relaxed);
                        match self.follow_keyspace(interval, BATCH, state).await {
                            Ok(()) => {}
                            Err(FollowEnd::Refused(why)) => {
                                tracing::warn!(
                                    error = %why,
                                    "finding adopter: keyspace notifications refused (the ACL user may not subscribe to __keyspace@*__ channels); adopting raw findings by a periodic reindex from now on"
                                );
                                periodic = true;
                            }
                            Err(FollowEnd::Lost(e)) => {
                                tracing::warn!(error = %e, "finding adopter: notifications lost; reconnecting")
                            }
                        }
                        if !periodic {
                            tokio::time::sleep(interval).await;
                            continue;
                        }
                    }
                    Err(e) if is_refusal(&e) => {
                        tracing::warn!(
                            error = %e.category(),
                            "CONFIG SET notify-keyspace-events refused; adopting raw findings by a periodic reindex from now on"
                        );
                        periodic = true;
                    }
                    Err(e) => {
                        // Redis away or slow: not a refusal; try again.
                        tracing::warn!(error = %e.category(), "finding adopter: cannot read the notification settings; retrying");
                        tokio::time::sleep(interval).await;
                        continue;
                    }
                }
            }
            state.mode.store(2, Ordering::Relaxed);
            match self.reindex_pass(BATCH).await {
                Ok(n) => {
                    state.adopted.fetch_add(n, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!(error = %e, "finding adopter: reindex failed; retrying"),
            }
            tokio::time::sleep(interval).await;
        }
    }

    /// Subscribes to the keyspace events of finding keys, runs a full pass
    /// for what was written before, then syncs each key announced. Returns
    /// when the subscription ends.
    async fn follow_keyspace(
        &self,
        interval: Duration,
        batch: usize,
        state: &AdopterState,
    ) -> std::result::Result<(), FollowEnd> {
        let mut pubsub = self
            .inner
            .connector
            .pubsub(&self.inner.link)
            .await
            .map_err(|e| FollowEnd::Lost(self.fail(&e, "adopt_findings")))?;
        let pattern = format!("__keyspace@*__:{}", self.finding_pattern());
        match tokio::time::timeout(self.response_timeout(), pubsub.psubscribe(&pattern)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if is_refusal(&e) => {
                return Err(FollowEnd::Refused(self.fail(&e, "adopt_findings")));
            }
            Ok(Err(e)) => return Err(FollowEnd::Lost(self.fail(&e, "adopt_findings"))),
            Err(_) => {
                return Err(FollowEnd::Lost(Error::Timeout {
                    operation: "adopt_findings",
                    after: self.response_timeout(),
                }));
            }
        }
        // Subscribed first, so nothing written from now on is missed.
        state
            .adopted
            .fetch_add(self.reindex_pass(batch).await?, Ordering::Relaxed);
        let mut messages = pubsub.into_on_message();
        // A safety pass now and then, for events lost while the connection
        // was slow (pub/sub is at-most-once).
        let safety = interval.saturating_mul(30).max(Duration::from_secs(60));
        let mut next_pass = tokio::time::Instant::now() + safety;
        loop {
            let first = tokio::select! {
                m = messages.next() => m,
                () = tokio::time::sleep_until(next_pass) => {
                    state.adopted.fetch_add(self.reindex_pass(batch).await?, Ordering::Relaxed);
                    next_pass = tokio::time::Instant::now() + safety;
                    continue;
                }
            };
            let Some(first) = first else {
                return Err(FollowEnd::Lost(Error::Closed(
                    "keyspace notification connection lost",
                )));
            };
            // Take what else is already there, up to a batch, in one go.
            let mut keys = vec![first];
            while keys.len() < batch {
                match futures::FutureExt::now_or_never(messages.next()) {
                    Some(Some(m)) => keys.push(m),
                    Some(None) => break,
                    None => break,
                }
            }
            let mut full: Vec<String> = keys
                .iter()
                .filter_map(|m| {
                    let channel = m.get_channel_name();
                    // `__keyspace@<db>__:<key>`: the key follows the first "__:".
                    channel.split_once("__:").map(|(_, key)| key.to_owned())
                })
                .collect();
            full.sort();
            full.dedup();
            let (adopted, _) = self.sync_keys(&full).await?;
            state.adopted.fetch_add(adopted, Ordering::Relaxed);
        }
    }
}

// Test support: a failed write fails the test that asked for it.
#[cfg(feature = "testing")]
#[allow(clippy::panic)]
#[async_trait::async_trait]
impl swarmbus_memory::conformance::RawFindingWriter for RedisBus {
    /// Writes as `redis-cli` would (DEL, then SET, HSET or RPUSH), then
    /// adopts the key as the adopter does.
    async fn write_raw_finding(&self, id: &FindingId, value: swarmbus_core::RawValue) {
        use swarmbus_core::RawValue;
        let key = self.finding_key(id);
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(&key).ignore();
        match &value {
            RawValue::String(bytes) => {
                pipe.cmd("SET").arg(&key).arg(bytes.as_slice()).ignore();
            }
            RawValue::Hash(pairs) => {
                let mut hset = redis::cmd("HSET");
                hset.arg(&key);
                for (k, v) in pairs {
                    hset.arg(k.as_slice()).arg(v.as_slice());
                }
                pipe.add_command(hset).ignore();
            }
            RawValue::Other { .. } => {
                pipe.cmd("RPUSH").arg(&key).arg("a").arg("b").ignore();
            }
            _ => unreachable!("a raw value this test writer does not know"),
        }
        let _: () = self
            .pipeline("write_raw_finding", &pipe)
            .await
            .unwrap_or_else(|e| panic!("writing {key}: {e}"));
        self.sync_finding_keys(std::slice::from_ref(id))
            .await
            .unwrap_or_else(|e| panic!("adopting {key}: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::events_to_set;

    #[test]
    fn only_missing_event_classes_are_added_and_set_ones_kept() {
        assert_eq!(events_to_set("").as_deref(), Some("K$hgx"));
        assert_eq!(events_to_set("Ex").as_deref(), Some("ExK$hg"));
        assert_eq!(events_to_set("KA"), None);
        assert_eq!(events_to_set("AKE"), None);
        assert_eq!(events_to_set("Kg$hxe"), None);
    }
}
