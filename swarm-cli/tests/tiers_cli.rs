//! One tier configuration across commands: a tier renamed once (the global
//! `--worker-tier`, or `SWARM_WORKER_TIER`) is the name every command
//! records under and the name every command reports, on a real
//! `redis-server` shared by separate `swarm` processes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use swarmbus_redis::testing::RedisServer;
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FIX: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../swarm-claude-code/tests/fixtures"
);

/// Claude Code's own price of run A's subagent calls (`A/claude.stdout.json`).
const HAIKU_A: &str = "0.000332835";

/// `swarm` on `url` with a clean tier environment plus `env`.
fn swarm(url: &str, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_swarm"));
    cmd.args(args)
        .env("REDIS_URL", url)
        .env_remove("SWARM_MEMORY")
        .env_remove("SWARM_NAMESPACE")
        .env_remove("SWARM_NOW")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_BASE_URL");
    for var in [
        "SWARM_COORDINATOR_TIER",
        "SWARM_WORKER_TIER",
        "SWARM_LIBRARIAN_TIER",
        "SWARM_COORDINATOR_MODEL",
        "SWARM_WORKER_MODEL",
        "SWARM_LIBRARIAN_MODEL",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json_of(out: &Output) -> Value {
    serde_json::from_str(&ok(out)).unwrap()
}

/// Run A of the fixtures laid out as Claude Code lays a session out.
struct Session {
    _dir: tempfile::TempDir,
    main: PathBuf,
    agent: PathBuf,
}

const SESSION: &str = "8170940d-e053-491d-9284-1988c8ae3842";
const AGENT: &str = "a8d671a305efa9d2a";

fn lay_out() -> Session {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join(format!("{SESSION}.jsonl"));
    std::fs::copy(format!("{FIX}/coordinator_A.jsonl"), &main).unwrap();
    let subs = dir.path().join(SESSION).join("subagents");
    std::fs::create_dir_all(&subs).unwrap();
    let agent = subs.join(format!("agent-{AGENT}.jsonl"));
    std::fs::copy(format!("{FIX}/agent_A.jsonl"), &agent).unwrap();
    std::fs::copy(
        format!("{FIX}/agent_A.meta.json"),
        agent.with_extension("meta.json"),
    )
    .unwrap();
    Session {
        _dir: dir,
        main,
        agent,
    }
}

fn subagent_stop(s: &Session) -> String {
    json!({
        "session_id": SESSION,
        "transcript_path": s.main,
        "cwd": s.main.parent().unwrap(),
        "hook_event_name": "SubagentStop",
        "agent_id": AGENT,
        "agent_type": "general-purpose",
        "agent_transcript_path": s.agent,
    })
    .to_string()
}

#[test]
fn a_worker_tier_renamed_in_the_environment_is_what_the_hook_books_and_cost_and_status_report() {
    let server = RedisServer::start();
    let url = server.url();
    let s = lay_out();
    let cheap = [("SWARM_WORKER_TIER", "cheap")];
    // Claude Code's subagent calls are booked on the worker tier: `cheap`.
    ok(&swarm(
        &url,
        &["hook", "SubagentStop"],
        &cheap,
        &subagent_stop(&s),
    ));
    // `swarm cost` with the same rename given as a flag reads the same books.
    let r = json_of(&swarm(
        &url,
        &["cost", "report", "--json", "--worker-tier", "cheap"],
        &[],
        "",
    ));
    assert_eq!(r["tier_names"]["worker"], "cheap", "{r:#}");
    assert_eq!(r["by_tier"]["cheap"]["usd"], HAIKU_A, "{r:#}");
    assert_eq!(r["by_tier"]["cheap"]["calls"], 3, "{r:#}");
    assert!(r["by_tier"].get("haiku").is_none(), "{r:#}");
    assert_eq!(r["roles"]["worker"]["usd"], HAIKU_A, "{r:#}");
    // The status block reads `cost:cheap` and names the tier.
    let status = ok(&swarm(&url, &["status"], &cheap, ""));
    assert!(status.contains("Cheap $0.0003"), "{status}");
    // `swarm cost record` prices a call of the renamed tier with its role.
    let e = json_of(&swarm(
        &url,
        &[
            "--worker-tier",
            "cheap",
            "cost",
            "record",
            "--tier",
            "cheap",
            "--model",
            "claude-haiku-4-5",
            "--input-tokens",
            "1000",
            "--json",
        ],
        &[],
        "",
    ));
    assert_eq!(e["tier"], "cheap", "{e}");
    assert_eq!(e["role"], "worker", "{e}");
}

#[test]
fn swarm_run_reports_under_the_tier_names_of_the_global_options() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("README.md"),
        "# project\n\npub trait X {}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_swarm"))
        .args([
            "--worker-tier",
            "cheap",
            "run",
            "what is here?",
            "--offline",
            "--json",
            "--deadline",
            "60",
            "--coordinator-tier",
            "planner",
        ])
        .arg("--workspace")
        .arg(dir.path())
        .env("SWARM_MEMORY", "1")
        .env_remove("REDIS_URL")
        .env_remove("SWARM_NAMESPACE")
        .env_remove("SWARM_WORKER_TIER")
        .env_remove("SWARM_COORDINATOR_TIER")
        .env_remove("ANTHROPIC_API_KEY")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let v = json_of(&out);
    assert_eq!(v["mode"], "offline", "{v:#}");
    assert_eq!(v["cost"]["tier_names"]["worker"], "cheap", "{v:#}");
    assert_eq!(v["cost"]["tier_names"]["coordinator"], "planner", "{v:#}");
}

fn message(model: &str, content: Value, stop: &str, input: u64, output: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "msg_mock",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": {
            "input_tokens": input,
            "output_tokens": output,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0
        }
    }))
}

/// A mock Messages API: a one-task plan, the worker's answer, the synthesis.
async fn mock_claude() -> MockServer {
    let server = MockServer::start().await;
    let plan = json!({"tasks": [{"kind": "list", "instructions": "List the files"}]});
    for (marker, model, text) in [
        (
            "Workers wrote the findings below",
            "claude-sonnet-4-5",
            "The project is small.".to_owned(),
        ),
        ("Plan at most", "claude-sonnet-4-5", plan.to_string()),
    ] {
        Mock::given(method("POST"))
            .and(path("/v1/messages"))
            .and(body_string_contains(marker))
            .respond_with(message(
                model,
                json!([{"type": "text", "text": text}]),
                "end_turn",
                100,
                10,
            ))
            .with_priority(1)
            .mount(&server)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(message(
            "claude-haiku-4-5",
            json!([{"type": "text", "text": "Listed\nOne README."}]),
            "end_turn",
            200,
            20,
        ))
        .with_priority(5)
        .mount(&server)
        .await;
    server
}

/// `swarm run` on Claude records each call under the renamed tier, and a
/// later `swarm cost report` with the same configuration agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_run_on_claude_records_its_calls_under_the_renamed_worker_tier() {
    let claude = mock_claude().await;
    let server = RedisServer::start();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.md"), "# project\n").unwrap();
    let (uri, ws) = (claude.uri(), dir.path().to_path_buf());
    let run_url = url.clone();
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_swarm"));
        cmd.args([
            "run",
            "what is here?",
            "--json",
            "--workers",
            "1",
            "--deadline",
            "60",
        ])
        .arg("--workspace")
        .arg(&ws)
        .env("REDIS_URL", &run_url)
        .env("SWARM_WORKER_TIER", "cheap")
        .env("ANTHROPIC_API_KEY", "fake-anthropic-key-never-printed")
        .env("ANTHROPIC_BASE_URL", uri)
        .env_remove("SWARM_MEMORY")
        .env_remove("SWARM_NAMESPACE")
        .current_dir(&ws);
        cmd.output().unwrap()
    })
    .await
    .unwrap();
    let v = json_of(&out);
    assert_eq!(v["mode"], "claude", "{v:#}");
    assert!(
        v["cost"]["by_tier"]["cheap"]["calls"].as_u64().unwrap_or(0) >= 1,
        "{v:#}"
    );
    assert!(v["cost"]["by_tier"].get("haiku").is_none(), "{v:#}");
    let r = json_of(&swarm(
        &url,
        &["cost", "report", "--json", "--worker-tier", "cheap"],
        &[],
        "",
    ));
    assert_eq!(
        r["by_tier"]["cheap"], v["cost"]["by_tier"]["cheap"],
        "{r:#}"
    );
    assert_eq!(
        r["roles"]["worker"]["calls"], r["by_tier"]["cheap"]["calls"],
        "{r:#}"
    );
}
