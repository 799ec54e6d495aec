//! One `tracing` span per model call, opened with core's
//! [`swarmbus_core::llm::gen_ai_span`] and filled by core's one recorder
//! ([`record_answer`], [`record_error_kind`]), so named and attributed after the
//! OpenTelemetry GenAI semantic conventions; `tracing-opentelemetry` exports
//! it as a GenAI client span (see `docs/anthropic.md`).
//!
//! | attribute | value |
//! |---|---|
//! | `otel.name` | `chat {model}` |
//! | `gen_ai.operation.name` | `chat` |
//! | `gen_ai.provider.name` | `anthropic` |
//! | `gen_ai.request.model`, `gen_ai.request.max_tokens` | from the request |
//! | `gen_ai.response.model`, `gen_ai.response.id` | from the answer |
//! | `gen_ai.response.finish_reasons` | the stop reason (`end_turn`) |
//! | `gen_ai.usage.input_tokens` | every input token: fresh, cache reads and writes (the conventions include cache tokens here) |
//! | `gen_ai.usage.output_tokens` | output, thinking included |
//! | `gen_ai.usage.cache_read.input_tokens` | cache reads |
//! | `gen_ai.usage.cache_creation.input_tokens` | cache writes (both lifetimes) |
//! | `swarm.served_by` | the model that served (a fallback when it differs) |
//! | `error.type` | the error kind (`overloaded`) |
//!
//! `swarm.cost.usd` is left to whoever prices the call. No prompt or answer
//! text is recorded (it may be private).

use swarmbus_core::llm::{gen_ai_span, record_answer, record_error_kind};

use crate::error::{Error, Result};
use crate::wire::{MessagesRequest, MessagesResponse};

/// The `gen_ai.provider.name` of this client.
pub const PROVIDER_NAME: &str = "anthropic";

/// A model call's span, open until [`CallSpan::finish`].
#[derive(Debug)]
pub(crate) struct CallSpan {
    span: tracing::Span,
}

impl CallSpan {
    pub(crate) fn start(request: &MessagesRequest) -> Self {
        let span = gen_ai_span(PROVIDER_NAME, "chat", &request.model);
        span.record("gen_ai.request.max_tokens", request.max_tokens);
        Self { span }
    }

    pub(crate) fn span(&self) -> &tracing::Span {
        &self.span
    }

    pub(crate) fn finish(self, result: &Result<MessagesResponse>) {
        match result {
            Ok(r) => self.done(r),
            Err(e) => self.fail(e),
        }
    }

    pub(crate) fn fail(self, e: &Error) {
        let s = &self.span;
        record_error_kind(s, e.kind());
        let _g = s.enter();
        tracing::debug!(error = %e, "model call failed");
    }

    fn done(self, r: &MessagesResponse) {
        let s = &self.span;
        record_answer(
            s,
            &r.model,
            r.stop().as_str(),
            &r.usage(),
            Some(r.model.as_str()),
        );
        s.record("gen_ai.response.id", r.id.as_str());
        let _g = s.enter();
        tracing::debug!("model call done");
    }
}
