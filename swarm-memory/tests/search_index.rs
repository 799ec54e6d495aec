//! The search index on the MemoryBus: the fixed corpus, and the index equal
//! to a scan after random interleavings of put, archive, raw put (adoption),
//! raw delete, update, delete (tombstone) and repair; the lifecycle and an
//! export → import round trip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use proptest::prelude::*;
use swarmbus_core::RawValue;
use swarmbus_core::{
    Finding, FindingId, FindingIndex, FindingLifecycle, FindingStore, SessionId, WorkerId,
};
use swarmbus_memory::MemoryBus;
use swarmbus_memory::conformance_search::{
    index_matches_scan, lifecycle, ranking_and_filters, round_trip,
};

#[tokio::test]
async fn updates_deletes_and_expiry_keep_versions_and_the_index() {
    lifecycle(&MemoryBus::new()).await;
}

#[tokio::test]
async fn an_export_imports_back_with_its_versions_and_tombstones() {
    let src = MemoryBus::new();
    lifecycle(&src).await;
    round_trip(&src, &MemoryBus::new()).await;
}

#[tokio::test]
async fn the_fixed_corpus_ranks_and_filters_as_written_down() {
    ranking_and_filters(&MemoryBus::new()).await;
}

const WORDS: &[&str] = &["redis", "quota", "Straße", "cluster", "gemini", "cost"];

#[derive(Debug, Clone)]
enum Op {
    Put(Vec<usize>, Vec<usize>),
    Archive(usize),
    Raw(usize, Vec<usize>),
    DeleteRaw(usize),
    Update(usize, Vec<usize>),
    Delete(usize),
    Repair,
}

fn op() -> impl Strategy<Value = Op> {
    let words = || proptest::collection::vec(0..WORDS.len(), 0..5);
    prop_oneof![
        4 => (words(), words()).prop_map(|(t, b)| Op::Put(t, b)),
        1 => (0usize..20).prop_map(Op::Archive),
        2 => (0usize..4, words()).prop_map(|(i, w)| Op::Raw(i, w)),
        1 => (0usize..4).prop_map(Op::DeleteRaw),
        2 => (0usize..20, words()).prop_map(|(i, w)| Op::Update(i, w)),
        1 => (0usize..20).prop_map(Op::Delete),
        1 => Just(Op::Repair),
    ]
}

fn text(ws: &[usize]) -> String {
    ws.iter().map(|i| WORDS[*i]).collect::<Vec<_>>().join(" ")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn the_index_equals_a_scan(ops in proptest::collection::vec(op(), 1..30)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let bus = MemoryBus::new();
            let mut ids: Vec<FindingId> = Vec::new();
            for op in ops {
                match op {
                    Op::Put(t, b) => {
                        let f = Finding::new(
                            WorkerId::new("w").unwrap(),
                            SessionId::new("s").unwrap(),
                            format!("t {}", text(&t)),
                            text(&b),
                        );
                        ids.push(f.id.clone());
                        bus.put_finding(&f).await.unwrap();
                    }
                    Op::Archive(i) => {
                        if let Some(id) = ids.get(i) {
                            bus.archive_findings(std::slice::from_ref(id)).await.unwrap();
                        }
                    }
                    Op::Raw(i, w) => {
                        let id = FindingId::new(format!("raw{i}")).unwrap();
                        bus.put_raw_finding(id, RawValue::String(text(&w).into_bytes())).unwrap();
                    }
                    Op::DeleteRaw(i) => {
                        bus.delete_raw_finding(&FindingId::new(format!("raw{i}")).unwrap());
                    }
                    Op::Update(i, w) => {
                        if let Some(id) = ids.get(i)
                            && let Some(mut f) = bus.get_finding(id).await.unwrap()
                        {
                            f.body = text(&w);
                            bus.update_finding(&f).await.unwrap();
                        }
                    }
                    Op::Delete(i) => {
                        if let Some(id) = ids.get(i) {
                            bus.delete_finding(id, chrono::Utc::now()).await.unwrap();
                        }
                    }
                    Op::Repair => {
                        bus.check_index(true).await.unwrap();
                    }
                }
            }
            index_matches_scan(&bus, &["redis", "strasse quota", "cluster gemini cost", "t"]).await;
        });
    }
}
