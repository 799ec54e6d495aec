//! SSE decoding throughput on the largest recorded stream
//! (`test_pause_turn_web_search_streaming_vcr.0.json`, ~250 KB of events):
//! bytes → events → a collected `MessagesResponse`, whole and in 1 KiB
//! reads (as a network delivers it).
//!
//! `cargo bench -p swarmbus-anthropic --bench sse_decode`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use swarmbus_anthropic::sse::{DEFAULT_MAX_EVENT_BYTES, decode_stream};
use swarmbus_anthropic::{SseParser, StreamAccumulator};

const FIXTURE: &str = "tests/fixtures/test_pause_turn_web_search_streaming_vcr.0.json";

fn sse_bytes() -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    let text = std::fs::read_to_string(&path).expect("fixture");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    v["sse"].as_str().expect("sse").as_bytes().to_vec()
}

fn chunked(body: &[u8], chunk: usize) -> usize {
    let mut parser = SseParser::new(DEFAULT_MAX_EVENT_BYTES);
    let mut acc = StreamAccumulator::new();
    let mut events = Vec::new();
    for c in body.chunks(chunk) {
        parser.push(c, &mut events).expect("parse");
        for ev in events.drain(..) {
            acc.apply(&ev).expect("event");
        }
    }
    parser.finish(&mut events).expect("finish");
    for ev in events.drain(..) {
        acc.apply(&ev).expect("event");
    }
    acc.finish().expect("complete").content.len()
}

fn bench(c: &mut Criterion) {
    let body = sse_bytes();
    let mut g = c.benchmark_group("sse_decode");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("largest_stream_whole", |b| {
        b.iter(|| {
            decode_stream(black_box(&body), DEFAULT_MAX_EVENT_BYTES)
                .expect("decode")
                .content
                .len()
        })
    });
    g.bench_function("largest_stream_1KiB_reads", |b| {
        b.iter(|| chunked(black_box(&body), 1024))
    });
    g.finish();

    // The non-streaming path's own work, for the client-overhead figure:
    // encoding the recorded request and decoding the recorded answer.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/test_anthropic_cache_real_api.1.json");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    let request: swarmbus_anthropic::MessagesRequest =
        serde_json::from_value(v["request"].clone()).expect("request");
    let answer = serde_json::to_vec(&v["body"]).expect("body");
    let mut g = c.benchmark_group("json_codec");
    g.bench_function("encode_request", |b| {
        b.iter(|| {
            serde_json::to_vec(black_box(&request))
                .expect("encode")
                .len()
        })
    });
    g.bench_function("decode_answer", |b| {
        b.iter(|| {
            swarmbus_anthropic::client::decode_response(black_box(&answer), 200)
                .expect("decode")
                .content
                .len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
