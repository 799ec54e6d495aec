//! The provider-neutral language-model interface: [`LanguageModel`],
//! [`CompletionRequest`], [`Completion`], [`Usage`] and [`ModelError`].
//!
//! Every provider (`swarmbus-anthropic`, `swarmbus-gemini`'s client, shard
//! pool and OpenAI-compatible fallback, a scripted test model) implements
//! [`LanguageModel`]; an agent loop written against it runs on any of them.
//! A request carries what an agent needs: a system prompt, a conversation of
//! [`Message`]s whose [`ContentBlock`]s include tool calls and their results,
//! tool definitions, a token cap, an optional JSON-schema answer format and
//! prompt-cache breakpoints. A failure is a [`ModelError`] whose
//! [`ModelAction`] (retry, wait, rotate, disable, fail, stop) survives every
//! layer: core's [`crate::Error::Model`] carries it whole.
//!
//! Also here: [`ModelCatalog`] (which models are deprecated or retired, and
//! their replacements: `swarmbus-cost`'s price table is one), the one
//! lifecycle check every provider makes ([`LifecycleVerdict`],
//! [`check_lifecycle`]), and
//! [`gen_ai_span`], the `tracing` span every provider opens per call, named
//! and attributed after the OpenTelemetry GenAI semantic conventions.

use std::fmt;
use std::ops::{Add, AddAssign};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
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
    /// Requests the provider made to its own server-side tools (web search,
    /// web fetch, code execution …), billed per request by some providers.
    #[serde(default)]
    pub server_tool_requests: u64,
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
            server_tool_requests: 0,
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

    /// Sets the count of server-side tool requests.
    pub const fn with_server_tool_requests(mut self, requests: u64) -> Self {
        self.server_tool_requests = requests;
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
        self.server_tool_requests = self
            .server_tool_requests
            .saturating_add(rhs.server_tool_requests);
    }
}

impl std::iter::Sum for Usage {
    fn sum<I: Iterator<Item = Usage>>(iter: I) -> Usage {
        iter.fold(Usage::default(), Add::add)
    }
}

// ---------------------------------------------------------------------------
// Requests

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The caller: prompts and tool results.
    User,
    /// The model: text, thinking and tool calls.
    Assistant,
}

/// How long a prompt-cache entry lives (Anthropic's `cache_control.ttl`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CacheTtl {
    /// Five minutes, refreshed on every hit (the default, cheaper to write).
    #[default]
    #[serde(rename = "5m")]
    FiveMinutes,
    /// One hour.
    #[serde(rename = "1h")]
    OneHour,
}

impl CacheTtl {
    /// The wire value (`5m`, `1h`).
    pub const fn as_str(self) -> &'static str {
        match self {
            CacheTtl::FiveMinutes => "5m",
            CacheTtl::OneHour => "1h",
        }
    }
}

/// One block of a message's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContentBlock {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// The model's visible reasoning. Kept (with its signature) so it can be
    /// sent back in the next turn, never mixed into the answer text.
    Thinking {
        /// The reasoning text (may be a summary).
        thinking: String,
        /// The provider's signature over it, when it gives one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
    },
    /// Reasoning the provider returned encrypted.
    RedactedThinking {
        /// The opaque data, to send back unchanged.
        data: String,
    },
    /// The model asks to call a tool.
    ToolUse {
        /// The call's id, echoed by its result.
        id: String,
        /// The tool's name.
        name: String,
        /// The arguments, as the model wrote them (not yet validated).
        input: serde_json::Value,
    },
    /// The result of a tool call, sent back by the caller.
    ToolResult {
        /// The id of the [`ContentBlock::ToolUse`] this answers.
        tool_use_id: String,
        /// The result text.
        content: String,
        /// True when the tool refused or failed: the model sees an error.
        #[serde(default)]
        is_error: bool,
    },
    /// A block this interface does not model (a provider's server-tool
    /// call or result, a citation block …), kept as the provider sent it.
    Other {
        /// The provider's block type (`server_tool_use`, …).
        kind: String,
        /// The block as received.
        raw: serde_json::Value,
    },
}

impl ContentBlock {
    /// A text block.
    pub fn text(text: impl Into<String>) -> Self {
        ContentBlock::Text { text: text.into() }
    }

    /// A successful tool result.
    pub fn tool_result(tool_use_id: impl Into<String>, content: impl Into<String>) -> Self {
        ContentBlock::ToolResult {
            tool_use_id: tool_use_id.into(),
            content: content.into(),
            is_error: false,
        }
    }

    /// A tool result the model sees as an error.
    pub fn tool_error(tool_use_id: impl Into<String>, content: impl Into<String>) -> Self {
        ContentBlock::ToolResult {
            tool_use_id: tool_use_id.into(),
            content: content.into(),
            is_error: true,
        }
    }
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its blocks, in order.
    pub content: Vec<ContentBlock>,
    /// A prompt-cache breakpoint after this message: everything up to and
    /// including it is cached for this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheTtl>,
}

impl Message {
    /// A user message of one text block.
    pub fn user(text: impl Into<String>) -> Self {
        Self::new(Role::User, vec![ContentBlock::text(text)])
    }

    /// An assistant message of one text block.
    pub fn assistant(text: impl Into<String>) -> Self {
        Self::new(Role::Assistant, vec![ContentBlock::text(text)])
    }

    /// A message of any blocks.
    pub fn new(role: Role, content: Vec<ContentBlock>) -> Self {
        Self {
            role,
            content,
            cache: None,
        }
    }

    /// Marks a cache breakpoint after this message.
    pub fn cached(mut self, ttl: CacheTtl) -> Self {
        self.cache = Some(ttl);
        self
    }

    /// The text blocks joined with blank lines.
    pub fn text(&self) -> String {
        join_text(&self.content)
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolSpec {
    /// The name the model calls it by.
    pub name: String,
    /// What it does and when to use it: the model reads this.
    pub description: String,
    /// A JSON Schema (type `object`) for its arguments.
    pub input_schema: serde_json::Value,
}

impl ToolSpec {
    /// A tool.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        input_schema: serde_json::Value,
    ) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            input_schema,
        }
    }
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ToolChoice {
    /// The model decides (the default).
    #[default]
    Auto,
    /// The model must call some tool.
    Any,
    /// The model must call this tool.
    Tool {
        /// The tool's name.
        name: String,
    },
    /// The model must not call a tool.
    None,
}

/// Extended thinking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Thinking {
    /// Thinking with a token budget (counted within `max_output_tokens`).
    Enabled {
        /// The most tokens thinking may use.
        budget_tokens: u32,
    },
    /// The model decides how much to think (models that support it).
    Adaptive,
    /// No thinking.
    Disabled,
}

/// How much effort the model spends (providers that take it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Effort {
    /// Fastest, cheapest.
    Low,
    /// Between.
    Medium,
    /// Most thorough (the provider default where effort exists).
    High,
    /// Beyond high, on models that support it.
    Max,
    /// A level this crate does not know, sent as written.
    #[serde(untagged)]
    Other(String),
}

impl Effort {
    /// The wire value.
    pub fn as_str(&self) -> &str {
        match self {
            Effort::Low => "low",
            Effort::Medium => "medium",
            Effort::High => "high",
            Effort::Max => "max",
            Effort::Other(s) => s,
        }
    }
}

/// A request to a language model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CompletionRequest {
    /// System instruction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// A prompt-cache breakpoint after the system instruction (which comes
    /// after the tools in the cached prefix).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_cache: Option<CacheTtl>,
    /// The conversation, oldest first; the last message is the user's.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// A prompt-cache breakpoint after the tool definitions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools_cache: Option<CacheTtl>,
    /// Whether and which tool must be called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Cap on output tokens (thinking included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// Ask for JSON matching this JSON Schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<serde_json::Value>,
    /// Sequences that end generation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    /// Extended thinking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking>,
    /// Effort level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<Effort>,
    /// Sampling temperature, for providers that still take one (Anthropic's
    /// API version 2026-10-21 removed it: that client leaves it out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
}

impl CompletionRequest {
    /// A plain prompt: one user message.
    pub fn new(prompt: impl Into<String>) -> Self {
        Self::from_messages(vec![Message::user(prompt)])
    }

    /// A conversation.
    pub fn from_messages(messages: Vec<Message>) -> Self {
        Self {
            messages,
            ..Self::default()
        }
    }

    /// Sets the system instruction.
    pub fn system(mut self, system: impl Into<String>) -> Self {
        self.system = Some(system.into());
        self
    }

    /// Marks a cache breakpoint after the system instruction.
    pub fn cache_system(mut self, ttl: CacheTtl) -> Self {
        self.system_cache = Some(ttl);
        self
    }

    /// Adds a message.
    pub fn message(mut self, message: Message) -> Self {
        self.messages.push(message);
        self
    }

    /// Sets the tools.
    pub fn tools(mut self, tools: Vec<ToolSpec>) -> Self {
        self.tools = tools;
        self
    }

    /// Marks a cache breakpoint after the tool definitions.
    pub fn cache_tools(mut self, ttl: CacheTtl) -> Self {
        self.tools_cache = Some(ttl);
        self
    }

    /// Sets the tool choice.
    pub fn tool_choice(mut self, choice: ToolChoice) -> Self {
        self.tool_choice = Some(choice);
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

    /// Sets stop sequences.
    pub fn stop_sequences(mut self, stops: Vec<String>) -> Self {
        self.stop_sequences = stops;
        self
    }

    /// Sets extended thinking.
    pub fn thinking(mut self, thinking: Thinking) -> Self {
        self.thinking = Some(thinking);
        self
    }

    /// Sets the effort level.
    pub fn effort(mut self, effort: Effort) -> Self {
        self.effort = Some(effort);
        self
    }

    /// Sets the sampling temperature (ignored by providers that removed it).
    pub fn temperature(mut self, t: f32) -> Self {
        self.temperature = Some(t);
        self
    }

    /// The text of every user message, joined: what a provider without
    /// conversation support (or an extractive stand-in) reads as the prompt.
    pub fn prompt_text(&self) -> String {
        let parts: Vec<String> = self
            .messages
            .iter()
            .filter(|m| m.role == Role::User)
            .map(Message::text)
            .filter(|t| !t.is_empty())
            .collect();
        parts.join("\n\n")
    }
}

// ---------------------------------------------------------------------------
// Completions

/// Why generation stopped, in one vocabulary for every provider. A value
/// this crate does not know is kept in [`StopReason::Other`], never an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StopReason {
    /// The model finished its turn (Gemini `STOP`).
    #[default]
    EndTurn,
    /// The output-token cap was reached (Gemini `MAX_TOKENS`): the answer
    /// may be cut or empty, and the call still succeeded.
    MaxTokens,
    /// A stop sequence was generated.
    StopSequence,
    /// The model wants tool results before it goes on.
    ToolUse,
    /// A long server-side turn was paused: send the conversation back to let
    /// it continue.
    PauseTurn,
    /// The model refused (details in [`Completion::stop_details`]).
    Refusal,
    /// The conversation filled the model's context window
    /// (Anthropic `model_context_window_exceeded`).
    #[serde(rename = "model_context_window_exceeded")]
    ContextWindowExceeded,
    /// A provider's content filter stopped it (Gemini `SAFETY`, …); the
    /// provider's reason is kept.
    ContentFilter(String),
    /// A reason this crate does not know, as the provider wrote it.
    #[serde(untagged)]
    Other(String),
}

impl StopReason {
    /// The reason in Anthropic's vocabulary (`end_turn`, `max_tokens`, …),
    /// or the provider's own word for the open variants.
    pub fn as_str(&self) -> &str {
        match self {
            StopReason::EndTurn => "end_turn",
            StopReason::MaxTokens => "max_tokens",
            StopReason::StopSequence => "stop_sequence",
            StopReason::ToolUse => "tool_use",
            StopReason::PauseTurn => "pause_turn",
            StopReason::Refusal => "refusal",
            StopReason::ContextWindowExceeded => "model_context_window_exceeded",
            StopReason::ContentFilter(s) | StopReason::Other(s) => s,
        }
    }

    /// Parses Anthropic's vocabulary; anything else is kept as
    /// [`StopReason::Other`].
    pub fn parse(s: &str) -> Self {
        match s {
            "end_turn" => StopReason::EndTurn,
            "max_tokens" => StopReason::MaxTokens,
            "stop_sequence" => StopReason::StopSequence,
            "tool_use" => StopReason::ToolUse,
            "pause_turn" => StopReason::PauseTurn,
            "refusal" => StopReason::Refusal,
            "model_context_window_exceeded" => StopReason::ContextWindowExceeded,
            other => StopReason::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a refusal said about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StopDetails {
    /// The category (`cyber`, `bio`, …) when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// The explanation when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Completion {
    /// The answer's blocks, in order: text, thinking, tool calls.
    pub content: Vec<ContentBlock>,
    /// The model that answered (its reported version when it gives one).
    pub model: String,
    /// Tokens used.
    pub usage: Usage,
    /// Why generation stopped.
    pub stop_reason: StopReason,
    /// Details of a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_details: Option<StopDetails>,
    /// Which provider, shard or key answered (never the key itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_by: Option<String>,
}

impl Completion {
    /// A text answer that ended its turn.
    pub fn new(text: impl Into<String>, model: impl Into<String>, usage: Usage) -> Self {
        Self::from_blocks(vec![ContentBlock::text(text)], model, usage)
    }

    /// An answer of any blocks that ended its turn.
    pub fn from_blocks(content: Vec<ContentBlock>, model: impl Into<String>, usage: Usage) -> Self {
        Self {
            content,
            model: model.into(),
            usage,
            stop_reason: StopReason::EndTurn,
            stop_details: None,
            served_by: None,
        }
    }

    /// Sets the stop reason.
    pub fn stop_reason(mut self, reason: StopReason) -> Self {
        self.stop_reason = reason;
        self
    }

    /// Sets the refusal details.
    pub fn stop_details(mut self, details: StopDetails) -> Self {
        self.stop_details = Some(details);
        self
    }

    /// Sets who served it.
    pub fn served_by(mut self, who: impl Into<String>) -> Self {
        self.served_by = Some(who.into());
        self
    }

    /// The text blocks joined (thinking excluded).
    pub fn text(&self) -> String {
        join_text(&self.content)
    }

    /// The thinking blocks joined.
    pub fn thinking(&self) -> String {
        let parts: Vec<&str> = self
            .content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::Thinking { thinking, .. } => Some(thinking.as_str()),
                _ => None,
            })
            .collect();
        parts.join("\n\n")
    }

    /// The tool calls, in order: `(id, name, input)`.
    pub fn tool_calls(&self) -> Vec<ToolCall<'_>> {
        self.content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::ToolUse { id, name, input } => Some(ToolCall { id, name, input }),
                _ => None,
            })
            .collect()
    }

    /// The answer as the assistant message to append to the conversation.
    pub fn to_message(&self) -> Message {
        Message::new(Role::Assistant, self.content.clone())
    }
}

/// A tool call borrowed from a [`Completion`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ToolCall<'a> {
    /// The call's id.
    pub id: &'a str,
    /// The tool's name.
    pub name: &'a str,
    /// The arguments.
    pub input: &'a serde_json::Value,
}

fn join_text(blocks: &[ContentBlock]) -> String {
    let mut out = String::new();
    for block in blocks {
        if let ContentBlock::Text { text } = block {
            out.push_str(text);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// Errors

/// What a caller should do about a [`ModelError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ModelAction {
    /// A transient fault: retry with backoff and jitter; after a few tries,
    /// fail over where a fallback is configured.
    Retry,
    /// Wait at least this long, then retry with the same key.
    RetryAfter {
        /// The wait.
        #[serde(with = "duration_secs")]
        after: Duration,
    },
    /// This key or shard cannot serve the call now: try another at once.
    Rotate,
    /// This key's quota is gone until then: use another, or wait.
    WaitUntil {
        /// When it comes back.
        until: DateTime<Utc>,
    },
    /// The key is unusable (invalid, unpaid): never use it again until a
    /// person fixes it.
    Disable,
    /// The request itself is wrong (or refused): retrying cannot help.
    Fail,
    /// Stop all work on this provider (a spend limit): nothing may be
    /// retried before `until`, when known.
    Stop {
        /// The earliest time a retry may help.
        until: Option<DateTime<Utc>>,
    },
}

mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Ok(Duration::try_from_secs_f64(secs).unwrap_or(Duration::ZERO))
    }
}

/// A stable, machine-readable kind of model failure (the CLI's
/// `error.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ModelErrorKind {
    /// The request is malformed or asks for something the model does not
    /// support (HTTP 400).
    InvalidRequest,
    /// The key is missing or invalid (401).
    Unauthenticated,
    /// The account cannot pay (402).
    Billing,
    /// The key may not use this resource (403).
    PermissionDenied,
    /// The model (or resource) does not exist (404).
    NotFound,
    /// The request is over the provider's size limit (413).
    RequestTooLarge,
    /// A rate limit was hit (429): wait for the retry delay.
    RateLimited,
    /// A spend limit was reached: stop until it resets.
    SpendLimit,
    /// A per-day quota is used up (Gemini's per-day 429).
    QuotaExhausted,
    /// The provider failed (500 and other 5xx).
    ServerError,
    /// The provider is overloaded (529, 503).
    Overloaded,
    /// The model refused to answer.
    Refused,
    /// A safety filter blocked the prompt or the answer.
    Blocked,
    /// The response could not be understood: never guessed at.
    MalformedResponse,
    /// The answer is empty because the token cap cut it (a caller that needs
    /// text treats this as a failure; the call itself succeeded).
    Truncated,
    /// The call timed out.
    Timeout,
    /// The connection failed.
    Connection,
    /// The model is retired (refused before sending).
    Retired,
    /// Every key, shard and fallback is used up.
    Exhausted,
    /// The input was rejected before sending (empty prompt, zero tokens …).
    InvalidInput,
    /// Configuration is missing or wrong (no key, bad base URL).
    Config,
    /// Anything else.
    Other,
}

impl ModelErrorKind {
    /// The snake-case name (`rate_limited`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ModelErrorKind::InvalidRequest => "invalid_request",
            ModelErrorKind::Unauthenticated => "unauthenticated",
            ModelErrorKind::Billing => "billing",
            ModelErrorKind::PermissionDenied => "permission_denied",
            ModelErrorKind::NotFound => "not_found",
            ModelErrorKind::RequestTooLarge => "request_too_large",
            ModelErrorKind::RateLimited => "rate_limited",
            ModelErrorKind::SpendLimit => "spend_limit",
            ModelErrorKind::QuotaExhausted => "quota_exhausted",
            ModelErrorKind::ServerError => "server_error",
            ModelErrorKind::Overloaded => "overloaded",
            ModelErrorKind::Refused => "refused",
            ModelErrorKind::Blocked => "blocked",
            ModelErrorKind::MalformedResponse => "malformed_response",
            ModelErrorKind::Truncated => "truncated",
            ModelErrorKind::Timeout => "timeout",
            ModelErrorKind::Connection => "connection",
            ModelErrorKind::Retired => "retired",
            ModelErrorKind::Exhausted => "exhausted",
            ModelErrorKind::InvalidInput => "invalid_input",
            ModelErrorKind::Config => "config",
            ModelErrorKind::Other => "other",
        }
    }
}

impl ModelErrorKind {
    /// A fault of the provider or the path to it (server error, overload,
    /// timeout, broken connection): the same call may succeed when made
    /// again.
    pub const fn is_transient(self) -> bool {
        matches!(
            self,
            ModelErrorKind::ServerError
                | ModelErrorKind::Overloaded
                | ModelErrorKind::Timeout
                | ModelErrorKind::Connection
        )
    }

    /// A failure of this model that another model may not share
    /// (overload, server errors, timeouts): a fallback model may serve.
    pub const fn allows_fallback(self) -> bool {
        matches!(
            self,
            ModelErrorKind::ServerError | ModelErrorKind::Overloaded | ModelErrorKind::Timeout
        )
    }
}

impl fmt::Display for ModelErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed model call, with the facts and what to do about it. It never
/// carries an API key: providers clean server text before they keep it.
#[derive(Debug)]
#[non_exhaustive]
pub struct ModelError {
    /// The provider (`anthropic`, `gemini`, `deepseek`, …).
    pub provider: String,
    /// The model requested.
    pub model: String,
    /// What kind of failure.
    pub kind: ModelErrorKind,
    /// What to do.
    pub action: ModelAction,
    /// The provider's message (cut, secrets removed).
    pub message: String,
    /// The HTTP status, when there was a response.
    pub http_status: Option<u16>,
    /// The retry delay the provider asked for.
    pub retry_after: Option<Duration>,
    /// The provider's request id.
    pub request_id: Option<String>,
    /// Which key, shard or provider failed (a label, never the key).
    pub served_by: Option<String>,
    /// The underlying error, when one caused it.
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ModelError {
    /// An error of `kind` with `action`.
    pub fn new(
        provider: impl Into<String>,
        model: impl Into<String>,
        kind: ModelErrorKind,
        action: ModelAction,
        message: impl Into<String>,
    ) -> Self {
        Self {
            provider: provider.into(),
            model: model.into(),
            kind,
            action,
            message: message.into(),
            http_status: None,
            retry_after: None,
            request_id: None,
            served_by: None,
            source: None,
        }
    }

    /// Sets the HTTP status.
    pub fn http_status(mut self, status: u16) -> Self {
        self.http_status = Some(status);
        self
    }

    /// Sets the retry delay.
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    /// Sets the request id.
    pub fn request_id(mut self, id: impl Into<String>) -> Self {
        self.request_id = Some(id.into());
        self
    }

    /// Sets who failed.
    pub fn served_by(mut self, who: impl Into<String>) -> Self {
        self.served_by = Some(who.into());
        self
    }

    /// Sets the cause.
    pub fn source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Whether retrying the same call (after any wait) can help.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.action,
            ModelAction::Retry
                | ModelAction::RetryAfter { .. }
                | ModelAction::Rotate
                | ModelAction::WaitUntil { .. }
        )
    }
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.provider, self.model, self.kind)?;
        if let Some(status) = self.http_status {
            write!(f, " (HTTP {status})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(after) = self.retry_after {
            write!(f, "; retry after {:.1} s", after.as_secs_f64())?;
        }
        Ok(())
    }
}

impl std::error::Error for ModelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<ModelError> for crate::Error {
    fn from(e: ModelError) -> Self {
        crate::Error::Model(Box::new(e))
    }
}

// ---------------------------------------------------------------------------
// The trait

/// A language model, in the spirit of `tower::Service`: one request in, one
/// completion out. Failures are [`crate::Error::Model`] carrying a
/// [`ModelError`] whose action says whether to retry, wait, rotate or stop.
#[async_trait]
pub trait LanguageModel: Send + Sync {
    /// The model id requests go to.
    fn model_id(&self) -> &str;

    /// The provider's name for telemetry and errors (`anthropic`, `gemini`,
    /// `deepseek`, `scripted`).
    fn provider_name(&self) -> &str {
        "unknown"
    }

    /// Runs one request.
    async fn complete(&self, request: CompletionRequest) -> Result<Completion>;
}

#[async_trait]
impl<M: LanguageModel + ?Sized> LanguageModel for Arc<M> {
    fn model_id(&self) -> &str {
        (**self).model_id()
    }

    fn provider_name(&self) -> &str {
        (**self).provider_name()
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion> {
        (**self).complete(request).await
    }
}

#[async_trait]
impl<M: LanguageModel + ?Sized> LanguageModel for Box<M> {
    fn model_id(&self) -> &str {
        (**self).model_id()
    }

    fn provider_name(&self) -> &str {
        (**self).provider_name()
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion> {
        (**self).complete(request).await
    }
}

// ---------------------------------------------------------------------------
// Lifecycle

/// Where a model is in its life, as its provider published it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelLifecycle {
    /// The canonical model id.
    pub model: String,
    /// When it was announced deprecated (still served).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deprecated_on: Option<NaiveDate>,
    /// The first day it is no longer served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retires_on: Option<NaiveDate>,
    /// The model its provider names as the replacement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
}

impl ModelLifecycle {
    /// A lifecycle record.
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            ..Self::default()
        }
    }

    /// Sets the deprecation date.
    pub fn deprecated_on(mut self, day: NaiveDate) -> Self {
        self.deprecated_on = Some(day);
        self
    }

    /// Sets the retirement date.
    pub fn retires_on(mut self, day: NaiveDate) -> Self {
        self.retires_on = Some(day);
        self
    }

    /// Sets the replacement.
    pub fn replacement(mut self, model: impl Into<String>) -> Self {
        self.replacement = Some(model.into());
        self
    }

    /// Whether the model is no longer served on `today` (UTC).
    pub fn is_retired(&self, today: NaiveDate) -> bool {
        self.retires_on.is_some_and(|d| today >= d)
    }

    /// Whether the model is deprecated (and not yet retired) on `today`.
    pub fn is_deprecated(&self, today: NaiveDate) -> bool {
        !self.is_retired(today)
            && (self.deprecated_on.is_some_and(|d| today >= d) || self.retires_on.is_some())
    }
}

/// Knows models' lifecycles. `swarmbus-cost`'s price table implements it;
/// providers take one to refuse retired models before a call.
pub trait ModelCatalog: Send + Sync {
    /// The lifecycle of `model` (any id or alias), when known, as of
    /// `today` (UTC): the replacement named is one that still answers on
    /// `today` (the caller's clock, never the catalog's own reading).
    fn lifecycle(&self, model: &str, today: NaiveDate) -> Option<ModelLifecycle>;
}

impl<C: ModelCatalog + ?Sized> ModelCatalog for Arc<C> {
    fn lifecycle(&self, model: &str, today: NaiveDate) -> Option<ModelLifecycle> {
        (**self).lifecycle(model, today)
    }
}

/// What a [`ModelCatalog`] says of a model on a day: the one lifecycle
/// check every provider makes before a call. It only decides; it neither
/// logs nor fails, so each provider reports a deprecation in its own logs
/// and a retirement in its own error type.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LifecycleVerdict {
    /// Served and not deprecated, or unknown to the catalog (or no catalog).
    Current,
    /// Still served but deprecated: call it, and warn.
    Deprecated(ModelLifecycle),
    /// No longer served: refuse the call before sending it.
    Retired(ModelLifecycle),
}

impl LifecycleVerdict {
    /// Looks `model` up in `catalog` on `today` (UTC, read from the
    /// caller's clock).
    pub fn of(catalog: Option<&dyn ModelCatalog>, model: &str, today: NaiveDate) -> Self {
        match catalog.and_then(|c| c.lifecycle(model, today)) {
            Some(life) if life.is_retired(today) => LifecycleVerdict::Retired(life),
            Some(life) if life.is_deprecated(today) => LifecycleVerdict::Deprecated(life),
            _ => LifecycleVerdict::Current,
        }
    }

    /// The lifecycle of a deprecated or retired model.
    pub fn lifecycle(&self) -> Option<&ModelLifecycle> {
        match self {
            LifecycleVerdict::Current => None,
            LifecycleVerdict::Deprecated(l) | LifecycleVerdict::Retired(l) => Some(l),
        }
    }
}

/// Checks `model` against `catalog` before a call on `now` (the caller's
/// clock): a retired model is a [`crate::Error::Model`] of kind
/// [`ModelErrorKind::Retired`] naming its replacement; otherwise the
/// verdict ([`LifecycleVerdict::Current`] or
/// [`LifecycleVerdict::Deprecated`], which the caller warns about: core
/// does not log).
pub fn check_lifecycle(
    catalog: Option<&dyn ModelCatalog>,
    provider: &str,
    model: &str,
    now: DateTime<Utc>,
) -> Result<LifecycleVerdict> {
    let verdict = LifecycleVerdict::of(catalog, model, now.date_naive());
    let LifecycleVerdict::Retired(life) = &verdict else {
        return Ok(verdict);
    };
    let mut message = match life.retires_on {
        Some(day) => format!("{model} was retired on {day}"),
        None => format!("{model} is retired"),
    };
    if let Some(next) = &life.replacement {
        message.push_str(&format!("; use {next}"));
    }
    Err(ModelError::new(
        provider,
        model,
        ModelErrorKind::Retired,
        ModelAction::Fail,
        message,
    )
    .into())
}

// ---------------------------------------------------------------------------
// Telemetry

/// Opens the span of one model call, named and attributed after the
/// OpenTelemetry GenAI semantic conventions, so `tracing-opentelemetry`
/// exports it as a GenAI client span: `otel.name` is
/// `"{operation} {model}"`, and `gen_ai.operation.name`,
/// `gen_ai.provider.name` and `gen_ai.request.model` are set now. The
/// response fields are declared empty and filled by [`record_completion`],
/// [`record_model_error`] and whoever prices the call
/// (`swarm.cost.usd`).
pub fn gen_ai_span(provider: &str, operation: &str, model: &str) -> tracing::Span {
    tracing::info_span!(
        "gen_ai",
        otel.name = %format_args!("{operation} {model}"),
        otel.kind = "client",
        gen_ai.operation.name = operation,
        gen_ai.provider.name = provider,
        gen_ai.request.model = model,
        gen_ai.request.max_tokens = tracing::field::Empty,
        gen_ai.response.model = tracing::field::Empty,
        gen_ai.response.id = tracing::field::Empty,
        gen_ai.response.finish_reasons = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        gen_ai.usage.cache_read.input_tokens = tracing::field::Empty,
        gen_ai.usage.cache_creation.input_tokens = tracing::field::Empty,
        swarm.served_by = tracing::field::Empty,
        swarm.cost.usd = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

/// Records a completion on a [`gen_ai_span`] (see [`record_answer`]).
pub fn record_completion(span: &tracing::Span, completion: &Completion) {
    record_answer(
        span,
        &completion.model,
        completion.stop_reason.as_str(),
        &completion.usage,
        completion.served_by.as_deref(),
    );
}

/// Records an answer's facts on a [`gen_ai_span`]: the one recorder every
/// provider uses, whether or not it built a [`Completion`].
/// `gen_ai.usage.input_tokens` counts every prompt token, cache reads and
/// writes included, as the conventions ask; the cache attributes say how
/// many of them were cached.
pub fn record_answer(
    span: &tracing::Span,
    model: &str,
    finish_reason: &str,
    usage: &Usage,
    served_by: Option<&str>,
) {
    span.record("gen_ai.response.model", model);
    span.record("gen_ai.response.finish_reasons", finish_reason);
    span.record("gen_ai.usage.input_tokens", usage.prompt_tokens());
    span.record("gen_ai.usage.output_tokens", usage.output_tokens);
    span.record(
        "gen_ai.usage.cache_read.input_tokens",
        usage.cache_read_tokens,
    );
    span.record(
        "gen_ai.usage.cache_creation.input_tokens",
        usage
            .cache_write_5m_tokens
            .saturating_add(usage.cache_write_1h_tokens),
    );
    if let Some(who) = served_by {
        span.record("swarm.served_by", who);
    }
}

/// Records a failure on a [`gen_ai_span`] (`error.type` is the kind).
pub fn record_model_error(span: &tracing::Span, error: &ModelError) {
    record_error_kind(span, error.kind);
}

/// Records a failure's kind on a [`gen_ai_span`] (`error.type`), for a
/// provider that has not built a [`ModelError`].
pub fn record_error_kind(span: &tracing::Span, kind: ModelErrorKind) {
    span.record("error.type", kind.as_str());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_sums_bucket_by_bucket() {
        let a = Usage::new(10, 5).with_cache_read(100).with_thinking(2);
        let b = Usage::new(1, 1)
            .with_cache_write(3, 4)
            .with_server_tool_requests(2);
        let s = a + b;
        assert_eq!(s.input_tokens, 11);
        assert_eq!(s.cache_read_tokens, 100);
        assert_eq!(s.cache_write_5m_tokens, 3);
        assert_eq!(s.cache_write_1h_tokens, 4);
        assert_eq!(s.output_tokens, 6);
        assert_eq!(s.thinking_tokens, 2);
        assert_eq!(s.server_tool_requests, 2);
        assert_eq!(s.prompt_tokens(), 118);
        assert_eq!([a, b].into_iter().sum::<Usage>(), s);
    }

    #[test]
    fn completion_text_excludes_thinking_and_tool_calls_are_listed() {
        let c = Completion::from_blocks(
            vec![
                ContentBlock::Thinking {
                    thinking: "hmm".into(),
                    signature: Some("sig".into()),
                },
                ContentBlock::text("Hello, "),
                ContentBlock::ToolUse {
                    id: "t1".into(),
                    name: "read_file".into(),
                    input: serde_json::json!({"path": "a"}),
                },
                ContentBlock::text("world"),
            ],
            "m",
            Usage::default(),
        )
        .stop_reason(StopReason::ToolUse);
        assert_eq!(c.text(), "Hello, world");
        assert_eq!(c.thinking(), "hmm");
        let calls = c.tool_calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].name, "read_file");
        assert_eq!(c.to_message().role, Role::Assistant);
    }

    #[test]
    fn unknown_stop_reasons_are_kept() {
        assert_eq!(StopReason::parse("pause_turn"), StopReason::PauseTurn);
        let odd = StopReason::parse("brand_new");
        assert_eq!(odd, StopReason::Other("brand_new".into()));
        assert_eq!(odd.as_str(), "brand_new");
        let json = serde_json::to_string(&odd).unwrap();
        assert_eq!(json, "\"brand_new\"");
        let back: StopReason = serde_json::from_str("\"brand_new\"").unwrap();
        assert_eq!(back, odd);
        let back: StopReason = serde_json::from_str("\"max_tokens\"").unwrap();
        assert_eq!(back, StopReason::MaxTokens);
    }

    #[test]
    fn every_named_stop_reason_round_trips_through_its_wire_word() {
        for r in [
            StopReason::EndTurn,
            StopReason::MaxTokens,
            StopReason::StopSequence,
            StopReason::ToolUse,
            StopReason::PauseTurn,
            StopReason::Refusal,
            StopReason::ContextWindowExceeded,
        ] {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
            assert_eq!(serde_json::from_str::<StopReason>(&json).unwrap(), r);
            assert_eq!(StopReason::parse(r.as_str()), r);
        }
        assert_eq!(
            StopReason::parse("model_context_window_exceeded"),
            StopReason::ContextWindowExceeded
        );
    }

    #[test]
    fn model_errors_keep_their_action_through_core_error() {
        let e: crate::Error = ModelError::new(
            "anthropic",
            "claude-haiku-5-5",
            ModelErrorKind::RateLimited,
            ModelAction::RetryAfter {
                after: Duration::from_secs(7),
            },
            "slow down",
        )
        .http_status(429)
        .into();
        assert_eq!(e.retry(), crate::Retry::After(Duration::from_secs(7)));
        let stop: crate::Error = ModelError::new(
            "anthropic",
            "m",
            ModelErrorKind::SpendLimit,
            ModelAction::Stop { until: None },
            "limit",
        )
        .into();
        assert_eq!(stop.retry(), crate::Retry::Stop);
        assert!(stop.to_string().contains("spend_limit"));
    }

    #[test]
    fn a_retired_model_is_refused_naming_its_replacement() {
        struct Table;
        impl ModelCatalog for Table {
            fn lifecycle(&self, model: &str, _today: NaiveDate) -> Option<ModelLifecycle> {
                (model == "old").then(|| {
                    ModelLifecycle::new("old")
                        .retires_on(NaiveDate::from_ymd_opt(2026, 11, 30).unwrap_or_default())
                        .replacement("new")
                })
            }
        }
        let day = |d: u32| {
            NaiveDate::from_ymd_opt(2026, 11, d)
                .and_then(|d| d.and_hms_opt(12, 0, 0))
                .map(|t| t.and_utc())
                .unwrap_or_default()
        };
        assert!(matches!(
            check_lifecycle(Some(&Table), "p", "old", day(29)),
            Ok(LifecycleVerdict::Deprecated(_))
        ));
        let crate::Error::Model(err) =
            check_lifecycle(Some(&Table), "p", "old", day(30)).unwrap_err()
        else {
            panic!("expected a model error")
        };
        assert_eq!(err.kind, ModelErrorKind::Retired);
        assert!(err.message.contains("use new"), "{}", err.message);
        assert!(matches!(
            check_lifecycle(Some(&Table), "p", "other", day(30)),
            Ok(LifecycleVerdict::Current)
        ));
        assert!(check_lifecycle(None, "p", "old", day(30)).is_ok());
        let today = day(30).date_naive();
        let retired = LifecycleVerdict::of(Some(&Table), "old", today);
        assert!(
            matches!(&retired, LifecycleVerdict::Retired(l) if l.replacement.as_deref() == Some("new"))
        );
        assert_eq!(
            LifecycleVerdict::of(None, "old", today),
            LifecycleVerdict::Current
        );
    }

    #[test]
    fn a_plain_prompt_is_one_user_message() {
        let r = CompletionRequest::new("hi").system("sys");
        assert_eq!(r.messages.len(), 1);
        assert_eq!(r.prompt_text(), "hi");
    }
}
