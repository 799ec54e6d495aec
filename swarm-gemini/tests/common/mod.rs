//! Shared test helpers: fixtures and a local Gemini mock.
#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use swarmbus_gemini::{ClientConfig, GeminiClient};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A recognisable fake key (deliberately not shaped like a real Google key).
pub const KEY: &str = "test-secret-key-DO-NOT-LEAK-1234";

/// The model the mocks answer for.
pub const MODEL: &str = "gemini-test";

/// A fixture's bytes, exactly as recorded.
pub fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// The unary endpoint path for `model`.
pub fn unary_path(model: &str) -> String {
    format!("/v1beta/models/{model}:generateContent")
}

/// The stream endpoint path for `model`.
pub fn stream_path(model: &str) -> String {
    format!("/v1beta/models/{model}:streamGenerateContent")
}

/// A client of `server` with `key`.
pub fn client_for(server: &MockServer, key: &str) -> GeminiClient {
    let config = ClientConfig::default()
        .base_url(server.uri())
        .model(MODEL)
        .timeouts(Duration::from_secs(5), Duration::from_secs(30));
    GeminiClient::new(SecretString::from(key.to_owned()), config).expect("client")
}

/// A mock that answers the unary endpoint with `status` and the fixture,
/// only when the key is in the header (and not in the URL).
pub async fn serve_unary(server: &MockServer, key: &str, status: u16, body: Vec<u8>) {
    Mock::given(method("POST"))
        .and(path(unary_path(MODEL)))
        .and(header("x-goog-api-key", key))
        .and(query_param_is_missing("key"))
        .respond_with(ResponseTemplate::new(status).set_body_raw(body, "application/json"))
        .mount(server)
        .await;
}

/// A mock that answers the stream endpoint (`?alt=sse`) with `status`,
/// the body served as `text/event-stream` (or JSON for an error status).
pub async fn serve_stream(server: &MockServer, key: &str, status: u16, body: Vec<u8>) {
    let mime = if status == 200 {
        "text/event-stream"
    } else {
        "application/json"
    };
    Mock::given(method("POST"))
        .and(path(stream_path(MODEL)))
        .and(query_param("alt", "sse"))
        .and(header("x-goog-api-key", key))
        .respond_with(ResponseTemplate::new(status).set_body_raw(body, mime))
        .mount(server)
        .await;
}

/// A mock that answers every shard's unary call with a plain success.
pub fn success_body(text: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2, "totalTokenCount": 7},
        "modelVersion": MODEL
    }))
    .expect("json")
}
