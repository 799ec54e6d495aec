//! The librarian-query and shard-testing examples' logic, offline on
//! MemoryBus.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;

use swarm_examples::cross_session::cross_session_query;
use swarm_examples::shard_testing::{MOCK_MODEL, mock_gemini, test_shards};
use swarmbus_agents::AnswerSource;
use swarmbus_core::Bus;
use swarmbus_core::ShardStatus;
use swarmbus_gemini::ClientConfig;
use swarmbus_memory::MemoryBus;

#[tokio::test]
async fn librarian_answers_instance_11_citing_instance_10_cost_findings() {
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let report = cross_session_query(
        Arc::clone(&bus),
        AnswerSource::Extractive,
        AnswerSource::Extractive,
    )
    .await
    .unwrap();
    assert_eq!(report.cost_findings.len(), 2);
    assert!(!report.citations.is_empty());
    assert!(!report.daemon_citations.is_empty());
    for id in report.citations.iter().chain(&report.daemon_citations) {
        assert!(
            report.cost_findings.contains(id),
            "cited {id}, not a cost finding of instance-10"
        );
        assert!(bus.get_finding(id).await.unwrap().is_some());
    }
    assert_eq!(report.answered_by, "extractive");
}

#[tokio::test]
async fn four_of_five_shards_is_eighty_percent_and_paper_work_proceeds() {
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let (server, shards) = mock_gemini().await.unwrap();
    let verdict = test_shards(
        Arc::clone(&bus),
        shards,
        ClientConfig::default().base_url(server.uri()),
        MOCK_MODEL,
    )
    .await
    .unwrap();
    assert_eq!(verdict.report.total(), 5);
    assert_eq!(verdict.report.operational(), 4);
    assert!(verdict.proceed);
    let five = &verdict.report.shards[4];
    assert!(!five.operational);
    assert_ne!(five.status, ShardStatus::Ok);
    assert!(verdict.report.shards[..4].iter().all(|s| s.operational));
    assert!(verdict.librarians_line.starts_with("Librarians:"));
    assert!(verdict.librarians_line.contains("Shard1"));
    assert!(verdict.librarians_line.contains("Shard5"));
}
