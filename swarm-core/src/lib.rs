//! # swarmbus-core
//!
//! The core of `swarm`: the key schema, the domain types and the bus traits
//! every other crate meets through. It does no network I/O and holds no
//! runtime: the in-memory bus and the conformance suite every bus passes
//! live in `swarmbus-memory`; workers, coordinators, the delegation policy,
//! context safety and the status block in `swarmbus-agents`.
//!
//! # Layout
//!
//! - [`keys`]: the brief's Redis keys and channels as typed values, validated ids, namespaces.
//! - The domain types, one module per concept (each type is also at the crate root):
//!   - [`finding`]: `Finding`, read from whatever was stored (`RawValue`, `FindingOrigin`,
//!     `Unreadable`), `FindingFilter`, `Listing`; the token estimate.
//!   - [`task`]: `Task`, `ClaimedTask` and its `TaskReceipt`, `TaskFailure`, `ReclaimReport`.
//!   - [`worker`]: `Heartbeat` (and its `worker:status:<id>` timestamp), `Progress`.
//!   - [`archive`]: `ArchiveQuery` and `ArchiveResponse`, the librarian's questions and answers.
//!   - [`shard`]: `ShardStatus` and `ShardState`, a librarian shard in the quota ledger.
//!   - [`halt`]: `HaltReport`, the value of `halt:reason`.
//! - [`codec`]: the one JSON codec (`encode`, `decode`) and the lengths a value limit counts.
//! - [`bus`]: the bus traits by capability (`FindingStore`, `FindingFeed`, `Channels`,
//!   `WorkerRegistry`, `TaskQueue`, `QuotaLedger`, `HaltSwitch`, `Counters`, `Journal`,
//!   `ArchiveDesk`) and `Bus`, all of them; `BusLimits`, what every bus enforces.
//! - [`clock`]: the one injectable time source (`Clock`, `SystemClock`, `ManualClock`,
//!   `OffsetClock`).
//! - [`search`]: the findings index: tokeniser, stored layout, BM25 ranking, `FindingIndex`
//!   (the in-memory bus's index is `swarmbus_memory::MemoryIndex`).
//! - [`lifecycle`]: findings that change: versions, tombstones, expiry (`FindingLifecycle`).
//! - [`quota`]: Pacific-day arithmetic and the quota ledger's answers.
//! - [`llm`]: the `LanguageModel` trait (messages, tools, content blocks, stop reasons,
//!   `Usage`, `ModelError` and its action), model lifecycles and the one lifecycle check
//!   (`LifecycleVerdict`, `check_lifecycle`), GenAI tracing spans.
//! - [`accounting`]: the one meter (`Meter`: reserve → `Hold`, settle → exact money, cancel)
//!   through which every model call is priced once.
//! - [`money`]: exact money (`Money`, pico-dollars) and per-token `Rate`s: the seam's unit.
//! - [`provider_env`]: reading a provider's key and base URL override from the environment
//!   (`ProviderEnv`, `MissingKey`).
//! - [`policy`]: the model roles (`Tier`), the delegation target (90 % worker) and the
//!   worker/coordinator split of spend (`Efficiency`, `Percent`) the runtime and the cost
//!   report share.
//! - [`retry`]: the one retry policy: a [`RetryPolicy`] decides whether, when and with what
//!   changed (the same target, the next shard, the fallback model) a failed call is made
//!   again; [`retry::Backoff`] (capped exponential, seeded jitter, caps) and
//!   [`retry::RetryBudget`]. It decides; the caller sleeps.
//! - [`redact`]: the one rule for cleaning provider text (keys, control characters, length).
//! - [`error`]: the crate's one error type, which says whether to retry.
//!
//! # Example
//!
//! ```
//! use swarmbus_core::keys::{Key, KeySpace, Namespace};
//! use swarmbus_core::{Finding, SessionId, WorkerId};
//!
//! # fn main() -> swarmbus_core::Result<()> {
//! let finding = Finding::new(WorkerId::new("haiku-1")?, SessionId::new("s1")?, "title", "body");
//! let keys = KeySpace::namespaced(&Namespace::new("team-a")?);
//! let key = keys.format(&Key::Finding(finding.id.clone()));
//! assert_eq!(key, format!("{{team-a}}:finding:{}", finding.id));
//! assert_eq!(keys.parse(&key)?, Key::Finding(finding.id));
//! # Ok(())
//! # }
//! ```
//!
//! The bus traits are implemented by `swarmbus_memory::MemoryBus` (in process)
//! and `swarmbus_redis::RedisBus`.
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod accounting;
pub mod archive;
pub mod bus;
pub mod clock;
pub mod codec;
pub mod error;
pub mod finding;
pub mod halt;
pub mod keys;
pub mod lifecycle;
pub mod llm;
pub mod money;
pub mod policy;
pub mod provider_env;
pub mod quota;
pub mod redact;
pub mod retry;
pub mod search;
pub mod shard;
pub mod task;
pub mod worker;

pub use accounting::{Hold, Meter, MeteredCall, Settled, Unsettled};
pub use archive::{ArchiveQuery, ArchiveResponse, ResponseError, ResponseStatus};
pub use bus::{
    ArchiveDesk, Bus, BusLimits, Channels, Counters, FeedEntry, FeedEntryId, FindingFeed,
    FindingStore, HaltSwitch, Journal, QuotaLedger, Stored, Subscription, TaskQueue,
    WorkerRegistry,
};
pub use clock::{Clock, ManualClock, OffsetClock, SharedClock, SystemClock};
pub use error::{Error, Result, Retry};
pub use finding::{
    Finding, FindingFilter, FindingOrigin, Listing, RawValue, Unreadable, UnreadableReason,
};
pub use halt::HaltReport;
pub use keys::{
    Channel, CounterName, FindingId, GroupName, JournalName, Key, KeySpace, Namespace, QueryId,
    SessionId, ShardId, TaskId, TierName, WorkerId,
};
pub use lifecycle::{FindingHistory, FindingLifecycle, FindingVersion, Removal, Tombstone};
pub use llm::{
    CacheTtl, Completion, CompletionRequest, ContentBlock, LanguageModel, Message, ModelAction,
    ModelCatalog, ModelError, ModelErrorKind, ModelLifecycle, Role, StopReason, ToolChoice,
    ToolSpec, Usage,
};
pub use money::{Money, ParseMoneyError, Rate};
pub use policy::{Efficiency, Percent, Tier};
pub use quota::{Acquire, Denial, QuotaLimits};
pub use retry::{Backoff, RetryBudget, RetryPolicy};
pub use search::{FindingIndex, IndexReport, MatchMode, SearchHit, SearchPage, SearchQuery};
pub use shard::{ShardState, ShardStatus};
pub use task::{ClaimedTask, ReclaimReport, Task, TaskFailure, TaskReceipt};
pub use worker::{Heartbeat, Progress};
