//! Every call is one OpenTelemetry GenAI span, and the logs never show the
//! key. Alone in its test binary: tracing caches per-callsite interest
//! globally, so a test without a subscriber running in parallel could
//! disable the callsites this one observes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use swarmbus_anthropic::MessagesRequest;
use swarmbus_core::ModelErrorKind;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::FmtSpan;

use common::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn logs_never_show_the_key_and_each_call_is_a_gen_ai_span() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let fx = fixture("test_anthropic_cache_real_api.1.json");
    let server = server_with(response_of(&fx)).await;
    let request: MessagesRequest = serde_json::from_value(fx["request"].clone()).unwrap();
    let mut with_temperature = request.clone();
    with_temperature
        .extra
        .insert("temperature".into(), json!(0.5));
    let c = client(&server.uri());
    c.send(&with_temperature, false).await.unwrap();
    let failing = server_with(response_of(&fixture("errors/overloaded_529.json"))).await;
    let e = client(&failing.uri())
        .send(&request, true)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ModelErrorKind::Overloaded);

    // A stream opened on its own closes its span when finished.
    let fx = fixture("test_anthropic_model_thinking_part_stream.json");
    let streaming = server_with(response_of(&fx)).await;
    let req: MessagesRequest = serde_json::from_value(fx["request"].clone()).unwrap();
    let mut stream = client(&streaming.uri()).stream_message(&req).await.unwrap();
    while let Some(u) = stream.next_update().await {
        u.unwrap();
    }
    stream.finish().unwrap();

    let logs = captured.text();
    assert_eq!(logs.matches("model call done").count(), 2, "{logs}");
    assert!(logs.contains("gen_ai.usage.output_tokens=282"), "{logs}");
    assert!(!logs.contains(KEY), "the key leaked into the logs");
    for field in [
        "gen_ai.operation.name=\"chat\"",
        "gen_ai.provider.name=\"anthropic\"",
        "gen_ai.request.model=\"claude-sonnet-4-5\"",
        "gen_ai.response.model=\"claude-sonnet-4-5-20250929\"",
        "gen_ai.usage.input_tokens=1532",
        "gen_ai.usage.output_tokens=33",
        "gen_ai.usage.cache_read.input_tokens=1111",
        "gen_ai.usage.cache_creation.input_tokens=418",
        "gen_ai.response.finish_reasons=\"end_turn\"",
        "otel.name=chat claude-sonnet-4-5",
        "error.type=\"overloaded\"",
    ] {
        assert!(logs.contains(field), "no {field} in:\n{logs}");
    }
    assert!(logs.contains("dropping sampling parameters"), "{logs}");
}
