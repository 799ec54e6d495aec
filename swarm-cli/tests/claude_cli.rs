//! `swarm claude generate`, run as the real binary against a local Messages
//! API mock (wiremock, `ANTHROPIC_BASE_URL`) replaying recorded answers.
//! Every failure exits 1 with the promised JSON, and no output ever shows
//! the key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "fake-anthropic-cli-secret-DO-NOT-LEAK-9012";

fn fixture(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../swarm-anthropic/tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

fn response_of(fx: &Value) -> ResponseTemplate {
    let mut t = ResponseTemplate::new(fx["status"].as_u64().unwrap_or(200) as u16);
    if let Some(h) = fx["headers"].as_object() {
        for (k, v) in h {
            t = t.insert_header(k.as_str(), v.as_str().unwrap());
        }
    }
    match fx["sse"].as_str() {
        Some(sse) => t.set_body_raw(sse.as_bytes().to_vec(), "text/event-stream"),
        None => t.set_body_raw(serde_json::to_vec(&fx["body"]).unwrap(), "application/json"),
    }
}

async fn server(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", KEY))
        .and(header("anthropic-version", "2026-10-21"))
        .respond_with(template)
        .mount(&server)
        .await;
    server
}

/// A working directory without a `.env`, so the developer's keys stay out.
fn workdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("swarm-claude-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn swarm(base: &str, key: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_swarm"));
    cmd.current_dir(workdir())
        .env_remove("REDIS_URL")
        .env_remove("ANTHROPIC_API_KEY")
        .env("ANTHROPIC_BASE_URL", base)
        .env("RUST_LOG", "trace");
    if let Some(k) = key {
        cmd.env("ANTHROPIC_API_KEY", k);
    }
    let out = cmd.args(args).output().expect("run swarm");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(KEY), "the key leaked: {all}");
    out
}

fn generate(base: &str, args: &[&str]) -> Output {
    let mut full = vec!["claude", "generate", "--retries", "0"];
    full.extend_from_slice(args);
    swarm(base, Some(KEY), &full)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The single JSON object on stdout.
fn json_of(o: &Output) -> Value {
    let text = stdout(o);
    let mut values = serde_json::Deserializer::from_str(text.trim()).into_iter::<Value>();
    let v = values.next().expect("one JSON value").expect("valid JSON");
    assert!(values.next().is_none(), "exactly one JSON object: {text}");
    v
}

fn body_text(fx: &Value) -> String {
    fx["body"]["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["type"] == "text")
        .map(|b| b["text"].as_str().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn generate_prints_the_answer_text_and_sends_the_request() {
    let fx = fixture("test_anthropic_model_instructions.json");
    let s = server(response_of(&fx)).await;
    let o = generate(
        &s.uri(),
        &[
            "--model",
            "claude-haiku-5-5",
            "--max-tokens",
            "300",
            "--system",
            "Be brief.",
            "What",
            "is",
            "2+2?",
        ],
    );
    assert!(o.status.success(), "{o:?}");
    let text = body_text(&fx);
    assert_eq!(stdout(&o).trim_end(), text.trim_end());
    let sent: Value =
        serde_json::from_slice(&s.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(
        sent,
        json!({"model": "claude-haiku-5-5", "max_tokens": 300, "system": "Be brief.",
               "messages": [{"role": "user", "content": "What is 2+2?"}], "stream": false})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn generate_json_prints_exactly_the_promised_object() {
    let fx = fixture("test_anthropic_cache_real_api.1.json");
    let s = server(response_of(&fx)).await;
    let o = generate(
        &s.uri(),
        &["--model", "claude-sonnet-5-5", "--json", "explain"],
    );
    assert!(o.status.success());
    assert_eq!(
        json_of(&o),
        json!({
            "text": body_text(&fx),
            "stop_reason": "end_turn",
            "model": "claude-sonnet-4-5-20250929",
            "usage": {"input_tokens": 3, "output_tokens": 33, "cache_read_tokens": 1111,
                      "cache_write_5m_tokens": 418, "cache_write_1h_tokens": 0}
        })
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn generate_stream_prints_the_text_as_it_arrives_without_thinking() {
    let fx = fixture("test_anthropic_model_thinking_part_stream.json");
    let s = server(response_of(&fx)).await;
    let o = generate(
        &s.uri(),
        &["--model", "claude-sonnet-5-5", "--stream", "safety?"],
    );
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    assert!(
        out.starts_with("Here are the basic steps for safely crossing"),
        "{out}"
    );
    assert!(
        !out.contains("This is a straightforward question"),
        "thinking printed: {out}"
    );
    let sent: Value =
        serde_json::from_slice(&s.received_requests().await.unwrap()[0].body).unwrap();
    assert_eq!(sent["stream"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn generate_stream_json_prints_one_object() {
    let fx = fixture("test_anthropic_model_thinking_part_stream.json");
    let s = server(response_of(&fx)).await;
    let o = generate(
        &s.uri(),
        &[
            "--model",
            "claude-sonnet-5-5",
            "--stream",
            "--json",
            "safety?",
        ],
    );
    assert!(o.status.success());
    let v = json_of(&o);
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["usage"]["output_tokens"], 282);
    assert_eq!(v["usage"]["input_tokens"], 43);
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .starts_with("Here are the basic steps for safely crossing")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_response_cut_by_max_tokens_is_a_success_even_when_empty() {
    let body = json!({"id":"m","type":"message","role":"assistant","model":"claude-haiku-5-5",
        "content":[{"type":"thinking","thinking":"hmm","signature":"s"}],"stop_reason":"max_tokens",
        "usage":{"input_tokens":9,"output_tokens":16}});
    let s = server(ResponseTemplate::new(200).set_body_json(body)).await;
    let o = generate(
        &s.uri(),
        &[
            "--model",
            "claude-haiku-5-5",
            "--max-tokens",
            "16",
            "--json",
            "think",
        ],
    );
    assert!(o.status.success());
    let v = json_of(&o);
    assert_eq!(
        (v["text"].as_str(), v["stop_reason"].as_str()),
        (Some(""), Some("max_tokens"))
    );
}

async fn failure_case(file: &str, kind: &str, http: Option<u16>, retry_after: Option<u64>) {
    let s = server(response_of(&fixture(file))).await;
    let o = generate(
        &s.uri(),
        &["--model", "claude-haiku-5-5", "--json", "hello"],
    );
    assert_eq!(o.status.code(), Some(1), "{file}");
    let v = json_of(&o);
    assert_eq!(v["error"]["kind"], kind, "{file}: {v}");
    assert_eq!(v["error"]["http_status"], json!(http), "{file}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
    );
    if let Some(r) = retry_after {
        assert_eq!(v["error"]["retry_after_s"], r, "{file}");
    }
    assert_eq!(v.as_object().unwrap().len(), 1);
    assert_eq!(v["error"].as_object().unwrap().len(), 4);
    // Without --json: status 1, the kind on stderr, nothing on stdout.
    let o = generate(&s.uri(), &["--model", "claude-haiku-5-5", "hello"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    assert!(String::from_utf8_lossy(&o.stderr).contains(kind), "{file}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_error_exits_1_with_its_kind() {
    failure_case(
        "errors/invalid_request_400.json",
        "invalid_request",
        Some(400),
        None,
    )
    .await;
    failure_case(
        "errors/authentication_401.json",
        "unauthenticated",
        Some(401),
        None,
    )
    .await;
    failure_case("errors/billing_402.json", "billing", Some(402), None).await;
    failure_case(
        "errors/permission_403.json",
        "permission_denied",
        Some(403),
        None,
    )
    .await;
    failure_case("errors/not_found_404.json", "not_found", Some(404), None).await;
    failure_case(
        "errors/request_too_large_413.json",
        "request_too_large",
        Some(413),
        None,
    )
    .await;
    failure_case(
        "errors/rate_limit_429_retry_after.json",
        "rate_limited",
        Some(429),
        Some(17),
    )
    .await;
    failure_case("errors/api_error_500.json", "server_error", Some(500), None).await;
    failure_case("errors/overloaded_529.json", "overloaded", Some(529), None).await;
    failure_case(
        "errors/stream_error_overloaded.json",
        "malformed_response",
        Some(200),
        None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spend_limit_says_how_long_to_stop() {
    // The fixture says "You will regain access on 2026-12-01 at 00:00 UTC";
    // the process's clock starts 36 hours before that.
    let s = server(response_of(&fixture(
        "errors/rate_limit_429_spend_limit.json",
    )))
    .await;
    let o = generate(
        &s.uri(),
        &[
            "--now",
            "2026-11-29T12:00:00Z",
            "--model",
            "claude-haiku-5-5",
            "--json",
            "hello",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["error"]["kind"], "spend_limit");
    assert_eq!(v["error"]["http_status"], 429);
    let wait = v["error"]["retry_after_s"].as_u64().unwrap();
    assert!((36 * 3600 - 60..=36 * 3600).contains(&wait), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stop until 2026-12-01T00:00:00+00:00"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spend_limit_whose_date_has_passed_says_retry_without_a_wait() {
    let s = server(response_of(&fixture(
        "errors/rate_limit_429_spend_limit.json",
    )))
    .await;
    let o = generate(
        &s.uri(),
        &[
            "--now",
            "2026-12-02T09:00:00Z",
            "--model",
            "claude-haiku-5-5",
            "--json",
            "hello",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["error"]["kind"], "spend_limit");
    assert!(v["error"]["retry_after_s"].is_null(), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("which has passed: retry"),
        "{v}"
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("the clock starts at 2026-12-02T09:00:00+00:00"),
        "a clock that is not the system's is said: {stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_error_event_mid_stream_exits_1_with_its_kind() {
    let s = server(response_of(&fixture("errors/stream_error_overloaded.json"))).await;
    let o = generate(
        &s.uri(),
        &["--model", "claude-haiku-5-5", "--stream", "--json", "hello"],
    );
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["error"]["kind"], "overloaded");
    assert_eq!(v["error"]["http_status"], Value::Null);
    let o = generate(
        &s.uri(),
        &["--model", "claude-haiku-5-5", "--stream", "hello"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).starts_with("Partial answ"));
    assert!(String::from_utf8_lossy(&o.stderr).contains("overloaded"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refusal_exits_1_as_refused() {
    let body = json!({"id":"m","type":"message","role":"assistant","model":"claude-haiku-5-5",
        "content":[],"stop_reason":"refusal","stop_details":{"type":"refusal","category":"bio"},
        "usage":{"input_tokens":9,"output_tokens":0}});
    let s = server(ResponseTemplate::new(200).set_body_json(body)).await;
    let o = generate(&s.uri(), &["--model", "claude-haiku-5-5", "--json", "x"]);
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["error"]["kind"], "refused");
    assert!(v["error"]["message"].as_str().unwrap().contains("bio"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_cut_before_message_stop_exits_1() {
    let fx = fixture("test_anthropic_model_thinking_part_stream.json");
    let sse = fx["sse"].as_str().unwrap();
    let cut = &sse[..sse.find("event: message_delta").unwrap()];
    let s = server(
        ResponseTemplate::new(200).set_body_raw(cut.as_bytes().to_vec(), "text/event-stream"),
    )
    .await;
    let o = generate(
        &s.uri(),
        &["--model", "claude-haiku-5-5", "--stream", "--json", "x"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json_of(&o)["error"]["kind"], "malformed_response");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_utf8_in_a_stream_exits_1() {
    let body = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"\xff\"}}\n\n".to_vec();
    let s = server(ResponseTemplate::new(200).set_body_raw(body, "text/event-stream")).await;
    let o = generate(
        &s.uri(),
        &["--model", "claude-haiku-5-5", "--stream", "--json", "x"],
    );
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["error"]["kind"], "malformed_response");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("UTF-8"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_cap_exits_1() {
    let s = server(response_of(&fixture(
        "test_anthropic_cache_real_api.1.json",
    )))
    .await;
    let o = generate(
        &s.uri(),
        &[
            "--model",
            "claude-haiku-5-5",
            "--max-body-bytes",
            "100",
            "--json",
            "x",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["error"]["kind"], "malformed_response");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("cap"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_exits_1_as_invalid_input_and_sends_nothing() {
    let s = server(ResponseTemplate::new(200)).await;
    for args in [
        vec!["--model", "claude-haiku-5-5", "--json", ""],
        vec!["--model", "claude-haiku-5-5", "--json", "  ", " "],
        vec![
            "--model",
            "claude-haiku-5-5",
            "--max-tokens",
            "0",
            "--json",
            "hi",
        ],
        vec!["--model", "gpt-4o", "--json", "hi"],
        vec!["--model", "claude/../../etc", "--json", "hi"],
        vec!["--model", "", "--json", "hi"],
    ] {
        let o = generate(&s.uri(), &args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let v = json_of(&o);
        assert_eq!(v["error"]["kind"], "invalid_input", "{args:?}: {v}");
        assert_eq!(v["error"]["http_status"], Value::Null);
    }
    assert!(s.received_requests().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_key_exits_1_as_unauthenticated() {
    let s = server(ResponseTemplate::new(200)).await;
    let o = swarm(
        &s.uri(),
        None,
        &[
            "claude",
            "generate",
            "--model",
            "claude-haiku-5-5",
            "--json",
            "hi",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["error"]["kind"], "unauthenticated");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ANTHROPIC_API_KEY")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retired_model_exits_1_naming_its_replacement_and_sends_nothing() {
    let s = server(ResponseTemplate::new(200)).await;
    let o = generate(&s.uri(), &["--model", "claude-sonnet-4-0", "--json", "hi"]);
    assert_eq!(o.status.code(), Some(1));
    let v = json_of(&o);
    assert_eq!(v["error"]["kind"], "not_found");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("claude-sonnet-4-6"),
        "{v}"
    );
    assert!(s.received_requests().await.unwrap().is_empty());
}
