//! Soak: a swarm on a real, persistent redis-server under faults, for a
//! bounded time, then an exact account of every task (issue 12).
//!
//! What it starts (and stops again):
//! - a `redis-server` with `appendonly yes` on a free loopback port in a temp
//!   dir (`swarmbus_redis::testing`), restarted once mid-run;
//! - a mock Anthropic Messages server on loopback (wiremock,
//!   `soak/anthropic.rs`) answering streamed, recorded-shaped messages after
//!   a random latency, with 429 (`retry-after`), 529 and mid-stream `error`
//!   events at `--fault-rate`; it counts the usage of every message it
//!   served in full, per API key (one key per worker process);
//! - N worker processes: this program re-run as `soak worker --id …`, each
//!   the real `Worker` loop with `AgentWorker` on `AnthropicClient` (pointed
//!   at the mock) and the accountant as its usage recorder, on its own
//!   `RedisBus`. Every 30 s a random one is killed (SIGKILL) and a new one
//!   started; one that exits by itself is replaced too;
//! - a coordinator pushing M tasks evenly over the run, and a writer of raw
//!   `finding:<name>` keys with a plain redis client, adopted by the
//!   library's finding adopter;
//! - a mock Gemini API on loopback (wiremock, `soak/librarian.rs`) answering
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rand::Rng;
use serde::Serialize;
use swarmbus_agents::agent::AgentWorker;
use swarmbus_agents::runtime::{Worker, WorkerConfig, task_finding_id};
use swarmbus_agents::tools::{CommandAllowList, Toolbox, Workspace};
use swarmbus_anthropic::{AnthropicClient, ClientConfig};
use swarmbus_core::accounting::Meter;
use swarmbus_core::bus::{FindingStore, TaskQueue};
use swarmbus_core::{Bus, SessionId, Task, TaskId, WorkerId};
use swarmbus_cost::{Accountant, BudgetLimits, PriceTable, Tiers};
use swarmbus_redis::testing::{Fault, FaultProxy, RedisServer};
use swarmbus_redis::{FindingAdopter, RedisBus, RedisConfig};
use tokio::task::JoinHandle;
use wiremock::MockServer;

// Not `src/bin/<name>.rs`: that would be a binary of its own.
#[path = "soak/anthropic.rs"]
mod anthropic;
#[path = "soak/check.rs"]
mod check;
#[path = "soak/fleet.rs"]
mod fleet;
#[path = "soak/librarian.rs"]
mod librarian;

use anthropic::MockStats;
use check::{check, percentile, print_summary, write_report};
use fleet::Fleet;
use librarian::LibrarianSettings;

type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// Locks `m`, also after a thread panicked holding it: what it guards
/// (counters, lists, child processes) stays meaningful.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

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

/// The run's settings and the report path from the command line (exits with status 2 on an unknown argument).
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

/// A bus configuration for `url` that rides out a Redis restart.
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
    let meter: Arc<dyn Meter> = Arc::new(accountant);
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
    .meter(meter);
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

/// `field` of `INFO section` (0 when missing).
async fn redis_info(url: &str, section: &str, field: &str) -> Result<u64, AnyError> {
    let client = redis::Client::open(url)?;
    let mut c = client.get_multiplexed_async_connection().await?;
    let info: String = redis::cmd("INFO").arg(section).query_async(&mut c).await?;
    Ok(info_field(&info, field))
}

/// `field` of an `INFO` answer (0 when missing).
fn info_field(info: &str, field: &str) -> u64 {
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
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
    client: redis::Client,
    started: Instant,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> Vec<MemorySample> {
    let mut samples = Vec::new();
    loop {
        // Redis may be restarting: that sample is skipped.
        if let Ok(mut c) = client.get_multiplexed_async_connection().await {
            let info: redis::RedisResult<String> =
                redis::cmd("INFO").arg("memory").query_async(&mut c).await;
            if let (Ok(info), Ok(findings)) = (info, bus.count_findings().await) {
                let used_memory = info_field(&info, "used_memory");
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

// ------------------------------------------------------------------- run --

/// A run from start to report: setup, load under faults, drain, shutdown,
/// checks. `Ok(false)` when a check failed.
async fn run(settings: Settings, report_path: Option<PathBuf>) -> Result<bool, AnyError> {
    let started = Instant::now();
    println!("soak: {settings:?}");
    let mut rig = setup(&settings, started).await?;
    let push_end = started + Duration::from_secs(settings.seconds);
    let bg = start_background(&rig, &settings, push_end)?;
    let pushed = push_tasks(&rig, &settings, &bg, push_end).await?;
    let push_secs = started.elapsed().as_secs_f64();
    println!(
        "[{push_secs:>5.1}s] all {} tasks pushed; draining",
        pushed.ids.len()
    );
    drain(&rig, &settings, &bg, &pushed).await;
    let work_secs = started.elapsed().as_secs_f64();
    let stopped = shut_down(&mut rig, bg).await?;
    let report = check(&rig, &settings, &pushed, stopped, work_secs).await?;
    let json = serde_json::to_string_pretty(&report)?;
    println!("{json}");
    if let Some(p) = report_path {
        write_report(&p, &json)?;
    }
    print_summary(&report);
    Ok(report.ok)
}

/// Everything a run starts. Dropped in field order: the workers go first,
/// Redis and the temp dir last.
struct Rig {
    started: Instant,
    fleet: Arc<Mutex<Fleet>>,
    /// The mock Gemini and the librarian daemon (`None` with
    /// `--no-librarian`, or once accounted for).
    librarian: Option<LibrarianRig>,
    bus: Arc<RedisBus>,
    /// `None` once stopped.
    adopter: Option<FindingAdopter>,
    proxy: Arc<FaultProxy>,
    /// The mock Anthropic server (`None` once stopped) and what it served.
    anthropic: Option<MockServer>,
    stats: Arc<MockStats>,
    url: String,
    server: Arc<Mutex<RedisServer>>,
    _dir: tempfile::TempDir,
}

/// The librarian part of a [`Rig`].
struct LibrarianRig {
    _server: MockServer,
    mock: Arc<librarian::GeminiMock>,
    process: librarian::LibrarianProc,
}

/// Setup: redis-server (append-only) and the fault proxy in front of it,
/// the mock Anthropic server, the mock Gemini with the librarian daemon,
/// the coordinator's bus with its finding adopter, and the worker fleet.
async fn setup(settings: &Settings, started: Instant) -> Result<Rig, AnyError> {
    let dir = tempfile::tempdir()?;
    let server = RedisServer::start_with(&[
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
    ]);
    let url = server.url();
    let redis_pid = redis_info(&url, "server", "process_id").await?;
    println!("redis-server (appendonly yes) at {url}, pid {redis_pid}");

    // The workers reach Redis through the fault proxy, which cuts one of
    // their connections every `cut_every_s` (the coordinator connects
    // directly).
    let proxy = Arc::new(FaultProxy::start(server.port).await);
    println!("fault proxy for the workers at {}", proxy.url());

    let (anthropic, stats) = anthropic::start(settings.fault_rate).await?;
    let mock_url = anthropic.uri();
    println!(
        "mock Anthropic at {mock_url}, fault rate {}",
        settings.fault_rate
    );

    let exe = match &settings.worker_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    let librarian = match &settings.librarian {
        Some(l) => Some(start_librarian(settings, l, &exe, &url, dir.path()).await?),
        None => None,
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
    Ok(Rig {
        started,
        fleet: Arc::new(Mutex::new(fleet)),
        librarian,
        bus,
        adopter: Some(adopter),
        proxy,
        anthropic: Some(anthropic),
        stats,
        url,
        server: Arc::new(Mutex::new(server)),
        _dir: dir,
    })
}

/// The librarian: a mock Gemini keeping Google's quotas per key, and the
/// daemon (its shard pool on `shards` fake keys) against it. It reaches
/// Redis directly (the restart still hits it).
async fn start_librarian(
    settings: &Settings,
    l: &LibrarianSettings,
    exe: &Path,
    url: &str,
    dir: &Path,
) -> Result<LibrarianRig, AnyError> {
    let (server, mock) = librarian::start_gemini(l.clone()).await?;
    let gemini_url = server.uri();
    let process = librarian::LibrarianProc::start(
        exe,
        settings.worker_bin.is_some(),
        url,
        &gemini_url,
        l,
        dir.join("librarian.log"),
    )?;
    println!(
        "mock Gemini at {gemini_url}; librarian with {} shards, {} a minute and {} a day each (shard 1 really {} a minute, shard 2 really {} a day), 503 rate {}",
        l.shards, l.rpm, l.rpd, l.shard1_real_rpm, l.shard2_real_rpd, l.rate_503
    );
    Ok(LibrarianRig {
        _server: server,
        mock,
        process,
    })
}

/// The tasks running beside the coordinator, and what they share with it.
struct Background {
    raw: JoinHandle<()>,
    raw_done: Arc<AtomicBool>,
    raw_written: Arc<AtomicU64>,
    /// Tasks pushed so far (the asking agents pick from them).
    pushed: Arc<Mutex<Vec<TaskId>>>,
    asker: Option<JoinHandle<librarian::Asked>>,
    librarian_done: Arc<AtomicBool>,
    sampler: JoinHandle<Vec<MemorySample>>,
    sampler_stop: Arc<AtomicBool>,
    chaos: JoinHandle<()>,
    chaos_stop: Arc<AtomicBool>,
    restarts: Arc<AtomicU64>,
}

/// Load and fault injection beside the coordinator: the raw finding
/// writer, the agents asking the librarian (from the first finished task
/// to the end of the pushing), the Redis memory sampler, and the chaos
/// loop.
fn start_background(
    rig: &Rig,
    settings: &Settings,
    push_end: Instant,
) -> Result<Background, AnyError> {
    let client = redis::Client::open(rig.url.as_str())?;
    let raw_done = Arc::new(AtomicBool::new(false));
    let raw_written = Arc::new(AtomicU64::new(0));
    let raw = tokio::spawn(write_raw_findings(
        client.clone(),
        settings.raw_findings,
        settings.seconds,
        Arc::clone(&raw_done),
        Arc::clone(&raw_written),
    ));
    let pushed: Arc<Mutex<Vec<TaskId>>> = Arc::new(Mutex::new(Vec::new()));
    let librarian_done = Arc::new(AtomicBool::new(settings.librarian.is_none()));
    let asker = settings.librarian.clone().map(|l| {
        tokio::spawn(librarian::ask_loop(
            Arc::clone(&rig.bus),
            Arc::clone(&pushed),
            l,
            push_end,
            Arc::clone(&librarian_done),
        ))
    });
    // Redis memory against the finding count, every `memory_sample_s`.
    let sampler_stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample_memory(
        Arc::clone(&rig.bus),
        client,
        rig.started,
        Duration::from_secs(settings.memory_sample_s),
        Arc::clone(&sampler_stop),
    ));
    let chaos_stop = Arc::new(AtomicBool::new(false));
    let restarts = Arc::new(AtomicU64::new(0));
    let chaos = tokio::spawn(chaos_loop(
        Chaos {
            fleet: Arc::clone(&rig.fleet),
            server: Arc::clone(&rig.server),
            proxy: Arc::clone(&rig.proxy),
            stop: Arc::clone(&chaos_stop),
            restarts: Arc::clone(&restarts),
            started: rig.started,
            push_end,
        },
        settings.clone(),
    ));
    Ok(Background {
        raw,
        raw_done,
        raw_written,
        pushed,
        asker,
        librarian_done,
        sampler,
        sampler_stop,
        chaos,
        chaos_stop,
        restarts,
    })
}

/// Raw findings around the library, with a plain redis client: `n` keys
/// `finding:soak-raw-<i>` evenly over `secs`.
async fn write_raw_findings(
    client: redis::Client,
    n: u64,
    secs: u64,
    done: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
) {
    let every = Duration::from_secs_f64(secs as f64 / n.max(1) as f64);
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
}

/// What the chaos loop acts on.
struct Chaos {
    fleet: Arc<Mutex<Fleet>>,
    server: Arc<Mutex<RedisServer>>,
    proxy: Arc<FaultProxy>,
    stop: Arc<AtomicBool>,
    restarts: Arc<AtomicU64>,
    started: Instant,
    push_end: Instant,
}

/// Chaos until stopped: kill a random worker every `kill_every_s` and cut
/// a worker connection every `cut_every_s` while tasks are pushed, restart
/// Redis once at 40% of the run, replace workers that exit by themselves.
async fn chaos_loop(c: Chaos, s: Settings) {
    let mut last_kill = Instant::now();
    let mut last_cut = Instant::now();
    let mut cuts = 0u64;
    let restart_at = c.started + Duration::from_secs_f64(s.seconds as f64 * 0.4);
    let mut restarted = !s.redis_restart;
    while !c.stop.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let pushing = Instant::now() < c.push_end;
        if pushing && last_kill.elapsed() >= Duration::from_secs(s.kill_every_s) {
            last_kill = Instant::now();
            kill_random_worker(&c.fleet, s.workers, c.started);
        }
        if s.cut_every_s > 0 && pushing && last_cut.elapsed() >= Duration::from_secs(s.cut_every_s)
        {
            last_cut = Instant::now();
            cuts += 1;
            // The next request of any kind on any worker connection:
            // alternately its reply is dropped after it ran, or it is cut
            // in half before it runs.
            let fault = if cuts.is_multiple_of(2) {
                Fault::DropReply
            } else {
                Fault::CutRequest
            };
            c.proxy.arm(fault, b"", 1);
        }
        if !restarted && Instant::now() >= restart_at {
            restarted = true;
            let server = Arc::clone(&c.server);
            let t0 = Instant::now();
            let _ = tokio::task::spawn_blocking(move || lock(&server).restart()).await;
            c.restarts.fetch_add(1, Ordering::SeqCst);
            println!(
                "[{:>5.1}s] restarted redis-server (down {:.2}s)",
                c.started.elapsed().as_secs_f64(),
                t0.elapsed().as_secs_f64()
            );
        }
        if let Err(e) = lock(&c.fleet).supervise() {
            eprintln!("cannot replace worker: {e}");
        }
    }
}

/// Kills one of the `workers` slots at random (SIGKILL) and starts a new
/// worker in it.
fn kill_random_worker(fleet: &Mutex<Fleet>, workers: usize, started: Instant) {
    let slot = rand::rng().random_range(0..workers.max(1));
    let mut f = lock(fleet);
    let Some(victim) = f.slots.get(slot).map(|(id, _)| id.clone()) else {
        return;
    };
    if let Err(e) = f.kill_one(slot) {
        eprintln!("cannot replace worker: {e}");
    }
    let now = f.slots.get(slot).map(|(id, _)| id.to_string());
    println!(
        "[{:>5.1}s] killed {victim} (SIGKILL), started {}",
        started.elapsed().as_secs_f64(),
        now.unwrap_or_default()
    );
}

/// The tasks the coordinator pushed, in order, with their times.
struct Pushed {
    ids: Vec<TaskId>,
    at: HashMap<TaskId, chrono::DateTime<chrono::Utc>>,
}

/// Load: the coordinator pushes M tasks evenly over the run, round-robin
/// over the workers alive now; saturated, to whichever worker has fewer
/// than `saturate_depth` queued, until the run's time is up.
async fn push_tasks(
    rig: &Rig,
    settings: &Settings,
    bg: &Background,
    push_end: Instant,
) -> Result<Pushed, AnyError> {
    let session = SessionId::new("soak")?;
    let mut pushed = Pushed {
        ids: Vec::with_capacity(settings.tasks.min(1 << 20) as usize),
        at: HashMap::new(),
    };
    let per_task = Duration::from_secs_f64(settings.seconds as f64 / settings.tasks.max(1) as f64);
    let mut next = Instant::now();
    let mut rr = 0usize;
    for i in 0..settings.tasks {
        let to = if settings.saturate {
            let target = saturated_target(
                &rig.bus,
                &rig.fleet,
                &mut rr,
                settings.saturate_depth,
                push_end,
            );
            match target.await {
                Some(w) => w,
                None => break,
            }
        } else {
            next += per_task;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                tokio::time::sleep(wait).await;
            }
            let ids = lock(&rig.fleet).ids();
            ids.get(i as usize % ids.len().max(1))
                .cloned()
                .ok_or("no worker to push to")?
        };
        let task = Task::new(
            session.clone(),
            "grep",
            format!("Soak task {i}: report one fact about the workspace."),
        );
        while let Err(e) = rig.bus.push_task(&to, &task).await {
            eprintln!("push failed ({e}); retrying");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        pushed.at.insert(task.id, task.created_at);
        pushed.ids.push(task.id);
        lock(&bg.pushed).push(task.id);
        if i % 1000 == 999 {
            println!(
                "[{:>5.1}s] pushed {}",
                rig.started.elapsed().as_secs_f64(),
                i + 1
            );
        }
    }
    Ok(pushed)
}

/// Drain: polls until every task has a finding or a failure report, the raw
/// writer is done and every archive query is accounted for, or the drain
/// time is up.
async fn drain(rig: &Rig, settings: &Settings, bg: &Background, pushed: &Pushed) {
    let bus = &rig.bus;
    let drain_end = Instant::now() + Duration::from_secs(settings.drain_s);
    let finding_ids: Vec<_> = pushed.ids.iter().map(|t| task_finding_id(*t)).collect();
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
            .zip(&pushed.ids)
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
            .ids
            .iter()
            .filter(|t| finished.contains(t) || failed.contains(t))
            .count();
        if accounted == pushed.ids.len()
            && bg.raw_done.load(Ordering::SeqCst)
            && bg.librarian_done.load(Ordering::SeqCst)
        {
            break;
        }
        if Instant::now() > drain_end {
            println!(
                "drain timed out with {} of {} accounted",
                accounted,
                pushed.ids.len()
            );
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// What the shutdown collected.
struct Stopped {
    memory_samples: Vec<MemorySample>,
    raw_written: u64,
    restarts: u64,
    /// The librarian's account (`None` without the librarian).
    librarian: Option<librarian::LibrarianReport>,
    /// Raw keys this program's adopter joined while running.
    adopted_live: u64,
    /// Raw keys the final reindex joined.
    adopted_at_end: u64,
}

/// Shutdown: stops the chaos, the raw writer, the sampler and the workers;
/// accounts for the librarian (the asking agents' fates, the mock's counts
/// per key, the ledger's) and stops it and the mock Gemini; adopts what the
/// adopter has not met yet; stops the mock Anthropic server.
async fn shut_down(rig: &mut Rig, bg: Background) -> Result<Stopped, AnyError> {
    bg.chaos_stop.store(true, Ordering::SeqCst);
    let _ = bg.chaos.await;
    let _ = bg.raw.await;
    bg.sampler_stop.store(true, Ordering::SeqCst);
    let memory_samples = bg.sampler.await.unwrap_or_default();
    lock(&rig.fleet).stop_all();
    let librarian = match (bg.asker, rig.librarian.take()) {
        (Some(asker), Some(l)) => {
            let asked = asker.await?;
            Some(librarian::account(&rig.bus, &l.mock, asked, l.process).await?)
        }
        _ => None,
    };
    let mut adopted_live = 0;
    if let Some(adopter) = rig.adopter.take() {
        adopted_live = adopter.adopted();
        adopter.stop().await;
    }
    let mut adopted_at_end = 0;
    let mut cursor = None;
    for _ in 0..10_000 {
        match rig.bus.reindex_findings(cursor, 2000).await {
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
    rig.anthropic = None;
    Ok(Stopped {
        memory_samples,
        raw_written: bg.raw_written.load(Ordering::SeqCst),
        restarts: bg.restarts.load(Ordering::SeqCst),
        librarian,
        adopted_live,
        adopted_at_end,
    })
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
        let ids = lock(fleet).ids();
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
