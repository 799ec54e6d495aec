//! MemoryBus throughput and the status snapshot's cost at 1,000 and
//! 1,000,000 findings.
//!
//! `cargo bench -p swarmbus-core --bench memory_bus`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use swarmbus_agents::status::{StatusConfig, SwarmStatus};
use swarmbus_core::{Finding, FindingStore, SessionId, WorkerId};
use swarmbus_memory::MemoryBus;

/// A finding of about 400 bytes of JSON, like the Redis benchmark's.
fn findings(n: usize) -> Vec<Finding> {
    let w = WorkerId::new("haiku-1").unwrap_or_else(|e| panic!("{e}"));
    let s = SessionId::new("bench").unwrap_or_else(|e| panic!("{e}"));
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
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn put(c: &mut Criterion) {
    let rt = rt();
    let mut g = c.benchmark_group("memory_bus");
    const N: usize = 10_000;
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("put_finding x10k", |b| {
        b.iter_batched(
            || (MemoryBus::new(), findings(N)),
            |(bus, fs)| {
                rt.block_on(async {
                    for f in &fs {
                        bus.put_finding(f).await.unwrap_or_else(|e| panic!("{e}"));
                    }
                });
                // Dropped outside the timed routine.
                (bus, fs)
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("put_findings 10k in batches of 1000", |b| {
        b.iter_batched(
            || (MemoryBus::new(), findings(N)),
            |(bus, fs)| {
                rt.block_on(async {
                    for chunk in fs.chunks(1000) {
                        bus.put_findings(chunk)
                            .await
                            .unwrap_or_else(|e| panic!("{e}"));
                    }
                })
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("put_findings 10k in batches of 1", |b| {
        b.iter_batched(
            || (MemoryBus::new(), findings(N)),
            |(bus, fs)| {
                rt.block_on(async {
                    for chunk in fs.chunks(1) {
                        bus.put_findings(chunk)
                            .await
                            .unwrap_or_else(|e| panic!("{e}"));
                    }
                });
                (bus, fs)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn snapshot(c: &mut Criterion) {
    let rt = rt();
    let mut g = c.benchmark_group("status_snapshot");
    g.measurement_time(Duration::from_secs(3));
    for n in [1_000usize, 1_000_000] {
        let bus = MemoryBus::new();
        rt.block_on(async {
            for chunk in findings(n).chunks(10_000) {
                bus.put_findings(chunk)
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        });
        let cfg = StatusConfig::default();
        g.bench_function(format!("{n} findings"), |b| {
            b.iter(|| {
                rt.block_on(SwarmStatus::snapshot(&bus, &cfg))
                    .unwrap_or_else(|e| panic!("{e}"))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, put, snapshot);
criterion_main!(benches);
