//! # swarmbus-anthropic
//!
//! Claude for agent swarms: a Messages API client that streams, calls
//! tools, caches prompts, counts usage in the buckets the price table bills,
//! honours the rate-limit headers before the next call, and says what to do
//! about every failure.
//!
//! # Layout
//!
//! - [`wire`]: the API's JSON (requests, content blocks, tools, usage), open
//!   where the API may grow ([`StopReason::Other`], [`ContentBlock::Other`]);
//!   `stop_reason` decodes straight into core's [`StopReason`].
//! - [`sse`]: the SSE parser and the stream accumulator.
//! - [`client`]: [`AnthropicClient`]: header-only key, `anthropic-version`
//!   [`API_VERSION`], timeouts, body cap, rate-limit waits, retries with
//!   jitter, failover; `ANTHROPIC_API_KEY` / `ANTHROPIC_BASE_URL` read
//!   through core's `provider_env`; retired models refused before sending
//!   and deprecated ones warned about, by core's one lifecycle check
//!   (`LifecycleVerdict` over a `ModelCatalog`).
//! - [`error`]: [`Error`], classified in core's vocabulary (`ModelErrorKind`,
//!   `ModelAction`: no kinds or actions of its own); the table;
//!   [`Error::into_model_error`] keeps the error as the `ModelError`'s source.
//! - [`model`]: core's `LanguageModel` for the client; request, answer and
//!   error mapping.
//! - [`span`]: the OpenTelemetry GenAI span of every call.
//!
//! # Errors say what to do
//!
//! ```
//! use chrono::{DateTime, Utc};
//! use reqwest::header::HeaderMap;
//! use swarmbus_anthropic::error::Redactor;
//! use swarmbus_anthropic::Error;
//! use swarmbus_core::{ModelAction, ModelErrorKind};
//!
//! // A spend limit: stop until the date the message names.
//! let body = br#"{"type":"error","error":{"type":"rate_limit_error",
//!   "message":"You will regain access on 2026-12-01 at 00:00 UTC.",
//!   "details":{"error_code":"enforced_spend_limit_reached"}}}"#;
//! let now: DateTime<Utc> = "2026-11-29T12:00:00Z".parse().unwrap();
//! let e = Error::from_http(429, &HeaderMap::new(), body, "claude-haiku-5-5", now, &Redactor::none());
//! assert_eq!(e.kind(), ModelErrorKind::SpendLimit);
//! assert_eq!(e.action(), ModelAction::Stop { until: Some("2026-12-01T00:00:00Z".parse().unwrap()) });
//! ```
//!
//! # A call
//!
//! ```no_run
//! # async fn demo() -> swarmbus_anthropic::Result<()> {
//! use swarmbus_anthropic::{AnthropicClient, MessagesRequest};
//!
//! let client = AnthropicClient::from_env()?; // ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL
//! let request = MessagesRequest::new("claude-haiku-5-5", 1024, "Name three primes.")
//!     .system("Answer in one line.");
//! let answer = client.send(&request, false).await?;
//! println!("{} [{}; {} output tokens]", answer.text(), answer.stop(), answer.usage().output_tokens);
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod client;
pub mod error;
pub mod model;
pub mod span;
pub mod sse;
pub mod wire;

pub use client::{API_VERSION, AnthropicClient, ClientConfig, MessageStream};
pub use error::{Error, RateLimitHeaders, Result};
pub use sse::{SseEvent, SseParser, StreamAccumulator, StreamUpdate};
pub use wire::{
    CacheControl, CacheTtl, ContentBlock, Effort, MessageParam, MessagesRequest, MessagesResponse,
    Role, StopReason, Thinking, Tool, ToolChoice,
};
