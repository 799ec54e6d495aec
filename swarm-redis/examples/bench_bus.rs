//! The Rust side of `scripts/bench-bus.sh`: RedisBus against a running
//! Redis, one run, results as `name value` lines on stdout.
//!
//! ```text
//! cargo run --release -p swarmbus-redis --example bench_bus -- redis://127.0.0.1:6379 [sample.json]
//! ```
//!
//! Measures: `put_findings` in batches of 1,000; concurrent single
//! `put_finding`s; the status snapshot (finding count, live workers, shard
//! quotas, costs, context, halt) at 1,000 and 1,000,000 findings; reading
//! 1,000 heartbeats, with the round trips it took. With a second argument it
//! writes one finding's JSON there, so other clients store the same bytes.
//! Every run uses a fresh namespace; nothing else on the server is touched.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use swarmbus_agents::status::{StatusConfig, SwarmStatus};
use swarmbus_core::Finding;
use swarmbus_core::bus::{FindingStore, WorkerRegistry};
use swarmbus_core::codec::encode;
use swarmbus_core::keys::{Namespace, SessionId, WorkerId};
use swarmbus_redis::{RedisBus, RedisConfig};

/// A finding of about 400 bytes of JSON.
fn findings(n: usize, from: usize) -> Vec<Finding> {
    let w = WorkerId::new("haiku-1").unwrap();
    let s = SessionId::new("bench").unwrap();
    (from..from + n)
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

async fn fresh_bus(url: &str) -> RedisBus {
    let ns = Namespace::new(format!("bench{}", uuid::Uuid::new_v4().simple())).unwrap();
    RedisBus::connect(
        RedisConfig::from_url(url)
            .unwrap()
            .namespace(ns)
            .response_timeout(Duration::from_secs(30)),
    )
    .await
    .unwrap()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn snapshot_median(bus: &RedisBus) -> Duration {
    let cfg = StatusConfig::default();
    let mut samples = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let t = Instant::now();
        SwarmStatus::snapshot(bus, &cfg).await.unwrap();
        samples.push(t.elapsed());
    }
    median(samples)
}

/// Top-level calls of `command` the server has counted (INFO commandstats).
async fn calls(url: &str, command: &str) -> u64 {
    let client = redis::Client::open(url).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut con)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .or_else(|| std::env::var("REDIS_URL").ok())
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    if let Some(path) = args.next() {
        let sample = &findings(1, 0)[0];
        std::fs::write(path, encode("sample", sample).unwrap()).unwrap();
    }
    let size = encode("sample", &findings(1, 0)[0]).unwrap().len();
    println!("finding_json_bytes {size}");

    // put_findings, batches of 1,000.
    let bus = fresh_bus(&url).await;
    const BATCHED: usize = 200_000;
    let all = findings(BATCHED, 0);
    let t = Instant::now();
    for batch in all.chunks(1000) {
        bus.put_findings(batch).await.unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    println!("bus_batched_per_s {:.0}", BATCHED as f64 / secs);
    drop(all);

    // Concurrent single puts: 64 tasks on one connection.
    let bus = fresh_bus(&url).await;
    const SINGLE: usize = 64_000;
    let all = findings(SINGLE, 0);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for part in all.chunks(SINGLE / 64) {
        let (bus, part) = (bus.clone(), part.to_vec());
        tasks.push(tokio::spawn(async move {
            for f in &part {
                bus.put_finding(f).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let secs = t.elapsed().as_secs_f64();
    println!("bus_concurrent_per_s {:.0}", SINGLE as f64 / secs);
    drop(all);

    // Status snapshot at 1,000 and 1,000,000 findings (one namespace grown).
    let bus = fresh_bus(&url).await;
    let mut stored = 0;
    for (n, label) in [(1_000usize, "1k"), (1_000_000, "1m")] {
        while stored < n {
            let batch = findings(1000.min(n - stored), stored);
            stored += bus.put_findings(&batch).await.unwrap();
        }
        let before = bus.round_trips();
        SwarmStatus::snapshot(&bus, &StatusConfig::default())
            .await
            .unwrap();
        if label == "1k" {
            println!("snapshot_requests {}", bus.round_trips() - before);
        }
        let m = snapshot_median(&bus).await;
        println!("snapshot_median_us_{label} {:.1}", m.as_secs_f64() * 1e6);
    }

    // 1,000 heartbeats, read back.
    let bus = fresh_bus(&url).await;
    for i in 0..1000 {
        let w = WorkerId::new(format!("w{i}")).unwrap();
        bus.heartbeat(&w, Duration::from_secs(600)).await.unwrap();
    }
    let evalsha = calls(&url, "evalsha").await;
    let mget = calls(&url, "mget").await;
    let before = bus.round_trips();
    let alive = bus.alive_workers().await.unwrap();
    assert_eq!(alive.len(), 1000);
    println!("heartbeats_read {}", alive.len());
    println!("heartbeats_round_trips {}", bus.round_trips() - before);
    println!(
        "heartbeats_server_calls {}",
        (calls(&url, "evalsha").await - evalsha) + (calls(&url, "mget").await - mget)
    );
    let mut samples = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        bus.alive_workers().await.unwrap();
        samples.push(t.elapsed());
    }
    println!(
        "heartbeats_median_us {:.1}",
        median(samples).as_secs_f64() * 1e6
    );
}
