//! The fallback provider: an OpenAI-compatible chat-completions client
//! (DeepSeek by default), used by the shard pool only when no shard is
//! usable.
//!
//! - `POST {base}/chat/completions` with `Authorization: Bearer <key>`
//!   (marked sensitive; the key never reaches a URL, log or error).
//! - A core `LanguageModel`: the whole request maps to chat completions
//!   (system, user and assistant turns, `tools`, assistant `tool_calls`,
//!   `tool` messages for results, `tool_choice`, `max_tokens`, `stop`);
//!   the reply's `reasoning_content` is a thinking block, its `tool_calls`
//!   tool-use blocks. Failures become core `ModelError`s that keep their
//!   kind, status, retry delay and action.
//! - JSON mode: `response_format: {"type": "json_object"}` with the schema
//!   spelled out in the system message (DeepSeek takes no schema).
//! - Each call is a `chat` span after the GenAI conventions, provider
//!   `deepseek` (the configured name).
//! - Errors classify like Gemini's: 400/422 invalid request, 401 invalid
//!   key, **402 insufficient balance counts as exhausted** (no automatic
//!   reset: topped up by a person), 403 permission denied, 404 not found,
//!   429 rate limited (`Retry-After` or 60 s), 503 overloaded, 5xx server
//!   error.
//! - Usage: `prompt_tokens` includes cache hits (`prompt_cache_hit_tokens`
//!   or `prompt_tokens_details.cached_tokens`), which are split out;
//!   `completion_tokens` includes reasoning tokens.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::json;
use swarmbus_core::llm::{
    Completion, CompletionRequest, ContentBlock, LanguageModel, Role, StopReason, ToolChoice,
    Usage, gen_ai_span, record_completion, record_model_error,
};
use swarmbus_core::provider_env::{self, ProviderEnv};
use tracing::Instrument;

use crate::client::{ClientConfig, read_capped, transport_error};
use crate::decode::DEFAULT_MAX_BODY_BYTES;
use crate::error::{BlockCause, DEFAULT_RATE_LIMIT_DELAY, Error, Redactor, Result};
use crate::wire::{FinishReason, GenerateContentRequest};

/// DeepSeek's API.
pub const DEEPSEEK_BASE_URL: &str = "https://api.deepseek.com";

/// DeepSeek's general chat model.
pub const DEEPSEEK_MODEL: &str = "deepseek-chat";

/// DeepSeek's key (`DEEPSEEK_API_KEY`; unset: no fallback) and base URL
/// override (`DEEPSEEK_BASE_URL`).
const DEEPSEEK_ENV: ProviderEnv = ProviderEnv::new("DEEPSEEK_API_KEY", "DEEPSEEK_BASE_URL");

/// The provider's name in telemetry and errors by default: the
/// OpenTelemetry GenAI conventions' well-known `gen_ai.provider.name` value
/// for DeepSeek.
pub const DEEPSEEK_PROVIDER_NAME: &str = "deepseek";

/// The GenAI operation name of a chat-completions call.
pub const OPERATION: &str = "chat";

/// How the fallback connects.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FallbackConfig {
    /// Base URL (default DeepSeek's); `/chat/completions` is appended.
    pub base_url: String,
    /// The model.
    pub model: String,
    /// The provider's name in answers, errors and telemetry
    /// (`gen_ai.provider.name`; default `deepseek`).
    pub name: String,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Whole-request timeout.
    pub request_timeout: Duration,
    /// Largest body read.
    pub max_body_bytes: usize,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        Self {
            base_url: DEEPSEEK_BASE_URL.into(),
            model: DEEPSEEK_MODEL.into(),
            name: DEEPSEEK_PROVIDER_NAME.into(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(180),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl FallbackConfig {
    /// Sets the base URL.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Sets the model.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// Sets the provider's name.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Sets both timeouts.
    pub fn timeouts(mut self, connect: Duration, request: Duration) -> Self {
        self.connect_timeout = connect;
        self.request_timeout = request;
        self
    }

    fn as_client_config(&self) -> ClientConfig {
        ClientConfig::default()
            .base_url(self.base_url.clone())
            .model(self.model.clone())
            .timeouts(self.connect_timeout, self.request_timeout)
            .max_body_bytes(self.max_body_bytes)
    }
}

/// One chat message of the OpenAI chat-completions API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text (absent on an assistant message that only calls tools).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The tool calls of an assistant message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ChatToolCall>,
    /// The call a `tool` message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A text message.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: Some(content.into()),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// One tool call of an assistant message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatToolCall {
    /// The call's id.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The function and its arguments.
    pub function: ChatFunctionCall,
}

/// The function a tool call names, with its arguments as JSON text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatFunctionCall {
    /// The function's name.
    pub name: String,
    /// The arguments, JSON text.
    pub arguments: String,
}

/// The chat messages for a provider-neutral request: the system prompt
/// (with the JSON-mode instruction and schema, since DeepSeek takes no
/// schema), user text, assistant text and `tool_calls`, and each tool
/// result as a `tool` message (an error result's text starts `Error: `).
/// Thinking blocks are not sent back (DeepSeek refuses its reasoning in
/// input messages).
pub fn chat_messages(request: &CompletionRequest) -> Vec<ChatMessage> {
    let mut out = Vec::new();
    let mut system = request.system.clone().unwrap_or_default();
    if let Some(schema) = &request.json_schema {
        if !system.is_empty() {
            system.push_str("\n\n");
        }
        system.push_str("Reply with one JSON object only matching this JSON Schema: ");
        system.push_str(&schema.to_string());
        system.push('.');
    }
    if !system.is_empty() {
        out.push(ChatMessage::new("system", system));
    }
    for message in &request.messages {
        let mut text = String::new();
        let mut calls = Vec::new();
        let mut results = Vec::new();
        for block in &message.content {
            match block {
                ContentBlock::Text { text: t } => text.push_str(t),
                ContentBlock::ToolUse { id, name, input } => calls.push(ChatToolCall {
                    id: id.clone(),
                    kind: "function".into(),
                    function: ChatFunctionCall {
                        name: name.clone(),
                        arguments: input.to_string(),
                    },
                }),
                ContentBlock::ToolResult {
                    tool_use_id,
                    content,
                    is_error,
                } => results.push(ChatMessage {
                    role: "tool".into(),
                    content: Some(if *is_error {
                        format!("Error: {content}")
                    } else {
                        content.clone()
                    }),
                    tool_calls: Vec::new(),
                    tool_call_id: Some(tool_use_id.clone()),
                }),
                _ => {}
            }
        }
        match message.role {
            Role::User => {
                // Tool results answer the assistant turn just before.
                out.extend(results);
                if !text.is_empty() {
                    out.push(ChatMessage::new("user", text));
                }
            }
            Role::Assistant => {
                if !text.is_empty() || !calls.is_empty() {
                    out.push(ChatMessage {
                        role: "assistant".into(),
                        content: (!text.is_empty()).then_some(text),
                        tool_calls: calls,
                        tool_call_id: None,
                    });
                }
            }
        }
    }
    out
}

#[derive(Debug, Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: Vec<ChatMessage>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    stop: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tools: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_choice: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<serde_json::Value>,
    stream: bool,
}

fn chat_tool_choice(choice: &ToolChoice) -> Option<serde_json::Value> {
    Some(match choice {
        ToolChoice::Auto => json!("auto"),
        ToolChoice::Any => json!("required"),
        ToolChoice::None => json!("none"),
        ToolChoice::Tool { name } => json!({"type": "function", "function": {"name": name}}),
        _ => return None,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChatResponse {
    id: Option<String>,
    model: Option<String>,
    choices: Vec<ChatChoice>,
    usage: Option<ChatUsage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChatChoice {
    message: Option<ChatReply>,
    finish_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChatReply {
    content: Option<String>,
    reasoning_content: Option<String>,
    #[serde(deserialize_with = "lenient_calls")]
    tool_calls: Vec<ReplyToolCall>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ReplyToolCall {
    id: Option<String>,
    function: Option<ReplyFunction>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ReplyFunction {
    name: Option<String>,
    arguments: Option<String>,
}

fn lenient_calls<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ReplyToolCall>, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::Array(items)) => items
            .into_iter()
            .filter_map(|i| serde_json::from_value(i).ok())
            .collect(),
        _ => Vec::new(),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChatUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    prompt_cache_hit_tokens: Option<u64>,
    prompt_tokens_details: Option<PromptDetails>,
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct PromptDetails {
    cached_tokens: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct CompletionDetails {
    reasoning_tokens: u64,
}

impl ChatUsage {
    fn usage(&self) -> Usage {
        let cached = self
            .prompt_cache_hit_tokens
            .or(self.prompt_tokens_details.as_ref().map(|d| d.cached_tokens))
            .unwrap_or(0)
            .min(self.prompt_tokens);
        let thinking = self
            .completion_tokens_details
            .as_ref()
            .map_or(0, |d| d.reasoning_tokens);
        Usage::new(self.prompt_tokens - cached, self.completion_tokens)
            .with_cache_read(cached)
            .with_thinking(thinking)
    }
}

/// An OpenAI-compatible chat-completions client.
#[derive(Clone)]
pub struct OpenAiCompatible {
    http: reqwest::Client,
    headers: HeaderMap,
    url: String,
    config: FallbackConfig,
    client_config: ClientConfig,
    redact: Redactor,
}

impl fmt::Debug for OpenAiCompatible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenAiCompatible")
            .field("url", &self.url)
            .field("model", &self.config.model)
            .field("name", &self.config.name)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

impl OpenAiCompatible {
    /// A client for `key`.
    pub fn new(key: SecretString, config: FallbackConfig) -> Result<Self> {
        let client_config = config.as_client_config();
        let base = client_config.checked_base()?;
        if key.expose_secret().trim().is_empty() {
            return Err(Error::MissingKey {
                source_name: format!("the {} key (empty)", config.name),
            });
        }
        let mut auth =
            HeaderValue::from_str(&format!("Bearer {}", key.expose_secret())).map_err(|_| {
                Error::Config {
                    reason: "the fallback key holds characters not allowed in an HTTP header"
                        .into(),
                }
            })?;
        auth.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, auth);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Self {
            http: client_config.http_client()?,
            headers,
            url: format!("{base}/chat/completions"),
            config,
            client_config,
            redact: Redactor::for_key(&key),
        })
    }

    /// DeepSeek from the environment: `DEEPSEEK_API_KEY` (none: `Ok(None)`),
    /// `DEEPSEEK_BASE_URL` and `DEEPSEEK_MODEL` when set.
    pub fn from_env() -> Result<Option<Self>> {
        let Some(key) = DEEPSEEK_ENV.optional_key() else {
            return Ok(None);
        };
        let config = FallbackConfig {
            base_url: DEEPSEEK_ENV.base_url_or(DEEPSEEK_BASE_URL),
            model: provider_env::var("DEEPSEEK_MODEL").unwrap_or_else(|| DEEPSEEK_MODEL.into()),
            ..FallbackConfig::default()
        };
        Self::new(key, config).map(Some)
    }

    /// The configuration.
    pub fn config(&self) -> &FallbackConfig {
        &self.config
    }

    /// Answers a provider-neutral request (see [`chat_messages`] for the
    /// mapping; tools become `tools` with their JSON schemas, the tool
    /// choice `tool_choice`, JSON mode `response_format: json_object`).
    /// One `chat` span per call, after the GenAI conventions.
    pub async fn complete_chat(&self, request: &CompletionRequest) -> Result<Completion> {
        crate::error::check_request(request)?;
        let span = gen_ai_span(&self.config.name, OPERATION, &self.config.model);
        if let Some(n) = request.max_output_tokens {
            span.record("gen_ai.request.max_tokens", n);
        }
        let body = ChatRequest {
            model: &self.config.model,
            messages: chat_messages(request),
            max_tokens: request.max_output_tokens,
            temperature: request.temperature,
            stop: request.stop_sequences.clone(),
            tools: request
                .tools
                .iter()
                .map(|t| {
                    json!({"type": "function", "function": {
                        "name": t.name, "description": t.description, "parameters": t.input_schema}})
                })
                .collect(),
            tool_choice: request.tool_choice.as_ref().and_then(chat_tool_choice),
            response_format: request
                .json_schema
                .as_ref()
                .map(|_| json!({"type": "json_object"})),
            stream: false,
        };
        let result = self.send(&body).instrument(span.clone()).await;
        match &result {
            Ok((completion, id)) => {
                record_completion(&span, completion);
                if let Some(id) = id {
                    span.record("gen_ai.response.id", id.as_str());
                }
            }
            Err(e) => record_model_error(
                &span,
                &e.to_model_error(&self.config.name, &self.config.model),
            ),
        }
        result.map(|(c, _)| c)
    }

    /// Answers a Gemini request (its provider-neutral meaning, see
    /// [`GenerateContentRequest::to_completion_request`]).
    pub async fn complete_gemini(&self, request: &GenerateContentRequest) -> Result<Completion> {
        self.complete_chat(&request.to_completion_request()).await
    }

    async fn send(&self, body: &ChatRequest<'_>) -> Result<(Completion, Option<String>)> {
        let body = serde_json::to_vec(body).map_err(|e| Error::Config {
            reason: format!("request does not serialise: {e}"),
        })?;
        let response = self
            .http
            .post(&self.url)
            .headers(self.headers.clone())
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(e, &self.client_config, &self.redact))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = read_capped(
            response,
            self.config.max_body_bytes,
            &self.client_config,
            &self.redact,
        )
        .await?;
        if !(200..300).contains(&status) {
            let e = classify_openai(status, &body, retry_after, &self.redact);
            tracing::debug!(provider = %self.config.name, status, kind = %e.kind(), "fallback call failed");
            return Err(e);
        }
        let parsed: ChatResponse =
            serde_json::from_slice(&body).map_err(|e| Error::MalformedResponse {
                reason: format!("not a chat completion ({e})"),
            })?;
        let choice = parsed
            .choices
            .first()
            .ok_or_else(|| Error::MalformedResponse {
                reason: "chat completion without choices".into(),
            })?;
        let finish = choice.finish_reason.clone();
        if finish.as_deref() == Some("content_filter") {
            return Err(Error::Blocked {
                cause: BlockCause::Candidate(FinishReason::Other("content_filter".into())),
                message: None,
            });
        }
        let mut blocks = Vec::new();
        if let Some(reply) = &choice.message {
            if let Some(r) = reply.reasoning_content.as_deref().filter(|r| !r.is_empty()) {
                blocks.push(ContentBlock::Thinking {
                    thinking: r.to_owned(),
                    signature: None,
                });
            }
            if let Some(t) = reply.content.as_deref().filter(|t| !t.is_empty()) {
                blocks.push(ContentBlock::text(t));
            }
            for (i, call) in reply.tool_calls.iter().enumerate() {
                let f = call.function.as_ref();
                let arguments = f.and_then(|f| f.arguments.as_deref()).unwrap_or("{}");
                blocks.push(ContentBlock::ToolUse {
                    id: call.id.clone().unwrap_or_else(|| format!("call_{i}")),
                    name: f.and_then(|f| f.name.clone()).unwrap_or_default(),
                    input: serde_json::from_str(arguments)
                        .unwrap_or_else(|_| serde_json::Value::String(arguments.to_owned())),
                });
            }
        }
        let has_content = choice
            .message
            .as_ref()
            .is_some_and(|m| m.content.is_some() || !m.tool_calls.is_empty());
        if !has_content && finish.as_deref() != Some("length") {
            return Err(Error::MalformedResponse {
                reason: format!(
                    "chat completion without content (finish_reason {})",
                    finish.as_deref().unwrap_or("none")
                ),
            });
        }
        let usage = parsed
            .usage
            .as_ref()
            .map(ChatUsage::usage)
            .unwrap_or_default();
        let mut completion = Completion::from_blocks(
            blocks,
            parsed
                .model
                .clone()
                .unwrap_or_else(|| self.config.model.clone()),
            usage,
        )
        .served_by(self.config.name.clone());
        if let Some(f) = finish {
            completion = completion.stop_reason(match f.as_str() {
                "stop" => StopReason::EndTurn,
                "length" => StopReason::MaxTokens,
                "tool_calls" => StopReason::ToolUse,
                _ => StopReason::Other(f),
            });
        }
        Ok((completion, parsed.id))
    }
}

#[async_trait]
impl LanguageModel for OpenAiCompatible {
    fn model_id(&self) -> &str {
        &self.config.model
    }

    fn provider_name(&self) -> &str {
        &self.config.name
    }

    async fn complete(&self, request: CompletionRequest) -> swarmbus_core::Result<Completion> {
        self.complete_chat(&request)
            .await
            .map_err(|e| e.into_core(&self.config.name, &self.config.model))
    }
}

/// Classifies an OpenAI-style error response.
fn classify_openai(
    status: u16,
    body: &[u8],
    retry_after: Option<Duration>,
    redact: &Redactor,
) -> Error {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error")
                .and_then(|e| e.get("message").or(Some(e)))
                .and_then(|m| m.as_str().map(str::to_owned))
        })
        .map(|m| redact.clean(&m))
        .unwrap_or_else(|| format!("HTTP {status}"));
    match status {
        401 => Error::InvalidKey { status, message },
        402 => Error::QuotaExhausted {
            status: Some(status),
            quota: None,
            until: None,
            retry_delay: None,
            message,
        },
        403 => Error::PermissionDenied {
            status,
            reason: None,
            message,
        },
        404 => Error::NotFound { status, message },
        429 => Error::RateLimited {
            status,
            quota: None,
            retry_delay: retry_after.unwrap_or(DEFAULT_RATE_LIMIT_DELAY),
            message,
        },
        503 => Error::Overloaded {
            status,
            retry_delay: retry_after,
            message,
        },
        500..=599 => Error::Server { status, message },
        400..=499 => Error::InvalidRequest {
            status,
            message,
            field_violations: Vec::new(),
        },
        _ => Error::MalformedResponse {
            reason: format!("unexpected HTTP status {status}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Action, ErrorKind};

    #[test]
    fn insufficient_balance_counts_as_exhausted() {
        let e = classify_openai(
            402,
            br#"{"error":{"message":"Insufficient Balance","type":"unknown_error"}}"#,
            None,
            &Redactor::none(),
        );
        assert_eq!(e.kind(), ErrorKind::QuotaExhausted);
        assert_eq!(e.action(), Action::Disable);
        assert!(e.to_string().contains("Insufficient Balance"));
    }

    #[test]
    fn cache_hits_are_split_out_of_the_prompt() {
        let u: ChatUsage = serde_json::from_str(
            r#"{"prompt_tokens":100,"completion_tokens":20,"prompt_cache_hit_tokens":60,
                "completion_tokens_details":{"reasoning_tokens":5}}"#,
        )
        .unwrap();
        let u = u.usage();
        assert_eq!((u.input_tokens, u.cache_read_tokens), (40, 60));
        assert_eq!((u.output_tokens, u.thinking_tokens), (20, 5));
    }
}
