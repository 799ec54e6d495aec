//! The conformance suite every bus implementation passes (feature `testing`).
//!
//! One public async function per behaviour, each taking any [`Bus`]. The
//! checks use fresh random ids, sessions, groups, counters and shard numbers,
//! so they can share one bus (one Redis database) and run one after another
//! without a flush; only [`halt_first_reason_wins_and_clear_resumes`] touches
//! global state, and it leaves it as it found it.
//!
//! ```text
//! #[tokio::test]
//! async fn redis_bus_conforms() {
//!     let bus = RedisBus::connect(config).await.unwrap();
//!     swarmbus_memory::conformance::run_all(&bus).await;
//! }
//! ```
//!
//! Failures panic with the check's name and what differed: this is test
//! support code.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use futures::StreamExt;

use swarmbus_core::bus::{Bus, Stored};
use swarmbus_core::error::Error;
use swarmbus_core::finding::UNKNOWN;
use swarmbus_core::keys::{
    Channel, CounterName, FindingId, GroupName, JournalName, SessionId, ShardId, TaskId, TierName,
    WorkerId,
};
use swarmbus_core::quota::{Acquire, Denial, QuotaLimits, next_pacific_midnight};
use swarmbus_core::{
    ArchiveQuery, ArchiveResponse, Finding, FindingFilter, HaltReport, Progress, ShardStatus, Task,
};
use swarmbus_core::{FindingOrigin, RawValue, UnreadableReason};

fn uniq(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn worker(prefix: &str) -> WorkerId {
    WorkerId::new(uniq(prefix)).unwrap()
}

fn session() -> SessionId {
    SessionId::new(uniq("session")).unwrap()
}

/// A shard no other check of this process uses: drawn at random, two
/// checks sharing one bus collided now and then (one found the other's
/// exhausted shard), so the ids count up from one random start.
fn shard() -> ShardId {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = (uuid::Uuid::new_v4().as_u128() % 4000) as u32 + 1000;
    let _ = NEXT.compare_exchange(0, start, Ordering::SeqCst, Ordering::SeqCst);
    // 1000..=9999, wrapping: thousands of checks apart before a repeat.
    let n = NEXT.fetch_add(1, Ordering::SeqCst) % 9000;
    ShardId::new(if n < 1000 { n + 9000 } else { n }).unwrap()
}

fn finding(w: &WorkerId, s: &SessionId, title: &str) -> Finding {
    Finding::new(w.clone(), s.clone(), title, format!("body of {title}"))
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Runs every check, one after another, printing each name.
pub async fn run_all<B: Bus + Clone + 'static>(bus: &B) {
    crate::__conformance_checks!(@list @run (bus));
}

/// One `#[tokio::test]` per conformance check, each on a bus of its own.
///
/// `$make` is an expression whose value is a future of the bus (an `async`
/// block); the crate using it needs `tokio` (with `macros` and
/// `rt-multi-thread`) among its dev-dependencies.
///
/// ```text
/// swarmbus_memory::conformance_tests!(async { MemoryBus::new() });
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($make:expr) => {
        $crate::__conformance_checks!(@list @tests ($make));
    };
}

/// The one list of checks, and what `run_all` and `conformance_tests!` make
/// of it.
#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_checks {
    (@list @$mode:ident ($arg:expr)) => {
        $crate::__conformance_checks!(@$mode ($arg);
            put_then_get_round_trips,
            put_is_idempotent_and_a_conflict_keeps_the_original,
            put_findings_counts_new_ones_and_a_bad_batch_writes_nothing,
            get_findings_keeps_order_and_reports_missing,
            list_filters_by_session_worker_tag_task_time_and_limit,
            count_is_exact_under_concurrent_puts,
            archive_hides_findings_from_count_and_listing_but_keeps_them,
            oversized_and_invalid_findings_are_rejected,
            feed_delivers_every_finding_to_each_group,
            feed_redelivers_unacknowledged_entries_to_their_consumer,
            feed_read_wakes_on_a_new_finding,
            publish_fans_out_and_put_finding_notifies_its_key,
            heartbeat_expires_after_its_ttl,
            progress_counts_as_a_heartbeat_and_is_reported,
            progress_keeps_the_workers_own_ttl,
            deregister_removes_a_worker,
            tasks_are_claimed_in_order_and_ack_forgets_them,
            claim_waits_for_a_task_then_times_out,
            a_failed_task_is_stopped_and_reported_not_requeued,
            tasks_of_a_dead_worker_are_reclaimed,
            a_worker_that_never_beat_keeps_its_tasks_during_the_grace_period,
            heartbeat_ttl_zero_is_refused_and_max_is_forever,
            a_task_pushed_twice_is_queued_once,
            a_cost_that_is_not_finite_is_refused,
            reclaim_dead_letters_a_task_over_its_delivery_limit,
            concurrent_claims_deliver_each_task_once,
            quota_grants_up_to_the_daily_limit_then_exhausts_until_pacific_midnight,
            quota_resets_on_a_new_pacific_day,
            quota_per_minute_window_cools_the_shard_until_the_next_minute,
            quota_is_exact_under_concurrent_acquires,
            cooling_and_exhaustion_deny_until_their_time,
            disable_is_permanent_until_enable,
            shard_state_priority_is_disabled_exhausted_cooling_ok,
            release_gives_a_request_back,
            halt_first_reason_wins_and_clear_resumes,
            drafts_are_saved_and_loaded,
            cost_context_and_counters_add_up,
            counter_try_add_never_overshoots_under_concurrency,
            journal_appends_and_reads_in_order,
            append_with_cost_writes_the_record_and_the_cost_together,
            archive_questions_are_queued_answered_and_notified,
        );
    };
    (@run ($bus:expr); $($name:ident,)*) => {$(
        eprintln!("conformance: {}", stringify!($name));
        $crate::conformance::$name($bus).await;
    )*};
    (@tests ($make:expr); $($name:ident,)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let bus = $make.await;
            $crate::conformance::$name(&bus).await;
        }
    )*};
}

// ---------------------------------------------------------------- findings

pub async fn put_then_get_round_trips<B: Bus>(bus: &B) {
    let (w, s) = (worker("w"), session());
    let f = finding(&w, &s, "round trip").with_tags(["a", "b"]);
    assert_eq!(bus.put_finding(&f).await.unwrap(), Stored::New);
    let got = bus
        .get_finding(&f.id)
        .await
        .unwrap()
        .expect("stored finding");
    assert_eq!(got, f);
    assert!(
        bus.get_finding(&FindingId::random())
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn put_is_idempotent_and_a_conflict_keeps_the_original<B: Bus>(bus: &B) {
    let (w, s) = (worker("w"), session());
    let f = finding(&w, &s, "original");
    let before = bus.count_findings().await.unwrap();
    assert_eq!(bus.put_finding(&f).await.unwrap(), Stored::New);
    assert_eq!(bus.put_finding(&f).await.unwrap(), Stored::AlreadyPresent);
    assert_eq!(
        bus.count_findings().await.unwrap(),
        before + 1,
        "a retried put counts once"
    );
    let mut other = f.clone();
    other.body = "something else".into();
    let err = bus.put_finding(&other).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&f.id.to_string()),
        "the error names the key: {err}"
    );
    assert_eq!(bus.get_finding(&f.id).await.unwrap().unwrap(), f);
}

pub async fn put_findings_counts_new_ones_and_a_bad_batch_writes_nothing<B: Bus>(bus: &B) {
    let (w, s) = (worker("w"), session());
    let batch: Vec<Finding> = (0..50).map(|i| finding(&w, &s, &format!("f{i}"))).collect();
    let before = bus.count_findings().await.unwrap();
    assert_eq!(bus.put_findings(&batch).await.unwrap(), 50);
    assert_eq!(
        bus.put_findings(&batch).await.unwrap(),
        0,
        "a retried batch stores nothing new"
    );
    assert_eq!(bus.count_findings().await.unwrap(), before + 50);

    let s2 = session();
    let mut bad: Vec<Finding> = (0..3).map(|i| finding(&w, &s2, &format!("g{i}"))).collect();
    bad[2].title = "  ".into();
    let err = bus.put_findings(&bad).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    let listed = bus
        .list_findings(&FindingFilter::all().session(s2))
        .await
        .unwrap();
    assert!(
        listed.findings.is_empty(),
        "a rejected batch writes nothing"
    );
    assert_eq!(bus.count_findings().await.unwrap(), before + 50);
    assert_eq!(bus.put_findings(&[]).await.unwrap(), 0);

    // A batch that conflicts with a stored finding, or within itself, writes
    // nothing either.
    let s3 = session();
    let fresh = finding(&w, &s3, "fresh");
    let mut clash = batch[0].clone();
    clash.body = "rewritten".into();
    let err = bus.put_findings(&[fresh.clone(), clash]).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    let mut twin = fresh.clone();
    twin.body = "a different body under the same id".into();
    let err = bus.put_findings(&[fresh.clone(), twin]).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert!(
        bus.get_finding(&fresh.id).await.unwrap().is_none(),
        "nothing of a failed batch is stored"
    );
    assert_eq!(
        bus.get_finding(&batch[0].id).await.unwrap().unwrap(),
        batch[0],
        "the stored one is kept"
    );
    assert_eq!(bus.count_findings().await.unwrap(), before + 50);
}

pub async fn get_findings_keeps_order_and_reports_missing<B: Bus>(bus: &B) {
    let (w, s) = (worker("w"), session());
    let a = finding(&w, &s, "a");
    let b = finding(&w, &s, "b");
    bus.put_findings(&[a.clone(), b.clone()]).await.unwrap();
    let missing = FindingId::random();
    let got = bus
        .get_findings(&[b.id.clone(), missing, a.id.clone()])
        .await
        .unwrap();
    assert_eq!(got, vec![Some(b), None, Some(a)]);
    assert!(bus.get_findings(&[]).await.unwrap().is_empty());
}

pub async fn list_filters_by_session_worker_tag_task_time_and_limit<B: Bus>(bus: &B) {
    let s = session();
    let (w1, w2) = (worker("w1"), worker("w2"));
    let t0 = at("2026-01-01T00:00:00Z");
    let task = Task::new(s.clone(), "grep", "x");
    let fs: Vec<Finding> = (0..6)
        .map(|i| {
            let w = if i % 2 == 0 { &w1 } else { &w2 };
            let mut f = finding(w, &s, &format!("n{i}")).at(t0 + ChronoDuration::minutes(i));
            if i < 3 {
                f = f.with_tags(["cost"]);
            }
            if i == 5 {
                f = f.with_task(task.id);
            }
            f
        })
        .collect();
    // Stored out of order: the listing orders by time.
    let mut shuffled = fs.clone();
    shuffled.reverse();
    bus.put_findings(&shuffled).await.unwrap();
    let titles = |l: Vec<Finding>| l.into_iter().map(|f| f.title).collect::<Vec<_>>();

    let all = bus
        .list_findings(&FindingFilter::all().session(s.clone()))
        .await
        .unwrap();
    assert!(all.unreadable.is_empty());
    assert_eq!(titles(all.findings), ["n0", "n1", "n2", "n3", "n4", "n5"]);
    let by_worker = bus
        .list_findings(&FindingFilter::all().session(s.clone()).worker(w2.clone()))
        .await
        .unwrap();
    assert_eq!(titles(by_worker.findings), ["n1", "n3", "n5"]);
    let by_tag = bus
        .list_findings(&FindingFilter::all().session(s.clone()).tag("cost"))
        .await
        .unwrap();
    assert_eq!(titles(by_tag.findings), ["n0", "n1", "n2"]);
    let by_task = bus
        .list_findings(&FindingFilter::all().session(s.clone()).task(task.id))
        .await
        .unwrap();
    assert_eq!(titles(by_task.findings), ["n5"]);
    let window = FindingFilter::all().session(s.clone()).between(
        Some(t0 + ChronoDuration::minutes(2)),
        Some(t0 + ChronoDuration::minutes(4)),
    );
    assert_eq!(
        titles(bus.list_findings(&window).await.unwrap().findings),
        ["n2", "n3"]
    );
    let newest = bus
        .list_findings(&FindingFilter::all().session(s.clone()).limit(2))
        .await
        .unwrap();
    assert_eq!(
        titles(newest.findings),
        ["n4", "n5"],
        "a limit keeps the newest, oldest first"
    );
    let none = bus
        .list_findings(&FindingFilter::all().session(session()))
        .await
        .unwrap();
    assert!(none.findings.is_empty());
}

pub async fn count_is_exact_under_concurrent_puts<B: Bus + Clone + 'static>(bus: &B) {
    let before = bus.count_findings().await.unwrap();
    let s = session();
    let shared = finding(&worker("w"), &s, "raced");
    let mut handles = Vec::new();
    for i in 0..16 {
        let bus = bus.clone();
        let s = s.clone();
        let shared = shared.clone();
        handles.push(tokio::spawn(async move {
            let w = WorkerId::new(format!("racer-{i}")).unwrap();
            for j in 0..10 {
                bus.put_finding(&finding(&w, &s, &format!("{i}-{j}")))
                    .await
                    .unwrap();
            }
            // Everyone also writes the same finding: it must count once.
            bus.put_finding(&shared).await.unwrap();
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(bus.count_findings().await.unwrap(), before + 161);
}

pub async fn archive_hides_findings_from_count_and_listing_but_keeps_them<B: Bus>(bus: &B) {
    let (w, s) = (worker("w"), session());
    let fs: Vec<Finding> = (0..4)
        .map(|i| finding(&w, &s, &format!("old{i}")))
        .collect();
    bus.put_findings(&fs).await.unwrap();
    let before = bus.count_findings().await.unwrap();
    let ids = [fs[0].id.clone(), fs[1].id.clone(), FindingId::random()];
    assert_eq!(bus.archive_findings(&ids).await.unwrap(), 2);
    assert_eq!(
        bus.archive_findings(&ids).await.unwrap(),
        0,
        "archiving is idempotent"
    );
    assert_eq!(bus.count_findings().await.unwrap(), before - 2);
    let active = bus
        .list_findings(&FindingFilter::all().session(s.clone()))
        .await
        .unwrap();
    assert_eq!(active.findings.len(), 2);
    let everything = bus
        .list_findings(&FindingFilter::all().session(s).with_archived())
        .await
        .unwrap();
    assert_eq!(everything.findings.len(), 4);
    assert_eq!(
        bus.get_finding(&fs[0].id).await.unwrap().unwrap(),
        fs[0],
        "archived, not deleted"
    );
}

pub async fn oversized_and_invalid_findings_are_rejected<B: Bus>(bus: &B) {
    let (w, s) = (worker("w"), session());
    let huge = Finding::new(w.clone(), s.clone(), "huge", "x".repeat(2 * 1024 * 1024));
    let err = bus.put_finding(&huge).await.unwrap_err();
    match &err {
        Error::ValueTooLarge { key, size, limit } => {
            assert!(key.contains(&huge.id.to_string()));
            assert!(size > limit);
        }
        other => panic!("expected ValueTooLarge, got {other:?}"),
    }
    assert!(
        bus.get_finding(&huge.id).await.unwrap().is_none(),
        "nothing stored"
    );
    let untitled = Finding::new(w.clone(), s.clone(), "", "body");
    assert!(matches!(
        bus.put_finding(&untitled).await.unwrap_err(),
        Error::InvalidInput { .. }
    ));
    // The limit counts the text, not its JSON escapes: 256 KiB of U+0001
    // (6 bytes each escaped, 1.5 MiB of JSON) is stored and read back whole,
    // and listed.
    let controls = Finding::new(w, s, "controls", "\u{1}".repeat(256 * 1024));
    bus.put_finding(&controls).await.unwrap();
    assert_eq!(
        bus.get_finding(&controls.id).await.unwrap().unwrap(),
        controls
    );
    let listing = bus
        .list_findings(&swarmbus_core::FindingFilter::all())
        .await
        .unwrap();
    assert!(listing.unreadable.is_empty(), "{:?}", listing.unreadable);
    assert!(listing.findings.iter().any(|f| f.id == controls.id));
}

// -------------------------------------------------------------------- feed

/// Reads the feed until every id in `want` was seen (acknowledging all).
async fn drain_feed_until<B: Bus>(
    bus: &B,
    group: &GroupName,
    consumer: &WorkerId,
    want: &HashSet<FindingId>,
) -> HashSet<FindingId> {
    let mut seen = HashSet::new();
    for _ in 0..10_000 {
        if want.is_subset(&seen) {
            break;
        }
        let entries = bus
            .read_feed(group, consumer, 500, Duration::from_millis(200))
            .await
            .unwrap();
        if entries.is_empty() {
            break;
        }
        let ids: Vec<swarmbus_core::bus::FeedEntryId> =
            entries.iter().map(|e| e.entry.clone()).collect();
        seen.extend(entries.iter().map(|e| e.finding.clone()));
        bus.ack_feed(group, &ids).await.unwrap();
    }
    seen
}

pub async fn feed_delivers_every_finding_to_each_group<B: Bus>(bus: &B) {
    let (w, s) = (worker("w"), session());
    let fs: Vec<Finding> = (0..20)
        .map(|i| finding(&w, &s, &format!("feed{i}")))
        .collect();
    bus.put_findings(&fs).await.unwrap();
    let want: HashSet<FindingId> = fs.iter().map(|f| f.id.clone()).collect();
    for g in [uniq("group-a"), uniq("group-b")] {
        let group = GroupName::new(g).unwrap();
        let seen = drain_feed_until(bus, &group, &worker("reader"), &want).await;
        assert!(want.is_subset(&seen), "each group sees every finding");
    }
}

pub async fn feed_redelivers_unacknowledged_entries_to_their_consumer<B: Bus>(bus: &B) {
    let group = GroupName::new(uniq("group")).unwrap();
    let reader = worker("reader");
    // Skip what earlier checks wrote.
    let (w, s) = (worker("w"), session());
    let marker = finding(&w, &s, "marker");
    bus.put_finding(&marker).await.unwrap();
    drain_feed_until(bus, &group, &reader, &HashSet::from([marker.id])).await;

    let f = finding(&w, &s, "unacked");
    bus.put_finding(&f).await.unwrap();
    let first = bus
        .read_feed(&group, &reader, 10, Duration::from_millis(500))
        .await
        .unwrap();
    assert!(first.iter().any(|e| e.finding == f.id));
    // Crash before ack: the same consumer gets it again.
    let again = bus
        .read_feed(&group, &reader, 10, Duration::from_millis(100))
        .await
        .unwrap();
    assert!(
        again.iter().any(|e| e.finding == f.id),
        "unacked entries come back"
    );
    let ids: Vec<swarmbus_core::bus::FeedEntryId> = again.iter().map(|e| e.entry.clone()).collect();
    bus.ack_feed(&group, &ids).await.unwrap();
    let after = bus
        .read_feed(&group, &reader, 10, Duration::from_millis(100))
        .await
        .unwrap();
    assert!(
        after.iter().all(|e| e.finding != f.id),
        "acknowledged entries do not"
    );
}

pub async fn feed_read_wakes_on_a_new_finding<B: Bus + Clone + 'static>(bus: &B) {
    let group = GroupName::new(uniq("group")).unwrap();
    let reader = worker("reader");
    let (w, s) = (worker("w"), session());
    let marker = finding(&w, &s, "marker");
    bus.put_finding(&marker).await.unwrap();
    drain_feed_until(bus, &group, &reader, &HashSet::from([marker.id])).await;

    let f = finding(&w, &s, "late");
    let writer = {
        let bus = bus.clone();
        let f = f.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            bus.put_finding(&f).await.unwrap();
        })
    };
    let got = bus
        .read_feed(&group, &reader, 10, Duration::from_secs(5))
        .await
        .unwrap();
    writer.await.unwrap();
    assert!(
        got.iter().any(|e| e.finding == f.id),
        "a waiting read returns the new finding"
    );
}

// ---------------------------------------------------------------- channels

pub async fn publish_fans_out_and_put_finding_notifies_its_key<B: Bus>(bus: &B) {
    let mut a = bus.subscribe(Channel::Queries).await.unwrap();
    let mut b = bus.subscribe(Channel::Queries).await.unwrap();
    let msg = uniq("hello");
    let receivers = bus.publish(Channel::Queries, &msg).await.unwrap();
    assert!(receivers >= 2, "both subscribers counted, got {receivers}");
    for sub in [&mut a, &mut b] {
        let got = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let m = sub.next().await.expect("stream open").unwrap();
                if m == msg {
                    return m;
                }
            }
        })
        .await
        .expect("message received");
        assert_eq!(got, msg);
    }

    let mut findings = bus.subscribe(Channel::Findings).await.unwrap();
    let f = finding(&worker("w"), &session(), "notify");
    bus.put_finding(&f).await.unwrap();
    let suffix = format!("finding:{}", f.id);
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let m = findings.next().await.expect("stream open").unwrap();
            if m.ends_with(&suffix) {
                break;
            }
        }
    })
    .await
    .expect("channel:findings carries the new finding's key");
}

// ------------------------------------------------------------ registry

pub async fn heartbeat_expires_after_its_ttl<B: Bus>(bus: &B) {
    let w = worker("beating");
    assert!(!bus.is_alive(&w).await.unwrap());
    let before = bus.count_alive_workers().await.unwrap();
    bus.heartbeat(&w, Duration::from_millis(400)).await.unwrap();
    assert!(bus.is_alive(&w).await.unwrap());
    assert!(
        bus.alive_workers()
            .await
            .unwrap()
            .iter()
            .any(|h| h.worker == w)
    );
    assert!(bus.count_alive_workers().await.unwrap() > before);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!bus.is_alive(&w).await.unwrap(), "expired after its TTL");
    assert!(
        !bus.alive_workers()
            .await
            .unwrap()
            .iter()
            .any(|h| h.worker == w)
    );
}

pub async fn progress_counts_as_a_heartbeat_and_is_reported<B: Bus>(bus: &B) {
    let w = worker("busy");
    let p = Progress::new(None, "reading docs");
    bus.progress(&w, &p).await.unwrap();
    assert!(bus.is_alive(&w).await.unwrap());
    let hb = bus
        .alive_workers()
        .await
        .unwrap()
        .into_iter()
        .find(|h| h.worker == w)
        .expect("listed");
    assert_eq!(hb.progress.map(|p| p.step), Some("reading docs".to_owned()));
    assert!((Utc::now() - hb.at).num_seconds().abs() < 60);
    bus.deregister(&w).await.unwrap();
}

pub async fn progress_keeps_the_workers_own_ttl<B: Bus>(bus: &B) {
    // A worker beating with a short TTL reports progress, then dies (beats
    // no more): it must be dead once its own TTL is over, not kept alive
    // for the bus's default TTL (a minute unless configured otherwise).
    let w = worker("short-lived");
    bus.heartbeat(&w, Duration::from_millis(400)).await.unwrap();
    bus.progress(&w, &Progress::new(None, "step 1"))
        .await
        .unwrap();
    assert!(bus.is_alive(&w).await.unwrap());
    let hb = bus
        .alive_workers()
        .await
        .unwrap()
        .into_iter()
        .find(|h| h.worker == w)
        .expect("listed");
    assert_eq!(hb.progress.map(|p| p.step), Some("step 1".to_owned()));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !bus.is_alive(&w).await.unwrap(),
        "progress stretched the worker's 400 ms TTL"
    );
    assert!(
        !bus.alive_workers()
            .await
            .unwrap()
            .iter()
            .any(|h| h.worker == w)
    );
    // With no current heartbeat, progress beats with the default TTL.
    bus.progress(&w, &Progress::new(None, "step 2"))
        .await
        .unwrap();
    assert!(bus.is_alive(&w).await.unwrap());
    bus.deregister(&w).await.unwrap();
}

pub async fn deregister_removes_a_worker<B: Bus>(bus: &B) {
    let w = worker("leaving");
    bus.heartbeat(&w, Duration::from_secs(60)).await.unwrap();
    bus.deregister(&w).await.unwrap();
    assert!(!bus.is_alive(&w).await.unwrap());
    assert!(
        !bus.alive_workers()
            .await
            .unwrap()
            .iter()
            .any(|h| h.worker == w)
    );
}

// ------------------------------------------------------------------- tasks

pub async fn tasks_are_claimed_in_order_and_ack_forgets_them<B: Bus>(bus: &B) {
    let w = worker("w");
    let s = session();
    let tasks: Vec<Task> = (0..3)
        .map(|i| Task::new(s.clone(), "k", format!("t{i}")))
        .collect();
    for t in &tasks {
        bus.push_task(&w, t).await.unwrap();
    }
    assert_eq!(bus.queued_tasks(&w).await.unwrap(), 3);
    for t in &tasks {
        let c = bus
            .claim_task(&w, Duration::from_millis(100))
            .await
            .unwrap()
            .expect("a task");
        assert_eq!(&c.task, t);
        assert_eq!(c.deliveries, 1);
        assert_eq!(c.worker, w);
        bus.ack_task(&c).await.unwrap();
        bus.ack_task(&c).await.unwrap(); // idempotent
    }
    assert_eq!(bus.queued_tasks(&w).await.unwrap(), 0);
    bus.heartbeat(&w, Duration::from_millis(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let r = bus.reclaim_abandoned(&worker("other"), 5).await.unwrap();
    assert!(
        r.requeued
            .iter()
            .all(|id| tasks.iter().all(|t| t.id != *id)),
        "acked tasks are gone"
    );
}

pub async fn claim_waits_for_a_task_then_times_out<B: Bus + Clone + 'static>(bus: &B) {
    let w = worker("w");
    let none = bus
        .claim_task(&w, Duration::from_millis(200))
        .await
        .unwrap();
    assert!(none.is_none());
    let t = Task::new(session(), "k", "late");
    let pusher = {
        let (bus, w, t) = (bus.clone(), w.clone(), t.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            bus.push_task(&w, &t).await.unwrap();
        })
    };
    let got = bus
        .claim_task(&w, Duration::from_secs(5))
        .await
        .unwrap()
        .expect("woken by the push");
    pusher.await.unwrap();
    assert_eq!(got.task, t);
    bus.ack_task(&got).await.unwrap();
}

pub async fn a_failed_task_is_stopped_and_reported_not_requeued<B: Bus>(bus: &B) {
    let w = worker("w");
    let t = Task::new(session(), "k", "will fail");
    bus.push_task(&w, &t).await.unwrap();
    let c = bus
        .claim_task(&w, Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    bus.fail_task(&c, "disk full").await.unwrap();
    assert_eq!(
        bus.queued_tasks(&w).await.unwrap(),
        0,
        "not retried silently"
    );
    let failed = bus.failed_tasks().await.unwrap();
    let f = failed.iter().find(|f| f.task.id == t.id).expect("reported");
    assert_eq!(f.report, "disk full");
    assert_eq!(f.worker, w);
    assert!(!f.dead_lettered);
    assert!(
        bus.claim_task(&w, Duration::from_millis(50))
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn tasks_of_a_dead_worker_are_reclaimed<B: Bus>(bus: &B) {
    let (dead, alive) = (worker("dead"), worker("alive"));
    let s = session();
    let (t1, t2) = (
        Task::new(s.clone(), "k", "in flight"),
        Task::new(s, "k", "queued"),
    );
    bus.heartbeat(&dead, Duration::from_millis(300))
        .await
        .unwrap();
    bus.push_task(&dead, &t1).await.unwrap();
    bus.push_task(&dead, &t2).await.unwrap();
    let c = bus
        .claim_task(&dead, Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.task, t1);
    bus.heartbeat(&alive, Duration::from_secs(60))
        .await
        .unwrap();
    let early = bus.reclaim_abandoned(&alive, 5).await.unwrap();
    assert!(
        !early.requeued.contains(&t1.id),
        "a live worker's task is not taken"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = bus.reclaim_abandoned(&alive, 5).await.unwrap();
    assert!(
        r.requeued.contains(&t1.id) && r.requeued.contains(&t2.id),
        "{r:?}"
    );
    assert!(r.from_workers.contains(&dead));
    let first = bus
        .claim_task(&alive, Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.task.id, t1.id);
    assert_eq!(first.deliveries, 2, "the delivery count survives the move");
    let second = bus
        .claim_task(&alive, Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.task.id, t2.id);
    // The dead worker's late ack does not drop the new holder's claim: when
    // the new holder dies too, the task is reclaimed once more.
    bus.ack_task(&c).await.unwrap();
    bus.ack_task(&second).await.unwrap();
    bus.heartbeat(&alive, Duration::from_millis(300))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let heir = worker("heir");
    bus.heartbeat(&heir, Duration::from_secs(60)).await.unwrap();
    let again = bus.reclaim_abandoned(&heir, 5).await.unwrap();
    assert_eq!(
        again.requeued,
        vec![t1.id],
        "the late ack of the dead worker's claim dropped the new holder's: {again:?}"
    );
    let third = bus
        .claim_task(&heir, Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((third.task.id, third.deliveries), (t1.id, 3));
    // The second holder's late ack does not drop the third's either.
    bus.ack_task(&first).await.unwrap();
    bus.ack_task(&third).await.unwrap();
    assert_eq!(
        bus.reclaim_abandoned(&heir, 5).await.unwrap().requeued,
        Vec::<TaskId>::new()
    );
    bus.deregister(&alive).await.unwrap();
    bus.deregister(&heir).await.unwrap();
}

/// A worker that was sent tasks before its first heartbeat is not dead: it
/// keeps its queued and claimed tasks until the grace period (default: one
/// heartbeat TTL) has passed. Once it has beaten and its heartbeat expired,
/// it is dead at once.
pub async fn a_worker_that_never_beat_keeps_its_tasks_during_the_grace_period<B: Bus>(bus: &B) {
    let (new, heir) = (worker("new"), worker("heir"));
    let s = session();
    let (t1, t2) = (
        Task::new(s.clone(), "k", "claimed before the first beat"),
        Task::new(s, "k", "queued before the first beat"),
    );
    bus.push_task(&new, &t1).await.unwrap();
    bus.push_task(&new, &t2).await.unwrap();
    let c = bus
        .claim_task(&new, Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.task, t1);
    let r = bus.reclaim_abandoned(&heir, 5).await.unwrap();
    assert!(
        !r.from_workers.contains(&new) && r.requeued.is_empty(),
        "a worker that never beat is not dead during its grace period: {r:?}"
    );
    assert_eq!(bus.queued_tasks(&new).await.unwrap(), 1);
    assert_eq!(bus.queued_tasks(&heir).await.unwrap(), 0);
    // It beats once and stops: now it is dead.
    bus.heartbeat(&new, Duration::from_millis(50))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let r = bus.reclaim_abandoned(&heir, 5).await.unwrap();
    assert!(
        r.requeued.contains(&t1.id) && r.requeued.contains(&t2.id),
        "{r:?}"
    );
    assert_eq!(bus.queued_tasks(&heir).await.unwrap(), 2);
}

/// For a bus made with `BusLimits::worker_grace(grace)` (short, not in
/// [`run_all`]): once the grace period has passed, a worker that never beat
/// is dead and its tasks are reclaimed.
pub async fn a_worker_that_never_beat_is_dead_after_its_grace_period<B: Bus>(
    bus: &B,
    grace: Duration,
) {
    let (new, heir) = (worker("late"), worker("heir"));
    let t = Task::new(session(), "k", "never picked up");
    bus.push_task(&new, &t).await.unwrap();
    let r = bus.reclaim_abandoned(&heir, 5).await.unwrap();
    assert!(r.requeued.is_empty(), "still in its grace period: {r:?}");
    tokio::time::sleep(grace + Duration::from_millis(100)).await;
    let r = bus.reclaim_abandoned(&heir, 5).await.unwrap();
    assert_eq!(r.requeued, vec![t.id], "{r:?}");
    assert_eq!(r.from_workers, vec![new]);
}

/// Pushing a task whose id is queued or in flight already stores it once
/// (a repeated push is a no-op on every bus).
pub async fn a_task_pushed_twice_is_queued_once<B: Bus>(bus: &B) {
    let w = worker("twice");
    let t = Task::new(session(), "k", "pushed twice");
    bus.push_task(&w, &t).await.unwrap();
    bus.push_task(&w, &t).await.unwrap();
    assert_eq!(bus.queued_tasks(&w).await.unwrap(), 1);
    let c = bus
        .claim_task(&w, Duration::from_millis(50))
        .await
        .unwrap()
        .unwrap();
    // In flight: pushing it again still adds nothing.
    bus.push_task(&w, &t).await.unwrap();
    assert_eq!(bus.queued_tasks(&w).await.unwrap(), 0);
    bus.ack_task(&c).await.unwrap();
}

/// A cost that is not a finite number of dollars is refused, on every bus.
pub async fn a_cost_that_is_not_finite_is_refused<B: Bus>(bus: &B) {
    let tier = TierName::new(uniq("nan")).unwrap();
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = bus.add_cost(&tier, bad).await.unwrap_err();
        assert!(matches!(err, Error::InvalidInput { .. }), "{bad}: {err:?}");
    }
    assert_eq!(bus.costs(&[tier]).await.unwrap(), vec![0.0]);
}

/// A heartbeat TTL of zero is refused with a typed error (it would expire
/// before it is written); a TTL of `Duration::MAX` ("forever") is accepted.
pub async fn heartbeat_ttl_zero_is_refused_and_max_is_forever<B: Bus>(bus: &B) {
    let w = worker("ttl");
    let err = bus.heartbeat(&w, Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert!(!bus.is_alive(&w).await.unwrap());
    bus.heartbeat(&w, Duration::MAX).await.unwrap();
    assert!(bus.is_alive(&w).await.unwrap());
    bus.deregister(&w).await.unwrap();
}

pub async fn reclaim_dead_letters_a_task_over_its_delivery_limit<B: Bus>(bus: &B) {
    let (dead, to) = (worker("dead"), worker("to"));
    let t = Task::new(session(), "k", "poison");
    bus.heartbeat(&dead, Duration::from_millis(200))
        .await
        .unwrap();
    bus.push_task(&dead, &t).await.unwrap();
    let _held = bus
        .claim_task(&dead, Duration::from_millis(100))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(450)).await;
    let r = bus.reclaim_abandoned(&to, 1).await.unwrap();
    assert_eq!(r.dead_lettered, vec![t.id]);
    assert!(!r.requeued.contains(&t.id));
    assert_eq!(bus.queued_tasks(&to).await.unwrap(), 0);
    let failed = bus.failed_tasks().await.unwrap();
    let f = failed
        .iter()
        .find(|f| f.task.id == t.id)
        .expect("dead-lettered with a report");
    assert!(f.dead_lettered);
    assert_eq!(f.deliveries, 1);
}

pub async fn concurrent_claims_deliver_each_task_once<B: Bus + Clone + 'static>(bus: &B) {
    let w = worker("shared-queue");
    let s = session();
    let tasks: Vec<Task> = (0..60)
        .map(|i| Task::new(s.clone(), "k", format!("c{i}")))
        .collect();
    for t in &tasks {
        bus.push_task(&w, t).await.unwrap();
    }
    let mut handles = Vec::new();
    for _ in 0..6 {
        let (bus, w) = (bus.clone(), w.clone());
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(c) = bus
                .claim_task(&w, Duration::from_millis(100))
                .await
                .unwrap()
            {
                bus.ack_task(&c).await.unwrap();
                got.push(c.task.id);
            }
            got
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.unwrap());
    }
    assert_eq!(all.len(), 60, "every task delivered");
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), 60, "no task delivered twice");
}

// ------------------------------------------------------------------- quota

pub async fn quota_grants_up_to_the_daily_limit_then_exhausts_until_pacific_midnight<B: Bus>(
    bus: &B,
) {
    let sh = shard();
    let limits = QuotaLimits::new(Some(3), None);
    let now = at("2026-03-07T20:00:00Z");
    let st = bus.shard_states(&[sh], limits, now).await.unwrap();
    assert_eq!(st[0].status, ShardStatus::Untested);
    for left in [2, 1, 0] {
        let a = bus.try_acquire(sh, limits, now).await.unwrap();
        assert_eq!(
            a,
            Acquire::Granted {
                remaining_today: Some(left)
            }
        );
    }
    assert_eq!(bus.shard_quotas(&[sh]).await.unwrap(), vec![Some(0)]);
    // The grant that reaches the limit marks the shard exhausted at once.
    let st = &bus.shard_states(&[sh], limits, now).await.unwrap()[0];
    assert_eq!(st.status, ShardStatus::Exhausted);
    assert_eq!(st.exhausted_until, Some(next_pacific_midnight(now)));
    let denied = bus.try_acquire(sh, limits, now).await.unwrap();
    let midnight = next_pacific_midnight(now);
    assert_eq!(midnight, at("2026-03-08T08:00:00Z"));
    assert_eq!(
        denied,
        Acquire::Denied(Denial::Exhausted { until: midnight })
    );
    let st = &bus.shard_states(&[sh], limits, now).await.unwrap()[0];
    assert_eq!(st.status, ShardStatus::Exhausted);
    assert_eq!(st.used_today, 3);
    assert_eq!(st.remaining_today, Some(0));
    assert_eq!(st.exhausted_until, Some(midnight));
    assert_eq!(st.next_usable(now), Some(midnight));
}

pub async fn quota_resets_on_a_new_pacific_day<B: Bus>(bus: &B) {
    let sh = shard();
    let limits = QuotaLimits::new(Some(2), None);
    // 23:30 Pacific (PST) on Jan 15 is 07:30 UTC on Jan 16.
    let late = at("2026-01-16T07:30:00Z");
    for _ in 0..2 {
        assert!(
            bus.try_acquire(sh, limits, late)
                .await
                .unwrap()
                .is_granted()
        );
    }
    assert!(
        !bus.try_acquire(sh, limits, late)
            .await
            .unwrap()
            .is_granted()
    );
    // Still the same Pacific day at 07:59 UTC.
    assert!(
        !bus.try_acquire(sh, limits, at("2026-01-16T07:59:00Z"))
            .await
            .unwrap()
            .is_granted()
    );
    // Pacific midnight: a new day, a new quota.
    let next_day = at("2026-01-16T08:00:00Z");
    assert_eq!(
        bus.try_acquire(sh, limits, next_day).await.unwrap(),
        Acquire::Granted {
            remaining_today: Some(1)
        }
    );
    assert_eq!(bus.shard_quotas(&[sh]).await.unwrap(), vec![Some(1)]);
}

pub async fn quota_per_minute_window_cools_the_shard_until_the_next_minute<B: Bus>(bus: &B) {
    let sh = shard();
    let limits = QuotaLimits::new(Some(100), Some(2));
    let now = at("2026-05-01T12:00:10Z");
    assert!(bus.try_acquire(sh, limits, now).await.unwrap().is_granted());
    assert!(bus.try_acquire(sh, limits, now).await.unwrap().is_granted());
    assert_eq!(
        bus.try_acquire(sh, limits, now).await.unwrap(),
        Acquire::Denied(Denial::Cooling {
            until: at("2026-05-01T12:01:00Z")
        })
    );
    let st = &bus.shard_states(&[sh], limits, now).await.unwrap()[0];
    assert_eq!(st.used_today, 2, "a denial is not counted");
    assert_eq!(
        st.status,
        ShardStatus::Cooling,
        "a full minute shows as cooling"
    );
    assert_eq!(st.cooling_until, Some(at("2026-05-01T12:01:00Z")));
    assert!(
        bus.try_acquire(sh, limits, at("2026-05-01T12:01:00Z"))
            .await
            .unwrap()
            .is_granted()
    );
}

pub async fn quota_is_exact_under_concurrent_acquires<B: Bus + Clone + 'static>(bus: &B) {
    let sh = shard();
    let limits = QuotaLimits::new(Some(37), None);
    let now = Utc::now();
    let mut handles = Vec::new();
    for _ in 0..100 {
        let bus = bus.clone();
        handles.push(tokio::spawn(async move {
            bus.try_acquire(sh, limits, now).await.unwrap().is_granted()
        }));
    }
    let mut granted = 0;
    for h in handles {
        granted += usize::from(h.await.unwrap());
    }
    assert_eq!(granted, 37);
    assert_eq!(bus.shard_quotas(&[sh]).await.unwrap(), vec![Some(0)]);
}

pub async fn cooling_and_exhaustion_deny_until_their_time<B: Bus>(bus: &B) {
    let sh = shard();
    let limits = QuotaLimits::new(Some(100), None);
    let now = Utc::now();
    let until = now + ChronoDuration::seconds(58);
    bus.cool_until(sh, until, now).await.unwrap();
    assert_eq!(
        bus.try_acquire(sh, limits, now).await.unwrap(),
        Acquire::Denied(Denial::Cooling { until })
    );
    let st = &bus.shard_states(&[sh], limits, now).await.unwrap()[0];
    assert_eq!(st.status, ShardStatus::Cooling);
    assert_eq!(st.cooling_until, Some(until));
    assert!(
        bus.try_acquire(sh, limits, until)
            .await
            .unwrap()
            .is_granted(),
        "usable when cooled"
    );

    let sh2 = shard();
    let midnight = next_pacific_midnight(now);
    bus.exhaust_until(sh2, midnight, now).await.unwrap();
    assert_eq!(bus.shard_quotas(&[sh2]).await.unwrap(), vec![Some(0)]);
    assert_eq!(
        bus.try_acquire(sh2, limits, now).await.unwrap(),
        Acquire::Denied(Denial::Exhausted { until: midnight })
    );
    let st = &bus.shard_states(&[sh2], limits, now).await.unwrap()[0];
    assert_eq!(st.status, ShardStatus::Exhausted);
    assert!(
        bus.try_acquire(sh2, limits, midnight)
            .await
            .unwrap()
            .is_granted()
    );
    bus.mark_ok(sh2, limits, midnight).await.unwrap();
    let st = &bus.shard_states(&[sh2], limits, midnight).await.unwrap()[0];
    assert_eq!(st.status, ShardStatus::Ok);
}

/// The one priority rule (`quota::shard_status`): disabled, then exhausted,
/// then cooling, then ok or untested; the state read back, the denial of a
/// request and the rule itself agree at every step, and an unknown shard
/// reads as untested with its whole day left.
pub async fn shard_state_priority_is_disabled_exhausted_cooling_ok<B: Bus>(bus: &B) {
    use swarmbus_core::quota::shard_status;
    let sh = shard();
    let limits = QuotaLimits::new(Some(100), None);
    let now = Utc::now();
    let until = now + ChronoDuration::seconds(3600);
    let state = |v: Vec<swarmbus_core::ShardState>| v.into_iter().next().unwrap();
    let st = state(bus.shard_states(&[sh], limits, now).await.unwrap());
    assert_eq!(st.status, ShardStatus::Untested);
    assert_eq!(st.remaining_today, Some(100), "{st:?}");
    assert_eq!(
        shard_status(false, false, false, false),
        ShardStatus::Untested
    );
    bus.mark_ok(sh, limits, now).await.unwrap();
    let st = state(bus.shard_states(&[sh], limits, now).await.unwrap());
    assert_eq!(st.status, shard_status(false, false, false, true));
    assert_eq!(st.status, ShardStatus::Ok);
    bus.cool_until(sh, until, now).await.unwrap();
    let st = state(bus.shard_states(&[sh], limits, now).await.unwrap());
    assert_eq!(st.status, shard_status(false, false, true, true));
    assert_eq!(st.status, ShardStatus::Cooling);
    let denied = bus.try_acquire(sh, limits, now).await.unwrap();
    assert_eq!(denied, Acquire::Denied(Denial::Cooling { until }));
    bus.exhaust_until(sh, until, now).await.unwrap();
    let st = state(bus.shard_states(&[sh], limits, now).await.unwrap());
    assert_eq!(st.status, shard_status(false, true, true, true));
    assert_eq!(st.status, ShardStatus::Exhausted, "exhausted beats cooling");
    assert_eq!(st.remaining_today, Some(0));
    let denied = bus.try_acquire(sh, limits, now).await.unwrap();
    assert_eq!(denied, Acquire::Denied(Denial::Exhausted { until }));
    bus.disable(sh, "leaked key", now).await.unwrap();
    let st = state(bus.shard_states(&[sh], limits, now).await.unwrap());
    assert_eq!(st.status, shard_status(true, true, true, true));
    assert_eq!(
        st.status,
        ShardStatus::Disabled,
        "disabled beats everything"
    );
    assert_eq!(st.disabled_reason.as_deref(), Some("leaked key"));
    let denied = bus.try_acquire(sh, limits, now).await.unwrap();
    assert!(
        matches!(denied, Acquire::Denied(Denial::Disabled { .. })),
        "{denied:?}"
    );
    bus.enable(sh, now).await.unwrap();
    let st = state(bus.shard_states(&[sh], limits, now).await.unwrap());
    assert_eq!(st.status, ShardStatus::Untested, "enable clears every mark");
}

pub async fn disable_is_permanent_until_enable<B: Bus>(bus: &B) {
    let sh = shard();
    let limits = QuotaLimits::free_tier();
    let now = Utc::now();
    bus.disable(sh, "API_KEY_INVALID", now).await.unwrap();
    let far = now + ChronoDuration::days(3);
    assert_eq!(
        bus.try_acquire(sh, limits, far).await.unwrap(),
        Acquire::Denied(Denial::Disabled {
            reason: "API_KEY_INVALID".into()
        })
    );
    let st = &bus.shard_states(&[sh], limits, now).await.unwrap()[0];
    assert_eq!(st.status, ShardStatus::Disabled);
    assert_eq!(st.disabled_reason.as_deref(), Some("API_KEY_INVALID"));
    assert_eq!(st.next_usable(now), None);
    bus.enable(sh, now).await.unwrap();
    assert!(bus.try_acquire(sh, limits, now).await.unwrap().is_granted());
}

pub async fn release_gives_a_request_back<B: Bus>(bus: &B) {
    let sh = shard();
    let limits = QuotaLimits::new(Some(1), None);
    let now = Utc::now();
    assert!(bus.try_acquire(sh, limits, now).await.unwrap().is_granted());
    bus.release(sh, limits, now).await.unwrap();
    assert_eq!(bus.shard_quotas(&[sh]).await.unwrap(), vec![Some(1)]);
    let st = &bus.shard_states(&[sh], limits, now).await.unwrap()[0];
    assert_ne!(
        st.status,
        ShardStatus::Exhausted,
        "a release lifts an exhaustion we counted"
    );
    assert!(bus.try_acquire(sh, limits, now).await.unwrap().is_granted());

    // An exhaustion the API reported is not lifted by a release.
    let sh2 = shard();
    let limits = QuotaLimits::new(Some(10), None);
    assert!(
        bus.try_acquire(sh2, limits, now)
            .await
            .unwrap()
            .is_granted()
    );
    bus.exhaust_until(sh2, next_pacific_midnight(now), now)
        .await
        .unwrap();
    bus.release(sh2, limits, now).await.unwrap();
    let st = &bus.shard_states(&[sh2], limits, now).await.unwrap()[0];
    assert_eq!(st.status, ShardStatus::Exhausted);
}

// -------------------------------------------------------------------- halt

pub async fn halt_first_reason_wins_and_clear_resumes<B: Bus>(bus: &B) {
    let previous = bus.clear_halt().await.unwrap();
    assert!(bus.halted().await.unwrap().is_none());
    let first =
        HaltReport::new("librarian shard 2 failed", "paper: section 3").saved(["draft:paper"]);
    assert!(bus.halt(&first).await.unwrap());
    assert!(!bus.halt(&HaltReport::new("second", "later")).await.unwrap());
    assert_eq!(bus.halted().await.unwrap(), Some(first.clone()));
    assert_eq!(bus.clear_halt().await.unwrap(), Some(first));
    assert!(bus.halted().await.unwrap().is_none());
    if let Some(p) = previous {
        bus.halt(&p).await.unwrap();
    }
}

pub async fn drafts_are_saved_and_loaded<B: Bus>(bus: &B) {
    let name = uniq("paper");
    assert!(bus.load_draft(&name).await.unwrap().is_none());
    bus.save_draft(&name, "v1").await.unwrap();
    bus.save_draft(&name, "v2 ✓").await.unwrap();
    assert_eq!(
        bus.load_draft(&name).await.unwrap().as_deref(),
        Some("v2 ✓")
    );
    assert!(bus.save_draft("bad name", "x").await.is_err());
}

// ---------------------------------------------------------------- counters

pub async fn cost_context_and_counters_add_up<B: Bus>(bus: &B) {
    let tier = TierName::new(uniq("tier")).unwrap();
    let other = TierName::new(uniq("tier")).unwrap();
    assert_eq!(
        bus.costs(std::slice::from_ref(&tier)).await.unwrap(),
        vec![0.0]
    );
    bus.add_cost(&tier, 0.0123).await.unwrap();
    let total = bus.add_cost(&tier, 0.0111).await.unwrap();
    assert!((total - 0.0234).abs() < 1e-12, "{total}");
    let costs = bus.costs(&[other, tier]).await.unwrap();
    assert_eq!(costs[0], 0.0);
    assert!((costs[1] - 0.0234).abs() < 1e-12);
    assert!(
        bus.add_cost(&TierName::new("x").unwrap(), f64::NAN)
            .await
            .is_err()
    );

    bus.set_context_tokens(4200).await.unwrap();
    assert_eq!(bus.context_tokens().await.unwrap(), Some(4200));

    let c = CounterName::new(uniq("counter")).unwrap();
    assert_eq!(bus.counter_add(&c, 5).await.unwrap(), 5);
    assert_eq!(bus.counter_add(&c, -2).await.unwrap(), 3);
    let missing = CounterName::new(uniq("counter")).unwrap();
    assert_eq!(
        bus.counters(&[c.clone(), missing]).await.unwrap(),
        vec![3, 0]
    );
    assert_eq!(bus.counter_try_add(&c, 7, 10).await.unwrap(), Some(10));
    assert_eq!(
        bus.counter_try_add(&c, 1, 10).await.unwrap(),
        None,
        "refused at the limit"
    );
    assert_eq!(bus.counters(&[c]).await.unwrap(), vec![10]);
}

pub async fn counter_try_add_never_overshoots_under_concurrency<B: Bus + Clone + 'static>(bus: &B) {
    let c = CounterName::new(uniq("budget")).unwrap();
    let mut handles = Vec::new();
    for _ in 0..100 {
        let (bus, c) = (bus.clone(), c.clone());
        handles.push(tokio::spawn(async move {
            bus.counter_try_add(&c, 10, 370).await.unwrap().is_some()
        }));
    }
    let mut granted = 0;
    for h in handles {
        granted += usize::from(h.await.unwrap());
    }
    assert_eq!(granted, 37);
    assert_eq!(bus.counters(&[c]).await.unwrap(), vec![370]);
}

pub async fn journal_appends_and_reads_in_order<B: Bus>(bus: &B) {
    let j = JournalName::new(uniq("ledger")).unwrap();
    assert_eq!(bus.journal_len(&j).await.unwrap(), 0);
    let recs: Vec<String> = (0..10).map(|i| format!("{{\"n\":{i}}}")).collect();
    bus.append(&j, &recs[..4]).await.unwrap();
    bus.append(&j, &recs[4..]).await.unwrap();
    assert_eq!(bus.journal_len(&j).await.unwrap(), 10);
    assert_eq!(bus.read(&j, 0, 100).await.unwrap(), recs);
    assert_eq!(bus.read(&j, 8, 100).await.unwrap(), recs[8..].to_vec());
    assert_eq!(bus.read(&j, 2, 3).await.unwrap(), recs[2..5].to_vec());
    assert!(bus.read(&j, 50, 10).await.unwrap().is_empty());
}

pub async fn append_with_cost_writes_the_record_and_the_cost_together<B: Bus>(bus: &B) {
    let j = JournalName::new(uniq("costed")).unwrap();
    let tier = TierName::new(uniq("tier")).unwrap();
    let recs = vec!["{\"call\":1}".to_owned(), "{\"call\":2}".to_owned()];
    let total = bus.append_with_cost(&j, &recs, &tier, 0.5).await.unwrap();
    assert!((total - 0.5).abs() < 1e-9, "{total}");
    let total = bus
        .append_with_cost(&j, &["{\"call\":3}".to_owned()], &tier, 0.25)
        .await
        .unwrap();
    assert!((total - 0.75).abs() < 1e-9, "{total}");
    assert_eq!(bus.journal_len(&j).await.unwrap(), 3);
    let costs = bus.costs(std::slice::from_ref(&tier)).await.unwrap();
    assert!((costs[0] - 0.75).abs() < 1e-9, "{costs:?}");
    // A cost that is not a finite number writes neither.
    let err = bus
        .append_with_cost(&j, &["{\"call\":4}".to_owned()], &tier, f64::NAN)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    // A record over the size limit writes neither.
    let huge = "x".repeat(2 * 1024 * 1024);
    assert!(bus.append_with_cost(&j, &[huge], &tier, 1.0).await.is_err());
    assert_eq!(bus.journal_len(&j).await.unwrap(), 3);
    let costs = bus.costs(std::slice::from_ref(&tier)).await.unwrap();
    assert!((costs[0] - 0.75).abs() < 1e-9, "{costs:?}");
}

// ----------------------------------------------------------------- archive

pub async fn archive_questions_are_queued_answered_and_notified<B: Bus>(bus: &B) {
    // Drain questions other checks may have left.
    while bus
        .next_query(Duration::from_millis(10))
        .await
        .unwrap()
        .is_some()
    {}
    let mut queries = bus.subscribe(Channel::Queries).await.unwrap();
    let mut responses = bus.subscribe(Channel::Responses).await.unwrap();
    let q = ArchiveQuery::new(
        "what did session 10 find about cost?",
        FindingFilter::all().tag("cost"),
    )
    .asked_by("coordinator");
    bus.ask(&q).await.unwrap();
    let suffix = format!("query:archive:{}", q.id);
    let note = tokio::time::timeout(Duration::from_secs(5), queries.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(note.ends_with(&suffix), "{note}");
    assert_eq!(bus.get_query(q.id).await.unwrap(), Some(q.clone()));
    let next = bus
        .next_query(Duration::from_millis(500))
        .await
        .unwrap()
        .expect("queued");
    assert_eq!(next, q);
    assert!(
        bus.next_query(Duration::from_millis(50))
            .await
            .unwrap()
            .is_none(),
        "taken once"
    );

    let cited = FindingId::random();
    let r = ArchiveResponse::answered(q.id, "It found X.", vec![cited]).answered_by("shard1");
    bus.answer(&r).await.unwrap();
    let note = tokio::time::timeout(Duration::from_secs(5), responses.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        note.ends_with(&format!("response:archive:{}", q.id)),
        "{note}"
    );
    assert_eq!(bus.get_response(q.id).await.unwrap(), Some(r));
}

// ------------------------------------------------------------ raw findings

/// Writes under `finding:<id>` as an agent outside the library would
/// (`redis-cli SET`/`HSET`/`RPUSH`, replacing what was there), then brings
/// the key into the bus's finding index the way its adopter does.
#[async_trait::async_trait]
pub trait RawFindingWriter: Send + Sync {
    /// Stores `value` under `finding:<id>` and adopts it.
    async fn write_raw_finding(&self, id: &FindingId, value: RawValue);
}

#[async_trait::async_trait]
impl RawFindingWriter for crate::MemoryBus {
    async fn write_raw_finding(&self, id: &FindingId, value: RawValue) {
        self.put_raw_finding(id.clone(), value).unwrap();
    }
}

/// Runs every raw-finding check, one after another, printing each name.
pub async fn run_raw_findings<B: Bus + RawFindingWriter>(bus: &B) {
    eprintln!("conformance: raw_findings_of_each_shape_are_read_counted_listed_and_filtered");
    raw_findings_of_each_shape_are_read_counted_listed_and_filtered(bus).await;
    eprintln!("conformance: unreadable_raw_values_are_reported_with_their_key_never_fatal");
    unreadable_raw_values_are_reported_with_their_key_never_fatal(bus).await;
    eprintln!("conformance: raw_findings_are_adopted_once_archived_and_never_overwritten");
    raw_findings_are_adopted_once_archived_and_never_overwritten(bus).await;
}

fn raw_id() -> FindingId {
    FindingId::new(uniq("raw_finding")).unwrap()
}

pub async fn raw_findings_of_each_shape_are_read_counted_listed_and_filtered<
    B: Bus + RawFindingWriter,
>(
    bus: &B,
) {
    let s = session();
    let before = bus.count_findings().await.unwrap();
    let (text, json, array, hash) = (raw_id(), raw_id(), raw_id(), raw_id());
    bus.write_raw_finding(
        &text,
        RawValue::text("DeepSeek pricing: $0.28 per million input tokens\nsecond line"),
    )
    .await;
    bus.write_raw_finding(
        &json,
        RawValue::text(
            serde_json::json!({
                "title": "Redis SCAN is incremental",
                "detail": {"count": 1000},
                "session": s.as_str(),
                "worker": "claude-sub-1",
                "tags": ["redis", "scan"],
            })
            .to_string(),
        ),
    )
    .await;
    bus.write_raw_finding(&array, RawValue::text(r#"["one", "two"]"#))
        .await;
    bus.write_raw_finding(
        &hash,
        RawValue::hash([
            ("summary", "Gemini quota is per project"),
            ("body", "Pooling keys of one project buys nothing."),
            ("session_id", s.as_str()),
            ("tags", "quota,gemini"),
        ]),
    )
    .await;
    assert_eq!(
        bus.count_findings().await.unwrap(),
        before + 4,
        "each raw shape is counted"
    );

    let t = bus.get_finding(&text).await.unwrap().expect("plain text");
    assert_eq!(t.origin(), FindingOrigin::RawText);
    assert_eq!(t.title, "DeepSeek pricing: $0.28 per million input tokens");
    assert!(t.body.ends_with("second line"), "{:?}", t.body);
    assert_eq!(t.worker.as_str(), UNKNOWN);
    assert_eq!(t.session.as_str(), UNKNOWN);
    assert!(t.tokens > 0);

    let j = bus.get_finding(&json).await.unwrap().expect("other json");
    assert_eq!(j.origin(), FindingOrigin::RawJson);
    assert_eq!(j.title, "Redis SCAN is incremental");
    assert_eq!(j.session, s);
    assert_eq!(j.worker.as_str(), "claude-sub-1");
    assert!(j.tags.contains("redis") && j.tags.contains("scan"));
    let pretty: serde_json::Value = serde_json::from_str(&j.body).unwrap();
    assert_eq!(
        pretty["detail"]["count"], 1000,
        "the body is the whole JSON"
    );

    let a = bus.get_finding(&array).await.unwrap().expect("json array");
    assert_eq!(a.origin(), FindingOrigin::RawJson);
    assert_eq!(a.title, array.as_str(), "no title field: the id");

    let h = bus.get_finding(&hash).await.unwrap().expect("hash");
    assert_eq!(h.origin(), FindingOrigin::RawHash);
    assert_eq!(h.title, "Gemini quota is per project");
    assert!(
        h.body
            .contains("body: Pooling keys of one project buys nothing.")
    );
    assert_eq!(h.session, s);
    assert!(h.tags.contains("quota") && h.tags.contains("gemini"));

    let many = bus
        .get_findings(&[hash.clone(), raw_id(), text.clone()])
        .await
        .unwrap();
    assert_eq!(many, vec![Some(h.clone()), None, Some(t.clone())]);

    let by_session = bus
        .list_findings(&FindingFilter::all().session(s.clone()))
        .await
        .unwrap();
    let ids: HashSet<FindingId> = by_session.findings.iter().map(|f| f.id.clone()).collect();
    assert_eq!(ids, [json.clone(), hash.clone()].into_iter().collect());
    assert!(by_session.unreadable.is_empty());
    let tagged = bus
        .list_findings(&FindingFilter::all().session(s).tag("scan"))
        .await
        .unwrap();
    assert_eq!(tagged.findings, vec![j]);
    let all = bus.list_findings(&FindingFilter::all()).await.unwrap();
    for id in [&text, &json, &array, &hash] {
        assert!(
            all.findings.iter().any(|f| &f.id == id),
            "{id} is listed with every finding"
        );
    }
}

pub async fn unreadable_raw_values_are_reported_with_their_key_never_fatal<
    B: Bus + RawFindingWriter,
>(
    bus: &B,
) {
    let s = session();
    let good = finding(&worker("w"), &s, "a library finding beside foreign values");
    bus.put_finding(&good).await.unwrap();
    let (binary, listy, big) = (raw_id(), raw_id(), raw_id());
    bus.write_raw_finding(&binary, RawValue::String(vec![0xff, 0xfe, 0x00, 0x80]))
        .await;
    // A key the index knows, replaced by a LIST (a key of another type is
    // never adopted by itself).
    bus.write_raw_finding(&listy, RawValue::text("soon a list"))
        .await;
    bus.write_raw_finding(
        &listy,
        RawValue::Other {
            found: "list".into(),
        },
    )
    .await;
    bus.write_raw_finding(&big, RawValue::text("x".repeat(1024 * 1024 + 1)))
        .await;

    let listing = bus
        .list_findings(&swarmbus_core::FindingFilter::all())
        .await
        .unwrap();
    assert!(
        listing.findings.iter().any(|f| f.id == good.id),
        "readable findings are listed"
    );
    let key_of = |id: &FindingId| format!("finding:{id}");
    for (id, what) in [(&binary, "binary"), (&listy, "list"), (&big, "oversized")] {
        let report = listing
            .unreadable
            .iter()
            .find(|u| u.key.ends_with(&key_of(id)))
            .unwrap_or_else(|| panic!("the {what} value is reported: {:?}", listing.unreadable));
        match (&report.reason, what) {
            (UnreadableReason::NotText, "binary")
            | (UnreadableReason::TooLarge { .. }, "oversized") => {}
            (UnreadableReason::WrongType { found }, "list") => assert_eq!(found, "list"),
            (other, _) => panic!("{what}: unexpected reason {other:?}"),
        }
        assert!(!listing.findings.iter().any(|f| &f.id == id));
    }
    match bus.get_finding(&binary).await.unwrap_err() {
        Error::Decode { key, .. } => assert!(key.ends_with(&key_of(&binary))),
        other => panic!("binary: expected Decode, got {other:?}"),
    }
    match bus.get_finding(&listy).await.unwrap_err() {
        Error::WrongType { key, found, .. } => {
            assert!(key.ends_with(&key_of(&listy)));
            assert_eq!(found, "list");
        }
        other => panic!("list: expected WrongType, got {other:?}"),
    }
    match bus.get_finding(&big).await.unwrap_err() {
        Error::ValueTooLarge { key, .. } => assert!(key.ends_with(&key_of(&big))),
        other => panic!("oversized: expected ValueTooLarge, got {other:?}"),
    }
    // Leave nothing unreadable in the index for the checks that follow.
    bus.archive_findings(&[binary, listy, big]).await.unwrap();
}

pub async fn raw_findings_are_adopted_once_archived_and_never_overwritten<
    B: Bus + RawFindingWriter,
>(
    bus: &B,
) {
    let id = raw_id();
    let before = bus.count_findings().await.unwrap();
    bus.write_raw_finding(&id, RawValue::text("written twice"))
        .await;
    bus.write_raw_finding(&id, RawValue::text("written twice, changed"))
        .await;
    assert_eq!(
        bus.count_findings().await.unwrap(),
        before + 1,
        "adopting a key again counts it once"
    );
    let read = bus.get_finding(&id).await.unwrap().unwrap();
    assert_eq!(
        read.title, "written twice, changed",
        "the latest value is read"
    );

    // The library never writes over a value it did not write.
    let ours = finding(&worker("w"), &session(), "same id").with_id(id.clone());
    let err = bus.put_finding(&ours).await.unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    assert_eq!(bus.get_finding(&id).await.unwrap().unwrap(), read);

    assert_eq!(
        bus.archive_findings(std::slice::from_ref(&id))
            .await
            .unwrap(),
        1
    );
    assert_eq!(bus.count_findings().await.unwrap(), before);
    let active = bus.list_findings(&FindingFilter::all()).await.unwrap();
    assert!(!active.findings.iter().any(|f| f.id == id));
    let with_archived = bus
        .list_findings(&FindingFilter::all().with_archived())
        .await
        .unwrap();
    assert!(with_archived.findings.iter().any(|f| f.id == id));
    bus.write_raw_finding(&id, RawValue::text("rewritten after archiving"))
        .await;
    assert_eq!(
        bus.count_findings().await.unwrap(),
        before,
        "an archived key stays archived when rewritten"
    );
}
