//! The real Claude Code CLI (2.1.332, `SWARM_CLAUDE_BIN`) in a folder set up
//! by `swarm init claude-code`, with a fresh `HOME`, against a local mock of
//! the Messages API that scripts the coordinator and its subagents (server-
//! sent events, as Claude Code streams), `swarm mcp` and the hooks on a real
//! `redis-server`, and OpenTelemetry exported to a real `swarm otlp serve`
//! (set up by `swarm init claude-code --otel <its URL>`, whose
//! `.claude/swarm-otel.json` Claude Code reads with `--settings`: it ignores
//! OTEL_* in a project's `.claude/settings.json`):
//!
//! - the coordinator starts two `swarm-worker` (haiku) subagents in one
//!   message; each stores a finding through `mcp__swarm__put_finding`;
//! - the status line, run while they work, shows them;
//! - the coordinator then tries a third subagent: the budget hook refuses it
//!   (the cap is reached) and Claude Code hands the model the reason;
//! - afterwards the ledger holds exactly the mock's usage, priced per tier to
//!   the micro-dollar, with nothing counted twice though the hooks (Stop and
//!   SessionEnd both fire) and the receiver (each `api_request` event) both
//!   booked it, racing; the receiver saw every call once.
//!
//! Without the CLI the test says so and passes, except in CI (`CI` set),
//! where `.ci/run` installs it and its absence fails unless `.ci/run` found
//! npm unreachable (`SWARM_CLAUDE_SKIP` says why). Under libfaketime
//! (scripts/clock-check.sh) it skips: Claude Code's own clock is not ours.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use swarmbus_core::llm::Usage;
use swarmbus_cost::{Billing, Money, PriceTable};
use swarmbus_redis::testing::RedisServer;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const DEFAULT_BIN: &str = "/root/.cache/swarm/claude-code-2.1.332/node_modules/.bin/claude";

fn claude_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SWARM_CLAUDE_BIN") {
        let p = PathBuf::from(p);
        if p.exists() {
            return Some(p);
        }
    }
    let d = PathBuf::from(DEFAULT_BIN);
    if d.exists() {
        return Some(d);
    }
    if let Ok(why) = std::env::var("SWARM_CLAUDE_SKIP") {
        eprintln!("SKIPPED: {why}");
        return None;
    }
    if std::env::var_os("CI").is_some() {
        panic!(
            "CI: the Claude Code CLI is missing (SWARM_CLAUDE_BIN unset or wrong); .ci/run installs it"
        );
    }
    eprintln!(
        "SKIPPED: the Claude Code CLI is not installed (set SWARM_CLAUDE_BIN; `npm install @anthropic-ai/claude-code@2.1.332`)"
    );
    None
}

fn under_faketime() -> bool {
    std::env::var_os("FAKETIME").is_some()
        || std::env::var("LD_PRELOAD").is_ok_and(|p| p.contains("faketime"))
}

/// One scripted answer the mock gave.
#[derive(Debug, Clone)]
struct Answer {
    role: &'static str,
    model: String,
    usage: Usage,
}

#[derive(Default)]
struct Script {
    answers: Vec<Answer>,
    /// Status lines printed while a subagent was working.
    status_lines: Vec<String>,
    /// What Claude Code handed back for the third Agent call.
    third_result: Option<String>,
    /// Subagent requests that had to call ToolSearch first.
    tool_searches: u32,
}

struct Mocked {
    script: Arc<Mutex<Script>>,
    swarm: PathBuf,
    redis_url: String,
}

fn usage_json(u: &Usage) -> Value {
    json!({
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
        "cache_creation_input_tokens": u.cache_write_5m_tokens + u.cache_write_1h_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": u.cache_write_5m_tokens,
            "ephemeral_1h_input_tokens": u.cache_write_1h_tokens
        },
        "service_tier": "standard"
    })
}

/// The SSE stream of one message.
fn sse(id: &str, model: &str, blocks: &[Value], stop: &str, usage: &Usage) -> String {
    let mut out = String::new();
    let mut ev = |name: &str, data: Value| {
        out.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    };
    ev(
        "message_start",
        json!({"type": "message_start", "message": {
        "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": null, "stop_sequence": null, "usage": usage_json(usage)}}),
    );
    for (i, b) in blocks.iter().enumerate() {
        if b["type"] == "text" {
            ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}}),
            );
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": b["text"]}}),
            );
        } else {
            ev(
                "content_block_start",
                json!({"type": "content_block_start", "index": i, "content_block": {"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}}),
            );
            ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": b["input"].to_string()}}),
            );
        }
        ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": i}),
        );
    }
    ev(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": usage_json(usage)}),
    );
    ev("message_stop", json!({"type": "message_stop"}));
    out
}

fn agent_call(n: u32) -> Value {
    json!({"type": "tool_use", "id": format!("toolu_agent_{n}"), "name": "Agent", "input": {
        "description": format!("Swarm worker {n}"),
        "prompt": format!("WORKER-{n}: store one finding titled 'e2e finding {n}' with put_finding, tag 'e2e', then reply with its id."),
        "subagent_type": "swarm-worker",
        "model": "haiku",
        "run_in_background": false
    }})
}

impl Respond for Mocked {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let model = body["model"]
            .as_str()
            .unwrap_or("claude-sonnet-5-5")
            .to_owned();
        let messages = body["messages"].to_string();
        let answered = |id: &str| messages.contains(&format!("\"tool_use_id\":\"{id}\""));
        let tools: Vec<String> = body["tools"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|t| t["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let subagent = req.headers.get("x-claude-code-agent-id").is_some();
        let (role, blocks, stop, usage): (&'static str, Vec<Value>, &str, Usage) = if subagent {
            let n: u32 = if messages.contains("WORKER-2") { 2 } else { 1 };
            let put = format!("toolu_put_{n}");
            if answered(&put) {
                (
                    "subagent",
                    vec![json!({"type": "text", "text": format!("Stored finding {n}.")})],
                    "end_turn",
                    Usage::new(4500 + u64::from(n), 60).with_cache_read(800),
                )
            } else if tools.iter().any(|t| t == "mcp__swarm__put_finding") {
                // Seen while the subagent works: the status line.
                if let Ok(out) = Command::new(&self.swarm)
                    .arg("statusline")
                    .env("REDIS_URL", &self.redis_url)
                    .stdin(std::process::Stdio::null())
                    .output()
                {
                    self.script
                        .lock()
                        .unwrap()
                        .status_lines
                        .push(String::from_utf8_lossy(&out.stdout).into_owned());
                }
                (
                    "subagent",
                    vec![
                        json!({"type": "tool_use", "id": put, "name": "mcp__swarm__put_finding", "input": {
                    "title": format!("e2e finding {n}"), "body": format!("worker {n} was here"), "tags": ["e2e"], "worker": format!("haiku-{n}")}}),
                    ],
                    "tool_use",
                    Usage::new(4000 + u64::from(n), 50).with_cache_write(300, 0),
                )
            } else {
                self.script.lock().unwrap().tool_searches += 1;
                (
                    "subagent",
                    vec![
                        json!({"type": "tool_use", "id": format!("toolu_ts_{n}_{}", messages.len()), "name": "ToolSearch",
                    "input": {"query": "select:mcp__swarm__put_finding"}}),
                    ],
                    "tool_use",
                    Usage::new(3000, 20),
                )
            }
        } else if !answered("toolu_agent_1") {
            (
                "coordinator",
                vec![
                    json!({"type": "text", "text": "Starting two workers."}),
                    agent_call(1),
                    agent_call(2),
                ],
                "tool_use",
                Usage::new(10, 20),
            )
        } else if !answered("toolu_agent_3") {
            (
                "coordinator",
                vec![agent_call(3)],
                "tool_use",
                Usage::new(900, 30).with_cache_read(200),
            )
        } else {
            let block = body["messages"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| m["content"].as_array())
                .flatten()
                .find(|b| b["tool_use_id"] == "toolu_agent_3")
                .map(Value::to_string);
            self.script.lock().unwrap().third_result = block;
            (
                "coordinator",
                vec![
                    json!({"type": "text", "text": "Two findings stored; the budget stopped a third worker."}),
                ],
                "end_turn",
                Usage::new(1200, 40).with_cache_write(0, 100),
            )
        };
        let mut s = self.script.lock().unwrap();
        let seq = s.answers.len() + 1;
        s.answers.push(Answer {
            role,
            model: model.clone(),
            usage,
        });
        drop(s);
        let id = format!("msg_e2e_{seq:04}");
        ResponseTemplate::new(200)
            .insert_header("request-id", format!("req_e2e_{seq:04}").as_str())
            .set_body_raw(sse(&id, &model, &blocks, stop, &usage), "text/event-stream")
    }
}

/// A running `swarm otlp serve --listen 127.0.0.1:0` and its stderr.
struct Receiver {
    child: Child,
    url: String,
    stderr: Arc<Mutex<String>>,
}

impl Receiver {
    fn start(redis_url: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_swarm"))
            .args(["otlp", "serve", "--listen", "127.0.0.1:0"])
            .env("REDIS_URL", redis_url)
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
                seen.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(
                        rest.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!("swarm otlp serve did not start: {}", stderr.lock().unwrap())
            });
        Self { child, url, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The api_request events it has seen: (booked, already booked), from
    /// its lines `N api_request events: B booked ($…), A already booked, …`.
    fn seen(&self) -> (u64, u64) {
        let mut out = (0, 0);
        for line in self.stderr().lines() {
            let Some((_, rest)) = line.split_once("api_request events: ") else {
                continue;
            };
            let mut words = rest.split([' ', ',']).filter(|w| !w.is_empty());
            let booked: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
            let already: u64 = rest
                .split(", ")
                .find(|p| p.ends_with("already booked"))
                .and_then(|p| p.split(' ').next())
                .and_then(|w| w.parse().ok())
                .unwrap_or(0);
            out.0 += booked;
            out.1 += already;
        }
        out
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn swarm(url: &str, dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_swarm"))
        .args(args)
        .current_dir(dir)
        .env("REDIS_URL", url)
        .output()
        .unwrap()
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{:?}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claude_code_coordinator_with_two_haiku_subagents_is_booked_exactly_once() {
    let Some(claude) = claude_bin() else { return };
    if under_faketime() {
        eprintln!(
            "SKIPPED under libfaketime: the real Claude Code keeps the real clock, so its timestamps and ours differ"
        );
        return;
    }
    let redis = RedisServer::start();
    let url = redis.url();
    let swarm_bin = PathBuf::from(env!("CARGO_BIN_EXE_swarm"));
    let script = Arc::new(Mutex::new(Script::default()));
    let api = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(Mocked {
            script: Arc::clone(&script),
            swarm: swarm_bin.clone(),
            redis_url: url.clone(),
        })
        .mount(&api)
        .await;
    // The OpenTelemetry receiver, started before Claude Code.
    let receiver = Receiver::start(&url);

    let project = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    ok(&swarm(
        &url,
        project.path(),
        &["init", "claude-code", "--otel", &receiver.url],
    ));
    // Coordinator call 1 costs about $0.0003; each worker's calls about $0.005.
    ok(&swarm(
        &url,
        project.path(),
        &["budget", "set", "--session", "0.002"],
    ));

    let path_env = format!(
        "{}:{}",
        swarm_bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = tokio::task::spawn_blocking({
        let (claude, project, home, api) = (
            claude.clone(),
            project.path().to_path_buf(),
            home.path().to_path_buf(),
            api.uri(),
        );
        let url = url.clone();
        move || {
            Command::new(claude)
                .args([
                    "-p",
                    "Use the swarm: start two workers.",
                    "--model",
                    "sonnet",
                    "--allowedTools",
                    "mcp__swarm",
                    "--output-format",
                    "json",
                    // The OpenTelemetry env of `swarm init claude-code --otel`.
                    "--settings",
                    ".claude/swarm-otel.json",
                ])
                .current_dir(project)
                .env_clear()
                .env("PATH", path_env)
                .env("HOME", home)
                .env("REDIS_URL", url)
                .env("ANTHROPIC_BASE_URL", api)
                .env("ANTHROPIC_API_KEY", "test-not-a-key")
                .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
                // The OpenTelemetry setup is the --settings file of `--otel`;
                // only the export interval is shortened (default 5 s, longer
                // than this session) so the receiver and the hooks race.
                .env("OTEL_LOGS_EXPORT_INTERVAL", "200")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "claude failed: {stdout}\n{stderr}");
    let result: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let script = Arc::clone(&script);
    let s = script.lock().unwrap();
    eprintln!(
        "answers: {:#?}\nstatus lines: {:?}\ntool searches: {}",
        s.answers, s.status_lines, s.tool_searches
    );

    // Two workers, each stored its finding.
    let findings = ok(&swarm(
        &url,
        project.path(),
        &["findings", "list", "--query", "e2e", "--json"],
    ));
    assert!(
        findings.contains("e2e finding 1") && findings.contains("e2e finding 2"),
        "{findings}"
    );
    // The status line saw them working.
    assert!(
        s.status_lines
            .iter()
            .any(|l| l.contains("Haikus active") && !l.contains(" 0 Haikus")),
        "{:?}",
        s.status_lines
    );
    // The third subagent was refused with the budget's reason.
    let third = s.third_result.clone().unwrap_or_default();
    assert!(
        third.contains("swarm budget reached"),
        "third Agent result: {third}"
    );
    assert_eq!(
        s.answers.iter().filter(|a| a.role == "coordinator").count(),
        3
    );

    // The receiver saw every call once (Claude Code flushes its log events
    // as it exits): booked by it, or already booked by a hook.
    let calls = s.answers.len() as u64;
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver.seen().0 + receiver.seen().1 < calls && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (by_otel, by_hooks) = receiver.seen();
    eprintln!(
        "receiver: {by_otel} booked, {by_hooks} already booked by the hooks\n{}",
        receiver.stderr()
    );
    assert_eq!(by_otel + by_hooks, calls, "{}", receiver.stderr());
    assert!(
        !receiver.stderr().contains("disagree") && !receiver.stderr().contains("answered "),
        "{}",
        receiver.stderr()
    );
    // Hooks and OpenTelemetry both booked, racing: nothing twice.
    let report: Value = serde_json::from_str(&ok(&swarm(
        &url,
        project.path(),
        &["cost", "report", "--json"],
    )))
    .unwrap();
    assert_eq!(report["total"]["calls"], s.answers.len(), "{report:#}");

    // Per tier, exactly the mock's usage priced.
    let table = PriceTable::built_in().unwrap();
    let now = chrono::Utc::now();
    let mut want = std::collections::BTreeMap::<&str, Money>::new();
    for a in &s.answers {
        let tier = if a.role == "coordinator" {
            "sonnet"
        } else {
            "haiku"
        };
        let usd = table
            .price(&a.model, &a.usage, Billing::Standard, now)
            .usd()
            .unwrap();
        *want.entry(tier).or_insert(Money::ZERO) =
            want.get(tier).copied().unwrap_or(Money::ZERO) + usd;
    }
    for (tier, usd) in &want {
        assert_eq!(
            report["by_tier"][tier]["usd"].as_str().unwrap(),
            usd.to_string(),
            "{tier}: {report:#}"
        );
    }
    // Claude Code's own total agrees with ours to the micro-dollar.
    let theirs = result["total_cost_usd"].as_f64().unwrap();
    let ours: Money = want.values().copied().fold(Money::ZERO, |a, b| a + b);
    assert!(
        (theirs - ours.to_f64_lossy()).abs() < 1e-6,
        "Claude Code ${theirs} vs ledger ${ours}"
    );
    let status = ok(&swarm(&url, project.path(), &["status"]));
    assert!(status.contains("Active Workers: 0 Haikus"), "{status}");
}
