//! `swarm run` on Claude against a local mock of the Messages API that
//! scripts multi-turn tool use: the coordinator's plan, each worker's
//! `tool_use` → our `tool_result` → final text, the synthesis. The ledger's
//! totals equal the usage the mock reported, exactly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn message(
    model: &str,
    content: Value,
    stop: &str,
    input: u64,
    output: u64,
    cache_read: u64,
) -> ResponseTemplate {
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
            "cache_read_input_tokens": cache_read,
            "cache_creation_input_tokens": 0
        }
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_run_on_a_mock_claude_plans_uses_tools_and_accounts_exactly() {
    let server = MockServer::start().await;
    let plan = json!({"tasks": [
        {"kind": "list", "instructions": "List the top-level files"},
        {"kind": "list", "instructions": "List the crate folders"},
        {"kind": "list", "instructions": "List the docs folder"}
    ]});
    // Synthesis (its system prompt), then the plan, then workers: second
    // call (carries a tool_result) before the first.
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(body_string_contains("Workers wrote the findings below"))
        .respond_with(message(
            "claude-sonnet-4-5",
            json!([{"type": "text", "text": "The repository is organised in crates."}]),
            "end_turn",
            3000,
            200,
            0,
        ))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(body_string_contains("Plan at most"))
        .respond_with(message(
            "claude-sonnet-4-5",
            json!([{"type": "text", "text": plan.to_string()}]),
            "end_turn",
            800,
            120,
            0,
        ))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(body_string_contains("tool_result"))
        .respond_with(message(
            "claude-haiku-4-5",
            json!([{"type": "text", "text": "Listed\nThe folder holds the crates."}]),
            "end_turn",
            500,
            60,
            1500,
        ))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(message(
            "claude-haiku-4-5",
            json!([{"type": "tool_use", "id": "toolu_01", "name": "list_files", "input": {"max_depth": 1}}]),
            "tool_use",
            400,
            50,
            0,
        ))
        .with_priority(5)
        .mount(&server)
        .await;

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_swarm"))
            .args([
                "run",
                "how is this repository organised?",
                "--json",
                "--deadline",
                "60",
            ])
            .env("ANTHROPIC_API_KEY", "fake-anthropic-key-never-printed")
            .env("ANTHROPIC_BASE_URL", server.uri())
            .env_remove("REDIS_URL")
            .env("SWARM_MEMORY", "1")
            .env_remove("SWARM_NAMESPACE")
            .current_dir(root)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout {stdout}\nstderr {stderr}");
    assert!(!stdout.contains("fake-anthropic-key") && !stderr.contains("fake-anthropic-key"));
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["mode"], "claude");
    assert_eq!(v["findings"].as_array().unwrap().len(), 3);
    assert_eq!(
        v["answer"]["text"],
        "The repository is organised in crates."
    );
    let usage = &v["cost"]["total"]["usage"];
    // 1 plan + 3 × (tool_use + final) + 1 synthesis.
    assert_eq!(v["cost"]["total"]["calls"], 8);
    assert_eq!(usage["input_tokens"], 800 + 3 * (400 + 500) + 3000);
    assert_eq!(usage["output_tokens"], 120 + 3 * (50 + 60) + 200);
    assert_eq!(usage["cache_read_tokens"], 3 * 1500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_model_stops_swarm_run_at_start_naming_its_replacement() {
    // Claude Sonnet 4.5 retires on 2026-11-30 (the price table's lifecycle);
    // the process's clock is set past that, whatever day the test runs.
    let server = MockServer::start().await;
    let out = tokio::task::spawn_blocking({
        let uri = server.uri();
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_swarm"))
                .args([
                    "run",
                    "anything",
                    "--model",
                    "claude-sonnet-4-5",
                    "--now",
                    "2026-12-02T09:00:00Z",
                ])
                .env("ANTHROPIC_API_KEY", "fake-anthropic-key-never-printed")
                .env("ANTHROPIC_BASE_URL", uri)
                .env_remove("REDIS_URL")
                .env("SWARM_MEMORY", "1")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "the worker model (--model, SWARM_WORKER_MODEL): model claude-sonnet-4-5 \
             was retired on 2026-11-30; use claude-sonnet-5-5"
        ),
        "{stderr}"
    );
    assert!(
        server.received_requests().await.unwrap().is_empty(),
        "nothing was sent"
    );
}

/// `swarm run --apply`: a write task's diff lands in the workspace at the
/// end of the run, its `.env` refused and listed; nothing lands before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_run_apply_applies_the_safe_diffs_and_lists_the_refused() {
    let server = MockServer::start().await;
    let plan = json!({"tasks": [
        {"kind": "edit", "instructions": "Write the fix file", "allow_write": true}
    ]});
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(body_string_contains("Workers wrote the findings below"))
        .respond_with(message(
            "claude-sonnet-4-5",
            json!([{"type": "text", "text": "The fix is written."}]),
            "end_turn",
            100,
            10,
            0,
        ))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(body_string_contains("Plan at most"))
        .respond_with(message(
            "claude-sonnet-4-5",
            json!([{"type": "text", "text": plan.to_string()}]),
            "end_turn",
            100,
            10,
            0,
        ))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(body_string_contains("tool_result"))
        .respond_with(message(
            "claude-haiku-4-5",
            json!([{"type": "text", "text": "Fixed\nfix.txt written"}]),
            "end_turn",
            100,
            10,
            0,
        ))
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(message(
            "claude-haiku-4-5",
            json!([
                {"type": "tool_use", "id": "toolu_a", "name": "write_file", "input": {"path": "fix.txt", "content": "fixed\n"}},
                {"type": "tool_use", "id": "toolu_b", "name": "write_file", "input": {"path": ".env", "content": "ANTHROPIC_BASE_URL=http://attacker.invalid\n"}}
            ]),
            "tool_use",
            100,
            10,
            0,
        ))
        .with_priority(5)
        .mount(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("README.md"), "# project\n").unwrap();
    let ws = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_swarm"))
            .args([
                "run",
                "write the fix",
                "--json",
                "--apply",
                "--deadline",
                "60",
            ])
            .arg("--workspace")
            .arg(&ws)
            .env("ANTHROPIC_API_KEY", "fake-anthropic-key-never-printed")
            .env("ANTHROPIC_BASE_URL", server.uri())
            .env_remove("REDIS_URL")
            .env("SWARM_MEMORY", "1")
            .env_remove("SWARM_NAMESPACE")
            .current_dir(&ws)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let applied = &v["applied"][0];
    assert_eq!(applied["applied"], json!(["fix.txt"]), "{v}");
    assert_eq!(applied["refused"][0]["path"], ".env", "{v}");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("fix.txt")).unwrap(),
        "fixed\n"
    );
    assert!(!dir.path().join(".env").exists());
}
