//! Every recorded response the crate relies on, replayed by a real local
//! HTTP server (wiremock): one test per case, asserting the parsed answer or
//! the exact error kind and action.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{KEY, MODEL, client_for, fixture, serve_stream, serve_unary};
use futures::StreamExt;
use swarmbus_gemini::decode::StreamAccumulator;
use swarmbus_gemini::error::BlockCause;
use swarmbus_gemini::wire::{
    BlockReason, Content, CountTokensRequest, FinishReason, GenerateContentRequest, HarmCategory,
    HarmProbability,
};
use swarmbus_gemini::{Action, Error, ErrorKind, Generation, ManualClock};
use wiremock::MockServer;

fn request() -> GenerateContentRequest {
    GenerateContentRequest::user("Where is Google's headquarters?")
}

async fn unary(name: &str, status: u16) -> Result<Generation, Error> {
    let server = MockServer::start().await;
    serve_unary(&server, KEY, status, fixture(name)).await;
    client_for(&server, KEY).generate(MODEL, &request()).await
}

async fn unary_err(name: &str, status: u16) -> Error {
    let err = unary(name, status).await.expect_err("an error");
    assert!(!format!("{err} {err:?}").contains(KEY));
    err
}

async fn stream(name: &str, status: u16) -> Result<Generation, Error> {
    let server = MockServer::start().await;
    serve_stream(&server, KEY, status, fixture(name)).await;
    client_for(&server, KEY)
        .stream_generate(MODEL, &request())
        .await
}

async fn stream_err(name: &str, status: u16) -> Error {
    let err = stream(name, status).await.expect_err("an error");
    assert!(!format!("{err} {err:?}").contains(KEY));
    err
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

// ----------------------------------------------------------------- unary ok

#[tokio::test]
async fn a_short_reply_parses_with_its_usage() {
    let g = unary("googleai/unary-success-basic-reply-short.json", 200)
        .await
        .unwrap();
    assert!(
        g.text.contains("**Mountain View, California**"),
        "{}",
        g.text
    );
    assert_eq!(g.finish_reason, Some(FinishReason::Stop));
    assert_eq!(g.usage.prompt_token_count, 7);
    assert_eq!(g.usage.candidates_token_count, 22);
    assert_eq!(g.usage.total_token_count, 29);
    assert_eq!(g.model_version.as_deref(), Some("gemini-2.0-flash"));
    let u = g.usage();
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.thinking_tokens),
        (7, 22, 0)
    );
}

#[tokio::test]
async fn thought_summaries_are_kept_apart_from_the_answer() {
    let g = unary(
        "googleai/unary-success-thinking-reply-thought-summary.json",
        200,
    )
    .await
    .unwrap();
    assert_eq!(g.text, "Mountain View");
    assert!(
        g.thoughts
            .starts_with("**Thinking About Google's Headquarters**")
    );
    assert_eq!(g.usage.thoughts_token_count, 24);
    assert_eq!(g.response_id.as_deref(), Some("2pmHaJqQEoqC-8YP6eStyAY"));
    let u = g.usage();
    assert_eq!(u.output_tokens, 26, "thinking is billed as output");
    assert_eq!(u.thinking_tokens, 24);
    assert_eq!(u.total_tokens(), 40);
}

#[tokio::test]
async fn implicit_cache_hits_are_split_out_of_the_prompt() {
    let g = unary("vertexai/unary-success-implicit-caching.json", 200)
        .await
        .unwrap();
    assert_eq!(g.usage.cached_content_token_count, 11243);
    let u = g.usage();
    assert_eq!(u.input_tokens, 12013 - 11243);
    assert_eq!(u.cache_read_tokens, 11243);
    assert_eq!(u.output_tokens, 15 + 73);
    assert_eq!(u.thinking_tokens, 73);
    assert_eq!(u.total_tokens(), g.usage.total_token_count);
}

#[tokio::test]
async fn json_mode_answers_parse_as_json() {
    let g = unary("vertexai/unary-success-constraint-decoding-json.json", 200)
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&g.text).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    assert_eq!(v[0]["name"], "Fuji Dawn");
}

#[tokio::test]
async fn citations_are_kept() {
    let server = MockServer::start().await;
    serve_unary(
        &server,
        KEY,
        200,
        fixture("googleai/unary-success-citations.json"),
    )
    .await;
    let r = client_for(&server, KEY)
        .generate_content(MODEL, &request())
        .await
        .unwrap();
    assert!(r.candidate().unwrap().citation_metadata.is_some());
    assert!(
        r.text()
            .starts_with("Okay, let's break down quantum mechanics")
    );
    assert_eq!(r.usage().output_tokens, 1667);
}

#[tokio::test]
async fn unknown_safety_enums_are_kept_as_other() {
    let server = MockServer::start().await;
    serve_unary(
        &server,
        KEY,
        200,
        fixture("vertexai/unary-success-unknown-enum-safety-ratings.json"),
    )
    .await;
    let r = client_for(&server, KEY)
        .generate_content(MODEL, &request())
        .await
        .unwrap();
    let ratings = &r.candidate().unwrap().safety_ratings;
    assert_eq!(ratings[0].probability, Some(HarmProbability::Medium));
    assert_eq!(
        ratings[1].probability,
        Some(HarmProbability::Other("FAKE_NEW_HARM_PROBABILITY".into()))
    );
    assert_eq!(
        ratings[2].category,
        Some(HarmCategory::Other("FAKE_NEW_HARM_CATEGORY".into()))
    );
    assert_eq!(r.text(), "Some text");
}

#[tokio::test]
async fn empty_safety_rating_objects_do_not_fail_the_answer() {
    let server = MockServer::start().await;
    serve_unary(
        &server,
        KEY,
        200,
        fixture("vertexai/unary-success-image-invalid-safety-ratings.json"),
    )
    .await;
    let r = client_for(&server, KEY)
        .generate_content(MODEL, &request())
        .await
        .unwrap();
    let c = r.candidate().unwrap();
    assert_eq!(c.safety_ratings.len(), 8);
    assert!(c.safety_ratings[7].category.is_none());
    let part = &c.content.as_ref().unwrap().parts.as_ref().unwrap()[0];
    assert_eq!(part.inline_data.as_ref().unwrap().mime_type, "image/png");
}

#[tokio::test]
async fn an_empty_text_part_is_an_empty_answer_not_an_error() {
    let g = unary("vertexai/unary-success-empty-text-part.json", 200)
        .await
        .unwrap();
    assert_eq!(g.text, "");
    assert_eq!(g.finish_reason, Some(FinishReason::Stop));
}

#[tokio::test]
async fn an_unknown_finish_reason_parses_as_other() {
    let g = unary(
        "vertexai/unary-failure-unknown-enum-finish-reason.json",
        200,
    )
    .await
    .unwrap();
    assert_eq!(g.text, "Some text");
    assert_eq!(
        g.finish_reason,
        Some(FinishReason::Other("FAKE_NEW_FINISH_REASON".into()))
    );
}

// ------------------------------------------------------------ unary errors

#[tokio::test]
async fn an_invalid_key_disables_the_shard() {
    let e = unary_err("googleai/unary-failure-api-key.json", 400).await;
    assert!(matches!(e, Error::InvalidKey { status: 400, .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::InvalidKey);
    assert_eq!(e.action(), Action::Disable);
    assert_eq!(e.http_status(), Some(400));
    // The DebugInfo detail echoes the key the server saw: never kept.
    assert!(!e.to_string().contains("key1234"), "{e}");
}

#[tokio::test]
async fn a_disabled_api_is_permission_denied() {
    let e = unary_err(
        "googleai/unary-failure-generativelanguage-api-not-enabled.json",
        403,
    )
    .await;
    match &e {
        Error::PermissionDenied { reason, .. } => {
            assert_eq!(reason.as_deref(), Some("SERVICE_DISABLED"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.action(), Action::Disable);
}

#[tokio::test]
async fn a_leaked_key_is_permission_denied_and_disabled() {
    let e = unary_err(
        "transcribed/error-403-permission-denied-leaked-key.json",
        403,
    )
    .await;
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert_eq!(e.action(), Action::Disable);
    assert!(e.to_string().contains("reported as leaked"));
}

#[tokio::test]
async fn an_unknown_model_is_not_found_and_fatal() {
    let e = unary_err("googleai/unary-failure-unknown-model.json", 404).await;
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.action(), Action::Fail);
}

#[tokio::test]
async fn a_bad_request_fails_without_rotating() {
    let e = unary_err(
        "transcribed/error-400-invalid-argument-bad-request.json",
        400,
    )
    .await;
    match &e {
        Error::InvalidRequest {
            field_violations, ..
        } => {
            assert_eq!(field_violations.len(), 2);
            assert!(field_violations[0].starts_with("contents[0].parts: "));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.action(), Action::Fail);
    assert!(!e.action().rotates());
}

#[tokio::test]
async fn a_failed_precondition_makes_the_shard_unusable() {
    let e = unary_err("vertexai/unary-failure-http-error.json", 400).await;
    assert!(matches!(e, Error::FailedPrecondition { .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert_eq!(e.action(), Action::Disable);
}

#[tokio::test]
async fn a_per_minute_429_cools_for_the_retry_delay() {
    let e = unary_err("transcribed/error-429-per-minute-free-tier.json", 429).await;
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(
        e.quota_id(),
        Some("GenerateRequestsPerMinutePerProjectPerModel-FreeTier")
    );
    assert_eq!(e.quota_value(), Some(5));
    assert_eq!(e.retry_delay(), Some(Duration::from_secs(58)));
    assert_eq!(e.action(), Action::Cool(Duration::from_secs(58)));
}

#[tokio::test]
async fn a_per_day_429_exhausts_until_pacific_midnight_not_the_retry_delay() {
    let server = MockServer::start().await;
    serve_unary(
        &server,
        KEY,
        429,
        fixture("transcribed/error-429-per-day-free-tier.json"),
    )
    .await;
    let now = utc("2026-01-15T20:00:00Z"); // 12:00 PST
    let client = client_for(&server, KEY).with_clock(Arc::new(ManualClock::new(now)));
    let e = client.generate(MODEL, &request()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QuotaExhausted);
    assert_eq!(
        e.quota_id(),
        Some("GenerateRequestsPerDayPerProjectPerModel-FreeTier")
    );
    assert_eq!(e.quota_value(), Some(250));
    assert_eq!(e.retry_delay(), Some(Duration::from_secs(22)));
    let midnight = utc("2026-01-16T08:00:00Z");
    assert_eq!(e.reset_at(), Some(midnight));
    assert_eq!(e.action(), Action::ExhaustUntil(midnight));
}

#[tokio::test]
async fn a_bare_429_is_temporary_with_the_default_delay() {
    let e = unary_err("transcribed/error-429-bare-no-details.json", 429).await;
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.quota_id(), None);
    assert_eq!(e.action(), Action::Cool(Duration::from_secs(60)));
}

#[tokio::test]
async fn a_vertex_per_minute_429_reads_the_error_info_quota() {
    let e = unary_err("vertexai/unary-failure-quota-exceeded.json", 429).await;
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(
        e.quota_id(),
        Some("GenerateContentRequestsPerMinutePerProjectPerRegion")
    );
    assert_eq!(e.quota_value(), Some(0));
    assert_eq!(e.action(), Action::Cool(Duration::from_secs(60)));
}

#[tokio::test]
async fn a_500_is_a_server_error_to_retry() {
    let e = unary_err("transcribed/error-500-internal.json", 500).await;
    assert_eq!(e.kind(), ErrorKind::ServerError);
    assert!(matches!(e.action(), Action::RetryAfter(_)));
}

#[tokio::test]
async fn a_503_overloaded_is_retried() {
    let e = unary_err("transcribed/error-503-unavailable-overloaded.json", 503).await;
    assert_eq!(e.kind(), ErrorKind::Overloaded);
    assert!(matches!(e.action(), Action::RetryAfter(_)));
}

#[tokio::test]
async fn a_503_high_demand_is_overloaded() {
    let e = unary_err("transcribed/error-503-unavailable-high-demand.json", 503).await;
    assert_eq!(e.kind(), ErrorKind::Overloaded);
    assert!(e.to_string().contains("high demand"));
}

#[tokio::test]
async fn a_safety_finish_blocks_even_with_text() {
    let e = unary_err("googleai/unary-failure-finish-reason-safety.json", 200).await;
    match &e {
        Error::Blocked { cause, .. } => {
            assert_eq!(cause, &BlockCause::Candidate(FinishReason::Safety))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(e.action(), Action::Fail);
}

#[tokio::test]
async fn a_safety_finish_without_content_is_blocked() {
    let e = unary_err(
        "vertexai/unary-failure-finish-reason-safety-no-content.json",
        200,
    )
    .await;
    assert_eq!(e.kind(), ErrorKind::Blocked);
}

#[tokio::test]
async fn a_blocked_prompt_is_blocked() {
    let e = unary_err("vertexai/unary-failure-prompt-blocked-safety.json", 200).await;
    assert!(
        matches!(
            &e,
            Error::Blocked {
                cause: BlockCause::Prompt(BlockReason::Safety),
                message: None
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_blocked_prompt_keeps_its_message() {
    let e = unary_err(
        "vertexai/unary-failure-prompt-blocked-safety-with-message.json",
        200,
    )
    .await;
    match &e {
        Error::Blocked { message, .. } => assert_eq!(message.as_deref(), Some("Reasons")),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_block_reason_still_blocks() {
    let e = unary_err(
        "vertexai/unary-failure-unknown-enum-prompt-blocked.json",
        200,
    )
    .await;
    match &e {
        Error::Blocked {
            cause: BlockCause::Prompt(r),
            ..
        } => assert_eq!(r, &BlockReason::Other("FAKE_NEW_BLOCK_REASON".into())),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn empty_candidates_without_a_block_reason_are_malformed() {
    let e = unary_err("googleai/unary-failure-only-prompt-feedback.json", 200).await;
    assert_eq!(e.kind(), ErrorKind::MalformedResponse);
    assert!(e.to_string().contains("Message"), "{e}");
}

#[tokio::test]
async fn empty_content_is_malformed() {
    let e = unary_err("vertexai/unary-failure-empty-content.json", 200).await;
    assert_eq!(e.kind(), ErrorKind::MalformedResponse);
    assert!(e.to_string().contains("content without parts"), "{e}");
}

#[tokio::test]
async fn content_without_parts_is_malformed() {
    let e = unary_err("vertexai/unary-failure-malformed-content.json", 200).await;
    assert_eq!(e.kind(), ErrorKind::MalformedResponse);
}

#[tokio::test]
async fn a_body_that_is_not_a_response_is_malformed() {
    let e = unary_err("vertexai/unary-failure-invalid-response.json", 200).await;
    assert_eq!(e.kind(), ErrorKind::MalformedResponse);
    assert!(
        e.to_string().contains("not a generateContent response"),
        "{e}"
    );
}

#[tokio::test]
async fn a_candidate_with_only_a_finish_message_is_malformed() {
    let e = unary_err("googleai/unary-failure-with-message-no-content.json", 200).await;
    assert_eq!(e.kind(), ErrorKind::MalformedResponse);
    assert!(e.to_string().contains("internal error"), "{e}");
}

#[tokio::test]
async fn a_truncated_body_is_malformed() {
    let mut body = fixture("googleai/unary-success-basic-reply-short.json");
    body.truncate(body.len() / 2);
    let server = MockServer::start().await;
    serve_unary(&server, KEY, 200, body).await;
    let e = client_for(&server, KEY)
        .generate(MODEL, &request())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::MalformedResponse);
}

// ---------------------------------------------------------------- streams

#[tokio::test]
async fn a_crlf_stream_assembles_the_answer_and_usage() {
    let g = stream("googleai/streaming-success-basic-reply-short.txt", 200)
        .await
        .unwrap();
    assert_eq!(g.text, "The capital of Wyoming is **Cheyenne**.\n");
    assert_eq!(g.finish_reason, Some(FinishReason::Stop));
    assert_eq!(g.usage.total_token_count, 17);
    assert_eq!(g.usage.candidates_token_count, 10);
}

#[tokio::test]
async fn a_streamed_thinking_answer_keeps_thoughts_apart() {
    let g = stream(
        "googleai/streaming-success-thinking-reply-thought-summary.txt",
        200,
    )
    .await
    .unwrap();
    assert!(g.text.starts_with("The sky is blue because"), "{}", g.text);
    assert!(g.thoughts.starts_with("**Exploring Sky Color**"));
    assert_eq!(g.usage.thoughts_token_count, 540);
    assert_eq!(g.usage.total_token_count, 598);
}

#[tokio::test]
async fn an_lf_stream_keeps_the_finish_message() {
    let g = stream("googleai/streaming-success-finish-message.txt", 200)
        .await
        .unwrap();
    assert_eq!(g.text, "Hello world!");
    assert_eq!(g.finish_message.as_deref(), Some("Finished successfully"));
}

#[tokio::test]
async fn a_last_chunk_without_parts_is_normal_in_a_stream() {
    let g = stream("googleai/streaming-success-no-content-parts.txt", 200)
        .await
        .unwrap();
    assert!(g.text.contains("pink pig"));
    assert_eq!(g.finish_reason, Some(FinishReason::Stop));
    assert_eq!(g.usage.candidates_token_count, 1370);
}

#[tokio::test]
async fn a_utf8_stream_is_decoded_across_chunks() {
    let g = stream("vertexai/streaming-success-utf8.txt", 200)
        .await
        .unwrap();
    assert!(g.text.starts_with("秋风瑟瑟，叶落纷纷"), "{}", g.text);
}

#[tokio::test]
async fn a_stream_ending_in_an_empty_text_part_is_an_answer() {
    let g = stream("vertexai/streaming-success-empty-text-part.txt", 200)
        .await
        .unwrap();
    assert_eq!(g.text, "1");
    assert_eq!(g.usage.total_token_count, 9);
}

#[tokio::test]
async fn a_stream_with_unknown_safety_enums_is_an_answer() {
    let g = stream("vertexai/streaming-success-unknown-safety-enum.txt", 200)
        .await
        .unwrap();
    assert!(g.text.starts_with("**Cats:**"));
}

#[tokio::test]
async fn a_stream_with_an_unknown_finish_reason_is_an_answer() {
    let g = stream("vertexai/streaming-failure-unknown-finish-enum.txt", 200)
        .await
        .unwrap();
    assert_eq!(
        g.finish_reason,
        Some(FinishReason::Other("FAKE_ENUM".into()))
    );
    assert!(g.text.contains("Maine Coon"));
}

#[tokio::test]
async fn an_error_in_the_middle_of_a_stream_ends_it_with_that_error() {
    let server = MockServer::start().await;
    serve_stream(
        &server,
        KEY,
        200,
        fixture("vertexai/streaming-failure-error-mid-stream.txt"),
    )
    .await;
    let mut s = client_for(&server, KEY)
        .stream_generate_content(MODEL, &request())
        .await
        .unwrap();
    let mut acc = StreamAccumulator::new();
    let mut texts = Vec::new();
    let mut error = None;
    while let Some(item) = s.next().await {
        match item {
            Ok(chunk) => texts.push(acc.push(&chunk).unwrap()),
            Err(e) => error = Some(e),
        }
    }
    assert_eq!(texts, vec!["First ", "Second "]);
    let e = error.expect("the stream's error");
    assert!(matches!(e, Error::Server { status: 499, .. }), "{e:?}");
    assert!(e.to_string().contains("The operation was cancelled."));
    assert!(matches!(e.action(), Action::RetryAfter(_)));
}

#[tokio::test]
async fn a_plain_json_error_from_the_stream_endpoint_is_classified() {
    let e = stream_err("vertexai/streaming-failure-http-error.txt", 400).await;
    assert!(
        matches!(e, Error::FailedPrecondition { status: 400, .. }),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_plain_json_error_body_with_status_200_is_still_an_error() {
    let e = stream_err("vertexai/streaming-failure-http-error.txt", 200).await;
    assert!(matches!(e, Error::FailedPrecondition { .. }), "{e:?}");
}

#[tokio::test]
async fn an_invalid_key_on_the_stream_endpoint_disables() {
    let e = stream_err("vertexai/streaming-failure-api-key.txt", 400).await;
    assert_eq!(e.kind(), ErrorKind::InvalidKey);
    assert!(!format!("{e:?}").contains("AIzv00G7VmUCUeC"));
}

#[tokio::test]
async fn a_rejected_image_on_the_stream_endpoint_is_an_invalid_request() {
    let e = stream_err("googleai/streaming-failure-image-rejected.txt", 400).await;
    assert_eq!(e.kind(), ErrorKind::InvalidRequest);
    assert_eq!(e.action(), Action::Fail);
}

#[tokio::test]
async fn a_stream_event_that_is_not_a_chunk_is_malformed() {
    let e = stream_err("vertexai/streaming-failure-invalid-json.txt", 200).await;
    assert_eq!(e.kind(), ErrorKind::MalformedResponse);
}

#[tokio::test]
async fn a_stream_of_empty_content_is_malformed() {
    let e = stream_err("vertexai/streaming-failure-empty-content.txt", 200).await;
    assert_eq!(e.kind(), ErrorKind::MalformedResponse);
}

#[tokio::test]
async fn a_stream_of_content_without_parts_is_malformed() {
    let e = stream_err("vertexai/streaming-failure-malformed-content.txt", 200).await;
    assert_eq!(e.kind(), ErrorKind::MalformedResponse);
}

#[tokio::test]
async fn a_blocked_prompt_in_a_stream_is_blocked() {
    for name in [
        "vertexai/streaming-failure-prompt-blocked-safety.txt",
        "googleai/streaming-failure-prompt-blocked-safety.txt",
    ] {
        let e = stream_err(name, 200).await;
        assert!(
            matches!(
                &e,
                Error::Blocked {
                    cause: BlockCause::Prompt(BlockReason::Safety),
                    ..
                }
            ),
            "{name}: {e:?}"
        );
    }
}

#[tokio::test]
async fn a_safety_finish_in_a_stream_is_blocked() {
    let e = stream_err("vertexai/streaming-failure-finish-reason-safety.txt", 200).await;
    assert_eq!(e.kind(), ErrorKind::Blocked);
}

#[tokio::test]
async fn a_recitation_finish_in_a_stream_is_blocked() {
    let e = stream_err("googleai/streaming-failure-recitation-no-content.txt", 200).await;
    assert!(
        matches!(
            &e,
            Error::Blocked {
                cause: BlockCause::Candidate(FinishReason::Recitation),
                ..
            }
        ),
        "{e:?}"
    );
}

// ------------------------------------------------------- transport limits

#[tokio::test]
async fn count_tokens_reads_the_total() {
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v1beta/models/{MODEL}:countTokens")))
        .and(header("x-goog-api-key", KEY))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"totalTokens": 31, "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 31}]}"#,
            "application/json",
        ))
        .mount(&server)
        .await;
    let r = client_for(&server, KEY)
        .count_tokens(MODEL, &CountTokensRequest::new(vec![Content::user("hi")]))
        .await
        .unwrap();
    assert_eq!(r.total_tokens, 31);
    assert_eq!(r.prompt_tokens_details.len(), 1);
}

#[tokio::test]
async fn a_body_over_the_cap_is_refused() {
    let server = MockServer::start().await;
    serve_unary(
        &server,
        KEY,
        200,
        fixture("googleai/unary-success-citations.json"),
    )
    .await;
    let config = swarmbus_gemini::ClientConfig::default()
        .base_url(server.uri())
        .max_body_bytes(1024);
    let client = swarmbus_gemini::GeminiClient::new(KEY.to_owned().into(), config).unwrap();
    let e = client.generate(MODEL, &request()).await.unwrap_err();
    assert!(matches!(e, Error::BodyTooLarge { limit: 1024 }), "{e:?}");
}

#[tokio::test]
async fn a_slow_server_times_out() {
    use wiremock::matchers::method;
    use wiremock::{Mock, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(common::success_body("late"), "application/json")
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    let config = swarmbus_gemini::ClientConfig::default()
        .base_url(server.uri())
        .timeouts(Duration::from_secs(2), Duration::from_millis(200));
    let client = swarmbus_gemini::GeminiClient::new(KEY.to_owned().into(), config).unwrap();
    let e = client.generate(MODEL, &request()).await.unwrap_err();
    assert!(matches!(e, Error::Timeout { connect: false, .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(e.action(), Action::Rotate);
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config =
        swarmbus_gemini::ClientConfig::default().base_url(format!("http://127.0.0.1:{port}"));
    let client = swarmbus_gemini::GeminiClient::new(KEY.to_owned().into(), config).unwrap();
    let e = client.generate(MODEL, &request()).await.unwrap_err();
    assert!(matches!(e, Error::Transport { connect: true, .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Transport);
    assert!(!format!("{e} {e:?}").contains(KEY));
}

#[tokio::test]
async fn a_model_id_cannot_change_the_url_path() {
    let server = MockServer::start().await;
    let e = client_for(&server, KEY)
        .generate("../../v1/evil?key=x", &request())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(server.received_requests().await.unwrap().is_empty());
}
