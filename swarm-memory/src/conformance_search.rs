//! The search index's conformance checks (feature `testing`): a fixed
//! corpus with its expected orders written down, and the index compared
//! with a scan of the findings. Each check needs a fresh, empty bus (a new
//! `MemoryBus`, a Redis bus in a random namespace).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeSet;

use chrono::{DateTime, TimeZone, Utc};

use swarmbus_core::bus::FindingStore;
use swarmbus_core::keys::{FindingId, SessionId, WorkerId};
use swarmbus_core::search::{FindingIndex, MatchMode, SearchQuery, tokens};
use swarmbus_core::{Finding, FindingFilter};

fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, minute, 0).unwrap()
}

/// The corpus, in the order it is written (A oldest … E newest).
pub fn corpus() -> Vec<(&'static str, Finding)> {
    let s1 = SessionId::new("s1").unwrap();
    let s2 = SessionId::new("s2").unwrap();
    let w1 = WorkerId::new("w1").unwrap();
    let w2 = WorkerId::new("w2").unwrap();
    let f = |s: &SessionId, w: &WorkerId, title: &str, body: &str, tags: &[&str], m: u32| {
        Finding::new(w.clone(), s.clone(), title, body)
            .with_tags(tags.iter().copied())
            .at(at(m))
    };
    vec![
        (
            "A",
            f(
                &s1,
                &w1,
                "Redis cluster failover",
                "Failover moves slots to a replica.",
                &["redis"],
                0,
            ),
        ),
        (
            "B",
            f(
                &s1,
                &w2,
                "Pricing of deepseek",
                "Deepseek costs less than redis hosting; redis, redis.",
                &["cost"],
                1,
            ),
        ),
        (
            "C",
            f(
                &s2,
                &w1,
                "Gemini quota",
                "Daily quota resets at Pacific midnight.",
                &["gemini", "quota"],
                2,
            ),
        ),
        ("D", f(&s2, &w2, "Notes", "cluster failover notes", &[], 3)),
        (
            "E",
            f(
                &s1,
                &w1,
                "Straße names",
                "Unicode folding: STRASSE",
                &["unicode"],
                4,
            ),
        ),
    ]
}

async fn names<B: FindingIndex>(
    bus: &B,
    corpus: &[(&'static str, Finding)],
    q: &SearchQuery,
) -> (Vec<&'static str>, u64, Option<String>) {
    let page = bus.search_findings(q).await.unwrap();
    let names = page
        .hits
        .iter()
        .map(|h| {
            corpus
                .iter()
                .find(|(_, f)| f.id == h.id)
                .map(|(n, _)| *n)
                .unwrap_or("?")
        })
        .collect();
    (names, page.total, page.next_cursor)
}

/// Writes the corpus and checks ranking, filters, paging and archiving.
pub async fn ranking_and_filters<B: FindingStore + FindingIndex>(bus: &B) {
    let corpus = corpus();
    for (_, f) in &corpus {
        bus.put_finding(f).await.unwrap();
    }
    let s1 = SessionId::new("s1").unwrap();
    let w1 = WorkerId::new("w1").unwrap();
    let check = |q: SearchQuery, want: &'static [&'static str]| {
        let corpus = &corpus;
        async move {
            let (got, total, _) = names(bus, corpus, &q).await;
            assert_eq!(got, want, "query {q:?}");
            assert_eq!(total, want.len() as u64, "total of {q:?}");
        }
    };
    // Title and tag weigh three times the body: A (title + tag) before B
    // (three times in the body).
    check(SearchQuery::text("redis"), &["A", "B"]).await;
    check(SearchQuery::text("Cluster FAILOVER"), &["A", "D"]).await;
    // Any term: the rarer term (quota, in one finding) counts more.
    check(
        SearchQuery::text("quota redis").mode(MatchMode::Any),
        &["C", "A", "B"],
    )
    .await;
    check(SearchQuery::text("quota redis"), &[]).await;
    check(SearchQuery::text("redis").tag("cost"), &["B"]).await;
    check(SearchQuery::text("redis").worker(w1.clone()), &["A"]).await;
    // Full case folding: ß is ss.
    check(SearchQuery::text("strasse"), &["E"]).await;
    check(SearchQuery::text("STRAßE"), &["E"]).await;
    check(SearchQuery::text("zebra"), &[]).await;
    check(SearchQuery::text("!!"), &[]).await;
    // Listings, newest first.
    check(SearchQuery::listing(), &["E", "D", "C", "B", "A"]).await;
    check(SearchQuery::listing().session(s1.clone()), &["E", "B", "A"]).await;
    check(SearchQuery::listing().worker(w1), &["E", "C", "A"]).await;
    check(
        SearchQuery::listing().between(Some(at(2)), None),
        &["E", "D", "C"],
    )
    .await;
    check(
        SearchQuery::listing().between(Some(at(1)), Some(at(3))),
        &["C", "B"],
    )
    .await;
    check(SearchQuery::listing().tag("nope"), &[]).await;
    // Paging with a cursor: every hit once, in order.
    for q in [
        SearchQuery::listing(),
        SearchQuery::text("redis cluster failover quota notes").mode(MatchMode::Any),
    ] {
        let (all, total, _) = names(bus, &corpus, &q.clone().limit(100)).await;
        let mut paged = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut page = q.clone().limit(2);
            if let Some(c) = cursor.take() {
                page = page.after(c);
            }
            let (got, t, next) = names(bus, &corpus, &page).await;
            assert_eq!(t, total);
            assert!(got.len() <= 2);
            paged.extend(got);
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(paged, all, "paged {q:?}");
    }
    assert!(
        bus.search_findings(&SearchQuery::listing().after("garbage"))
            .await
            .is_err()
    );
    // Archived: gone from results unless asked for.
    let b = corpus[1].1.id.clone();
    bus.archive_findings(std::slice::from_ref(&b))
        .await
        .unwrap();
    check(SearchQuery::text("redis"), &["A"]).await;
    check(
        SearchQuery::text("redis").include_archived(true),
        &["A", "B"],
    )
    .await;
    check(SearchQuery::listing().session(s1), &["E", "A"]).await;
    let report = bus.check_index(false).await.unwrap();
    assert!(report.is_consistent(), "{report:?}");
    assert_eq!(report.findings, 5);
}

/// The ids a scan of the listed findings says match `query` (all terms).
pub fn scan_matches(findings: &[Finding], query: &str) -> BTreeSet<FindingId> {
    let want: BTreeSet<String> = tokens(query).collect();
    findings
        .iter()
        .filter(|f| {
            let mut have: BTreeSet<String> = tokens(&f.title).collect();
            have.extend(tokens(&f.body));
            for t in &f.tags {
                have.extend(tokens(t));
            }
            !want.is_empty() && want.is_subset(&have)
        })
        .map(|f| f.id.clone())
        .collect()
}

/// Compares the index with a scan: for each query the same ids, the
/// listing the same ids as `list_findings` and as many as
/// `count_findings`, and `check_index` finds nothing.
pub async fn index_matches_scan<B: FindingStore + FindingIndex>(bus: &B, queries: &[&str]) {
    let listed = bus.list_findings(&FindingFilter::all()).await.unwrap();
    let findings = listed.findings;
    for q in queries {
        let page = bus
            .search_findings(&SearchQuery::text(*q).limit(1000))
            .await
            .unwrap();
        let got: BTreeSet<FindingId> = page.hits.into_iter().map(|h| h.id).collect();
        assert_eq!(got, scan_matches(&findings, q), "query {q:?}");
    }
    let page = bus
        .search_findings(&SearchQuery::listing().limit(1000))
        .await
        .unwrap();
    let got: BTreeSet<FindingId> = page.hits.into_iter().map(|h| h.id).collect();
    let want: BTreeSet<FindingId> = findings.iter().map(|f| f.id.clone()).collect();
    assert_eq!(got, want, "listing");
    assert_eq!(
        page.total,
        bus.count_findings().await.unwrap(),
        "listing total"
    );
    let report = bus.check_index(false).await.unwrap();
    assert!(report.is_consistent(), "{report:?}");
}

/// The lifecycle (see [`swarmbus_core::lifecycle`]): versions, deletion,
/// expiry and the index following each, on a fresh bus.
pub async fn lifecycle<B: swarmbus_core::lifecycle::FindingLifecycle>(bus: &B) {
    use swarmbus_core::error::Error;
    use swarmbus_core::lifecycle::Removal;
    let s1 = SessionId::new("s1").unwrap();
    let s2 = SessionId::new("s2").unwrap();
    let w = WorkerId::new("w1").unwrap();
    let now = Utc::now();
    let f = |s: &SessionId, title: &str, body: &str| {
        Finding::new(w.clone(), s.clone(), title, body).at(at(1))
    };
    let a = f(&s1, "Redis failover", "first draft about sentinels");
    let b = f(&s1, "Quota notes", "gemini quota resets at midnight");
    let c = f(&s2, "Cost", "deepseek is cheap");
    let d = f(&s2, "Cluster", "slots move");
    bus.put_findings(&[a.clone(), b.clone(), c.clone(), d.clone()])
        .await
        .unwrap();
    let hits = |q: &str| {
        let q = SearchQuery::text(q).include_archived(true).limit(100);
        async move {
            bus.search_findings(&q)
                .await
                .unwrap()
                .hits
                .into_iter()
                .map(|h| h.id)
                .collect::<BTreeSet<_>>()
        }
    };
    let one = |id: &FindingId| BTreeSet::from([id.clone()]);

    // An update: a new version, the old kept, the index follows.
    let mut a2 = a.clone();
    a2.body = "corrected: raft elections".into();
    a2.created_at = at(5);
    assert_eq!(bus.update_finding(&a2).await.unwrap(), 2);
    assert_eq!(bus.get_finding(&a.id).await.unwrap(), Some(a2.clone()));
    assert!(
        hits("sentinels").await.is_empty(),
        "the old text is retired"
    );
    assert_eq!(hits("raft").await, one(&a.id));
    assert_eq!(bus.count_findings().await.unwrap(), 4);
    let h = bus.finding_history(&a.id).await.unwrap().unwrap();
    assert_eq!(h.current, Some(2));
    assert_eq!(h.versions.len(), 1);
    assert_eq!(h.versions[0].version, 1);
    assert_eq!(h.versions[0].finding, a);
    assert_eq!(h.version(1, None), Some(a.clone()));
    // The same content again: nothing new.
    assert_eq!(bus.update_finding(&a2).await.unwrap(), 2);
    let mut a3 = a2.clone();
    a3.title = "Redis failover, final".into();
    assert_eq!(bus.update_finding(&a3).await.unwrap(), 3);
    assert_eq!(
        bus.finding_history(&a.id)
            .await
            .unwrap()
            .unwrap()
            .versions
            .len(),
        2
    );
    // Unknown ids are named.
    let ghost = f(&s1, "ghost", "never stored");
    match bus.update_finding(&ghost).await {
        Err(Error::NotFound { key }) => assert!(key.ends_with(ghost.id.as_str()), "{key}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        bus.delete_finding(&ghost.id, now).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(bus.finding_history(&ghost.id).await.unwrap(), None);
    // An archived finding stays archived through an update.
    bus.archive_findings(std::slice::from_ref(&d.id))
        .await
        .unwrap();
    let mut d2 = d.clone();
    d2.body = "slots migrate".into();
    assert_eq!(bus.update_finding(&d2).await.unwrap(), 2);
    assert_eq!(bus.count_findings().await.unwrap(), 3);
    assert_eq!(hits("migrate").await, one(&d.id));
    assert!(
        bus.search_findings(&SearchQuery::text("migrate"))
            .await
            .unwrap()
            .hits
            .is_empty()
    );

    // A deletion: a tombstone, the last version kept, gone from reads.
    let t = bus.delete_finding(&b.id, at(9)).await.unwrap();
    assert_eq!(
        (t.version, t.reason, t.removed_at),
        (1, Removal::Deleted, at(9))
    );
    assert_eq!(bus.delete_finding(&b.id, now).await.unwrap(), t, "once");
    assert_eq!(bus.get_finding(&b.id).await.unwrap(), None);
    assert_eq!(bus.count_findings().await.unwrap(), 2);
    assert!(hits("midnight").await.is_empty());
    let listed = bus
        .list_findings(&FindingFilter::all().with_archived())
        .await
        .unwrap();
    assert!(listed.findings.iter().all(|x| x.id != b.id));
    let h = bus.finding_history(&b.id).await.unwrap().unwrap();
    assert_eq!(h.current, None);
    assert_eq!(h.tombstone, Some(t));
    assert_eq!(h.version(1, None), Some(b.clone()));
    assert!(matches!(
        bus.update_finding(&b).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        bus.put_finding(&b).await,
        Err(Error::Conflict { .. })
    ));

    // Expiry: past its time a finding is deleted before any read.
    assert_eq!(
        bus.expire_findings(
            &[c.id.clone(), ghost.id.clone()],
            Some(now - chrono::Duration::seconds(1))
        )
        .await
        .unwrap(),
        1
    );
    assert_eq!(bus.count_findings().await.unwrap(), 1);
    assert_eq!(bus.get_finding(&c.id).await.unwrap(), None);
    assert!(hits("deepseek").await.is_empty());
    let h = bus.finding_history(&c.id).await.unwrap().unwrap();
    assert_eq!(h.tombstone.map(|t| t.reason), Some(Removal::Expired));
    // A session's findings, archived too; a later time sweeps them.
    let e = f(&s2, "Later", "kept until the sweep");
    bus.put_finding(&e).await.unwrap();
    let later = now + chrono::Duration::hours(1);
    assert_eq!(bus.expire_session(&s2, Some(later)).await.unwrap(), 2);
    assert_eq!(bus.count_findings().await.unwrap(), 2, "not yet");
    assert_eq!(
        bus.expire_findings(std::slice::from_ref(&e.id), None)
            .await
            .unwrap(),
        1
    );
    assert_eq!(bus.sweep_expired(later).await.unwrap(), 1);
    assert_eq!(bus.get_finding(&d.id).await.unwrap(), None);
    assert_eq!(
        bus.get_finding(&e.id).await.unwrap(),
        Some(e.clone()),
        "cleared"
    );
    assert_eq!(bus.sweep_expired(later).await.unwrap(), 0);

    let mut past: Vec<FindingId> = bus
        .finding_histories()
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.id)
        .collect();
    past.sort();
    let mut want = vec![a.id.clone(), b.id.clone(), c.id.clone(), d.id.clone()];
    want.sort();
    assert_eq!(past, want);
    index_matches_scan(bus, &["raft", "redis", "slots", "quota", "later"]).await;
}

/// Everything of `src` written into the empty `dst` as an export and an
/// import do (the findings, then the histories), and compared.
pub async fn round_trip<A, B>(src: &A, dst: &B)
where
    A: swarmbus_core::lifecycle::FindingLifecycle,
    B: swarmbus_core::lifecycle::FindingLifecycle,
{
    let all = FindingFilter::all().with_archived();
    let findings = src.list_findings(&all).await.unwrap().findings;
    dst.put_findings(&findings).await.unwrap();
    let histories = src.finding_histories().await.unwrap();
    for h in &histories {
        dst.restore_history(h).await.unwrap();
    }
    for h in &histories {
        assert!(
            !dst.restore_history(h).await.unwrap(),
            "a second import changes nothing"
        );
    }
    let mut got = dst.finding_histories().await.unwrap();
    let mut want = histories;
    got.sort_by(|a, b| a.id.cmp(&b.id));
    want.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(got, want);
    let got = dst.list_findings(&all).await.unwrap().findings;
    assert_eq!(
        got.iter().map(|f| &f.id).collect::<BTreeSet<_>>(),
        findings.iter().map(|f| &f.id).collect::<BTreeSet<_>>()
    );
    let report = dst.check_index(false).await.unwrap();
    assert!(report.is_consistent(), "{report:?}");
}
