//! Findings written around the library — `redis-cli SET finding:<name> "…"`,
//! other JSON, a HASH — are read, counted, listed and adopted into the index,
//! on one node and on a Cluster, by a reindex or by a running adopter.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::time::{Duration, Instant};

use swarmbus_agents::status::{StatusConfig, SwarmStatus};
use swarmbus_core::bus::FindingStore;
use swarmbus_core::keys::FindingId;
use swarmbus_core::{FindingFilter, FindingOrigin};
use swarmbus_redis::testing::{RedisCluster, RedisServer, namespaced_bus, random_namespace};
use swarmbus_redis::{AdoptionMode, RedisBus, RedisConfig, ReindexCursor};

async fn plain_bus(server: &RedisServer) -> RedisBus {
    RedisBus::connect(RedisConfig::from_url(&server.url()).unwrap())
        .await
        .unwrap()
}

/// Runs reindex steps until the pass is complete; returns keys adopted.
async fn reindex_all(bus: &RedisBus) -> u64 {
    let mut cursor = Some(ReindexCursor::start());
    let mut adopted = 0;
    while let Some(c) = cursor {
        let step = bus.reindex_findings(Some(c), 500).await.unwrap();
        adopted += step.adopted;
        cursor = step.next_cursor;
    }
    adopted
}

/// Polls `check` until it holds or `within` has passed.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_findings_conform_on_a_single_node_plain_and_namespaced() {
    let server = RedisServer::start();
    swarmbus_memory::conformance::run_raw_findings(&plain_bus(&server).await).await;
    swarmbus_memory::conformance::run_raw_findings(&namespaced_bus(&server.url()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_findings_conform_on_the_cluster() {
    let cluster = RedisCluster::start();
    let bus = RedisBus::connect(
        RedisConfig::cluster(cluster.urls())
            .unwrap()
            .namespace(random_namespace()),
    )
    .await
    .unwrap();
    swarmbus_memory::conformance::run_raw_findings(&bus).await;
    raw_keys_of_each_shape_are_adopted_and_read(&bus, |args| {
        // Every key of the swarm is in the namespace's slot: send it to the
        // node that serves it (redis-cli -c follows the redirection).
        let out = cluster.nodes[0].cli(&[&["-c"][..], args].concat());
        assert!(!out.contains("ERR"), "{out}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_keys_written_with_redis_cli_are_adopted_counted_listed_and_read() {
    let server = RedisServer::start();
    let bus = plain_bus(&server).await;
    raw_keys_of_each_shape_are_adopted_and_read(&bus, |args| {
        server.cli(args);
    })
    .await;
}

/// The brief's way: plain commands, names for ids, no library.
async fn raw_keys_of_each_shape_are_adopted_and_read(bus: &RedisBus, cli: impl Fn(&[&str])) {
    let prefix = bus.key_space().prefix().to_owned();
    let key = |name: &str| format!("{prefix}finding:{name}");
    let before = bus.count_findings().await.unwrap();
    cli(&[
        "SET",
        &key("deepseek_pricing"),
        "DeepSeek V3 costs $0.28 per million input tokens\nCache hits cost less.",
    ]);
    cli(&[
        "SET",
        &key("gemini_quota"),
        r#"{"summary": "Gemini quotas are per project", "session": "instance-10", "tags": ["quota-cli"]}"#,
    ]);
    cli(&[
        "HSET",
        &key("redis_scan"),
        "title",
        "SCAN is incremental",
        "body",
        "KEYS blocks the server",
        "worker",
        "claude-sub-2",
    ]);
    cli(&["RPUSH", &key("a_list"), "x"]);
    assert_eq!(
        bus.count_findings().await.unwrap(),
        before,
        "not counted before adoption"
    );

    let step = bus
        .reindex_findings(Some(ReindexCursor::start()), 1000)
        .await
        .unwrap();
    let mut adopted = step.adopted;
    let mut unreadable = step.unreadable;
    let mut cursor = step.next_cursor;
    while let Some(c) = cursor {
        let step = bus.reindex_findings(Some(c), 1000).await.unwrap();
        adopted += step.adopted;
        unreadable.extend(step.unreadable);
        cursor = step.next_cursor;
    }
    assert_eq!(adopted, 3);
    assert!(
        unreadable.iter().any(|u| u.key == key("a_list")),
        "a LIST is reported, never adopted: {unreadable:?}"
    );
    assert_eq!(bus.count_findings().await.unwrap(), before + 3);
    let status = SwarmStatus::snapshot(bus, &StatusConfig::default())
        .await
        .unwrap();
    assert_eq!(
        status.findings,
        Some(before + 3),
        "the status block counts them"
    );
    assert_eq!(reindex_all(bus).await, 0, "adopting twice counts once");
    assert_eq!(bus.count_findings().await.unwrap(), before + 3);

    let id = |s: &str| FindingId::new(s).unwrap();
    let text = bus
        .get_finding(&id("deepseek_pricing"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(text.origin(), FindingOrigin::RawText);
    assert_eq!(
        text.title,
        "DeepSeek V3 costs $0.28 per million input tokens"
    );
    let json = bus.get_finding(&id("gemini_quota")).await.unwrap().unwrap();
    assert_eq!(json.origin(), FindingOrigin::RawJson);
    assert_eq!(json.title, "Gemini quotas are per project");
    assert_eq!(json.session.as_str(), "instance-10");
    let hash = bus.get_finding(&id("redis_scan")).await.unwrap().unwrap();
    assert_eq!(hash.origin(), FindingOrigin::RawHash);
    assert_eq!(hash.worker.as_str(), "claude-sub-2");
    assert!(hash.created_at > chrono::DateTime::<chrono::Utc>::UNIX_EPOCH);

    let listing = bus.list_findings(&FindingFilter::all()).await.unwrap();
    for name in ["deepseek_pricing", "gemini_quota", "redis_scan"] {
        assert!(
            listing.findings.iter().any(|f| f.id.as_str() == name),
            "{name} listed"
        );
    }
    let session = bus
        .list_findings(
            &FindingFilter::all().session(swarmbus_core::SessionId::new("instance-10").unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(session.findings, vec![json]);
    let tagged = bus
        .list_findings(&FindingFilter::all().tag("quota-cli"))
        .await
        .unwrap();
    assert_eq!(tagged.findings.len(), 1);

    // A deleted raw key leaves the count once a listing finds it missing.
    cli(&["DEL", &key("deepseek_pricing")]);
    let listing = bus.list_findings(&FindingFilter::all()).await.unwrap();
    assert!(
        !listing
            .findings
            .iter()
            .any(|f| f.id.as_str() == "deepseek_pricing")
    );
    assert_eq!(bus.count_findings().await.unwrap(), before + 2);
    cli(&["DEL", &key("a_list")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reindex_resumes_where_the_last_step_left_off() {
    let server = RedisServer::start();
    let bus = plain_bus(&server).await;
    for i in 0..300 {
        server.cli(&["SET", &format!("finding:note_{i}"), "a note"]);
    }
    let first = bus.reindex_findings(None, 50).await.unwrap();
    assert!(first.next_cursor.is_some());
    // Another handle (a restarted process) goes on from the stored cursor.
    let again = plain_bus(&server).await;
    let mut total = first.adopted;
    let mut steps = 1;
    loop {
        let step = again.reindex_findings(None, 50).await.unwrap();
        total += step.adopted;
        steps += 1;
        if step.next_cursor.is_none() {
            break;
        }
        assert!(steps < 1000, "the pass ends");
    }
    assert_eq!(total, 300);
    assert_eq!(again.count_findings().await.unwrap(), 300);
    assert_eq!(
        server.cli(&["EXISTS", "swarm:findings:reindex"]).trim(),
        "0",
        "a finished pass clears its cursor"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_adopter_counts_a_raw_key_within_seconds_and_forgets_a_deleted_one() {
    let server = RedisServer::start();
    server.cli(&["CONFIG", "SET", "notify-keyspace-events", "Ex"]);
    let bus = plain_bus(&server).await;
    server.cli(&[
        "SET",
        "finding:written_before",
        "before the adopter started",
    ]);
    let adopter = bus.spawn_finding_adopter(Duration::from_secs(2));
    let b = bus.clone();
    eventually(
        Duration::from_secs(10),
        "the earlier key is adopted",
        || {
            let b = b.clone();
            async move { b.count_findings().await.unwrap() == 1 }
        },
    )
    .await;
    assert_eq!(adopter.mode(), AdoptionMode::KeyspaceNotifications);
    let flags = server.cli(&["CONFIG", "GET", "notify-keyspace-events"]);
    assert!(
        flags.contains('E') && flags.contains('x'),
        "flags already set are kept: {flags}"
    );

    server.cli(&[
        "SET",
        "finding:deepseek_pricing",
        "$0.28 per million tokens",
    ]);
    server.cli(&[
        "HSET",
        "finding:from_python",
        "title",
        "a hash",
        "body",
        "b",
    ]);
    eventually(Duration::from_secs(5), "new raw keys are counted", || {
        let b = b.clone();
        async move { b.count_findings().await.unwrap() == 3 }
    })
    .await;
    server.cli(&["DEL", "finding:from_python"]);
    eventually(
        Duration::from_secs(5),
        "a deleted key leaves the count",
        || {
            let b = b.clone();
            async move { b.count_findings().await.unwrap() == 2 }
        },
    )
    .await;
    adopter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_config_is_refused_the_adopter_falls_back_to_a_periodic_reindex() {
    let server = RedisServer::start();
    server.cli(&[
        "ACL",
        "SETUSER",
        "agent",
        "on",
        ">agent-pw",
        "~*",
        "&*",
        "+@all",
        "-config",
    ]);
    let url = server.url().replace("redis://", "redis://agent:agent-pw@");
    let bus = RedisBus::connect(RedisConfig::from_url(&url).unwrap())
        .await
        .unwrap();
    let adopter = bus.spawn_finding_adopter(Duration::from_millis(200));
    server.cli(&["SET", "finding:acl_note", "written by an agent"]);
    let b = bus.clone();
    eventually(
        Duration::from_secs(5),
        "adopted by the periodic reindex",
        || {
            let b = b.clone();
            async move { b.count_findings().await.unwrap() == 1 }
        },
    )
    .await;
    assert_eq!(adopter.mode(), AdoptionMode::PeriodicReindex);
    drop(adopter);
}

/// The brief's `len(r.keys('finding:*'))` blocks Redis for ~95 ms at 100k
/// keys; a reindex of 100k raw keys never holds it for long: the slow log
/// (threshold 1 ms) shows no command of the reindex over a generous 50 ms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindexing_100k_raw_keys_never_blocks_the_server_for_long() {
    const KEYS: usize = 100_000;
    let server = RedisServer::start();
    let mut conn = swarmbus_redis::testing::raw_connection(&server.url()).await;
    for start in (0..KEYS).step_by(10_000) {
        let mut pipe = redis::pipe();
        for i in start..start + 10_000 {
            pipe.cmd("SET")
                .arg(format!("finding:raw_{i}"))
                .arg(format!("raw note {i}"))
                .ignore();
        }
        let () = pipe.query_async(&mut conn).await.unwrap();
    }
    let bus = plain_bus(&server).await;
    server.cli(&["CONFIG", "SET", "slowlog-log-slower-than", "1000"]);
    server.cli(&["CONFIG", "SET", "slowlog-max-len", "10000"]);
    server.cli(&["SLOWLOG", "RESET"]);

    let mut cursor = None;
    let mut adopted = 0;
    loop {
        let step = bus.reindex_findings(cursor, 1000).await.unwrap();
        adopted += step.adopted;
        match step.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(adopted, KEYS as u64);
    assert_eq!(bus.count_findings().await.unwrap(), KEYS as u64);

    let entries: redis::Value = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(10_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut longest = 0i64;
    let mut slowest = String::new();
    if let redis::Value::Array(entries) = entries {
        for entry in entries {
            if let redis::Value::Array(fields) = entry
                && let Some(redis::Value::Int(micros)) = fields.get(2)
                && *micros > longest
            {
                longest = *micros;
                slowest = match fields.get(3) {
                    Some(redis::Value::Array(args)) => args
                        .iter()
                        .take(2)
                        .map(|a| match a {
                            redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                            other => format!("{other:?}"),
                        })
                        .collect::<Vec<_>>()
                        .join(" "),
                    _ => String::new(),
                };
            }
        }
    }
    eprintln!("slowest: {slowest}");
    let stats = server.cli(&["INFO", "commandstats"]);
    for line in stats.lines() {
        if line.starts_with("cmdstat_evalsha") || line.starts_with("cmdstat_scan") {
            eprintln!("{line}");
        }
    }
    eprintln!("longest command during the reindex of {KEYS} keys: {longest} µs");
    assert!(
        longest < 50_000,
        "a reindex step held Redis for {longest} µs"
    );
}

/// The `ACL SETUSER swarm-team-a …` lines of docs/operations.md, as written
/// there (with `PASSWORD` in place of the password).
fn acl_recipes_of_the_guide() -> Vec<String> {
    let guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/operations.md"
    ))
    .unwrap();
    guide
        .lines()
        .filter(|l| l.starts_with("ACL SETUSER swarm-team-a "))
        .map(str::to_owned)
        .collect()
}

/// Creates the guide's user from one recipe line and connects as it, in
/// the namespace `team-a` the recipe confines it to.
async fn team_a_bus(server: &RedisServer, recipe: &str) -> RedisBus {
    let recipe = recipe.replace(">PASSWORD", ">team-a-pw");
    let args: Vec<&str> = recipe.split_whitespace().collect();
    let reply = server.cli(&args);
    assert!(reply.trim() == "OK", "{recipe}: {reply}");
    let url = server
        .url()
        .replace("redis://", "redis://swarm-team-a:team-a-pw@");
    RedisBus::connect(
        RedisConfig::from_url(&url)
            .unwrap()
            .namespace(swarmbus_core::keys::Namespace::new("team-a").unwrap()),
    )
    .await
    .unwrap()
}

/// Collects what a `tracing` fmt subscriber writes.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Every recipe of docs/operations.md, as written, on a user restricted to
/// the namespace `team-a` (the notifications off, as a fresh server has
/// them): a raw key written by redis-cli in the namespace is adopted by the
/// periodic reindex, and the user cannot touch another namespace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_acl_recipes_of_the_operations_guide_adopt_raw_findings_in_their_namespace() {
    let recipes = acl_recipes_of_the_guide();
    assert!(
        recipes.len() >= 2,
        "the guide's recipes (the namespace user, the one for notifications by hand): {recipes:?}"
    );
    for recipe in &recipes {
        let server = RedisServer::start();
        let bus = team_a_bus(&server, recipe).await;
        let adopter = bus.spawn_finding_adopter(Duration::from_millis(100));
        server.cli(&["SET", "{team-a}:finding:acl_note", "written by an agent"]);
        let b = bus.clone();
        eventually(
            Duration::from_secs(10),
            &format!("adopted under {recipe}"),
            || {
                let b = b.clone();
                async move { b.count_findings().await.unwrap() == 1 }
            },
        )
        .await;
        assert_eq!(adopter.mode(), AdoptionMode::PeriodicReindex, "{recipe}");
        let listed = bus.list_findings(&FindingFilter::default()).await.unwrap();
        assert_eq!(listed.findings.len(), 1, "{recipe}");
        // Confined: another namespace's key is refused to this user.
        let url = server
            .url()
            .replace("redis://", "redis://swarm-team-a:team-a-pw@");
        let client = redis::Client::open(url).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let other: redis::RedisResult<Option<String>> = redis::cmd("GET")
            .arg("{team-b}:finding:x")
            .query_async(&mut conn)
            .await;
        assert!(other.is_err(), "{recipe}: another namespace is readable");
        adopter.stop().await;
    }
}

/// The guide's user for notifications set by hand (`+config|get`, no
/// keyspace channels): the subscription is refused with NOPERM. The
/// adopter says so once (a warning), falls back to the periodic reindex
/// for good, and adopts raw keys; before, it logged "notifications lost;
/// reconnecting" every interval and never adopted one.
#[tokio::test(flavor = "current_thread")]
async fn a_refused_keyspace_subscription_is_said_once_and_falls_back_to_the_reindex_for_good() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // This test's thread only: the runtime is current-thread, so the
    // adopter's task runs here too.
    let _guard = tracing::subscriber::set_default(subscriber);

    let recipe = acl_recipes_of_the_guide()
        .into_iter()
        .find(|r| r.contains("+config|get"))
        .expect("the guide's recipe for notifications set by hand");
    let server = RedisServer::start();
    // Set by hand, as the guide says.
    server.cli(&["CONFIG", "SET", "notify-keyspace-events", "K$hgx"]);
    let bus = team_a_bus(&server, &recipe).await;
    let adopter = bus.spawn_finding_adopter(Duration::from_millis(50));
    let b = bus.clone();
    for (n, name) in ["first", "second", "third"].iter().enumerate() {
        server.cli(&["SET", &format!("{{team-a}}:finding:{name}"), "raw"]);
        let want = n as u64 + 1;
        eventually(Duration::from_secs(10), &format!("{name} adopted"), || {
            let b = b.clone();
            async move { b.count_findings().await.unwrap() == want }
        })
        .await;
        assert_eq!(adopter.mode(), AdoptionMode::PeriodicReindex);
    }
    adopter.stop().await;
    let text = logs.text();
    assert_eq!(
        text.matches("keyspace notifications refused").count(),
        1,
        "said once:\n{text}"
    );
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("NoPerm") || text.contains("NOPERM"), "{text}");
    assert_eq!(
        text.matches("notifications lost").count(),
        0,
        "no reconnect loop:\n{text}"
    );
    assert!(
        !text.contains("team-a-pw"),
        "the password stays out: {text}"
    );
}
