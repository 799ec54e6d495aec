//! The findings search index on a real Redis: write cost, memory per
//! finding, search and first-page latency, server RSS across queries. One
//! run, results as a Markdown table on stdout.
//!
//! ```text
//! cargo run --release -p swarmbus-redis --example bench_search -- 10000 100000
//! ```
//!
//! With `BENCH_SKIP_REPAIR=1` the index is neither deleted nor repaired (a
//! repair reads every finding: about 16 minutes at 1M), so the memory
//! without the index and the repair time are not measured.
//!
//! Starts its own `redis-server` (persistence off). The corpus is
//! synthetic and deterministic: titles of 6 words and bodies of 60 drawn
//! from a Zipf-like vocabulary of 5,000 words, 2 tags of 20, 8 sessions and
//! 16 workers (about 600 bytes of JSON per finding). Queries: one frequent
//! word, one rare word, two words (all), three words (any), each with and
//! without a tag filter; and the first page of a listing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use swarmbus_core::Finding;
use swarmbus_core::bus::FindingStore;
use swarmbus_core::codec::encode;
use swarmbus_core::keys::{Namespace, SessionId, WorkerId};
use swarmbus_core::search::{FindingIndex, MatchMode, SearchQuery};
use swarmbus_redis::testing::RedisServer;
use swarmbus_redis::{RedisBus, RedisConfig};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// A word rank, Zipf-like: small ranks far more often.
    fn zipf(&mut self, n: u64) -> u64 {
        let u = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        ((n as f64).powf(u) as u64).saturating_sub(1).min(n - 1)
    }
}

const VOCAB: u64 = 5000;

/// Makes one query of a class.
type MakeQuery = Box<dyn Fn(&mut Rng) -> SearchQuery>;

fn word(rank: u64) -> String {
    // Pronounceable, distinct words: base-20 syllables.
    const SYL: [&str; 20] = [
        "ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "vu", "za", "be", "do", "fi", "gu", "ha",
        "je", "ko", "li", "mo", "ne",
    ];
    let mut r = rank + 20;
    let mut s = String::new();
    while r > 0 {
        s.push_str(SYL[(r % 20) as usize]);
        r /= 20;
    }
    s
}

fn corpus(n: usize, rng: &mut Rng) -> Vec<Finding> {
    let sessions: Vec<SessionId> = (0..8)
        .map(|i| SessionId::new(format!("session-{i}")).unwrap())
        .collect();
    let workers: Vec<WorkerId> = (0..16)
        .map(|i| WorkerId::new(format!("haiku-{i}")).unwrap())
        .collect();
    (0..n)
        .map(|_| {
            let mut words = |k: usize| {
                (0..k)
                    .map(|_| word(rng.zipf(VOCAB)))
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let title = words(6);
            let body = words(60);
            let s = sessions[(rng.next() % 8) as usize].clone();
            let w = workers[(rng.next() % 16) as usize].clone();
            let tags = [
                format!("tag{}", rng.next() % 20),
                format!("tag{}", rng.next() % 20),
            ];
            Finding::new(w, s, title, body).with_tags(tags)
        })
        .collect()
}

fn pct(samples: &mut [Duration], p: f64) -> f64 {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i].as_secs_f64() * 1000.0
}

fn info(server: &RedisServer, field: &str) -> u64 {
    let out = server.cli(&["INFO", "memory"]);
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn evalsha_usec(server: &RedisServer) -> u64 {
    cmd_usec(server, "evalsha")
}

fn cmd_usec(server: &RedisServer, cmd: &str) -> u64 {
    let out = server.cli(&["INFO", "commandstats"]);
    out.lines()
        .find(|l| l.starts_with(&format!("cmdstat_{cmd}:")))
        .and_then(|l| l.split(',').find_map(|p| p.strip_prefix("usec=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn bus(url: &str) -> RedisBus {
    let ns = Namespace::new(format!("bench{}", uuid::Uuid::new_v4().simple())).unwrap();
    RedisBus::connect(
        RedisConfig::from_url(url)
            .unwrap()
            .namespace(ns)
            .response_timeout(Duration::from_secs(60)),
    )
    .await
    .unwrap()
}

async fn time<F, Fut>(runs: usize, mut f: F) -> Vec<Duration>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut out = Vec::with_capacity(runs);
    for i in 0..runs {
        let t = Instant::now();
        f(i).await;
        out.push(t.elapsed());
    }
    out
}

#[tokio::main]
async fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("sizes"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![10_000, 100_000]
    } else {
        sizes
    };
    println!("| findings | measure | figure |");
    println!("|---:|---|---:|");
    for n in sizes {
        let server = RedisServer::start();
        let url = server.url();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ n as u64);
        let findings = corpus(n, &mut rng);

        // Baseline: the same JSON as plain SETs, pipelined by 1,000.
        // No response timeout: FLUSHALL of a million keys takes longer
        // than redis-rs's default 500 ms.
        let mut conn = swarmbus_redis::testing::raw_connection(&url).await;
        let m0 = info(&server, "used_memory");
        let t = Instant::now();
        for chunk in findings.chunks(1000) {
            let mut pipe = redis::pipe();
            for f in chunk {
                pipe.cmd("SET")
                    .arg(format!("plain:finding:{}", f.id))
                    .arg(encode("k", f).unwrap())
                    .ignore();
            }
            let () = pipe.query_async(&mut conn).await.unwrap();
        }
        let plain_write = t.elapsed();
        let set_us = cmd_usec(&server, "set") as f64 / n as f64;
        let plain_mem = info(&server, "used_memory") - m0;
        let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();

        let bus = bus(&url).await;
        let m0 = info(&server, "used_memory");
        let u0 = evalsha_usec(&server);
        let t = Instant::now();
        for chunk in findings.chunks(1000) {
            bus.put_findings(chunk).await.unwrap();
        }
        let write = t.elapsed();
        let server_us = (evalsha_usec(&server) - u0) as f64 / n as f64;
        let mem = info(&server, "used_memory") - m0;
        // The index's own share: what leaves when its keys are deleted
        // (measured on a copy of the key list, then rebuilt by a repair).
        let skip_repair = std::env::var_os("BENCH_SKIP_REPAIR").is_some();
        let (index_mem, repair) = if skip_repair {
            (0, None)
        } else {
            let prefix = bus.key_space().prefix().to_owned();
            let index_keys = server.cli(&["--scan", "--pattern", &format!("{prefix}swarm:fx:*")]);
            let index_keys: Vec<&str> = index_keys.lines().filter(|l| !l.is_empty()).collect();
            let before_del = info(&server, "used_memory");
            for chunk in index_keys.chunks(1000) {
                let mut del = redis::cmd("DEL");
                for k in chunk {
                    del.arg(*k);
                }
                let _: i64 = del.query_async(&mut conn).await.unwrap();
            }
            let index_mem = before_del - info(&server, "used_memory");
            let t = Instant::now();
            let report = bus.check_index(true).await.unwrap();
            assert_eq!(report.missing.len(), n);
            (index_mem, Some(t.elapsed()))
        };
        let row = |what: &str, v: String| println!("| {n} | {what} | {v} |");
        row(
            "put_findings, batches of 1,000",
            format!(
                "{:.0} findings/s ({server_us:.1} µs server time each)",
                n as f64 / write.as_secs_f64()
            ),
        );
        row(
            "plain SET pipelined by 1,000",
            format!(
                "{:.0} findings/s ({set_us:.1} µs server time each)",
                n as f64 / plain_write.as_secs_f64()
            ),
        );
        row(
            "memory per finding: bus with index",
            format!(
                "{:.0} B ({:.2}× plain SET)",
                mem as f64 / n as f64,
                mem as f64 / plain_mem as f64
            ),
        );
        if !skip_repair {
            row(
                "memory per finding: bus without the index keys",
                format!(
                    "{:.0} B ({:.2}× plain SET)",
                    (mem - index_mem) as f64 / n as f64,
                    (mem - index_mem) as f64 / plain_mem as f64
                ),
            );
        }
        row(
            "memory per finding: plain SET",
            format!("{:.0} B", plain_mem as f64 / n as f64),
        );
        if let Some(repair) = repair {
            row(
                "repair of a lost index (check --repair)",
                format!("{:.2} s", repair.as_secs_f64()),
            );
        }

        let rss0 = info(&server, "used_memory_rss");
        let runs = 200;
        let mut qrng = Rng(42);
        let classes: Vec<(&str, MakeQuery)> = vec![
            (
                "search: one frequent word",
                Box::new(|r: &mut Rng| SearchQuery::text(word(r.next() % 20))),
            ),
            (
                "search: one rare word",
                Box::new(|r: &mut Rng| SearchQuery::text(word(1000 + r.next() % 4000))),
            ),
            (
                "search: two words, all",
                Box::new(|r: &mut Rng| {
                    SearchQuery::text(format!("{} {}", word(r.next() % 200), word(r.next() % 200)))
                }),
            ),
            (
                "search: three words, any",
                Box::new(|r: &mut Rng| {
                    SearchQuery::text(format!(
                        "{} {} {}",
                        word(r.next() % 500),
                        word(r.next() % 500),
                        word(r.next() % 500)
                    ))
                    .mode(MatchMode::Any)
                }),
            ),
            (
                "search: two words + tag filter",
                Box::new(|r: &mut Rng| {
                    SearchQuery::text(format!("{} {}", word(r.next() % 200), word(r.next() % 200)))
                        .tag(format!("tag{}", r.next() % 20))
                }),
            ),
            ("listing: first page", Box::new(|_| SearchQuery::listing())),
            (
                "listing: first page, one session",
                Box::new(|r: &mut Rng| {
                    SearchQuery::listing()
                        .session(SessionId::new(format!("session-{}", r.next() % 8)).unwrap())
                }),
            ),
        ];
        for (name, make) in &classes {
            let queries: Vec<SearchQuery> = (0..runs).map(|_| make(&mut qrng)).collect();
            let mut samples = time(runs, |i| {
                let bus = &bus;
                let q = queries[i].clone();
                async move {
                    let page = bus.search_findings(&q).await.unwrap();
                    let ids: Vec<_> = page.hits.iter().map(|h| h.id.clone()).collect();
                    std::hint::black_box(bus.get_findings(&ids).await.unwrap());
                }
            })
            .await;
            row(
                &format!("{name} (page of 20 read), p50 / p99"),
                format!(
                    "{:.2} / {:.2} ms",
                    pct(&mut samples, 0.5),
                    pct(&mut samples, 0.99)
                ),
            );
        }
        let rss1 = info(&server, "used_memory_rss");
        row(
            "server RSS before / after 1,400 queries",
            format!(
                "{:.1} / {:.1} MiB",
                rss0 as f64 / 1048576.0,
                rss1 as f64 / 1048576.0
            ),
        );
    }
}
