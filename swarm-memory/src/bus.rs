//! [`MemoryBus`]: the in-memory bus, every trait in-process.
//!
//! It has the semantics the Redis bus has (TTL expiry, pub/sub fan-out,
//! at-least-once task claims with reclaim, atomic quotas), so code written
//! against it moves to Redis unchanged. It is cheap to clone (an `Arc`) and
//! `Send + Sync`.
//!
//! All state sits behind one `std::sync::Mutex`, not tokio's: no critical
//! section awaits, and one lock makes every compound operation (check and
//! decrement a quota, move a task to in-flight) atomic for free. Waiting
//! (claims, feed reads, queries) happens outside the lock on a `Notify`.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use tokio::sync::{Notify, broadcast};
use tokio_stream::wrappers::BroadcastStream;

use swarmbus_core::bus::{
    ArchiveDesk, Channels, Counters, FeedEntry, FeedEntryId, FindingFeed, FindingStore, HaltSwitch,
    Journal, QuotaLedger, Stored, Subscription, TaskQueue, WorkerRegistry,
};
use swarmbus_core::error::{Error, Result};
use swarmbus_core::keys::{
    Channel, CounterName, FindingId, GroupName, JournalName, Key, KeySpace, QueryId, ShardId,
    TaskId, TierName, WorkerId,
};
use swarmbus_core::quota::{
    Acquire, Denial, QuotaLimits, minute_window, next_pacific_midnight, pacific_day,
};
use swarmbus_core::{
    ArchiveQuery, ArchiveResponse, BusLimits, ClaimedTask, Finding, FindingFilter, HaltReport,
    Heartbeat, Listing, Progress, RawValue, ReclaimReport, ShardState, ShardStatus, Task,
    TaskFailure,
};

/// Messages a slow subscriber may fall behind by before it loses some
/// (pub/sub is at-most-once, as on Redis).
const CHANNEL_CAPACITY: usize = 4096;

/// The in-memory bus. See the [module docs](self).
#[derive(Clone)]
pub struct MemoryBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemoryBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBus")
            .field("keys", &self.inner.keys)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

struct Inner {
    keys: KeySpace,
    limits: BusLimits,
    state: Mutex<State>,
    channels: HashMap<Channel, broadcast::Sender<String>>,
    tasks_changed: Notify,
    feed_changed: Notify,
    queries_changed: Notify,
}

#[derive(Default)]
struct State {
    /// Boxed: growing the map then moves pointers, not whole findings.
    findings: HashMap<FindingId, Box<StoredFinding>>,
    /// Every finding by (created_at, id): the listing order.
    order: BTreeSet<(DateTime<Utc>, FindingId)>,
    active: u64,
    /// Values written around the library ([`MemoryBus::put_raw_finding`]).
    raw: HashMap<FindingId, RawEntry>,
    /// Raw values in the index and not archived.
    raw_active: u64,
    /// The search index, kept in the same step as every finding change.
    index: crate::index::MemoryIndex,
    /// Versions and tombstones ([`swarmbus_core::lifecycle`]), by id.
    history: HashMap<FindingId, History>,
    /// Expiry times ([`swarmbus_core::lifecycle::FindingLifecycle::expire_findings`]).
    expiry: HashMap<FindingId, DateTime<Utc>>,
    feed: Vec<FindingId>,
    groups: HashMap<GroupName, Group>,
    workers: HashMap<WorkerId, Liveness>,
    /// What is known of each worker that was sent tasks or beat: the
    /// worker-grace rule.
    seen: HashMap<WorkerId, Seen>,
    queues: HashMap<WorkerId, VecDeque<Queued>>,
    in_flight: HashMap<TaskId, InFlight>,
    failed: Vec<TaskFailure>,
    shards: HashMap<ShardId, ShardBook>,
    halt: Option<HaltReport>,
    drafts: HashMap<String, String>,
    costs: HashMap<TierName, f64>,
    context: Option<u64>,
    counters: HashMap<CounterName, i64>,
    journals: HashMap<JournalName, Vec<String>>,
    queries: HashMap<QueryId, ArchiveQuery>,
    pending_queries: VecDeque<QueryId>,
    responses: HashMap<QueryId, ArchiveResponse>,
}

struct StoredFinding {
    finding: Finding,
    archived: bool,
}

/// What is kept of a finding that changed.
struct History {
    /// The version `finding:<id>` holds (the last one once deleted).
    head: u32,
    /// The versions no longer stored, by number.
    versions: std::collections::BTreeMap<u32, Finding>,
    tombstone: Option<swarmbus_core::lifecycle::Tombstone>,
}

impl Default for History {
    fn default() -> Self {
        Self {
            head: 1,
            versions: std::collections::BTreeMap::new(),
            tombstone: None,
        }
    }
}

/// A value under `finding:<id>` that the library did not write.
struct RawEntry {
    value: RawValue,
    /// When the index took it in (`None`: not in the index, like a key of
    /// another type that Redis adoption leaves out).
    indexed_at: Option<DateTime<Utc>>,
    archived: bool,
}

#[derive(Default)]
struct Group {
    next: usize,
    /// Feed position → consumer holding it.
    pending: std::collections::BTreeMap<usize, WorkerId>,
}

struct Liveness {
    expires: Instant,
    beat_at: DateTime<Utc>,
    progress: Option<Progress>,
}

/// Whether a worker has ever beaten, and if not, since when it has tasks.
#[derive(Clone, Copy)]
enum Seen {
    Beaten,
    FirstTask(Instant),
}

struct Queued {
    task: Task,
    deliveries: u32,
}

struct InFlight {
    worker: WorkerId,
    task: Task,
    deliveries: u32,
}

/// One shard's quota book.
#[derive(Clone)]
struct ShardBook {
    day: NaiveDate,
    used: u32,
    minute: i64,
    minute_used: u32,
    cooling_until: Option<DateTime<Utc>>,
    exhausted_until: Option<DateTime<Utc>>,
    disabled: Option<String>,
    /// The exhaustion came from our own count reaching the daily limit (so a
    /// release may lift it), not from the API.
    exhausted_by_count: bool,
    tested: bool,
    /// The raw `librarian:shard<N>:quota` value.
    quota_value: Option<i64>,
    /// The raw `librarian:shard<N>:status` value.
    status_value: ShardStatus,
}

impl ShardBook {
    fn new(now: DateTime<Utc>) -> Self {
        Self {
            day: pacific_day(now),
            used: 0,
            minute: minute_window(now).0,
            minute_used: 0,
            cooling_until: None,
            exhausted_until: None,
            disabled: None,
            exhausted_by_count: false,
            tested: false,
            quota_value: None,
            status_value: ShardStatus::Untested,
        }
    }

    /// Starts a new day or minute when `now` has moved on.
    fn roll(&mut self, now: DateTime<Utc>) {
        let today = pacific_day(now);
        if today != self.day {
            self.day = today;
            self.used = 0;
        }
        let (minute, _) = minute_window(now);
        if minute != self.minute {
            self.minute = minute;
            self.minute_used = 0;
        }
        if self.exhausted_until.is_some_and(|u| u <= now) {
            self.exhausted_until = None;
            self.exhausted_by_count = false;
        }
        if self.cooling_until.is_some_and(|u| u <= now) {
            self.cooling_until = None;
        }
    }

    /// The status the brief's key shows: the marks in force, by the one
    /// priority rule.
    fn status(&self, now: DateTime<Utc>) -> ShardStatus {
        swarmbus_core::quota::shard_status(
            self.disabled.is_some(),
            self.exhausted_until.is_some_and(|u| u > now),
            self.cooling_until.is_some_and(|u| u > now),
            self.tested,
        )
    }

    /// Rewrites the brief's status and quota values.
    fn publish(&mut self, limits: QuotaLimits, now: DateTime<Utc>) {
        self.status_value = self.status(now);
        if self.exhausted_until.is_some_and(|u| u > now) {
            self.quota_value = Some(0);
        } else if let Some(per_day) = limits.per_day {
            self.quota_value = Some(i64::from(per_day.saturating_sub(self.used)));
        }
    }

    fn state(&self, shard: ShardId, limits: QuotaLimits, now: DateTime<Utc>) -> ShardState {
        // `ShardBook` is non-exhaustive: built from `new`, field by field.
        let mut book = swarmbus_core::quota::ShardBook::new();
        book.used_today = self.used;
        book.minute_used = self.minute_used;
        book.cooling_until = self.cooling_until;
        book.exhausted_until = self.exhausted_until;
        book.disabled = self.disabled.clone();
        book.tested = self.tested;
        swarmbus_core::quota::shard_state(shard, &book, limits, now)
    }
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBus {
    /// An empty bus with the brief's plain keys and default limits.
    pub fn new() -> Self {
        Self::with_config(KeySpace::plain(), BusLimits::default())
    }

    /// An empty bus with a key space (used in error messages and channel
    /// payloads) and limits.
    pub fn with_config(keys: KeySpace, limits: BusLimits) -> Self {
        let channels = Channel::ALL
            .into_iter()
            .map(|c| (c, broadcast::channel(CHANNEL_CAPACITY).0))
            .collect();
        Self {
            inner: Arc::new(Inner {
                keys,
                limits,
                state: Mutex::new(State::default()),
                channels,
                tasks_changed: Notify::new(),
                feed_changed: Notify::new(),
                queries_changed: Notify::new(),
            }),
        }
    }

    /// The key space.
    pub fn keys(&self) -> &KeySpace {
        &self.inner.keys
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-written
        // in a way later calls rely on, so a poisoned lock is used as is.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn key(&self, key: Key) -> String {
        self.inner.keys.format(&key)
    }

    /// Publishes `message()` on `channel`; the message is only built when
    /// someone listens.
    fn notify(&self, channel: Channel, message: impl FnOnce() -> String) -> usize {
        match self.inner.channels.get(&channel) {
            Some(tx) if tx.receiver_count() > 0 => tx.send(message()).unwrap_or(0),
            _ => 0,
        }
    }

    fn insert_finding(&self, state: &mut State, finding: &Finding) -> Result<Stored> {
        if state
            .history
            .get(&finding.id)
            .is_some_and(|h| h.tombstone.is_some())
        {
            // Deleted: final for that id (see `swarmbus_core::lifecycle`).
            return Err(Error::Conflict {
                key: self.key(Key::Finding(finding.id.clone())),
            });
        }
        if let Some(raw) = state.raw.get(&finding.id) {
            // A value written around the library holds the key: never
            // overwritten, as on Redis.
            let key = self.key(Key::Finding(finding.id.clone()));
            return Err(match &raw.value {
                RawValue::Other { found } => Error::WrongType {
                    key,
                    expected: "string",
                    found: found.clone(),
                },
                _ => Error::Conflict { key },
            });
        }
        if let Some(existing) = state.findings.get(&finding.id) {
            return if existing.finding == *finding {
                Ok(Stored::AlreadyPresent)
            } else {
                Err(Error::Conflict {
                    key: self.key(Key::Finding(finding.id.clone())),
                })
            };
        }
        state.order.insert((finding.created_at, finding.id.clone()));
        state.feed.push(finding.id.clone());
        state.active += 1;
        state.index.add(finding, false);
        state.findings.insert(
            finding.id.clone(),
            Box::new(StoredFinding {
                finding: finding.clone(),
                archived: false,
            }),
        );
        Ok(Stored::New)
    }

    /// Removes findings this call just inserted (they are the newest entries
    /// of the feed, in order).
    fn undo_inserts(state: &mut State, ids: &[FindingId]) {
        for id in ids.iter().rev() {
            if let Some(s) = state.findings.remove(id) {
                state.order.remove(&(s.finding.created_at, id.clone()));
                state.active -= 1;
                state.index.remove(id);
            }
            if state.feed.last() == Some(id) {
                state.feed.pop();
            }
        }
    }

    fn check_finding(&self, finding: &Finding) -> Result<()> {
        finding.validate()?;
        self.inner
            .limits
            .check_value(|| self.key(Key::Finding(finding.id.clone())), finding)
    }

    /// Stores `value` under `finding:<id>` as an agent outside the library
    /// would (`redis-cli SET`/`HSET`), replacing what was there, and adopts
    /// it into the index at once (what a Redis adopter does within seconds):
    /// a STRING or HASH new to the index is counted, listed and announced on
    /// the feed and `channel:findings`; a value of another type is stored
    /// but not adopted. A key already in the index keeps its place (time,
    /// archived or not), as an overwritten Redis key does.
    pub fn put_raw_finding(&self, id: FindingId, value: RawValue) -> Result<()> {
        let adoptable = !matches!(value, RawValue::Other { .. });
        let adopted = {
            let mut state = self.state();
            let state = &mut *state;
            let mut place = None;
            if let Some(old) = state.raw.remove(&id) {
                if old.indexed_at.is_some() && !old.archived {
                    state.raw_active -= 1;
                }
                place = Some((old.indexed_at, old.archived));
            }
            if let Some(old) = state.findings.remove(&id) {
                state.order.remove(&(old.finding.created_at, id.clone()));
                if !old.archived {
                    state.active -= 1;
                }
                place = Some((Some(old.finding.created_at), old.archived));
            }
            let (indexed_at, archived, adopted) = match place {
                Some((Some(at), archived)) => (Some(at), archived, false),
                _ if adoptable => (Some(Utc::now()), false, true),
                _ => (None, false, false),
            };
            if indexed_at.is_some() && !archived {
                state.raw_active += 1;
            }
            if adopted {
                state.feed.push(id.clone());
            }
            state.index.remove(&id);
            if indexed_at.is_some() {
                let key = self.key(Key::Finding(id.clone()));
                if let Ok(f) =
                    Finding::from_stored(&key, &id, value.clone(), indexed_at, &self.inner.limits)
                {
                    state.index.add(&f, archived);
                }
            }
            state.raw.insert(
                id.clone(),
                RawEntry {
                    value,
                    indexed_at,
                    archived,
                },
            );
            adopted
        };
        if adopted {
            self.inner.feed_changed.notify_waiters();
            self.notify(Channel::Findings, || self.key(Key::Finding(id)));
        }
        Ok(())
    }

    /// Deletes `finding:<id>` whatever holds it (`redis-cli DEL`): it leaves
    /// the index and the counts at once (on Redis, when the adopter or a
    /// listing finds it missing). Returns whether something was there.
    pub fn delete_raw_finding(&self, id: &FindingId) -> bool {
        let mut state = self.state();
        let state = &mut *state;
        state.index.remove(id);
        if let Some(e) = state.raw.remove(id) {
            if e.indexed_at.is_some() && !e.archived {
                state.raw_active -= 1;
            }
            return true;
        }
        if let Some(old) = state.findings.remove(id) {
            state.order.remove(&(old.finding.created_at, id.clone()));
            if !old.archived {
                state.active -= 1;
            }
            return true;
        }
        false
    }

    /// Reads the finding under `id`, library-written or raw.
    fn read_finding(&self, state: &State, id: &FindingId) -> Result<Option<Finding>> {
        if let Some(s) = state.findings.get(id) {
            return Ok(Some(s.finding.clone()));
        }
        let Some(raw) = state.raw.get(id) else {
            return Ok(None);
        };
        let key = self.key(Key::Finding(id.clone()));
        Finding::from_stored(
            &key,
            id,
            raw.value.clone(),
            raw.indexed_at,
            &self.inner.limits,
        )
        .map(Some)
        .map_err(Error::from)
    }

    fn is_alive_locked(state: &State, worker: &WorkerId, now: Instant) -> bool {
        state.workers.get(worker).is_some_and(|l| l.expires > now)
    }

    /// Dead: no live heartbeat, and either it has beaten before or its
    /// grace period (from its first task) has passed.
    fn is_dead_locked(&self, state: &State, worker: &WorkerId, now: Instant) -> bool {
        if Self::is_alive_locked(state, worker, now) {
            return false;
        }
        match state.seen.get(worker) {
            Some(Seen::FirstTask(since)) => {
                now.saturating_duration_since(*since) >= self.inner.limits.worker_grace
            }
            Some(Seen::Beaten) | None => true,
        }
    }
}

#[async_trait]
impl FindingStore for MemoryBus {
    async fn put_finding(&self, finding: &Finding) -> Result<Stored> {
        self.check_finding(finding)?;
        let stored = {
            let mut state = self.state();
            self.insert_finding(&mut state, finding)?
        };
        if stored == Stored::New {
            self.inner.feed_changed.notify_waiters();
            self.notify(Channel::Findings, || {
                self.key(Key::Finding(finding.id.clone()))
            });
        }
        Ok(stored)
    }

    async fn put_findings(&self, findings: &[Finding]) -> Result<usize> {
        let mut new_ids = Vec::with_capacity(findings.len());
        {
            let mut state = self.state();
            for f in findings {
                // Checked inside the loop while each finding is hot in cache; a
                // batch is applied as one step, as Redis applies a script.
                let stored = self
                    .check_finding(f)
                    .and_then(|()| self.insert_finding(&mut state, f));
                match stored {
                    Ok(Stored::New) => new_ids.push(f.id.clone()),
                    Ok(Stored::AlreadyPresent) => {}
                    Err(e) => {
                        // A failed batch writes nothing: undo this batch's
                        // inserts (failures are rare, so checking the whole
                        // batch first would cost every batch a second pass).
                        Self::undo_inserts(&mut state, &new_ids);
                        return Err(e);
                    }
                }
            }
        }
        if !new_ids.is_empty() {
            self.inner.feed_changed.notify_waiters();
        }
        for id in &new_ids {
            self.notify(Channel::Findings, || self.key(Key::Finding(id.clone())));
        }
        Ok(new_ids.len())
    }

    async fn get_finding(&self, id: &FindingId) -> Result<Option<Finding>> {
        self.read_finding(&self.state(), id)
    }

    async fn get_findings(&self, ids: &[FindingId]) -> Result<Vec<Option<Finding>>> {
        let state = self.state();
        ids.iter().map(|id| self.read_finding(&state, id)).collect()
    }

    async fn list_findings(&self, filter: &FindingFilter) -> Result<Listing> {
        let mut state = self.state();
        self.sweep_locked(&mut state, Utc::now());
        let mut out: Vec<Finding> = state
            .order
            .iter()
            .filter_map(|(_, id)| state.findings.get(id))
            .filter(|s| filter.include_archived || !s.archived)
            .filter(|s| filter.matches(&s.finding))
            .map(|s| s.finding.clone())
            .collect();
        let mut unreadable = Vec::new();
        if !state.raw.is_empty() {
            for (id, raw) in &state.raw {
                let Some(at) = raw.indexed_at else { continue };
                if raw.archived && !filter.include_archived {
                    continue;
                }
                let key = self.key(Key::Finding(id.clone()));
                match Finding::from_stored(
                    &key,
                    id,
                    raw.value.clone(),
                    Some(at),
                    &self.inner.limits,
                ) {
                    Ok(f) if filter.matches(&f) => out.push(f),
                    Ok(_) => {}
                    Err(u) => unreadable.push(u),
                }
            }
            out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
            unreadable.sort_by(|a, b| a.key.cmp(&b.key));
        }
        if let Some(limit) = filter.limit {
            let cut = out.len().saturating_sub(limit);
            out.drain(..cut);
        }
        Ok(Listing::new(out, unreadable))
    }

    async fn count_findings(&self) -> Result<u64> {
        let mut state = self.state();
        self.sweep_locked(&mut state, Utc::now());
        Ok(state.active + state.raw_active)
    }

    async fn archive_findings(&self, ids: &[FindingId]) -> Result<u64> {
        let mut state = self.state();
        let state = &mut *state;
        let mut changed = 0;
        for id in ids {
            if let Some(s) = state.findings.get_mut(id)
                && !s.archived
            {
                s.archived = true;
                changed += 1;
                state.index.set_archived(id, true);
            }
        }
        state.active -= changed;
        let mut raw_changed = 0;
        for id in ids {
            if let Some(e) = state.raw.get_mut(id)
                && e.indexed_at.is_some()
                && !e.archived
            {
                e.archived = true;
                raw_changed += 1;
                state.index.set_archived(id, true);
            }
        }
        state.raw_active -= raw_changed;
        Ok(changed + raw_changed)
    }
}

#[async_trait]
impl swarmbus_core::search::FindingIndex for MemoryBus {
    async fn search_findings(
        &self,
        query: &swarmbus_core::search::SearchQuery,
    ) -> Result<swarmbus_core::search::SearchPage> {
        let mut state = self.state();
        self.sweep_locked(&mut state, Utc::now());
        state.index.search(query)
    }

    async fn check_index(&self, repair: bool) -> Result<swarmbus_core::search::IndexReport> {
        let mut state = self.state();
        let state = &mut *state;
        let mut report = swarmbus_core::search::IndexReport::default();
        let mut store: HashMap<FindingId, (Option<Finding>, bool)> = HashMap::new();
        for (id, s) in &state.findings {
            store.insert(id.clone(), (Some(s.finding.clone()), s.archived));
        }
        for (id, raw) in &state.raw {
            if raw.indexed_at.is_none() {
                continue;
            }
            let key = self.key(Key::Finding(id.clone()));
            let f = Finding::from_stored(
                &key,
                id,
                raw.value.clone(),
                raw.indexed_at,
                &self.inner.limits,
            )
            .ok();
            store.insert(id.clone(), (f, raw.archived));
        }
        report.findings = store.len() as u64;
        for (id, (f, archived)) in &store {
            if f.is_none() {
                continue;
            }
            match state.index.state_of(id) {
                None => report.missing.push(id.clone()),
                Some(a) if a != *archived => report.stale.push(id.clone()),
                Some(_) => {}
            }
        }
        report.orphaned = state
            .index
            .live_ids()
            .filter(|id| !matches!(store.get(*id), Some((Some(_), _))))
            .cloned()
            .collect();
        report.indexed = state.index.live_ids().count() as u64;
        report.dead_postings = state.index.dead_postings();
        report.missing.sort();
        report.stale.sort();
        report.orphaned.sort();
        if repair {
            for id in report.missing.iter().chain(&report.stale) {
                if let Some((Some(f), archived)) = store.get(id) {
                    state.index.add(f, *archived);
                }
            }
            for id in &report.orphaned {
                state.index.remove(id);
            }
            state.index.compact();
            report.repaired = true;
        }
        Ok(report)
    }
}

#[async_trait]
impl FindingFeed for MemoryBus {
    async fn read_feed(
        &self,
        group: &GroupName,
        consumer: &WorkerId,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<FeedEntry>> {
        let deadline = deadline_after(wait);
        loop {
            let notified = self.inner.feed_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state();
                let State { groups, feed, .. } = &mut *state;
                let g = groups.entry(group.clone()).or_default();
                let own: Vec<FeedEntry> = g
                    .pending
                    .iter()
                    .filter(|(_, c)| *c == consumer)
                    .take(max)
                    .filter_map(|(pos, _)| {
                        feed.get(*pos)
                            .map(|id| FeedEntry::new(pos.to_string(), id.clone()))
                    })
                    .collect();
                if !own.is_empty() {
                    return Ok(own);
                }
                let mut out = Vec::new();
                while out.len() < max && g.next < feed.len() {
                    let pos = g.next;
                    g.next += 1;
                    g.pending.insert(pos, consumer.clone());
                    if let Some(id) = feed.get(pos) {
                        out.push(FeedEntry::new(pos.to_string(), id.clone()));
                    }
                }
                if !out.is_empty() || max == 0 {
                    return Ok(out);
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(Vec::new());
            }
        }
    }

    async fn ack_feed(&self, group: &GroupName, entries: &[FeedEntryId]) -> Result<()> {
        let mut state = self.state();
        if let Some(g) = state.groups.get_mut(group) {
            for e in entries {
                if let Ok(pos) = e.as_str().parse::<usize>() {
                    g.pending.remove(&pos);
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Channels for MemoryBus {
    async fn publish(&self, channel: Channel, message: &str) -> Result<usize> {
        Ok(self.notify(channel, || message.to_owned()))
    }

    async fn subscribe(&self, channel: Channel) -> Result<Subscription> {
        let tx = self
            .inner
            .channels
            .get(&channel)
            .ok_or(Error::Closed("unknown channel"))?;
        // A lagging subscriber loses the messages it missed, like a Redis
        // subscriber whose output buffer overflowed.
        let stream = BroadcastStream::new(tx.subscribe())
            .filter_map(|m| futures::future::ready(m.ok().map(Ok)));
        Ok(Box::pin(stream))
    }
}

#[async_trait]
impl WorkerRegistry for MemoryBus {
    async fn heartbeat(&self, worker: &WorkerId, ttl: Duration) -> Result<()> {
        let ttl = BusLimits::heartbeat_ttl_checked(ttl)?;
        let mut state = self.state();
        let now = Instant::now();
        let expires = now.checked_add(ttl).unwrap_or_else(|| far_future(now));
        state.seen.insert(worker.clone(), Seen::Beaten);
        let beat_at = Utc::now();
        state
            .workers
            .entry(worker.clone())
            .and_modify(|l| {
                l.expires = expires;
                l.beat_at = beat_at;
            })
            .or_insert(Liveness {
                expires,
                beat_at,
                progress: None,
            });
        Ok(())
    }

    async fn progress(&self, worker: &WorkerId, progress: &Progress) -> Result<()> {
        let key = || format!("{}:progress", self.key(Key::WorkerStatus(worker.clone())));
        self.inner.limits.check_value(key, progress)?;
        {
            // A live worker keeps the expiry of its own last heartbeat (the
            // TTL it beat with, not the bus default): a worker killed after
            // reporting progress dies on its own schedule.
            let mut state = self.state();
            let now = Instant::now();
            if let Some(l) = state.workers.get_mut(worker)
                && l.expires > now
            {
                l.beat_at = Utc::now();
                l.progress = Some(progress.clone());
                return Ok(());
            }
        }
        let ttl = self.inner.limits.heartbeat_ttl;
        self.heartbeat(worker, ttl).await?;
        if let Some(l) = self.state().workers.get_mut(worker) {
            l.progress = Some(progress.clone());
        }
        Ok(())
    }

    async fn is_alive(&self, worker: &WorkerId) -> Result<bool> {
        Ok(Self::is_alive_locked(&self.state(), worker, Instant::now()))
    }

    async fn alive_workers(&self) -> Result<Vec<Heartbeat>> {
        let now = Instant::now();
        let state = self.state();
        let mut out: Vec<Heartbeat> = state
            .workers
            .iter()
            .filter(|(_, l)| l.expires > now)
            .map(|(w, l)| Heartbeat::new(w.clone(), l.beat_at, l.progress.clone()))
            .collect();
        out.sort_by(|a, b| a.worker.cmp(&b.worker));
        Ok(out)
    }

    async fn count_alive_workers(&self) -> Result<u64> {
        let now = Instant::now();
        Ok(self
            .state()
            .workers
            .values()
            .filter(|l| l.expires > now)
            .count() as u64)
    }

    async fn deregister(&self, worker: &WorkerId) -> Result<()> {
        self.state().workers.remove(worker);
        Ok(())
    }
}

#[async_trait]
impl TaskQueue for MemoryBus {
    async fn push_task(&self, worker: &WorkerId, task: &Task) -> Result<()> {
        let key = || self.key(Key::WorkerTasks(worker.clone()));
        self.inner.limits.check_value(key, task)?;
        let mut state = self.state();
        // A task queued or in flight already is stored once (a repeated
        // push is a no-op), as on Redis.
        let known = state.in_flight.contains_key(&task.id)
            || state
                .queues
                .values()
                .any(|q| q.iter().any(|queued| queued.task.id == task.id));
        if known {
            return Ok(());
        }
        state
            .seen
            .entry(worker.clone())
            .or_insert_with(|| Seen::FirstTask(Instant::now()));
        state
            .queues
            .entry(worker.clone())
            .or_default()
            .push_back(Queued {
                task: task.clone(),
                deliveries: 0,
            });
        drop(state);
        self.inner.tasks_changed.notify_waiters();
        Ok(())
    }

    async fn claim_task(&self, worker: &WorkerId, wait: Duration) -> Result<Option<ClaimedTask>> {
        let deadline = deadline_after(wait);
        loop {
            let notified = self.inner.tasks_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state();
                if let Some(q) = state.queues.get_mut(worker).and_then(VecDeque::pop_front) {
                    let deliveries = q.deliveries + 1;
                    state.in_flight.insert(
                        q.task.id,
                        InFlight {
                            worker: worker.clone(),
                            task: q.task.clone(),
                            deliveries,
                        },
                    );
                    let receipt = q.task.id.to_string();
                    return Ok(Some(ClaimedTask::new(
                        q.task,
                        worker.clone(),
                        deliveries,
                        receipt,
                    )));
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(None);
            }
        }
    }

    async fn ack_task(&self, claim: &ClaimedTask) -> Result<()> {
        let mut state = self.state();
        if state
            .in_flight
            .get(&claim.task.id)
            .is_some_and(|f| f.worker == claim.worker)
        {
            state.in_flight.remove(&claim.task.id);
        }
        Ok(())
    }

    async fn fail_task(&self, claim: &ClaimedTask, report: &str) -> Result<()> {
        let mut state = self.state();
        let held = state
            .in_flight
            .get(&claim.task.id)
            .is_some_and(|f| f.worker == claim.worker);
        if held {
            state.in_flight.remove(&claim.task.id);
            state.failed.push(TaskFailure::new(claim, report));
        }
        Ok(())
    }

    async fn reclaim_abandoned(&self, to: &WorkerId, max_deliveries: u32) -> Result<ReclaimReport> {
        let now = Instant::now();
        let mut report = ReclaimReport::default();
        {
            let mut state = self.state();
            // Holders of queued or in-flight tasks that are dead (see
            // `is_dead_locked`: a worker that never beat has a grace period).
            let mut holders: HashSet<&WorkerId> =
                state.in_flight.values().map(|f| &f.worker).collect();
            holders.extend(
                state
                    .queues
                    .iter()
                    .filter(|(_, q)| !q.is_empty())
                    .map(|(w, _)| w),
            );
            let mut dead: Vec<WorkerId> = holders
                .into_iter()
                .filter(|w| *w != to && self.is_dead_locked(&state, w, now))
                .cloned()
                .collect();
            dead.sort();
            for w in &dead {
                let mut taken: Vec<TaskId> = state
                    .in_flight
                    .iter()
                    .filter(|(_, f)| &f.worker == w)
                    .map(|(id, _)| *id)
                    .collect();
                taken.sort();
                let queued: Vec<Queued> = state
                    .queues
                    .get_mut(w)
                    .map(|q| q.drain(..).collect())
                    .unwrap_or_default();
                if taken.is_empty() && queued.is_empty() {
                    continue;
                }
                report.from_workers.push(w.clone());
                for id in taken {
                    let Some(f) = state.in_flight.remove(&id) else {
                        continue;
                    };
                    if f.deliveries >= max_deliveries {
                        let claim =
                            ClaimedTask::new(f.task, f.worker, f.deliveries, id.to_string());
                        let why = format!(
                            "abandoned by dead worker {w} after {} deliveries (limit {max_deliveries})",
                            claim.deliveries
                        );
                        state
                            .failed
                            .push(TaskFailure::new(&claim, why).dead_lettered());
                        report.dead_lettered.push(id);
                    } else {
                        report.requeued.push(id);
                        state
                            .queues
                            .entry(to.clone())
                            .or_default()
                            .push_back(Queued {
                                task: f.task,
                                deliveries: f.deliveries,
                            });
                    }
                }
                for q in queued {
                    report.requeued.push(q.task.id);
                    state.queues.entry(to.clone()).or_default().push_back(q);
                }
            }
        }
        if !report.requeued.is_empty() {
            self.state()
                .seen
                .entry(to.clone())
                .or_insert(Seen::FirstTask(now));
            self.inner.tasks_changed.notify_waiters();
        }
        Ok(report)
    }

    async fn queued_tasks(&self, worker: &WorkerId) -> Result<u64> {
        Ok(self
            .state()
            .queues
            .get(worker)
            .map_or(0, |q| q.len() as u64))
    }

    async fn failed_tasks(&self) -> Result<Vec<TaskFailure>> {
        Ok(self.state().failed.clone())
    }
}

#[async_trait]
impl QuotaLedger for MemoryBus {
    async fn try_acquire(
        &self,
        shard: ShardId,
        limits: QuotaLimits,
        now: DateTime<Utc>,
    ) -> Result<Acquire> {
        let mut state = self.state();
        let book = state
            .shards
            .entry(shard)
            .or_insert_with(|| ShardBook::new(now));
        book.roll(now);
        let answer = if let Some(reason) = &book.disabled {
            Acquire::Denied(Denial::Disabled {
                reason: reason.clone(),
            })
        } else if let Some(until) = book.exhausted_until {
            Acquire::Denied(Denial::Exhausted { until })
        } else if let Some(until) = book.cooling_until {
            Acquire::Denied(Denial::Cooling { until })
        } else if limits.per_day.is_some_and(|d| book.used >= d) {
            let until = next_pacific_midnight(now);
            book.exhausted_until = Some(until);
            book.exhausted_by_count = true;
            Acquire::Denied(Denial::Exhausted { until })
        } else if limits.per_minute.is_some_and(|m| book.minute_used >= m) {
            Acquire::Denied(Denial::Cooling {
                until: minute_window(now).1,
            })
        } else {
            book.used += 1;
            book.minute_used += 1;
            if limits.per_day.is_some_and(|d| book.used >= d) {
                // The grant that reaches the limit marks the shard exhausted
                // at once, so other processes see it without trying.
                book.exhausted_until = Some(next_pacific_midnight(now));
                book.exhausted_by_count = true;
            }
            Acquire::Granted {
                remaining_today: limits.per_day.map(|d| d.saturating_sub(book.used)),
            }
        };
        book.publish(limits, now);
        Ok(answer)
    }

    async fn release(&self, shard: ShardId, limits: QuotaLimits, now: DateTime<Utc>) -> Result<()> {
        let mut state = self.state();
        if let Some(book) = state.shards.get_mut(&shard) {
            book.roll(now);
            book.used = book.used.saturating_sub(1);
            book.minute_used = book.minute_used.saturating_sub(1);
            if book.exhausted_by_count && limits.per_day.is_some_and(|d| book.used < d) {
                book.exhausted_until = None;
                book.exhausted_by_count = false;
            }
            book.publish(limits, now);
        }
        Ok(())
    }

    async fn cool_until(
        &self,
        shard: ShardId,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut state = self.state();
        let book = state
            .shards
            .entry(shard)
            .or_insert_with(|| ShardBook::new(now));
        book.cooling_until = Some(book.cooling_until.map_or(until, |c| c.max(until)));
        if book.disabled.is_none() && book.exhausted_until.is_none() {
            book.status_value = ShardStatus::Cooling;
        }
        Ok(())
    }

    async fn exhaust_until(
        &self,
        shard: ShardId,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut state = self.state();
        let book = state
            .shards
            .entry(shard)
            .or_insert_with(|| ShardBook::new(now));
        book.exhausted_until = Some(book.exhausted_until.map_or(until, |c| c.max(until)));
        book.exhausted_by_count = false;
        book.quota_value = Some(0);
        if book.disabled.is_none() {
            book.status_value = ShardStatus::Exhausted;
        }
        Ok(())
    }

    async fn disable(&self, shard: ShardId, reason: &str, now: DateTime<Utc>) -> Result<()> {
        let mut state = self.state();
        let book = state
            .shards
            .entry(shard)
            .or_insert_with(|| ShardBook::new(now));
        book.disabled = Some(reason.to_owned());
        book.status_value = ShardStatus::Disabled;
        Ok(())
    }

    async fn enable(&self, shard: ShardId, _now: DateTime<Utc>) -> Result<()> {
        let mut state = self.state();
        if let Some(book) = state.shards.get_mut(&shard) {
            book.disabled = None;
            book.cooling_until = None;
            book.exhausted_until = None;
            book.exhausted_by_count = false;
            book.tested = false;
            book.status_value = ShardStatus::Untested;
        }
        Ok(())
    }

    async fn mark_ok(&self, shard: ShardId, limits: QuotaLimits, now: DateTime<Utc>) -> Result<()> {
        let mut state = self.state();
        let book = state
            .shards
            .entry(shard)
            .or_insert_with(|| ShardBook::new(now));
        book.roll(now);
        book.tested = true;
        book.publish(limits, now);
        Ok(())
    }

    async fn shard_states(
        &self,
        shards: &[ShardId],
        limits: QuotaLimits,
        now: DateTime<Utc>,
    ) -> Result<Vec<ShardState>> {
        let state = self.state();
        Ok(shards
            .iter()
            .map(|s| match state.shards.get(s) {
                Some(book) => {
                    let mut view = book.clone();
                    view.roll(now);
                    view.state(*s, limits, now)
                }
                None => swarmbus_core::quota::shard_state(
                    *s,
                    &swarmbus_core::quota::ShardBook::new(),
                    limits,
                    now,
                ),
            })
            .collect())
    }

    async fn shard_quotas(&self, shards: &[ShardId]) -> Result<Vec<Option<i64>>> {
        let state = self.state();
        Ok(shards
            .iter()
            .map(|s| state.shards.get(s).and_then(|b| b.quota_value))
            .collect())
    }
}

#[async_trait]
impl HaltSwitch for MemoryBus {
    async fn halt(&self, report: &HaltReport) -> Result<bool> {
        let key = || self.key(Key::HaltReason);
        self.inner.limits.check_value(key, report)?;
        let mut state = self.state();
        if state.halt.is_some() {
            return Ok(false);
        }
        state.halt = Some(report.clone());
        Ok(true)
    }

    async fn halted(&self) -> Result<Option<HaltReport>> {
        Ok(self.state().halt.clone())
    }

    async fn clear_halt(&self) -> Result<Option<HaltReport>> {
        Ok(self.state().halt.take())
    }

    async fn save_draft(&self, name: &str, content: &str) -> Result<()> {
        validate_draft_name(name)?;
        self.inner
            .limits
            .check(|| format!("draft {name}"), content)?;
        self.state()
            .drafts
            .insert(name.to_owned(), content.to_owned());
        Ok(())
    }

    async fn load_draft(&self, name: &str) -> Result<Option<String>> {
        validate_draft_name(name)?;
        Ok(self.state().drafts.get(name).cloned())
    }
}

/// Draft names follow the id rules (they become part of a key on Redis).
pub(crate) fn validate_draft_name(name: &str) -> Result<()> {
    JournalName::new(name).map(|_| ())
}

#[async_trait]
impl Counters for MemoryBus {
    async fn add_cost(&self, tier: &TierName, usd: f64) -> Result<f64> {
        if !usd.is_finite() {
            return Err(Error::InvalidInput {
                field: "usd",
                reason: format!("{usd} is not a finite amount"),
            });
        }
        let mut state = self.state();
        let total = state.costs.entry(tier.clone()).or_insert(0.0);
        *total += usd;
        Ok(*total)
    }

    async fn costs(&self, tiers: &[TierName]) -> Result<Vec<f64>> {
        let state = self.state();
        Ok(tiers
            .iter()
            .map(|t| state.costs.get(t).copied().unwrap_or(0.0))
            .collect())
    }

    async fn set_context_tokens(&self, tokens: u64) -> Result<()> {
        self.state().context = Some(tokens);
        Ok(())
    }

    async fn context_tokens(&self) -> Result<Option<u64>> {
        Ok(self.state().context)
    }

    async fn counter_add(&self, name: &CounterName, delta: i64) -> Result<i64> {
        let mut state = self.state();
        let c = state.counters.entry(name.clone()).or_insert(0);
        *c = c.checked_add(delta).ok_or_else(|| overflow(name))?;
        Ok(*c)
    }

    async fn counters(&self, names: &[CounterName]) -> Result<Vec<i64>> {
        let state = self.state();
        Ok(names
            .iter()
            .map(|n| state.counters.get(n).copied().unwrap_or(0))
            .collect())
    }

    async fn counter_try_add(
        &self,
        name: &CounterName,
        delta: i64,
        limit: i64,
    ) -> Result<Option<i64>> {
        let mut state = self.state();
        let c = state.counters.entry(name.clone()).or_insert(0);
        let next = c.checked_add(delta).ok_or_else(|| overflow(name))?;
        if *c >= limit || next > limit {
            return Ok(None);
        }
        *c = next;
        Ok(Some(next))
    }
}

fn overflow(name: &CounterName) -> Error {
    Error::InvalidInput {
        field: "counter delta",
        reason: format!("counter {name} would overflow"),
    }
}

#[async_trait]
impl Journal for MemoryBus {
    async fn append(&self, journal: &JournalName, records: &[String]) -> Result<()> {
        for r in records {
            self.inner
                .limits
                .check(|| format!("journal {journal}"), r)?;
        }
        self.state()
            .journals
            .entry(journal.clone())
            .or_default()
            .extend(records.iter().cloned());
        Ok(())
    }

    async fn append_with_cost(
        &self,
        journal: &JournalName,
        records: &[String],
        tier: &TierName,
        usd: f64,
    ) -> Result<f64> {
        if !usd.is_finite() {
            return Err(Error::InvalidInput {
                field: "usd",
                reason: format!("{usd} is not a finite amount"),
            });
        }
        for r in records {
            self.inner
                .limits
                .check(|| format!("journal {journal}"), r)?;
        }
        // One lock: both change or neither does.
        let mut state = self.state();
        state
            .journals
            .entry(journal.clone())
            .or_default()
            .extend(records.iter().cloned());
        let total = state.costs.entry(tier.clone()).or_insert(0.0);
        *total += usd;
        Ok(*total)
    }

    async fn read(&self, journal: &JournalName, from: u64, max: usize) -> Result<Vec<String>> {
        let state = self.state();
        let Some(records) = state.journals.get(journal) else {
            return Ok(Vec::new());
        };
        let from = usize::try_from(from).unwrap_or(usize::MAX);
        Ok(records.iter().skip(from).take(max).cloned().collect())
    }

    async fn journal_len(&self, journal: &JournalName) -> Result<u64> {
        Ok(self
            .state()
            .journals
            .get(journal)
            .map_or(0, |j| j.len() as u64))
    }
}

#[async_trait]
impl ArchiveDesk for MemoryBus {
    async fn ask(&self, query: &ArchiveQuery) -> Result<()> {
        let key = self.key(Key::QueryArchive(query.id));
        self.inner.limits.check_value(|| key.clone(), query)?;
        {
            let mut state = self.state();
            if state.queries.insert(query.id, query.clone()).is_none() {
                state.pending_queries.push_back(query.id);
            }
        }
        self.inner.queries_changed.notify_waiters();
        self.notify(Channel::Queries, || key);
        Ok(())
    }

    async fn next_query(&self, wait: Duration) -> Result<Option<ArchiveQuery>> {
        let deadline = deadline_after(wait);
        loop {
            let notified = self.inner.queries_changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.state();
                while let Some(id) = state.pending_queries.pop_front() {
                    if let Some(q) = state.queries.get(&id) {
                        return Ok(Some(q.clone()));
                    }
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Ok(None);
            }
        }
    }

    async fn get_query(&self, id: QueryId) -> Result<Option<ArchiveQuery>> {
        Ok(self.state().queries.get(&id).cloned())
    }

    async fn answer(&self, response: &ArchiveResponse) -> Result<()> {
        let key = self.key(Key::ResponseArchive(response.id));
        self.inner.limits.check_value(|| key.clone(), response)?;
        self.state().responses.insert(response.id, response.clone());
        self.notify(Channel::Responses, || key);
        Ok(())
    }

    async fn get_response(&self, id: QueryId) -> Result<Option<ArchiveResponse>> {
        Ok(self.state().responses.get(&id).cloned())
    }
}

/// An instant far enough ahead to stand for "never" (about 30 years).
fn far_future<I: Copy + std::ops::Add<Duration, Output = I> + CheckedAdd>(now: I) -> I {
    [30 * 365, 365, 1]
        .into_iter()
        .find_map(|days| now.checked_add_duration(Duration::from_secs(days * 86_400)))
        .unwrap_or(now)
}

/// `checked_add` of the two `Instant` types.
trait CheckedAdd: Sized {
    fn checked_add_duration(self, d: Duration) -> Option<Self>;
}

impl CheckedAdd for Instant {
    fn checked_add_duration(self, d: Duration) -> Option<Self> {
        self.checked_add(d)
    }
}

impl CheckedAdd for tokio::time::Instant {
    fn checked_add_duration(self, d: Duration) -> Option<Self> {
        self.checked_add(d)
    }
}

/// When a wait of `wait` from now ends; `Duration::MAX` ("wait forever")
/// saturates instead of overflowing.
fn deadline_after(wait: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(wait).unwrap_or_else(|| far_future(now))
}

impl MemoryBus {
    /// Removes the finding stored under `id` (library or raw) from the
    /// store, the counts, the order and the index; returns it and whether
    /// it was archived.
    fn take_current(&self, state: &mut State, id: &FindingId) -> Result<Option<(Finding, bool)>> {
        let Some(current) = self.read_finding(state, id)? else {
            return Ok(None);
        };
        let mut archived = false;
        if let Some(old) = state.findings.remove(id) {
            state.order.remove(&(old.finding.created_at, id.clone()));
            archived = old.archived;
            if !old.archived {
                state.active -= 1;
            }
        } else if let Some(raw) = state.raw.remove(id) {
            archived = raw.archived;
            if raw.indexed_at.is_some() && !raw.archived {
                state.raw_active -= 1;
            }
        }
        state.index.remove(id);
        Ok(Some((current, archived)))
    }

    /// Stores `finding` as the library's, in the counts, order and index.
    fn place(state: &mut State, finding: &Finding, archived: bool) {
        state.order.insert((finding.created_at, finding.id.clone()));
        state.index.add(finding, archived);
        if !archived {
            state.active += 1;
        }
        state.findings.insert(
            finding.id.clone(),
            Box::new(StoredFinding {
                finding: finding.clone(),
                archived,
            }),
        );
    }

    fn delete_locked(
        &self,
        state: &mut State,
        id: &FindingId,
        at: DateTime<Utc>,
        reason: swarmbus_core::lifecycle::Removal,
    ) -> Result<swarmbus_core::lifecycle::Tombstone> {
        if let Some(t) = state.history.get(id).and_then(|h| h.tombstone.clone()) {
            return Ok(t);
        }
        let Some((last, _)) = self.take_current(state, id)? else {
            return Err(Error::NotFound {
                key: self.key(Key::Finding(id.clone())),
            });
        };
        let h = state.history.entry(id.clone()).or_default();
        h.versions.insert(h.head, last);
        let t = swarmbus_core::lifecycle::Tombstone::new(id.clone(), h.head, at, reason);
        h.tombstone = Some(t.clone());
        state.expiry.remove(id);
        Ok(t)
    }

    /// Deletes what has expired by `now`.
    fn sweep_locked(&self, state: &mut State, now: DateTime<Utc>) -> u64 {
        if state.expiry.is_empty() {
            return 0;
        }
        let due: Vec<(FindingId, DateTime<Utc>)> = state
            .expiry
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, at)| (id.clone(), *at))
            .collect();
        let mut n = 0;
        for (id, at) in due {
            state.expiry.remove(&id);
            // An unreadable raw value stays (nothing to keep as a version).
            if self
                .delete_locked(state, &id, at, swarmbus_core::lifecycle::Removal::Expired)
                .is_ok()
            {
                n += 1;
            }
        }
        n
    }

    fn history_of(
        &self,
        state: &State,
        id: &FindingId,
    ) -> Result<Option<swarmbus_core::lifecycle::FindingHistory>> {
        use swarmbus_core::lifecycle::{FindingHistory, FindingVersion};
        match state.history.get(id) {
            Some(h) => Ok(Some(FindingHistory::new(
                id.clone(),
                h.versions
                    .iter()
                    .map(|(n, f)| FindingVersion::new(*n, f.clone()))
                    .collect(),
                h.tombstone.is_none().then_some(h.head),
                h.tombstone.clone(),
            ))),
            None => Ok(self
                .read_finding(state, id)?
                .map(|_| FindingHistory::new(id.clone(), Vec::new(), Some(1), None))),
        }
    }
}

#[async_trait]
impl swarmbus_core::lifecycle::FindingLifecycle for MemoryBus {
    async fn update_finding(&self, revised: &Finding) -> Result<u32> {
        self.check_finding(revised)?;
        let mut state = self.state();
        let state = &mut *state;
        let id = &revised.id;
        let head = state.history.get(id).map_or(1, |h| h.head);
        let current = if state.history.get(id).is_some_and(|h| h.tombstone.is_some()) {
            None
        } else {
            self.read_finding(state, id)?
        };
        let Some(current) = current else {
            return Err(Error::NotFound {
                key: self.key(Key::Finding(id.clone())),
            });
        };
        if current == *revised {
            return Ok(head);
        }
        let Some((old, archived)) = self.take_current(state, id)? else {
            return Err(Error::NotFound {
                key: self.key(Key::Finding(id.clone())),
            });
        };
        let h = state.history.entry(id.clone()).or_default();
        h.versions.insert(h.head, old);
        h.head += 1;
        let head = h.head;
        Self::place(state, revised, archived);
        self.notify(Channel::Findings, || self.key(Key::Finding(id.clone())));
        Ok(head)
    }

    async fn delete_finding(
        &self,
        id: &FindingId,
        at: DateTime<Utc>,
    ) -> Result<swarmbus_core::lifecycle::Tombstone> {
        let mut state = self.state();
        self.delete_locked(
            &mut state,
            id,
            at,
            swarmbus_core::lifecycle::Removal::Deleted,
        )
    }

    async fn finding_history(
        &self,
        id: &FindingId,
    ) -> Result<Option<swarmbus_core::lifecycle::FindingHistory>> {
        let state = self.state();
        self.history_of(&state, id)
    }

    async fn finding_histories(&self) -> Result<Vec<swarmbus_core::lifecycle::FindingHistory>> {
        let state = self.state();
        let mut out = Vec::new();
        for id in state.history.keys() {
            if let Some(h) = self.history_of(&state, id)?
                && h.has_past()
            {
                out.push(h);
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn restore_history(
        &self,
        history: &swarmbus_core::lifecycle::FindingHistory,
    ) -> Result<bool> {
        for v in &history.versions {
            self.check_finding(&v.finding)?;
        }
        let mut state = self.state();
        let state = &mut *state;
        let id = &history.id;
        let mut changed = false;
        if history.tombstone.is_some()
            && state.history.get(id).is_none_or(|h| h.tombstone.is_none())
        {
            // The export says it was deleted: what is stored now goes.
            if self.take_current(state, id)?.is_some() {
                changed = true;
            }
            state.expiry.remove(id);
        }
        let h = state.history.entry(id.clone()).or_default();
        for v in &history.versions {
            if let std::collections::btree_map::Entry::Vacant(e) = h.versions.entry(v.version) {
                e.insert(v.finding.clone());
                changed = true;
            }
        }
        let head = history
            .current
            .or(history.tombstone.as_ref().map(|t| t.version))
            .unwrap_or(1);
        if head > h.head {
            h.head = head;
            changed = true;
        }
        if h.tombstone.is_none() && history.tombstone.is_some() {
            h.tombstone = history.tombstone.clone();
            changed = true;
        }
        Ok(changed)
    }

    async fn expire_findings(&self, ids: &[FindingId], at: Option<DateTime<Utc>>) -> Result<u64> {
        let mut state = self.state();
        let mut n = 0;
        for id in ids {
            let stored = state.findings.contains_key(id) || state.raw.contains_key(id);
            if !stored {
                continue;
            }
            match at {
                Some(at) => state.expiry.insert(id.clone(), at),
                None => state.expiry.remove(id),
            };
            n += 1;
        }
        Ok(n)
    }

    async fn sweep_expired(&self, now: DateTime<Utc>) -> Result<u64> {
        let mut state = self.state();
        Ok(self.sweep_locked(&mut state, now))
    }
}
