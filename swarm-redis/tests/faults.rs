//! Faults, each asserting that nothing is lost:
//!
//! 1. Redis shut down and restarted (same dir, appendonly yes) in the middle
//!    of 10,000 finding writes: afterwards all 10,000 are there exactly once.
//! 2. A consumer offline while 1,000 findings are published receives all
//!    1,000 after it reconnects.
//! 3. A worker process killed mid-task: its task is reclaimed and completed
//!    by another worker.
//! 4. 8 OS processes race for 5 shards with a quota of 100 each: exactly 500
//!    grants, no quota below 0.
//!
//! (Fault 5, a foreign value under a finding key, is in `single.rs`.)
//!
//! The child processes are this test executable run again with an
//! environment variable that selects what the child does.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{RedisServer, random_namespace, this_executable};
use swarmbus_core::bus::{FindingFeed, FindingStore, QuotaLedger, TaskQueue, WorkerRegistry};
use swarmbus_core::keys::{GroupName, Namespace, SessionId, ShardId, WorkerId};
use swarmbus_core::quota::QuotaLimits;
use swarmbus_core::{Finding, FindingFilter, Task};
use swarmbus_redis::{RedisBus, RedisConfig};

const CHILD_QUOTA: &str = "SWARM_REDIS_TEST_CHILD_QUOTA";
const CHILD_WORKER: &str = "SWARM_REDIS_TEST_CHILD_WORKER";

fn finding(worker: &WorkerId, i: usize) -> Finding {
    Finding::new(
        worker.clone(),
        SessionId::new("faults").unwrap(),
        format!("finding {i}"),
        "Written while Redis comes and goes.",
    )
}

async fn connect(url: &str, ns: &Namespace) -> RedisBus {
    RedisBus::connect(
        RedisConfig::from_url(url)
            .unwrap()
            .namespace(ns.clone())
            .retry_for(Duration::from_secs(30)),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_the_middle_of_10000_writes_loses_and_duplicates_nothing() {
    let server = RedisServer::start_persistent();
    let url = server.url();
    let ns = random_namespace();
    let bus = connect(&url, &ns).await;
    let w = WorkerId::new("writer").unwrap();
    let all: Vec<Finding> = (0..10_000).map(|i| finding(&w, i)).collect();
    let done = Arc::new(AtomicUsize::new(0));

    // The restart happens once 3,000 writes were acknowledged.
    let restarter = {
        let done = done.clone();
        tokio::task::spawn_blocking(move || {
            let mut server = server;
            while done.load(Ordering::SeqCst) < 3_000 {
                std::thread::sleep(Duration::from_millis(2));
            }
            server.stop();
            let written_before_restart = done.load(Ordering::SeqCst);
            // Down for a moment: writers meet refused connections.
            std::thread::sleep(Duration::from_millis(300));
            server.start_again();
            (server, written_before_restart)
        })
    };
    let mut writers = Vec::new();
    for part in all.chunks(1_250) {
        let (bus, part, done) = (bus.clone(), part.to_vec(), done.clone());
        writers.push(tokio::spawn(async move {
            for f in &part {
                // An application's retry on top of the bus's own: a write
                // that failed is sent again until it is acknowledged.
                loop {
                    match bus.put_finding(f).await {
                        Ok(_) => break,
                        Err(e) if e.is_transient() => {
                            tokio::time::sleep(Duration::from_millis(50)).await
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let (server, written_before_restart) = restarter.await.unwrap();
    assert!(
        written_before_restart < 10_000,
        "the restart came in the middle of the writes ({written_before_restart} done)"
    );

    assert_eq!(bus.count_findings().await.unwrap(), 10_000);
    let listed = bus.list_findings(&FindingFilter::all()).await.unwrap();
    assert!(listed.unreadable.is_empty());
    let ids: HashSet<_> = listed.findings.iter().map(|f| f.id.clone()).collect();
    assert_eq!(listed.findings.len(), 10_000, "listed exactly once each");
    assert_eq!(
        ids,
        all.iter().map(|f| f.id.clone()).collect::<HashSet<_>>()
    );
    // Each finding entered the durable feed once.
    let feed = bus.key_space().internal("feed");
    assert_eq!(server.cli(&["XLEN", &feed]).trim(), "10000");
    // And the data really came back from disk: a fresh connection after
    // another restart sees the same.
    let mut server = server;
    server.restart();
    let again = connect(&url, &ns).await;
    assert_eq!(again.count_findings().await.unwrap(), 10_000);
    let got = again
        .get_findings(&all.iter().map(|f| f.id.clone()).collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(got.iter().all(Option::is_some));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_offline_while_1000_findings_are_published_gets_them_all() {
    let server = RedisServer::start();
    let ns = random_namespace();
    let group = GroupName::new("archivist").unwrap();
    let consumer = WorkerId::new("archivist-1").unwrap();
    {
        // The consumer joins, reads what there is, and goes away.
        let bus = connect(&server.url(), &ns).await;
        let got = bus
            .read_feed(&group, &consumer, 100, Duration::from_millis(10))
            .await
            .unwrap();
        assert!(got.is_empty());
    }
    let publisher = connect(&server.url(), &ns).await;
    let w = WorkerId::new("publisher").unwrap();
    let published: Vec<Finding> = (0..1_000).map(|i| finding(&w, i)).collect();
    for batch in published.chunks(100) {
        assert_eq!(publisher.put_findings(batch).await.unwrap(), 100);
    }
    drop(publisher);

    // Back online, with a new connection.
    let bus = connect(&server.url(), &ns).await;
    let mut seen = Vec::new();
    loop {
        let entries = bus
            .read_feed(&group, &consumer, 128, Duration::from_millis(100))
            .await
            .unwrap();
        if entries.is_empty() {
            break;
        }
        let ids: Vec<swarmbus_core::bus::FeedEntryId> =
            entries.iter().map(|e| e.entry.clone()).collect();
        seen.extend(entries.iter().map(|e| e.finding.clone()));
        bus.ack_feed(&group, &ids).await.unwrap();
    }
    assert_eq!(seen.len(), 1_000, "each finding delivered once");
    assert_eq!(
        seen.iter().cloned().collect::<HashSet<_>>(),
        published
            .iter()
            .map(|f| f.id.clone())
            .collect::<HashSet<_>>()
    );
}

/// Child: a worker that claims its task, keeps heartbeating, and waits to
/// be killed.
async fn worker_child(spec: &str) {
    let mut parts = spec.split(' ');
    let (url, ns, worker) = (
        parts.next().unwrap(),
        Namespace::new(parts.next().unwrap()).unwrap(),
        WorkerId::new(parts.next().unwrap()).unwrap(),
    );
    let bus = connect(url, &ns).await;
    let ttl = Duration::from_millis(800);
    bus.heartbeat(&worker, ttl).await.unwrap();
    let claim = bus
        .claim_task(&worker, Duration::from_secs(10))
        .await
        .unwrap()
        .expect("a task for the child");
    println!("CLAIMED {}", claim.task.id);
    loop {
        bus.heartbeat(&worker, ttl).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_task_has_its_task_completed_by_another() {
    if let Ok(spec) = std::env::var(CHILD_WORKER) {
        return worker_child(&spec).await;
    }
    let server = RedisServer::start();
    let ns = random_namespace();
    let bus = connect(&server.url(), &ns).await;
    let doomed = WorkerId::new("haiku-doomed").unwrap();
    let rescuer = WorkerId::new("haiku-rescuer").unwrap();
    let task = Task::new(SessionId::new("faults").unwrap(), "summarise", "chapter 3");
    bus.push_task(&doomed, &task).await.unwrap();

    let mut child = Command::new(this_executable())
        .args([
            "a_worker_killed_mid_task_has_its_task_completed_by_another",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(
            CHILD_WORKER,
            format!("{} {} {}", server.url(), ns.as_str(), doomed),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let claimed = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            // libtest prints "test … ... " before the output, on the same line.
            .find_map(|l| l.split_once("CLAIMED ").map(|(_, id)| id.trim().to_owned()))
    })
    .await
    .unwrap();
    assert_eq!(
        claimed,
        Some(task.id.to_string()),
        "the child took the task"
    );
    assert!(bus.is_alive(&doomed).await.unwrap());
    let early = bus.reclaim_abandoned(&rescuer, 3).await.unwrap();
    assert!(early.requeued.is_empty(), "a live worker keeps its task");

    child.kill().unwrap();
    child.wait().unwrap();
    // Its heartbeat expires (TTL 800 ms) without anyone deregistering it.
    let mut polls = 0;
    while bus.is_alive(&doomed).await.unwrap() {
        polls += 1;
        assert!(polls < 500, "the heartbeat never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = bus.reclaim_abandoned(&rescuer, 3).await.unwrap();
    assert_eq!(report.requeued, vec![task.id]);
    assert_eq!(report.from_workers, vec![doomed.clone()]);

    let claim = bus
        .claim_task(&rescuer, Duration::from_secs(1))
        .await
        .unwrap()
        .expect("the rescuer gets the task");
    assert_eq!(claim.task, task);
    assert_eq!(claim.deliveries, 2);
    let result = finding(&rescuer, 1).with_task(task.id);
    bus.put_finding(&result).await.unwrap();
    bus.ack_task(&claim).await.unwrap();

    let done = bus
        .list_findings(&FindingFilter::all().task(task.id))
        .await
        .unwrap();
    assert_eq!(
        done.findings,
        vec![result],
        "completed once, by the rescuer"
    );
    assert_eq!(bus.queued_tasks(&doomed).await.unwrap(), 0);
    assert_eq!(bus.queued_tasks(&rescuer).await.unwrap(), 0);
    assert!(bus.failed_tasks().await.unwrap().is_empty());
}

/// Child: takes grants from the five shards until every one says no, then
/// prints how many it got.
async fn quota_child(spec: &str) {
    let mut parts = spec.split(' ');
    let (url, ns, now) = (
        parts.next().unwrap(),
        Namespace::new(parts.next().unwrap()).unwrap(),
        parts.next().unwrap(),
    );
    let now: DateTime<Utc> = DateTime::parse_from_rfc3339(now)
        .unwrap()
        .with_timezone(&Utc);
    let bus = connect(url, &ns).await;
    let limits = QuotaLimits::new(Some(100), None);
    let shards: Vec<ShardId> = (1..=5).map(|n| ShardId::new(n).unwrap()).collect();
    let mut grants = 0;
    let mut open: Vec<ShardId> = shards.clone();
    while !open.is_empty() {
        let mut still = Vec::new();
        for s in open {
            if bus.try_acquire(s, limits, now).await.unwrap().is_granted() {
                grants += 1;
                still.push(s);
            }
        }
        open = still;
    }
    println!("GRANTS {grants}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_processes_racing_for_five_shards_get_exactly_500_grants() {
    if let Ok(spec) = std::env::var(CHILD_QUOTA) {
        return quota_child(&spec).await;
    }
    let server = RedisServer::start();
    let ns = random_namespace();
    // One fixed instant for everyone, so the race never straddles a Pacific
    // midnight.
    let now = Utc::now();
    let spec = format!("{} {} {}", server.url(), ns.as_str(), now.to_rfc3339());
    let children: Vec<_> = (0..8)
        .map(|_| {
            Command::new(this_executable())
                .args([
                    "eight_processes_racing_for_five_shards_get_exactly_500_grants",
                    "--exact",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env(CHILD_QUOTA, &spec)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut total = 0;
    let mut per_child = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "a racer failed");
        let text = String::from_utf8_lossy(&out.stdout);
        let grants: usize = text
            .lines()
            .find_map(|l| l.split_once("GRANTS ").map(|(_, n)| n.trim()))
            .expect("the child reports its grants")
            .parse()
            .unwrap();
        per_child.push(grants);
        total += grants;
    }
    assert_eq!(total, 500, "grants per process: {per_child:?}");

    let bus = connect(&server.url(), &ns).await;
    let shards: Vec<ShardId> = (1..=5).map(|n| ShardId::new(n).unwrap()).collect();
    let quotas = bus.shard_quotas(&shards).await.unwrap();
    assert_eq!(quotas, vec![Some(0); 5], "no quota below 0");
    let limits = QuotaLimits::new(Some(100), None);
    for st in bus.shard_states(&shards, limits, now).await.unwrap() {
        assert_eq!(st.used_today, 100, "{st:?}");
    }
}
