//! Core's [`LanguageModel`] for [`AnthropicClient`]: a provider-neutral
//! [`CompletionRequest`] becomes a Messages request, the answer a
//! [`Completion`], and an error a `ModelError`
//! ([`crate::Error::into_model_error`]) with the same kind and action (the
//! crate classifies in core's vocabulary), its HTTP status, retry delay and
//! request id, and the error itself as its `source`.
//!
//! Mapping choices:
//! - `system_cache`, `tools_cache` and a message's `cache` become
//!   `cache_control` breakpoints (on the system block, the last tool, the
//!   message's last block that can carry one), with their 5 m / 1 h TTL.
//! - `json_schema` becomes `output_config.format` (`json_schema`).
//! - `temperature` is dropped with a warning: API version 2026-10-21
//!   removed it, and a provider-neutral request may carry it for others.
//! - The API's `stop_reason` decodes straight into core's
//!   [`StopReason`](llm::StopReason) (one vocabulary, no mapping).
//! - A refusal is a [`Completion`] with [`llm::StopReason::Refusal`] and its
//!   details (core models it); [`crate::MessagesResponse::into_checked`]
//!   turns it into an error for callers that want one.
//! - Requests whose `max_output_tokens` exceeds
//!   [`ClientConfig::stream_above_max_tokens`](crate::ClientConfig) stream
//!   (long generations are refused without streaming).
//! - A retired model's error (refused before sending) has core's kind
//!   `retired`.

use async_trait::async_trait;
use serde_json::Value;
use swarmbus_core::llm::{self, Completion, CompletionRequest, LanguageModel};

use crate::client::AnthropicClient;
use crate::span::PROVIDER_NAME;
use crate::wire::{
    CacheControl, CacheTtl, ContentBlock, Effort, MessageParam, MessagesRequest, MessagesResponse,
    OutputConfig, RedactedThinkingBlock, Role, SystemPrompt, TextBlock, Thinking, ThinkingBlock,
    Tool, ToolChoice, ToolResultBlock, ToolUseBlock,
};

fn ttl(t: llm::CacheTtl) -> CacheControl {
    CacheControl::ephemeral(match t {
        llm::CacheTtl::OneHour => CacheTtl::OneHour,
        _ => CacheTtl::FiveMinutes,
    })
}

fn block_to_wire(b: &llm::ContentBlock) -> ContentBlock {
    match b {
        llm::ContentBlock::Text { text } => ContentBlock::text(text.clone()),
        llm::ContentBlock::Thinking {
            thinking,
            signature,
        } => ContentBlock::Thinking(ThinkingBlock {
            thinking: thinking.clone(),
            signature: signature.clone().unwrap_or_default(),
            ..ThinkingBlock::default()
        }),
        llm::ContentBlock::RedactedThinking { data } => {
            ContentBlock::RedactedThinking(RedactedThinkingBlock {
                data: data.clone(),
                ..RedactedThinkingBlock::default()
            })
        }
        llm::ContentBlock::ToolUse { id, name, input } => {
            ContentBlock::tool_use(id.clone(), name.clone(), input.clone())
        }
        llm::ContentBlock::ToolResult {
            tool_use_id,
            content,
            is_error,
        } => ContentBlock::tool_result(
            tool_use_id.clone(),
            Value::String(content.clone()),
            *is_error,
        ),
        llm::ContentBlock::Other { kind, raw } => ContentBlock::Other {
            kind: kind.clone(),
            raw: raw.clone(),
        },
        // A block kind newer than this mapping: sent as its JSON.
        other => {
            let raw = serde_json::to_value(other).unwrap_or(Value::Null);
            let kind = raw
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_owned();
            ContentBlock::Other { kind, raw }
        }
    }
}

fn block_from_wire(b: ContentBlock) -> llm::ContentBlock {
    match b {
        ContentBlock::Text(TextBlock { text, .. }) => llm::ContentBlock::Text { text },
        ContentBlock::Thinking(ThinkingBlock {
            thinking,
            signature,
            ..
        }) => llm::ContentBlock::Thinking {
            thinking,
            signature: (!signature.is_empty()).then_some(signature),
        },
        ContentBlock::RedactedThinking(RedactedThinkingBlock { data, .. }) => {
            llm::ContentBlock::RedactedThinking { data }
        }
        ContentBlock::ToolUse(ToolUseBlock {
            id, name, input, ..
        }) => llm::ContentBlock::ToolUse { id, name, input },
        ContentBlock::ToolResult(ToolResultBlock {
            tool_use_id,
            content,
            is_error,
            ..
        }) => llm::ContentBlock::ToolResult {
            tool_use_id,
            content: match content {
                Value::String(s) => s,
                other => other.to_string(),
            },
            is_error: is_error.unwrap_or(false),
        },
        ContentBlock::Other { kind, raw } => llm::ContentBlock::Other { kind, raw },
    }
}

/// Puts a breakpoint on the last block of `blocks` that can carry one.
fn cache_last(blocks: &mut [ContentBlock], cache: CacheControl) {
    if let Some(b) = blocks.iter_mut().rev().find(|b| {
        !matches!(
            b,
            ContentBlock::Thinking(_) | ContentBlock::RedactedThinking(_)
        )
    }) {
        b.set_cache_control(cache);
    }
}

/// The Messages request for a provider-neutral request to `model`.
pub fn to_messages_request(
    request: &CompletionRequest,
    model: &str,
    default_max_tokens: u32,
) -> MessagesRequest {
    let max_tokens = request.max_output_tokens.unwrap_or(default_max_tokens);
    let mut out = MessagesRequest::new(model, max_tokens, "");
    out.messages = request
        .messages
        .iter()
        .map(|m| {
            let mut blocks: Vec<ContentBlock> = m.content.iter().map(block_to_wire).collect();
            if let Some(t) = m.cache {
                cache_last(&mut blocks, ttl(t));
            }
            let role = match m.role {
                llm::Role::Assistant => Role::Assistant,
                _ => Role::User,
            };
            MessageParam::blocks(role, blocks)
        })
        .collect();
    out.system = request.system.as_ref().map(|s| match request.system_cache {
        Some(t) => {
            let mut b = ContentBlock::text(s.clone());
            b.set_cache_control(ttl(t));
            SystemPrompt::Blocks(vec![b])
        }
        None => SystemPrompt::Text(s.clone()),
    });
    out.tools = request
        .tools
        .iter()
        .map(|t| {
            Tool::new(
                t.name.clone(),
                t.description.clone(),
                t.input_schema.clone(),
            )
        })
        .collect();
    if let (Some(t), Some(last)) = (request.tools_cache, out.tools.last_mut()) {
        last.cache_control = Some(ttl(t));
    }
    out.tool_choice = request.tool_choice.as_ref().map(|c| match c {
        llm::ToolChoice::Any => ToolChoice::Any {
            disable_parallel_tool_use: None,
        },
        llm::ToolChoice::Tool { name } => ToolChoice::Tool {
            name: name.clone(),
            disable_parallel_tool_use: None,
        },
        llm::ToolChoice::None => ToolChoice::None,
        _ => ToolChoice::Auto {
            disable_parallel_tool_use: None,
        },
    });
    out.thinking = request.thinking.map(|t| match t {
        llm::Thinking::Enabled { budget_tokens } => Thinking::Enabled {
            budget_tokens,
            display: None,
        },
        llm::Thinking::Adaptive => Thinking::Adaptive { display: None },
        _ => Thinking::Disabled,
    });
    let effort = request.effort.as_ref().map(|e| match e {
        llm::Effort::Low => Effort::Low,
        llm::Effort::Medium => Effort::Medium,
        llm::Effort::High => Effort::High,
        llm::Effort::Max => Effort::Max,
        other if other.as_str() == "xhigh" => Effort::XHigh,
        other => Effort::Other(other.as_str().to_owned()),
    });
    if effort.is_some() || request.json_schema.is_some() {
        let mut config = match &request.json_schema {
            Some(schema) => OutputConfig::with_json_schema(schema.clone()),
            None => OutputConfig::default(),
        };
        config.effort = effort;
        out.output_config = Some(config);
    }
    out.stop_sequences.clone_from(&request.stop_sequences);
    if request.temperature.is_some() {
        tracing::warn!(
            model,
            "dropping temperature: anthropic-version 2026-10-21 removed it"
        );
    }
    out
}

/// The provider-neutral completion of an answer.
pub fn to_completion(response: MessagesResponse) -> Completion {
    let usage = response.usage().with_server_tool_requests(
        response
            .usage
            .server_tool_requests()
            .values()
            .fold(0u64, |a, b| a.saturating_add(*b)),
    );
    let stop = response.stop();
    let details = response.stop_details.clone();
    let model = response.model.clone();
    let content = response.content.into_iter().map(block_from_wire).collect();
    let mut completion = Completion::from_blocks(content, model, usage)
        .stop_reason(stop)
        .served_by(PROVIDER_NAME);
    if let Some(d) = details {
        let mut core = llm::StopDetails::default();
        core.category = d.category;
        core.explanation = d.explanation;
        completion = completion.stop_details(core);
    }
    completion
}

#[async_trait]
impl LanguageModel for AnthropicClient {
    fn model_id(&self) -> &str {
        &self.config().model
    }

    fn provider_name(&self) -> &str {
        PROVIDER_NAME
    }

    async fn complete(&self, request: CompletionRequest) -> swarmbus_core::Result<Completion> {
        let model = self.config().model.clone();
        let wire = to_messages_request(&request, &model, self.config().default_max_tokens);
        let stream = wire.max_tokens > self.config().stream_above_max_tokens;
        self.send(&wire, stream)
            .await
            .map(to_completion)
            .map_err(|e| e.into_model_error(&model).into())
    }
}
