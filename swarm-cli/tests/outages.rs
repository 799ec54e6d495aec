//! Issue 19: outages and bad data, tried as an operator would with the
//! built `swarm` against a real redis-server (each test names its row).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::Value;
use swarmbus_redis::testing::RedisServer;

fn swarm(url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_swarm"));
    cmd.env("REDIS_URL", url)
        .env_remove("SWARM_NAMESPACE")
        .env_remove("SWARM_SESSION")
        .env_remove("SWARM_WORKER")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("GEMINI_API_KEY_SHARD1")
        .stdin(Stdio::null());
    cmd
}

fn run(url: &str, args: &[&str]) -> Output {
    swarm(url).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

// ---- row 2: bad values never blank the status ----

/// Row 2. Before: `swarm status` (block and `--json`) exited 1 with
/// `malformed value under cost:haiku: not a number: "banana"`; NaN/inf
/// printed `$NaN`/`$inf`; a LIST under `cost:haiku` read $0.
#[test]
fn bad_values_in_the_briefs_keys_never_blank_the_status() {
    let server = RedisServer::start();
    let url = server.url();
    server.cli(&["SET", "cost:sonnet", "0.5"]);
    server.cli(&["SET", "librarian:shard2:quota", "1400"]);
    // (key, how it is written, what the error must say)
    let cases: &[(&str, &[&str], &str)] = &[
        (
            "cost:haiku",
            &["SET", "cost:haiku", "banana"],
            "not a number",
        ),
        ("cost:haiku", &["SET", "cost:haiku", "NaN"], "not a finite"),
        (
            "cost:haiku",
            &["SET", "cost:haiku", "1e309"],
            "not a finite",
        ),
        ("cost:haiku", &["RPUSH", "cost:haiku", "1"], "wrong type"),
        (
            "librarian:shard1:quota",
            &["SET", "librarian:shard1:quota", "lots"],
            "not a number",
        ),
        (
            "librarian:shard1:quota",
            &["SET", "librarian:shard1:quota", "NaN"],
            "not a number",
        ),
        (
            "librarian:shard1:quota",
            &["SET", "librarian:shard1:quota", "1e309"],
            "not a number",
        ),
        (
            "context:active",
            &["SET", "context:active", "-5"],
            "not a number",
        ),
        (
            "context:active",
            &["SET", "context:active", "NaN"],
            "not a number",
        ),
    ];
    for (key, write, why) in cases {
        server.cli(&["DEL", key]);
        server.cli(write);
        let block = run(&url, &["status"]);
        let shown = text(&block);
        assert!(block.status.success(), "{write:?}: {shown}");
        assert!(
            !shown.contains("$NaN") && !shown.contains("$inf"),
            "{write:?}: {shown}"
        );
        assert!(
            shown.contains("Cost This Session: Sonnet $0.5000"),
            "{write:?}: {shown}"
        );
        assert!(shown.contains("Shard2:1400"), "{write:?}: {shown}");
        assert!(shown.contains(&format!("? {key}:")), "{write:?}: {shown}");
        if key.starts_with("cost:") {
            assert!(shown.contains("Haiku $?"), "{write:?}: {shown}");
            assert!(
                shown.contains("Token Efficiency: Haiku ?% / Sonnet ?%"),
                "{shown}"
            );
        }
        if key.starts_with("librarian:") {
            assert!(shown.contains("Shard1:?"), "{write:?}: {shown}");
        }

        let out = run(&url, &["status", "--json"]);
        assert!(out.status.success(), "{write:?}: {}", text(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let errors = v["errors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{v}");
        assert_eq!(errors[0]["key"], *key, "{v}");
        assert!(
            errors[0]["why"].as_str().unwrap().contains(why),
            "{write:?}: {v}"
        );
        assert_eq!(v["costs"][0]["usd"], 0.5, "{v}");
        assert_eq!(v["shards"][1]["quota"], 1400, "{v}");
        match *key {
            "cost:haiku" => {
                assert!(v["costs"][1]["usd"].is_null(), "{v}");
                assert!(v["efficiency"].is_null(), "{v}");
            }
            "context:active" => assert!(v["context_tokens"].is_null(), "{v}"),
            _ => assert!(v["shards"][0]["quota"].is_null(), "{v}"),
        }
        server.cli(&["DEL", key]);
    }
}

/// Row 2, MCP: before, `swarm_status` answered an error for `cost:haiku`
/// = `banana`; now the status with `null` and the `errors` list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_swarm_status_renders_around_a_bad_value() {
    let server = RedisServer::start();
    server.cli(&["SET", "cost:haiku", "banana"]);
    server.cli(&["SET", "cost:sonnet", "0.25"]);
    let url = server.url();
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_swarm")).configure(|c| {
        c.args(["mcp", "--offline"])
            .env("REDIS_URL", &url)
            .env_remove("SWARM_NAMESPACE")
            .stderr(Stdio::null());
    });
    let client = ().serve(TokioChildProcess::new(cmd).unwrap()).await.unwrap();
    let r = client
        .call_tool(CallToolRequestParams::new("swarm_status"))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let v = r.structured_content.clone().unwrap();
    let v = if v.get("status").is_some() {
        v["status"].clone()
    } else {
        v
    };
    assert!(v["costs"][1]["usd"].is_null(), "{v}");
    assert_eq!(v["costs"][0]["usd"], 0.25, "{v}");
    assert_eq!(v["errors"][0]["key"], "cost:haiku", "{v}");
    client.cancel().await.unwrap();
}

// ---- row 3: a plain-text halt:reason ----

/// Row 3. Before: a worker exited 1 (`malformed value under halt:reason`)
/// and `swarm resume` deleted the key and still exited 1.
#[test]
fn a_plain_text_halt_reason_is_a_halt_everywhere() {
    let server = RedisServer::start();
    let url = server.url();
    server.cli(&["SET", "halt:reason", "shard 3 failed"]);

    let worker = run(&url, &["worker", "run", "--id", "w1", "--idle-exit", "5"]);
    let shown = text(&worker);
    assert!(worker.status.success(), "{shown}");
    assert!(shown.contains("halted: shard 3 failed"), "{shown}");

    let status = run(&url, &["status"]);
    assert!(status.status.success(), "{}", text(&status));
    assert!(
        text(&status).contains("HALTED: shard 3 failed"),
        "{}",
        text(&status)
    );
    let json = run(&url, &["status", "--json"]);
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["halted"]["failed"], "shard 3 failed", "{v}");

    let resume = run(&url, &["resume"]);
    assert!(resume.status.success(), "{}", text(&resume));
    assert!(
        text(&resume).contains("was halted: shard 3 failed"),
        "{}",
        text(&resume)
    );
    assert_eq!(server.cli(&["EXISTS", "halt:reason"]).trim(), "0");
}

// ---- row 4: status --watch rides out an outage ----

/// Row 4 with an outage of `outage`: `swarm status --watch` draws the
/// status, redraws with the error while Redis is away (never exits), and
/// draws the status again once Redis is back.
fn status_watch_redraws_through(outage: Duration) {
    let mut server = RedisServer::start_persistent();
    let url = server.url();
    server.cli(&["SET", "cost:sonnet", "0.125"]);
    let mut child = swarm(&url)
        .args(["status", "--watch", "--interval", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |what: &str, within: Duration| -> bool {
        let end = Instant::now() + within;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(what) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    };
    assert!(
        wait_for("Sonnet $0.1250", Duration::from_secs(20)),
        "first block"
    );
    server.stop();
    assert!(
        wait_for("unavailable:", Duration::from_secs(30)),
        "the outage is shown"
    );
    std::thread::sleep(outage);
    assert!(
        child.try_wait().unwrap().is_none(),
        "status --watch exited during the outage"
    );
    // Still redrawing with the error at the end of the outage.
    assert!(
        wait_for("unavailable:", Duration::from_secs(30)),
        "the outage is still shown after {outage:?}"
    );
    server.start_again();
    assert!(
        wait_for("Sonnet $0.1250", Duration::from_secs(30)),
        "the status is drawn again after the outage"
    );
    assert!(child.try_wait().unwrap().is_none());
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Row 4. Before: `swarm status --watch` exited 1 (`count_findings:
/// Connection refused`) when Redis went away for 3 s. Now it redraws with
/// the error and shows the status again once Redis is back.
#[test]
fn status_watch_redraws_through_a_three_second_outage() {
    status_watch_redraws_through(Duration::from_secs(3));
}

/// Row 4, 30 s: the same through a long outage.
#[test]
fn status_watch_redraws_through_a_thirty_second_outage() {
    status_watch_redraws_through(Duration::from_secs(30));
}

// ---- row 1: a worker rides out Redis outages ----

async fn redis_bus(url: &str) -> swarmbus_redis::RedisBus {
    swarmbus_redis::RedisBus::connect(swarmbus_redis::RedisConfig::from_url(url).unwrap())
        .await
        .unwrap()
}

fn push_tasks(url: &str, worker: &str, n: usize) {
    for i in 0..n {
        let out = run(
            url,
            &[
                "task",
                "push",
                "--worker",
                worker,
                "--title",
                &format!("count {i}"),
                "--kind",
                "count",
                "--payload",
                "{}",
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
    }
}

fn finding_titles(server: &RedisServer) -> Vec<String> {
    let url = server.url();
    let out = run(&url, &["findings", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = v
        .as_array()
        .cloned()
        .or_else(|| v["findings"].as_array().cloned())
        .unwrap();
    let mut titles: Vec<String> = list
        .iter()
        .map(|f| {
            f["task"]
                .as_str()
                .or(f["title"].as_str())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    titles.sort();
    titles
}

/// Row 1 with an outage of `outage`: tasks are queued before and during
/// it; the worker rides it out, every task is done exactly once, nothing
/// stays queued or in flight, and the worker exits 0 when idle.
fn a_worker_rides_out(outage: Duration) {
    let mut server = RedisServer::start_persistent();
    let url = server.url();
    push_tasks(&url, "w1", 4);
    let worker = swarm(&url)
        .args(["worker", "run", "--id", "w1", "--idle-exit", "8"])
        .env("RUST_LOG", "swarmbus_redis=info,warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let it take the first tasks, then cut Redis.
    std::thread::sleep(Duration::from_millis(300));
    server.stop();
    std::thread::sleep(outage);
    server.start_again();
    push_tasks(&url, "w1", 2);
    let out = worker.wait_with_output().unwrap();
    let shown = text(&out);
    // Before: exit 1 after ~5 s, `backend error (redis): fail_task:
    // Connection refused`.
    assert!(out.status.success(), "{shown}");
    let warnings = shown.matches("redis unreachable").count();
    assert!(
        warnings <= 1,
        "one warning per outage, got {warnings}: {shown}"
    );
    let titles = finding_titles(&server);
    // One finding per task: none lost, none done twice.
    let dedup: std::collections::BTreeSet<&String> = titles.iter().collect();
    assert_eq!(dedup.len(), titles.len(), "a task done twice: {titles:?}");
    assert_eq!(titles.len(), 6, "a task lost: {titles:?} {shown}");
    assert_eq!(
        server.cli(&["LLEN", "swarm:tasks:failed"]).trim(),
        "0",
        "{shown}"
    );
    assert_eq!(server.cli(&["LLEN", "worker:tasks:w1"]).trim(), "0");
    assert_eq!(server.cli(&["LLEN", "swarm:tasks:inflight:w1"]).trim(), "0");
}

#[test]
fn a_worker_rides_out_a_three_second_outage() {
    a_worker_rides_out(Duration::from_secs(3));
}

/// The give-up is configurable: `--redis-give-up 1` under a 3 s outage
/// ends the worker with exit 1 naming the failure (the old behaviour, on
/// request).
#[test]
fn a_worker_told_to_give_up_stops_during_the_outage() {
    let mut server = RedisServer::start();
    let url = server.url();
    let worker = swarm(&url)
        .args([
            "--redis-give-up",
            "1",
            "worker",
            "run",
            "--id",
            "w1",
            "--idle-exit",
            "20",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    server.stop();
    let out = worker.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("redis"), "{}", text(&out));
}

#[test]
fn a_worker_rides_out_a_thirty_second_outage() {
    a_worker_rides_out(Duration::from_secs(30));
}

/// Row 1, restart: before, a worker restarted under the same id left the
/// task an earlier run had in flight in `swarm:tasks:inflight:w1` forever
/// (a live worker never reclaims its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_restarted_under_its_id_takes_back_its_in_flight_task() {
    use swarmbus_core::{TaskQueue, WorkerId};
    let server = RedisServer::start();
    let url = server.url();
    push_tasks(&url, "w1", 2);
    // An earlier run claimed one and died.
    let bus = redis_bus(&url).await;
    let w1 = WorkerId::new("w1").unwrap();
    let claimed = bus
        .claim_task(&w1, Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(server.cli(&["LLEN", "swarm:tasks:inflight:w1"]).trim(), "1");
    let out = tokio::task::spawn_blocking(move || {
        run(&url, &["worker", "run", "--id", "w1", "--idle-exit", "3"])
    })
    .await
    .unwrap();
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("took back 1 task"), "{shown}");
    let _ = claimed;
    assert_eq!(server.cli(&["LLEN", "swarm:tasks:inflight:w1"]).trim(), "0");
    assert_eq!(server.cli(&["LLEN", "worker:tasks:w1"]).trim(), "0");
    assert_eq!(finding_titles(&server).len(), 2, "{shown}");
}

// ---- row 8: MCP answers every request it can identify ----

/// Row 8, on the real server over its stdio. Before: no answer at all to
/// the first three (the client waited forever), and -32601 "method not
/// found" to `arguments` as a string.
#[test]
fn mcp_answers_every_line_it_can_identify() {
    use std::io::Write;
    let server = RedisServer::start();
    let mut child = swarm(&server.url())
        .args(["mcp", "--offline"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && tx.send(v).is_err()
            {
                break;
            }
        }
    });
    let mut send = |bytes: &[u8]| {
        stdin.write_all(bytes).unwrap();
        stdin.write_all(b"\n").unwrap();
        stdin.flush().unwrap();
    };
    let answer_to = |id: Value| -> Value {
        loop {
            let v = rx
                .recv_timeout(Duration::from_secs(20))
                .unwrap_or_else(|_| panic!("no answer to id {id}"));
            if v["id"] == id {
                return v;
            }
        }
    };
    send(br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#);
    assert!(answer_to(serde_json::json!(1))["result"].is_object());
    send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);

    // Invalid UTF-8 inside a string.
    send(b"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"put_finding\",\"arguments\":{\"title\":\"\xff\xfe\"}}}");
    assert_eq!(answer_to(serde_json::json!(2))["error"]["code"], -32700);
    // Nested 10,000 deep.
    let deep = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{{\"name\":\"swarm_status\",\"arguments\":{{\"x\":{}{}}}}}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    send(deep.as_bytes());
    assert_eq!(answer_to(serde_json::json!(3))["error"]["code"], -32700);
    // A line over 16 MiB.
    let big = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":\"big\",\"method\":\"tools/call\",\"params\":{{\"name\":\"put_finding\",\"arguments\":{{\"title\":\"t\",\"body\":\"{}\"}}}}}}",
        "a".repeat(16 * 1024 * 1024 + 10)
    );
    send(big.as_bytes());
    let a = answer_to(serde_json::json!("big"));
    assert_eq!(a["error"]["code"], -32600, "{a}");
    assert!(
        a["error"]["message"]
            .as_str()
            .unwrap()
            .contains("over the limit"),
        "{a}"
    );
    // `arguments` as a string.
    send(br#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"swarm_status","arguments":"{}"}}"#);
    let a = answer_to(serde_json::json!(5));
    assert_eq!(a["error"]["code"], -32602, "{a}");
    // The session still serves.
    send(br#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"swarm_status","arguments":{}}}"#);
    assert!(answer_to(serde_json::json!(6))["result"].is_object());
    drop(stdin);
    let _ = child.wait();
}

// ---- `swarm librarian serve` rides out Redis outages ----

/// The shard key the librarian tests give the mock.
const SHARD_KEY: &str = "test-outage-shard-1";
/// The prices and model lifecycle of a fixed day, whatever day this runs.
const NOW: &str = "2026-12-02T09:00:00Z";

/// Collects a child's pipe on a thread (so a chatty child never blocks on
/// a full pipe); the handle gives the text once the pipe closes.
fn drain(pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut pipe = pipe;
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut pipe, &mut text);
        text
    })
}

/// Polls `f` every 100 ms until it gives `Some`, for at most `within`.
fn within<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `swarm librarian ask --via-bus` of `question`, as JSON.
fn ask_via_bus(url: &str, question: &str) -> Value {
    let out = run(
        url,
        &["librarian", "ask", "--via-bus", "60", "--json", question],
    );
    assert!(out.status.success(), "{question}: {}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `swarm librarian serve` (Gemini shard pool on a mock that takes 2 s to
/// answer) under an outage of `outage`: a question answered before it, one
/// whose Gemini call is in flight when Redis goes, one asked right after
/// Redis is back. Every question gets exactly one answer, the daemon lives
/// through it, the mock served exactly one request per question, and the
/// shard's quota ledger counts exactly the requests the mock served.
fn a_librarian_rides_out(outage: Duration) {
    use swarmbus_core::bus::{ArchiveDesk, QuotaLedger};
    use swarmbus_core::keys::ShardId;
    use swarmbus_core::quota::QuotaLimits;
    use swarmbus_core::{ArchiveQuery, FindingFilter, ResponseStatus};
    use wiremock::matchers::{header, method};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut server = RedisServer::start_persistent();
    let url = server.url();
    let put = run(
        &url,
        &[
            "findings",
            "put",
            "--json",
            "--title",
            "cache",
            "--body",
            "cache reads are 10 % of input",
        ],
    );
    assert!(put.status.success(), "{}", text(&put));
    let put: Value = serde_json::from_slice(&put.stdout).unwrap();
    let id = put["id"].as_str().unwrap().to_owned();

    let gemini = rt.block_on(MockServer::start());
    let answer = serde_json::json!({"answer": "cache reads are 10 % of input", "citations": [id]});
    rt.block_on(
        Mock::given(method("POST"))
            .and(header("x-goog-api-key", SHARD_KEY))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({
                        "candidates": [{"content": {"parts": [{"text": answer.to_string()}], "role": "model"}, "finishReason": "STOP"}],
                        "usageMetadata": {"promptTokenCount": 300, "candidatesTokenCount": 20, "totalTokenCount": 320}
                    }))
                    .set_delay(Duration::from_secs(2)),
            )
            .mount(&gemini),
    );
    let served = || rt.block_on(gemini.received_requests()).unwrap_or_default();

    let mut daemon = swarm(&url);
    // Only the mock's shard: no Gemini setting of the environment leaks in.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("GEMINI_") {
            daemon.env_remove(k);
        }
    }
    let mut daemon = daemon
        .env("GEMINI_BASE_URL", gemini.uri())
        .env("GEMINI_API_KEY_SHARD1", SHARD_KEY)
        .env("RUST_LOG", "swarmbus_redis=info,warn")
        .args(["--now", NOW, "librarian", "serve"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = drain(daemon.stderr.take().unwrap());

    // 1. Before the outage, through the CLI.
    let q1 = "what share of input are cache reads, before?";
    let first = ask_via_bus(&url, q1);
    assert_eq!(first["status"], "ok", "{first}");
    assert_eq!(first["citations"][0], id.as_str(), "{first}");

    // 2. In flight: asked on the bus; Redis goes while the mock holds the
    // Gemini call.
    let q2 = "what share of input are cache reads, during?";
    let in_flight = ArchiveQuery::new(q2, FindingFilter::all()).asked_by("outage-test");
    rt.block_on(async { redis_bus(&url).await.ask(&in_flight).await.unwrap() });
    assert!(
        within(Duration::from_secs(30), || (served().len() == 2)
            .then_some(()))
        .is_some(),
        "the second question never reached the mock"
    );
    server.stop();
    std::thread::sleep(outage);
    assert!(
        daemon.try_wait().unwrap().is_none(),
        "librarian serve exited during the outage"
    );
    server.start_again();

    // 3. Right after Redis is back.
    let q3 = "what share of input are cache reads, after?";
    let third = ask_via_bus(&url, q3);
    assert_eq!(third["status"], "ok", "{third}");

    let bus = rt.block_on(redis_bus(&url));
    let second = within(Duration::from_secs(60), || {
        rt.block_on(bus.get_response(in_flight.id)).unwrap()
    })
    .expect("the question in flight during the outage was never answered");
    assert_eq!(second.status, ResponseStatus::Ok, "{second:?}");
    assert_eq!(second.citations.len(), 1, "{second:?}");

    assert!(
        daemon.try_wait().unwrap().is_none(),
        "librarian serve exited after the outage"
    );
    // One Gemini request per question: none lost, none sent twice.
    let requests = served();
    let bodies: Vec<String> = requests
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    for q in [q1, q2, q3] {
        let n = bodies.iter().filter(|b| b.contains(q)).count();
        assert_eq!(n, 1, "{q:?} sent to Gemini {n} times");
    }
    assert_eq!(requests.len(), 3);
    // The quota ledger counts what the mock served.
    let now = chrono::DateTime::parse_from_rfc3339(NOW)
        .unwrap()
        .with_timezone(&chrono::Utc)
        + chrono::Duration::minutes(10);
    let states = rt
        .block_on(bus.shard_states(&[ShardId::new(1).unwrap()], QuotaLimits::free_tier(), now))
        .unwrap();
    assert_eq!(
        u64::from(states[0].used_today),
        requests.len() as u64,
        "{states:?}"
    );
    // Nothing left queued.
    assert_eq!(server.cli(&["LLEN", "swarm:queries:pending"]).trim(), "0");

    // Stopped as an operator would (Ctrl-C): its tally is one answer each.
    let _ = Command::new("kill")
        .args(["-INT", &daemon.id().to_string()])
        .status();
    let stopped = within(Duration::from_secs(20), || daemon.try_wait().unwrap());
    if stopped.is_none() {
        let _ = daemon.kill();
    }
    let _ = daemon.wait();
    let log = log.join().unwrap();
    assert!(stopped.is_some_and(|s| s.success()), "{stopped:?}: {log}");
    assert!(log.contains("answered: 3, failed: 0"), "{log}");
    // One outage, said once per bus (the daemon's and its adopter's): an
    // idle blocking connection from before the outage is not found dead
    // after it and taken for a second one.
    let warned = log.matches("redis unreachable").count();
    assert!((1..=2).contains(&warned), "{warned} outage warnings: {log}");
}

#[test]
fn librarian_serve_rides_out_a_three_second_outage() {
    a_librarian_rides_out(Duration::from_secs(3));
}

#[test]
fn librarian_serve_rides_out_a_thirty_second_outage() {
    a_librarian_rides_out(Duration::from_secs(30));
}

// ---- `swarm mcp` rides out Redis outages ----

/// One MCP tool call; a protocol error (no answer) fails the test.
async fn mcp_call(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    tool: &'static str,
    args: Value,
) -> rmcp::model::CallToolResult {
    let Value::Object(map) = args else {
        panic!("arguments must be an object")
    };
    client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(map))
        .await
        .unwrap_or_else(|e| panic!("{tool}: protocol error {e}"))
}

fn tool_text(r: &rmcp::model::CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How many findings `search_findings` finds for `query`.
async fn mcp_found(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    query: &str,
) -> usize {
    let r = mcp_call(
        client,
        "search_findings",
        serde_json::json!({ "query": query }),
    )
    .await;
    assert_ne!(r.is_error, Some(true), "{}", tool_text(&r));
    let page = r.structured_content.unwrap();
    page["findings"].as_array().map_or(0, Vec::len)
}

/// One `swarm mcp` session through an outage of `outage`: a `put_finding`
/// issued just as Redis goes is retried (if it failed) after, and stored
/// exactly once; every call made while Redis is down is a tool error naming
/// the URL; once Redis is back the same session (same server process)
/// stores and reads again.
async fn mcp_rides_out(outage: Duration) {
    let mut server = RedisServer::start_persistent();
    let url = server.url();
    let named = format!("127.0.0.1:{}", server.port);
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_swarm")).configure(|c| {
        c.args(["mcp", "--offline"])
            .env("REDIS_URL", &url)
            .env_remove("SWARM_NAMESPACE")
            .stderr(Stdio::null());
    });
    let client = std::sync::Arc::new(
        ().serve(TokioChildProcess::new(cmd).unwrap())
            .await
            .unwrap(),
    );
    let before = mcp_call(
        &client,
        "put_finding",
        serde_json::json!({ "title": "markerbefore stored before the outage" }),
    )
    .await;
    assert_ne!(before.is_error, Some(true), "{}", tool_text(&before));

    // Issued just before the stop: in flight while Redis goes.
    let at_stop_args =
        serde_json::json!({ "title": "markeratstop issued as Redis went away", "body": "once" });
    let at_stop = {
        let client = std::sync::Arc::clone(&client);
        let args = at_stop_args.clone();
        tokio::spawn(async move { mcp_call(&client, "put_finding", args).await })
    };
    let mut server = tokio::task::spawn_blocking(move || {
        server.stop();
        server
    })
    .await
    .unwrap();
    let down_since = Instant::now();
    let at_stop = at_stop.await.unwrap();

    // Calls while Redis is down (each returns before it comes back).
    let mut during = 0;
    while during == 0 || down_since.elapsed() < outage {
        for (tool, args) in [
            (
                "put_finding",
                serde_json::json!({ "title": "markerduring refused while Redis is down" }),
            ),
            ("swarm_status", serde_json::json!({})),
            (
                "search_findings",
                serde_json::json!({ "query": "markerbefore" }),
            ),
        ] {
            let r = mcp_call(&client, tool, args).await;
            let said = tool_text(&r);
            assert_eq!(r.is_error, Some(true), "{tool} during the outage: {said}");
            assert!(
                said.contains(&named),
                "{tool} does not name {named}: {said}"
            );
            during += 1;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let server = tokio::task::spawn_blocking(move || {
        server.start_again();
        server
    })
    .await
    .unwrap();

    // The same session stores and reads again (bounded by a timeout).
    let end = Instant::now() + Duration::from_secs(20);
    let after = loop {
        let r = mcp_call(
            &client,
            "put_finding",
            serde_json::json!({ "title": "markerafter stored after the outage" }),
        )
        .await;
        if r.is_error != Some(true) {
            break r;
        }
        assert!(
            Instant::now() < end,
            "the session does not store again: {}",
            tool_text(&r)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(after.structured_content.is_some());
    // The client retries the put it was not told was stored.
    if at_stop.is_error == Some(true) {
        let again = mcp_call(&client, "put_finding", at_stop_args).await;
        assert_ne!(again.is_error, Some(true), "{}", tool_text(&again));
    }
    assert_eq!(mcp_found(&client, "markeratstop").await, 1, "stored once");
    assert_eq!(mcp_found(&client, "markerbefore").await, 1);
    assert_eq!(mcp_found(&client, "markerafter").await, 1);
    assert_eq!(
        mcp_found(&client, "markerduring").await,
        0,
        "refused, not stored"
    );
    let status = mcp_call(&client, "swarm_status", serde_json::json!({})).await;
    assert_ne!(status.is_error, Some(true), "{}", tool_text(&status));
    // Stored for good, counted on the server itself (not through the
    // index the session searches).
    let stored = |marker: &str| {
        server
            .cli(&[
                "EVAL",
                "local n = 0 \
                 for _, k in ipairs(redis.call('KEYS', 'finding:*')) do \
                   if redis.call('TYPE', k).ok == 'string' \
                      and string.find(redis.call('GET', k), ARGV[1], 1, true) then n = n + 1 end \
                 end return n",
                "0",
                marker,
            ])
            .trim()
            .to_owned()
    };
    assert_eq!(stored("markeratstop"), "1");
    assert_eq!(stored("markerduring"), "0");
    eprintln!(
        "mcp outage {outage:?}: the put at the stop was {}",
        if at_stop.is_error == Some(true) {
            "refused, then retried"
        } else {
            "stored before Redis went"
        }
    );
    std::sync::Arc::into_inner(client)
        .unwrap()
        .cancel()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_rides_out_a_three_second_outage() {
    mcp_rides_out(Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_rides_out_a_thirty_second_outage() {
    mcp_rides_out(Duration::from_secs(30)).await;
}
