//! The shard test protocol: probe every shard, record state, quota and
//! latency, refuse paper-like work below 80 % operational.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::sync::Arc;

use common::{MODEL, fixture, success_body, unary_path};
use secrecy::SecretString;
use swarmbus_core::ShardStatus;
use swarmbus_core::bus::QuotaLedger;
use swarmbus_core::keys::ShardId;
use swarmbus_core::quota::QuotaLimits;
use swarmbus_gemini::{ClientConfig, Error, ErrorKind, PoolConfig, ShardConfig, ShardPool};
use swarmbus_memory::MemoryBus;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn key(n: u32) -> String {
    format!("test-probe-key-{n}-DO-NOT-LEAK")
}

async fn answer(server: &MockServer, n: u32, status: u16, body: Vec<u8>) {
    Mock::given(method("POST"))
        .and(path(unary_path(MODEL)))
        .and(header("x-goog-api-key", key(n).as_str()))
        .respond_with(ResponseTemplate::new(status).set_body_raw(body, "application/json"))
        .mount(server)
        .await;
}

fn pool(server: &MockServer, bus: Arc<MemoryBus>, n: u32) -> ShardPool<MemoryBus> {
    let shards = (1..=n)
        .map(|i| {
            ShardConfig::new(ShardId::new(i).unwrap(), SecretString::from(key(i)))
                .with_project(format!("project-{i}"))
        })
        .collect();
    ShardPool::new(
        shards,
        bus,
        PoolConfig::default()
            .model(MODEL)
            .client(ClientConfig::default().base_url(server.uri())),
    )
    .unwrap()
}

#[tokio::test]
async fn four_of_five_operational_shards_allow_paper_work() {
    let server = MockServer::start().await;
    for n in 1..=4 {
        answer(&server, n, 200, success_body("OK")).await;
    }
    answer(
        &server,
        5,
        400,
        fixture("googleai/unary-failure-api-key.json"),
    )
    .await;
    let bus = Arc::new(MemoryBus::new());
    let report = pool(&server, bus.clone(), 5).test_shards().await.unwrap();
    assert_eq!(report.total(), 5);
    assert_eq!(report.operational(), 4);
    assert!((report.operational_fraction() - 0.8).abs() < 1e-9);
    assert!(report.ready_for_paper_work());
    report.require(80).unwrap();

    let s1 = &report.shards[0];
    assert!(s1.operational && s1.probed);
    assert_eq!(s1.status, ShardStatus::Ok);
    assert_eq!(s1.remaining_today, Some(1499));
    assert!(s1.latency.is_some());
    assert_eq!(s1.project.as_deref(), Some("project-1"));
    let s5 = &report.shards[4];
    assert!(!s5.operational);
    assert_eq!(s5.status, ShardStatus::Disabled);
    assert_eq!(s5.error_kind, Some(ErrorKind::InvalidKey));
    // The ledger keeps what the test found.
    let ids: Vec<ShardId> = (1..=5).map(|i| ShardId::new(i).unwrap()).collect();
    let quotas = bus.shard_quotas(&ids).await.unwrap();
    assert_eq!(quotas[0], Some(1499));
    let states = bus
        .shard_states(&ids, QuotaLimits::free_tier(), chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(states[4].status, ShardStatus::Disabled);
}

#[tokio::test]
async fn three_of_five_refuse_paper_work() {
    let server = MockServer::start().await;
    for n in 1..=3 {
        answer(&server, n, 200, success_body("OK")).await;
    }
    answer(
        &server,
        4,
        429,
        fixture("transcribed/error-429-per-day-free-tier.json"),
    )
    .await;
    answer(
        &server,
        5,
        403,
        fixture("transcribed/error-403-permission-denied-leaked-key.json"),
    )
    .await;
    let report = pool(&server, Arc::new(MemoryBus::new()), 5)
        .test_shards()
        .await
        .unwrap();
    assert_eq!(report.operational(), 3);
    assert!(!report.ready_for_paper_work());
    let e = report.require(80).unwrap_err();
    assert!(matches!(
        e,
        Error::NotEnoughShards {
            operational: 3,
            total: 5,
            required_percent: 80
        }
    ));
    assert_eq!(report.shards[3].status, ShardStatus::Exhausted);
    assert_eq!(report.shards[3].remaining_today, Some(0));
    assert!(report.shards[3].next_usable.is_some());
    assert_eq!(report.shards[4].status, ShardStatus::Disabled);
}

#[tokio::test]
async fn a_shard_the_ledger_knows_is_exhausted_is_not_probed() {
    let server = MockServer::start().await;
    answer(&server, 1, 200, success_body("OK")).await;
    let bus = Arc::new(MemoryBus::new());
    let until = chrono::Utc::now() + chrono::Duration::hours(3);
    bus.exhaust_until(ShardId::new(1).unwrap(), until, chrono::Utc::now())
        .await
        .unwrap();
    let report = pool(&server, bus, 1).test_shards().await.unwrap();
    let s = &report.shards[0];
    assert!(!s.probed);
    assert!(!s.operational);
    assert_eq!(s.status, ShardStatus::Exhausted);
    assert_eq!(s.next_usable, Some(until));
    assert!(server.received_requests().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_probe_with_a_blocked_answer_still_proves_the_shard() {
    let server = MockServer::start().await;
    answer(
        &server,
        1,
        200,
        fixture("vertexai/unary-failure-prompt-blocked-safety.json"),
    )
    .await;
    let report = pool(&server, Arc::new(MemoryBus::new()), 1)
        .test_shards()
        .await
        .unwrap();
    assert!(report.shards[0].operational);
    assert_eq!(report.shards[0].error_kind, Some(ErrorKind::Blocked));
    assert!(report.ready_for_paper_work());
}
