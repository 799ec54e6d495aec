//! Client overhead: one `AnthropicClient::create_message` (validate,
//! serialise, strip removed parameters, rate-limit bookkeeping, read with a
//! cap, decode and check the answer) against a bare reqwest POST of the same
//! body to the same local server (read the bytes, nothing else). The
//! answer is the recorded `test_anthropic_cache_real_api.1.json` body.
//!
//! `cargo bench -p swarmbus-anthropic --bench client_overhead`

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use secrecy::SecretString;
use swarmbus_anthropic::{AnthropicClient, ClientConfig, MessagesRequest};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const KEY: &str = "bench-key";

fn recorded() -> (MessagesRequest, Vec<u8>) {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/test_anthropic_cache_real_api.1.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p).expect("fixture")).expect("json");
    let request = serde_json::from_value(v["request"].clone()).expect("request");
    (request, serde_json::to_vec(&v["body"]).expect("body"))
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (request, body) = recorded();
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
            .mount(&server)
            .await;
        server
    });
    let base = server.uri();
    let client = AnthropicClient::new(
        SecretString::from(KEY),
        ClientConfig::default().base_url(base.clone()),
    )
    .expect("client");
    let bare = reqwest::Client::new();
    let url = format!("{base}/v1/messages");
    let wire = serde_json::to_vec(&request).expect("serialise");

    let mut g = c.benchmark_group("client_overhead");
    g.bench_function("bare_reqwest_post", |b| {
        b.to_async(&rt).iter(|| async {
            let r = bare
                .post(&url)
                .header("x-api-key", KEY)
                .header("anthropic-version", "2026-10-21")
                .header("content-type", "application/json")
                .body(wire.clone())
                .send()
                .await
                .expect("send");
            black_box(r.bytes().await.expect("bytes").len())
        })
    });
    g.bench_function("anthropic_client_create_message", |b| {
        b.to_async(&rt).iter(|| async {
            let r = client.create_message(&request).await.expect("answer");
            black_box(r.usage().output_tokens)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
