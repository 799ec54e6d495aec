//! Pricing one call, and building a report over many ledger entries.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::hint::black_box;

use chrono::Utc;
use criterion::{Criterion, criterion_group, criterion_main};
use swarmbus_core::keys::TierName;
use swarmbus_cost::{Billing, Call, LedgerEntry, PriceTable, Report, Tiers, Usage};

fn pricing(c: &mut Criterion) {
    let table = PriceTable::built_in().expect("built-in table");
    let usage = Usage::new(1_000, 500)
        .with_cache_read(8_000)
        .with_cache_write(1_000, 0);
    let now = Utc::now();
    c.bench_function("price one haiku call", |b| {
        b.iter(|| {
            table.price(
                black_box("claude-haiku-4-5-20251001"),
                black_box(&usage),
                Billing::Standard,
                now,
            )
        })
    });
    c.bench_function("parse the built-in table", |b| b.iter(PriceTable::built_in));

    let haiku = TierName::new("haiku").expect("tier");
    let entries: Vec<LedgerEntry> = (0..10_000)
        .map(|i| {
            let call = Call::new(haiku.clone(), "claude-haiku-4-5").at(now);
            LedgerEntry::priced(&call, Usage::new(1_000 + i, 500), &table)
        })
        .collect();
    let tiers = Tiers::default();
    c.bench_function("report over 10k entries", |b| {
        b.iter(|| Report::build(black_box(&entries), &tiers, &table))
    });
}

criterion_group!(benches, pricing);
criterion_main!(benches);
