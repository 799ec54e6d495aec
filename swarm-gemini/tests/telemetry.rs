//! Every model call is a `tracing` span named and attributed after the
//! OpenTelemetry GenAI conventions: captured here by a hand-written
//! `tracing-subscriber` layer that keeps every span's fields (at creation
//! and as recorded later) and every event, then checked for the attributes
//! and for the absence of any key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{KEY, MODEL, client_for, fixture, serve_stream, serve_unary};
use secrecy::SecretString;
use serde_json::json;
use swarmbus_core::keys::ShardId;
use swarmbus_core::llm::{CompletionRequest, LanguageModel};
use swarmbus_core::quota::QuotaLimits;
use swarmbus_gemini::wire::GenerateContentRequest;
use swarmbus_gemini::{
    ClientConfig, FallbackConfig, OpenAiCompatible, PoolConfig, ShardConfig, ShardPool,
};
use swarmbus_memory::MemoryBus;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FALLBACK_KEY: &str = "test-fallback-key-DO-NOT-LEAK";

/// One captured span: its name and every field recorded on it.
#[derive(Debug, Clone, Default)]
struct SpanRecord {
    name: String,
    fields: BTreeMap<String, String>,
}

#[derive(Clone, Default)]
struct Captured {
    spans: Arc<Mutex<Vec<SpanRecord>>>,
    events: Arc<Mutex<String>>,
}

impl Captured {
    fn gen_ai(&self) -> Vec<SpanRecord> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.name == "gen_ai")
            .cloned()
            .collect()
    }

    /// Every span field and every event, as text.
    fn everything(&self) -> String {
        let mut out = format!("{:?}", self.spans.lock().unwrap());
        out.push_str(&self.events.lock().unwrap());
        out
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

/// The index of a span's record, kept in its extensions.
struct Slot(usize);

struct CaptureLayer(Captured);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for CaptureLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut record = SpanRecord {
            name: attrs.metadata().name().to_owned(),
            ..SpanRecord::default()
        };
        attrs.record(&mut Fields(&mut record.fields));
        let mut spans = self.0.spans.lock().unwrap();
        spans.push(record);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Slot(spans.len() - 1));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let ext = span.extensions();
        let Some(Slot(i)) = ext.get::<Slot>() else {
            return;
        };
        let mut spans = self.0.spans.lock().unwrap();
        values.record(&mut Fields(&mut spans[*i].fields));
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let mut text = self.0.events.lock().unwrap();
        let _ = writeln!(text, "{} {fields:?}", event.metadata().target());
    }
}

fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::registry()
        .with(CaptureLayer(captured.clone()))
        .with(tracing_subscriber::filter::LevelFilter::TRACE);
    let guard = tracing::subscriber::set_default(subscriber);
    (captured, guard)
}

fn field<'a>(span: &'a SpanRecord, name: &str) -> &'a str {
    span.fields
        .get(name)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("{name} not recorded on {span:?}"))
}

fn assert_no_key(captured: &Captured) {
    let all = captured.everything();
    assert!(!all.contains(KEY), "the Gemini key reached telemetry");
    assert!(
        !all.contains(FALLBACK_KEY),
        "the fallback key reached telemetry"
    );
}

#[tokio::test]
async fn a_gemini_call_is_a_gen_ai_span_with_usage_and_finish_reason() {
    let server = MockServer::start().await;
    serve_unary(
        &server,
        KEY,
        200,
        fixture("vertexai/unary-success-implicit-caching.json"),
    )
    .await;
    let client = client_for(&server, KEY);
    let (captured, _guard) = capture();
    let c = client
        .complete(CompletionRequest::new("hi").max_output_tokens(500))
        .await
        .unwrap();
    let spans = captured.gen_ai();
    assert_eq!(spans.len(), 1, "one span per call: {spans:?}");
    let s = &spans[0];
    assert_eq!(field(s, "gen_ai.provider.name"), "gcp.gemini");
    assert_eq!(field(s, "gen_ai.operation.name"), "generate_content");
    assert_eq!(field(s, "gen_ai.request.model"), MODEL);
    assert_eq!(field(s, "otel.name"), format!("generate_content {MODEL}"));
    assert_eq!(field(s, "gen_ai.request.max_tokens"), "500");
    assert_eq!(field(s, "gen_ai.response.model"), c.model);
    assert_eq!(field(s, "gen_ai.response.finish_reasons"), "end_turn");
    // input_tokens counts every prompt token, cache reads included.
    assert_eq!(
        field(s, "gen_ai.usage.input_tokens"),
        c.usage.prompt_tokens().to_string()
    );
    assert_eq!(
        field(s, "gen_ai.usage.output_tokens"),
        c.usage.output_tokens.to_string()
    );
    assert_eq!(
        field(s, "gen_ai.usage.cache_read.input_tokens"),
        c.usage.cache_read_tokens.to_string()
    );
    assert!(c.usage.cache_read_tokens > 0, "the fixture has cache reads");
    assert!(!s.fields.contains_key("error.type"));
    assert_no_key(&captured);
}

#[tokio::test]
async fn a_failed_call_records_its_error_kind() {
    let server = MockServer::start().await;
    serve_unary(
        &server,
        KEY,
        429,
        fixture("transcribed/error-429-per-minute-free-tier.json"),
    )
    .await;
    let client = client_for(&server, KEY);
    let (captured, _guard) = capture();
    client
        .complete(CompletionRequest::new("hi"))
        .await
        .unwrap_err();
    let spans = captured.gen_ai();
    assert_eq!(spans.len(), 1);
    assert_eq!(field(&spans[0], "error.type"), "rate_limited");
    assert!(!spans[0].fields.contains_key("gen_ai.usage.input_tokens"));
    assert_no_key(&captured);
}

#[tokio::test]
async fn a_streamed_call_records_the_final_usage() {
    let server = MockServer::start().await;
    serve_stream(
        &server,
        KEY,
        200,
        fixture("googleai/streaming-success-thinking-reply-thought-summary.txt"),
    )
    .await;
    let client = client_for(&server, KEY);
    let (captured, _guard) = capture();
    let g = client
        .stream_generate(MODEL, &GenerateContentRequest::user("hi"))
        .await
        .unwrap();
    let spans = captured.gen_ai();
    assert_eq!(spans.len(), 1);
    let s = &spans[0];
    assert_eq!(field(s, "gen_ai.provider.name"), "gcp.gemini");
    assert_eq!(
        field(s, "gen_ai.usage.output_tokens"),
        g.usage().output_tokens.to_string()
    );
    assert!(g.usage().output_tokens > 0);
    assert_eq!(field(s, "gen_ai.response.finish_reasons"), "end_turn");
    assert_no_key(&captured);
}

#[tokio::test]
async fn a_pool_call_that_falls_back_gives_one_span_per_model_call() {
    let server = MockServer::start().await;
    serve_unary(
        &server,
        KEY,
        429,
        fixture("transcribed/error-429-per-day-free-tier.json"),
    )
    .await;
    Mock::given(method("POST"))
        .and(path("/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "chat-1", "model": "deepseek-chat",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "from the fallback"}}],
            "usage": {"prompt_tokens": 30, "completion_tokens": 4, "prompt_cache_hit_tokens": 10}
        })))
        .mount(&server)
        .await;
    let pool = ShardPool::new(
        vec![
            ShardConfig::new(ShardId::new(1).unwrap(), SecretString::from(KEY.to_owned()))
                .with_limits(QuotaLimits::free_tier()),
        ],
        Arc::new(MemoryBus::new()),
        PoolConfig::default()
            .model(MODEL)
            .client(ClientConfig::default().base_url(server.uri()))
            .max_wait(Duration::ZERO),
    )
    .unwrap()
    .with_fallback(
        OpenAiCompatible::new(
            SecretString::from(FALLBACK_KEY.to_owned()),
            FallbackConfig::default().base_url(server.uri()),
        )
        .unwrap(),
    );
    let (captured, _guard) = capture();
    let c = pool.complete(CompletionRequest::new("hi")).await.unwrap();
    assert_eq!(c.text(), "from the fallback");
    let spans = captured.gen_ai();
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert_eq!(field(&spans[0], "gen_ai.provider.name"), "gcp.gemini");
    assert_eq!(field(&spans[0], "error.type"), "quota_exhausted");
    let fb = &spans[1];
    assert_eq!(field(fb, "gen_ai.provider.name"), "deepseek");
    assert_eq!(field(fb, "gen_ai.operation.name"), "chat");
    assert_eq!(field(fb, "gen_ai.request.model"), "deepseek-chat");
    assert_eq!(field(fb, "gen_ai.response.id"), "chat-1");
    assert_eq!(field(fb, "gen_ai.usage.input_tokens"), "30");
    assert_eq!(field(fb, "gen_ai.usage.output_tokens"), "4");
    assert_eq!(field(fb, "gen_ai.usage.cache_read.input_tokens"), "10");
    assert_eq!(field(fb, "swarm.served_by"), "deepseek");
    assert_no_key(&captured);
}
