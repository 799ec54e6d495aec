//! # swarmbus-gemini
//!
//! Gemini for agent swarms: a client that says what to do about every
//! failure, a pool of keys (shards) with quota-aware failover through a
//! shared ledger, and an OpenAI-compatible fallback (DeepSeek). The
//! librarian that answers from the swarm's findings lives in
//! `swarmbus-agents` and takes the pool as any core `LanguageModel`.
//!
//! # Layout
//!
//! - [`wire`]: the API's JSON (`generateContent`, `streamGenerateContent`, `countTokens`), open enums.
//! - [`decode`]: the unary and SSE decoders, the stream accumulator, [`Generation`].
//! - [`convert`]: core's `CompletionRequest`/`Completion` ↔ Gemini (messages, tools, thinking, JSON).
//! - [`client`]: [`GeminiClient`], one key over reqwest (header-only key, timeouts, body cap), a
//!   core `LanguageModel` (env, lifecycle check: core's); every call a GenAI span (`gcp.gemini`).
//! - [`error`]: [`Error`], its [`Action`] and [`ErrorKind`]; the classification table.
//! - [`pool`]: [`ShardPool`], shards from `GEMINI_API_KEY_SHARD<N>`, failover over a `QuotaLedger`,
//!   then any core `LanguageModel` as the fallback; itself a core `LanguageModel`.
//! - [`fallback`]: [`OpenAiCompatible`], the chat-completions fallback (DeepSeek), a core
//!   `LanguageModel`; every call a GenAI `tracing` span (`deepseek`).
//! - [`probe`]: the shard test protocol, [`ShardTestReport`] (80 % rule).
//!
//! # Errors say what to do
//!
//! ```
//! use chrono::{DateTime, Utc};
//! use swarmbus_gemini::{Action, Error, ErrorKind};
//!
//! // A per-day 429: exhausted until the next midnight in Los Angeles, not
//! // for the 22 s its RetryInfo says.
//! let body = br#"{"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "quota",
//!   "details": [
//!     {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [
//!       {"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier", "quotaValue": "250"}]},
//!     {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "22s"}]}}"#;
//! let now: DateTime<Utc> = "2026-01-15T20:00:00Z".parse().unwrap();
//! let e = Error::from_http(429, body, now);
//! assert_eq!(e.kind(), ErrorKind::QuotaExhausted);
//! assert_eq!(e.quota_value(), Some(250));
//! assert_eq!(e.action(), Action::ExhaustUntil("2026-01-16T08:00:00Z".parse().unwrap()));
//! ```
//!
//! # A pool of shards
//!
//! ```no_run
//! # async fn demo() -> swarmbus_gemini::Result<()> {
//! use std::sync::Arc;
//! use swarmbus_memory::MemoryBus;
//! use swarmbus_core::quota::QuotaLimits;
//! use swarmbus_gemini::pool::shards_from_env;
//! use swarmbus_gemini::wire::GenerateContentRequest;
//! use swarmbus_gemini::{PoolConfig, ShardPool};
//!
//! let shards = shards_from_env(QuotaLimits::free_tier())?; // GEMINI_API_KEY_SHARD1..N
//! let pool = ShardPool::new(shards, Arc::new(MemoryBus::new()), PoolConfig::default())?;
//! let answer = pool.generate(&GenerateContentRequest::user("Hello")).await?;
//! println!("{} (served by {})", answer.completion.text(), answer.served_by);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod client;
pub mod convert;
pub mod decode;
pub mod error;
pub mod fallback;
pub mod pool;
pub mod probe;
pub mod wire;

pub use client::{ClientConfig, DEFAULT_MODEL, GeminiClient, PROVIDER_NAME};
pub use decode::Generation;
pub use error::{Action, Error, ErrorKind, Result};
pub use fallback::{FallbackConfig, OpenAiCompatible};
pub use pool::{PoolAnswer, PoolConfig, ServedBy, ShardConfig, ShardPool};
pub use probe::{ShardProbe, ShardTestReport};
pub use swarmbus_core::clock::{Clock, ManualClock, SystemClock};
