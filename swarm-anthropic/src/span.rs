//! One `tracing` span per model call, named and attributed after the
//! OpenTelemetry GenAI semantic conventions, so `tracing-opentelemetry`
//! exports it as a GenAI client span (see `docs/anthropic.md`).
//!
//! | attribute | value |
//! |---|---|
//! | `otel.name` | `chat {model}` (the span name the conventions ask for) |
//! | `otel.kind` | `client` |
//! | `gen_ai.operation.name` | `chat` |
//! | `gen_ai.provider.name` | `anthropic` |
//! | `gen_ai.request.model`, `gen_ai.request.max_tokens` | from the request |
//! | `gen_ai.response.model`, `gen_ai.response.id` | from the answer |
//! | `gen_ai.response.finish_reasons` | `["end_turn"]` (a JSON array as text) |
//! | `gen_ai.usage.input_tokens` | every input token: fresh, cache reads and writes (the conventions include cache tokens here) |
//! | `gen_ai.usage.output_tokens` | output, thinking included |
//! | `gen_ai.usage.cache_read.input_tokens` | cache reads |
//! | `gen_ai.usage.cache_creation.input_tokens` | cache writes (both lifetimes) |
//! | `swarm.usage.cache_write_5m_tokens`, `swarm.usage.cache_write_1h_tokens` | the split the price table needs |
//! | `error.type` | the error kind (`overloaded`) |
//! | `otel.status_code` | `ERROR` on failure |
//!
//! No prompt or answer text is recorded (it may be private).

use tracing::field::Empty;

use crate::error::Result;
use crate::wire::{MessagesRequest, MessagesResponse};

/// The `gen_ai.provider.name` of this client.
pub const PROVIDER_NAME: &str = "anthropic";

/// A model call's span, open until [`CallSpan::finish`].
#[derive(Debug)]
pub(crate) struct CallSpan {
    span: tracing::Span,
}

impl CallSpan {
    pub(crate) fn start(request: &MessagesRequest, stream: bool) -> Self {
        let span = tracing::info_span!(
            "chat",
            "otel.name" = %format!("chat {}", request.model),
            "otel.kind" = "client",
            "otel.status_code" = Empty,
            "gen_ai.operation.name" = "chat",
            "gen_ai.provider.name" = PROVIDER_NAME,
            "gen_ai.request.model" = %request.model,
            "gen_ai.request.max_tokens" = request.max_tokens,
            "gen_ai.request.stream" = stream,
            "gen_ai.response.model" = Empty,
            "gen_ai.response.id" = Empty,
            "gen_ai.response.finish_reasons" = Empty,
            "gen_ai.usage.input_tokens" = Empty,
            "gen_ai.usage.output_tokens" = Empty,
            "gen_ai.usage.cache_read.input_tokens" = Empty,
            "gen_ai.usage.cache_creation.input_tokens" = Empty,
            "swarm.usage.cache_write_5m_tokens" = Empty,
            "swarm.usage.cache_write_1h_tokens" = Empty,
            "error.type" = Empty,
        );
        Self { span }
    }

    pub(crate) fn finish(self, result: &Result<MessagesResponse>) {
        let s = &self.span;
        match result {
            Ok(r) => {
                let u = r.usage();
                s.record("gen_ai.response.model", r.model.as_str());
                s.record("gen_ai.response.id", r.id.as_str());
                s.record(
                    "gen_ai.response.finish_reasons",
                    format!("[\"{}\"]", r.stop().as_str()).as_str(),
                );
                s.record("gen_ai.usage.input_tokens", u.prompt_tokens());
                s.record("gen_ai.usage.output_tokens", u.output_tokens);
                s.record("gen_ai.usage.cache_read.input_tokens", u.cache_read_tokens);
                s.record(
                    "gen_ai.usage.cache_creation.input_tokens",
                    u.cache_write_5m_tokens
                        .saturating_add(u.cache_write_1h_tokens),
                );
                s.record("swarm.usage.cache_write_5m_tokens", u.cache_write_5m_tokens);
                s.record("swarm.usage.cache_write_1h_tokens", u.cache_write_1h_tokens);
                let _g = s.enter();
                tracing::debug!("model call done");
            }
            Err(e) => {
                s.record("error.type", e.kind().as_str());
                s.record("otel.status_code", "ERROR");
                let _g = s.enter();
                tracing::debug!(error = %e, "model call failed");
            }
        }
    }
}
