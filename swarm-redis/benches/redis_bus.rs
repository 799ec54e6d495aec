//! RedisBus against a real redis-server started here: finding writes
//! (batched and single), the status snapshot at 1,000 and 1,000,000
//! findings, all heartbeats, and a quota grant.
//!
//! `cargo bench -p swarmbus-redis --bench redis_bus` (needs `redis-server`;
//! `REDIS_URL` points it at an existing server instead). The one-run table
//! with the Python and redis-benchmark comparisons is `scripts/bench-bus.sh`.

#![allow(
    missing_docs,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used
)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use chrono::Utc;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use swarmbus_agents::status::{StatusConfig, SwarmStatus};
use swarmbus_core::Finding;
use swarmbus_core::bus::{FindingStore, QuotaLedger, WorkerRegistry};
use swarmbus_core::keys::{SessionId, ShardId, WorkerId};
use swarmbus_core::quota::QuotaLimits;
use swarmbus_redis::RedisBus;

/// A finding of about 400 bytes of JSON (the size the bench script uses).
fn findings(n: usize) -> Vec<Finding> {
    let w = WorkerId::new("haiku-1").unwrap();
    let s = SessionId::new("bench").unwrap();
    (0..n)
        .map(|i| {
            Finding::new(
                w.clone(),
                s.clone(),
                format!("finding {i}"),
                "Redis pub/sub is at-most-once: a subscriber that is offline misses \
                 messages, so findings are also appended to a stream read by consumer \
                 groups. Measured on the local server.",
            )
            .with_tags(["redis", "bench"])
        })
        .collect()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn puts(c: &mut Criterion) {
    let (url, _server) = common::single_node();
    let rt = rt();
    let bus = rt.block_on(common::namespaced_bus(&url));
    let mut g = c.benchmark_group("redis_bus/put");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1000));
    g.bench_function("put_findings batch of 1000", |b| {
        b.iter_batched(
            || findings(1000),
            |fs| rt.block_on(bus.put_findings(&fs)).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("1000 concurrent put_finding", |b| {
        b.iter_batched(
            || findings(1000),
            |fs| {
                rt.block_on(async {
                    let mut tasks = Vec::new();
                    for chunk in fs.chunks(1000 / 64 + 1) {
                        let bus = bus.clone();
                        let chunk = chunk.to_vec();
                        tasks.push(tokio::spawn(async move {
                            for f in &chunk {
                                bus.put_finding(f).await.unwrap();
                            }
                        }));
                    }
                    for t in tasks {
                        t.await.unwrap();
                    }
                })
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn snapshot(c: &mut Criterion) {
    let (url, _server) = common::single_node();
    let rt = rt();
    let mut g = c.benchmark_group("redis_bus/status_snapshot");
    g.measurement_time(Duration::from_secs(3));
    let cfg = StatusConfig::default();
    let bus = rt.block_on(common::namespaced_bus(&url));
    let mut stored = 0;
    for n in [1_000usize, 1_000_000] {
        rt.block_on(async {
            while stored < n {
                let batch = findings(10_000.min(n - stored));
                stored += bus.put_findings(&batch).await.unwrap();
            }
        });
        g.bench_function(format!("{n} findings"), |b| {
            b.iter(|| rt.block_on(SwarmStatus::snapshot(&bus, &cfg)).unwrap())
        });
    }
    g.finish();
}

fn heartbeats_and_quota(c: &mut Criterion) {
    let (url, _server) = common::single_node();
    let rt = rt();
    let bus: RedisBus = rt.block_on(common::namespaced_bus(&url));
    rt.block_on(async {
        for i in 0..1000 {
            let w = WorkerId::new(format!("w{i}")).unwrap();
            bus.heartbeat(&w, Duration::from_secs(600)).await.unwrap();
        }
    });
    let mut g = c.benchmark_group("redis_bus/registry");
    g.bench_function("alive_workers of 1000", |b| {
        b.iter(|| rt.block_on(bus.alive_workers()).unwrap())
    });
    let shard = ShardId::new(1).unwrap();
    let limits = QuotaLimits::unlimited();
    g.bench_function("try_acquire", |b| {
        b.iter(|| {
            rt.block_on(bus.try_acquire(shard, limits, Utc::now()))
                .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, puts, snapshot, heartbeats_and_quota);
criterion_main!(benches);
