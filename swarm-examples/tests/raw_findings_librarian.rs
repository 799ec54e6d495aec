//! The brief's agents write findings with `redis-cli SET finding:<name>`:
//! once adopted, the librarian (the offline extractive provider) finds and
//! cites them, on one node and on a Cluster. Lives here because only the
//! examples compose the Redis bus and the librarian.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;

use swarmbus_agents::{AnswerSource, Librarian};
use swarmbus_core::bus::FindingStore;
use swarmbus_core::{FindingFilter, FindingOrigin};
use swarmbus_redis::testing::{RedisCluster, RedisServer, random_namespace};
use swarmbus_redis::{RedisBus, RedisConfig, ReindexCursor};

async fn adopt_all(bus: &RedisBus) {
    let mut cursor = Some(ReindexCursor::start());
    while let Some(c) = cursor {
        cursor = bus
            .reindex_findings(Some(c), 1000)
            .await
            .unwrap()
            .next_cursor;
    }
}

async fn the_librarian_cites_raw_findings(bus: RedisBus, cli: impl Fn(&[&str])) {
    let prefix = bus.key_space().prefix().to_owned();
    cli(&[
        "SET",
        &format!("{prefix}finding:deepseek_pricing"),
        "DeepSeek pricing: cache hits cost a tenth of a cache miss per million input tokens.",
    ]);
    cli(&[
        "SET",
        &format!("{prefix}finding:gemini_limits"),
        r#"{"title": "Gemini free tier limits", "detail": "Quotas are counted per project and per model."}"#,
    ]);
    cli(&[
        "HSET",
        &format!("{prefix}finding:redis_keys"),
        "title",
        "KEYS blocks Redis",
        "body",
        "Use SCAN with a cursor instead of KEYS on a large keyspace.",
    ]);
    adopt_all(&bus).await;
    let bus = Arc::new(bus);
    let librarian = Librarian::new(bus.clone(), AnswerSource::Extractive);

    let answer = librarian
        .ask(
            "what does DeepSeek pricing say about cache hits?",
            &FindingFilter::all(),
        )
        .await
        .unwrap();
    assert_eq!(
        answer.citations[0].as_str(),
        "deepseek_pricing",
        "{answer:?}"
    );
    assert!(answer.answer.contains("cache hits"), "{}", answer.answer);

    let answer = librarian
        .ask("is SCAN better than KEYS on Redis?", &FindingFilter::all())
        .await
        .unwrap();
    assert_eq!(answer.citations[0].as_str(), "redis_keys", "{answer:?}");
    let cited = bus
        .get_finding(&answer.citations[0])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cited.origin(), FindingOrigin::RawHash);

    let answer = librarian
        .ask("Gemini quotas per project and model", &FindingFilter::all())
        .await
        .unwrap();
    assert_eq!(answer.citations[0].as_str(), "gemini_limits", "{answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_librarian_cites_findings_written_with_redis_cli_on_a_single_node() {
    let server = RedisServer::start();
    let bus = RedisBus::connect(RedisConfig::from_url(&server.url()).unwrap())
        .await
        .unwrap();
    the_librarian_cites_raw_findings(bus, |args| {
        server.cli(args);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_librarian_cites_findings_written_with_redis_cli_on_the_cluster() {
    let cluster = RedisCluster::start();
    let bus = RedisBus::connect(
        RedisConfig::cluster(cluster.urls())
            .unwrap()
            .namespace(random_namespace()),
    )
    .await
    .unwrap();
    the_librarian_cites_raw_findings(bus, |args| {
        let out = cluster.nodes[0].cli(&[&["-c"][..], args].concat());
        assert!(!out.contains("ERR"), "{out}");
    })
    .await;
}
