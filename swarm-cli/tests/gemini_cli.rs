//! `swarm gemini generate` and `swarm shards test`, run as the real binary
//! against a local Gemini mock (wiremock) replaying recorded responses.
//! Every failure exits 1 with the promised JSON, and no output ever shows
//! the key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "test-secret-key-DO-NOT-LEAK-1234";
const MODEL: &str = "gemini-test";

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../swarm-gemini/tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// A working directory without a `.env`, so the developer's keys stay out.
fn workdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("swarm-gemini-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn swarm(base: &str, envs: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_swarm"));
    cmd.current_dir(workdir())
        .env_remove("REDIS_URL")
        .env("SWARM_MEMORY", "1")
        .env_remove("REDIS_CLUSTER")
        .env_remove("SWARM_NAMESPACE")
        .env_remove("GEMINI_MODEL")
        .env_remove("GEMINI_API_KEY")
        .env("GEMINI_BASE_URL", base);
    for (k, _) in std::env::vars() {
        if k.starts_with("GEMINI_API_KEY_SHARD") || k.starts_with("GEMINI_SHARD") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd.args(args).output().expect("run swarm");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(KEY), "the key leaked: {all}");
    assert!(
        !all.contains("test-shard-cli-key"),
        "a shard key leaked: {all}"
    );
    out
}

fn generate(base: &str, args: &[&str]) -> Output {
    let mut full = vec!["gemini", "generate", "--model", MODEL];
    full.extend_from_slice(args);
    swarm(base, &[("GEMINI_API_KEY", KEY)], &full)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The single JSON object on stdout.
fn json_of(o: &Output) -> serde_json::Value {
    let text = stdout(o);
    let mut values =
        serde_json::Deserializer::from_str(text.trim()).into_iter::<serde_json::Value>();
    let v = values.next().expect("one JSON value").expect("valid JSON");
    assert!(values.next().is_none(), "exactly one JSON object: {text}");
    v
}

async fn unary_server(status: u16, body: Vec<u8>) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!("/v1beta/models/{MODEL}:generateContent")))
        .and(header("x-goog-api-key", KEY))
        .respond_with(ResponseTemplate::new(status).set_body_raw(body, "application/json"))
        .mount(&server)
        .await;
    server
}

async fn stream_server(status: u16, body: Vec<u8>) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(format!(
            "/v1beta/models/{MODEL}:streamGenerateContent"
        )))
        .and(query_param("alt", "sse"))
        .and(header("x-goog-api-key", KEY))
        .respond_with(ResponseTemplate::new(status).set_body_raw(body, "text/event-stream"))
        .mount(&server)
        .await;
    server
}

#[tokio::test(flavor = "multi_thread")]
async fn generate_prints_the_answer_text() {
    let server = unary_server(
        200,
        fixture("googleai/unary-success-basic-reply-short.json"),
    )
    .await;
    let o = generate(&server.uri(), &["Where", "is", "Google?"]);
    assert!(o.status.success());
    assert_eq!(
        stdout(&o),
        "Google's headquarters, also known as the Googleplex, is located in **Mountain View, California**.\n"
    );
    let sent = &server.received_requests().await.unwrap()[0];
    let body: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body["contents"][0]["parts"][0]["text"], "Where is Google?");
}

#[tokio::test(flavor = "multi_thread")]
async fn generate_json_prints_exactly_the_promised_object() {
    let server = unary_server(200, fixture("vertexai/unary-success-implicit-caching.json")).await;
    let o = generate(&server.uri(), &["--json", "hi"]);
    assert!(o.status.success());
    let v = json_of(&o);
    assert_eq!(
        v,
        serde_json::json!({
            "text": "Red Riding Hood is looking for **directions** in the forest.",
            "finish_reason": "STOP",
            "usage": {"prompt_tokens": 12013, "output_tokens": 15, "thoughts_tokens": 73,
                      "cached_tokens": 11243, "total_tokens": 12101}
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn generate_stream_prints_the_text_as_it_arrives() {
    let server = stream_server(
        200,
        fixture("googleai/streaming-success-basic-reply-short.txt"),
    )
    .await;
    let o = generate(&server.uri(), &["--stream", "capital of Wyoming?"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), "The capital of Wyoming is **Cheyenne**.\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn generate_stream_json_puts_the_object_at_the_end() {
    let server = stream_server(
        200,
        fixture("googleai/streaming-success-thinking-reply-thought-summary.txt"),
    )
    .await;
    let o = generate(
        &server.uri(),
        &["--stream", "--json", "why is the sky blue?"],
    );
    assert!(o.status.success());
    let text = stdout(&o);
    let (streamed, last) = text.trim_end().rsplit_once('\n').unwrap();
    assert!(streamed.starts_with("The sky is blue because"), "{text}");
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["text"].as_str().unwrap(), streamed);
    assert_eq!(v["usage"]["thoughts_tokens"], 540);
    assert_eq!(v["usage"]["total_tokens"], 598);
    assert_eq!(v["finish_reason"], "STOP");
}

/// Issue 11 item 8: thinking used the whole output budget and no text part
/// came: a success with Gemini's own finish reason and an empty text.
#[tokio::test(flavor = "multi_thread")]
async fn max_tokens_without_text_is_a_success_with_an_empty_text() {
    for name in [
        "written/unary-success-max-tokens-thinking-no-parts.json",
        "written/unary-success-max-tokens-thought-only.json",
    ] {
        let server = unary_server(200, fixture(name)).await;
        let o = generate(&server.uri(), &["--json", "hi"]);
        assert!(o.status.success(), "{name}: {}", stdout(&o));
        assert_eq!(
            json_of(&o),
            serde_json::json!({
                "text": "",
                "finish_reason": "MAX_TOKENS",
                "usage": {"prompt_tokens": 14, "output_tokens": 0, "thoughts_tokens": 99,
                          "cached_tokens": 0, "total_tokens": 113}
            }),
            "{name}"
        );
        let plain = generate(&server.uri(), &["hi"]);
        assert!(plain.status.success(), "{name}");
        assert_eq!(stdout(&plain).trim(), "");
    }
    let server = stream_server(
        200,
        fixture("written/streaming-success-max-tokens-no-parts.txt"),
    )
    .await;
    let o = generate(&server.uri(), &["--stream", "--json", "hi"]);
    assert!(o.status.success(), "{}", stdout(&o));
    let v = json_of(&o);
    assert_eq!(v["text"], "");
    assert_eq!(v["finish_reason"], "MAX_TOKENS");
    assert_eq!(v["usage"]["thoughts_tokens"], 99);
}

async fn failure_case(
    status: u16,
    fixture_name: &str,
    kind: &str,
    http: Option<u16>,
) -> serde_json::Value {
    let server = unary_server(status, fixture(fixture_name)).await;
    let o = generate(&server.uri(), &["--json", "hello"]);
    assert_eq!(o.status.code(), Some(1), "{fixture_name}");
    let v = json_of(&o);
    assert_eq!(v["error"]["kind"], kind, "{fixture_name}: {v}");
    assert_eq!(
        v["error"]["http_status"],
        serde_json::json!(http),
        "{fixture_name}"
    );
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(v.as_object().unwrap().len(), 1);
    assert_eq!(v["error"].as_object().unwrap().len(), 4);
    // Without --json: status 1, the kind on stderr, nothing on stdout.
    let o = generate(&server.uri(), &["hello"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(String::from_utf8_lossy(&o.stderr).contains(kind));
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_key_fails_as_invalid_key() {
    let v = failure_case(
        400,
        "googleai/unary-failure-api-key.json",
        "invalid_key",
        Some(400),
    )
    .await;
    // Waiting cannot help a bad key.
    assert!(v["error"]["retry_after_s"].is_null(), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leaked_key_fails_as_permission_denied() {
    failure_case(
        403,
        "transcribed/error-403-permission-denied-leaked-key.json",
        "permission_denied",
        Some(403),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_model_fails_as_not_found() {
    failure_case(
        404,
        "googleai/unary-failure-unknown-model.json",
        "not_found",
        Some(404),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_request_fails_as_invalid_request() {
    failure_case(
        400,
        "transcribed/error-400-invalid-argument-bad-request.json",
        "invalid_request",
        Some(400),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_per_minute_429_fails_as_rate_limited() {
    let v = failure_case(
        429,
        "transcribed/error-429-per-minute-free-tier.json",
        "rate_limited",
        Some(429),
    )
    .await;
    // The RetryInfo delay of the fixture, 58 s.
    assert_eq!(v["error"]["retry_after_s"], 58, "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_per_day_429_fails_as_quota_exhausted() {
    let v = failure_case(
        429,
        "transcribed/error-429-per-day-free-tier.json",
        "quota_exhausted",
        Some(429),
    )
    .await;
    // Until the next midnight in Los Angeles: within a day (25 h on the
    // day the clocks go back), not the RetryInfo's few seconds.
    let s = v["error"]["retry_after_s"].as_u64().unwrap_or(0);
    assert!((1..=25 * 3600).contains(&s), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_503_fails_as_overloaded() {
    failure_case(
        503,
        "transcribed/error-503-unavailable-overloaded.json",
        "overloaded",
        Some(503),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_500_fails_as_server_error() {
    failure_case(
        500,
        "transcribed/error-500-internal.json",
        "server_error",
        Some(500),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_prompt_fails_as_blocked() {
    failure_case(
        200,
        "vertexai/unary-failure-prompt-blocked-safety.json",
        "blocked",
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_content_fails_as_malformed_response() {
    failure_case(
        200,
        "vertexai/unary-failure-empty-content.json",
        "malformed_response",
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_server_fails_as_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(
                    fixture("googleai/unary-success-basic-reply-short.json"),
                    "application/json",
                )
                .set_delay(Duration::from_secs(8)),
        )
        .mount(&server)
        .await;
    let o = generate(&server.uri(), &["--json", "--timeout", "1", "hello"]);
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["error"]["kind"], "timeout");
    assert_eq!(v["error"]["http_status"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_connection_fails_as_transport() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let o = generate(&format!("http://127.0.0.1:{port}"), &["--json", "hello"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json_of(&o)["error"]["kind"], "transport");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_key_fails_as_invalid_key() {
    let server = MockServer::start().await;
    let o = swarm(
        &server.uri(),
        &[],
        &["gemini", "generate", "--model", MODEL, "--json", "hello"],
    );
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["error"]["kind"], "invalid_key");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("GEMINI_API_KEY")
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_in_the_middle_of_a_stream_fails_after_the_text() {
    let server = stream_server(
        200,
        fixture("vertexai/streaming-failure-error-mid-stream.txt"),
    )
    .await;
    let o = generate(&server.uri(), &["--stream", "--json", "hello"]);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    let (streamed, last) = text.trim_end().rsplit_once('\n').unwrap();
    assert_eq!(streamed, "First Second ");
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(v["error"]["kind"], "server_error");
    assert_eq!(v["error"]["http_status"], 499);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_stream_fails_as_blocked() {
    let server = stream_server(
        200,
        fixture("vertexai/streaming-failure-prompt-blocked-safety.txt"),
    )
    .await;
    let o = generate(&server.uri(), &["--stream", "--json", "hello"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json_of(&o)["error"]["kind"], "blocked");
}

// ------------------------------------------------------------ shards test

fn shard_key(n: u32) -> String {
    format!("test-shard-cli-key-{n}")
}

async fn shards_server(ok: &[u32], bad: &[u32]) -> MockServer {
    let server = MockServer::start().await;
    let success = fixture("googleai/unary-success-basic-reply-short.json");
    for n in ok {
        Mock::given(method("POST"))
            .and(header("x-goog-api-key", shard_key(*n).as_str()))
            .respond_with(
                ResponseTemplate::new(200).set_body_raw(success.clone(), "application/json"),
            )
            .mount(&server)
            .await;
    }
    for n in bad {
        Mock::given(method("POST"))
            .and(header("x-goog-api-key", shard_key(*n).as_str()))
            .respond_with(ResponseTemplate::new(400).set_body_raw(
                fixture("googleai/unary-failure-api-key.json"),
                "application/json",
            ))
            .mount(&server)
            .await;
    }
    server
}

fn shards_test(base: &str, n: u32, extra: &[&str]) -> Output {
    let keys: Vec<(String, String)> = (1..=n)
        .map(|i| (format!("GEMINI_API_KEY_SHARD{i}"), shard_key(i)))
        .collect();
    let mut envs: Vec<(&str, &str)> = keys.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    envs.push(("GEMINI_SHARD1_PROJECT", "project-a"));
    let mut args = vec!["shards", "test", "--model", MODEL];
    args.extend_from_slice(extra);
    swarm(base, &envs, &args)
}

#[tokio::test(flavor = "multi_thread")]
async fn shards_test_json_reports_every_shard_and_passes_at_80_percent() {
    let server = shards_server(&[1, 2, 3, 4], &[5]).await;
    let o = shards_test(&server.uri(), 5, &["--json"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let v = json_of(&o);
    assert_eq!(v["operational"], 4);
    assert_eq!(v["total"], 5);
    assert_eq!(v["operational_fraction"], 0.8);
    assert_eq!(v["required_fraction"], 0.8);
    assert_eq!(v["ready"], true);
    assert_eq!(v["model"], MODEL);
    let shards = v["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 5);
    assert_eq!(shards[0]["shard"], 1);
    assert_eq!(shards[0]["project"], "project-a");
    assert_eq!(shards[0]["status"], "ok");
    assert_eq!(shards[0]["operational"], true);
    assert_eq!(shards[0]["quota_remaining"], 1499);
    assert!(shards[0]["latency_ms"].is_u64());
    assert_eq!(shards[0]["error"], serde_json::Value::Null);
    assert_eq!(shards[4]["status"], "disabled");
    assert_eq!(shards[4]["error"]["kind"], "invalid_key");
}

#[tokio::test(flavor = "multi_thread")]
async fn shards_test_refuses_below_80_percent() {
    let server = shards_server(&[1, 2, 3], &[4, 5]).await;
    let o = shards_test(&server.uri(), 5, &[]);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    assert!(text.contains("3/5 operational (60%)"), "{text}");
    assert!(text.contains("NOT READY"), "{text}");
    assert!(text.contains("shard1 [project-a]  ok"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn shards_test_without_shards_fails_with_a_config_error() {
    let server = MockServer::start().await;
    let o = shards_test(&server.uri(), 0, &["--json"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json_of(&o)["error"]["kind"], "config");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retired_librarian_model_stops_the_librarian_at_start_naming_its_replacement() {
    // gemini-2.5-flash shut down on 2026-12-01 (the price table's
    // lifecycle); the process's clock is set past it, whatever day this runs.
    let server = MockServer::start().await;
    let out = swarm(
        &server.uri(),
        &[("GEMINI_API_KEY_SHARD1", "test-shard-cli-key")],
        &[
            "--now",
            "2026-12-02T09:00:00Z",
            "librarian",
            "ask",
            "--model",
            "gemini-2.5-flash",
            "what did we find?",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "the librarian model (--model): model gemini-2.5-flash was retired on 2026-12-01; \
             use gemini-3.5-flash-lite"
        ),
        "{stderr}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());
}
