//! `swarm mcp` under a real MCP client: rmcp's client spawns the built
//! `swarm` binary over stdio (as Claude Code does after
//! `claude mcp add swarm -- swarm mcp`) against a real redis-server. Every
//! tool is listed and used, bad input is refused with `isError` and nothing
//! stored, and the session keeps serving afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::{BTreeSet, HashSet};

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};
use swarmbus_core::{FindingId, FindingStore, HaltSwitch, TaskQueue, WorkerId};
use swarmbus_redis::testing::RedisServer;
use swarmbus_redis::{RedisBus, RedisConfig};

type Client = RunningService<RoleClient, ()>;

const TOOLS: [&str; 15] = [
    "put_finding",
    "get_finding",
    "search_findings",
    "swarm_status",
    "ask_librarian",
    "push_task",
    "claim_task",
    "complete_task",
    "fail_task",
    "halt_swarm",
    "resume_swarm",
    "put_findings",
    "wait_for_findings",
    "update_finding",
    "delete_finding",
];

async fn connect(extra: &[&str], env: &[(&str, &str)]) -> Client {
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_swarm")).configure(|c| {
        c.args(extra)
            .arg("mcp")
            .arg("--offline")
            .env_remove("REDIS_URL")
            .env_remove("SWARM_NAMESPACE")
            .env_remove("GEMINI_API_KEY_SHARD1")
            .stderr(std::process::Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
    });
    let transport = TokioChildProcess::new(cmd).expect("spawn swarm mcp");
    ().serve(transport)
        .await
        .expect("MCP handshake with swarm mcp")
}

async fn call(client: &Client, tool: &'static str, args: Value) -> CallToolResult {
    let Value::Object(map) = args else {
        panic!("arguments must be an object")
    };
    client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(map))
        .await
        .unwrap_or_else(|e| panic!("{tool}: protocol error {e}"))
}

/// A successful call's JSON.
async fn ok(client: &Client, tool: &'static str, args: Value) -> Value {
    let r = call(client, tool, args).await;
    assert_ne!(r.is_error, Some(true), "{tool} failed: {:?}", text(&r));
    r.structured_content.clone().expect("structured content")
}

/// A refused call's message.
async fn refused(client: &Client, tool: &'static str, args: Value) -> String {
    let r = call(client, tool, args.clone()).await;
    assert_eq!(
        r.is_error,
        Some(true),
        "{tool} {args} was accepted: {:?}",
        text(&r)
    );
    let msg = text(&r);
    assert!(!msg.is_empty(), "{tool}: an error without a message");
    msg
}

fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn bus(server: &RedisServer) -> RedisBus {
    RedisBus::connect(RedisConfig::from_url(&server.url()).unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_is_listed_with_a_schema_and_a_description() {
    let server = RedisServer::start();
    let client = connect(&[], &[("REDIS_URL", &server.url())]).await;
    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|i| i.name.as_str()),
        Some("swarm")
    );
    assert!(info.capabilities.tools.is_some());
    let tools = client.list_all_tools().await.unwrap();
    let names: BTreeSet<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, TOOLS.into_iter().collect::<BTreeSet<_>>());
    for t in &tools {
        assert!(
            t.description.as_deref().is_some_and(|d| d.len() > 40),
            "{} has no usable description",
            t.name
        );
        assert_eq!(
            t.input_schema.get("type"),
            Some(&json!("object")),
            "{}",
            t.name
        );
    }
    let schema_of = |name: &str| {
        let t = tools.iter().find(|t| t.name == name).unwrap();
        Value::Object((*t.input_schema).clone())
    };
    let put = schema_of("put_finding");
    for field in ["title", "body", "tags", "session", "worker"] {
        assert!(
            put["properties"].get(field).is_some(),
            "put_finding.{field}"
        );
    }
    assert_eq!(put["required"], json!(["title"]));
    let search = schema_of("search_findings");
    for field in ["query", "tag", "session", "worker", "limit", "cursor"] {
        assert!(
            search["properties"].get(field).is_some(),
            "search_findings.{field}"
        );
    }
    assert!(
        schema_of("ask_librarian")["properties"]
            .get("tags")
            .is_some()
    );
    assert!(
        schema_of("push_task")["properties"]
            .get("payload")
            .is_some()
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_round_trip_search_pages_and_the_librarian_cites_them() {
    let server = RedisServer::start();
    let client = connect(&[], &[("REDIS_URL", &server.url())]).await;
    let redis = bus(&server).await;

    let put = ok(
        &client,
        "put_finding",
        json!({
            "title": "DeepSeek pricing",
            "body": "DeepSeek V3 costs 0.27 dollars per million input tokens on cache miss.",
            "tags": ["pricing", "deepseek"],
            "session": "instance-11",
            "worker": "haiku-2",
        }),
    )
    .await;
    let id = put["id"].as_str().unwrap().to_owned();
    assert_eq!(put["key"], format!("finding:{id}"));
    // Stored on the real Redis, for everyone else on the bus.
    let stored = redis
        .get_finding(&FindingId::parse(&id).unwrap())
        .await
        .unwrap()
        .expect("the finding is in Redis");
    assert_eq!(stored.title, "DeepSeek pricing");
    assert_eq!(stored.worker.to_string(), "haiku-2");

    let got = ok(&client, "get_finding", json!({ "id": id })).await;
    assert_eq!(got["title"], "DeepSeek pricing");
    assert_eq!(got["session"], "instance-11");
    assert_eq!(got["tags"], json!(["deepseek", "pricing"]));
    // The key form works too.
    let got = ok(
        &client,
        "get_finding",
        json!({ "id": format!("finding:{id}") }),
    )
    .await;
    assert_eq!(got["id"], id);

    // Many long findings: pages stay small, bodies are cut, the cursor walks
    // through every one exactly once.
    let long = "word ".repeat(2_000);
    for i in 0..30 {
        ok(
            &client,
            "put_finding",
            json!({ "title": format!("filler {i}"), "body": long, "tags": ["filler"] }),
        )
        .await;
    }
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut args = json!({ "tag": "filler", "limit": 100 });
        if let Some(c) = &cursor {
            args["cursor"] = json!(c);
        }
        let r = call(&client, "search_findings", args).await;
        assert_ne!(r.is_error, Some(true), "{}", text(&r));
        let page = r.structured_content.clone().unwrap();
        // Well under 10k tokens (~40 KB) per page, whatever the limit asked.
        assert!(
            text(&r).len() < 30_000,
            "a page of {} bytes",
            text(&r).len()
        );
        assert_eq!(page["total"], 30);
        for f in page["findings"].as_array().unwrap() {
            let body = f["body"].as_str().unwrap();
            assert!(body.ends_with("[truncated; get_finding has the full text]"));
            assert!(body.len() < 1_000);
            assert!(
                seen.insert(f["id"].as_str().unwrap().to_owned()),
                "seen twice"
            );
        }
        pages += 1;
        match page.get("next_cursor").and_then(Value::as_str) {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 30);
    assert!(pages > 1, "30 long findings fit one page");

    // Search by words, newest first, with filters.
    let page = ok(
        &client,
        "search_findings",
        json!({ "query": "deepseek INPUT tokens", "worker": "haiku-2" }),
    )
    .await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["findings"][0]["id"], id);
    let none = ok(
        &client,
        "search_findings",
        json!({ "query": "deepseek", "tag": "filler" }),
    )
    .await;
    assert_eq!(none["total"], 0);

    // The offline librarian answers and cites the finding.
    let answer = ok(
        &client,
        "ask_librarian",
        json!({ "question": "What does DeepSeek cost per million input tokens?", "tags": ["pricing", "other"] }),
    )
    .await;
    assert_eq!(answer["citations"][0], id, "{answer}");
    assert!(
        answer["answer"]
            .as_str()
            .unwrap()
            .contains("dollars per million input tokens"),
        "{answer}"
    );

    // The status block counts them.
    let r = call(&client, "swarm_status", json!({})).await;
    assert_ne!(r.is_error, Some(true));
    assert!(text(&r).contains("📊 SWARM STATUS"), "{}", text(&r));
    assert!(
        text(&r).contains("Redis Context: 31 findings"),
        "{}",
        text(&r)
    );
    assert_eq!(r.structured_content.unwrap()["status"]["findings"], 31);
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subagent_works_a_queue_and_the_swarm_halts_and_resumes() {
    let server = RedisServer::start();
    let client = connect(&[], &[("REDIS_URL", &server.url())]).await;
    let redis = bus(&server).await;
    let worker = WorkerId::new("haiku-7").unwrap();

    let first = ok(
        &client,
        "push_task",
        json!({ "worker": "haiku-7", "title": "Count the crates", "payload": { "glob": "*/Cargo.toml" } }),
    )
    .await;
    let second = ok(
        &client,
        "push_task",
        json!({ "worker": "haiku-7", "title": "Fetch a page that does not exist" }),
    )
    .await;
    assert_eq!(redis.queued_tasks(&worker).await.unwrap(), 2);

    let claim = ok(&client, "claim_task", json!({ "worker": "haiku-7" })).await;
    assert_eq!(claim["task_id"], first["task_id"]);
    assert_eq!(claim["task"]["title"], "Count the crates");
    assert_eq!(claim["task"]["payload"]["glob"], "*/Cargo.toml");
    let done = ok(
        &client,
        "complete_task",
        json!({ "task_id": claim["task_id"], "title": "6 crates", "body": "swarm-core, swarm-cost, …" }),
    )
    .await;
    let finding = redis
        .get_finding(&FindingId::parse(done["finding_id"].as_str().unwrap()).unwrap())
        .await
        .unwrap()
        .expect("the result is a finding");
    assert_eq!(finding.title, "6 crates");
    assert_eq!(finding.worker, worker);
    assert_eq!(
        finding.task.map(|t| t.to_string()).as_deref(),
        first["task_id"].as_str()
    );
    // Completing twice is refused: the claim is gone.
    refused(
        &client,
        "complete_task",
        json!({ "task_id": claim["task_id"], "title": "again" }),
    )
    .await;

    let claim = ok(
        &client,
        "claim_task",
        json!({ "worker": "haiku-7", "wait_seconds": 1 }),
    )
    .await;
    assert_eq!(claim["task_id"], second["task_id"]);
    ok(
        &client,
        "fail_task",
        json!({ "task_id": claim["task_id"], "report": "HTTP 404 from the page" }),
    )
    .await;
    let failed = redis.failed_tasks().await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].report, "HTTP 404 from the page");

    let empty = ok(&client, "claim_task", json!({ "worker": "haiku-7" })).await;
    assert_eq!(empty["task"], Value::Null);

    let halted = ok(
        &client,
        "halt_swarm",
        json!({ "reason": "Gemini shard 3 failed during paper generation" }),
    )
    .await;
    assert_eq!(halted["by_this_call"], true);
    let report = redis.halted().await.unwrap().expect("halt:reason is set");
    assert_eq!(
        report.failed,
        "Gemini shard 3 failed during paper generation"
    );
    let again = ok(&client, "halt_swarm", json!({ "reason": "second" })).await;
    assert_eq!(again["by_this_call"], false);
    assert_eq!(
        again["report"]["failed"],
        "Gemini shard 3 failed during paper generation"
    );
    let resumed = ok(&client, "resume_swarm", json!({})).await;
    assert_eq!(
        resumed["was"]["failed"],
        "Gemini shard 3 failed during paper generation"
    );
    assert!(redis.halted().await.unwrap().is_none());
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_tool_error_nothing_is_stored_and_the_session_lives_on() {
    let server = RedisServer::start();
    let client = connect(&[], &[("REDIS_URL", &server.url())]).await;
    let redis = bus(&server).await;

    let msg = refused(
        &client,
        "put_finding",
        json!({ "title": "   ", "body": "x" }),
    )
    .await;
    assert!(msg.contains("title must not be empty"), "{msg}");
    let huge = "x".repeat(300 * 1024);
    let msg = refused(
        &client,
        "put_finding",
        json!({ "title": "big", "body": huge }),
    )
    .await;
    assert!(msg.contains("over the limit"), "{msg}");
    let msg = refused(
        &client,
        "put_finding",
        json!({ "title": "t", "worker": "has space" }),
    )
    .await;
    assert!(msg.contains("worker"), "{msg}");
    refused(
        &client,
        "put_finding",
        json!({ "title": "t", "tags": [""] }),
    )
    .await;
    // Arguments that do not fit the schema: a tool error too.
    let msg = refused(&client, "put_finding", json!({ "body": "no title" })).await;
    assert!(msg.contains("title"), "{msg}");
    refused(&client, "put_finding", json!({ "title": 42 })).await;
    assert_eq!(
        redis.count_findings().await.unwrap(),
        0,
        "something was stored"
    );

    let unknown = FindingId::random().to_string();
    let msg = refused(&client, "get_finding", json!({ "id": unknown })).await;
    assert!(msg.contains("no finding with id"), "{msg}");
    let msg = refused(&client, "get_finding", json!({ "id": "not an id\n" })).await;
    assert!(msg.contains("invalid"), "{msg}");
    refused(&client, "search_findings", json!({ "limit": 0 })).await;
    refused(&client, "search_findings", json!({ "limit": 1000 })).await;
    refused(&client, "search_findings", json!({ "cursor": "abc" })).await;
    refused(&client, "ask_librarian", json!({ "question": "" })).await;
    refused(
        &client,
        "push_task",
        json!({ "worker": "haiku-1", "title": "" }),
    )
    .await;
    refused(&client, "push_task", json!({ "worker": "", "title": "t" })).await;
    refused(
        &client,
        "push_task",
        json!({ "worker": "haiku-1", "title": "t", "payload": "y".repeat(70 * 1024) }),
    )
    .await;
    assert_eq!(
        redis
            .queued_tasks(&WorkerId::new("haiku-1").unwrap())
            .await
            .unwrap(),
        0
    );
    refused(
        &client,
        "claim_task",
        json!({ "worker": "haiku-1", "wait_seconds": 18446744073709551615u64 }),
    )
    .await;
    refused(
        &client,
        "complete_task",
        json!({ "task_id": "nope", "title": "t" }),
    )
    .await;
    refused(
        &client,
        "complete_task",
        json!({ "task_id": FindingId::random().to_string(), "title": "t" }),
    )
    .await;
    refused(
        &client,
        "fail_task",
        json!({ "task_id": "nope", "report": "" }),
    )
    .await;
    refused(&client, "halt_swarm", json!({ "reason": " " })).await;
    assert!(redis.halted().await.unwrap().is_none());

    // Still serving.
    assert_eq!(client.list_all_tools().await.unwrap().len(), TOOLS.len());
    let put = ok(&client, "put_finding", json!({ "title": "still here" })).await;
    assert_eq!(redis.count_findings().await.unwrap(), 1);
    let got = ok(&client, "get_finding", json!({ "id": put["id"] })).await;
    assert_eq!(got["title"], "still here");
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_runs_on_an_in_process_bus_with_memory() {
    let client = connect(&["--memory"], &[]).await;
    let put = ok(
        &client,
        "put_finding",
        json!({ "title": "in memory", "body": "b" }),
    )
    .await;
    let got = ok(&client, "get_finding", json!({ "id": put["id"] })).await;
    assert_eq!(got["body"], "b");
    let r = call(&client, "swarm_status", json!({})).await;
    assert!(
        text(&r).contains("Redis Context: 1 findings"),
        "{}",
        text(&r)
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_server_says_why_on_stderr_and_still_serves() {
    // It serves anyway (tests/claude_code_mcp.rs holds the handshake); here
    // the client goes away at once, so it ends after saying why.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_swarm"))
        .args(["mcp", "--redis-url", "redis://swarm:hunter2@127.0.0.1:1"])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.stdout.is_empty(), "stdout is the protocol's");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("serving anyway"), "{err}");
    assert!(err.contains("redis://swarm:***@127.0.0.1:1"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

/// docs/claude-code.md's `.mcp.json`, run as Claude Code would run it (the
/// `swarm` command being this build, its REDIS_URL the test server's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_json_of_the_guide_starts_a_working_server() {
    let guide = include_str!("../../docs/claude-code.md");
    let block = guide
        .split("```json\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a json block in docs/claude-code.md");
    let config: Value = serde_json::from_str(block).expect("the .mcp.json parses");
    let entry = &config["mcpServers"]["swarm"];
    assert_eq!(entry["type"], "stdio");
    assert_eq!(entry["command"], "swarm");
    let args: Vec<String> = serde_json::from_value(entry["args"].clone()).unwrap();
    assert_eq!(entry["env"]["REDIS_URL"], "redis://127.0.0.1:6379");

    let server = RedisServer::start();
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_swarm")).configure(|c| {
        c.args(&args)
            .env("REDIS_URL", server.url())
            .env_remove("GEMINI_API_KEY_SHARD1")
            .stderr(std::process::Stdio::null());
    });
    let client = ().serve(TokioChildProcess::new(cmd).unwrap()).await.unwrap();
    assert_eq!(client.list_all_tools().await.unwrap().len(), TOOLS.len());
    let put = ok(&client, "put_finding", json!({ "title": "from the guide" })).await;
    let got = ok(&client, "get_finding", json!({ "id": put["id"] })).await;
    assert_eq!(got["title"], "from the guide");
    client.cancel().await.unwrap();
}

/// A raw key written with a plain Redis client while `swarm mcp` runs is
/// counted and readable within seconds (the server runs the adopter).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_key_written_while_the_server_runs_is_adopted_within_seconds() {
    let server = RedisServer::start();
    let client = connect(&[], &[("REDIS_URL", &server.url())]).await;
    server.cli(&[
        "SET",
        "finding:late_note",
        "written with redis-cli while the server ran",
    ]);
    let mut counted = false;
    for _ in 0..100 {
        let r = call(&client, "swarm_status", json!({})).await;
        if r.structured_content.unwrap()["status"]["findings"] == 1 {
            counted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(counted, "not counted within 10 s");
    let got = ok(&client, "get_finding", json!({ "id": "late_note" })).await;
    assert_eq!(got["origin"], "raw_text");
    assert!(got.to_string().contains("written with redis-cli"), "{got}");
    let page = ok(&client, "search_findings", json!({ "query": "redis-cli" })).await;
    assert_eq!(page["findings"][0]["id"], "late_note", "{page}");
    client.cancel().await.unwrap();
}

/// Redis goes away in the middle of a session and comes back: the calls made
/// while it is down are tool errors that say so (the password never shown),
/// the server process lives on, and once Redis is back the same session
/// stores and reads again, with what was stored before still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_going_away_mid_session_is_a_tool_error_and_the_session_recovers() {
    let mut server = RedisServer::start_persistent();
    let client = connect(&[], &[("REDIS_URL", &server.url())]).await;
    let before = ok(
        &client,
        "put_finding",
        json!({ "title": "before the outage" }),
    )
    .await;

    server.stop();
    let down = refused(
        &client,
        "put_finding",
        json!({ "title": "during the outage" }),
    )
    .await;
    assert!(!down.trim().is_empty());
    let status = call(&client, "swarm_status", json!({})).await;
    assert_eq!(status.is_error, Some(true), "{}", text(&status));
    // The server answers the protocol while Redis is down.
    assert_eq!(client.list_all_tools().await.unwrap().len(), TOOLS.len());

    server.start_again();
    let mut after = None;
    for _ in 0..100 {
        let r = call(
            &client,
            "put_finding",
            json!({ "title": "after the outage" }),
        )
        .await;
        if r.is_error != Some(true) {
            after = r.structured_content;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let after = after.expect("the session stores again within 10 s of Redis coming back");
    let got = ok(&client, "get_finding", json!({ "id": before["id"] })).await;
    assert_eq!(got["title"], "before the outage");
    let got = ok(&client, "get_finding", json!({ "id": after["id"] })).await;
    assert_eq!(got["title"], "after the outage");
    // The refused write was not stored behind the caller's back.
    let page = ok(&client, "search_findings", json!({ "query": "during" })).await;
    assert_eq!(page["findings"].as_array().map(Vec::len), Some(0), "{page}");
    client.cancel().await.unwrap();
}

/// The active loop through MCP: worker B waits (bounded) for findings after
/// its cursor and wakes when worker A stores a batch with put_findings; a
/// wait with nothing new times out; a bad batch stores nothing; search
/// ranks by relevance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_worker_receives_the_batch_another_worker_stores() {
    let server = RedisServer::start();
    let a = connect(&[], &[("REDIS_URL", &server.url())]).await;
    let b = connect(&[], &[("REDIS_URL", &server.url())]).await;
    let redis = bus(&server).await;

    ok(
        &a,
        "put_finding",
        json!({ "title": "first note", "body": "x" }),
    )
    .await;
    let first = ok(&b, "wait_for_findings", json!({})).await;
    assert_eq!(
        first["findings"].as_array().map(Vec::len),
        Some(1),
        "{first}"
    );
    let cursor = first["cursor"].as_str().unwrap().to_owned();

    let quiet = ok(
        &b,
        "wait_for_findings",
        json!({ "cursor": cursor, "wait_ms": 200 }),
    )
    .await;
    assert_eq!(quiet["timed_out"], true, "{quiet}");
    assert_eq!(quiet["findings"].as_array().map(Vec::len), Some(0));

    let waiter = {
        let cursor = cursor.clone();
        tokio::spawn(async move {
            let r = ok(
                &b,
                "wait_for_findings",
                json!({ "cursor": cursor, "wait_ms": 20000 }),
            )
            .await;
            (b, r)
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let put = ok(
        &a,
        "put_findings",
        json!({ "findings": [
            { "title": "redis failover measured", "body": "replica promoted in 2 s", "tags": ["redis"] },
            { "title": "quota note", "body": "redis mentioned once" },
        ]}),
    )
    .await;
    assert_eq!(put["stored"], 2);
    let (b, woke) = waiter.await.unwrap();
    assert_eq!(woke["timed_out"], false, "{woke}");
    let titles: Vec<&str> = woke["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles, ["quota note", "redis failover measured"]);
    assert_ne!(woke["cursor"].as_str(), Some(cursor.as_str()));

    // Ranked: title and tag outweigh one mention in a body.
    let page = ok(&b, "search_findings", json!({ "query": "redis" })).await;
    assert_eq!(
        page["findings"][0]["title"], "redis failover measured",
        "{page}"
    );
    assert_eq!(page["total"], 2);

    // A batch with one bad finding stores none; an oversized one is refused.
    let before = redis.count_findings().await.unwrap();
    refused(
        &a,
        "put_findings",
        json!({ "findings": [ { "title": "fine" }, { "title": "" } ] }),
    )
    .await;
    let many: Vec<Value> = (0..101)
        .map(|i| json!({ "title": format!("n{i}") }))
        .collect();
    refused(&a, "put_findings", json!({ "findings": many })).await;
    assert_eq!(redis.count_findings().await.unwrap(), before);
    a.cancel().await.unwrap();
    b.cancel().await.unwrap();
}

/// The lifecycle through MCP: an update stores a new version that search
/// finds (the old words no longer), a delete removes the finding from reads
/// and counts while its versions stay; unknown ids are refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finding_is_corrected_and_deleted_through_mcp_and_its_versions_stay() {
    use swarmbus_core::lifecycle::FindingLifecycle;
    let server = RedisServer::start();
    let a = connect(&[], &[("REDIS_URL", &server.url())]).await;
    let redis = bus(&server).await;
    let put = ok(
        &a,
        "put_finding",
        json!({ "title": "failover takes 9 s", "body": "sentinel measured", "tags": ["redis"] }),
    )
    .await;
    let id = put["id"].as_str().unwrap().to_owned();
    let up = ok(
        &a,
        "update_finding",
        json!({ "id": format!("finding:{id}"), "body": "raft measured, 2 s" }),
    )
    .await;
    assert_eq!(up["version"], 2, "{up}");
    let got = ok(&a, "get_finding", json!({ "id": id })).await;
    assert_eq!(got["body"], "raft measured, 2 s", "{got}");
    assert_eq!(got["title"], "failover takes 9 s", "the title stays");
    let hits = ok(&a, "search_findings", json!({ "query": "sentinel" })).await;
    assert_eq!(hits["total"], 0, "{hits}");
    let hits = ok(&a, "search_findings", json!({ "query": "raft" })).await;
    assert_eq!(hits["total"], 1, "{hits}");

    let gone = ok(&a, "delete_finding", json!({ "id": id })).await;
    assert_eq!(gone["deleted"], true);
    assert_eq!(gone["version"], 2);
    assert_eq!(redis.count_findings().await.unwrap(), 0);
    refused(&a, "get_finding", json!({ "id": id })).await;
    let again = ok(&a, "delete_finding", json!({ "id": id })).await;
    assert_eq!(
        again["removed_at"], gone["removed_at"],
        "a repeat is harmless"
    );
    let fid = swarmbus_core::keys::FindingId::parse(&id).unwrap();
    let h = redis.finding_history(&fid).await.unwrap().unwrap();
    assert_eq!(h.versions.len(), 2);

    let msg = refused(&a, "update_finding", json!({ "id": id, "title": "again" })).await;
    assert!(msg.contains("no finding with id"), "{msg}");
    let msg = refused(&a, "delete_finding", json!({ "id": "nosuch" })).await;
    assert!(msg.contains("no finding with id nosuch"), "{msg}");
    let msg = refused(&a, "update_finding", json!({ "id": "bad id!" })).await;
    assert!(!msg.is_empty());
    a.cancel().await.unwrap();
}

/// Issue 19, row 9: a 256 KiB body of U+0001, within the documented cap,
/// was refused as "1573072 bytes, over the limit of 1048576" (the cap
/// counted the escaped JSON). It is stored and read back whole on Redis; one
/// byte over the cap is refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_at_the_cap_is_stored_whatever_its_json_escaping_costs() {
    let server = RedisServer::start();
    let client = connect(&[], &[("REDIS_URL", &server.url())]).await;
    let body = "\u{1}".repeat(256 * 1024);
    let put = ok(
        &client,
        "put_finding",
        json!({ "title": "control characters", "body": body }),
    )
    .await;
    let got = ok(&client, "get_finding", json!({ "id": put["id"] })).await;
    assert_eq!(got["body"].as_str().map(str::len), Some(256 * 1024));
    assert_eq!(got["body"], body);
    let over = "\u{1}".repeat(256 * 1024 + 1);
    let msg = refused(
        &client,
        "put_finding",
        json!({ "title": "one byte over", "body": over }),
    )
    .await;
    assert!(msg.contains("body is 262145 bytes"), "{msg}");
    client.cancel().await.unwrap();
}
