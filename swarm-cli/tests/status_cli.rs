//! `swarm status` and `swarm librarian` against a real redis-server holding a
//! swarm written through `RedisBus`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use swarmbus_core::{
    Counters, Finding, FindingStore, QuotaLedger, QuotaLimits, SessionId, ShardId, TierName,
    WorkerId, WorkerRegistry,
};
use swarmbus_redis::testing::RedisServer;
use swarmbus_redis::{RedisBus, RedisConfig};

fn swarm(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_swarm"))
        .args(args)
        .env("REDIS_URL", url)
        .env_remove("GEMINI_API_KEY")
        .env_remove("SWARM_NAMESPACE")
        .output()
        .expect("run swarm")
}

async fn populated(server: &RedisServer) -> Vec<Finding> {
    let bus = RedisBus::connect(RedisConfig::from_url(&server.url()).unwrap())
        .await
        .unwrap();
    let (w, s) = (
        WorkerId::new("haiku-1").unwrap(),
        SessionId::new("instance-10").unwrap(),
    );
    let mut findings: Vec<Finding> = (0..40)
        .map(|i| Finding::new(w.clone(), s.clone(), format!("note {i}"), "filler text"))
        .collect();
    findings.push(
        Finding::new(
            w.clone(),
            s.clone(),
            "Gemini quota",
            "The free tier allows 1500 requests per day per project.",
        )
        .with_tags(["cost"]),
    );
    findings.push(
        Finding::new(
            w.clone(),
            s.clone(),
            "Haiku price",
            "Haiku 4.5 costs 1 dollar per million input tokens.",
        )
        .with_tags(["cost"]),
    );
    bus.put_findings(&findings).await.unwrap();
    for i in 1..=3 {
        let id = WorkerId::new(format!("haiku-{i}")).unwrap();
        bus.heartbeat(&id, Duration::from_secs(60)).await.unwrap();
    }
    let limits = QuotaLimits::new(Some(1500), None);
    let now = chrono::Utc::now();
    for _ in 0..50 {
        bus.try_acquire(ShardId::new(1).unwrap(), limits, now)
            .await
            .unwrap();
    }
    bus.add_cost(&TierName::new("sonnet").unwrap(), 0.0234)
        .await
        .unwrap();
    bus.add_cost(&TierName::new("haiku").unwrap(), 0.0468)
        .await
        .unwrap();
    findings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_prints_the_briefs_block_from_redis() {
    let server = RedisServer::start();
    populated(&server).await;
    let out = swarm(&server.url(), &["status"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "📊 SWARM STATUS\n\
         Redis Context: 42 findings, ~4200 tokens\n\
         Active Workers: 3 Haikus\n\
         Librarians: Shard1:1450, Shard2:unknown, Shard3:unknown, Shard4:unknown, Shard5:unknown\n\
         Cost This Session: Sonnet $0.0234 | Haiku $0.0468 | Gemini $0\n\
         Token Efficiency: Haiku 66.7% / Sonnet 33.3%\n"
    );
    let json = swarm(&server.url(), &["status", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["findings"], 42);
    assert_eq!(v["shards"][0]["quota"], 1450);
}

#[test]
fn an_unreachable_redis_fails_without_printing_the_password() {
    let out = Command::new(env!("CARGO_BIN_EXE_swarm"))
        .args(["status"])
        .env("REDIS_URL", "redis://swarm:hunter2-secret@127.0.0.1:1/0")
        .output()
        .expect("run swarm");
    assert_eq!(out.status.code(), Some(1));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("cannot open the bus"), "{all}");
    assert!(!all.contains("hunter2"), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_librarian_answers_offline_with_citations_directly_and_through_the_bus() {
    let server = RedisServer::start();
    let findings = populated(&server).await;
    let quota = findings.iter().find(|f| f.title == "Gemini quota").unwrap();

    let out = swarm(
        &server.url(),
        &[
            "librarian",
            "ask",
            "--offline",
            "--tag",
            "cost",
            "--json",
            "what is the gemini quota per day?",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["answered_by"], "extractive");
    let cites: Vec<String> = serde_json::from_value(v["citations"].clone()).unwrap();
    assert_eq!(cites.first(), Some(&quota.id.to_string()), "{v}");

    // The daemon answers a question asked through the bus.
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_swarm"))
        .args(["librarian", "serve", "--offline", "--seconds", "20"])
        .env("REDIS_URL", server.url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = swarm(
        &server.url(),
        &[
            "librarian",
            "ask",
            "--via-bus",
            "15",
            "--json",
            "how much does haiku cost per million input tokens?",
        ],
    );
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "ok", "{v}");
    let haiku = findings.iter().find(|f| f.title == "Haiku price").unwrap();
    assert_eq!(v["citations"][0], haiku.id.to_string(), "{v}");
}

/// `--seconds` too long for the clock ("forever") does not panic: the
/// monitor runs until stopped.
#[test]
fn monitor_with_a_wait_too_long_for_the_clock_runs_instead_of_panicking() {
    let server = RedisServer::start();
    let mut child = Command::new(env!("CARGO_BIN_EXE_swarm"))
        .args(["monitor", "--seconds", "18446744073709551615"])
        .env("REDIS_URL", server.url())
        .env_remove("SWARM_NAMESPACE")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run swarm");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let early = child.try_wait().expect("try_wait");
    let _ = child.kill();
    let out = child.wait_with_output().expect("wait");
    assert!(
        early.is_none(),
        "monitor ended early ({early:?}): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
