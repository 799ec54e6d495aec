//! The fallback provider: an OpenAI-compatible chat-completions client
//! (DeepSeek by default), used by the shard pool only when no shard is
//! usable.
//!
//! - `POST {base}/chat/completions` with `Authorization: Bearer <key>`
//!   (marked sensitive; the key never reaches a URL, log or error).
//! - JSON mode: `response_format: {"type": "json_object"}` with the schema
//!   spelled out in the system message (DeepSeek takes no schema).
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
use swarmbus_core::llm::{Completion, CompletionRequest, StopReason, Usage};

use crate::client::{ClientConfig, read_capped, transport_error};
use crate::decode::DEFAULT_MAX_BODY_BYTES;
use crate::error::{BlockCause, DEFAULT_RATE_LIMIT_DELAY, Error, Redactor, Result};
use crate::provider::{Provider, language_model_via_provider};
use crate::wire::{FinishReason, GenerateContentRequest};

/// DeepSeek's API.
pub const DEEPSEEK_BASE_URL: &str = "https://api.deepseek.com";

/// DeepSeek's general chat model.
pub const DEEPSEEK_MODEL: &str = "deepseek-chat";

/// How the fallback connects.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FallbackConfig {
    /// Base URL (default DeepSeek's); `/chat/completions` is appended.
    pub base_url: String,
    /// The model.
    pub model: String,
    /// The provider's name in answers and errors.
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
            name: "deepseek".into(),
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

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

#[derive(Debug, Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<serde_json::Value>,
    stream: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChatResponse {
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
        let Some(key) = std::env::var("DEEPSEEK_API_KEY")
            .ok()
            .filter(|k| !k.trim().is_empty())
        else {
            return Ok(None);
        };
        let mut config = FallbackConfig::default();
        if let Ok(url) = std::env::var("DEEPSEEK_BASE_URL")
            && !url.trim().is_empty()
        {
            config.base_url = url.trim().to_owned();
        }
        if let Ok(model) = std::env::var("DEEPSEEK_MODEL")
            && !model.trim().is_empty()
        {
            config.model = model.trim().to_owned();
        }
        Self::new(SecretString::from(key), config).map(Some)
    }

    /// The configuration.
    pub fn config(&self) -> &FallbackConfig {
        &self.config
    }

    /// Sends messages; returns the completion.
    pub async fn chat(
        &self,
        messages: &[ChatMessage],
        json_mode: bool,
        max_tokens: Option<u32>,
        temperature: Option<f32>,
    ) -> Result<Completion> {
        let body = ChatRequest {
            model: &self.config.model,
            messages,
            max_tokens,
            temperature,
            response_format: json_mode.then(|| serde_json::json!({"type": "json_object"})),
            stream: false,
        };
        let body = serde_json::to_vec(&body).map_err(|e| Error::Config {
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
        let text = choice
            .message
            .as_ref()
            .and_then(|m| m.content.clone())
            .ok_or_else(|| Error::MalformedResponse {
                reason: format!(
                    "chat completion without content (finish_reason {})",
                    finish.as_deref().unwrap_or("none")
                ),
            })?;
        let usage = parsed
            .usage
            .as_ref()
            .map(ChatUsage::usage)
            .unwrap_or_default();
        let mut completion = Completion::new(
            text,
            parsed.model.unwrap_or_else(|| self.config.model.clone()),
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
        Ok(completion)
    }

    /// Answers a Gemini request: the system instruction and messages are
    /// carried over (`model` becomes `assistant`), JSON mode keeps its
    /// schema as an instruction.
    pub async fn complete_gemini(&self, request: &GenerateContentRequest) -> Result<Completion> {
        let (system, turns) = request.texts();
        let config = request.generation_config.as_ref();
        let schema = config.and_then(|c| {
            c.response_json_schema
                .clone()
                .or_else(|| c.response_schema.clone())
        });
        let json_mode = schema.is_some()
            || config
                .and_then(|c| c.response_mime_type.as_deref())
                .is_some_and(|m| m == "application/json");
        let mut messages = Vec::new();
        let mut system = system.unwrap_or_default();
        if json_mode {
            if !system.is_empty() {
                system.push_str("\n\n");
            }
            system.push_str("Reply with one JSON object only");
            if let Some(schema) = &schema {
                system.push_str(" matching this JSON Schema: ");
                system.push_str(&schema.to_string());
            }
            system.push('.');
        }
        if !system.is_empty() {
            messages.push(ChatMessage::new("system", system));
        }
        for (role, text) in turns {
            let role = if role == "model" { "assistant" } else { "user" };
            messages.push(ChatMessage::new(role, text));
        }
        self.chat(
            &messages,
            json_mode,
            config.and_then(|c| c.max_output_tokens),
            config.and_then(|c| c.temperature),
        )
        .await
    }
}

#[async_trait]
impl Provider for OpenAiCompatible {
    fn model_id(&self) -> &str {
        &self.config.model
    }

    fn name(&self) -> String {
        self.config.name.clone()
    }

    async fn complete(&self, request: CompletionRequest) -> Result<Completion> {
        self.complete_gemini(&GenerateContentRequest::from_completion(&request))
            .await
    }
}

language_model_via_provider!(OpenAiCompatible);

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
