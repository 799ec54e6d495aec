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

/// Row 4. Before: `swarm status --watch` exited 1 (`count_findings:
/// Connection refused`) when Redis went away for 3 s. Now it redraws with
/// the error and shows the status again once Redis is back.
#[test]
fn status_watch_redraws_through_a_three_second_outage() {
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
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        child.try_wait().unwrap().is_none(),
        "status --watch exited during the outage"
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
