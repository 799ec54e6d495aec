//! The key never appears: not in tracing output (captured at TRACE), not in
//! any error's Display or Debug, not in the Debug of a client, pool or
//! shard configuration, even when the server echoes the key back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{KEY, MODEL, fixture, serve_stream, serve_unary, unary_path};
use secrecy::SecretString;
use swarmbus_core::keys::ShardId;
use swarmbus_core::quota::QuotaLimits;
use swarmbus_gemini::wire::GenerateContentRequest;
use swarmbus_gemini::{
    ClientConfig, FallbackConfig, GeminiClient, OpenAiCompatible, PoolConfig, ShardConfig,
    ShardPool,
};
use swarmbus_memory::MemoryBus;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A writer that appends to a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

const FAILURES: &[(&str, u16)] = &[
    ("googleai/unary-failure-api-key.json", 400),
    (
        "googleai/unary-failure-generativelanguage-api-not-enabled.json",
        403,
    ),
    ("googleai/unary-failure-unknown-model.json", 404),
    (
        "transcribed/error-400-invalid-argument-bad-request.json",
        400,
    ),
    (
        "transcribed/error-403-permission-denied-leaked-key.json",
        403,
    ),
    ("transcribed/error-429-bare-no-details.json", 429),
    ("transcribed/error-429-per-day-free-tier.json", 429),
    ("transcribed/error-429-per-minute-free-tier.json", 429),
    ("transcribed/error-500-internal.json", 500),
    ("transcribed/error-503-unavailable-overloaded.json", 503),
    ("vertexai/unary-failure-http-error.json", 400),
    ("vertexai/unary-failure-prompt-blocked-safety.json", 200),
    ("vertexai/unary-failure-empty-content.json", 200),
    ("vertexai/unary-failure-invalid-response.json", 200),
];

fn assert_clean(what: &str, text: &str) {
    assert!(!text.contains(KEY), "the key leaked in {what}: {text}");
}

#[tokio::test]
async fn the_key_never_reaches_logs_errors_or_debug_output() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let request = GenerateContentRequest::user("hello");

    // Every failure class through the client, unary and stream.
    for (name, status) in FAILURES {
        let server = MockServer::start().await;
        serve_unary(&server, KEY, *status, fixture(name)).await;
        serve_stream(&server, KEY, *status, fixture(name)).await;
        let client = common::client_for(&server, KEY);
        let e = client.generate(MODEL, &request).await.unwrap_err();
        assert_clean(name, &format!("{e} {e:?} {}", e.kind()));
        let e = client.stream_generate(MODEL, &request).await.unwrap_err();
        assert_clean(name, &format!("{e} {e:?}"));
        assert_clean("client Debug", &format!("{client:?}"));
    }

    // A server that echoes the key in its message.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(unary_path(MODEL)))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "error": {"code": 400, "status": "INVALID_ARGUMENT",
                      "message": format!("API key not valid: {KEY}"),
                      "details": [{"@type": "type.googleapis.com/google.rpc.DebugInfo", "detail": KEY}]}
        })))
        .mount(&server)
        .await;
    let e = common::client_for(&server, KEY)
        .generate(MODEL, &request)
        .await
        .unwrap_err();
    let shown = format!("{e} {e:?}");
    assert_clean("echoed key", &shown);
    assert!(shown.contains("[REDACTED]"), "{shown}");

    // Transport errors and timeouts.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let refused = GeminiClient::new(
        SecretString::from(KEY.to_owned()),
        ClientConfig::default().base_url(format!("http://127.0.0.1:{port}")),
    )
    .unwrap();
    let e = refused.generate(MODEL, &request).await.unwrap_err();
    assert_clean("transport error", &format!("{e} {e:?}"));

    // A pool of shards that all fail, and its AllShardsExhausted.
    let server = MockServer::start().await;
    serve_unary(
        &server,
        KEY,
        429,
        fixture("transcribed/error-429-per-day-free-tier.json"),
    )
    .await;
    let shard = ShardConfig::new(ShardId::new(1).unwrap(), SecretString::from(KEY.to_owned()))
        .with_limits(QuotaLimits::free_tier());
    assert_clean("shard config Debug", &format!("{shard:?}"));
    let pool = ShardPool::new(
        vec![shard],
        Arc::new(MemoryBus::new()),
        PoolConfig::default()
            .model(MODEL)
            .client(ClientConfig::default().base_url(server.uri()))
            .max_wait(Duration::ZERO),
    )
    .unwrap()
    .with_fallback(
        OpenAiCompatible::new(
            SecretString::from(KEY.to_owned()),
            FallbackConfig::default().base_url(server.uri()),
        )
        .unwrap(),
    );
    assert_clean("pool Debug", &format!("{pool:?}"));
    let e = pool.generate(&request).await.unwrap_err();
    assert_clean("pool error", &format!("{e} {e:?}"));
    let report = pool.test_shards().await.unwrap();
    assert_clean("shard test report", &format!("{report:?}"));
    assert_clean("shard test JSON", &serde_json::to_string(&report).unwrap());

    let logs = capture.text();
    assert!(
        logs.contains("gemini call failed"),
        "logs were captured: {logs}"
    );
    assert_clean("tracing output", &logs);
}
