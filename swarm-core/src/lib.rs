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
pub mod error;
pub mod keys;
pub mod llm;
pub mod model;
pub mod quota;
