//! RedisBus on a local Redis Cluster of three masters: the same bus code,
//! the same conformance suite, one swarm's keys in one hash slot.

mod common;

use std::collections::HashSet;

use common::{RedisCluster, random_namespace};
use swarmbus_core::bus::{FindingStore, TaskQueue, WorkerRegistry};
use swarmbus_core::keys::{SessionId, WorkerId};
use swarmbus_core::{Finding, Task};
use swarmbus_redis::{RedisBus, RedisConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_passes_the_conformance_suite_with_each_swarm_in_one_slot() {
    let cluster = RedisCluster::start();
    let urls = cluster.urls();

    // Without a namespace a cluster is refused: multi-key scripts need one slot.
    let err = RedisBus::connect(RedisConfig::cluster(&urls).unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("namespace"), "{err}");

    // One seed node is enough; the bus finds the others.
    let config = RedisConfig::cluster(&urls[1..2])
        .unwrap()
        .namespace(random_namespace());
    let bus = RedisBus::connect(config).await.unwrap();
    assert!(bus.is_cluster());
    swarmbus_memory::conformance::run_all(&bus).await;

    // A second swarm on the same cluster, most likely in another slot.
    let other = RedisBus::connect(
        RedisConfig::cluster(&urls)
            .unwrap()
            .namespace(random_namespace()),
    )
    .await
    .unwrap();
    let w = WorkerId::new("haiku-1").unwrap();
    let f = Finding::new(w.clone(), SessionId::new("s").unwrap(), "t", "b");
    other.put_finding(&f).await.unwrap();
    other
        .push_task(&w, &Task::new(SessionId::new("s").unwrap(), "k", "x"))
        .await
        .unwrap();
    other
        .heartbeat(&w, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(other.count_findings().await.unwrap(), 1);
    assert_eq!(other.alive_workers().await.unwrap().len(), 1);

    // Every key of each swarm hashes to its namespace's slot.
    for bus in [&bus, &other] {
        let prefix = bus.key_space().prefix().to_owned();
        let mut slots = HashSet::new();
        for node in &cluster.nodes {
            let keys = node.cli(&["--scan", "--pattern", &format!("{prefix}*")]);
            for key in keys.lines().filter(|k| !k.is_empty()) {
                let slot = node.cli(&["CLUSTER", "KEYSLOT", key]);
                slots.insert(slot.trim().to_owned());
            }
        }
        assert_eq!(slots.len(), 1, "keys of {prefix} span slots {slots:?}");
    }
}
