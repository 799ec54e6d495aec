//! The key never reaches Debug, Display or errors (logs: tracing_span.rs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use serde_json::json;
use swarmbus_anthropic::{ErrorKind, MessagesRequest};
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
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(!text.contains(KEY), "{text}");
        assert!(text.contains("[REDACTED]"), "{text}");
    }
}
