//! # swarmbus-claude-code
//!
//! What Claude Code (2.1.x) writes about its model calls, read into one
//! shape, [`CallUsage`]: the model, the session, the subagent (agent id and
//! type) that made the call, its request and message ids, and the tokens per
//! bucket of core's [`Usage`] (cache writes of 5 minutes and 1 hour kept
//! apart). Prices are not this crate's business: the CLI composes it with
//! `swarmbus-cost`.
//!
//! # Layout
//!
//! - [`call`]: [`CallUsage`], one model call, its [`Source`] and its
//!   [`CallUsage::dedup_key`] (request id, else message id), shared by every
//!   source so the same call read twice is recognised.
//! - [`transcript`]: the JSONL session transcripts
//!   (`~/.claude/projects/<cwd>/<session>.jsonl` and
//!   `<session>/subagents/agent-<id>.jsonl`). Claude Code writes one entry
//!   per content block, each repeating the whole usage: [`transcript::parse`]
//!   keeps one call per message.
//! - [`hooks`]: [`HookPayload`], the JSON a hook command reads on stdin.
//! - [`otlp`]: OTLP/HTTP JSON log exports; [`otlp::api_requests`] reads the
//!   `api_request` events (one per call).
//! - [`error`]: [`Error`], what could not be read.
//!
//! Every reader takes hostile input: a line or record that does not parse is
//! skipped and reported, never a panic.

pub mod call;
pub mod error;
pub mod hooks;
pub mod otlp;
pub mod transcript;

pub use call::{CallUsage, Source};
pub use error::Error;
pub use hooks::HookPayload;
pub use swarmbus_core::llm::Usage;
pub use transcript::Transcript;
