//! The Messages API's JSON, as typed values.
//!
//! The types model what the swarm uses (system prompt, text, thinking,
//! `tool_use` and `tool_result` blocks, tools with JSON schemas,
//! `tool_choice`, thinking and effort, stop sequences, `cache_control`) and
//! keep everything else as it came: an unknown field lands in an `extra` map
//! and an unknown block type in [`ContentBlock::Other`], so a request
//! round-trips unchanged and a response with new block types still decodes.
//! Enum-like values the API may extend ([`StopReason`]) are open: an unknown
//! value is kept, never an error.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use swarmbus_core::llm::Usage;

/// Fields that API version `2026-10-21` removed from the Messages API: a
/// request carrying any of them is answered with a 400, even at their
/// default values (see `docs/anthropic.md`, "Versioning").
pub const REMOVED_SAMPLING_PARAMETERS: [&str; 3] = ["temperature", "top_p", "top_k"];

/// A prompt-cache breakpoint (`{"type": "ephemeral", "ttl": "1h"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CacheControl {
    /// Always `ephemeral` today.
    #[serde(rename = "type")]
    pub kind: String,
    /// How long the cached prefix lives; the API's default is 5 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<CacheTtl>,
}

impl CacheControl {
    /// An ephemeral breakpoint with this lifetime.
    pub fn ephemeral(ttl: CacheTtl) -> Self {
        Self {
            kind: "ephemeral".into(),
            ttl: Some(ttl),
        }
    }
}

/// The lifetime of a cache entry: the two the API prices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum CacheTtl {
    /// `5m` (writes cost 1.25 × input).
    #[serde(rename = "5m")]
    FiveMinutes,
    /// `1h` (writes cost 2 × input).
    #[serde(rename = "1h")]
    OneHour,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Role {
    /// The user (tool results come from the user too).
    User,
    /// The model.
    Assistant,
    /// A system turn inside the conversation (tool additions and other
    /// mid-conversation instructions on newer models).
    System,
}

/// A `text` block.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TextBlock {
    /// The text.
    pub text: String,
    /// A cache breakpoint after this block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Citations, as the API sent them (responses only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub citations: Option<Value>,
    /// Fields this crate does not model, kept as they came.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `thinking` block (kept out of the answer text; sent back unchanged in
/// a tool-use loop, signature included).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ThinkingBlock {
    /// The (summarised) thinking.
    pub thinking: String,
    /// The signature that lets the API check the block when it is sent back.
    #[serde(default)]
    pub signature: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `redacted_thinking` block: encrypted thinking, sent back as is.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RedactedThinkingBlock {
    /// The opaque data.
    pub data: String,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `tool_use` block: the model calls one of the caller's tools.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolUseBlock {
    /// The call's id (`toolu_…`), echoed by the matching `tool_result`.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments (a JSON object matching the tool's schema).
    #[serde(default)]
    pub input: Value,
    /// A cache breakpoint after this block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Fields this crate does not model (`caller`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `tool_result` block: the caller's answer to a `tool_use`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ToolResultBlock {
    /// The id of the `tool_use` this answers.
    pub tool_use_id: String,
    /// The result: a string or a list of content blocks.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub content: Value,
    /// Whether the tool failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_error: Option<bool>,
    /// A cache breakpoint after this block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Fields this crate does not model.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One block of a message's content.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ContentBlock {
    /// `text`.
    Text(TextBlock),
    /// `thinking`.
    Thinking(ThinkingBlock),
    /// `redacted_thinking`.
    RedactedThinking(RedactedThinkingBlock),
    /// `tool_use`.
    ToolUse(ToolUseBlock),
    /// `tool_result`.
    ToolResult(ToolResultBlock),
    /// Any other type (`image`, `document`, `server_tool_use`,
    /// `web_search_tool_result`, a type newer than this crate …), kept whole.
    Other {
        /// The block's `type`.
        kind: String,
        /// The whole block, `type` included.
        raw: Value,
    },
}

impl ContentBlock {
    /// A plain text block.
    pub fn text(text: impl Into<String>) -> Self {
        ContentBlock::Text(TextBlock {
            text: text.into(),
            ..TextBlock::default()
        })
    }

    /// A tool call (for replaying an assistant turn).
    pub fn tool_use(id: impl Into<String>, name: impl Into<String>, input: Value) -> Self {
        ContentBlock::ToolUse(ToolUseBlock {
            id: id.into(),
            name: name.into(),
            input,
            ..ToolUseBlock::default()
        })
    }

    /// A tool's result.
    pub fn tool_result(tool_use_id: impl Into<String>, content: Value, is_error: bool) -> Self {
        ContentBlock::ToolResult(ToolResultBlock {
            tool_use_id: tool_use_id.into(),
            content,
            is_error: is_error.then_some(true),
            ..ToolResultBlock::default()
        })
    }

    /// The block's `type` as the API names it.
    pub fn kind(&self) -> &str {
        match self {
            ContentBlock::Text(_) => "text",
            ContentBlock::Thinking(_) => "thinking",
            ContentBlock::RedactedThinking(_) => "redacted_thinking",
            ContentBlock::ToolUse(_) => "tool_use",
            ContentBlock::ToolResult(_) => "tool_result",
            ContentBlock::Other { kind, .. } => kind,
        }
    }

    /// Sets a cache breakpoint on a block that takes one (text, tool use,
    /// tool result, and other blocks as raw JSON); thinking blocks cannot
    /// carry one and are left unchanged.
    pub fn set_cache_control(&mut self, cache: CacheControl) {
        match self {
            ContentBlock::Text(b) => b.cache_control = Some(cache),
            ContentBlock::ToolUse(b) => b.cache_control = Some(cache),
            ContentBlock::ToolResult(b) => b.cache_control = Some(cache),
            ContentBlock::Other { raw, .. } => {
                if let (Some(obj), Ok(v)) = (raw.as_object_mut(), serde_json::to_value(cache)) {
                    obj.insert("cache_control".into(), v);
                }
            }
            ContentBlock::Thinking(_) | ContentBlock::RedactedThinking(_) => {}
        }
    }
}

/// A known block with its `type` tag, serialised without an intermediate
/// JSON tree.
#[derive(Serialize)]
struct Tagged<'a, T> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    block: &'a T,
}

impl Serialize for ContentBlock {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ContentBlock::Text(block) => Tagged {
                kind: "text",
                block,
            }
            .serialize(s),
            ContentBlock::Thinking(block) => Tagged {
                kind: "thinking",
                block,
            }
            .serialize(s),
            ContentBlock::RedactedThinking(block) => Tagged {
                kind: "redacted_thinking",
                block,
            }
            .serialize(s),
            ContentBlock::ToolUse(block) => Tagged {
                kind: "tool_use",
                block,
            }
            .serialize(s),
            ContentBlock::ToolResult(block) => Tagged {
                kind: "tool_result",
                block,
            }
            .serialize(s),
            ContentBlock::Other { raw, .. } => raw.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for ContentBlock {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        ContentBlock::from_value(value).map_err(D::Error::custom)
    }
}

impl ContentBlock {
    /// Reads a block from JSON: a known type must have its fields (a
    /// `tool_use` without an id is an error, never a guess); an unknown
    /// type is kept as [`ContentBlock::Other`].
    pub fn from_value(value: Value) -> Result<Self, serde_json::Error> {
        let Value::Object(mut obj) = value else {
            return Err(serde_json::Error::custom(
                "a content block is not an object",
            ));
        };
        let kind = match obj.get("type") {
            Some(Value::String(k)) => k.clone(),
            _ => return Err(serde_json::Error::custom("a content block has no type")),
        };
        let known = matches!(
            kind.as_str(),
            "text" | "thinking" | "redacted_thinking" | "tool_use" | "tool_result"
        );
        if !known {
            return Ok(ContentBlock::Other {
                kind,
                raw: Value::Object(obj),
            });
        }
        obj.remove("type");
        let body = Value::Object(obj);
        let block = match kind.as_str() {
            "text" => ContentBlock::Text(serde_json::from_value(body)?),
            "thinking" => ContentBlock::Thinking(serde_json::from_value(body)?),
            "redacted_thinking" => ContentBlock::RedactedThinking(serde_json::from_value(body)?),
            "tool_use" => ContentBlock::ToolUse(serde_json::from_value(body)?),
            _ => ContentBlock::ToolResult(serde_json::from_value(body)?),
        };
        Ok(block)
    }
}

/// A message's content: a plain string or a list of blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum MessageContent {
    /// A plain string (one text block).
    Text(String),
    /// Blocks.
    Blocks(Vec<ContentBlock>),
}

/// One turn of the conversation in a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MessageParam {
    /// Who wrote it.
    pub role: Role,
    /// What it says.
    pub content: MessageContent,
}

impl MessageParam {
    /// A user turn of plain text.
    pub fn user(text: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: MessageContent::Text(text.into()),
        }
    }

    /// A turn of blocks.
    pub fn blocks(role: Role, blocks: Vec<ContentBlock>) -> Self {
        Self {
            role,
            content: MessageContent::Blocks(blocks),
        }
    }
}

/// The system prompt: a string, or text blocks (which can carry cache
/// breakpoints).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum SystemPrompt {
    /// A plain string.
    Text(String),
    /// Blocks.
    Blocks(Vec<ContentBlock>),
}

/// A tool the model may call: a caller's tool (name, description, input
/// JSON schema) or a server tool (its `type` lands in `extra`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Tool {
    /// The tool's name.
    pub name: String,
    /// What it does (the model reads this).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The JSON schema of its input (caller's tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_schema: Option<Value>,
    /// A cache breakpoint after this tool (caches every tool up to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// Fields this crate does not model (`type`, `strict`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Tool {
    /// A caller's tool with a JSON-schema input.
    pub fn new(name: impl Into<String>, description: impl Into<String>, schema: Value) -> Self {
        Self {
            name: name.into(),
            description: Some(description.into()),
            input_schema: Some(schema),
            ..Self::default()
        }
    }
}

/// How the model may use the tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ToolChoice {
    /// The model decides.
    Auto {
        /// At most one tool call per turn.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must call some tool.
    Any {
        /// At most one tool call per turn.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must call this tool.
    Tool {
        /// The tool.
        name: String,
        /// At most one tool call per turn.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disable_parallel_tool_use: Option<bool>,
    },
    /// The model must not call tools.
    None,
}

/// Extended thinking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Thinking {
    /// Thinking with a token budget (models before adaptive thinking).
    Enabled {
        /// Tokens the model may think with (counted in `max_tokens`).
        budget_tokens: u32,
        /// `summarized` or `omitted`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display: Option<String>,
    },
    /// The model decides how much to think (newer models; steer with
    /// [`Effort`]).
    Adaptive {
        /// `summarized` or `omitted`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display: Option<String>,
    },
    /// No thinking.
    Disabled,
}

/// How hard the model works (`output_config.effort`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Effort {
    /// `low`.
    Low,
    /// `medium`.
    Medium,
    /// `high` (the API's default).
    High,
    /// `xhigh` (some models only).
    #[serde(rename = "xhigh")]
    XHigh,
    /// `max`.
    Max,
    /// A level this crate does not know, sent as written.
    #[serde(untagged)]
    Other(String),
}

/// `output_config`: effort and a JSON-schema output format.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OutputConfig {
    /// How hard the model works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<Effort>,
    /// `{"type": "json_schema", "schema": …}`: the answer is JSON matching
    /// the schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Value>,
    /// Fields this crate does not model (`task_budget`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl OutputConfig {
    /// Only an effort level.
    pub fn with_effort(effort: Effort) -> Self {
        Self {
            effort: Some(effort),
            ..Self::default()
        }
    }

    /// Only a JSON-schema output format.
    pub fn with_json_schema(schema: Value) -> Self {
        Self {
            format: Some(serde_json::json!({"type": "json_schema", "schema": schema})),
            ..Self::default()
        }
    }
}

/// A `POST /v1/messages` body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MessagesRequest {
    /// The model id (`claude-sonnet-5-5`).
    pub model: String,
    /// The most output tokens (thinking included).
    pub max_tokens: u32,
    /// The conversation.
    pub messages: Vec<MessageParam>,
    /// The system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemPrompt>,
    /// Tools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// How the model may use the tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Extended thinking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<Thinking>,
    /// Effort and output format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_config: Option<OutputConfig>,
    /// Texts that end generation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    /// Automatic caching: one breakpoint on the last cacheable block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<CacheControl>,
    /// `{"user_id": …}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Set by the client: `true` for the SSE call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// Fields this crate does not model (`mcp_servers`, `container`,
    /// `context_management`, …), sent as they are, except
    /// [`REMOVED_SAMPLING_PARAMETERS`], which the client drops.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl MessagesRequest {
    /// A request of one user message.
    pub fn new(model: impl Into<String>, max_tokens: u32, prompt: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            max_tokens,
            messages: vec![MessageParam::user(prompt)],
            system: None,
            tools: Vec::new(),
            tool_choice: None,
            thinking: None,
            output_config: None,
            stop_sequences: Vec::new(),
            cache_control: None,
            metadata: None,
            stream: None,
            extra: Map::new(),
        }
    }

    /// Sets the system prompt.
    pub fn system(mut self, system: impl Into<String>) -> Self {
        self.system = Some(SystemPrompt::Text(system.into()));
        self
    }

    /// Whether the request carries a parameter API version `2026-10-21`
    /// removed (`temperature`, `top_p`, `top_k`).
    pub fn has_removed_parameters(&self) -> bool {
        REMOVED_SAMPLING_PARAMETERS
            .iter()
            .any(|p| self.extra.contains_key(*p))
    }

    /// Removes the sampling parameters API version `2026-10-21` rejects and
    /// returns the names of those it found.
    pub fn strip_removed_parameters(&mut self) -> Vec<&'static str> {
        if !self.has_removed_parameters() {
            return Vec::new();
        }
        REMOVED_SAMPLING_PARAMETERS
            .into_iter()
            .filter(|p| self.extra.remove(*p).is_some())
            .collect()
    }

    /// What API version `2026-10-21` refuses in the messages themselves
    /// (a `document` block in an assistant turn, citations on a user text
    /// block), as a reason; `None` when the request is acceptable.
    pub fn version_conflict(&self) -> Option<String> {
        for (i, m) in self.messages.iter().enumerate() {
            let MessageContent::Blocks(blocks) = &m.content else {
                continue;
            };
            for b in blocks {
                match (m.role, b) {
                    (Role::Assistant, ContentBlock::Other { kind, .. }) if kind == "document" => {
                        return Some(format!(
                            "messages[{i}]: a document block in an assistant message"
                        ));
                    }
                    (Role::User, ContentBlock::Text(t))
                        if t.citations
                            .as_ref()
                            .is_some_and(|c| !c.is_null() && c != &Value::Array(vec![])) =>
                    {
                        return Some(format!(
                            "messages[{i}]: citations on a text block of a user message"
                        ));
                    }
                    _ => {}
                }
            }
        }
        None
    }
}

/// Why the model stopped: core's one vocabulary, which the API's
/// `stop_reason` decodes into directly (`end_turn`, `max_tokens`,
/// `stop_sequence`, `tool_use`, `pause_turn`, `refusal`,
/// `model_context_window_exceeded`). Open: a value newer than this crate is
/// kept in [`StopReason::Other`].
pub use swarmbus_core::llm::StopReason;

/// `stop_details` of a refusal: which policy, and why.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StopDetails {
    /// The refusal's category (`cyber`, `bio`, …), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// A short explanation, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    /// Fields this crate does not model (`type`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// `usage.cache_creation`: cache writes by lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CacheCreation {
    /// Tokens written to the 5-minute cache.
    #[serde(default)]
    pub ephemeral_5m_input_tokens: u64,
    /// Tokens written to the 1-hour cache.
    #[serde(default)]
    pub ephemeral_1h_input_tokens: u64,
}

/// `usage` as the API reports it. Every field is optional so a stream's
/// `message_delta` (whose counts are cumulative) can update the
/// `message_start` values field by field ([`WireUsage::update`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WireUsage {
    /// Fresh input tokens (cache reads and writes NOT included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_tokens: Option<u64>,
    /// Output tokens (thinking included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Tokens written to the cache (all lifetimes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u64>,
    /// Tokens read from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u64>,
    /// Cache writes by lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation: Option<CacheCreation>,
    /// Server-tool requests (`web_search_requests`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_tool_use: Option<Map<String, Value>>,
    /// `{"thinking_tokens": …}`, when reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens_details: Option<Map<String, Value>>,
    /// Fields this crate does not model (`service_tier`, `inference_geo`,
    /// `iterations`, …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl WireUsage {
    /// Takes every count `newer` reports (a `message_delta`'s counts are
    /// cumulative: they replace, never add).
    pub fn update(&mut self, newer: &WireUsage) {
        fn take<T: Clone>(slot: &mut Option<T>, v: &Option<T>) {
            if v.is_some() {
                slot.clone_from(v);
            }
        }
        take(&mut self.input_tokens, &newer.input_tokens);
        take(&mut self.output_tokens, &newer.output_tokens);
        take(
            &mut self.cache_creation_input_tokens,
            &newer.cache_creation_input_tokens,
        );
        take(
            &mut self.cache_read_input_tokens,
            &newer.cache_read_input_tokens,
        );
        take(&mut self.cache_creation, &newer.cache_creation);
        take(&mut self.server_tool_use, &newer.server_tool_use);
        take(
            &mut self.output_tokens_details,
            &newer.output_tokens_details,
        );
        for (k, v) in &newer.extra {
            self.extra.insert(k.clone(), v.clone());
        }
    }

    /// The usage in billing buckets.
    ///
    /// Cache writes: the total is the final cumulative
    /// `cache_creation_input_tokens` (in a stream, `message_delta`'s figure
    /// replaces `message_start`'s). The 5-minute / 1-hour split comes from
    /// the latest `cache_creation` breakdown. When the total is larger than
    /// the breakdown (a stream with server tools: `message_start` said
    /// 3,068 with its split, `message_delta` 3,337 without one), the tokens
    /// the breakdown does not account for are counted as **1-hour** writes
    /// if the breakdown has any 1-hour writes, else as 5-minute writes (the
    /// default TTL). So the extra is never billed below the dearest lifetime
    /// the request used. A breakdown larger than the total keeps the
    /// breakdown (never under-reported). Without a breakdown every write is
    /// a 5-minute one.
    pub fn buckets(&self) -> Usage {
        let total_writes = self.cache_creation_input_tokens.unwrap_or(0);
        let (w5m, w1h) = match self.cache_creation {
            Some(c) => {
                let split = c
                    .ephemeral_5m_input_tokens
                    .saturating_add(c.ephemeral_1h_input_tokens);
                let extra = total_writes.saturating_sub(split);
                if c.ephemeral_1h_input_tokens > 0 {
                    (
                        c.ephemeral_5m_input_tokens,
                        c.ephemeral_1h_input_tokens.saturating_add(extra),
                    )
                } else {
                    (c.ephemeral_5m_input_tokens.saturating_add(extra), 0)
                }
            }
            None => (total_writes, 0),
        };
        let thinking = self
            .output_tokens_details
            .as_ref()
            .and_then(|d| d.get("thinking_tokens"))
            .and_then(Value::as_u64)
            .unwrap_or(0);
        Usage::new(
            self.input_tokens.unwrap_or(0),
            self.output_tokens.unwrap_or(0),
        )
        .with_cache_read(self.cache_read_input_tokens.unwrap_or(0))
        .with_cache_write(w5m, w1h)
        .with_thinking(thinking)
    }

    /// Server-tool requests by tool (`web_search_requests` → 2); counts of
    /// zero are left out.
    pub fn server_tool_requests(&self) -> BTreeMap<String, u64> {
        self.server_tool_use
            .iter()
            .flatten()
            .filter_map(|(k, v)| v.as_u64().filter(|n| *n > 0).map(|n| (k.clone(), n)))
            .collect()
    }
}

/// A Messages API answer (the non-streaming body, or a stream collected).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MessagesResponse {
    /// `msg_…`.
    #[serde(default)]
    pub id: String,
    /// The model that answered (its full id).
    pub model: String,
    /// Always `assistant`.
    #[serde(default = "assistant")]
    pub role: Role,
    /// The blocks, in order.
    pub content: Vec<ContentBlock>,
    /// Why the model stopped (`None` only inside a stream, before
    /// `message_delta`).
    #[serde(default)]
    pub stop_reason: Option<StopReason>,
    /// The stop sequence that matched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequence: Option<String>,
    /// Details of a refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_details: Option<StopDetails>,
    /// Tokens.
    #[serde(default)]
    pub usage: WireUsage,
    /// Fields this crate does not model (`container`, `context_management`,
    /// …).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn assistant() -> Role {
    Role::Assistant
}

impl MessagesResponse {
    /// The text blocks joined (thinking excluded).
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::Text(t) => Some(t.text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The thinking blocks joined (kept apart from the text).
    pub fn thinking(&self) -> String {
        let parts: Vec<&str> = self
            .content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::Thinking(t) => Some(t.thinking.as_str()),
                _ => None,
            })
            .collect();
        parts.join("\n\n")
    }

    /// The caller's tools the model called, in order.
    pub fn tool_calls(&self) -> Vec<&ToolUseBlock> {
        self.content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::ToolUse(t) => Some(t),
                _ => None,
            })
            .collect()
    }

    /// The stop reason (`end_turn` when the API gave none, which only a
    /// collected stream cut short could do; the decoders refuse that).
    pub fn stop(&self) -> StopReason {
        self.stop_reason.clone().unwrap_or(StopReason::EndTurn)
    }

    /// Usage in billing buckets.
    pub fn usage(&self) -> Usage {
        self.usage.buckets()
    }

    /// The answer, or [`crate::Error::Refused`] (with the refusal's category
    /// and explanation) when the model declined: for callers that treat a
    /// refusal as a failure (the CLI does). The refusal is never retried.
    pub fn into_checked(self) -> crate::Result<Self> {
        if self.stop_reason != Some(StopReason::Refusal) {
            return Ok(self);
        }
        let details = self.stop_details.unwrap_or_default();
        Err(crate::Error::Refused {
            model: self.model,
            category: details.category,
            explanation: details.explanation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_block_types_are_kept_whole() {
        let v: Value = serde_json::json!({"type": "web_search_tool_result", "tool_use_id": "x", "content": []});
        let b: ContentBlock = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(b.kind(), "web_search_tool_result");
        assert_eq!(serde_json::to_value(&b).unwrap(), v);
    }

    #[test]
    fn a_known_block_missing_its_fields_is_an_error() {
        let v = serde_json::json!({"type": "tool_use", "name": "f"});
        assert!(serde_json::from_value::<ContentBlock>(v).is_err());
    }

    #[test]
    fn cache_writes_without_a_split_count_as_five_minutes() {
        let u: WireUsage = serde_json::from_value(serde_json::json!({
            "input_tokens": 3, "output_tokens": 5, "cache_creation_input_tokens": 400,
            "cache_read_input_tokens": 7}))
        .unwrap();
        let b = u.buckets();
        assert_eq!(
            (
                b.cache_write_5m_tokens,
                b.cache_write_1h_tokens,
                b.cache_read_tokens
            ),
            (400, 0, 7)
        );
    }

    #[test]
    fn unknown_stop_reasons_are_kept() {
        let r: StopReason = serde_json::from_value(serde_json::json!("brand_new")).unwrap();
        assert_eq!(r, StopReason::Other("brand_new".into()));
        assert_eq!(r.as_str(), "brand_new");
    }
}
