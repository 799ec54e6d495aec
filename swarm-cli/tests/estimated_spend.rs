//! Issue 19, build 2: spend is never under-reported. A `swarm worker run`
//! on a real redis-server is killed (SIGKILL) while the model (a local mock
//! of the Messages API that holds its answer) has its request: the call was
//! reserved but never settled, and `swarm cost report` shows it as
//! estimated spend at the reserved amount, apart from the exact spend (0).
//! Before: nothing in the ledger or the report showed the call.

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use swarmbus_core::{SessionId, Task, TaskQueue, WorkerId};
use swarmbus_cost::{Ledger, Money, PriceTable};
use swarmbus_redis::testing::RedisServer;
use swarmbus_redis::{RedisBus, RedisConfig};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn swarm(url: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_swarm"));
    cmd.env("REDIS_URL", url)
        .env_remove("SWARM_NAMESPACE")
        .env_remove("SWARM_SESSION")
        .env_remove("SWARM_WORKER")
        .env_remove("SWARM_MEMORY")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("GEMINI_API_KEY_SHARD1")
        .stdin(Stdio::null());
    cmd
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn answer() -> Value {
    json!({
        "id": "msg_late", "type": "message", "role": "assistant",
        "model": "claude-haiku-4-5", "content": [{"type": "text", "text": "Done\nlate"}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 10, "output_tokens": 10,
                  "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_call_leaves_its_reservation_as_estimated_spend() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(answer())
                .set_delay(Duration::from_secs(10)),
        )
        .mount(&mock)
        .await;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::write(dir.path().join("notes.md"), "a\n").unwrap();

    let mut worker = swarm(&url)
        .args(["worker", "run", "--id", "w1", "--workspace"])
        .arg(dir.path())
        .env("ANTHROPIC_API_KEY", "test-key-of-the-worker")
        .env("ANTHROPIC_BASE_URL", mock.uri())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let bus = Arc::new(
        RedisBus::connect(RedisConfig::from_url(&url).unwrap())
            .await
            .unwrap(),
    );
    let task = Task::new(SessionId::new("s1").unwrap(), "notes", "read notes.md");
    bus.push_task(&WorkerId::new("w1").unwrap(), &task)
        .await
        .unwrap();

    // Killed once the model has the request (its answer held 10 s).
    let ledger = Ledger::new(
        Arc::clone(&bus) as Arc<dyn swarmbus_core::Bus>,
        Arc::new(PriceTable::built_in().unwrap()),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let asked = !mock
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty();
        if asked {
            break;
        }
        if let Ok(Some(status)) = worker.try_wait() {
            let out = worker.wait_with_output().unwrap();
            panic!("the worker exited {status} before calling: {}", text(&out));
        }
        assert!(
            Instant::now() < deadline,
            "the worker never called the model"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.kill().unwrap(); // SIGKILL: no Drop, no settle
    let _ = worker.wait().unwrap();

    let estimates = ledger.estimates().await.unwrap();
    assert_eq!(estimates.estimates.len(), 1, "{estimates:?}");
    let reserved = estimates.estimates[0].usd.expect("a priced estimate");
    assert!(reserved > Money::ZERO);
    assert_eq!(ledger.entries().await.unwrap().entries.len(), 0);

    let out = swarm(&url)
        .args(["cost", "report", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["estimated_calls"], 1, "{report}");
    assert_eq!(report["estimated_usd"], reserved.to_string(), "{report}");
    assert_eq!(
        report["estimated_by_tier"]["haiku"]["usd"],
        reserved.to_string(),
        "{report}"
    );
    assert_eq!(report["total"]["calls"], 0, "{report}");
    assert_eq!(report["total"]["usd"], Money::ZERO.to_string(), "{report}");

    let out = swarm(&url).args(["cost", "report"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains(&format!("Estimated (unsettled): ${reserved} in 1 calls")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("haiku: ${reserved} est. in 1 calls")),
        "{shown}"
    );
    // `cost:haiku` (the brief's exact-only float key) stays unset.
    assert_eq!(redis.cli(&["GET", "cost:haiku"]).trim(), "");
}

/// The same call answered: booked at its exact price under its hold (the
/// runtime's usage record matched to its reservation), nothing left
/// estimated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_answered_is_booked_under_its_hold_and_leaves_no_estimate() {
    let redis = RedisServer::start();
    let url = redis.url();
    let mock = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(ResponseTemplate::new(200).set_body_json(answer()))
        .mount(&mock)
        .await;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let bus = Arc::new(
        RedisBus::connect(RedisConfig::from_url(&url).unwrap())
            .await
            .unwrap(),
    );
    let task = Task::new(SessionId::new("s1").unwrap(), "notes", "read notes.md");
    bus.push_task(&WorkerId::new("w1").unwrap(), &task)
        .await
        .unwrap();
    let out = swarm(&url)
        .args(["worker", "run", "--id", "w1", "--once", "--workspace"])
        .arg(dir.path())
        .env("ANTHROPIC_API_KEY", "test-key-of-the-worker")
        .env("ANTHROPIC_BASE_URL", mock.uri())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let ledger = Ledger::new(
        Arc::clone(&bus) as Arc<dyn swarmbus_core::Bus>,
        Arc::new(PriceTable::built_in().unwrap()),
    )
    .unwrap();
    let entries = ledger.entries().await.unwrap().entries;
    let estimates = ledger.estimates().await.unwrap().estimates;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(estimates.len(), 1, "{estimates:?}");
    assert_eq!(entries[0].hold, Some(estimates[0].hold));
    assert_eq!(entries[0].session, Some(SessionId::new("s1").unwrap()));

    let out = swarm(&url)
        .args(["cost", "report", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["estimated_calls"], 0, "{report}");
    assert_eq!(report["estimated_usd"], Money::ZERO.to_string(), "{report}");
    assert_eq!(report["total"]["calls"], 1, "{report}");
    assert_ne!(report["total"]["usd"], Money::ZERO.to_string(), "{report}");
}
