//! `swarm otlp serve`, the real binary on a real `redis-server`, posted the
//! OTLP/HTTP JSON log bodies Claude Code 2.1.332 exported
//! (swarm-claude-code/tests/fixtures/0002-logs.json, 0003-logs.json, run B:
//! 7 calls; SOURCES.md there): each call booked once, however often it is
//! posted; what the receiver cannot read is refused with the status OTLP
//! exporters understand (415, 400, 413), and a Redis that is away is a 503
//! with `Retry-After` the exporter retries, after which the same body books.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use swarmbus_redis::testing::RedisServer;

const FIX: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../swarm-claude-code/tests/fixtures"
);

/// Claude Code's own figures for the run's calls (`A/claude.stdout.json`;
/// run B made the same calls): sonnet $0.0209402, haiku $0.000332835.
const SONNET: &str = "0.0209402";
const HAIKU: &str = "0.000332835";

fn logs_bodies() -> [String; 2] {
    ["0002", "0003"].map(|n| std::fs::read_to_string(format!("{FIX}/{n}-logs.json")).unwrap())
}

/// A running `swarm otlp serve` and what it printed on stderr.
struct Receiver {
    child: Child,
    base: String,
    stderr: Arc<Mutex<String>>,
}

impl Receiver {
    fn start(redis_url: &str, extra: &[&str]) -> Self {
        Self::start_on(redis_url, "127.0.0.1:0", extra)
    }

    fn start_on(redis_url: &str, listen: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_swarm"))
            .args(["otlp", "serve", "--listen", listen])
            .args(extra)
            .env("REDIS_URL", redis_url)
            .env_remove("SWARM_NOW")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let lines = BufReader::new(child.stderr.take().unwrap());
        let seen = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                {
                    let mut s = seen.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    let _ = tx.send(addr);
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no `listening on` line: {}", stderr.lock().unwrap()));
        // Reached on loopback whatever the address it listens on.
        let port = addr.rsplit(':').next().unwrap_or_default().to_owned();
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            stderr,
        }
    }

    fn post(&self, path: &str, content_type: &str, body: &str) -> reqwest::blocking::Response {
        reqwest::blocking::Client::new()
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body.to_owned())
            .timeout(Duration::from_secs(30))
            .send()
            .unwrap()
    }

    fn post_logs(&self, body: &str) -> (u16, Value) {
        let r = self.post("/v1/logs", "application/json", body);
        let status = r.status().as_u16();
        (status, r.json().unwrap_or(Value::Null))
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn swarm(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_swarm"))
        .args(args)
        .env("REDIS_URL", url)
        .env_remove("SWARM_NOW")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn report(url: &str) -> Value {
    let out = swarm(url, &["cost", "report", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn each_call_of_the_posted_logs_is_booked_once_however_often_it_is_posted() {
    let redis = RedisServer::start();
    let url = redis.url();
    let rx = Receiver::start(&url, &[]);
    for body in logs_bodies() {
        let (status, answer) = rx.post_logs(&body);
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer,
            serde_json::json!({}),
            "an empty ExportLogsServiceResponse"
        );
    }
    let r = report(&url);
    assert_eq!(r["total"]["calls"], 7, "{r:#}");
    assert_eq!(r["by_tier"]["sonnet"]["usd"], SONNET, "{r:#}");
    assert_eq!(r["by_tier"]["haiku"]["usd"], HAIKU, "{r:#}");
    // Posted again (an exporter's retry, or a second receiver): nothing new.
    for body in logs_bodies() {
        assert_eq!(rx.post_logs(&body).0, 200);
    }
    assert_eq!(report(&url)["total"]["calls"], 7);
    // The same calls imported from the saved files: already booked.
    let files = ["0002", "0003"].map(|n| format!("{FIX}/{n}-logs.json"));
    let out = swarm(&url, &["otlp", "import", &files[0], &files[1]]);
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .starts_with("booked 0 calls ($0.00), 7 already booked"),
        "{out:?}"
    );
    let err = rx.stderr();
    let booked: u64 = counts(&err, " booked (").iter().sum();
    let already: u64 = counts(&err, " already booked").iter().sum();
    assert_eq!((booked, already), (7, 7), "{err}");
}

/// The numbers before `marker` on each line of `text` that has it.
fn counts(text: &str, marker: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| {
            let head = &l[..l.find(marker)?];
            head.rsplit([' ', ',']).next()?.parse().ok()
        })
        .collect()
}

#[test]
fn metrics_and_traces_are_accepted_and_not_booked() {
    let redis = RedisServer::start();
    let url = redis.url();
    let rx = Receiver::start(&url, &[]);
    let metrics = r#"{"resourceMetrics":[{"scopeMetrics":[{"metrics":[{"name":"claude_code.cost.usage"}]}]}]}"#;
    for path in ["/v1/metrics", "/v1/traces"] {
        let r = rx.post(path, "application/json", metrics);
        assert_eq!(r.status().as_u16(), 200);
        assert_eq!(r.json::<Value>().unwrap(), serde_json::json!({}));
    }
    // Protobuf metrics: an empty protobuf response (no bytes).
    let r = rx.post("/v1/metrics", "application/x-protobuf", "\u{a}\u{0}");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/x-protobuf"
    );
    assert!(r.bytes().unwrap().is_empty());
    assert_eq!(report(&url)["total"]["calls"], 0);
}

#[test]
fn protobuf_gzip_bad_json_and_oversized_logs_are_refused_with_what_to_do() {
    let redis = RedisServer::start();
    let url = redis.url();
    let rx = Receiver::start(&url, &["--max-body-bytes", "4096"]);
    let [big, _] = logs_bodies();
    assert!(big.len() > 4096);

    let r = rx.post("/v1/logs", "application/x-protobuf", "\u{a}\u{0}");
    assert_eq!(r.status().as_u16(), 415);
    let m = r.text().unwrap();
    assert!(m.contains("OTEL_EXPORTER_OTLP_PROTOCOL=http/json"), "{m}");

    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/logs", rx.base))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(vec![0x1f, 0x8b, 0, 0])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let m = r.text().unwrap();
    assert!(m.contains("OTEL_EXPORTER_OTLP_COMPRESSION=none"), "{m}");

    let (status, answer) = rx.post_logs("{\"resourceLogs\": [");
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["code"], 3, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("OTLP logs body"),
        "{answer}"
    );

    // An api_request event it cannot book: a partial success naming it.
    let (status, answer) = rx.post_logs(
        r#"{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"attributes":[
            {"key":"event.name","value":{"stringValue":"api_request"}},
            {"key":"model","value":{"stringValue":"claude-haiku-5-5"}}]}]}]}]}"#,
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["partialSuccess"]["rejectedLogRecords"], "1",
        "{answer}"
    );
    assert!(
        answer["partialSuccess"]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("without request_id"),
        "{answer}"
    );

    let (status, answer) = rx.post_logs(&big);
    assert_eq!(status, 413, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("4096 bytes"),
        "{answer}"
    );
    assert_eq!(report(&url)["total"]["calls"], 0);
}

#[test]
fn without_redis_logs_are_a_503_with_retry_after_and_the_retry_books_them() {
    // Started while nothing answers at the URL: it serves anyway.
    let mut redis = RedisServer::start_persistent();
    let url = redis.url();
    redis.stop();
    let rx = Receiver::start(&url, &[]);
    assert_eq!(
        rx.post("/v1/metrics", "application/json", "{}")
            .status()
            .as_u16(),
        200
    );
    let [a, b] = logs_bodies();
    let r = rx.post("/v1/logs", "application/json", &a);
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.headers()["retry-after"].to_str().unwrap(), "5");
    let m = r.text().unwrap();
    assert!(m.contains("127.0.0.1") && m.contains("retry"), "{m}");

    // Redis up: the same post books, without a restart of the receiver.
    redis.start_again();
    assert_eq!(rx.post_logs(&a).0, 200);

    // Lost after connecting: 503 again; back: the rest books, nothing twice.
    redis.stop();
    let started = Instant::now();
    let r = rx.post("/v1/logs", "application/json", &b);
    assert_eq!(r.status().as_u16(), 503, "{:?}", r.text());
    assert!(started.elapsed() < Duration::from_secs(20));
    redis.start_again();
    assert_eq!(rx.post_logs(&b).0, 200);
    assert_eq!(rx.post_logs(&a).0, 200);
    let r = report(&url);
    assert_eq!(r["total"]["calls"], 7, "{r:#}");
    assert_eq!(r["by_tier"]["sonnet"]["usd"], SONNET, "{r:#}");
}

#[test]
fn a_non_loopback_address_is_refused_unless_allowed() {
    let out = swarm(
        "redis://127.0.0.1:1",
        &["otlp", "serve", "--listen", "0.0.0.0:0"],
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0") && err.contains("--allow-remote"),
        "{err}"
    );
    let rx = Receiver::start_on("redis://127.0.0.1:1", "0.0.0.0:0", &["--allow-remote"]);
    assert!(rx.stderr().contains("listening on http://0.0.0.0:"));
    assert_eq!(
        rx.post("/v1/metrics", "application/json", "{}")
            .status()
            .as_u16(),
        200
    );
}

#[test]
fn sigterm_stops_it_gracefully() {
    let redis = RedisServer::start();
    let mut rx = Receiver::start(&redis.url(), &[]);
    let [a, _] = logs_bodies();
    assert_eq!(rx.post_logs(&a).0, 200);
    let pid = rx.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = rx.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    // The reader thread may still be draining the pipe.
    std::thread::sleep(Duration::from_millis(100));
    assert!(rx.stderr().contains("stopped;"), "{}", rx.stderr());
}
