//! # swarmbus-redis
//!
//! The Redis bus: every `swarmbus-core` bus trait over a real Redis, one
//! node or a Cluster, so that agents in many processes and on many machines
//! share one swarm. The brief's keys keep their names and value types (its
//! Python tools read what this crate writes); what must not be lost is kept
//! durably (a Stream for findings, reliable lists for tasks) and the
//! channels only notify.
//!
//! # Layout
//!
//! - [`config`]: [`RedisConfig`]: URL (ACL user, password kept secret,
//!   `rediss://` with feature `tls`), database, namespace, explicit timeouts,
//!   retry budget, Cluster seed nodes.
//! - `bus`: [`RedisBus`], its own key names, and how requests are sent
//!   (retries only where repeating is safe, NOSCRIPT reloads, WRONGTYPE).
//! - `connection`: the two connection kinds (single node, Cluster) behind
//!   one type, and the dedicated connections of blocking reads and pub/sub.
//! - `scripts`: the Lua scripts, one per atomic multi-key change.
//! - `findings`: `FindingStore` and `FindingFeed` (index ZSET, Stream with
//!   consumer groups).
//! - `index`: `FindingIndex`, the search index kept by the put script
//!   (postings, bitmaps, BM25 via `swarmbus_core::search`), check and repair.
//! - `lifecycle`: `FindingLifecycle`: versions, tombstones and expiry, each
//!   change one script with the finding's indices and its search document.
//! - `adopt`: findings written around the library (`redis-cli SET
//!   finding:<name>`) join the index: [`RedisBus::reindex_findings`]
//!   (incremental SCAN, resumable) and [`RedisBus::spawn_finding_adopter`]
//!   (keyspace notifications, or a periodic reindex where CONFIG is refused);
//!   with feature `testing`, the conformance suite's raw writer
//!   (`swarmbus_memory::conformance::RawFindingWriter`).
//! - `channels`: `Channels` (pub/sub notifications).
//! - `workers`: `WorkerRegistry` (TTL heartbeats, registry ZSET + MGET).
//! - `tasks`: `TaskQueue` (LMOVE reliable queue, delivery counts, reclaim,
//!   dead letters).
//! - `quota`: `QuotaLedger` (check-and-count per Pacific day and minute).
//! - `halt`: `HaltSwitch` and drafts.
//! - `outage`: retry pacing (capped backoff, jitter), one log line per outage and on
//!   recovery, a worker taking back its own in-flight tasks.
//! - `counters`: `Counters` (costs, context size, named counters) and
//!   `Journal`.
//! - `tokens`: the HTTP server's bearer-token table (digests only).
//! - `archive`: `ArchiveDesk` (questions and answers for librarians).
//! - `errors`: redis-rs errors to the core `Error`, secrets scrubbed.
//! - `testing` (feature `testing`): real `redis-server` processes, a local
//!   3-master Cluster and a TCP fault proxy (drops a reply, cuts a request)
//!   for tests.
//!
//! # Example
//!
//! ```no_run
//! use swarmbus_core::bus::{FindingStore, WorkerRegistry};
//! use swarmbus_core::keys::{Namespace, WorkerId};
//! use swarmbus_redis::{RedisBus, RedisConfig};
//!
//! # async fn run() -> swarmbus_core::Result<()> {
//! let bus = RedisBus::connect(
//!     RedisConfig::from_url("redis://127.0.0.1:6379")?.namespace(Namespace::new("team-a")?),
//! )
//! .await?;
//! bus.heartbeat(&WorkerId::new("haiku-1")?, std::time::Duration::from_secs(60)).await?;
//! println!("{} findings, {} workers", bus.count_findings().await?, bus.count_alive_workers().await?);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod adopt;
mod archive;
mod bus;
mod channels;
pub mod config;
mod connection;
mod counters;
mod errors;
#[cfg(feature = "testing")]
mod fault_proxy;
mod findings;
mod halt;
mod index;
mod lifecycle;
mod outage;
mod quota;
mod scripts;
mod task_stats;
mod tasks;
#[cfg(feature = "testing")]
pub mod testing;
mod tokens;
mod workers;

pub use adopt::{AdoptionMode, FindingAdopter, MAX_REINDEX_BATCH, ReindexCursor, ReindexStep};
pub use bus::RedisBus;
pub use config::RedisConfig;
pub use task_stats::TaskTotals;
