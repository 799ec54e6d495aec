//! RedisBus on one real redis-server: the core conformance suite, the
//! brief's key contract, O(1) status reads, connections and credentials.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use chrono::Utc;
use common::{RedisServer, namespaced_bus, single_node};
use secrecy::SecretString;
use swarmbus_core::bus::{
    Counters, FindingStore, HaltSwitch, QuotaLedger, Stored, TaskQueue, WorkerRegistry,
};
use swarmbus_core::error::{Error, Retry};
use swarmbus_core::keys::{SessionId, ShardId, TierName, WorkerId};
use swarmbus_core::quota::QuotaLimits;
use swarmbus_core::worker::parse_heartbeat;
use swarmbus_core::{Finding, FindingFilter, HaltReport, Task};
use swarmbus_redis::{RedisBus, RedisConfig};

fn finding(i: usize) -> Finding {
    Finding::new(
        WorkerId::new("haiku-1").unwrap(),
        SessionId::new("instance-11").unwrap(),
        format!("finding {i}"),
        "Redis pub/sub is at-most-once; keep findings durable.",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes_on_a_single_node() {
    let (url, _server) = single_node();
    // On a server of our own the brief's plain keys; on REDIS_URL a fresh
    // namespace, so that nothing else there is touched.
    let bus = if _server.is_some() {
        RedisBus::connect(RedisConfig::from_url(&url).unwrap())
            .await
            .unwrap()
    } else {
        namespaced_bus(&url).await
    };
    swarmbus_memory::conformance::run_all(&bus).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_conformance_suite_passes_in_a_namespace() {
    let (url, _server) = single_node();
    let bus = namespaced_bus(&url).await;
    swarmbus_memory::conformance::run_all(&bus).await;
}

/// The brief's Python tools read these keys with GET/LRANGE: names and
/// value types must be exactly the brief's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_brief_tools_read_what_the_bus_writes() {
    let server = RedisServer::start();
    let bus = RedisBus::connect(RedisConfig::from_url(&server.url()).unwrap())
        .await
        .unwrap();
    let f = finding(1);
    bus.put_finding(&f).await.unwrap();
    let worker = WorkerId::new("haiku-7").unwrap();
    bus.heartbeat(&worker, Duration::from_secs(60))
        .await
        .unwrap();
    let shard = ShardId::new(1).unwrap();
    bus.try_acquire(shard, QuotaLimits::free_tier(), Utc::now())
        .await
        .unwrap();
    bus.mark_ok(shard, QuotaLimits::free_tier(), Utc::now())
        .await
        .unwrap();
    bus.add_cost(&TierName::new("sonnet").unwrap(), 0.0234)
        .await
        .unwrap();
    bus.add_cost(&TierName::new("haiku").unwrap(), 0.0156)
        .await
        .unwrap();
    bus.set_context_tokens(4200).await.unwrap();
    let task = Task::new(SessionId::new("instance-11").unwrap(), "grep", "find TODOs");
    bus.push_task(&worker, &task).await.unwrap();
    bus.halt(&HaltReport::new("shard 2 failed", "paper: section 3"))
        .await
        .unwrap();

    let get = |key: &str| server.cli(&["GET", key]).trim().to_owned();
    let ty = |key: &str| server.cli(&["TYPE", key]).trim().to_owned();

    let key = format!("finding:{}", f.id);
    assert_eq!(ty(&key), "string");
    let json: serde_json::Value = serde_json::from_str(&get(&key)).unwrap();
    assert_eq!(json["title"], "finding 1");
    // The brief's context indicator counts with KEYS (we never do).
    assert_eq!(server.cli(&["KEYS", "finding:*"]).trim(), key);

    let status = get("worker:status:haiku-7");
    assert!(status.parse::<f64>().is_ok(), "a float timestamp: {status}");
    parse_heartbeat("worker:status:haiku-7", &status).unwrap();
    let ttl: i64 = server
        .cli(&["TTL", "worker:status:haiku-7"])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 0 && ttl <= 60, "heartbeat carries a TTL: {ttl}");

    assert_eq!(get("librarian:shard1:quota"), "1499");
    assert_eq!(get("librarian:shard1:status"), "ok");
    assert_eq!(get("cost:sonnet").parse::<f64>().unwrap(), 0.0234);
    assert_eq!(get("cost:haiku").parse::<f64>().unwrap(), 0.0156);
    assert_eq!(get("context:active"), "4200");
    assert_eq!(ty("worker:tasks:haiku-7"), "list");
    let queued = server.cli(&["LRANGE", "worker:tasks:haiku-7", "0", "-1"]);
    let queued: serde_json::Value = serde_json::from_str(queued.trim()).unwrap();
    assert_eq!(queued["instructions"], "find TODOs");
    let halt: serde_json::Value = serde_json::from_str(&get("halt:reason")).unwrap();
    assert_eq!(halt["failed"], "shard 2 failed");
}

/// Issue fault (5), as amended by issue 10: a value that is not our JSON
/// is read as a raw finding (plain text here); a value that is not a STRING
/// or HASH is a typed error naming the key; the listing goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_value_under_a_finding_key_is_read_or_reported_naming_the_key() {
    let server = RedisServer::start();
    let bus = RedisBus::connect(RedisConfig::from_url(&server.url()).unwrap())
        .await
        .unwrap();
    let fs: Vec<Finding> = (0..4).map(finding).collect();
    bus.put_findings(&fs).await.unwrap();
    let garbled = format!("finding:{}", fs[1].id);
    let listy = format!("finding:{}", fs[2].id);
    server.cli(&["SET", &garbled, "not json {"]);
    server.cli(&["DEL", &listy]);
    server.cli(&["RPUSH", &listy, "a", "b"]);

    let text = bus.get_finding(&fs[1].id).await.unwrap().unwrap();
    assert_eq!(text.origin(), swarmbus_core::FindingOrigin::RawText);
    assert_eq!(text.title, "not json {");
    match bus.get_finding(&fs[2].id).await.unwrap_err() {
        Error::WrongType { key, found, .. } => {
            assert_eq!(key, listy);
            assert_eq!(found, "list");
        }
        other => panic!("expected WrongType, got {other:?}"),
    }
    let listing = bus.list_findings(&FindingFilter::all()).await.unwrap();
    let ids: Vec<_> = listing.findings.iter().map(|f| f.id.clone()).collect();
    assert_eq!(ids.len(), 3, "the other findings are listed");
    assert!(ids.contains(&fs[0].id) && ids.contains(&fs[1].id) && ids.contains(&fs[3].id));
    let named: Vec<String> = listing.unreadable.iter().map(|u| u.key.clone()).collect();
    assert_eq!(
        named,
        vec![listy.clone()],
        "the unreadable value names its key"
    );
    // Writing over a foreign value is refused, never a silent overwrite.
    assert!(matches!(
        bus.put_finding(&fs[2]).await.unwrap_err(),
        Error::WrongType { .. }
    ));
    assert!(matches!(
        bus.put_finding(&fs[1]).await.unwrap_err(),
        Error::Conflict { .. }
    ));
    assert_eq!(
        bus.put_finding(&fs[0]).await.unwrap(),
        Stored::AlreadyPresent
    );
}

/// Counting findings and reading every heartbeat cost the same few round
/// trips whatever their number, and never KEYS or SCAN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reads_take_a_constant_number_of_round_trips() {
    let server = RedisServer::start();
    let bus = RedisBus::connect(RedisConfig::from_url(&server.url()).unwrap())
        .await
        .unwrap();
    let batch: Vec<Finding> = (0..1200).map(finding).collect();
    assert_eq!(bus.put_findings(&batch).await.unwrap(), 1200);
    for i in 0..1000 {
        let w = WorkerId::new(format!("w{i}")).unwrap();
        bus.heartbeat(&w, Duration::from_secs(60)).await.unwrap();
    }
    let dead = WorkerId::new("gone").unwrap();
    bus.heartbeat(&dead, Duration::from_millis(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;

    let before = bus.round_trips();
    assert_eq!(bus.count_findings().await.unwrap(), 1200);
    assert_eq!(bus.round_trips() - before, 1, "count: one round trip");

    let before = bus.round_trips();
    let alive = bus.alive_workers().await.unwrap();
    assert_eq!(alive.len(), 1000, "the expired worker is pruned");
    assert!(
        bus.round_trips() - before <= 2,
        "1,000 heartbeats in {} round trips",
        bus.round_trips() - before
    );
    let before = bus.round_trips();
    assert_eq!(bus.count_alive_workers().await.unwrap(), 1000);
    assert_eq!(bus.round_trips() - before, 1);

    let stats = server.cli(&["INFO", "commandstats"]);
    assert!(!stats.contains("cmdstat_keys:"), "KEYS is never used");
    assert!(!stats.contains("cmdstat_scan:"), "SCAN is never used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_larger_than_one_script_with_a_conflict_writes_nothing() {
    let (url, _server) = single_node();
    let bus = namespaced_bus(&url).await;
    let mut batch: Vec<Finding> = (0..1300).map(finding).collect();
    let original = batch[900].clone();
    bus.put_finding(&original).await.unwrap();
    batch[900].body = "changed".into();
    let err = bus.put_findings(&batch).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert_eq!(
        bus.count_findings().await.unwrap(),
        1,
        "nothing else written"
    );
    batch[900] = original;
    assert_eq!(bus.put_findings(&batch).await.unwrap(), 1299);
    assert_eq!(bus.count_findings().await.unwrap(), 1300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_flushed_from_the_server_are_loaded_again() {
    let server = RedisServer::start();
    let bus = namespaced_bus(&server.url()).await;
    server.cli(&["SCRIPT", "FLUSH"]);
    assert_eq!(bus.put_finding(&finding(1)).await.unwrap(), Stored::New);
    server.cli(&["SCRIPT", "FLUSH"]);
    assert_eq!(
        bus.put_findings(&[finding(2), finding(3)]).await.unwrap(),
        2
    );
    assert_eq!(bus.count_findings().await.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_keep_swarms_apart_on_one_server() {
    let server = RedisServer::start();
    let a = namespaced_bus(&server.url()).await;
    let b = namespaced_bus(&server.url()).await;
    a.put_finding(&finding(1)).await.unwrap();
    assert_eq!(a.count_findings().await.unwrap(), 1);
    assert_eq!(b.count_findings().await.unwrap(), 0);
    let prefix = a.key_space().prefix().to_owned();
    let keys = server.cli(&["KEYS", "*"]);
    assert!(
        keys.lines().all(|k| k.starts_with(&prefix)),
        "every key of swarm a is under {prefix}: {keys}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_connects_and_its_password_is_never_shown() {
    let server = RedisServer::start();
    let password = "pw-that-must-not-leak-7f3a";
    let out = server.cli(&[
        "ACL",
        "SETUSER",
        "swarm",
        "on",
        &format!(">{password}"),
        "~*",
        "&*",
        "+@all",
    ]);
    assert!(out.contains("OK"), "{out}");
    let url = format!("redis://swarm:{password}@127.0.0.1:{}/2", server.port);
    let config = RedisConfig::from_url(&url).unwrap();
    assert!(!format!("{config:?}").contains(password));
    let bus = RedisBus::connect(config).await.unwrap();
    assert!(!format!("{bus:?}").contains(password));
    bus.put_finding(&finding(1)).await.unwrap();
    let in_db_2: u32 = server.cli(&["-n", "2", "DBSIZE"]).trim().parse().unwrap();
    assert!(in_db_2 > 0, "the URL's database index is used");

    // The same user with a wrong password: refused, and the error shows
    // neither password.
    let wrong = "wrong-pw-91c2";
    let config = RedisConfig::from_url(&format!("redis://127.0.0.1:{}", server.port))
        .unwrap()
        .username("swarm")
        .password(SecretString::from(wrong.to_owned()));
    let err = RedisBus::connect(config).await.unwrap_err();
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains(wrong) && !shown.contains(password),
        "{shown}"
    );
    assert_eq!(
        err.retry(),
        Retry::Never,
        "bad credentials are not retried: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_gives_a_transient_error_not_a_hang() {
    let mut server = RedisServer::start();
    let config = RedisConfig::from_url(&server.url())
        .unwrap()
        .namespace(common::random_namespace())
        .connect_timeout(Duration::from_millis(300))
        .response_timeout(Duration::from_millis(300))
        .retry_for(Duration::from_millis(200));
    let bus = RedisBus::connect(config.clone()).await.unwrap();
    bus.put_finding(&finding(1)).await.unwrap();
    server.stop();
    let err = bus.count_findings().await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let err = RedisBus::connect(config).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
}

/// With a namespace an ACL user can be confined to one swarm's keys and
/// channels (docs/operations.md): the whole suite runs under such a user,
/// so the bus touches nothing outside its namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_confined_to_its_namespace_passes_the_suite() {
    let server = RedisServer::start();
    let ns = common::random_namespace();
    let password = "confined-pw-5d1e";
    let out = server.cli(&[
        "ACL",
        "SETUSER",
        "team",
        "on",
        &format!(">{password}"),
        &format!("~{{{}}}:*", ns.as_str()),
        &format!("&{{{}}}:channel:*", ns.as_str()),
        "+@all",
        "-@dangerous",
    ]);
    assert!(out.contains("OK"), "{out}");
    let config = RedisConfig::from_url(&format!(
        "redis://team:{password}@127.0.0.1:{}",
        server.port
    ))
    .unwrap()
    .namespace(ns.clone());
    let bus = RedisBus::connect(config).await.unwrap();
    swarmbus_memory::conformance::run_all(&bus).await;
    // And outside the namespace it may do nothing.
    let plain = RedisBus::connect(
        RedisConfig::from_url(&format!(
            "redis://team:{password}@127.0.0.1:{}",
            server.port
        ))
        .unwrap(),
    )
    .await
    .unwrap();
    let err = plain.count_findings().await.unwrap_err();
    assert!(err.to_string().contains("no permissions"), "{err}");
}

/// A consumer that crashed and never comes back under its name: another
/// consumer of the group takes over its unacknowledged entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_feed_entries_of_a_vanished_consumer_are_claimed_by_another() {
    use swarmbus_core::bus::FindingFeed;
    use swarmbus_core::keys::GroupName;
    let (url, _server) = single_node();
    let bus = namespaced_bus(&url).await;
    let group = GroupName::new("librarians").unwrap();
    let (gone, heir) = (
        WorkerId::new("gone").unwrap(),
        WorkerId::new("heir").unwrap(),
    );
    let fs: Vec<Finding> = (0..5).map(finding).collect();
    bus.put_findings(&fs).await.unwrap();
    let taken = bus
        .read_feed(&group, &gone, 10, Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(taken.len(), 5);
    // Not idle long enough yet: nothing to claim.
    let early = bus
        .claim_stale_feed(&group, &heir, Duration::from_secs(60), 10)
        .await
        .unwrap();
    assert!(early.is_empty());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let claimed = bus
        .claim_stale_feed(&group, &heir, Duration::from_millis(20), 10)
        .await
        .unwrap();
    let mut got: Vec<_> = claimed.iter().map(|e| e.finding.clone()).collect();
    let mut want: Vec<_> = fs.iter().map(|f| f.id.clone()).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    // They are the heir's now: its own pending entries come first.
    let again = bus
        .read_feed(&group, &heir, 10, Duration::from_millis(10))
        .await
        .unwrap();
    assert_eq!(again.len(), 5);
    let ids: Vec<swarmbus_core::bus::FeedEntryId> = again.iter().map(|e| e.entry.clone()).collect();
    bus.ack_feed(&group, &ids).await.unwrap();
    assert!(
        bus.claim_stale_feed(&group, &heir, Duration::ZERO, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_read_while_they_are_written_are_missing_or_present_never_an_error() {
    let (url, _server) = single_node();
    let bus = namespaced_bus(&url).await;
    let batch: Vec<Finding> = (0..300).map(finding).collect();
    let ids: Vec<_> = batch.iter().map(|f| f.id.clone()).collect();
    let writer = {
        let bus = bus.clone();
        tokio::spawn(async move {
            for f in &batch {
                bus.put_finding(f).await.unwrap();
            }
        })
    };
    // Readers poll the ids as a coordinator waiting for results does; a key
    // written between the read and its explanation must not be an error.
    let mut seen = 0;
    while seen < ids.len() {
        let got = bus
            .get_findings(&ids)
            .await
            .expect("never an error while writing");
        seen = got.iter().flatten().count();
    }
    writer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_never_beat_is_dead_after_its_grace_period() {
    let (url, _server) = single_node();
    let grace = Duration::from_millis(200);
    let bus = RedisBus::connect(
        RedisConfig::from_url(&url)
            .unwrap()
            .namespace(common::random_namespace())
            .limits(swarmbus_core::BusLimits::default().worker_grace(grace)),
    )
    .await
    .unwrap();
    swarmbus_memory::conformance::a_worker_that_never_beat_is_dead_after_its_grace_period(
        &bus, grace,
    )
    .await;
}

/// The Lua scripts' `shard_status` and the Rust `shard_state` agree: after
/// every mark, the brief's `librarian:shard<N>:status` key (written by the
/// scripts) says what `shard_states` (computed in Rust) says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_key_written_by_lua_matches_the_state_computed_in_rust() {
    let (url, _server) = single_node();
    let bus = namespaced_bus(&url).await;
    let sh = ShardId::new(7).unwrap();
    let limits = QuotaLimits::new(Some(3), None);
    let until = Utc::now() + chrono::Duration::seconds(3600);
    let status_key = format!("{}librarian:shard7:status", bus.key_space().prefix());
    let mut con = swarmbus_redis::testing::raw_connection(&url).await;
    let mut steps = 0;
    for step in 0..9 {
        match step {
            0 => bus.mark_ok(sh, limits, Utc::now()).await.unwrap(),
            1 => bus.cool_until(sh, until, Utc::now()).await.unwrap(),
            2 => bus.exhaust_until(sh, until, Utc::now()).await.unwrap(),
            3 => bus.disable(sh, "test", Utc::now()).await.unwrap(),
            4 => bus.enable(sh, Utc::now()).await.unwrap(),
            5..=7 => {
                bus.try_acquire(sh, limits, Utc::now()).await.unwrap();
            }
            _ => bus.release(sh, limits, Utc::now()).await.unwrap(),
        }
        let key: String = redis::cmd("GET")
            .arg(&status_key)
            .query_async(&mut con)
            .await
            .unwrap();
        let rust = bus.shard_states(&[sh], limits, Utc::now()).await.unwrap()[0].status;
        assert_eq!(key, rust.as_str(), "after step {step}");
        steps += 1;
    }
    assert_eq!(steps, 9);
}
