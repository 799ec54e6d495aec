//! Soak: a swarm on a real, persistent redis-server under faults, for a
//! bounded time, then an exact account of every task (issue 12).
//!
//! What it starts (and stops again):
//! - a `redis-server` with `appendonly yes` on a free loopback port in a temp
//!   dir (`swarmbus_redis::testing`), restarted once mid-run;
//! - a mock Anthropic Messages server on loopback (a small tokio HTTP/1.1
//!   responder) answering streamed, recorded-shaped messages after a random
//!   latency, with 429 (`retry-after`), 529 and mid-stream `error` events at
//!   `--fault-rate`; it counts the usage of every message it served in full,
//!   per API key (one key per worker process);
//! - N worker processes: this program re-run as `soak worker --id …`, each
//!   the real `Worker` loop with `AgentWorker` on `AnthropicClient` (pointed
//!   at the mock) and the accountant as its usage recorder, on its own
//!   `RedisBus`. Every 30 s a random one is killed (SIGKILL) and a new one
//!   started; one that exits by itself is replaced too;
//! - a coordinator pushing M tasks evenly over the run, and a writer of raw
//!   `finding:<name>` keys with a plain redis client, adopted by the
//!   library's finding adopter;
//! - a mock Gemini API on loopback (`soak/librarian.rs`) answering
//!   `generateContent` with recorded-shaped JSON answers (usageMetadata
//!   included) after a random latency, keeping Google's limits per key
//!   itself: over its per-minute limit a 429 RESOURCE_EXHAUSTED with a
//!   per-minute QuotaFailure and a RetryInfo to the next minute, over its
//!   daily limit a 429 with a `…PerDay…` quotaId, and 503 UNAVAILABLE at
//!   `--gemini-503-rate`. Shard 1's real per-minute limit is lower than the
//!   pool's (`--gemini-rpm-low`: per-minute 429s, and the pool learns the
//!   `quotaValue`), shard 2's daily limit is low (`--gemini-rpd-low`: a
//!   per-day 429, the shard exhausted until the Pacific midnight);
//! - the librarian daemon: `swarm librarian serve` with `--worker-bin`, else
//!   this program re-run as `soak librarian` (the same composition), with
//!   `--shards` fake keys `fake-gemini-shard-<n>` (`GEMINI_API_KEY_SHARD<n>`,
//!   `GEMINI_SHARD<n>_PER_MINUTE` = `--gemini-rpm`, `_PER_DAY` =
//!   `--gemini-rpd`), `GEMINI_BASE_URL` at the mock, Redis directly;
//! - agents asking it an archive query every `--ask-every-ms` over the bus
//!   (`ArchiveDesk::ask`, then `get_response`), each about the findings
//!   around one finished task;
//! - a sampler of Redis `used_memory` and the finding count every
//!   `--memory-every` seconds.
//!
//! Then it drains (until every task and every query is accounted for),
//! stops the workers and the librarian, and checks every pushed task:
//! completed with its finding, or reported failed; anything else is lost.
//! Every query is answered, answered after a failover (the mock saw it on
//! two keys), answered with an error saying no shard could serve
//! (exhausted), or unanswered; the mock's count of requests per key per
//! minute and per day is checked against the limits the pool was
//! configured with (`quota_never_over`: every request it received had been
//! granted by the Redis ledger first, 429s and 503s included), and against
//! the ledger's own count. The report is printed and, with
//! `--report FILE`, written as JSON. Exit status 1 on any loss, duplicate,
//! ledger mismatch, unanswered query or quota overrun.
//!
//! `cargo run --release -p swarm-examples --bin soak -- --minutes 5`
//! (`--no-librarian` leaves the librarian part out).

// A test harness program (like `swarmbus_redis::testing`): a broken
// invariant of the harness itself may stop it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;
use swarmbus_agents::agent::AgentWorker;
use swarmbus_agents::metering::Metering;
use swarmbus_agents::runtime::{Worker, WorkerConfig, task_finding_id};
use swarmbus_agents::tools::{CommandAllowList, Toolbox, Workspace};
use swarmbus_anthropic::{AnthropicClient, ClientConfig};
use swarmbus_core::accounting::UsageRecorder;
use swarmbus_core::bus::{FindingStore, TaskQueue};
use swarmbus_core::{Bus, SessionId, Task, TaskId, WorkerId};
use swarmbus_cost::{Accountant, BudgetLimits, PriceTable, Tiers};
use swarmbus_redis::testing::{Fault, FaultProxy, RedisServer};
use swarmbus_redis::{RedisBus, RedisConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// Not `src/bin/librarian.rs`: that would be a binary of its own.
#[path = "soak/librarian.rs"]
mod librarian;

use librarian::LibrarianSettings;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// Settings of a run.
#[derive(Debug, Clone, Serialize)]
struct Settings {
    seconds: u64,
    workers: usize,
    tasks: u64,
    fault_rate: f64,
    kill_every_s: u64,
    raw_findings: u64,
    redis_restart: bool,
    cut_every_s: u64,
    drain_s: u64,
    /// Closed loop instead of a fixed push rate: keep `saturate_depth`
    /// tasks queued per worker for the whole run (`--saturate`), so
    /// tasks/s measures what the workers can do (the scaling runs).
    saturate: bool,
    /// Tasks kept queued per worker with `saturate`.
    saturate_depth: u64,
    /// `swarm` binary whose `worker run` the workers are (`None`: this
    /// program's own `worker` mode, the same loop composed here), and
    /// whose `librarian serve` the librarian is.
    worker_bin: Option<PathBuf>,
    /// The librarian part (`None` with `--no-librarian`).
    librarian: Option<LibrarianSettings>,
    /// Redis memory and the finding count are sampled this often.
    memory_sample_s: u64,
}

fn parse_args(args: &[String]) -> (Settings, Option<PathBuf>) {
    let mut minutes: Option<f64> = None;
    let mut seconds: Option<u64> = None;
    let mut workers = 8usize;
    let mut tasks: Option<u64> = None;
    let mut fault_rate = 0.05f64;
    let mut kill_every_s = 30u64;
    let mut report = None;
    let mut redis_restart = true;
    let mut cut_every_s = 10u64;
    let mut worker_bin = None;
    let mut saturate = false;
    let mut saturate_depth = 4u64;
    let mut lib = LibrarianSettings::default();
    let mut with_librarian = true;
    let mut memory_sample_s = 5u64;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().unwrap_or_default();
        match a.as_str() {
            "--minutes" => minutes = val().parse().ok(),
            "--seconds" => seconds = val().parse().ok(),
            "--workers" => workers = val().parse().unwrap_or(8).max(1),
            "--tasks" => tasks = val().parse().ok(),
            "--fault-rate" => fault_rate = val().parse().unwrap_or(0.05),
            "--kill-every" => kill_every_s = val().parse().unwrap_or(30).max(1),
            "--report" => report = Some(PathBuf::from(val())),
            "--no-redis-restart" => redis_restart = false,
            "--worker-bin" => worker_bin = Some(PathBuf::from(val())),
            "--cut-every" => cut_every_s = val().parse().unwrap_or(10),
            "--saturate" => saturate = true,
            "--depth" => saturate_depth = val().parse().unwrap_or(4).max(1),
            "--no-librarian" => with_librarian = false,
            "--shards" => lib.shards = val().parse().unwrap_or(lib.shards).clamp(2, 64),
            "--gemini-rpm" => lib.rpm = val().parse().unwrap_or(lib.rpm).max(1),
            "--gemini-rpd" => lib.rpd = val().parse().unwrap_or(lib.rpd).max(1),
            "--gemini-rpm-low" => {
                lib.shard1_real_rpm = val().parse().unwrap_or(lib.shard1_real_rpm).max(1)
            }
            "--gemini-rpd-low" => {
                lib.shard2_real_rpd = val().parse().unwrap_or(lib.shard2_real_rpd).max(1)
            }
            "--gemini-503-rate" => lib.rate_503 = val().parse().unwrap_or(lib.rate_503),
            "--ask-every-ms" => lib.ask_every_ms = val().parse().unwrap_or(lib.ask_every_ms),
            "--memory-every" => memory_sample_s = val().parse().unwrap_or(5).max(1),
            other => {
                eprintln!("unknown argument {other}");
                std::process::exit(2);
            }
        }
    }
    let seconds = seconds.unwrap_or_else(|| (minutes.unwrap_or(5.0) * 60.0).round() as u64);
    let seconds = seconds.max(5);
    // 20,000 tasks for 5 minutes, scaled with the time; saturated, as
    // many as the workers take (up to `--tasks`).
    let tasks = tasks.unwrap_or(if saturate {
        u64::MAX
    } else {
        20_000 * seconds / 300
    });
    let settings = Settings {
        seconds,
        workers,
        tasks,
        fault_rate,
        kill_every_s,
        raw_findings: (seconds * 5).max(10),
        redis_restart,
        cut_every_s,
        worker_bin,
        // Queries waiting for a shard's next minute finish in the drain
        // (a query is unanswered after `answer_timeout_s`).
        drain_s: (seconds / 2).max(if with_librarian {
            lib.answer_timeout_s + 10
        } else {
            60
        }),
        saturate,
        saturate_depth,
        librarian: with_librarian.then_some(lib),
        memory_sample_s,
    };
    (settings, report)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("librarian") {
        match librarian::librarian_process(&args[1..]).await {
            Ok(()) => std::process::exit(0),
            Err(e) => {
                eprintln!("soak librarian: {e}");
                std::process::exit(1);
            }
        }
    }
    if args.first().map(String::as_str) == Some("worker") {
        match worker_process(&args[1..]).await {
            Ok(()) => std::process::exit(0),
            Err(e) => {
                eprintln!("soak worker: {e}");
                std::process::exit(1);
            }
        }
    }
    let (settings, report_path) = parse_args(&args);
    match run(settings, report_path).await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    }
}

// ---------------------------------------------------------------- worker --

fn bus_config(url: &str) -> Result<RedisConfig, AnyError> {
    // Commands are retried across a Redis restart (a few seconds down).
    Ok(RedisConfig::from_url(url)?.retry_for(Duration::from_secs(30)))
}

/// `soak worker --id ID --redis URL --workspace DIR`: one worker process.
async fn worker_process(args: &[String]) -> Result<(), AnyError> {
    let mut id = None;
    let mut url = None;
    let mut workspace = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--id" => id = it.next().cloned(),
            "--redis" => url = it.next().cloned(),
            "--workspace" => workspace = it.next().cloned(),
            _ => return Err(format!("unknown worker argument {a}").into()),
        }
    }
    let id = WorkerId::new(id.ok_or("--id")?)?;
    let url = url.ok_or("--redis")?;
    let bus: Arc<dyn Bus> = Arc::new(RedisBus::connect(bus_config(&url)?).await?);
    let tiers = Tiers::default();
    let accountant = Accountant::new(
        Arc::clone(&bus),
        Arc::new(PriceTable::built_in()?),
        tiers.clone(),
        BudgetLimits::unlimited(),
    )?;
    let recorder: Arc<dyn UsageRecorder> = Arc::new(accountant);
    // ANTHROPIC_BASE_URL points at the mock; the key is a dummy naming the
    // worker, so the mock counts usage per process.
    let mut config = ClientConfig::from_env().model(tiers.worker.model.clone());
    config.stream_above_max_tokens = 0; // always stream: mid-stream errors apply
    config.max_retries = 4;
    config.backoff_base = Duration::from_millis(100);
    config.backoff_cap = Duration::from_secs(2);
    config.max_rate_limit_wait = Duration::from_secs(5);
    let key = std::env::var("ANTHROPIC_API_KEY").map_err(|_| "ANTHROPIC_API_KEY")?;
    let client = AnthropicClient::new(key.into(), config)?;
    let ws = Arc::new(Workspace::new(workspace.ok_or("--workspace")?)?);
    let agent = AgentWorker::new(
        Arc::new(client),
        Arc::clone(&bus),
        ws,
        Toolbox::built_in(CommandAllowList::default()),
        id.clone(),
    )
    .metering(Metering::none().recorder(recorder));
    let cfg = WorkerConfig::new(id)
        .heartbeat_ttl(Duration::from_secs(3))
        .claim_wait(Duration::from_millis(500))
        .reclaim_every(Some(Duration::from_secs(2)));
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let report = Worker::shared(bus, agent, cfg).run(stop).await?;
    eprintln!(
        "worker done: {} findings, {} failed",
        report.findings.len(),
        report.failed.len()
    );
    Ok(())
}

// ------------------------------------------------------------ mock model --

/// What the mock served.
#[derive(Debug, Default)]
struct MockStats {
    requests: AtomicU64,
    served: AtomicU64,
    injected_429: AtomicU64,
    injected_529: AtomicU64,
    injected_midstream: AtomicU64,
    /// Tokens (input + output) of every message served in full, per API key.
    usage_by_key: Mutex<HashMap<String, u64>>,
}

async fn serve_mock(listener: TcpListener, stats: Arc<MockStats>, fault_rate: f64) {
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            continue;
        };
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            let _ = mock_connection(sock, stats, fault_rate).await;
        });
    }
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Reads one HTTP/1.1 request (headers, then Content-Length bytes) from
/// `sock`, keeping what follows it in `buf`; `None` when the peer closed.
async fn read_request(
    sock: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = header(&head, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..head_end + len].to_vec();
    buf.drain(..head_end + len);
    Ok(Some((head, body)))
}

async fn mock_connection(
    mut sock: TcpStream,
    stats: Arc<MockStats>,
    fault_rate: f64,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(8192);
    while let Some((head, body)) = read_request(&mut sock, &mut buf).await? {
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let key = header(&head, "x-api-key").unwrap_or("").to_owned();
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let (latency, fault, input, output) = {
            let mut rng = rand::rng();
            let fault = if rng.random_bool(fault_rate.clamp(0.0, 1.0)) {
                rng.random_range(0..3u8) + 1
            } else {
                0
            };
            (
                rng.random_range(5..60u64),
                fault,
                rng.random_range(200..1200u64),
                rng.random_range(20..200u64),
            )
        };
        tokio::time::sleep(Duration::from_millis(latency)).await;
        let model = body["model"].as_str().unwrap_or("claude").to_owned();
        match fault {
            1 => {
                stats.injected_429.fetch_add(1, Ordering::Relaxed);
                let b = r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#;
                let r = format!(
                    "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: 1\r\nrequest-id: req_soak429\r\ncontent-length: {}\r\n\r\n{b}",
                    b.len()
                );
                sock.write_all(r.as_bytes()).await?;
            }
            2 => {
                stats.injected_529.fetch_add(1, Ordering::Relaxed);
                let b = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
                let r = format!(
                    "HTTP/1.1 529 Site Overloaded\r\ncontent-type: application/json\r\nrequest-id: req_soak529\r\ncontent-length: {}\r\n\r\n{b}",
                    b.len()
                );
                sock.write_all(r.as_bytes()).await?;
            }
            _ => {
                let midstream = fault == 3;
                if midstream {
                    stats.injected_midstream.fetch_add(1, Ordering::Relaxed);
                }
                let n = stats.requests.load(Ordering::Relaxed);
                let text = format!(
                    "Soak finding {n}\nThe mock model looked at the task and found what it asked for (request {n})."
                );
                let sse = sse_message(&model, n, &text, input, output, midstream);
                let stream = body["stream"].as_bool().unwrap_or(false);
                let (ctype, payload) = if stream {
                    ("text/event-stream", sse)
                } else {
                    (
                        "application/json",
                        serde_json::json!({
                            "id": format!("msg_soak{n}"), "type": "message", "role": "assistant",
                            "model": model, "content": [{"type": "text", "text": text}],
                            "stop_reason": "end_turn", "stop_sequence": null,
                            "usage": {"input_tokens": input, "output_tokens": output}
                        })
                        .to_string(),
                    )
                };
                let r = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\nrequest-id: req_soak{n}\r\ncontent-length: {}\r\n\r\n{payload}",
                    payload.len()
                );
                if midstream && !stream {
                    // Not streaming: the body breaks off halfway.
                    let cut = r.len() - payload.len() / 2;
                    sock.write_all(&r.as_bytes()[..cut]).await?;
                    sock.flush().await?;
                    return Ok(());
                }
                sock.write_all(r.as_bytes()).await?;
                sock.flush().await?;
                if !midstream {
                    stats.served.fetch_add(1, Ordering::Relaxed);
                    *stats.usage_by_key.lock().unwrap().entry(key).or_default() += input + output;
                }
            }
        }
    }
    Ok(())
}

/// A recorded-shaped Messages stream; with `midstream` it breaks off with an
/// `error` event after the first delta (as the API does when overloaded).
fn sse_message(
    model: &str,
    n: u64,
    text: &str,
    input: u64,
    output: u64,
    midstream: bool,
) -> String {
    let ev = |name: &str, data: serde_json::Value| format!("event: {name}\ndata: {data}\n\n");
    let (first, rest) = text.split_at(text.len() / 2);
    let mut s = ev(
        "message_start",
        serde_json::json!({"type":"message_start","message":{"id":format!("msg_soak{n}"),"type":"message","role":"assistant","model":model,"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":input,"output_tokens":1}}}),
    );
    s += &ev(
        "content_block_start",
        serde_json::json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
    );
    s += &ev("ping", serde_json::json!({"type":"ping"}));
    s += &ev(
        "content_block_delta",
        serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":first}}),
    );
    if midstream {
        s += &ev(
            "error",
            serde_json::json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
        );
        return s;
    }
    s += &ev(
        "content_block_delta",
        serde_json::json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":rest}}),
    );
    s += &ev(
        "content_block_stop",
        serde_json::json!({"type":"content_block_stop","index":0}),
    );
    s += &ev(
        "message_delta",
        serde_json::json!({"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":output}}),
    );
    s += &ev("message_stop", serde_json::json!({"type":"message_stop"}));
    s
}

// ------------------------------------------------------------- processes --

/// The worker processes and the peak RSS seen of each.
struct Fleet {
    exe: PathBuf,
    swarm_cli: bool,
    url: String,
    mock_url: String,
    dir: PathBuf,
    slots: Vec<(WorkerId, Child)>,
    generation: u64,
    killed: Vec<String>,
    exited: Vec<String>,
    started: Vec<String>,
    peak_rss_kb: BTreeMap<String, u64>,
}

fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

impl Fleet {
    fn spawn(&mut self, slot: usize) -> Result<(WorkerId, Child), AnyError> {
        self.generation += 1;
        let id = WorkerId::new(format!("soak-w{slot}-g{}", self.generation))?;
        let log = std::fs::File::create(self.dir.join(format!("{id}.log")))?;
        let mut cmd = Command::new(&self.exe);
        if self.swarm_cli {
            // The CLI's worker: `swarm worker run`, Redis from REDIS_URL.
            cmd.args(["worker", "run", "--id", id.as_str(), "--heartbeat-ttl", "3"])
                .env("REDIS_URL", &self.url);
        } else {
            cmd.args(["worker", "--id", id.as_str(), "--redis", &self.url]);
        }
        let child = cmd
            .arg("--workspace")
            .arg(&self.dir)
            .env("ANTHROPIC_BASE_URL", &self.mock_url)
            .env("ANTHROPIC_API_KEY", format!("soak-{id}"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?;
        self.started.push(id.to_string());
        Ok((id, child))
    }

    fn sample(&mut self) {
        for (id, child) in &self.slots {
            if let Some(kb) = vm_hwm_kb(child.id()) {
                let e = self.peak_rss_kb.entry(id.to_string()).or_default();
                *e = (*e).max(kb);
            }
        }
    }

    /// Replaces workers that exited by themselves.
    fn supervise(&mut self) -> Result<(), AnyError> {
        self.sample();
        for slot in 0..self.slots.len() {
            if let Ok(Some(status)) = self.slots[slot].1.try_wait() {
                self.exited
                    .push(format!("{} ({status})", self.slots[slot].0));
                self.slots[slot] = self.spawn(slot)?;
            }
        }
        Ok(())
    }

    fn kill_one(&mut self, slot: usize) -> Result<(), AnyError> {
        self.sample();
        let (id, child) = &mut self.slots[slot];
        let _ = child.kill();
        let _ = child.wait();
        self.killed.push(id.to_string());
        self.slots[slot] = self.spawn(slot)?;
        Ok(())
    }

    fn ids(&self) -> Vec<WorkerId> {
        self.slots.iter().map(|(id, _)| id.clone()).collect()
    }

    /// SIGINT to every worker, then SIGKILL to any still running after 15 s.
    fn stop_all(&mut self) {
        self.sample();
        for (_, child) in &self.slots {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        for (id, child) in &mut self.slots {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    _ if Instant::now() > deadline => {
                        eprintln!("worker {id} did not stop on SIGINT; killed");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for (_, child) in &mut self.slots {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------- report --

#[derive(Debug, Serialize)]
struct SoakReport {
    settings: Settings,
    duration_s: f64,
    tasks_pushed: u64,
    tasks_completed: u64,
    tasks_failed_reported: u64,
    tasks_lost: u64,
    tasks_completed_and_failed: u64,
    findings_indexed: u64,
    findings_stored_twice: u64,
    raw_findings_written: u64,
    /// Raw keys found in the index of active findings at the end.
    raw_findings_adopted: u64,
    /// Raw keys this program's adopter joined to the index while running
    /// (the librarian's adopter may join others).
    raw_findings_adopted_by_this_adopter: u64,
    raw_findings_adopted_by_final_reindex: u64,
    ledger_tokens: u64,
    mock_usage_tokens: u64,
    ledger_equal: bool,
    ledger_tokens_all_workers: u64,
    mock_usage_tokens_all_workers: u64,
    ledger_tokens_of_killed_workers: u64,
    mock_usage_tokens_of_killed_workers: u64,
    ledger_entries: u64,
    mock_requests: u64,
    mock_messages_served: u64,
    injected_429: u64,
    injected_529: u64,
    injected_midstream_errors: u64,
    workers_killed: usize,
    workers_exited_by_themselves: Vec<String>,
    worker_processes_started: usize,
    redis_restarts: u32,
    connection_faults_injected: u64,
    findings_per_s: f64,
    tasks_per_s: f64,
    /// Completed tasks per second from the first push to the last finding.
    tasks_per_s_busy: f64,
    busy_s: f64,
    task_latency_p50_ms: f64,
    task_latency_p99_ms: f64,
    redis_used_memory_bytes: u64,
    redis_memory_per_finding_bytes: f64,
    /// Slope of used_memory over the finding count between the first and
    /// the last sample (bytes per finding); `None` without growth in
    /// findings.
    redis_memory_growth_per_finding_bytes: Option<f64>,
    redis_memory_samples: Vec<MemorySample>,
    librarian_queries_asked: u64,
    librarian_queries_answered: u64,
    /// Answered after the pool moved on from a shard the mock refused.
    librarian_queries_failed_over: u64,
    /// Answered with an error saying no shard could serve.
    librarian_queries_exhausted: u64,
    librarian_queries_failed_other: u64,
    librarian_queries_unanswered: u64,
    /// No shard got more requests in a minute (or day) than the pool was
    /// configured to send it.
    quota_never_over: bool,
    librarian: Option<librarian::LibrarianReport>,
    peak_rss_kb: BTreeMap<String, u64>,
    failure_kinds: BTreeMap<String, u64>,
    failure_reports_sample: Vec<String>,
    ok: bool,
}

fn redis_info_field(server: &RedisServer, section: &str, field: &str) -> u64 {
    server
        .cli(&["INFO", section])
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// One sample of Redis memory.
#[derive(Debug, Clone, Serialize)]
struct MemorySample {
    t_s: f64,
    used_memory: u64,
    findings: u64,
}

/// Samples `INFO memory used_memory` and the finding count every `every`
/// until `stop`, then once more.
async fn sample_memory(
    bus: Arc<RedisBus>,
    url: String,
    started: Instant,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> Vec<MemorySample> {
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut samples = Vec::new();
    loop {
        // Redis may be restarting: that sample is skipped.
        if let Ok(mut c) = client.get_multiplexed_async_connection().await {
            let info: redis::RedisResult<String> =
                redis::cmd("INFO").arg("memory").query_async(&mut c).await;
            if let (Ok(info), Ok(findings)) = (info, bus.count_findings().await) {
                let used_memory = info
                    .lines()
                    .find_map(|l| l.strip_prefix("used_memory:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                samples.push(MemorySample {
                    t_s: started.elapsed().as_secs_f64(),
                    used_memory,
                    findings,
                });
            }
        }
        if stop.load(Ordering::SeqCst) {
            return samples;
        }
        let next = Instant::now() + every;
        while Instant::now() < next && !stop.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Bytes of Redis memory per finding added, first sample to last.
fn memory_growth(samples: &[MemorySample]) -> Option<f64> {
    let (first, last) = (samples.first()?, samples.last()?);
    let findings = last
        .findings
        .checked_sub(first.findings)
        .filter(|n| *n > 0)?;
    Some((last.used_memory as f64 - first.used_memory as f64) / findings as f64)
}

/// How many of the raw keys `finding:soak-raw-<i>` (i < n) are in the
/// library's index of active findings.
async fn raw_in_index(url: &str, n: u64) -> Result<u64, AnyError> {
    let client = redis::Client::open(url)?;
    let mut c = client.get_multiplexed_async_connection().await?;
    let mut found = 0;
    let ids: Vec<String> = (0..n).map(|i| format!("soak-raw-{i}")).collect();
    for chunk in ids.chunks(1000) {
        let scores: Vec<Option<f64>> = redis::cmd("ZMSCORE")
            .arg("swarm:findings")
            .arg(chunk)
            .query_async(&mut c)
            .await?;
        found += scores.iter().filter(|s| s.is_some()).count() as u64;
    }
    Ok(found)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

// ------------------------------------------------------------------- run --

async fn run(settings: Settings, report_path: Option<PathBuf>) -> Result<bool, AnyError> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    println!("soak: {settings:?}");
    let server = RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
    ]);
    let url = server.url();
    let redis_pid = redis_info_field(&server, "server", "process_id") as u32;
    let server = Arc::new(Mutex::new(server));
    println!("redis-server (appendonly yes) at {url}, pid {redis_pid}");

    // The workers reach Redis through the fault proxy, which cuts one of
    // their connections every `cut_every_s` (the coordinator connects
    // directly).
    let port = server.lock().unwrap().port;
    let proxy = Arc::new(FaultProxy::start(port).await);
    println!("fault proxy for the workers at {}", proxy.url());

    let stats = Arc::new(MockStats::default());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let mock_url = format!("http://{}", listener.local_addr()?);
    let mock = tokio::spawn(serve_mock(
        listener,
        Arc::clone(&stats),
        settings.fault_rate,
    ));
    println!(
        "mock Anthropic at {mock_url}, fault rate {}",
        settings.fault_rate
    );

    let exe = match &settings.worker_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    // The librarian: a mock Gemini keeping Google's quotas per key, and the
    // daemon (its shard pool on `shards` fake keys) against it. It reaches
    // Redis directly (the restart still hits it).
    let gemini = settings
        .librarian
        .clone()
        .map(|l| Arc::new(librarian::GeminiMock::new(l)));
    let (gemini_task, librarian_proc) = match (&gemini, &settings.librarian) {
        (Some(g), Some(l)) => {
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let gemini_url = format!("http://{}", listener.local_addr()?);
            let task = tokio::spawn(librarian::serve_gemini(listener, Arc::clone(g)));
            let p = librarian::LibrarianProc::start(
                &exe,
                settings.worker_bin.is_some(),
                &url,
                &gemini_url,
                l,
                dir.path().join("librarian.log"),
            )?;
            println!(
                "mock Gemini at {gemini_url}; librarian with {} shards, {} a minute and {} a day each (shard 1 really {} a minute, shard 2 really {} a day), 503 rate {}",
                l.shards, l.rpm, l.rpd, l.shard1_real_rpm, l.shard2_real_rpd, l.rate_503
            );
            (Some(task), Some(p))
        }
        _ => (None, None),
    };

    let bus = Arc::new(RedisBus::connect(bus_config(&url)?).await?);
    let adopter = bus.spawn_finding_adopter(Duration::from_secs(1));
    let mut fleet = Fleet {
        exe,
        swarm_cli: settings.worker_bin.is_some(),
        url: proxy.url(),
        mock_url,
        dir: dir.path().to_path_buf(),
        slots: Vec::new(),
        generation: 0,
        killed: Vec::new(),
        exited: Vec::new(),
        started: Vec::new(),
        peak_rss_kb: BTreeMap::new(),
    };
    for slot in 0..settings.workers {
        let w = fleet.spawn(slot)?;
        fleet.slots.push(w);
    }
    let fleet = Arc::new(Mutex::new(fleet));

    // Raw findings around the library, with a plain redis client.
    let raw_done = Arc::new(AtomicBool::new(false));
    let raw_written = Arc::new(AtomicU64::new(0));
    let raw = {
        let (url, n, secs) = (url.clone(), settings.raw_findings, settings.seconds);
        let (done, written) = (Arc::clone(&raw_done), Arc::clone(&raw_written));
        tokio::spawn(async move {
            let client = redis::Client::open(url.as_str()).unwrap();
            let every = Duration::from_secs_f64(secs as f64 / n as f64);
            let mut i = 0;
            while i < n {
                tokio::time::sleep(every).await;
                let Ok(mut c) = client.get_multiplexed_async_connection().await else {
                    continue; // Redis is restarting: try again
                };
                let body = format!("raw finding {i}: written with SET around the library");
                let r: redis::RedisResult<()> = redis::cmd("SET")
                    .arg(format!("finding:soak-raw-{i}"))
                    .arg(body)
                    .query_async(&mut c)
                    .await;
                if r.is_ok() {
                    i += 1;
                    written.store(i, Ordering::SeqCst);
                }
            }
            done.store(true, Ordering::SeqCst);
        })
    };

    // Chaos: kill a random worker every `kill_every_s`, restart Redis once at
    // 40% of the run; replace workers that exit by themselves.
    let push_end = started + Duration::from_secs(settings.seconds);

    // Agents asking the librarian, from the first finished task to the end
    // of the pushing.
    let pushed_shared: Arc<Mutex<Vec<TaskId>>> = Arc::new(Mutex::new(Vec::new()));
    let librarian_done = Arc::new(AtomicBool::new(settings.librarian.is_none()));
    let asker = settings.librarian.clone().map(|l| {
        tokio::spawn(librarian::ask_loop(
            Arc::clone(&bus),
            Arc::clone(&pushed_shared),
            l,
            push_end,
            Arc::clone(&librarian_done),
        ))
    });

    // Redis memory against the finding count, every `memory_sample_s`.
    let sampler_stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample_memory(
        Arc::clone(&bus),
        url.clone(),
        started,
        Duration::from_secs(settings.memory_sample_s),
        Arc::clone(&sampler_stop),
    ));
    let chaos_stop = Arc::new(AtomicBool::new(false));
    let restarts = Arc::new(AtomicU64::new(0));
    let chaos = {
        let proxy = Arc::clone(&proxy);
        let (fleet, server, stop, restarts) = (
            Arc::clone(&fleet),
            Arc::clone(&server),
            Arc::clone(&chaos_stop),
            Arc::clone(&restarts),
        );
        let s = settings.clone();
        tokio::spawn(async move {
            let mut last_kill = Instant::now();
            let mut last_cut = Instant::now();
            let mut cuts = 0u64;
            let restart_at = started + Duration::from_secs_f64(s.seconds as f64 * 0.4);
            let mut restarted = !s.redis_restart;
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(250)).await;
                if Instant::now() < push_end
                    && last_kill.elapsed() >= Duration::from_secs(s.kill_every_s)
                {
                    last_kill = Instant::now();
                    let slot = rand::rng().random_range(0..s.workers);
                    let mut f = fleet.lock().unwrap();
                    let victim = f.slots[slot].0.clone();
                    if let Err(e) = f.kill_one(slot) {
                        eprintln!("cannot replace worker: {e}");
                    }
                    println!(
                        "[{:>5.1}s] killed {victim} (SIGKILL), started {}",
                        started.elapsed().as_secs_f64(),
                        f.slots[slot].0
                    );
                }
                if s.cut_every_s > 0
                    && Instant::now() < push_end
                    && last_cut.elapsed() >= Duration::from_secs(s.cut_every_s)
                {
                    last_cut = Instant::now();
                    cuts += 1;
                    // The next request of any kind on any worker connection:
                    // alternately its reply is dropped after it ran, or it
                    // is cut in half before it runs.
                    let fault = if cuts.is_multiple_of(2) {
                        Fault::DropReply
                    } else {
                        Fault::CutRequest
                    };
                    proxy.arm(fault, b"", 1);
                }
                if !restarted && Instant::now() >= restart_at {
                    restarted = true;
                    let server = Arc::clone(&server);
                    let t0 = Instant::now();
                    let _ =
                        tokio::task::spawn_blocking(move || server.lock().unwrap().restart()).await;
                    restarts.fetch_add(1, Ordering::SeqCst);
                    println!(
                        "[{:>5.1}s] restarted redis-server (down {:.2}s)",
                        started.elapsed().as_secs_f64(),
                        t0.elapsed().as_secs_f64()
                    );
                }
                if let Err(e) = fleet.lock().unwrap().supervise() {
                    eprintln!("cannot replace worker: {e}");
                }
            }
        })
    };

    // The coordinator: M tasks evenly over the run, round-robin over the
    // workers alive now; saturated, to whichever worker has fewer than
    // `saturate_depth` queued, until the run's time is up.
    let session = SessionId::new("soak")?;
    let mut pushed: Vec<TaskId> = Vec::with_capacity(settings.tasks.min(1 << 20) as usize);
    let mut pushed_at = HashMap::new();
    let per_task = Duration::from_secs_f64(settings.seconds as f64 / settings.tasks.max(1) as f64);
    let mut next = Instant::now();
    let mut rr = 0usize;
    for i in 0..settings.tasks {
        let to = if settings.saturate {
            match saturated_target(&bus, &fleet, &mut rr, settings.saturate_depth, push_end).await {
                Some(w) => w,
                None => break,
            }
        } else {
            next += per_task;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
            let ids = fleet.lock().unwrap().ids();
            ids[i as usize % ids.len()].clone()
        };
        let to = &to;
        let task = Task::new(
            session.clone(),
            "grep",
            format!("Soak task {i}: report one fact about the workspace."),
        );
        loop {
            match bus.push_task(to, &task).await {
                Ok(()) => break,
                Err(e) => {
                    eprintln!("push failed ({e}); retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        pushed_at.insert(task.id, task.created_at);
        pushed.push(task.id);
        pushed_shared.lock().unwrap().push(task.id);
        if i % 1000 == 999 {
            println!(
                "[{:>5.1}s] pushed {}",
                started.elapsed().as_secs_f64(),
                i + 1
            );
        }
    }
    let push_secs = started.elapsed().as_secs_f64();
    println!(
        "[{push_secs:>5.1}s] all {} tasks pushed; draining",
        pushed.len()
    );

    // Drain: until every task has a finding or a failure report.
    let drain_end = Instant::now() + Duration::from_secs(settings.drain_s);
    let finding_ids: Vec<_> = pushed.iter().map(|t| task_finding_id(*t)).collect();
    let mut finished = HashSet::new();
    loop {
        let failed: HashSet<TaskId> = bus
            .failed_tasks()
            .await
            .map(|f| f.into_iter().map(|f| f.task.id).collect())
            .unwrap_or_default();
        // Only the tasks not seen finished yet are read again.
        let open: Vec<(swarmbus_core::FindingId, TaskId)> = finding_ids
            .iter()
            .zip(&pushed)
            .filter(|(_, t)| !finished.contains(*t) && !failed.contains(*t))
            .map(|(f, t)| (f.clone(), *t))
            .collect();
        for chunk in open.chunks(500) {
            let ids: Vec<_> = chunk.iter().map(|(f, _)| f.clone()).collect();
            if let Ok(got) = bus.get_findings(&ids).await {
                for (f, (_, t)) in got.into_iter().zip(chunk) {
                    if f.is_some() {
                        finished.insert(*t);
                    }
                }
            }
        }
        let accounted = pushed
            .iter()
            .filter(|t| finished.contains(t) || failed.contains(t))
            .count();
        if accounted == pushed.len()
            && raw_done.load(Ordering::SeqCst)
            && librarian_done.load(Ordering::SeqCst)
        {
            break;
        }
        if Instant::now() > drain_end {
            println!(
                "drain timed out with {} of {} accounted",
                accounted,
                pushed.len()
            );
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let work_secs = started.elapsed().as_secs_f64();
    chaos_stop.store(true, Ordering::SeqCst);
    let _ = chaos.await;
    let _ = raw.await;
    sampler_stop.store(true, Ordering::SeqCst);
    let memory_samples = sampler.await.unwrap_or_default();
    {
        let mut f = fleet.lock().unwrap();
        f.stop_all();
    }
    // The librarian's account: the asking agents' fates, the mock's counts
    // per key, the ledger's.
    let lib = match (asker, gemini, librarian_proc) {
        (Some(asker), Some(g), Some(p)) => {
            let asked = asker.await?;
            Some(librarian::account(&bus, &g, asked, p).await?)
        }
        _ => None,
    };
    if let Some(t) = gemini_task {
        t.abort();
    }
    // Adopt anything the adopter has not met yet.
    let adopted_live = adopter.adopted();
    adopter.stop().await;
    let mut adopted_at_end = 0;
    let mut cursor = None;
    for _ in 0..10_000 {
        match bus.reindex_findings(cursor, 2000).await {
            Ok(step) => {
                adopted_at_end += step.adopted;
                cursor = step.next_cursor;
                if cursor.is_none() {
                    break;
                }
            }
            Err(e) => {
                eprintln!("reindex: {e}");
                break;
            }
        }
    }
    mock.abort();

    // Exact account.
    let failures = bus.failed_tasks().await?;
    let failed: HashSet<TaskId> = failures.iter().map(|f| f.task.id).collect();
    let mut completed = 0u64;
    let mut both = 0u64;
    let mut lost = 0u64;
    let mut latencies = Vec::new();
    let mut last_finding_at = None;
    for (chunk_ids, chunk_tasks) in finding_ids.chunks(500).zip(pushed.chunks(500)) {
        let got = bus.get_findings(chunk_ids).await?;
        for (f, t) in got.into_iter().zip(chunk_tasks) {
            match (f, failed.contains(t)) {
                (Some(f), is_failed) => {
                    completed += 1;
                    if is_failed {
                        both += 1;
                    }
                    last_finding_at = last_finding_at.max(Some(f.created_at));
                    if let Some(at) = pushed_at.get(t) {
                        let ms = (f.created_at - *at).num_microseconds().unwrap_or(0);
                        latencies.push(ms as f64 / 1000.0);
                    }
                }
                (None, true) => {}
                (None, false) => lost += 1,
            }
        }
    }
    // Completed tasks over the time from the first push to the last finding
    // (without the drain's polling or the shutdown).
    let first_push_at = pushed.first().and_then(|t| pushed_at.get(t)).copied();
    let busy_s = match (first_push_at, last_finding_at) {
        (Some(a), Some(b)) if b > a => (b - a).num_microseconds().unwrap_or(0) as f64 / 1e6,
        _ => work_secs,
    };
    let failed_reported = pushed.iter().filter(|t| failed.contains(t)).count() as u64 - both;
    // Latency: the finding's time minus the task's (pushed) time.
    latencies.sort_by(f64::total_cmp);
    let lat = latencies;
    let findings_indexed = bus.count_findings().await?;
    let raw_written_n = raw_written.load(Ordering::SeqCst);
    // The library's own count of keys that joined the index (adopting
    // again changes nothing, so each raw key counts once).
    // Raw keys in the index: adopted by this program's adopter or by
    // another one (`swarm librarian serve` runs one too).
    let raw_adopted = raw_in_index(&url, raw_written_n).await?;
    let stored_twice = findings_indexed.saturating_sub(completed + raw_adopted);

    // Ledger against the mock.
    let ledger = Accountant::new(
        Arc::clone(&bus),
        Arc::new(PriceTable::built_in()?),
        Tiers::default(),
        BudgetLimits::unlimited(),
    )?;
    let entries = ledger.ledger().entries().await?;
    let mut ledger_by_worker: HashMap<String, u64> = HashMap::new();
    for e in &entries.entries {
        let who = e.worker.as_ref().map(|w| w.to_string()).unwrap_or_default();
        *ledger_by_worker.entry(who).or_default() += e.usage.input_tokens + e.usage.output_tokens;
    }
    let mock_by_key = stats.usage_by_key.lock().unwrap().clone();
    let f = fleet.lock().unwrap();
    let killed: HashSet<&String> = f.killed.iter().collect();
    let (mut ledger_ok, mut mock_ok, mut ledger_killed, mut mock_killed) = (0, 0, 0, 0);
    for id in &f.started {
        let l = ledger_by_worker.get(id).copied().unwrap_or(0);
        let m = mock_by_key.get(&format!("soak-{id}")).copied().unwrap_or(0);
        if killed.contains(id) {
            ledger_killed += l;
            mock_killed += m;
        } else {
            ledger_ok += l;
            mock_ok += m;
        }
    }
    let unknown_ledger: u64 = ledger_by_worker
        .iter()
        .filter(|(k, _)| !f.started.contains(k))
        .map(|(_, v)| v)
        .sum();
    let ledger_equal = ledger_ok == mock_ok && unknown_ledger == 0;

    let (used_memory, mut peak) = {
        let s = server.lock().unwrap();
        (
            redis_info_field(&s, "memory", "used_memory"),
            f.peak_rss_kb.clone(),
        )
    };
    let redis_pid_now = redis_info_field(&server.lock().unwrap(), "server", "process_id") as u32;
    if let Some(kb) = vm_hwm_kb(redis_pid_now) {
        peak.insert(
            format!("redis-server (pid {redis_pid_now}, after restart)"),
            kb,
        );
    }
    if let Some(kb) = vm_hwm_kb(std::process::id()) {
        peak.insert("soak coordinator + mocks".into(), kb);
    }
    if let Some(l) = &lib {
        peak.insert("librarian".into(), l.librarian_peak_rss_kb);
    }
    let n_lib = |f: fn(&librarian::LibrarianReport) -> u64| lib.as_ref().map_or(0, f);
    let quota_never_over = lib.as_ref().is_none_or(|l| l.quota_never_over);
    let lib_unanswered = n_lib(|l| l.queries_unanswered);
    let lib_failed_other = n_lib(|l| l.queries_failed_other);
    let ok = lost == 0
        && stored_twice == 0
        && both == 0
        && ledger_equal
        && raw_adopted == raw_written_n
        && quota_never_over
        && lib_unanswered == 0
        && lib_failed_other == 0;
    let growth = memory_growth(&memory_samples);
    let report = SoakReport {
        settings: settings.clone(),
        duration_s: work_secs,
        tasks_pushed: pushed.len() as u64,
        tasks_completed: completed,
        tasks_failed_reported: failed_reported,
        tasks_lost: lost,
        tasks_completed_and_failed: both,
        findings_indexed,
        findings_stored_twice: stored_twice,
        raw_findings_written: raw_written_n,
        raw_findings_adopted: raw_adopted,
        raw_findings_adopted_by_this_adopter: adopted_live,
        raw_findings_adopted_by_final_reindex: adopted_at_end,
        ledger_tokens: ledger_ok,
        mock_usage_tokens: mock_ok,
        ledger_equal,
        ledger_tokens_all_workers: ledger_ok + ledger_killed + unknown_ledger,
        mock_usage_tokens_all_workers: mock_by_key.values().sum(),
        ledger_tokens_of_killed_workers: ledger_killed,
        mock_usage_tokens_of_killed_workers: mock_killed,
        ledger_entries: entries.entries.len() as u64,
        mock_requests: stats.requests.load(Ordering::Relaxed),
        mock_messages_served: stats.served.load(Ordering::Relaxed),
        injected_429: stats.injected_429.load(Ordering::Relaxed),
        injected_529: stats.injected_529.load(Ordering::Relaxed),
        injected_midstream_errors: stats.injected_midstream.load(Ordering::Relaxed),
        workers_killed: f.killed.len(),
        workers_exited_by_themselves: f.exited.clone(),
        worker_processes_started: f.started.len(),
        redis_restarts: restarts.load(Ordering::SeqCst) as u32,
        connection_faults_injected: proxy.injected(),
        findings_per_s: (completed + raw_adopted) as f64 / work_secs,
        tasks_per_s: completed as f64 / work_secs,
        tasks_per_s_busy: completed as f64 / busy_s.max(1e-3),
        busy_s,
        task_latency_p50_ms: percentile(&lat, 0.5),
        task_latency_p99_ms: percentile(&lat, 0.99),
        redis_used_memory_bytes: used_memory,
        redis_memory_per_finding_bytes: used_memory as f64 / findings_indexed.max(1) as f64,
        redis_memory_growth_per_finding_bytes: growth,
        redis_memory_samples: memory_samples,
        librarian_queries_asked: n_lib(|l| l.queries_asked),
        librarian_queries_answered: n_lib(|l| l.queries_answered),
        librarian_queries_failed_over: n_lib(|l| l.queries_failed_over),
        librarian_queries_exhausted: n_lib(|l| l.queries_exhausted),
        librarian_queries_failed_other: lib_failed_other,
        librarian_queries_unanswered: lib_unanswered,
        quota_never_over,
        librarian: lib,
        peak_rss_kb: peak,
        failure_kinds: failure_kinds(&failures),
        // Every kind but 429 in full (up to 20), and two 429s.
        failure_reports_sample: failures
            .iter()
            .filter(|f| !f.report.contains("HTTP 429"))
            .take(20)
            .chain(
                failures
                    .iter()
                    .filter(|f| f.report.contains("HTTP 429"))
                    .take(2),
            )
            .map(|f| f.report.clone())
            .collect(),
        ok,
    };
    drop(f);
    let json = serde_json::to_string_pretty(&report)?;
    println!("{json}");
    if let Some(p) = report_path {
        write_report(&p, &json)?;
    }
    println!(
        "soak {}: pushed {}, completed {}, failed and reported {}, LOST {}, stored twice {}, ledger {} vs mock {} ({})",
        if ok { "PASSED" } else { "FAILED" },
        report.tasks_pushed,
        report.tasks_completed,
        report.tasks_failed_reported,
        report.tasks_lost,
        report.findings_stored_twice,
        report.ledger_tokens,
        report.mock_usage_tokens,
        if ledger_equal { "equal" } else { "NOT EQUAL" }
    );
    if report.librarian.is_some() {
        println!(
            "librarian: asked {}, answered {} ({} after a failover), exhausted {}, failed otherwise {}, UNANSWERED {}; quota {}; Redis memory {} per finding",
            report.librarian_queries_asked,
            report.librarian_queries_answered,
            report.librarian_queries_failed_over,
            report.librarian_queries_exhausted,
            report.librarian_queries_failed_other,
            report.librarian_queries_unanswered,
            if report.quota_never_over {
                "never over"
            } else {
                "OVER"
            },
            report
                .redis_memory_growth_per_finding_bytes
                .map_or_else(|| "n/a".to_owned(), |b| format!("+{b:.0} B")),
        );
    }
    drop(fleet);
    drop(server);
    Ok(ok)
}

/// Saturated push: the next worker (round-robin from `rr`) with fewer than
/// `depth` tasks queued, waiting while every queue is full; `None` once
/// `until` has passed.
async fn saturated_target(
    bus: &RedisBus,
    fleet: &Mutex<Fleet>,
    rr: &mut usize,
    depth: u64,
    until: Instant,
) -> Option<WorkerId> {
    loop {
        if Instant::now() >= until {
            return None;
        }
        let ids = fleet.lock().unwrap().ids();
        for _ in 0..ids.len() {
            *rr = (*rr + 1) % ids.len();
            let w = &ids[*rr];
            match bus.queued_tasks(w).await {
                Ok(n) if n < depth => return Some(w.clone()),
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Failure reports counted by what stopped the task.
fn failure_kinds(failures: &[swarmbus_core::model::TaskFailure]) -> BTreeMap<String, u64> {
    let mut kinds = BTreeMap::new();
    for f in failures {
        let r = f.report.to_ascii_lowercase();
        let kind = if r.contains("http 429") || r.contains("rate_limited") {
            "rate limited (429)"
        } else if r.contains("529") || r.contains("overloaded") {
            "overloaded (529 or stream error), retries exhausted"
        } else if r.contains("deliver") {
            "delivery limit"
        } else {
            "other"
        };
        *kinds.entry(kind.to_owned()).or_default() += 1;
    }
    kinds
}

fn write_report(path: &Path, json: &str) -> Result<(), AnyError> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, json)?;
    Ok(())
}
