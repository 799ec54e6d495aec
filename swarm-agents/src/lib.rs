//! # swarmbus-agents
//!
//! The swarm's runtime, given its bus, model and accountant as trait objects
//! from `swarmbus-core`: workers that run tasks (local handlers or a
//! tool-use loop on any `LanguageModel`), a coordinator that routes, plans,
//! dispatches and synthesises, the librarian that answers questions from the
//! findings with checked citations (a library call or a daemon on the bus),
//! the delegation policy, context safety and the halt protocol.
//!
//! # Layout
//!
//! - [`run`]: one goal end to end ([`run::GoalRun`]): plan, route, dispatch, wait, synthesise.
//! - [`runtime`]: [`Worker`] (heartbeat, claim, handle, finding, ack; a
//!   failed task is stopped and reported), [`Coordinator`] (route, dispatch,
//!   gather) and [`Job`] (the halt protocol for multi-step jobs).
//! - [`plan`]: the coordinator's plan, checked against its JSON Schema (never guessed).
//! - [`context_pack`]: the findings a task depends on, packed into a token budget.
//! - [`local`]: [`local::LocalWork`], real work on files without a model (the offline worker).
//! - [`agent`]: [`agent::AgentWorker`], the tool-use loop on any `LanguageModel`, with its limits.
//! - [`coordinator`]: planning and synthesis on the coordinator model.
//! - [`scripted`]: [`scripted::ScriptedModel`], a local model for offline runs and tests.
//! - [`policy`]: the delegation policy (IF.OPTIMISE) and its statistics.
//! - [`status`]: [`status::SwarmStatus`], a snapshot of the swarm read from any bus, and the
//!   brief's `📊 SWARM STATUS` block (or JSON) rendered from it.
//! - [`context`]: context safety: the finding-count guard and lossless compaction.
//! - [`synthesis`]: the one citation check (ids against the findings given) and the one
//!   extractive offline answer, with its BM25 relevance; used by the coordinator and the librarian.
//! - [`librarian`]: [`Librarian`], archive Q&A with checked citations over any core
//!   `LanguageModel` (or the extractive provider); [`LibrarianDaemon`] answering
//!   `query:archive:<uuid>` on the bus; [`LibrarianError`]; asking through the bus and
//!   waiting for the answer ([`librarian::ask::ask`], [`AskError`]).
//! - [`tools`]: built-in tools confined to a workspace (files, search, git, commands, bus,
//!   the scratch copy of a write task and its diff).
//! - [`sandbox`]: the kernel sandbox of every command a tool starts (namespaces, Landlock,
//!   seccomp, rlimits) and its launcher ([`sandbox::launcher_hook`]).
//! - [`error`]: [`AgentError`], the crate's one error type.
//!
//! # Example
//!
//! ```
//! use swarmbus_agents::policy::{DelegationPolicy, KeywordPolicy};
//! use swarmbus_core::Tier;
//!
//! let routing = KeywordPolicy::default().route("grep the sources for KEYS");
//! assert_eq!(routing.tier, Tier::Worker);
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod agent;
pub mod context;
pub mod context_pack;
pub mod coordinator;
pub mod error;
pub mod librarian;
pub mod local;
pub mod plan;
pub mod policy;
pub mod run;
pub mod runtime;
pub mod sandbox;
pub mod scripted;
pub mod status;
pub mod synthesis;
pub mod tools;

pub use error::{AgentError, Result};
pub use librarian::{
    AnswerSource, AskError, DaemonStats, Librarian, LibrarianAnswer, LibrarianConfig,
    LibrarianDaemon, LibrarianError, LibrarianErrorKind,
};
pub use policy::{DelegationPolicy, DelegationStats, KeywordPolicy, Reason, Routing};
pub use runtime::{
    Coordinator, Gathered, Job, Routed, TaskHandler, TaskOutput, Worker, WorkerConfig,
    WorkerReport, task_finding_id,
};
