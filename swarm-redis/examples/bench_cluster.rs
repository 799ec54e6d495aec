//! Findings/s of `RedisBus` on one redis-server against a local Redis
//! Cluster of three masters, with K namespaces written at once (issue 12,
//! the scaling figures). Run by `scripts/bench-cluster.sh`, or directly:
//!
//! ```text
//! cargo run --release -p swarmbus-redis --example bench_cluster -- \
//!     [--out target/scaling/cluster.json] [--seconds 3] [--namespaces "1 2 4 8"] \
//!     [--concurrent 64] [--batch-writers 8] [--batch 500]
//! ```
//!
//! It starts its own servers with `swarmbus_redis::testing` (one
//! `redis-server`, and three masters joined with `redis-cli --cluster
//! create`) on free loopback ports and stops them when it ends (the servers
//! are its children: Ctrl-C in a terminal stops them too, and
//! `scripts/bench-cluster.sh` kills the whole process group).
//!
//! Every namespace is its own `RedisBus` (`RedisConfig::namespace`). A
//! namespace's keys are `{ns}:…`: the braces are a Cluster hash tag, so one
//! namespace lives in one slot on one master, and only several namespaces
//! can spread the writes over the masters. The namespaces are picked so that
//! K of them cover the masters round-robin (`CLUSTER KEYSLOT` and the slot
//! ranges of `CLUSTER NODES`); the report says how many masters were used.
//!
//! For each topology (single node, cluster), each K and each way of writing
//! it measures findings stored per second for `--seconds`:
//! - `put_finding`: `--concurrent` tasks in all, spread evenly over the K
//!   buses, each storing one finding per call;
//! - `put_findings`: `--batch-writers` tasks in all, spread evenly over the
//!   K buses, each storing batches of `--batch` findings.
//!
//! Both topologies run in the same process on the same machine, one after
//! the other, and every server is emptied (FLUSHALL) before each
//! measurement. The figures are one run's; compare the ratios, not the
//! absolute numbers, across machines. Results: a JSON file (`--out`) and a
//! Markdown table on stdout.

// A benchmark harness: a broken setup may stop it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;
use swarmbus_core::Finding;
use swarmbus_core::bus::FindingStore;
use swarmbus_core::keys::{Namespace, SessionId, WorkerId};
use swarmbus_redis::testing::{RedisCluster, RedisServer};
use swarmbus_redis::{RedisBus, RedisConfig};

/// Command-line settings.
#[derive(Debug, Clone, Serialize)]
struct Settings {
    seconds: f64,
    namespaces: Vec<usize>,
    concurrent: usize,
    batch_writers: usize,
    batch: usize,
    #[serde(skip)]
    out: PathBuf,
}

fn parse_args() -> Settings {
    let mut s = Settings {
        seconds: 3.0,
        namespaces: vec![1, 2, 4, 8],
        concurrent: 64,
        batch_writers: 8,
        batch: 500,
        out: PathBuf::from("target/scaling/cluster.json"),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_default();
        match a.as_str() {
            "--seconds" => s.seconds = val().parse().unwrap_or(3.0_f64).max(0.5),
            "--namespaces" => {
                s.namespaces = val()
                    .split([' ', ','])
                    .filter_map(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .collect()
            }
            "--concurrent" => s.concurrent = val().parse().unwrap_or(64).max(1),
            "--batch-writers" => s.batch_writers = val().parse().unwrap_or(8).max(1),
            "--batch" => s.batch = val().parse().unwrap_or(500).max(1),
            "--out" => s.out = PathBuf::from(val()),
            other => {
                eprintln!("bench_cluster: unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    if s.namespaces.is_empty() {
        eprintln!("bench_cluster: --namespaces needs at least one count");
        std::process::exit(2);
    }
    s
}

/// A finding of about 370 bytes of JSON (the same text as `bench_bus`).
fn finding(i: u64) -> Finding {
    Finding::new(
        WorkerId::new("haiku-1").unwrap(),
        SessionId::new("bench").unwrap(),
        format!("finding {i}"),
        "Redis pub/sub is at-most-once: a subscriber that is offline misses \
         messages, so findings are also appended to a stream read by consumer \
         groups. Measured on the local server.",
    )
    .with_tags(["redis", "bench"])
}

/// One measured combination.
#[derive(Debug, Clone, Serialize)]
struct Row {
    topology: &'static str,
    mode: &'static str,
    namespaces: usize,
    /// Distinct masters the namespaces' slots live on (1 on a single node).
    masters_used: usize,
    tasks: usize,
    batch: usize,
    findings: u64,
    seconds: f64,
    findings_per_s: f64,
}

/// The cluster/single ratio of one (mode, K).
#[derive(Debug, Serialize)]
struct Ratio {
    mode: &'static str,
    namespaces: usize,
    single_per_s: f64,
    cluster_per_s: f64,
    cluster_over_single: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    date_utc: String,
    machine_cores: usize,
    load_average_before: String,
    load_average_after: String,
    redis_version: String,
    settings: Settings,
    rows: Vec<Row>,
    ratios: Vec<Ratio>,
}

/// Where the test servers run.
enum Topology {
    Single(RedisServer),
    Cluster(RedisCluster),
}

impl Topology {
    fn name(&self) -> &'static str {
        match self {
            Topology::Single(_) => "single",
            Topology::Cluster(_) => "cluster",
        }
    }

    fn config(&self, ns: &Namespace) -> RedisConfig {
        let cfg = match self {
            Topology::Single(s) => RedisConfig::from_url(&s.url()).unwrap(),
            Topology::Cluster(c) => RedisConfig::cluster(c.urls()).unwrap(),
        };
        cfg.namespace(ns.clone())
            .response_timeout(Duration::from_secs(30))
    }

    fn flush(&self) {
        match self {
            Topology::Single(s) => {
                s.cli(&["FLUSHALL"]);
            }
            Topology::Cluster(c) => {
                for n in &c.nodes {
                    n.cli(&["FLUSHALL"]);
                }
            }
        }
    }

    /// Index of the master that owns `ns`'s hash slot (0 on a single node).
    fn master_of(&self, ns: &str, ranges: &[Vec<(u16, u16)>]) -> usize {
        let Topology::Cluster(c) = self else {
            return 0;
        };
        let slot: u16 = c.nodes[0]
            .cli(&["CLUSTER", "KEYSLOT", &format!("{{{ns}}}:finding:x")])
            .trim()
            .parse()
            .expect("CLUSTER KEYSLOT answers a number");
        ranges
            .iter()
            .position(|r| r.iter().any(|(lo, hi)| (*lo..=*hi).contains(&slot)))
            .expect("every slot has a master")
    }

    /// Each master's slot ranges, from its own line of `CLUSTER NODES`.
    fn slot_ranges(&self) -> Vec<Vec<(u16, u16)>> {
        let Topology::Cluster(c) = self else {
            return vec![vec![(0, 16383)]];
        };
        c.nodes
            .iter()
            .map(|n| {
                let out = n.cli(&["CLUSTER", "NODES"]);
                let mine = out
                    .lines()
                    .find(|l| l.contains("myself"))
                    .expect("CLUSTER NODES lists the node itself");
                mine.split_whitespace()
                    .skip(8)
                    .filter_map(|r| {
                        let (lo, hi) = r.split_once('-').unwrap_or((r, r));
                        Some((lo.parse().ok()?, hi.parse().ok()?))
                    })
                    .collect()
            })
            .collect()
    }
}

/// `k` namespaces whose slots cover the masters round-robin (on a single
/// node any `k` names). `run` keeps names of different measurements apart.
fn pick_namespaces(topo: &Topology, k: usize, run: usize) -> (Vec<Namespace>, usize) {
    let ranges = topo.slot_ranges();
    let masters = ranges.len();
    let mut picked: Vec<(String, usize)> = Vec::new();
    let mut i = 0usize;
    while picked.len() < k {
        let name = format!("b{run}n{i}");
        i += 1;
        let m = topo.master_of(&name, &ranges);
        if m == picked.len() % masters {
            picked.push((name, m));
        }
        assert!(
            i < 100_000,
            "no namespace found for master {}",
            picked.len() % masters
        );
    }
    let used: BTreeSet<usize> = picked.iter().map(|(_, m)| *m).collect();
    let names = picked
        .into_iter()
        .map(|(n, _)| Namespace::new(n).unwrap())
        .collect();
    (names, used.len())
}

/// Writes for `seconds` with `tasks` tasks spread over `buses`, each call
/// storing `batch` findings (`batch == 0`: `put_finding`), and returns the
/// findings stored and the seconds taken.
async fn measure(buses: &[RedisBus], tasks: usize, batch: usize, seconds: f64) -> (u64, f64) {
    // Warm-up: the scripts are loaded and every connection is open.
    for bus in buses {
        bus.put_finding(&finding(0)).await.unwrap();
    }
    let stored = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(seconds);
    let mut handles = Vec::with_capacity(tasks);
    for t in 0..tasks {
        let bus = buses[t % buses.len()].clone();
        let stored = Arc::clone(&stored);
        handles.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < deadline {
                if batch == 0 {
                    bus.put_finding(&finding(i)).await.unwrap();
                    i += 1;
                    stored.fetch_add(1, Ordering::Relaxed);
                } else {
                    let many: Vec<Finding> = (i..i + batch as u64).map(finding).collect();
                    let n = bus.put_findings(&many).await.unwrap();
                    i += batch as u64;
                    stored.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    (
        stored.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
    )
}

async fn run_topology(topo: &Topology, s: &Settings, run: &mut usize, rows: &mut Vec<Row>) {
    for &k in &s.namespaces {
        for (mode, tasks, batch) in [
            ("put_finding", s.concurrent, 0usize),
            ("put_findings", s.batch_writers, s.batch),
        ] {
            *run += 1;
            topo.flush();
            let (names, masters_used) = pick_namespaces(topo, k, *run);
            let mut buses = Vec::with_capacity(k);
            for ns in &names {
                buses.push(RedisBus::connect(topo.config(ns)).await.unwrap());
            }
            // At least one task per namespace.
            let tasks = tasks.max(k);
            let (findings, seconds) = measure(&buses, tasks, batch, s.seconds).await;
            let row = Row {
                topology: topo.name(),
                mode,
                namespaces: k,
                masters_used,
                tasks,
                batch: batch.max(1),
                findings,
                seconds,
                findings_per_s: findings as f64 / seconds,
            };
            eprintln!(
                "bench_cluster: {:<7} {:<12} K={k} masters={masters_used} tasks={tasks}: {:.0} findings/s",
                row.topology, row.mode, row.findings_per_s
            );
            rows.push(row);
        }
    }
    topo.flush();
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let s = parse_args();
    let load_before = load_average();
    let mut rows = Vec::new();
    let mut run = 0usize;

    eprintln!("bench_cluster: starting one redis-server");
    let single = Topology::Single(RedisServer::start());
    let redis_version = match &single {
        Topology::Single(server) => server
            .cli(&["INFO", "server"])
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("?")
            .trim()
            .to_owned(),
        Topology::Cluster(_) => String::new(),
    };
    run_topology(&single, &s, &mut run, &mut rows).await;
    drop(single);

    eprintln!("bench_cluster: starting a cluster of three masters");
    let cluster = Topology::Cluster(RedisCluster::start());
    run_topology(&cluster, &s, &mut run, &mut rows).await;
    drop(cluster);

    let mut ratios = Vec::new();
    for r in rows.iter().filter(|r| r.topology == "single") {
        if let Some(c) = rows
            .iter()
            .find(|c| c.topology == "cluster" && c.mode == r.mode && c.namespaces == r.namespaces)
        {
            ratios.push(Ratio {
                mode: r.mode,
                namespaces: r.namespaces,
                single_per_s: r.findings_per_s,
                cluster_per_s: c.findings_per_s,
                cluster_over_single: c.findings_per_s / r.findings_per_s,
            });
        }
    }
    let report = Report {
        date_utc: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        machine_cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average_before: load_before,
        load_average_after: load_average(),
        redis_version,
        settings: s.clone(),
        rows: rows.clone(),
        ratios,
    };
    if let Some(dir) = s.out.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(&s.out, serde_json::to_string_pretty(&report).unwrap()).unwrap();

    // The Markdown table.
    let base = |mode: &str| {
        rows.iter()
            .find(|r| r.topology == "single" && r.mode == mode && r.namespaces == s.namespaces[0])
            .map_or(f64::NAN, |r| r.findings_per_s)
    };
    println!(
        "{} cores, Redis {}, load average {} before / {} after; {} s per measurement.\n",
        report.machine_cores,
        report.redis_version,
        report.load_average_before,
        report.load_average_after,
        s.seconds
    );
    println!(
        "| write | namespaces | single node findings/s | cluster (3 masters) findings/s | masters used | cluster / single | single vs K={} |",
        s.namespaces[0]
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in &report.ratios {
        let masters = rows
            .iter()
            .find(|c| c.topology == "cluster" && c.mode == r.mode && c.namespaces == r.namespaces)
            .map_or(0, |c| c.masters_used);
        let what = if r.mode == "put_finding" {
            format!("put_finding, {} tasks", s.concurrent)
        } else {
            format!("put_findings by {}, {} tasks", s.batch, s.batch_writers)
        };
        println!(
            "| {what} | {} | {:.0} | {:.0} | {masters} | {:.2}x | {:.2}x |",
            r.namespaces,
            r.single_per_s,
            r.cluster_per_s,
            r.cluster_over_single,
            r.single_per_s / base(r.mode),
        );
    }
    println!("\nJSON: {}", s.out.display());
}
