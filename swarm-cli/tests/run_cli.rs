//! `swarm run` and `swarm worker run` offline (no ANTHROPIC_API_KEY): on an
//! in-memory bus and on a real Redis, with in-process workers and with
//! worker processes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use swarmbus_core::{FindingStore, SessionId, Task, TaskQueue, WorkerId};
use swarmbus_redis::testing::RedisServer;
use swarmbus_redis::{RedisBus, RedisConfig};

fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn swarm(redis: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_swarm"));
    c.env_remove("ANTHROPIC_API_KEY")
        .env_remove("SWARM_NAMESPACE")
        .env_remove("REDIS_URL")
        .current_dir(repo_root());
    if let Some(url) = redis {
        c.env("REDIS_URL", url);
    }
    c
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {} stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn offline_run_on_the_memory_bus_plans_works_and_answers_and_says_it_is_offline() {
    let out = swarm(None)
        .args([
            "run",
            "summarise this repository's crates",
            "--json",
            "--deadline",
            "60",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_of(&out);
    assert_eq!(v["mode"], "offline");
    assert!(
        v["workers"]
            .as_str()
            .unwrap()
            .contains("no ANTHROPIC_API_KEY")
    );
    assert_eq!(v["tasks"].as_array().unwrap().len(), 3);
    assert_eq!(v["findings"].as_array().unwrap().len(), 3);
    assert_eq!(v["answer"]["cites"].as_array().unwrap().len(), 3);
    assert!(
        v["answer"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Extractive summary (offline")
    );
    assert_eq!(v["cost"]["total"]["calls"], 0);

    let text = swarm(None)
        .args([
            "run",
            "summarise this repository's crates",
            "--workers",
            "2",
        ])
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(text.status.success());
    let s = String::from_utf8_lossy(&text.stdout);
    assert!(s.contains("📊 SWARM STATUS"), "{s}");
    assert!(s.contains("Worker share: calls"), "{s}");
    assert!(s.contains("offline: no model was called"), "{s}");
    assert!(
        !String::from_utf8_lossy(&text.stderr).contains('⠁'),
        "no spinner when piped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis_a_run_dispatches_to_worker_processes() {
    let server = RedisServer::start();
    let url = server.url();
    let mut procs: Vec<_> = (1..=3)
        .map(|i| {
            swarm(Some(&url))
                .args([
                    "worker",
                    "run",
                    "--id",
                    &format!("proc-{i}"),
                    "--idle-exit",
                    "5",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let out = swarm(Some(&url))
        .args([
            "run",
            "summarise this repository's crates",
            "--worker-ids",
            "proc-1,proc-2,proc-3",
            "--json",
            "--deadline",
            "60",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_of(&out);
    let mut by: Vec<String> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["worker"].as_str().unwrap().to_owned())
        .collect();
    by.sort();
    assert_eq!(by, ["proc-1", "proc-2", "proc-3"]);
    let bus = RedisBus::connect(RedisConfig::from_url(&url).unwrap())
        .await
        .unwrap();
    assert_eq!(
        bus.count_findings().await.unwrap(),
        4,
        "three findings and the answer"
    );
    for p in procs.iter_mut() {
        let status = p.wait().unwrap();
        assert!(status.success());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_process_with_once_runs_one_task_and_exits() {
    let server = RedisServer::start();
    let url = server.url();
    let bus = RedisBus::connect(RedisConfig::from_url(&url).unwrap())
        .await
        .unwrap();
    let w = WorkerId::new("once").unwrap();
    let s = SessionId::new("s").unwrap();
    bus.push_task(&w, &Task::new(s.clone(), "count", "count lines"))
        .await
        .unwrap();
    bus.push_task(&w, &Task::new(s, "count", "count again"))
        .await
        .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        swarm(Some(&url))
            .args(["worker", "run", "--id", "once", "--once"])
            .output()
            .unwrap()
    });
    let out = tokio::time::timeout(Duration::from_secs(60), out)
        .await
        .unwrap()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("finding "), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no ANTHROPIC_API_KEY"));
    assert_eq!(
        bus.queued_tasks(&w).await.unwrap(),
        1,
        "the second task waits"
    );
}

#[test]
fn a_bad_budget_or_workspace_is_refused_with_exit_1() {
    let out = swarm(None)
        .args(["run", "x", "--budget", "lots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let out = swarm(None)
        .args(["run", "x", "--workspace", "/nonexistent/dir"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("workspace"));
}
