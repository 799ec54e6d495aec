//! The provider-neutral language-model interface: [`LanguageModel`],
//! [`CompletionRequest`], [`Completion`] and [`Usage`].
//!
//! Providers (`swarmbus-gemini`, an OpenAI-compatible client, a test double)
//! implement [`LanguageModel`]; `swarmbus-cost` prices a [`Usage`].

use std::ops::{Add, AddAssign};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Tokens of one or more calls, in the buckets providers bill separately.
///
/// `input_tokens` is fresh (uncached) input only; `output_tokens` includes
/// thinking tokens, which every provider bills as output; `thinking_tokens`
/// says how many of them were thinking. Usage is a value you sum.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Usage {
    /// Fresh input tokens, excluding cache reads and writes.
    pub input_tokens: u64,
    /// Input tokens read from a cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to a 5-minute cache.
    pub cache_write_5m_tokens: u64,
    /// Input tokens written to a 1-hour cache.
    pub cache_write_1h_tokens: u64,
    /// Output tokens, thinking included.
    pub output_tokens: u64,
    /// How many of `output_tokens` were thinking.
    pub thinking_tokens: u64,
}

impl Usage {
    /// Fresh input and output only.
    pub const fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Self {
            input_tokens,
            cache_read_tokens: 0,
            cache_write_5m_tokens: 0,
            cache_write_1h_tokens: 0,
            output_tokens,
            thinking_tokens: 0,
        }
    }

    /// Sets cache reads.
    pub const fn with_cache_read(mut self, tokens: u64) -> Self {
        self.cache_read_tokens = tokens;
        self
    }

    /// Sets cache writes (5 minutes, 1 hour).
    pub const fn with_cache_write(mut self, five_minutes: u64, one_hour: u64) -> Self {
        self.cache_write_5m_tokens = five_minutes;
        self.cache_write_1h_tokens = one_hour;
        self
    }

    /// Sets how many output tokens were thinking (they stay counted in
    /// `output_tokens`).
    pub const fn with_thinking(mut self, tokens: u64) -> Self {
        self.thinking_tokens = tokens;
        self
    }

    /// Every input token: fresh, cache reads and cache writes.
    pub const fn prompt_tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_5m_tokens)
            .saturating_add(self.cache_write_1h_tokens)
    }

    /// Input plus output.
    pub const fn total_tokens(&self) -> u64 {
        self.prompt_tokens().saturating_add(self.output_tokens)
    }
}

impl Add for Usage {
    type Output = Usage;
    fn add(mut self, rhs: Usage) -> Usage {
        self += rhs;
        self
    }
}

impl AddAssign for Usage {
    fn add_assign(&mut self, rhs: Usage) {
        self.input_tokens = self.input_tokens.saturating_add(rhs.input_tokens);
        self.cache_read_tokens = self.cache_read_tokens.saturating_add(rhs.cache_read_tokens);
        self.cache_write_5m_tokens = self
            .cache_write_5m_tokens
            .saturating_add(rhs.cache_write_5m_tokens);
        self.cache_write_1h_tokens = self
            .cache_write_1h_tokens
            .saturating_add(rhs.cache_write_1h_tokens);
        self.output_tokens = self.output_tokens.saturating_add(rhs.output_tokens);
        self.thinking_tokens = self.thinking_tokens.saturating_add(rhs.thinking_tokens);
    }
}

impl std::iter::Sum for Usage {
    fn sum<I: Iterator<Item = Usage>>(iter: I) -> Usage {
        iter.fold(Usage::default(), Add::add)
    }
}

/// A request to a language model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CompletionRequest {
    /// System instruction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The user prompt.
    pub prompt: String,
    /// Ask for JSON matching this JSON Schema (JSON mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<serde_json::Value>,
    /// Cap on output tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
}

impl CompletionRequest {
    /// A plain prompt.
    pub fn new(prompt: impl Into<String>) -> Self {
        Self {
            prompt: prompt.into(),
            ..Self::default()
        }
    }

    /// Sets the system instruction.
    pub fn system(mut self, system: impl Into<String>) -> Self {
        self.system = Some(system.into());
        self
    }

    /// Asks for JSON matching `schema`.
    pub fn json(mut self, schema: serde_json::Value) -> Self {
        self.json_schema = Some(schema);
        self
    }

    /// Caps output tokens.
    pub fn max_output_tokens(mut self, n: u32) -> Self {
        self.max_output_tokens = Some(n);
        self
    }
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Completion {
    /// The answer text (thoughts excluded).
    pub text: String,
    /// The model that answered (its reported version when it gives one).
    pub model: String,
    /// Tokens used.
    pub usage: Usage,
    /// Why generation stopped, as the provider says it (`STOP`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Which provider, shard or key answered (never the key itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
}

impl Completion {
    /// An answer.
    pub fn new(text: impl Into<String>, model: impl Into<String>, usage: Usage) -> Self {
        Self {
            text: text.into(),
            model: model.into(),
            usage,
            finish_reason: None,
            served_by: None,
        }
    }

    /// Sets the finish reason.
    pub fn finish_reason(mut self, reason: impl Into<String>) -> Self {
        self.finish_reason = Some(reason.into());
        self
    }

    /// Sets who served it.
    pub fn served_by(mut self, who: impl Into<String>) -> Self {
        self.served_by = Some(who.into());
        self
    }
}

/// A language model, in the spirit of `tower::Service`: one request in, one
/// completion out. Failures are [`crate::Error::Model`] (or a provider's own
/// richer error converted into it) and say whether to retry.
#[async_trait]
pub trait LanguageModel: Send + Sync {
    /// The model id requests go to.
    fn model_id(&self) -> &str;

    /// Runs one request.
    async fn complete(&self, request: CompletionRequest) -> Result<Completion>;
}

#[async_trait]
impl<M: LanguageModel + ?Sized> LanguageModel for Arc<M> {
    fn model_id(&self) -> &str {
        (**self).model_id()
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion> {
        (**self).complete(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_sums_bucket_by_bucket() {
        let a = Usage::new(10, 5).with_cache_read(100).with_thinking(2);
        let b = Usage::new(1, 1).with_cache_write(3, 4);
        let s = a + b;
        assert_eq!(s.input_tokens, 11);
        assert_eq!(s.cache_read_tokens, 100);
        assert_eq!(s.cache_write_5m_tokens, 3);
        assert_eq!(s.cache_write_1h_tokens, 4);
        assert_eq!(s.output_tokens, 6);
        assert_eq!(s.thinking_tokens, 2);
        assert_eq!(s.prompt_tokens(), 118);
        assert_eq!([a, b].into_iter().sum::<Usage>(), s);
    }
}
