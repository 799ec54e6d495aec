//! # swarmbus-core
//!
//! The core of `swarm`: the key schema, the domain types and the bus traits
//! every other crate meets through. It does no network I/O.
//!
//! # Layout
//!
//! - [`keys`]: the brief's Redis keys and channels as typed values, validated ids, namespaces.
//! - [`model`]: `Finding`, `Task`, `ArchiveQuery`/`ArchiveResponse`, `HaltReport`, shard state; the JSON codec.
//! - [`bus`]: the bus traits by capability (`FindingStore`, `FindingFeed`, `Channels`,
//!   `WorkerRegistry`, `TaskQueue`, `QuotaLedger`, `HaltSwitch`, `Counters`, `Journal`,
//!   `ArchiveDesk`) and `Bus`, all of them.
//! - [`quota`]: Pacific-day arithmetic and the quota ledger's answers.
//! - [`llm`]: the `LanguageModel` trait, requests, completions and `Usage`.
//! - [`error`]: the crate's one error type, which says whether to retry.
pub mod bus;
#[cfg(feature = "testing")]
pub mod conformance;
pub mod error;
pub mod keys;
pub mod llm;
pub mod memory;
pub mod model;
pub mod policy;
pub mod quota;
pub mod runtime;
pub mod status;

pub use bus::{
    ArchiveDesk, Bus, Channels, Counters, FeedEntry, FindingFeed, FindingStore, HaltSwitch,
    Journal, QuotaLedger, Stored, Subscription, TaskQueue, WorkerRegistry,
};
pub use error::{Error, Result, Retry};
pub use keys::{
    Channel, CounterName, FindingId, GroupName, JournalName, Key, KeySpace, Namespace, QueryId,
    SessionId, ShardId, TaskId, TierName, WorkerId,
};
pub use llm::{Completion, CompletionRequest, LanguageModel, Usage};
pub use memory::MemoryBus;
pub use model::{
    ArchiveQuery, ArchiveResponse, BusLimits, ClaimedTask, Finding, FindingFilter, HaltReport,
    Heartbeat, Listing, Progress, ReclaimReport, ShardState, ShardStatus, Task, TaskFailure, Tier,
};
pub use quota::{Acquire, Denial, QuotaLimits};
