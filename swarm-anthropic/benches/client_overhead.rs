//! Client overhead: one `AnthropicClient::create_message` (validate,
//! serialise, strip removed parameters, rate-limit bookkeeping, read with a
//! cap, decode and check the answer) against a bare reqwest POST of the same
//! body to the same local server (read the bytes, nothing else). The
//! answer is the recorded `test_anthropic_cache_real_api.1.json` body.
//!
//! `cargo bench -p swarmbus-anthropic --bench client_overhead`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::hint::black_box;
use std::time::Instant;

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
    // The same transport settings as the client's (connect and read
    // timeouts, a whole-request timeout): what is left is the client's own
    // work.
    let config = ClientConfig::default();
    let bare_timeouts = reqwest::Client::builder()
        .connect_timeout(config.connect_timeout)
        .read_timeout(config.read_timeout)
        .build()
        .expect("client");
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
    g.bench_function("bare_reqwest_post_same_timeouts", |b| {
        b.to_async(&rt).iter(|| async {
            let r = bare_timeouts
                .post(&url)
                .header("x-api-key", KEY)
                .header("anthropic-version", "2026-10-21")
                .header("content-type", "application/json")
                .timeout(config.request_timeout)
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

    // The summary: requests interleaved one by one, the order rotating
    // each round, so the load of a shared machine hits both alike; the median
    // latency of each, and their ratio.
    let (mut bare_ns, mut encode_ns, mut client_ns) = (Vec::new(), Vec::new(), Vec::new());
    rt.block_on(async {
        for i in 0..PAIRS {
            for variant in [i % 3, (i + 1) % 3, (i + 2) % 3] {
                let t = Instant::now();
                if variant == 2 {
                    // A bare POST that encodes the request itself, as any
                    // caller must.
                    let body = serde_json::to_vec(&request).expect("encode");
                    let r = bare_timeouts
                        .post(&url)
                        .header("x-api-key", KEY)
                        .header("anthropic-version", "2026-10-21")
                        .header("content-type", "application/json")
                        .timeout(config.request_timeout)
                        .body(body)
                        .send()
                        .await
                        .expect("send");
                    black_box(r.bytes().await.expect("bytes").len());
                    encode_ns.push(t.elapsed().as_nanos());
                } else if variant == 0 {
                    let r = bare_timeouts
                        .post(&url)
                        .header("x-api-key", KEY)
                        .header("anthropic-version", "2026-10-21")
                        .header("content-type", "application/json")
                        .timeout(config.request_timeout)
                        .body(wire.clone())
                        .send()
                        .await
                        .expect("send");
                    black_box(r.bytes().await.expect("bytes").len());
                    bare_ns.push(t.elapsed().as_nanos());
                } else {
                    let r = client.create_message(&request).await.expect("answer");
                    black_box(r.usage().output_tokens);
                    client_ns.push(t.elapsed().as_nanos());
                }
            }
        }
    });
    let (b, e, c) = (median(bare_ns), median(encode_ns), median(client_ns));
    println!("\n== client overhead, {PAIRS} interleaved rounds to a local mock (medians) ==");
    println!("bare reqwest POST (same timeouts): {:8.1} µs", b / 1e3);
    println!(
        "bare POST encoding the request:    {:8.1} µs  ratio {:.3} ({:+.1} µs/request)",
        e / 1e3,
        e / b,
        (e - b) / 1e3
    );
    println!(
        "AnthropicClient::create_message:   {:8.1} µs  ratio {:.3} ({:+.1} µs/request); vs the encoding POST {:.3}",
        c / 1e3,
        c / b,
        (c - b) / 1e3,
        c / e
    );
}

const PAIRS: usize = 2000;

fn median(mut v: Vec<u128>) -> f64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0) as f64
}

criterion_group!(benches, bench);
criterion_main!(benches);
