//! The status indicator over a MemoryBus: the brief's `📊 SWARM STATUS`
//! block line for line (moved from swarm-core's `status` unit tests to
//! swarm-memory/tests/status.rs, and with the status block to swarmbus-agents).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::Duration;

use chrono::Utc;
use swarmbus_agents::status::{StatusConfig, SwarmStatus};
use swarmbus_core::Finding;
use swarmbus_core::bus::{Counters, FindingStore, QuotaLedger, WorkerRegistry};
use swarmbus_core::keys::{SessionId, ShardId, TierName, WorkerId};
use swarmbus_core::quota::QuotaLimits;
use swarmbus_memory::MemoryBus;

#[tokio::test]
async fn renders_the_briefs_block_line_for_line() {
    let bus = MemoryBus::new();
    let (w, s) = (WorkerId::new("h1").unwrap(), SessionId::new("s").unwrap());
    let fs: Vec<Finding> = (0..42)
        .map(|i| Finding::new(w.clone(), s.clone(), format!("t{i}"), "b"))
        .collect();
    bus.put_findings(&fs).await.unwrap();
    for i in 0..3 {
        let w = WorkerId::new(format!("haiku-{i}")).unwrap();
        bus.heartbeat(&w, Duration::from_secs(60)).await.unwrap();
    }
    let limits = QuotaLimits::new(Some(1500), None);
    let now = Utc::now();
    for _ in 0..50 {
        bus.try_acquire(ShardId::new(1).unwrap(), limits, now)
            .await
            .unwrap();
    }
    bus.mark_ok(ShardId::new(2).unwrap(), limits, now)
        .await
        .unwrap();
    bus.add_cost(&TierName::new("sonnet").unwrap(), 0.0234)
        .await
        .unwrap();
    bus.add_cost(&TierName::new("haiku").unwrap(), 0.0468)
        .await
        .unwrap();

    let status = SwarmStatus::snapshot(&bus, &StatusConfig::default())
        .await
        .unwrap();
    assert_eq!(
        status.render(),
        "📊 SWARM STATUS\n\
         Redis Context: 42 findings, ~4200 tokens\n\
         Active Workers: 3 Haikus\n\
         Librarians: Shard1:1450, Shard2:1500, Shard3:unknown, Shard4:unknown, Shard5:unknown\n\
         Cost This Session: Sonnet $0.0234 | Haiku $0.0468 | Gemini $0\n\
         Token Efficiency: Haiku 66.7% / Sonnet 33.3%\n"
    );
    let json = status.to_json();
    assert_eq!(json["findings"], 42);
    assert_eq!(json["active_workers"], 3);
    assert_eq!(json["errors"], serde_json::json!([]));
}

#[tokio::test]
async fn an_empty_swarm_shows_the_briefs_zero_split() {
    let status = SwarmStatus::snapshot(&MemoryBus::new(), &StatusConfig::default())
        .await
        .unwrap();
    let text = status.render();
    assert!(
        text.contains("Token Efficiency: Haiku 0.0% / Sonnet 100.0%"),
        "{text}"
    );
    assert!(
        text.contains("Redis Context: 0 findings, ~0 tokens"),
        "{text}"
    );
}
