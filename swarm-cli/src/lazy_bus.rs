//! A bus that connects to Redis on first use, for `swarm mcp`: the MCP
//! handshake completes and the tools are listed even while Redis is down.
//! Each call made while nothing answers fails with a tool error naming the
//! URL (password shown as `***`) and what to do; the next call tries again,
//! so the server reconnects by itself when Redis is back, without a restart
//! of Claude Code. A connection error after connecting drops the connection,
//! so the call after it connects afresh.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use swarmbus_core::bus::{
    ArchiveDesk, Channels, Counters, FeedEntry, FeedEntryId, FindingFeed, FindingStore, HaltSwitch,
    Journal, QuotaLedger, Stored, Subscription, TaskQueue, WorkerRegistry,
};
use swarmbus_core::error::{Error, Result, Retry};
use swarmbus_core::keys::{
    Channel, CounterName, FindingId, GroupName, JournalName, QueryId, ShardId, TierName, WorkerId,
};
use swarmbus_core::quota::{Acquire, QuotaLimits};
use swarmbus_core::{
    ArchiveQuery, ArchiveResponse, ClaimedTask, Finding, FindingFilter, HaltReport, Heartbeat,
    Listing, Progress, ReclaimReport, ShardState, Task, TaskFailure,
};

use crate::ctx::{BusUse, Ctx};

/// A Redis bus that connects when first used and again after losing Redis.
pub(crate) struct LazyBus {
    ctx: Arc<Ctx>,
    /// The bus [`Ctx::bus`] opened (as a server: its raw-key adopter runs
    /// while the context lives), once connected.
    slot: tokio::sync::Mutex<Option<Arc<dyn swarmbus_core::Bus>>>,
}

impl std::fmt::Debug for LazyBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyBus")
            .field("url", &self.ctx.shown_url())
            .finish_non_exhaustive()
    }
}

impl LazyBus {
    /// A bus on the Redis of `ctx`; nothing is connected yet.
    pub(crate) fn new(ctx: Arc<Ctx>) -> Self {
        Self {
            ctx,
            slot: tokio::sync::Mutex::new(None),
        }
    }

    /// Tries to connect now (at start, so a Redis that is up is used at
    /// once); a failure is only logged.
    pub(crate) async fn warm(&self) {
        if let Err(e) = self.get().await {
            tracing::warn!("swarm mcp: {e}; serving anyway, each tool call tries again");
        }
    }

    async fn get(&self) -> Result<Arc<dyn swarmbus_core::Bus>> {
        let mut slot = self.slot.lock().await;
        if let Some(bus) = slot.as_ref() {
            return Ok(Arc::clone(bus));
        }
        match self.ctx.bus(BusUse::SERVER).await {
            Ok(bus) => {
                *slot = Some(Arc::clone(&bus));
                Ok(bus)
            }
            Err(message) => Err(Error::Backend {
                backend: "redis",
                message: format!(
                    "the swarm's Redis is not reachable: {message} (in the environment or the .env of \
                     the folder Claude Code runs in). This server reconnects by itself: call the tool \
                     again once Redis is up, no restart needed."
                ),
                retry: Retry::After(Duration::from_secs(5)),
                source: None,
            }),
        }
    }

    /// Passes a result on; a connection-level failure drops the connection so
    /// the next call connects afresh.
    fn seen<T>(&self, r: Result<T>) -> Result<T> {
        if let Err(
            Error::Backend {
                retry: Retry::Retry | Retry::After(_) | Retry::Unknown,
                ..
            }
            | Error::Timeout { .. }
            | Error::Unconfirmed { .. },
        ) = &r
            && let Ok(mut slot) = self.slot.try_lock()
        {
            *slot = None;
        }
        r
    }
}

#[async_trait]
impl FindingStore for LazyBus {
    async fn put_finding(&self, finding: &Finding) -> Result<Stored> {
        let bus = self.get().await?;
        self.seen(bus.put_finding(finding).await)
    }
    async fn put_findings(&self, findings: &[Finding]) -> Result<usize> {
        let bus = self.get().await?;
        self.seen(bus.put_findings(findings).await)
    }
    async fn get_finding(&self, id: &FindingId) -> Result<Option<Finding>> {
        let bus = self.get().await?;
        self.seen(bus.get_finding(id).await)
    }
    async fn get_findings(&self, ids: &[FindingId]) -> Result<Vec<Option<Finding>>> {
        let bus = self.get().await?;
        self.seen(bus.get_findings(ids).await)
    }
    async fn list_findings(&self, filter: &FindingFilter) -> Result<Listing> {
        let bus = self.get().await?;
        self.seen(bus.list_findings(filter).await)
    }
    async fn count_findings(&self) -> Result<u64> {
        let bus = self.get().await?;
        self.seen(bus.count_findings().await)
    }
    async fn archive_findings(&self, ids: &[FindingId]) -> Result<u64> {
        let bus = self.get().await?;
        self.seen(bus.archive_findings(ids).await)
    }
}

#[async_trait]
impl FindingFeed for LazyBus {
    async fn read_feed(
        &self,
        group: &GroupName,
        consumer: &WorkerId,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<FeedEntry>> {
        let bus = self.get().await?;
        self.seen(bus.read_feed(group, consumer, max, wait).await)
    }
    async fn ack_feed(&self, group: &GroupName, entries: &[FeedEntryId]) -> Result<()> {
        let bus = self.get().await?;
        self.seen(bus.ack_feed(group, entries).await)
    }
}

#[async_trait]
impl Channels for LazyBus {
    async fn publish(&self, channel: Channel, message: &str) -> Result<usize> {
        let bus = self.get().await?;
        self.seen(bus.publish(channel, message).await)
    }
    async fn subscribe(&self, channel: Channel) -> Result<Subscription> {
        let bus = self.get().await?;
        self.seen(bus.subscribe(channel).await)
    }
}

#[async_trait]
impl WorkerRegistry for LazyBus {
    async fn heartbeat(&self, worker: &WorkerId, ttl: Duration) -> Result<()> {
        let bus = self.get().await?;
        self.seen(bus.heartbeat(worker, ttl).await)
    }
    async fn progress(&self, worker: &WorkerId, progress: &Progress) -> Result<()> {
        let bus = self.get().await?;
        self.seen(bus.progress(worker, progress).await)
    }
    async fn is_alive(&self, worker: &WorkerId) -> Result<bool> {
        let bus = self.get().await?;
        self.seen(bus.is_alive(worker).await)
    }
    async fn alive_workers(&self) -> Result<Vec<Heartbeat>> {
        let bus = self.get().await?;
        self.seen(bus.alive_workers().await)
    }
    async fn count_alive_workers(&self) -> Result<u64> {
        let bus = self.get().await?;
        self.seen(bus.count_alive_workers().await)
    }
    async fn deregister(&self, worker: &WorkerId) -> Result<()> {
        let bus = self.get().await?;
        self.seen(bus.deregister(worker).await)
    }
}

#[async_trait]
impl TaskQueue for LazyBus {
    async fn push_task(&self, worker: &WorkerId, task: &Task) -> Result<()> {
        let bus = self.get().await?;
        self.seen(bus.push_task(worker, task).await)
    }
    async fn claim_task(&self, worker: &WorkerId, wait: Duration) -> Result<Option<ClaimedTask>> {
        let bus = self.get().await?;
        self.seen(bus.claim_task(worker, wait).await)
    }
    async fn ack_task(&self, claim: &ClaimedTask) -> Result<()> {
        let bus = self.get().await?;
        self.seen(bus.ack_task(claim).await)
    }
    async fn fail_task(&self, claim: &ClaimedTask, report: &str) -> Result<()> {
        let bus = self.get().await?;
        self.seen(bus.fail_task(claim, report).await)
    }
    async fn reclaim_abandoned(&self, to: &WorkerId, max_deliveries: u32) -> Result<ReclaimReport> {
        let bus = self.get().await?;
        self.seen(bus.reclaim_abandoned(to, max_deliveries).await)
    }
    async fn queued_tasks(&self, worker: &WorkerId) -> Result<u64> {
        let bus = self.get().await?;
        self.seen(bus.queued_tasks(worker).await)
    }
    async fn failed_tasks(&self) -> Result<Vec<TaskFailure>> {
        let bus = self.get().await?;
        self.seen(bus.failed_tasks().await)
    }
}

#[async_trait]
impl QuotaLedger for LazyBus {
    async fn try_acquire(
        &self,
        shard: ShardId,
        limits: QuotaLimits,
        now: DateTime<Utc>,
    ) -> Result<Acquire> {
        let bus = self.get().await?;
        self.seen(bus.try_acquire(shard, limits, now).await)
    }
    async fn release(&self, shard: ShardId, limits: QuotaLimits, now: DateTime<Utc>) -> Result<()> {
        let bus = self.get().await?;
        self.seen(bus.release(shard, limits, now).await)
    }
    async fn cool_until(
        &self,
        shard: ShardId,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let bus = self.get().await?;
        self.seen(bus.cool_until(shard, until, now).await)
    }
    async fn exhaust_until(
        &self,
        shard: ShardId,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let bus = self.get().await?;
        self.seen(bus.exhaust_until(shard, until, now).await)
    }
    async fn disable(&self, shard: ShardId, reason: &str, now: DateTime<Utc>) -> Result<()> {
        let bus = self.get().await?;
        self.seen(bus.disable(shard, reason, now).await)
    }
    async fn enable(&self, shard: ShardId, now: DateTime<Utc>) -> Result<()> {
        let bus = self.get().await?;
        self.seen(bus.enable(shard, now).await)
    }
    async fn mark_ok(&self, shard: ShardId, limits: QuotaLimits, now: DateTime<Utc>) -> Result<()> {
        let bus = self.get().await?;
        self.seen(bus.mark_ok(shard, limits, now).await)
    }
    async fn shard_states(
        &self,
        shards: &[ShardId],
        limits: QuotaLimits,
        now: DateTime<Utc>,
    ) -> Result<Vec<ShardState>> {
        let bus = self.get().await?;
        self.seen(bus.shard_states(shards, limits, now).await)
    }
    async fn shard_quotas(&self, shards: &[ShardId]) -> Result<Vec<Option<i64>>> {
        let bus = self.get().await?;
        self.seen(bus.shard_quotas(shards).await)
    }
}

#[async_trait]
impl HaltSwitch for LazyBus {
    async fn halt(&self, report: &HaltReport) -> Result<bool> {
        let bus = self.get().await?;
        self.seen(bus.halt(report).await)
    }
    async fn halted(&self) -> Result<Option<HaltReport>> {
        let bus = self.get().await?;
        self.seen(bus.halted().await)
    }
    async fn clear_halt(&self) -> Result<Option<HaltReport>> {
        let bus = self.get().await?;
        self.seen(bus.clear_halt().await)
    }
    async fn save_draft(&self, name: &str, content: &str) -> Result<()> {
        let bus = self.get().await?;
        self.seen(bus.save_draft(name, content).await)
    }
    async fn load_draft(&self, name: &str) -> Result<Option<String>> {
        let bus = self.get().await?;
        self.seen(bus.load_draft(name).await)
    }
}

#[async_trait]
impl Counters for LazyBus {
    async fn add_cost(&self, tier: &TierName, usd: f64) -> Result<f64> {
        let bus = self.get().await?;
        self.seen(bus.add_cost(tier, usd).await)
    }
    async fn costs(&self, tiers: &[TierName]) -> Result<Vec<f64>> {
        let bus = self.get().await?;
        self.seen(bus.costs(tiers).await)
    }
    async fn set_context_tokens(&self, tokens: u64) -> Result<()> {
        let bus = self.get().await?;
        self.seen(bus.set_context_tokens(tokens).await)
    }
    async fn context_tokens(&self) -> Result<Option<u64>> {
        let bus = self.get().await?;
        self.seen(bus.context_tokens().await)
    }
    async fn counter_add(&self, name: &CounterName, delta: i64) -> Result<i64> {
        let bus = self.get().await?;
        self.seen(bus.counter_add(name, delta).await)
    }
    async fn counters(&self, names: &[CounterName]) -> Result<Vec<i64>> {
        let bus = self.get().await?;
        self.seen(bus.counters(names).await)
    }
    async fn counter_try_add(
        &self,
        name: &CounterName,
        delta: i64,
        limit: i64,
    ) -> Result<Option<i64>> {
        let bus = self.get().await?;
        self.seen(bus.counter_try_add(name, delta, limit).await)
    }
}

#[async_trait]
impl Journal for LazyBus {
    async fn append(&self, journal: &JournalName, records: &[String]) -> Result<()> {
        let bus = self.get().await?;
        self.seen(bus.append(journal, records).await)
    }
    async fn append_with_cost(
        &self,
        journal: &JournalName,
        records: &[String],
        tier: &TierName,
        usd: f64,
    ) -> Result<f64> {
        let bus = self.get().await?;
        self.seen(bus.append_with_cost(journal, records, tier, usd).await)
    }
    async fn read(&self, journal: &JournalName, from: u64, max: usize) -> Result<Vec<String>> {
        let bus = self.get().await?;
        self.seen(bus.read(journal, from, max).await)
    }
    async fn journal_len(&self, journal: &JournalName) -> Result<u64> {
        let bus = self.get().await?;
        self.seen(bus.journal_len(journal).await)
    }
}

#[async_trait]
impl ArchiveDesk for LazyBus {
    async fn ask(&self, query: &ArchiveQuery) -> Result<()> {
        let bus = self.get().await?;
        self.seen(bus.ask(query).await)
    }
    async fn next_query(&self, wait: Duration) -> Result<Option<ArchiveQuery>> {
        let bus = self.get().await?;
        self.seen(bus.next_query(wait).await)
    }
    async fn get_query(&self, id: QueryId) -> Result<Option<ArchiveQuery>> {
        let bus = self.get().await?;
        self.seen(bus.get_query(id).await)
    }
    async fn answer(&self, response: &ArchiveResponse) -> Result<()> {
        let bus = self.get().await?;
        self.seen(bus.answer(response).await)
    }
    async fn get_response(&self, id: QueryId) -> Result<Option<ArchiveResponse>> {
        let bus = self.get().await?;
        self.seen(bus.get_response(id).await)
    }
}

#[async_trait]
impl swarmbus_core::search::FindingIndex for LazyBus {
    async fn search_findings(
        &self,
        query: &swarmbus_core::search::SearchQuery,
    ) -> Result<swarmbus_core::search::SearchPage> {
        let bus = self.get().await?;
        self.seen(bus.search_findings(query).await)
    }
    async fn check_index(&self, repair: bool) -> Result<swarmbus_core::search::IndexReport> {
        let bus = self.get().await?;
        self.seen(bus.check_index(repair).await)
    }
}

#[async_trait]
impl swarmbus_core::lifecycle::FindingLifecycle for LazyBus {
    async fn update_finding(&self, revised: &Finding) -> Result<u32> {
        let bus = self.get().await?;
        self.seen(bus.update_finding(revised).await)
    }
    async fn delete_finding(
        &self,
        id: &FindingId,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<swarmbus_core::lifecycle::Tombstone> {
        let bus = self.get().await?;
        self.seen(bus.delete_finding(id, at).await)
    }
    async fn finding_history(
        &self,
        id: &FindingId,
    ) -> Result<Option<swarmbus_core::lifecycle::FindingHistory>> {
        let bus = self.get().await?;
        self.seen(bus.finding_history(id).await)
    }
    async fn finding_histories(&self) -> Result<Vec<swarmbus_core::lifecycle::FindingHistory>> {
        let bus = self.get().await?;
        self.seen(bus.finding_histories().await)
    }
    async fn restore_history(
        &self,
        history: &swarmbus_core::lifecycle::FindingHistory,
    ) -> Result<bool> {
        let bus = self.get().await?;
        self.seen(bus.restore_history(history).await)
    }
    async fn expire_findings(
        &self,
        ids: &[FindingId],
        at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<u64> {
        let bus = self.get().await?;
        self.seen(bus.expire_findings(ids, at).await)
    }
    async fn sweep_expired(&self, now: chrono::DateTime<chrono::Utc>) -> Result<u64> {
        let bus = self.get().await?;
        self.seen(bus.sweep_expired(now).await)
    }
}
