//! One behaviour per test, against a local mock of the Messages API
//! replaying recorded answers (or documented shapes).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, Utc};
use secrecy::SecretString;
use serde_json::{Value, json};
use swarmbus_anthropic::wire::{CacheControl, CacheTtl};
use swarmbus_anthropic::{
    AnthropicClient, ContentBlock, Error, MessageParam, MessagesRequest, Role, StopReason,
    StreamUpdate, Tool, ToolChoice,
};
use swarmbus_core::ManualClock;
use swarmbus_core::llm::{ModelCatalog, ModelLifecycle};
use swarmbus_core::{ModelAction, ModelErrorKind};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use common::*;

fn request() -> MessagesRequest {
    MessagesRequest::new("claude-haiku-4-5", 256, "hello")
}

async fn answer_of(name: &str) -> swarmbus_anthropic::MessagesResponse {
    let fx = fixture(name);
    let server = server_with(response_of(&fx)).await;
    let req: MessagesRequest = serde_json::from_value(fx["request"].clone()).unwrap();
    let c = client(&server.uri());
    if fx.get("sse").is_some() {
        c.stream_collect(&req).await.unwrap()
    } else {
        c.create_message(&req).await.unwrap()
    }
}

async fn error_of(name: &str) -> Error {
    let server = server_with(response_of(&fixture(name))).await;
    client(&server.uri())
        .create_message(&request())
        .await
        .unwrap_err()
}

fn sse(events: &[(&str, Value)]) -> String {
    events
        .iter()
        .map(|(e, d)| format!("event: {e}\ndata: {d}\n\n"))
        .collect()
}

fn start(input: u64) -> (&'static str, Value) {
    (
        "message_start",
        json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",
            "content":[],"model":"claude-haiku-4-5","stop_reason":null,"stop_sequence":null,
            "usage":{"input_tokens":input,"output_tokens":1,"cache_read_input_tokens":0,
                     "cache_creation_input_tokens":0}}}),
    )
}

/// A whole streamed text answer: `text` in one delta, then `stop_reason`
/// with `output` tokens.
fn text_stream(input: u64, text: &str, stop_reason: &str, output: u64) -> String {
    sse(&[
        start(input),
        (
            "content_block_start",
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        ),
        (
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":text}}),
        ),
        (
            "content_block_stop",
            json!({"type":"content_block_stop","index":0}),
        ),
        (
            "message_delta",
            json!({"type":"message_delta","delta":{"stop_reason":stop_reason},"usage":{"output_tokens":output}}),
        ),
        ("message_stop", json!({"type":"message_stop"})),
    ])
}

async fn stream_server(body: impl Into<Vec<u8>>) -> MockServer {
    server_with(ResponseTemplate::new(200).set_body_raw(body.into(), "text/event-stream")).await
}

// ---- usage ----

#[tokio::test]
async fn cache_writes_and_reads_land_in_their_buckets() {
    let r = answer_of("test_anthropic_cache_real_api.1.json").await;
    let u = r.usage();
    assert_eq!(u.input_tokens, 3);
    assert_eq!(u.cache_read_tokens, 1111);
    assert_eq!(u.cache_write_5m_tokens, 418);
    assert_eq!(u.cache_write_1h_tokens, 0);
    assert_eq!(u.output_tokens, 33);
}

#[tokio::test]
async fn one_hour_cache_writes_come_from_usage_cache_creation() {
    let body = json!({"id":"m","type":"message","role":"assistant","model":"claude-sonnet-5-5",
        "content":[{"type":"text","text":"ok"}],"stop_reason":"end_turn","stop_sequence":null,
        "usage":{"input_tokens":10,"output_tokens":2,"cache_read_input_tokens":0,
                 "cache_creation_input_tokens":1500,
                 "cache_creation":{"ephemeral_5m_input_tokens":500,"ephemeral_1h_input_tokens":1000}}});
    let server = server_with(ResponseTemplate::new(200).set_body_json(body)).await;
    let u = client(&server.uri())
        .create_message(&request())
        .await
        .unwrap()
        .usage();
    assert_eq!(
        (u.cache_write_5m_tokens, u.cache_write_1h_tokens),
        (500, 1000)
    );
}

#[tokio::test]
async fn stream_usage_starts_at_message_start_and_message_delta_replaces_it() {
    let body = sse(&[
        start(25),
        (
            "content_block_start",
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        ),
        (
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}),
        ),
        (
            "content_block_stop",
            json!({"type":"content_block_stop","index":0}),
        ),
        (
            "message_delta",
            json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":50}}),
        ),
        (
            "message_delta",
            json!({"type":"message_delta","delta":{},"usage":{"output_tokens":70}}),
        ),
        ("message_stop", json!({"type":"message_stop"})),
    ]);
    let server = stream_server(body).await;
    let r = client(&server.uri())
        .stream_collect(&request())
        .await
        .unwrap();
    let u = r.usage();
    // Cumulative: 70, not 1 + 50 + 70; the input from message_start stays.
    assert_eq!((u.input_tokens, u.output_tokens), (25, 70));
}

#[tokio::test]
async fn server_tool_requests_are_counted() {
    let r = answer_of("test_pause_turn_web_search_vcr.0.json").await;
    assert_eq!(
        r.usage.server_tool_requests().get("web_search_requests"),
        Some(&10)
    );
}

// ---- content ----

#[tokio::test]
async fn thinking_is_kept_but_out_of_the_text() {
    let r = answer_of("test_anthropic_model_thinking_part_stream.json").await;
    assert!(!r.thinking().is_empty());
    assert!(!r.text().contains(&r.thinking()));
    let ContentBlock::Thinking(t) = &r.content[0] else {
        panic!("first block is thinking: {:?}", r.content[0]);
    };
    assert!(!t.signature.is_empty(), "the signature is kept");
    let r = answer_of("test_anthropic_model_thinking_part.0.json").await;
    assert!(!r.thinking().is_empty() && !r.text().is_empty());
    assert!(!r.text().contains(&r.thinking()));
}

#[tokio::test]
async fn parallel_tool_calls_come_with_their_inputs() {
    let r = answer_of("test_multiple_parallel_tool_calls.0.json").await;
    assert_eq!(r.stop(), StopReason::ToolUse);
    let calls = r.tool_calls();
    assert!(!calls.is_empty());
    for c in calls {
        assert!(c.id.starts_with("toolu_") && !c.name.is_empty());
        assert!(c.input.is_object());
    }
}

#[tokio::test]
async fn a_streamed_tool_call_is_assembled_from_json_fragments() {
    let body = sse(&[
        start(5),
        (
            "content_block_start",
            json!({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"get_weather","input":{}}}),
        ),
        (
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Par"}}),
        ),
        (
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"is\"}"}}),
        ),
        (
            "content_block_stop",
            json!({"type":"content_block_stop","index":0}),
        ),
        (
            "message_delta",
            json!({"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":9}}),
        ),
        ("message_stop", json!({"type":"message_stop"})),
    ]);
    let server = stream_server(body).await;
    let c = client(&server.uri());
    let mut stream = c.stream_message(&request()).await.unwrap();
    let mut saw = None;
    while let Some(u) = stream.next_update().await {
        if let StreamUpdate::ToolUse { name, .. } = u.unwrap() {
            saw = Some(name);
        }
    }
    assert_eq!(saw.as_deref(), Some("get_weather"));
    let r = stream.finish().unwrap();
    assert_eq!(r.tool_calls()[0].input, json!({"city": "Paris"}));
}

#[tokio::test]
async fn pause_turn_is_a_stop_reason_to_continue_from() {
    let r = answer_of("test_pause_turn_web_search_vcr.0.json").await;
    assert_eq!(r.stop(), StopReason::PauseTurn);
    let r = answer_of("test_pause_turn_web_search_streaming_vcr.0.json").await;
    assert_eq!(r.stop(), StopReason::PauseTurn);
}

#[tokio::test]
async fn a_refusal_is_refused_with_its_category_and_never_retried() {
    let body = json!({"id":"m","type":"message","role":"assistant","model":"claude-sonnet-5-5",
        "content":[],"stop_reason":"refusal","stop_sequence":null,
        "stop_details":{"type":"refusal","category":"cyber","explanation":"declined"},
        "usage":{"input_tokens":10,"output_tokens":0}});
    let server = server_with(ResponseTemplate::new(200).set_body_json(body)).await;
    let r = client(&server.uri())
        .create_message(&request())
        .await
        .unwrap();
    assert_eq!(r.stop(), StopReason::Refusal);
    assert_eq!(
        r.stop_details.as_ref().unwrap().category.as_deref(),
        Some("cyber")
    );
    let e = r.into_checked().unwrap_err();
    assert_eq!(e.kind(), ModelErrorKind::Refused);
    assert_eq!(e.action(), ModelAction::Fail);
    assert!(e.to_string().contains("cyber"), "{e}");
}

#[tokio::test]
async fn an_unknown_stop_reason_is_kept_not_an_error() {
    let body = json!({"id":"m","type":"message","role":"assistant","model":"x",
        "content":[{"type":"text","text":"a"}],"stop_reason":"brand_new_reason",
        "usage":{"input_tokens":1,"output_tokens":1}});
    let server = server_with(ResponseTemplate::new(200).set_body_json(body)).await;
    let r = client(&server.uri())
        .create_message(&request())
        .await
        .unwrap();
    assert_eq!(r.stop(), StopReason::Other("brand_new_reason".into()));
}

#[tokio::test]
async fn a_response_cut_by_max_tokens_is_an_answer_even_when_empty() {
    let body = json!({"id":"m","type":"message","role":"assistant","model":"x",
        "content":[{"type":"thinking","thinking":"long...","signature":"s"}],
        "stop_reason":"max_tokens","usage":{"input_tokens":1,"output_tokens":256}});
    let server = server_with(ResponseTemplate::new(200).set_body_json(body)).await;
    let r = client(&server.uri())
        .create_message(&request())
        .await
        .unwrap();
    assert_eq!((r.stop(), r.text().as_str()), (StopReason::MaxTokens, ""));
}

// ---- stream robustness ----

#[tokio::test]
async fn unknown_events_and_block_types_are_skipped() {
    let body = sse(&[
        start(5),
        ("ping", json!({"type":"ping"})),
        ("brand_new_event", json!({"type":"brand_new_event","x":1})),
        (
            "content_block_start",
            json!({"type":"content_block_start","index":0,"content_block":{"type":"hologram","frames":[]}}),
        ),
        (
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"hologram_delta","frame":1}}),
        ),
        (
            "content_block_stop",
            json!({"type":"content_block_stop","index":0}),
        ),
        (
            "content_block_start",
            json!({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}),
        ),
        (
            "content_block_delta",
            json!({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"ok"}}),
        ),
        (
            "content_block_stop",
            json!({"type":"content_block_stop","index":1}),
        ),
        (
            "message_delta",
            json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":3}}),
        ),
        ("message_stop", json!({"type":"message_stop"})),
    ]);
    let server = stream_server(body).await;
    let r = client(&server.uri())
        .stream_collect(&request())
        .await
        .unwrap();
    assert_eq!(r.text(), "ok");
    assert_eq!(r.content[0].kind(), "hologram");
}

#[tokio::test]
async fn an_error_event_mid_stream_is_an_error_of_its_type() {
    let fx = fixture("errors/stream_error_overloaded.json");
    let server = server_with(response_of(&fx)).await;
    let c = client(&server.uri());
    let mut stream = c.stream_message(&request()).await.unwrap();
    let mut text = String::new();
    let err = loop {
        match stream.next_update().await {
            Some(Ok(StreamUpdate::Text(t))) => text.push_str(&t),
            Some(Ok(_)) => {}
            Some(Err(e)) => break e,
            None => panic!("the stream ended without its error"),
        }
    };
    assert_eq!(text, "Partial answ");
    assert_eq!(err.kind(), ModelErrorKind::Overloaded);
    assert_eq!(err.action(), ModelAction::Retry);
    assert_eq!(err.http_status(), None);
}

#[tokio::test]
async fn a_stream_without_message_stop_is_an_error() {
    let body = sse(&[
        start(5),
        (
            "content_block_start",
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        ),
        (
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"cut"}}),
        ),
    ]);
    let server = stream_server(body).await;
    let e = client(&server.uri())
        .stream_collect(&request())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::IncompleteStream { events: 3 }), "{e:?}");
    assert_eq!(e.kind(), ModelErrorKind::MalformedResponse);
}

#[tokio::test]
async fn invalid_utf8_in_an_event_is_a_typed_error() {
    let mut body = sse(&[start(5)]).into_bytes();
    body.extend_from_slice(b"event: content_block_delta\ndata: {\"x\": \"\xff\xfe\"}\n\n");
    let server = stream_server(body).await;
    let e = client(&server.uri())
        .stream_collect(&request())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidUtf8 { .. }), "{e:?}");
}

#[tokio::test]
async fn invalid_json_in_an_event_is_a_typed_error() {
    let mut body = sse(&[start(5)]);
    body.push_str("event: content_block_delta\ndata: {not json\n\n");
    let server = stream_server(body).await;
    let e = client(&server.uri())
        .stream_collect(&request())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidEvent { event, .. } if event == "content_block_delta"),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_body_over_the_cap_is_refused() {
    let big = json!({"id":"m","type":"message","role":"assistant","model":"x",
        "content":[{"type":"text","text":"a".repeat(10_000)}],"stop_reason":"end_turn",
        "usage":{"input_tokens":1,"output_tokens":1}});
    let server = server_with(ResponseTemplate::new(200).set_body_json(big)).await;
    let c = AnthropicClient::new(
        SecretString::from(KEY),
        config(&server.uri()).max_body_bytes(4096),
    )
    .unwrap();
    let e = c.create_message(&request()).await.unwrap_err();
    assert!(matches!(e, Error::BodyTooLarge { limit: 4096 }), "{e:?}");
    let e = c.stream_collect(&request()).await.unwrap_err();
    assert!(matches!(e, Error::BodyTooLarge { limit: 4096 }), "{e:?}");
}

// ---- errors ----

#[tokio::test]
async fn each_documented_error_says_what_to_do() {
    let cases: [(&str, ModelErrorKind, u16, ModelAction); 9] = [
        (
            "errors/invalid_request_400.json",
            ModelErrorKind::InvalidRequest,
            400,
            ModelAction::Fail,
        ),
        (
            "errors/authentication_401.json",
            ModelErrorKind::Unauthenticated,
            401,
            ModelAction::Disable,
        ),
        (
            "errors/billing_402.json",
            ModelErrorKind::Billing,
            402,
            ModelAction::Disable,
        ),
        (
            "errors/permission_403.json",
            ModelErrorKind::PermissionDenied,
            403,
            ModelAction::Fail,
        ),
        (
            "errors/not_found_404.json",
            ModelErrorKind::NotFound,
            404,
            ModelAction::Fail,
        ),
        (
            "errors/request_too_large_413.json",
            ModelErrorKind::RequestTooLarge,
            413,
            ModelAction::Fail,
        ),
        (
            "errors/rate_limit_429_retry_after.json",
            ModelErrorKind::RateLimited,
            429,
            ModelAction::RetryAfter {
                after: Duration::from_secs(17),
            },
        ),
        (
            "errors/api_error_500.json",
            ModelErrorKind::ServerError,
            500,
            ModelAction::Retry,
        ),
        (
            "errors/overloaded_529.json",
            ModelErrorKind::Overloaded,
            529,
            ModelAction::Retry,
        ),
    ];
    for (file, kind, status, action) in cases {
        let e = error_of(file).await;
        assert_eq!(e.kind(), kind, "{file}");
        assert_eq!(e.http_status(), Some(status), "{file}");
        assert_eq!(e.action(), action, "{file}");
        assert!(
            e.request_id().is_some_and(|r| r.starts_with("req_")),
            "{file}"
        );
    }
}

#[tokio::test]
async fn a_429_keeps_its_rate_limit_headers() {
    let e = error_of("errors/rate_limit_429_retry_after.json").await;
    let h = e.rate_limits().unwrap();
    assert_eq!(h.get("anthropic-ratelimit-output-tokens-limit"), Some("50"));
    assert_eq!(
        h.get("anthropic-ratelimit-output-tokens-remaining"),
        Some("0")
    );
    assert_eq!(e.retry_after(), Some(Duration::from_secs(17)));
}

/// A client on `server` whose clock shows `now`.
fn client_at(server: &MockServer, now: &str) -> (AnthropicClient, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::at(now).unwrap());
    (client(&server.uri()).with_clock(clock.clone()), clock)
}

#[tokio::test]
async fn a_spend_limit_stops_until_the_date_in_the_message() {
    // The message says "You will regain access on 2026-12-01 at 00:00 UTC".
    let fx = fixture("errors/rate_limit_429_spend_limit.json");
    let server = server_with(response_of(&fx)).await;
    let (c, _) = client_at(&server, "2026-11-30T23:59:59Z");
    let e = c.create_message(&request()).await.unwrap_err();
    assert_eq!(e.kind(), ModelErrorKind::SpendLimit);
    assert_eq!(
        e.action(),
        ModelAction::Stop {
            until: Some("2026-12-01T00:00:00Z".parse().unwrap())
        }
    );
    assert_eq!(e.retry_after(), None);
}

#[tokio::test]
async fn a_spend_limit_stop_is_not_retried_before_its_date() {
    let fx = fixture("errors/rate_limit_429_spend_limit.json");
    let server = server_with(response_of(&fx)).await;
    let clock = Arc::new(ManualClock::at("2026-11-30T23:59:59Z").unwrap());
    let c = AnthropicClient::new(
        SecretString::from(KEY),
        config(&server.uri()).retries(3, Duration::from_millis(1), Duration::from_millis(5)),
    )
    .unwrap()
    .with_clock(clock);
    let e = c.send(&request(), false).await.unwrap_err();
    assert_eq!(e.kind(), ModelErrorKind::SpendLimit);
    assert_eq!(
        sent_bodies(&server).await.len(),
        1,
        "a stop is never retried"
    );
}

#[tokio::test]
async fn a_spend_limit_whose_named_moment_has_passed_is_lifted() {
    let fx = fixture("errors/rate_limit_429_spend_limit.json");
    let server = server_with(response_of(&fx)).await;
    // From the named moment on (2026-12-01 00:00 UTC), access has returned.
    for now in [
        "2026-12-01T00:00:00Z",
        "2027-12-02T08:00:00Z",
        "2031-12-02T08:00:00Z",
    ] {
        let (c, _) = client_at(&server, now);
        let e = c.create_message(&request()).await.unwrap_err();
        assert_eq!(e.kind(), ModelErrorKind::SpendLimit);
        assert_eq!(e.action(), ModelAction::Retry, "at {now}");
        assert!(e.to_string().contains("which has passed: retry"), "{e}");
    }
}

#[tokio::test]
async fn a_lifted_spend_limit_is_retried_and_served() {
    let fx = fixture("errors/rate_limit_429_spend_limit.json");
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(response_of(&fx))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_body("claude-haiku-4-5")))
        .mount(&server)
        .await;
    let clock = Arc::new(ManualClock::at("2026-12-01T00:00:01Z").unwrap());
    let c = AnthropicClient::new(
        SecretString::from(KEY),
        config(&server.uri()).retries(2, Duration::from_millis(1), Duration::from_millis(5)),
    )
    .unwrap()
    .with_clock(clock);
    c.send(&request(), false).await.unwrap();
    assert_eq!(
        sent_bodies(&server).await.len(),
        2,
        "refused once, then served"
    );
}

#[tokio::test]
async fn a_spend_limit_without_a_date_stops_until_the_first_of_next_month() {
    let body = json!({"type":"error","error":{"type":"rate_limit_error",
        "message":"You have reached your specified API usage limits.",
        "details":{"error_code":"enforced_spend_limit_reached"}}});
    let server = server_with(ResponseTemplate::new(429).set_body_json(body)).await;
    for (now, until) in [
        ("2026-11-29T11:00:00Z", "2026-12-01T00:00:00Z"),
        ("2031-12-31T23:59:59Z", "2032-01-01T00:00:00Z"),
    ] {
        let (c, _) = client_at(&server, now);
        let e = c.create_message(&request()).await.unwrap_err();
        assert_eq!(
            e.action(),
            ModelAction::Stop {
                until: Some(until.parse().unwrap())
            },
            "at {now}"
        );
    }
}

#[tokio::test]
async fn not_found_names_the_model() {
    let e = error_of("errors/not_found_404.json").await;
    assert!(e.to_string().contains("claude-haiku-4-5"), "{e}");
}

struct Catalog;
impl ModelCatalog for Catalog {
    fn lifecycle(&self, model: &str, _today: chrono::NaiveDate) -> Option<ModelLifecycle> {
        let l = ModelLifecycle::new(model);
        match model {
            "claude-sonnet-4-5" => Some(
                l.retires_on(NaiveDate::from_ymd_opt(2026, 11, 1).unwrap())
                    .replacement("claude-sonnet-5-5"),
            ),
            "claude-haiku-4-5" => Some(l.replacement("claude-haiku-5-5")),
            _ => None,
        }
    }
}

#[tokio::test]
async fn a_retired_model_is_refused_before_sending_and_names_its_replacement() {
    let server = server_with(ResponseTemplate::new(200)).await;
    let (c, _) = client_at(&server, "2026-11-02T00:00:00Z");
    let c = c.with_catalog(Arc::new(Catalog));
    let e = c
        .create_message(&MessagesRequest::new("claude-sonnet-4-5", 10, "hi"))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::ModelRetired { replacement: Some(r), .. } if r == "claude-sonnet-5-5")
    );
    assert!(e.to_string().contains("claude-sonnet-5-5"), "{e}");
    assert_eq!(e.kind(), ModelErrorKind::NotFound);
    assert!(sent_bodies(&server).await.is_empty(), "nothing was sent");
}

#[tokio::test]
async fn a_404_names_the_replacement_the_catalog_knows() {
    let server = server_with(response_of(&fixture("errors/not_found_404.json"))).await;
    let c = client(&server.uri()).with_catalog(Arc::new(Catalog));
    let e = c.create_message(&request()).await.unwrap_err();
    assert!(
        matches!(&e, Error::NotFound { replacement: Some(r), .. } if r == "claude-haiku-5-5"),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_timeout_is_a_timeout() {
    let server = server_with(
        ResponseTemplate::new(200)
            .set_body_json(json!({}))
            .set_delay(Duration::from_secs(3)),
    )
    .await;
    let c = AnthropicClient::new(
        SecretString::from(KEY),
        config(&server.uri()).request_timeout(Duration::from_millis(200)),
    )
    .unwrap();
    let e = c.create_message(&request()).await.unwrap_err();
    assert_eq!(e.kind(), ModelErrorKind::Timeout, "{e:?}");
    assert_eq!(e.action(), ModelAction::Retry);
}

#[tokio::test]
async fn a_refused_connection_is_a_connection_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = client(&format!("http://127.0.0.1:{port}"))
        .create_message(&request())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ModelErrorKind::Connection, "{e:?}");
    assert!(!e.to_string().contains(KEY));
}

#[tokio::test]
async fn a_malformed_answer_is_never_guessed() {
    for body in [
        json!({"type":"message","content":"not a list","model":"x","stop_reason":"end_turn"}),
        json!({"type":"message","content":[{"type":"tool_use","name":"f"}],"model":"x","stop_reason":"tool_use"}),
        json!({"type":"message","content":[],"model":"x"}),
        json!({"hello":"world"}),
    ] {
        let server = server_with(ResponseTemplate::new(200).set_body_json(&body)).await;
        let e = client(&server.uri())
            .create_message(&request())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ModelErrorKind::MalformedResponse, "{body}");
    }
}

// ---- retries, failover, rate limits ----

fn ok_body(model: &str) -> Value {
    json!({"id":"m","type":"message","role":"assistant","model":model,
        "content":[{"type":"text","text":"served"}],"stop_reason":"end_turn",
        "usage":{"input_tokens":1,"output_tokens":1}})
}

#[tokio::test]
async fn an_overloaded_model_is_retried_then_fails_over_to_the_fallback() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"model": "claude-sonnet-5-5"})))
        .respond_with(response_of(&fixture("errors/overloaded_529.json")))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(body_partial_json(json!({"model": "claude-haiku-5-5"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_body("claude-haiku-5-5")))
        .mount(&server)
        .await;
    let c = AnthropicClient::new(
        SecretString::from(KEY),
        config(&server.uri())
            .retries(2, Duration::from_millis(1), Duration::from_millis(5))
            .fallback_models(vec!["claude-haiku-5-5".into()]),
    )
    .unwrap();
    let r = c
        .send(&MessagesRequest::new("claude-sonnet-5-5", 10, "hi"), false)
        .await
        .unwrap();
    assert_eq!(r.model, "claude-haiku-5-5");
    let models: Vec<String> = sent_bodies(&server)
        .await
        .iter()
        .map(|b| b["model"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        models,
        [
            "claude-sonnet-5-5",
            "claude-sonnet-5-5",
            "claude-sonnet-5-5",
            "claude-haiku-5-5"
        ]
    );
}

/// A server that answers `first` once, then `then` to every request.
async fn first_then(first: ResponseTemplate, then: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(first)
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(then)
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn a_server_error_is_retried_and_the_second_answer_is_returned() {
    let server = first_then(
        response_of(&fixture("errors/api_error_500.json")),
        ResponseTemplate::new(200).set_body_json(ok_body("claude-haiku-5-5")),
    )
    .await;
    let c = AnthropicClient::new(
        SecretString::from(KEY),
        config(&server.uri()).retries(2, Duration::from_millis(1), Duration::from_millis(5)),
    )
    .unwrap();
    let r = c.send(&request(), false).await.unwrap();
    assert_eq!(r.model, "claude-haiku-5-5");
    let sent = sent_bodies(&server).await;
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], sent[1], "the same request is sent again");
}

#[tokio::test]
async fn a_stream_broken_by_an_error_event_is_sent_again_and_only_the_whole_answer_counts() {
    let whole = text_stream(40, "Whole answer", "end_turn", 9);
    let server = first_then(
        response_of(&fixture("errors/stream_error_overloaded.json")),
        ResponseTemplate::new(200).set_body_raw(whole.into_bytes(), "text/event-stream"),
    )
    .await;
    let c = AnthropicClient::new(
        SecretString::from(KEY),
        config(&server.uri()).retries(2, Duration::from_millis(1), Duration::from_millis(5)),
    )
    .unwrap();
    let r = c.send(&request(), true).await.unwrap();
    let text = r.text();
    // Nothing of the broken stream ("Partial answ") is kept, and the usage
    // is the whole answer's alone.
    assert_eq!(text, "Whole answer");
    let u = r.usage();
    assert_eq!((u.input_tokens, u.output_tokens), (40, 9));
    assert_eq!(sent_bodies(&server).await.len(), 2);
}

#[tokio::test]
async fn an_invalid_request_is_neither_retried_nor_failed_over() {
    let server = server_with(response_of(&fixture("errors/invalid_request_400.json"))).await;
    let c = AnthropicClient::new(
        SecretString::from(KEY),
        config(&server.uri())
            .retries(3, Duration::from_millis(1), Duration::from_millis(5))
            .fallback_models(vec!["claude-haiku-5-5".into()]),
    )
    .unwrap();
    let e = c.send(&request(), false).await.unwrap_err();
    assert_eq!(e.kind(), ModelErrorKind::InvalidRequest);
    assert_eq!(sent_bodies(&server).await.len(), 1);
}

#[tokio::test]
async fn an_exhausted_rate_limit_is_waited_for_before_the_next_request() {
    let now: chrono::DateTime<Utc> = "2026-11-29T12:00:00Z".parse().unwrap();
    let reset = now + chrono::Duration::milliseconds(1500);
    let server = server_with(
        ResponseTemplate::new(200)
            .set_body_json(ok_body("claude-haiku-4-5"))
            .insert_header("anthropic-ratelimit-requests-limit", "50")
            .insert_header("anthropic-ratelimit-requests-remaining", "0")
            .insert_header(
                "anthropic-ratelimit-requests-reset",
                reset.to_rfc3339().as_str(),
            ),
    )
    .await;
    let clock = Arc::new(ManualClock::new(now));
    let c = client(&server.uri()).with_clock(clock.clone());
    c.create_message(&request()).await.unwrap();
    let paused = c.paused_until().expect("paused after remaining=0");
    assert_eq!(paused, reset);
    c.create_message(&request()).await.unwrap();
    // The second request went out only after waiting for the reset.
    assert_eq!(clock.sleeps(), vec![Duration::from_millis(1500)]);
    assert_eq!(sent_bodies(&server).await.len(), 2);
}

#[tokio::test]
async fn a_reset_further_than_the_wait_fails_fast_without_sending() {
    let fx = fixture("errors/rate_limit_429_retry_after.json");
    // The documented 429 says retry-after 17 s; the client may wait 1 s.
    let server = server_with(response_of(&fx)).await;
    let c = AnthropicClient::new(
        SecretString::from(KEY),
        config(&server.uri()).max_rate_limit_wait(Duration::from_secs(1)),
    )
    .unwrap();
    let first = c.create_message(&request()).await.unwrap_err();
    assert_eq!(first.kind(), ModelErrorKind::RateLimited);
    let second = c.create_message(&request()).await.unwrap_err();
    assert!(
        matches!(second, Error::RateLimitPending { .. }),
        "{second:?}"
    );
    assert_eq!(second.kind(), ModelErrorKind::RateLimited);
    assert!(second.retry_after().unwrap() > Duration::from_secs(10));
    assert_eq!(
        sent_bodies(&server).await.len(),
        1,
        "no second 429 collected"
    );
}

// ---- the request on the wire ----

/// Matches a body that has none of the removed sampling parameters.
struct NoSamplingParameters;
impl wiremock::Match for NoSamplingParameters {
    fn matches(&self, r: &Request) -> bool {
        let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
        ["temperature", "top_p", "top_k"]
            .iter()
            .all(|p| v.get(p).is_none())
    }
}

#[tokio::test]
async fn removed_sampling_parameters_are_never_sent() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(NoSamplingParameters)
        .respond_with(ResponseTemplate::new(200).set_body_json(ok_body("claude-haiku-4-5")))
        .expect(1)
        .mount(&server)
        .await;
    let mut req = request();
    req.extra.insert("temperature".into(), json!(0.2));
    req.extra.insert("top_p".into(), json!(0.9));
    req.extra.insert("top_k".into(), json!(40));
    req.extra
        .insert("context_management".into(), json!({"edits": []}));
    client(&server.uri()).create_message(&req).await.unwrap();
    let sent = &sent_bodies(&server).await[0];
    assert_eq!(
        sent["context_management"],
        json!({"edits": []}),
        "other fields pass"
    );
}

#[tokio::test]
async fn the_request_carries_system_tools_choice_thinking_stops_and_cache_breakpoints() {
    let server = server_with(ResponseTemplate::new(200).set_body_json(ok_body("m"))).await;
    let mut req = MessagesRequest::new("claude-sonnet-5-5", 2048, "first").system("be brief");
    let mut cached = ContentBlock::text("long context");
    cached.set_cache_control(CacheControl::ephemeral(CacheTtl::OneHour));
    req.messages = vec![
        MessageParam::blocks(Role::User, vec![cached, ContentBlock::text("question")]),
        MessageParam::blocks(
            Role::Assistant,
            vec![ContentBlock::tool_use(
                "toolu_1",
                "lookup",
                json!({"q": "x"}),
            )],
        ),
        MessageParam::blocks(
            Role::User,
            vec![ContentBlock::tool_result("toolu_1", json!("found"), false)],
        ),
    ];
    let mut tool = Tool::new(
        "lookup",
        "Looks up",
        json!({"type":"object","properties":{"q":{"type":"string"}}}),
    );
    tool.cache_control = Some(CacheControl::ephemeral(CacheTtl::FiveMinutes));
    req.tools = vec![tool];
    req.tool_choice = Some(ToolChoice::Auto {
        disable_parallel_tool_use: None,
    });
    req.thinking = Some(swarmbus_anthropic::Thinking::Adaptive { display: None });
    req.output_config = Some(swarmbus_anthropic::wire::OutputConfig::with_effort(
        swarmbus_anthropic::Effort::Low,
    ));
    req.stop_sequences = vec!["END".into()];
    client(&server.uri()).create_message(&req).await.unwrap();
    let sent = &sent_bodies(&server).await[0];
    assert_eq!(sent["system"], "be brief");
    assert_eq!(
        sent["messages"][0]["content"][0]["cache_control"],
        json!({"type":"ephemeral","ttl":"1h"})
    );
    assert_eq!(
        sent["messages"][1]["content"][0],
        json!({"type":"tool_use","id":"toolu_1","name":"lookup","input":{"q":"x"}})
    );
    assert_eq!(
        sent["messages"][2]["content"][0],
        json!({"type":"tool_result","tool_use_id":"toolu_1","content":"found"})
    );
    assert_eq!(
        sent["tools"][0]["cache_control"],
        json!({"type":"ephemeral","ttl":"5m"})
    );
    assert_eq!(sent["tools"][0]["input_schema"]["type"], "object");
    assert_eq!(sent["tool_choice"], json!({"type":"auto"}));
    assert_eq!(sent["thinking"], json!({"type":"adaptive"}));
    assert_eq!(sent["output_config"], json!({"effort":"low"}));
    assert_eq!(sent["stop_sequences"], json!(["END"]));
    assert_eq!(sent["max_tokens"], 2048);
    assert_eq!(sent["stream"], false);
}

#[tokio::test]
async fn bad_input_is_refused_before_sending() {
    let server = server_with(ResponseTemplate::new(200)).await;
    let c = client(&server.uri());
    let mut zero = request();
    zero.max_tokens = 0;
    let mut empty = request();
    empty.messages.clear();
    let bad_model = MessagesRequest::new("claude/../../x", 10, "hi");
    let mut doc_in_assistant = request();
    doc_in_assistant.messages.push(MessageParam::blocks(
        Role::Assistant,
        vec![ContentBlock::from_value(
            json!({"type":"document","source":{"type":"text","media_type":"text/plain","data":"x"}}),
        )
        .unwrap()],
    ));
    for r in [zero, empty, bad_model, doc_in_assistant] {
        let e = c.create_message(&r).await.unwrap_err();
        assert_eq!(e.kind(), ModelErrorKind::InvalidInput, "{e:?}");
    }
    assert!(sent_bodies(&server).await.is_empty());
}

/// A raw HTTP server whose stream sends its head and `first`, then goes
/// silent with the connection open (a stalled stream).
async fn stalling_server(first: String) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let first = first.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 65536];
                let _ = sock.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n";
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(first.as_bytes()).await;
                let _ = sock.flush().await;
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(sock);
            });
        }
    });
    url
}

#[tokio::test]
async fn a_stream_that_goes_silent_part_way_is_a_timeout_to_retry() {
    let first = sse(&[
        start(12),
        (
            "content_block_start",
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        ),
        (
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Half"}}),
        ),
    ]);
    let url = stalling_server(first).await;
    let mut cfg = config(&url);
    cfg.read_timeout = Duration::from_millis(300);
    let c = AnthropicClient::new(SecretString::from(KEY), cfg).unwrap();
    let mut stream = c.stream_message(&request()).await.unwrap();
    let mut text = String::new();
    let err = loop {
        match stream.next_update().await {
            Some(Ok(StreamUpdate::Text(t))) => text.push_str(&t),
            Some(Ok(_)) => {}
            Some(Err(e)) => break e,
            None => panic!("a silent stream ended without an error"),
        }
    };
    assert_eq!(text, "Half", "what came before the silence is delivered");
    assert_eq!(err.kind(), ModelErrorKind::Timeout, "{err:?}");
    assert_eq!(err.action(), ModelAction::Retry);
    assert!(!format!("{err} {err:?}").contains(KEY));
    // The collecting call fails the same way (no retries configured here).
    let e = c.stream_collect(&request()).await.unwrap_err();
    assert_eq!(e.kind(), ModelErrorKind::Timeout, "{e:?}");
}

/// Issue 19 row 6: a stream whose `message_delta` reports a larger
/// cumulative `cache_creation_input_tokens` (3,337) than the breakdown
/// `message_start` gave (3,068). The final cumulative figure wins; the
/// 269 tokens the breakdown does not account for follow the rule of
/// `WireUsage::buckets` (1-hour when the breakdown has any 1-hour writes,
/// else 5-minute).
fn cache_growth_stream(start_5m: u64, start_1h: u64, delta_breakdown: Option<Value>) -> String {
    let mut delta_usage = json!({"input_tokens":12,"output_tokens":420,
        "cache_read_input_tokens":0,"cache_creation_input_tokens":3337,
        "server_tool_use":{"web_search_requests":1}});
    if let Some(b) = delta_breakdown {
        delta_usage["cache_creation"] = b;
    }
    sse(&[
        (
            "message_start",
            json!({"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant",
                "content":[],"model":"claude-sonnet-4-6","stop_reason":null,"stop_sequence":null,
                "usage":{"input_tokens":12,"output_tokens":3,"cache_read_input_tokens":0,
                         "cache_creation_input_tokens":start_5m + start_1h,
                         "cache_creation":{"ephemeral_5m_input_tokens":start_5m,
                                           "ephemeral_1h_input_tokens":start_1h}}}}),
        ),
        (
            "content_block_start",
            json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        ),
        (
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"found it"}}),
        ),
        (
            "content_block_stop",
            json!({"type":"content_block_stop","index":0}),
        ),
        (
            "message_delta",
            json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":delta_usage}),
        ),
        ("message_stop", json!({"type":"message_stop"})),
    ])
}

async fn collected_usage(body: String) -> swarmbus_core::llm::Usage {
    let server = stream_server(body).await;
    client(&server.uri())
        .stream_collect(&request())
        .await
        .unwrap()
        .usage()
}

#[tokio::test]
async fn stream_cache_writes_are_the_final_cumulative_figure() {
    // Breakdown all 5-minute at message_start: the excess is 5-minute.
    let u = collected_usage(cache_growth_stream(3068, 0, None)).await;
    assert_eq!(
        u.cache_write_5m_tokens + u.cache_write_1h_tokens,
        3337,
        "{u:?}"
    );
    assert_eq!(
        (u.cache_write_5m_tokens, u.cache_write_1h_tokens),
        (3337, 0)
    );
    assert_eq!((u.input_tokens, u.output_tokens), (12, 420));

    // A breakdown with 1-hour writes: the unaccounted 269 are billed at the
    // dearer 1-hour rate, never under-reported.
    let u = collected_usage(cache_growth_stream(1000, 2068, None)).await;
    assert_eq!(
        (u.cache_write_5m_tokens, u.cache_write_1h_tokens),
        (1000, 2337)
    );

    // A final breakdown in message_delta replaces message_start's.
    let final_breakdown = json!({"ephemeral_5m_input_tokens":3000,"ephemeral_1h_input_tokens":337});
    let u = collected_usage(cache_growth_stream(3068, 0, Some(final_breakdown))).await;
    assert_eq!(
        (u.cache_write_5m_tokens, u.cache_write_1h_tokens),
        (3000, 337)
    );
}
