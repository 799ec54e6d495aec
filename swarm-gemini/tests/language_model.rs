//! The Gemini client, the shard pool and the DeepSeek fallback as core
//! `LanguageModel`s: the whole v2 request on the wire, tool calls and
//! thinking both ways, truncation (issue 11 item 8) and errors that keep
//! their action.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{KEY, MODEL, client_for, fixture, serve_stream, serve_unary, success_body};
use secrecy::SecretString;
use serde_json::json;
use swarmbus_core::keys::ShardId;
use swarmbus_core::llm::{
    CompletionRequest, ContentBlock, LanguageModel, Message, ModelAction, ModelErrorKind, Role,
    StopReason, Thinking, ToolChoice, ToolSpec,
};
use swarmbus_core::quota::QuotaLimits;
use swarmbus_gemini::{
    ClientConfig, Error, ErrorKind, FallbackConfig, OpenAiCompatible, PoolConfig, ServedBy,
    ShardConfig, ShardPool,
};
use swarmbus_memory::MemoryBus;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NO_PARTS: &str = "written/unary-success-max-tokens-thinking-no-parts.json";
const THOUGHT_ONLY: &str = "written/unary-success-max-tokens-thought-only.json";
const STREAM_NO_PARTS: &str = "written/streaming-success-max-tokens-no-parts.txt";

async fn body_sent(server: &MockServer, n: usize) -> serde_json::Value {
    let reqs = server.received_requests().await.unwrap();
    serde_json::from_slice(&reqs[n].body).unwrap()
}

// ---------------------------------------------------------------------------
// Truncation: MAX_TOKENS with no text is a success (issue 11 item 8)

#[tokio::test]
async fn max_tokens_without_parts_is_a_success_with_no_text() {
    let server = MockServer::start().await;
    serve_unary(&server, KEY, 200, fixture(NO_PARTS)).await;
    let client = client_for(&server, KEY);
    let g = client
        .generate(
            MODEL,
            &swarmbus_gemini::wire::GenerateContentRequest::user("q"),
        )
        .await
        .expect("a MAX_TOKENS answer is a success");
    assert_eq!(g.text, "");
    assert_eq!(
        g.finish_reason,
        Some(swarmbus_gemini::wire::FinishReason::MaxTokens)
    );
    assert_eq!(g.usage.thoughts_token_count, 99);

    let c = client.complete(CompletionRequest::new("q")).await.unwrap();
    assert_eq!(c.stop_reason, StopReason::MaxTokens);
    assert_eq!(c.text(), "");
    assert_eq!(c.usage.thinking_tokens, 99);
    assert_eq!(c.usage.output_tokens, 99);
}

#[tokio::test]
async fn max_tokens_with_only_a_thought_is_thinking_not_text() {
    let server = MockServer::start().await;
    serve_unary(&server, KEY, 200, fixture(THOUGHT_ONLY)).await;
    let c = client_for(&server, KEY)
        .complete(CompletionRequest::new("q"))
        .await
        .unwrap();
    assert_eq!(c.stop_reason, StopReason::MaxTokens);
    assert_eq!(c.text(), "", "a thought is never answer text");
    assert!(c.thinking().starts_with("**Weighing the findings**"));
}

#[tokio::test]
async fn a_streamed_max_tokens_without_parts_is_a_success() {
    let server = MockServer::start().await;
    serve_stream(&server, KEY, 200, fixture(STREAM_NO_PARTS)).await;
    let g = client_for(&server, KEY)
        .stream_generate(
            MODEL,
            &swarmbus_gemini::wire::GenerateContentRequest::user("q"),
        )
        .await
        .expect("a MAX_TOKENS stream is a success");
    assert_eq!(g.text, "");
    assert_eq!(g.usage.thoughts_token_count, 99);
    assert_eq!(
        g.finish_reason,
        Some(swarmbus_gemini::wire::FinishReason::MaxTokens)
    );
}

// The librarian's truncation tests moved with the librarian to
// `swarm-agents/tests/librarian.rs`.

// ---------------------------------------------------------------------------
// The whole request on Gemini's wire, tool calls both ways

fn now_tool() -> ToolSpec {
    ToolSpec::new(
        "now",
        "The current date and time.",
        json!({"type": "object", "properties": {}}),
    )
}

#[tokio::test]
async fn a_recorded_function_call_with_a_signature_round_trips() {
    let server = MockServer::start().await;
    serve_unary(
        &server,
        KEY,
        200,
        fixture("googleai/unary-success-thinking-function-call-thought-summary-signature.json"),
    )
    .await;
    let client = client_for(&server, KEY);
    let first = CompletionRequest::new("How many days until New Year's Eve?")
        .system("Use tools.")
        .tools(vec![now_tool()])
        .tool_choice(ToolChoice::Auto)
        .thinking(Thinking::Enabled {
            budget_tokens: 1024,
        })
        .max_output_tokens(2048)
        .stop_sequences(vec!["STOP!".into()]);
    let c = client.complete(first.clone()).await.unwrap();
    assert_eq!(c.stop_reason, StopReason::ToolUse);
    assert_eq!(c.text(), "");
    assert!(c.thinking().contains("New Year's Eve"));
    let calls = c.tool_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].name, "now");
    let call_id = calls[0].id.to_owned();
    assert!(c.content.iter().any(|b| matches!(
        b,
        ContentBlock::Thinking { thinking, signature: Some(s) } if thinking.is_empty() && s.starts_with("CtQOAVSoXO74")
    )));

    let sent = body_sent(&server, 0).await;
    assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "Use tools.");
    assert_eq!(sent["tools"][0]["functionDeclarations"][0]["name"], "now");
    assert_eq!(sent["toolConfig"]["functionCallingConfig"]["mode"], "AUTO");
    let config = &sent["generationConfig"];
    assert_eq!(config["maxOutputTokens"], 2048);
    assert_eq!(config["stopSequences"][0], "STOP!");
    assert_eq!(config["thinkingConfig"]["thinkingBudget"], 1024);
    assert_eq!(config["thinkingConfig"]["includeThoughts"], true);

    // Second turn: the answer goes back as the model's turn, with the tool's
    // result; the signature rides on the functionCall part again.
    let second = first.message(c.to_message()).message(Message::new(
        Role::User,
        vec![ContentBlock::tool_result(call_id, "2026-12-29")],
    ));
    let _ = client.complete(second).await.unwrap();
    let sent = body_sent(&server, 1).await;
    let model_turn = &sent["contents"][1];
    assert_eq!(model_turn["role"], "model");
    let parts = model_turn["parts"].as_array().unwrap();
    assert_eq!(parts[0]["thought"], true);
    assert_eq!(parts[1]["functionCall"]["name"], "now");
    assert!(
        parts[1]["thoughtSignature"]
            .as_str()
            .unwrap()
            .starts_with("CtQOAVSoXO74")
    );
    assert!(parts[1]["functionCall"].get("id").is_none());
    let result = &sent["contents"][2];
    assert_eq!(result["role"], "user");
    assert_eq!(result["parts"][0]["functionResponse"]["name"], "now");
    assert_eq!(
        result["parts"][0]["functionResponse"]["response"]["output"],
        "2026-12-29"
    );
}

#[tokio::test]
async fn a_streamed_function_call_is_a_tool_call() {
    let server = MockServer::start().await;
    serve_stream(
        &server,
        KEY,
        200,
        fixture("vertexai/streaming-success-function-call-short.txt"),
    )
    .await;
    let g = client_for(&server, KEY)
        .stream_generate(
            MODEL,
            &swarmbus_gemini::wire::GenerateContentRequest::user("t?"),
        )
        .await
        .unwrap();
    let c = g.into_completion(MODEL, None);
    assert_eq!(c.stop_reason, StopReason::ToolUse);
    let calls = c.tool_calls();
    assert_eq!(calls[0].name, "getTemperature");
    assert_eq!(calls[0].input["city"], "San Jose");
}

#[tokio::test]
async fn a_streamed_thinking_function_call_keeps_thoughts_apart() {
    let server = MockServer::start().await;
    serve_stream(
        &server,
        KEY,
        200,
        fixture("googleai/streaming-success-thinking-function-call-thought-summary-signature.txt"),
    )
    .await;
    let g = client_for(&server, KEY)
        .stream_generate(
            MODEL,
            &swarmbus_gemini::wire::GenerateContentRequest::user("t?"),
        )
        .await
        .unwrap();
    let c = g.into_completion(MODEL, None);
    assert_eq!(c.text(), "");
    assert!(c.thinking().contains("**Calculating the Days**"));
    assert!(c.thinking().contains("**Determining the Approach**"));
    assert_eq!(c.tool_calls()[0].name, "now");
    assert_eq!(c.stop_reason, StopReason::ToolUse);
}

// ---------------------------------------------------------------------------
// The fallback: OpenAI chat mapping, and the pool reading its action

fn deepseek(server: &MockServer) -> OpenAiCompatible {
    OpenAiCompatible::new(
        SecretString::from("test-fallback-key-DO-NOT-LEAK".to_owned()),
        FallbackConfig::default().base_url(server.uri()),
    )
    .unwrap()
}

#[tokio::test]
async fn the_fallback_maps_tools_tool_calls_and_results_to_openai_chat() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "r1", "model": "deepseek-chat",
            "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                "role": "assistant", "content": null, "reasoning_content": "check the clock",
                "tool_calls": [{"id": "call_9", "type": "function",
                                "function": {"name": "now", "arguments": "{\"tz\":\"UTC\"}"}}]}}],
            "usage": {"prompt_tokens": 20, "completion_tokens": 7}
        })))
        .mount(&server)
        .await;
    let fb = deepseek(&server);
    assert_eq!(fb.provider_name(), "deepseek");
    let request = CompletionRequest::from_messages(vec![
        Message::user("What time is it?"),
        Message::new(
            Role::Assistant,
            vec![
                ContentBlock::text("Let me look."),
                ContentBlock::ToolUse {
                    id: "call_1".into(),
                    name: "now".into(),
                    input: json!({}),
                },
            ],
        ),
        Message::new(
            Role::User,
            vec![
                ContentBlock::tool_error("call_1", "clock offline"),
                ContentBlock::text("Try again."),
            ],
        ),
    ])
    .system("Be brief.")
    .tools(vec![now_tool()])
    .tool_choice(ToolChoice::Any)
    .max_output_tokens(64)
    .stop_sequences(vec!["END".into()]);
    let c = fb.complete(request).await.unwrap();
    assert_eq!(c.stop_reason, StopReason::ToolUse);
    assert_eq!(c.thinking(), "check the clock");
    let calls = c.tool_calls();
    assert_eq!((calls[0].id, calls[0].name), ("call_9", "now"));
    assert_eq!(calls[0].input["tz"], "UTC");

    let sent = body_sent(&server, 0).await;
    let msgs = sent["messages"].as_array().unwrap();
    let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "user"]);
    assert_eq!(msgs[2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(msgs[2]["tool_calls"][0]["function"]["name"], "now");
    assert_eq!(msgs[3]["tool_call_id"], "call_1");
    assert_eq!(msgs[3]["content"], "Error: clock offline");
    assert_eq!(sent["tools"][0]["function"]["name"], "now");
    assert_eq!(sent["tool_choice"], "required");
    assert_eq!(sent["max_tokens"], 64);
    assert_eq!(sent["stop"][0], "END");
}

#[tokio::test]
async fn fallback_errors_keep_kind_status_delay_and_action() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "7")
                .set_body_json(json!({"error": {"message": "slow down"}})),
        )
        .mount(&server)
        .await;
    let e = deepseek(&server)
        .complete(CompletionRequest::new("hi"))
        .await
        .unwrap_err();
    let swarmbus_core::Error::Model(m) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(m.provider, "deepseek");
    assert_eq!(m.kind, ModelErrorKind::RateLimited);
    assert_eq!(m.http_status, Some(429));
    assert_eq!(m.retry_after, Some(Duration::from_secs(7)));
    assert_eq!(
        m.action,
        ModelAction::RetryAfter {
            after: Duration::from_secs(7)
        }
    );
    assert_eq!(
        e.retry(),
        swarmbus_core::error::Retry::After(Duration::from_secs(7))
    );
}

fn exhausted_pool(server: &MockServer) -> ShardPool<MemoryBus> {
    ShardPool::new(
        vec![
            ShardConfig::new(ShardId::new(1).unwrap(), SecretString::from(KEY.to_owned()))
                .with_limits(QuotaLimits::free_tier()),
        ],
        Arc::new(MemoryBus::new()),
        PoolConfig::default()
            .model(MODEL)
            .client(ClientConfig::default().base_url(server.uri()))
            .backoff(Duration::from_millis(1), Duration::from_millis(5))
            .max_wait(Duration::from_secs(5)),
    )
    .unwrap()
}

async fn shard_is_out_for_the_day(server: &MockServer) {
    serve_unary(
        server,
        KEY,
        429,
        fixture("transcribed/error-429-per-day-free-tier.json"),
    )
    .await;
}

#[tokio::test]
async fn the_pool_retries_a_fallback_whose_action_says_retry() {
    let server = MockServer::start().await;
    shard_is_out_for_the_day(&server).await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(
            ResponseTemplate::new(503).set_body_json(json!({"error": {"message": "busy"}})),
        )
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "model": "deepseek-chat",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "second try"}}]
        })))
        .mount(&server)
        .await;
    let pool = exhausted_pool(&server).with_fallback(deepseek(&server));
    let a = pool
        .complete_request(&CompletionRequest::new("hi"))
        .await
        .unwrap();
    assert_eq!(a.served_by, ServedBy::Fallback("deepseek".into()));
    assert_eq!(a.completion.text(), "second try");
    let to_fallback = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/chat/completions")
        .count();
    assert_eq!(to_fallback, 2, "the 503 was retried once");
}

/// A fallback that always fails with the given action.
#[derive(Debug)]
struct Failing(ModelAction, ModelErrorKind);

#[async_trait::async_trait]
impl LanguageModel for Failing {
    fn model_id(&self) -> &str {
        "failing-1"
    }

    fn provider_name(&self) -> &str {
        "anthropic"
    }

    async fn complete(
        &self,
        _: CompletionRequest,
    ) -> swarmbus_core::Result<swarmbus_core::llm::Completion> {
        Err(swarmbus_core::llm::ModelError::new(
            "anthropic",
            "failing-1",
            self.1,
            self.0,
            "scripted failure",
        )
        .http_status(400)
        .into())
    }
}

#[tokio::test]
async fn any_language_model_is_a_fallback_and_its_action_decides() {
    // `Fail`: the request is wrong; the call fails with the fallback's own
    // error, kind and status kept.
    let server = MockServer::start().await;
    shard_is_out_for_the_day(&server).await;
    let fb: Arc<dyn LanguageModel> =
        Arc::new(Failing(ModelAction::Fail, ModelErrorKind::InvalidRequest));
    let pool = exhausted_pool(&server).with_fallback(fb);
    let e = pool
        .complete_request(&CompletionRequest::new("hi"))
        .await
        .unwrap_err();
    match &e {
        Error::Model(m) => {
            assert_eq!(m.provider, "anthropic");
            assert_eq!(m.kind, ModelErrorKind::InvalidRequest);
            assert_eq!(m.http_status, Some(400));
        }
        other => panic!("{other:?}"),
    }
    // Through the core trait, the fallback's error is passed on whole.
    let core = pool
        .complete(CompletionRequest::new("hi"))
        .await
        .unwrap_err();
    let swarmbus_core::Error::Model(m) = core else {
        panic!()
    };
    assert_eq!(m.provider, "anthropic");

    // `Rotate` (or wait/disable/stop): give up on it; every shard's state
    // and why the fallback did not answer.
    let pool = exhausted_pool(&server)
        .with_fallback(Failing(ModelAction::Rotate, ModelErrorKind::Overloaded));
    match pool
        .complete_request(&CompletionRequest::new("hi"))
        .await
        .unwrap_err()
    {
        Error::AllShardsExhausted { fallback, .. } => {
            let f = fallback.unwrap();
            assert!(f.starts_with("overloaded"), "{f}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn gemini_errors_through_the_trait_keep_status_delay_and_action() {
    let server = MockServer::start().await;
    serve_unary(
        &server,
        KEY,
        429,
        fixture("transcribed/error-429-per-minute-free-tier.json"),
    )
    .await;
    let e = client_for(&server, KEY)
        .complete(CompletionRequest::new("hi"))
        .await
        .unwrap_err();
    let swarmbus_core::Error::Model(m) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(m.provider, "gcp.gemini");
    assert_eq!(m.kind, ModelErrorKind::RateLimited);
    assert_eq!(m.http_status, Some(429));
    assert_eq!(m.retry_after, Some(Duration::from_secs(58)));
    assert_eq!(
        m.action,
        ModelAction::RetryAfter {
            after: Duration::from_secs(58)
        }
    );
    assert!(!format!("{e} {e:?}").contains(KEY));
}

#[tokio::test]
async fn the_client_pool_and_fallback_name_their_providers() {
    let server = MockServer::start().await;
    serve_unary(&server, KEY, 200, success_body("hi")).await;
    let client = client_for(&server, KEY);
    assert_eq!(client.provider_name(), "gcp.gemini");
    assert_eq!(client.model_id(), MODEL);
    let pool = exhausted_pool(&server);
    assert_eq!(pool.provider_name(), "gcp.gemini");
    assert_eq!(deepseek(&server).provider_name(), "deepseek");
    assert_eq!(
        swarmbus_gemini::DEFAULT_MODEL,
        "gemini-3.5-flash-lite",
        "the replacement Google names for gemini-2.5-flash"
    );
}

/// A catalog in which the test model was retired on 2026-11-01.
struct Retiring;

impl swarmbus_core::llm::ModelCatalog for Retiring {
    fn lifecycle(
        &self,
        model: &str,
        _today: chrono::NaiveDate,
    ) -> Option<swarmbus_core::llm::ModelLifecycle> {
        (model == MODEL).then(|| {
            swarmbus_core::llm::ModelLifecycle::new(MODEL)
                .retires_on(chrono::NaiveDate::from_ymd_opt(2026, 11, 1).unwrap())
                .replacement("gemini-3.5-flash-lite")
        })
    }
}

#[tokio::test]
async fn a_retired_model_is_refused_before_anything_is_sent() {
    let server = MockServer::start().await;
    serve_unary(&server, KEY, 200, success_body("never")).await;
    let clock = Arc::new(swarmbus_gemini::ManualClock::new(
        "2026-11-29T12:00:00Z".parse().unwrap(),
    ));
    let client = client_for(&server, KEY)
        .with_clock(clock.clone())
        .with_catalog(Arc::new(Retiring));
    let e = client
        .complete(CompletionRequest::new("hi"))
        .await
        .unwrap_err();
    let swarmbus_core::Error::Model(m) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(m.kind, ModelErrorKind::Retired);
    assert!(m.message.contains("use gemini-3.5-flash-lite"), "{m}");

    let pool = exhausted_pool(&server)
        .with_clock(clock)
        .with_catalog(Arc::new(Retiring));
    let e = pool
        .complete_request(&CompletionRequest::new("hi"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("gemini-3.5-flash-lite"), "{e}");
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_request_no_model_could_answer_is_refused_before_it_is_sent() {
    let server = MockServer::start().await;
    serve_unary(&server, KEY, 200, success_body("never")).await;
    let client = client_for(&server, KEY);
    for bad in [
        CompletionRequest::from_messages(vec![]),
        CompletionRequest::new("hi").max_output_tokens(0),
    ] {
        let e = client.complete(bad.clone()).await.unwrap_err();
        let swarmbus_core::Error::Model(m) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(m.kind, ModelErrorKind::InvalidInput);
        assert_eq!(m.action, ModelAction::Fail);
        let e = deepseek(&server).complete(bad.clone()).await.unwrap_err();
        assert_eq!(e.retry(), swarmbus_core::error::Retry::Never);
        let e = exhausted_pool(&server)
            .complete_request(&bad)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    }
    assert!(server.received_requests().await.unwrap().is_empty());
}
