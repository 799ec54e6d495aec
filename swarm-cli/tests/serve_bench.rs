//! Figures for docs/benchmarks.md, run by `scripts/bench-serve.sh` (with
//! `SWARM_BENCH=1`; otherwise this says so and passes at once):
//!
//! - MCP tool latency, p50/p99, of `get_finding` and `put_finding` through
//!   the same rmcp client over stdio (`swarm mcp`) and over Streamable HTTP
//!   (`swarm serve --require-auth`, a bearer token on every request);
//! - requests per second of `get_finding` at 64 concurrent HTTP clients;
//! - the dashboard's time to its first feed item: page opened in headless
//!   Chromium to the first finding shown, and a `redis-cli SET finding:…` to
//!   its row in the open page.
//!
//! `SWARM_BENCH_CALLS` (default 500) and `SWARM_BENCH_SECONDS` (default 5)
//! size the runs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod serve_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use serde_json::{Value, json};
use serve_support::{Browser, RedisServer, Serve, chromium, token};

type Client = RunningService<RoleClient, ()>;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn args(v: Value) -> serde_json::Map<String, Value> {
    let Value::Object(m) = v else { unreachable!() };
    m
}

async fn stdio(url: &str) -> Client {
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_swarm")).configure(|c| {
        c.args(["mcp", "--offline"])
            .env("REDIS_URL", url)
            .env_remove("SWARM_NAMESPACE")
            .stderr(std::process::Stdio::null());
    });
    ().serve(TokioChildProcess::new(cmd).unwrap())
        .await
        .unwrap()
}

async fn http(base: &str, token: &str) -> Client {
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp"))
            .auth_header(token.to_string()),
    );
    ().serve(transport).await.unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

/// p50 and p99 (ms) of `n` calls of `tool`.
async fn latency(
    client: &Client,
    tool: &'static str,
    n: u64,
    arg: &dyn Fn(u64) -> Value,
) -> (f64, f64) {
    for i in 0..20 {
        client
            .call_tool(CallToolRequestParams::new(tool).with_arguments(args(arg(i))))
            .await
            .unwrap();
    }
    let mut t = Vec::new();
    for i in 0..n {
        let s = Instant::now();
        let r = client
            .call_tool(CallToolRequestParams::new(tool).with_arguments(args(arg(i))))
            .await
            .unwrap();
        t.push(s.elapsed());
        assert_ne!(r.is_error, Some(true), "{r:?}");
    }
    t.sort();
    (percentile(&t, 0.5), percentile(&t, 0.99))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_serve() {
    if std::env::var_os("SWARM_BENCH").is_none() {
        eprintln!("SKIPPED: a benchmark; scripts/bench-serve.sh runs it (SWARM_BENCH=1)");
        return;
    }
    let calls = env_num("SWARM_BENCH_CALLS", 500);
    let seconds = env_num("SWARM_BENCH_SECONDS", 5);
    let redis = RedisServer::start();
    let url = redis.url();
    let tok = token(&url, None, "write");
    let serve = Serve::start(&url, None, &["--require-auth", "--rate-limit", "1000000"]);

    let s = stdio(&url).await;
    let h = http(&serve.base, &tok).await;
    let put = s
        .call_tool(
            CallToolRequestParams::new("put_finding").with_arguments(args(
                json!({"title": "bench", "body": "a finding to read back"}),
            )),
        )
        .await
        .unwrap();
    let id = put.structured_content.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let get = |_| json!({ "id": id });
    let put = |i| json!({"title": format!("bench {i}"), "body": "x".repeat(200)});
    for (name, client) in [("stdio", &s), ("http", &h)] {
        let g = latency(client, "get_finding", calls, &get).await;
        let p = latency(client, "put_finding", calls, &put).await;
        println!(
            "BENCH latency {name}: get_finding p50 {:.2} ms p99 {:.2} ms; put_finding p50 {:.2} ms p99 {:.2} ms ({calls} calls each)",
            g.0, g.1, p.0, p.1
        );
    }
    s.cancel().await.unwrap();
    h.cancel().await.unwrap();

    // 64 concurrent HTTP clients, each its own MCP session.
    let mut clients = Vec::new();
    for _ in 0..64 {
        clients.push(Arc::new(http(&serve.base, &tok).await));
    }
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in &clients {
        let (c, done, id) = (Arc::clone(c), Arc::clone(&done), id.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                let r = c
                    .call_tool(
                        CallToolRequestParams::new("get_finding")
                            .with_arguments(args(json!({ "id": id }))),
                    )
                    .await
                    .unwrap();
                assert_ne!(r.is_error, Some(true));
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let n = done.load(Ordering::Relaxed);
    println!(
        "BENCH throughput http: {n} get_finding calls in {:.1} s at 64 concurrent clients = {:.0} calls/s",
        started.elapsed().as_secs_f64(),
        n as f64 / started.elapsed().as_secs_f64()
    );
    for c in clients {
        if let Ok(c) = Arc::try_unwrap(c) {
            let _ = c.cancel().await;
        }
    }

    // The dashboard in headless Chromium.
    let Some((chrome, driver)) = chromium() else {
        return;
    };
    let base = serve.base.clone();
    let (open, write) = tokio::task::spawn_blocking(move || {
        let browser = Browser::start(&chrome, &driver, 1000, 900);
        let mut open = Vec::new();
        let mut write = Vec::new();
        for i in 0..5 {
            let s = Instant::now();
            browser.goto(&format!("{base}/?run={i}#token={tok}"));
            browser.wait_for(
                "a first feed item",
                "return document.querySelectorAll('#feed li.finding').length > 0",
                Duration::from_secs(20),
            );
            open.push(s.elapsed());
            let key = format!("finding:bench_cli_{i}");
            let text = format!("Bench redis-cli finding {i}\nbody");
            let s = Instant::now();
            redis.cli(&["SET", &key, &text]);
            browser.wait_for(
                "the redis-cli finding",
                &format!(
                    "return [...document.querySelectorAll('#feed li.finding')].some(l=>l.textContent.includes('Bench redis-cli finding {i}'))"
                ),
                Duration::from_secs(20),
            );
            write.push(s.elapsed());
        }
        open.sort();
        write.sort();
        (open, write)
    })
    .await
    .unwrap();
    println!(
        "BENCH dashboard: page open to first feed item median {:.0} ms (max {:.0} ms); redis-cli SET to the row in the open page median {:.0} ms (max {:.0} ms); 5 runs",
        percentile(&open, 0.5),
        percentile(&open, 1.0),
        percentile(&write, 0.5),
        percentile(&write, 1.0)
    );
}
