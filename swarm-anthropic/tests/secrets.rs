//! The key never reaches Debug, Display or errors (logs: tracing_span.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use serde_json::json;
use swarmbus_anthropic::MessagesRequest;
use swarmbus_core::ModelErrorKind;
use wiremock::ResponseTemplate;

use common::*;

#[tokio::test]
async fn the_key_is_not_in_debug() {
    let c = client("http://127.0.0.1:9");
    let d = format!("{c:?}");
    assert!(!d.contains(KEY), "{d}");
    assert!(d.contains("[REDACTED]"));
}

#[tokio::test]
async fn a_key_echoed_by_the_server_is_redacted_from_the_error() {
    let body = json!({"type":"error","error":{"type":"authentication_error",
        "message":format!("invalid x-api-key {KEY}")},"request_id":"req_1"});
    let server = server_with(ResponseTemplate::new(401).set_body_json(body)).await;
    let e = client(&server.uri())
        .create_message(&MessagesRequest::new("claude-haiku-4-5", 8, "hi"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ModelErrorKind::Unauthenticated);
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(!text.contains(KEY), "{text}");
        assert!(text.contains("[REDACTED]"), "{text}");
    }
}

/// Issue 19 row 10: the two providers had two rules (anthropic replaced
/// keys of 4+ characters, gemini any non-empty key). Now both use
/// `swarmbus_core::redact::Redactor`: a 3-character key echoed by the
/// server is replaced too. Before: the error read `invalid x-api-key k3y`.
#[tokio::test]
async fn a_short_key_echoed_by_the_server_is_redacted_like_any_other() {
    use secrecy::SecretString;
    use swarmbus_anthropic::AnthropicClient;
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer};
    let short = "k3y";
    let body = json!({"type":"error","error":{"type":"authentication_error",
        "message":format!("invalid x-api-key {short}")},"request_id":"req_1"});
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(401).set_body_json(body))
        .mount(&server)
        .await;
    let c = AnthropicClient::new(SecretString::from(short), config(&server.uri())).unwrap();
    let e = c
        .create_message(&MessagesRequest::new("claude-haiku-4-5", 8, "hi"))
        .await
        .unwrap_err();
    let shown = e.to_string();
    assert!(!shown.contains(short), "{shown}");
    assert!(shown.contains("[REDACTED]"), "{shown}");
}
