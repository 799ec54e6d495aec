//! Shared test helpers: recorded fixtures, a local Messages API (wiremock)
//! answering with them, and a client pointed at it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use serde_json::Value;
use swarmbus_anthropic::{AnthropicClient, ClientConfig};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The test key: it must never appear in any output.
pub const KEY: &str = "fake-anthropic-test-secret-DO-NOT-LEAK-5678";

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A fixture by its path under tests/fixtures.
pub fn fixture(name: &str) -> Value {
    load(&fixtures_dir().join(name))
}

pub fn load(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The fixture's answer: status, headers, and the JSON body or SSE text.
pub fn response_of(fx: &Value) -> ResponseTemplate {
    let status = fx["status"].as_u64().unwrap_or(200) as u16;
    let mut t = ResponseTemplate::new(status);
    if let Some(h) = fx["headers"].as_object() {
        for (k, v) in h {
            t = t.insert_header(k.as_str(), v.as_str().unwrap_or_default());
        }
    }
    if let Some(sse) = fx["sse"].as_str() {
        t.set_body_raw(sse.as_bytes().to_vec(), "text/event-stream")
    } else {
        t.set_body_raw(serde_json::to_vec(&fx["body"]).unwrap(), "application/json")
    }
}

/// Mounts `template` for `POST /v1/messages` with the key and version
/// headers (a request without them gets wiremock's 404).
pub async fn mount(server: &MockServer, template: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", KEY))
        .and(header("anthropic-version", "2026-10-21"))
        .and(header("content-type", "application/json"))
        .respond_with(template)
        .mount(server)
        .await;
}

pub async fn server_with(template: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    mount(&server, template).await;
    server
}

/// A config for the mock: no retries, short timeouts.
pub fn config(base: &str) -> ClientConfig {
    ClientConfig::default()
        .base_url(base)
        .timeouts(Duration::from_secs(5), Duration::from_secs(5))
        .request_timeout(Duration::from_secs(10))
        .retries(0, Duration::from_millis(1), Duration::from_millis(5))
}

pub fn client(base: &str) -> AnthropicClient {
    AnthropicClient::new(SecretString::from(KEY), config(base)).unwrap()
}

/// The JSON bodies the mock received.
pub async fn sent_bodies(server: &MockServer) -> Vec<Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}
