//! Exactly-once under lost replies: a TCP fault proxy between the bus and a
//! real `redis-server` breaks the request of one write (the request runs
//! and its reply is dropped with the connection, or the request is cut in
//! half), the bus retries it, and every write of every kind is applied
//! exactly once and answers as the first attempt would have. On a single
//! node and on a 3-master Cluster whose nodes announce the proxies' ports.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use std::time::Duration;

use chrono::{Duration as Span, Utc};
use common::{Fault, FaultProxy, RedisCluster, RedisServer, random_namespace};
use futures::StreamExt;
use swarmbus_core::bus::{
    ArchiveDesk, Channels, Counters, FindingFeed, FindingStore, HaltSwitch, Journal, QuotaLedger,
    Stored, TaskQueue, WorkerRegistry,
};
use swarmbus_core::keys::{
    Channel, CounterName, GroupName, JournalName, SessionId, ShardId, TierName, WorkerId,
};
use swarmbus_core::quota::{Acquire, QuotaLimits};
use swarmbus_core::{
    ArchiveQuery, ArchiveResponse, Finding, FindingFilter, HaltReport, ShardStatus, Task,
};
use swarmbus_redis::{RedisBus, RedisConfig};

fn finding(i: usize) -> Finding {
    Finding::new(
        WorkerId::new("w-once").unwrap(),
        SessionId::new("once").unwrap(),
        format!("finding {i}"),
        "written while the proxy drops a reply",
    )
}

fn task(i: usize) -> Task {
    Task::new(SessionId::new("once").unwrap(), "grep", format!("task {i}"))
}

/// Arms `fault` on every proxy for the next request containing `marker`,
/// runs `call`, and checks that exactly one fault was injected.
struct Injector<'a> {
    proxies: &'a [FaultProxy],
    fault: Fault,
    failures: Vec<String>,
}

impl Injector<'_> {
    fn arm(&self, marker: &[u8]) -> u64 {
        // Siblings share one fault and one count: arm and read the first.
        let before = self.proxies[0].injected();
        self.proxies[0].arm(self.fault, marker, 1);
        before
    }

    fn settle(&mut self, what: &str, before: u64) {
        self.proxies[0].disarm();
        let after = self.proxies[0].injected();
        if after != before + 1 {
            self.failures.push(format!(
                "{what}: {} faults injected, expected 1",
                after - before
            ));
        }
    }

    fn check(&mut self, what: &str, ok: bool, detail: impl std::fmt::Debug) {
        if !ok {
            self.failures.push(format!("{what}: {detail:?}"));
        }
    }
}

/// Runs `$call` with the fault armed for requests containing `$marker`.
macro_rules! faulted {
    ($inj:expr, $what:expr, $marker:expr, $call:expr) => {{
        let before = $inj.arm($marker);
        let out = $call.await;
        $inj.settle($what, before);
        out
    }};
}

async fn every_write_once(bus: &RedisBus, proxies: &[FaultProxy], fault: Fault) -> Vec<String> {
    let ns = bus.key_space().prefix().as_bytes().to_vec();
    let mut inj = Injector {
        proxies,
        fault,
        failures: Vec::new(),
    };
    let w1 = WorkerId::new("w1").unwrap();

    // Findings.
    let f0 = finding(0);
    let r = faulted!(inj, "put_finding", &ns, bus.put_finding(&f0));
    inj.check("put_finding", matches!(r, Ok(Stored::New)), &r);
    let batch: Vec<Finding> = (1..4).map(finding).collect();
    let r = faulted!(inj, "put_findings", &ns, bus.put_findings(&batch));
    inj.check("put_findings", matches!(r, Ok(3)), &r);
    let n = bus.count_findings().await;
    inj.check("count after puts", matches!(n, Ok(4)), &n);
    let group = GroupName::new("once").unwrap();
    let feed = bus
        .read_feed(&group, &w1, 100, Duration::ZERO)
        .await
        .unwrap();
    inj.check("feed entries", feed.len() == 4, feed.len());
    let r = faulted!(inj, "archive_findings", &ns, bus.archive_findings(&[f0.id]));
    inj.check("archive_findings", matches!(r, Ok(1)), &r);

    // Tasks.
    let t1 = task(1);
    let r = faulted!(inj, "push_task", &ns, bus.push_task(&w1, &t1));
    inj.check("push_task", r.is_ok(), &r);
    let q = bus.queued_tasks(&w1).await;
    inj.check("queued after push", matches!(q, Ok(1)), &q);
    let claim = faulted!(inj, "claim_task", &ns, bus.claim_task(&w1, Duration::ZERO));
    inj.check(
        "claim_task",
        matches!(&claim, Ok(Some(c)) if c.deliveries == 1 && c.task.id == t1.id),
        &claim,
    );
    let again = bus.claim_task(&w1, Duration::ZERO).await;
    inj.check("nothing left to claim", matches!(again, Ok(None)), &again);
    if let Ok(Some(claim)) = claim {
        let r = faulted!(inj, "ack_task", &ns, bus.ack_task(&claim));
        inj.check("ack_task", r.is_ok(), &r);
    }
    bus.push_task(&w1, &task(2)).await.unwrap();
    let claim = bus.claim_task(&w1, Duration::ZERO).await.unwrap().unwrap();
    let r = faulted!(inj, "fail_task", &ns, bus.fail_task(&claim, "broken"));
    inj.check("fail_task", r.is_ok(), &r);
    let failed = bus.failed_tasks().await.map(|f| f.len());
    inj.check("one failure kept", matches!(failed, Ok(1)), &failed);

    // Reclaim from a worker whose heartbeat expired.
    let dead = WorkerId::new("w-dead").unwrap();
    let heir = WorkerId::new("w-heir").unwrap();
    bus.heartbeat(&dead, Duration::from_millis(1))
        .await
        .unwrap();
    bus.push_task(&dead, &task(3)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let marker = format!("tasks:inflight:{dead}");
    let r = faulted!(
        inj,
        "reclaim_abandoned",
        marker.as_bytes(),
        bus.reclaim_abandoned(&heir, 5)
    );
    inj.check(
        "reclaim_abandoned",
        matches!(&r, Ok(rep) if rep.requeued.len() == 1),
        &r,
    );
    let q = bus.queued_tasks(&heir).await;
    inj.check("heir queue", matches!(q, Ok(1)), &q);

    // Quota.
    let shard = ShardId::new(1).unwrap();
    let limits = QuotaLimits::new(Some(10), None);
    let now = Utc::now();
    let r = faulted!(inj, "try_acquire", &ns, bus.try_acquire(shard, limits, now));
    inj.check(
        "try_acquire",
        matches!(
            r,
            Ok(Acquire::Granted {
                remaining_today: Some(9)
            })
        ),
        &r,
    );
    let used = |states: swarmbus_core::Result<Vec<swarmbus_core::ShardState>>| {
        states.map(|s| s.first().map(|s| s.used_today))
    };
    let u = used(bus.shard_states(&[shard], limits, now).await);
    inj.check("used after acquire", matches!(u, Ok(Some(1))), &u);
    bus.try_acquire(shard, limits, now).await.unwrap();
    let r = faulted!(inj, "release", &ns, bus.release(shard, limits, now));
    inj.check("release", r.is_ok(), &r);
    let u = used(bus.shard_states(&[shard], limits, now).await);
    inj.check("used after release", matches!(u, Ok(Some(1))), &u);
    let until = Utc::now() + Span::seconds(60);
    let r = faulted!(inj, "cool_until", &ns, bus.cool_until(shard, until, now));
    inj.check("cool_until", r.is_ok(), &r);
    let s = bus.shard_states(&[shard], limits, Utc::now()).await;
    inj.check(
        "cooling",
        matches!(&s, Ok(v) if v[0].status == ShardStatus::Cooling && v[0].cooling_until == Some(until)),
        &s,
    );
    let shard2 = ShardId::new(2).unwrap();
    let r = faulted!(
        inj,
        "exhaust_until",
        &ns,
        bus.exhaust_until(shard2, until, now)
    );
    inj.check("exhaust_until", r.is_ok(), &r);
    let s = bus.shard_states(&[shard2], limits, Utc::now()).await;
    inj.check(
        "exhausted",
        matches!(&s, Ok(v) if v[0].status == ShardStatus::Exhausted),
        &s,
    );

    // Counters and journals.
    let tier = TierName::new("haiku").unwrap();
    let r = faulted!(inj, "add_cost", &ns, bus.add_cost(&tier, 0.25));
    inj.check("add_cost", matches!(r, Ok(v) if v == 0.25), &r);
    let c = bus.costs(std::slice::from_ref(&tier)).await;
    inj.check("cost total", matches!(&c, Ok(v) if v[0] == 0.25), &c);
    let name = CounterName::new("calls").unwrap();
    let r = faulted!(inj, "counter_add", &ns, bus.counter_add(&name, 5));
    inj.check("counter_add", matches!(r, Ok(5)), &r);
    let limited = CounterName::new("limited").unwrap();
    let r = faulted!(
        inj,
        "counter_try_add",
        &ns,
        bus.counter_try_add(&limited, 3, 10)
    );
    inj.check("counter_try_add", matches!(r, Ok(Some(3))), &r);
    let c = bus.counters(&[name.clone(), limited.clone()]).await;
    inj.check("counter totals", matches!(&c, Ok(v) if v == &[5, 3]), &c);
    let journal = JournalName::new("once").unwrap();
    let records = vec!["{\"a\":1}".to_owned(), "{\"b\":2}".to_owned()];
    let r = faulted!(inj, "append", &ns, bus.append(&journal, &records));
    inj.check("append", r.is_ok(), &r);
    let l = bus.journal_len(&journal).await;
    inj.check("journal length", matches!(l, Ok(2)), &l);
    let r = faulted!(
        inj,
        "append_with_cost",
        &ns,
        bus.append_with_cost(&journal, &["{\"c\":3}".to_owned()], &tier, 0.5)
    );
    inj.check("append_with_cost", r.is_ok(), &r);
    let l = bus.journal_len(&journal).await;
    inj.check("journal length after costed append", matches!(l, Ok(3)), &l);
    let c = bus.costs(std::slice::from_ref(&tier)).await;
    inj.check(
        "cost after costed append",
        matches!(&c, Ok(v) if v[0] == 0.75),
        &c,
    );

    // Halt.
    let report = HaltReport::new("test", "exactly once");
    let r = faulted!(inj, "halt", &ns, bus.halt(&report));
    inj.check("halt", matches!(r, Ok(true)), &r);
    bus.clear_halt().await.unwrap();

    // Archive desk and channels: one notification per write.
    let mut queries = bus.subscribe(Channel::Queries).await.unwrap();
    let query = ArchiveQuery::new("what?", FindingFilter::default());
    let r = faulted!(inj, "ask", &ns, bus.ask(&query));
    inj.check("ask", r.is_ok(), &r);
    let got = faulted!(inj, "next_query", &ns, bus.next_query(Duration::ZERO));
    inj.check(
        "next_query",
        matches!(&got, Ok(Some(q)) if q.id == query.id),
        &got,
    );
    let none = bus.next_query(Duration::ZERO).await;
    inj.check("asked once", matches!(none, Ok(None)), &none);
    inj.check(
        "query notifications",
        notifications(&mut queries).await == 1,
        "expected one",
    );
    let mut responses = bus.subscribe(Channel::Responses).await.unwrap();
    let response = ArchiveResponse::answered(query.id, "42", Vec::new());
    let r = faulted!(inj, "answer", &ns, bus.answer(&response));
    inj.check("answer", r.is_ok(), &r);
    inj.check(
        "response notifications",
        notifications(&mut responses).await == 1,
        "expected one",
    );
    let mut findings = bus.subscribe(Channel::Findings).await.unwrap();
    let r = faulted!(inj, "publish", &ns, bus.publish(Channel::Findings, "hello"));
    inj.check("publish", r.is_ok(), &r);
    inj.check(
        "published once",
        notifications(&mut findings).await == 1,
        "expected one",
    );
    inj.failures
}

/// How many messages arrive within a short while.
async fn notifications(sub: &mut swarmbus_core::bus::Subscription) -> usize {
    let mut n = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await {
        n += 1;
    }
    n
}

async fn single_node(fault: Fault) {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port).await;
    let bus = RedisBus::connect(
        RedisConfig::from_url(&proxy.url())
            .unwrap()
            .namespace(random_namespace()),
    )
    .await
    .unwrap();
    let failures = every_write_once(&bus, std::slice::from_ref(&proxy), fault).await;
    assert!(failures.is_empty(), "{fault:?}:\n{}", failures.join("\n"));
    assert!(proxy.connections() > 1, "the proxy never cut a connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_applies_once_when_its_reply_is_lost_on_a_single_node() {
    single_node(Fault::DropReply).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_applies_once_when_its_request_is_cut_on_a_single_node() {
    single_node(Fault::CutRequest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_applies_once_on_a_cluster_behind_fault_proxies() {
    let mut proxies: Vec<FaultProxy> = Vec::new();
    let cluster = tokio::task::block_in_place(|| {
        RedisCluster::start_behind(|port| {
            // One armed fault for the three nodes: it hits whichever the
            // request goes to (also after a redirect).
            let proxy = match proxies.first() {
                None => FaultProxy::start_now(port),
                Some(first) => first.sibling(port),
            };
            let front = proxy.port();
            proxies.push(proxy);
            front
        })
    });
    let urls: Vec<String> = proxies.iter().map(FaultProxy::url).collect();
    for fault in [Fault::DropReply, Fault::CutRequest] {
        let bus = RedisBus::connect(
            RedisConfig::cluster(&urls)
                .unwrap()
                .namespace(random_namespace()),
        )
        .await
        .unwrap();
        let failures = every_write_once(&bus, &proxies, fault).await;
        assert!(failures.is_empty(), "{fault:?}:\n{}", failures.join("\n"));
    }
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_replies_keep_getting_lost_is_unconfirmed_not_retry() {
    let server = RedisServer::start();
    let proxy = FaultProxy::start(server.port).await;
    let bus = RedisBus::connect(
        RedisConfig::from_url(&proxy.url())
            .unwrap()
            .namespace(random_namespace())
            .retry_for(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let ns = bus.key_space().prefix().as_bytes().to_vec();
    let name = CounterName::new("lost").unwrap();
    // Every attempt runs and loses its reply, until the budget is spent.
    proxy.arm(Fault::DropReply, &ns, 1000);
    let err = bus.counter_add(&name, 7).await.unwrap_err();
    proxy.disarm();
    assert!(proxy.injected() >= 2, "retried: {}", proxy.injected());
    assert_eq!(err.retry(), swarmbus_core::Retry::Unknown, "{err:?}");
    assert!(err.may_have_applied() && !err.is_transient(), "{err:?}");
    assert!(
        matches!(
            err,
            swarmbus_core::Error::Unconfirmed {
                operation: "counter_add",
                ..
            }
        ),
        "{err:?}"
    );
    // However many attempts ran, the counter moved once.
    assert_eq!(bus.counters(&[name]).await.unwrap(), vec![7]);

    // An idempotent write that fails the same way says Retry.
    proxy.arm(Fault::DropReply, &ns, 1000);
    let err = bus.set_context_tokens(5).await.unwrap_err();
    proxy.disarm();
    assert_eq!(err.retry(), swarmbus_core::Retry::Retry, "{err:?}");
    // The redis-rs error survives as the source.
    let source = std::error::Error::source(&err).expect("source");
    assert!(
        source.downcast_ref::<redis::RedisError>().is_some(),
        "{source:?}"
    );
}
