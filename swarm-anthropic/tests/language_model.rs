//! The client through core's `LanguageModel`: provider-neutral requests
//! become the right Messages request, answers become completions, and
//! errors keep their kind, status, retry delay and action through core's
//! error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use secrecy::SecretString;
use serde_json::json;
use swarmbus_anthropic::AnthropicClient;
use swarmbus_core::llm::{
    CacheTtl, CompletionRequest, ContentBlock, Effort, LanguageModel, Message, ModelAction,
    ModelCatalog, ModelErrorKind, ModelLifecycle, Role, StopReason, Thinking, ToolChoice, ToolSpec,
};
use wiremock::ResponseTemplate;

use common::*;

/// A client whose clock shows a fixed day (2026-11-29 12:00 UTC): the
/// spend-limit fixture's date is ahead of it, whatever day the test runs.
fn model(base: &str, id: &str) -> AnthropicClient {
    AnthropicClient::new(SecretString::from(KEY), config(base).model(id))
        .unwrap()
        .with_clock(std::sync::Arc::new(
            swarmbus_core::ManualClock::at("2026-11-29T12:00:00Z").unwrap(),
        ))
}

#[tokio::test]
async fn a_provider_neutral_request_becomes_the_messages_request() {
    let server = server_with(response_of(&fixture(
        "test_anthropic_tool_with_thinking.1.json",
    )))
    .await;
    let m = model(&server.uri(), "claude-sonnet-5-5");
    assert_eq!(
        (m.model_id(), m.provider_name()),
        ("claude-sonnet-5-5", "anthropic")
    );
    let request = CompletionRequest::from_messages(vec![
        Message::user("what is the weather?").cached(CacheTtl::OneHour),
        Message::new(
            Role::Assistant,
            vec![
                ContentBlock::Thinking {
                    thinking: "t".into(),
                    signature: Some("sig".into()),
                },
                ContentBlock::ToolUse {
                    id: "toolu_1".into(),
                    name: "weather".into(),
                    input: json!({"city": "Oslo"}),
                },
            ],
        ),
        Message::new(
            Role::User,
            vec![ContentBlock::tool_error("toolu_1", "offline")],
        ),
    ])
    .system("be brief")
    .cache_system(CacheTtl::FiveMinutes)
    .tools(vec![ToolSpec::new(
        "weather",
        "Weather now",
        json!({"type": "object"}),
    )])
    .cache_tools(CacheTtl::OneHour)
    .tool_choice(ToolChoice::Tool {
        name: "weather".into(),
    })
    .max_output_tokens(900)
    .thinking(Thinking::Enabled { budget_tokens: 512 })
    .effort(Effort::Medium)
    .json(json!({"type": "object"}))
    .stop_sequences(vec!["STOP".into()])
    .temperature(0.3);
    m.complete(request).await.unwrap();
    let sent = &sent_bodies(&server).await[0];
    assert_eq!(
        sent,
        &json!({
            "model": "claude-sonnet-5-5",
            "max_tokens": 900,
            "stream": false,
            "system": [{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral", "ttl": "5m"}}],
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "what is the weather?",
                    "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "t", "signature": "sig"},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                    "content": "offline", "is_error": true}]}
            ],
            "tools": [{"name": "weather", "description": "Weather now", "input_schema": {"type": "object"},
                       "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            "tool_choice": {"type": "tool", "name": "weather"},
            "thinking": {"type": "enabled", "budget_tokens": 512},
            "output_config": {"effort": "medium", "format": {"type": "json_schema", "schema": {"type": "object"}}},
            "stop_sequences": ["STOP"]
        })
    );
}

#[tokio::test]
async fn an_answer_becomes_a_completion_with_thinking_tools_and_usage() {
    let fx = fixture("test_anthropic_tool_with_thinking.0.json");
    let server = server_with(response_of(&fx)).await;
    let c = model(&server.uri(), "claude-sonnet-4-5")
        .complete(CompletionRequest::new("hi"))
        .await
        .unwrap();
    let body = &fx["body"];
    assert_eq!(c.model, body["model"].as_str().unwrap());
    assert_eq!(
        c.stop_reason.as_str(),
        body["stop_reason"].as_str().unwrap()
    );
    assert!(!c.thinking().is_empty());
    assert!(!c.text().contains(&c.thinking()));
    assert_eq!(
        c.tool_calls().len(),
        body["content"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["type"] == "tool_use")
            .count()
    );
    assert_eq!(
        c.usage.input_tokens,
        body["usage"]["input_tokens"].as_u64().unwrap()
    );
    assert_eq!(
        c.usage.output_tokens,
        body["usage"]["output_tokens"].as_u64().unwrap()
    );
    assert_eq!(c.served_by.as_deref(), Some("anthropic"));
}

#[tokio::test]
async fn server_tool_requests_and_pause_turn_reach_the_completion() {
    let server = server_with(response_of(&fixture(
        "test_pause_turn_web_search_vcr.0.json",
    )))
    .await;
    let c = model(&server.uri(), "claude-sonnet-4-5")
        .complete(CompletionRequest::new("search"))
        .await
        .unwrap();
    assert_eq!(c.stop_reason, StopReason::PauseTurn);
    assert_eq!(c.usage.server_tool_requests, 10);
    assert!(
        c.content
            .iter()
            .any(|b| matches!(b, ContentBlock::Other { kind, .. } if kind == "server_tool_use"))
    );
}

#[tokio::test]
async fn a_refusal_is_a_completion_with_its_details() {
    let body = json!({"id":"m","type":"message","role":"assistant","model":"claude-sonnet-5-5",
        "content":[],"stop_reason":"refusal","stop_details":{"category":"cyber","explanation":"no"},
        "usage":{"input_tokens":1,"output_tokens":0}});
    let server = server_with(ResponseTemplate::new(200).set_body_json(body)).await;
    let c = model(&server.uri(), "claude-sonnet-5-5")
        .complete(CompletionRequest::new("x"))
        .await
        .unwrap();
    assert_eq!(c.stop_reason, StopReason::Refusal);
    assert_eq!(c.stop_details.unwrap().category.as_deref(), Some("cyber"));
}

async fn model_error(file: &str) -> swarmbus_core::llm::ModelError {
    let server = server_with(response_of(&fixture(file))).await;
    let e = model(&server.uri(), "claude-haiku-5-5")
        .complete(CompletionRequest::new("x"))
        .await
        .unwrap_err();
    match e {
        swarmbus_core::Error::Model(m) => *m,
        other => panic!("{file}: not a model error: {other:?}"),
    }
}

#[tokio::test]
async fn errors_keep_kind_status_delay_and_action_through_core() {
    let e = model_error("errors/rate_limit_429_retry_after.json").await;
    assert_eq!(e.kind, ModelErrorKind::RateLimited);
    assert_eq!(e.http_status, Some(429));
    assert_eq!(e.retry_after, Some(Duration::from_secs(17)));
    assert_eq!(
        e.action,
        ModelAction::RetryAfter {
            after: Duration::from_secs(17)
        }
    );
    assert_eq!(e.provider, "anthropic");
    assert!(e.request_id.is_some());

    let e = model_error("errors/rate_limit_429_spend_limit.json").await;
    assert_eq!(e.kind, ModelErrorKind::SpendLimit);
    assert_eq!(
        e.action,
        ModelAction::Stop {
            until: Some("2026-12-01T00:00:00Z".parse().unwrap())
        }
    );

    let e = model_error("errors/authentication_401.json").await;
    assert_eq!(
        (e.kind, e.action),
        (ModelErrorKind::Unauthenticated, ModelAction::Disable)
    );
    let e = model_error("errors/billing_402.json").await;
    assert_eq!(
        (e.kind, e.action),
        (ModelErrorKind::Billing, ModelAction::Disable)
    );
    let e = model_error("errors/overloaded_529.json").await;
    assert_eq!(
        (e.kind, e.action, e.http_status),
        (ModelErrorKind::Overloaded, ModelAction::Retry, Some(529))
    );
    let e = model_error("errors/invalid_request_400.json").await;
    assert_eq!(
        (e.kind, e.action),
        (ModelErrorKind::InvalidRequest, ModelAction::Fail)
    );
    let e = model_error("errors/not_found_404.json").await;
    assert_eq!(e.kind, ModelErrorKind::NotFound);
    assert!(e.to_string().contains("claude-haiku-5-5"));
    assert!(!e.to_string().contains(KEY));
}

struct Catalog;
impl ModelCatalog for Catalog {
    fn lifecycle(&self, model: &str, _today: chrono::NaiveDate) -> Option<ModelLifecycle> {
        (model == "claude-sonnet-4-5").then(|| {
            ModelLifecycle::new(model)
                .retires_on(NaiveDate::from_ymd_opt(2026, 11, 1).unwrap())
                .replacement("claude-sonnet-5-5")
        })
    }
}

#[tokio::test]
async fn a_retired_model_fails_as_retired_naming_its_replacement() {
    let server = server_with(ResponseTemplate::new(200)).await;
    let m = model(&server.uri(), "claude-sonnet-4-5").with_catalog(Arc::new(Catalog));
    let e = m.complete(CompletionRequest::new("x")).await.unwrap_err();
    let swarmbus_core::Error::Model(e) = e else {
        panic!("{e:?}");
    };
    assert_eq!(
        (e.kind, e.action),
        (ModelErrorKind::Retired, ModelAction::Fail)
    );
    assert!(e.message.contains("claude-sonnet-5-5"), "{}", e.message);
    assert!(sent_bodies(&server).await.is_empty());
}

#[tokio::test]
async fn a_long_generation_streams() {
    let fx = fixture("test_request_stream_fallback_for_high_max_tokens.json");
    let server = server_with(response_of(&fx)).await;
    let c = model(&server.uri(), "claude-sonnet-4-5")
        .complete(CompletionRequest::new("x").max_output_tokens(64_000))
        .await
        .unwrap();
    assert_eq!(sent_bodies(&server).await[0]["stream"], true);
    assert!(!c.text().is_empty());
}
