//! # swarmbus-memory
//!
//! The in-memory bus: every `swarmbus-core` bus trait in one process, with
//! the semantics the Redis bus has (TTL expiry, pub/sub fan-out,
//! at-least-once task claims with reclaim, atomic quotas), so code written
//! against it moves to Redis unchanged. The default bus of the CLI's demo and
//! of tests; and, with feature `testing`, the conformance suite every bus
//! implementation (this one, `swarmbus_redis::RedisBus`) must pass.
//!
//! # Layout
//!
//! - [`bus`]: [`MemoryBus`], all state behind one lock, waits on `Notify`.
//! - [`index`]: [`MemoryIndex`], the bus's findings index (core's layout and BM25 ranking).
//! - `conformance` (feature `testing`): one public async check per
//!   behaviour of the bus traits, `run_all`, `run_raw_findings`, the
//!   `RawFindingWriter` test seam and `conformance_tests!` (one
//!   `#[tokio::test]` per check).
//! - `conformance_search` (feature `testing`): the search index's checks (a
//!   fixed corpus with its orders written down, the index against a scan,
//!   the lifecycle, an export → import round trip).
//!
//! # Example
//!
//! ```
//! use swarmbus_core::{Finding, FindingStore, SessionId, WorkerId};
//! use swarmbus_memory::MemoryBus;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> swarmbus_core::Result<()> {
//! let bus = MemoryBus::new();
//! let finding = Finding::new(WorkerId::new("haiku-1")?, SessionId::new("s1")?, "title", "body");
//! bus.put_finding(&finding).await?;
//! assert_eq!(bus.count_findings().await?, 1);
//! assert_eq!(bus.get_finding(&finding.id).await?, Some(finding));
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod bus;
#[cfg(feature = "testing")]
pub mod conformance;
#[cfg(feature = "testing")]
pub mod conformance_search;
pub mod index;

pub use bus::MemoryBus;
pub use index::MemoryIndex;
