//! What the shard pool costs on top of a bare client: 1,000 requests to a
//! local mock (wiremock) through
//!
//! - the bare [`GeminiClient`];
//! - the [`ShardPool`] of 3 shards over the in-memory ledger (`MemoryBus`);
//! - the same pool over the Redis ledger (`RedisBus` on a `redis-server`
//!   started here on a free loopback port; skipped with a note when
//!   `redis-server` is not installed).
//!
//! Run: `cargo bench -p swarmbus-gemini --bench pool_overhead`. Besides
//! criterion's figures, a summary prints the overhead in percent and the
//! added latency per request (median of 5 rounds of 1,000 requests each).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use secrecy::SecretString;
use swarmbus_core::bus::QuotaLedger;
use swarmbus_core::keys::ShardId;
use swarmbus_core::quota::QuotaLimits;
use swarmbus_gemini::wire::GenerateContentRequest;
use swarmbus_gemini::{ClientConfig, GeminiClient, PoolConfig, ShardConfig, ShardPool};
use swarmbus_memory::MemoryBus;
use swarmbus_redis::{RedisBus, RedisConfig};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const MODEL: &str = "gemini-bench";
const REQUESTS: usize = 1_000;

fn body() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "candidates": [{"content": {"parts": [{"text": "ok"}], "role": "model"}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1, "totalTokenCount": 6}
    }))
    .unwrap()
}

fn limits() -> QuotaLimits {
    // Large enough never to run out, so the ledger's check-and-count runs
    // on every request exactly as in production.
    QuotaLimits::new(Some(1_000_000_000), Some(1_000_000_000))
}

fn pool<L: QuotaLedger + ?Sized>(uri: &str, ledger: Arc<L>) -> ShardPool<L> {
    let shards = (1..=3)
        .map(|n| {
            ShardConfig::new(
                ShardId::new(n).unwrap(),
                SecretString::from(format!("bench-key-{n}")),
            )
            .with_limits(limits())
        })
        .collect();
    ShardPool::new(
        shards,
        ledger,
        PoolConfig::default()
            .model(MODEL)
            .client(ClientConfig::default().base_url(uri)),
    )
    .unwrap()
}

struct Redis(Child);

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_redis() -> Option<(Redis, RedisBus)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let guard = Redis(child);
    for _ in 0..100 {
        let config = RedisConfig::from_url(&format!("redis://127.0.0.1:{port}")).ok()?;
        if let Ok(bus) = RedisBus::connect(config).await
            && bus.ping().await.is_ok()
        {
            return Some((guard, bus));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

async fn run_client(client: &GeminiClient, req: &GenerateContentRequest) {
    for _ in 0..REQUESTS {
        client.generate(MODEL, req).await.unwrap();
    }
}

async fn run_pool<L: QuotaLedger + ?Sized>(pool: &ShardPool<L>, req: &GenerateContentRequest) {
    for _ in 0..REQUESTS {
        pool.generate(req).await.unwrap();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(async {
        let s = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(body(), "application/json"))
            .mount(&s)
            .await;
        s
    });
    let uri = server.uri();
    let req = GenerateContentRequest::user("ping");
    let client = GeminiClient::new(
        SecretString::from("bench-key-0".to_owned()),
        ClientConfig::default().base_url(uri.clone()),
    )
    .unwrap();
    let memory_pool = pool(&uri, Arc::new(MemoryBus::new()));
    let redis = rt.block_on(start_redis());
    let redis_pool = redis
        .as_ref()
        .map(|(_, bus)| pool(&uri, Arc::new(bus.clone())));

    let mut group = c.benchmark_group("pool_overhead_1000_requests");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("bare_client", |b| {
        b.to_async(&rt).iter(|| run_client(&client, &req))
    });
    group.bench_function("pool_memory_ledger", |b| {
        b.to_async(&rt).iter(|| run_pool(&memory_pool, &req))
    });
    if let Some(p) = &redis_pool {
        group.bench_function("pool_redis_ledger", |b| {
            b.to_async(&rt).iter(|| run_pool(p, &req))
        });
    }
    group.finish();

    // The summary: interleaved rounds so drift hits every variant alike.
    let (mut bare, mut mem, mut red) = (Vec::new(), Vec::new(), Vec::new());
    rt.block_on(async {
        for _ in 0..5 {
            let t = Instant::now();
            run_client(&client, &req).await;
            bare.push(t.elapsed());
            let t = Instant::now();
            run_pool(&memory_pool, &req).await;
            mem.push(t.elapsed());
            if let Some(p) = &redis_pool {
                let t = Instant::now();
                run_pool(p, &req).await;
                red.push(t.elapsed());
            }
        }
    });
    let per = |d: Duration| d.as_secs_f64() * 1e6 / REQUESTS as f64;
    let (b, m) = (median(bare), median(mem));
    println!("\n== pool overhead, {REQUESTS} sequential requests to a local mock (median of 5) ==");
    println!("bare client:        {:8.1} µs/request", per(b));
    println!(
        "pool, memory ledger: {:8.1} µs/request  overhead {:+.1} % ({:+.1} µs/request)",
        per(m),
        (per(m) / per(b) - 1.0) * 100.0,
        per(m) - per(b)
    );
    if red.is_empty() {
        println!("pool, redis ledger: skipped (redis-server not found)");
    } else {
        let r = median(red);
        println!(
            "pool, redis ledger:  {:8.1} µs/request  overhead {:+.1} % ({:+.1} µs/request)",
            per(r),
            (per(r) / per(b) - 1.0) * 100.0,
            per(r) - per(b)
        );
    }
    drop(redis_pool);
    drop(redis);
}

criterion_group!(benches, bench);
criterion_main!(benches);
