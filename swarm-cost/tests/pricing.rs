//! Hand-computed prices: every bucket of every model in the built-in table,
//! the long-context tiers, batch, free tier, effective dates, unpriced cases.
//!
//! Each expected amount is worked out in the comment beside it, in dollars
//! per million tokens: cost = Σ tokens × rate / 1,000,000.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use chrono::{DateTime, TimeZone, Utc};
use swarmbus_cost::{
    Billing, Bucket, ContextTier, Cost, Money, PriceTable, PricedCall, Unpriced, Usage,
};

fn table() -> PriceTable {
    PriceTable::built_in().unwrap()
}

/// A time when every row of the built-in table is in force.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap()
}

/// 1,000 fresh input, 8,000 cache read, 1,000 cache write 5m, 2,000 cache write 1h, 500 output.
fn all_buckets() -> Usage {
    Usage::new(1_000, 500)
        .with_cache_read(8_000)
        .with_cache_write(1_000, 2_000)
}

/// The same without cache writes (for providers that do not bill them).
fn no_writes() -> Usage {
    Usage::new(1_000, 500).with_cache_read(8_000)
}

fn priced(model: &str, usage: Usage, billing: Billing) -> PricedCall {
    let cost = table().price(model, &usage, billing, now());
    match cost.priced() {
        Some(p) => p.clone(),
        None => panic!("{model} unpriced: {cost:?}"),
    }
}

fn usd(model: &str, usage: Usage, billing: Billing) -> String {
    priced(model, usage, billing).usd.to_string()
}

fn unpriced(model: &str, usage: Usage, billing: Billing, at: DateTime<Utc>) -> Unpriced {
    let cost = table().price(model, &usage, billing, at);
    match cost.unpriced() {
        Some(why) => why.clone(),
        None => panic!("{model} priced: {cost:?}"),
    }
}

#[test]
fn the_issue_example_haiku_call_costs_0_00555() {
    // 1,000 × 1 + 8,000 × 0.10 + 1,000 × 1.25 + 500 × 5 = 1,000 + 800 + 1,250 + 2,500 = 5,550 → $0.00555
    let usage = Usage::new(1_000, 500)
        .with_cache_read(8_000)
        .with_cache_write(1_000, 0);
    let p = priced("claude-haiku-4-5-20251001", usage, Billing::Standard);
    assert_eq!(p.model, "claude-haiku-4-5");
    assert_eq!(p.usd.to_string(), "0.00555");
    assert_eq!(p.usd, Money::from_picos(5_550_000_000));
    assert_eq!(p.buckets.input.usd.to_string(), "0.001");
    assert_eq!(p.buckets.cache_read.usd.to_string(), "0.0008");
    assert_eq!(p.buckets.cache_write_5m.usd.to_string(), "0.00125");
    assert_eq!(p.buckets.cache_write_1h.usd.to_string(), "0.00");
    assert_eq!(p.buckets.output.usd.to_string(), "0.0025");
    assert_eq!(p.shadow(), None);
}

#[test]
fn each_bucket_of_each_anthropic_model_has_its_own_rate() {
    // tokens: input 1,000 / cache read 8,000 / write 5m 1,000 / write 1h 2,000 / output 500
    let cases = [
        // Haiku 4.5: 1 / 0.10 / 1.25 / 2 / 5
        (
            "claude-haiku-4-5",
            ["0.001", "0.0008", "0.00125", "0.004", "0.0025"],
            "0.00955",
        ),
        // Sonnet 4.5: 3 / 0.30 / 3.75 / 6 / 15 → 3,000 + 2,400 + 3,750 + 12,000 + 7,500 = 28,650
        (
            "claude-sonnet-4-5",
            ["0.003", "0.0024", "0.00375", "0.012", "0.0075"],
            "0.02865",
        ),
        // Opus 4.5: 5 / 0.50 / 6.25 / 10 / 25 → 5,000 + 4,000 + 6,250 + 20,000 + 12,500 = 47,750
        (
            "claude-opus-4-5",
            ["0.005", "0.004", "0.00625", "0.02", "0.0125"],
            "0.04775",
        ),
    ];
    for (model, buckets, total) in cases {
        let p = priced(model, all_buckets(), Billing::Standard);
        for (bucket, expected) in Bucket::ALL.into_iter().zip(buckets) {
            assert_eq!(
                p.buckets.get(bucket).usd.to_string(),
                expected,
                "{model} {bucket}"
            );
        }
        assert_eq!(p.usd.to_string(), total, "{model}");
        assert_eq!(p.context, ContextTier::Standard);
    }
}

#[test]
fn anthropic_batch_is_half_of_every_rate() {
    // Haiku: 500 + 400 + 625 + 2,000 + 1,250 = 4,775 → 0.004775 (half of 0.00955)
    assert_eq!(
        usd("claude-haiku-4-5", all_buckets(), Billing::Batch),
        "0.004775"
    );
    // Sonnet: half of 0.02865
    assert_eq!(
        usd("claude-sonnet-4-5", all_buckets(), Billing::Batch),
        "0.014325"
    );
    // Opus: half of 0.04775
    assert_eq!(
        usd("claude-opus-4-5", all_buckets(), Billing::Batch),
        "0.023875"
    );
}

#[test]
fn sonnet_above_200k_prompt_tokens_uses_the_long_context_rates() {
    // 150,000 fresh + 60,000 cache read = 210,000 prompt tokens > 200,000:
    // 150,000 × 6 + 60,000 × 0.60 + 1,000 × 22.50 = 900,000 + 36,000 + 22,500 → $0.9585
    let usage = Usage::new(150_000, 1_000).with_cache_read(60_000);
    let p = priced("claude-sonnet-4-5", usage, Billing::Standard);
    assert_eq!(p.context, ContextTier::LongContext);
    assert_eq!(p.usd.to_string(), "0.9585");
    // With cache writes counted in the prompt too: + 1,000 × 7.50 + 2,000 × 12 = 0.99
    let usage = usage.with_cache_write(1_000, 2_000);
    assert_eq!(usd("claude-sonnet-4-5", usage, Billing::Standard), "0.99");
    // Batch long context: 150,000 × 3 + 60,000 × 0.30 + 1,000 × 11.25 → $0.47925
    let usage = Usage::new(150_000, 1_000).with_cache_read(60_000);
    assert_eq!(usd("claude-sonnet-4-5", usage, Billing::Batch), "0.47925");
}

#[test]
fn a_prompt_of_exactly_200k_tokens_is_not_long_context() {
    // 200,000 × 3 + 1,000 × 15 = 600,000 + 15,000 → $0.615
    let p = priced(
        "claude-sonnet-4-5",
        Usage::new(200_000, 1_000),
        Billing::Standard,
    );
    assert_eq!(p.context, ContextTier::Standard);
    assert_eq!(p.usd.to_string(), "0.615");
    // One more token crosses: 200,001 × 6 + 1,000 × 22.5 = 1,200,006 + 22,500 → $1.222506
    let p = priced(
        "claude-sonnet-4-5",
        Usage::new(200_001, 1_000),
        Billing::Standard,
    );
    assert_eq!(p.context, ContextTier::LongContext);
    assert_eq!(p.usd.to_string(), "1.222506");
}

#[test]
fn each_bucket_of_each_gemini_model() {
    // tokens: input 1,000 / cache read 8,000 / output 500
    let cases = [
        // 2.5 Flash: 0.30 / 0.03 / 2.50 → 300 + 240 + 1,250 = 1,790
        (
            "gemini-2.5-flash",
            ["0.0003", "0.00024", "0.00125"],
            "0.00179",
        ),
        // 2.5 Flash-Lite: 0.10 / 0.01 / 0.40 → 100 + 80 + 200 = 380
        (
            "gemini-2.5-flash-lite",
            ["0.0001", "0.00008", "0.0002"],
            "0.00038",
        ),
        // 2.5 Pro (≤ 200k): 1.25 / 0.125 / 10 → 1,250 + 1,000 + 5,000 = 7,250
        ("gemini-2.5-pro", ["0.00125", "0.001", "0.005"], "0.00725"),
        // 2.0 Flash: 0.10 / 0.025 / 0.40 → 100 + 200 + 200 = 500
        ("gemini-2.0-flash", ["0.0001", "0.0002", "0.0002"], "0.0005"),
    ];
    for (model, [input, read, output], total) in cases {
        let p = priced(model, no_writes(), Billing::Standard);
        assert_eq!(p.buckets.input.usd.to_string(), input, "{model}");
        assert_eq!(p.buckets.cache_read.usd.to_string(), read, "{model}");
        assert_eq!(p.buckets.output.usd.to_string(), output, "{model}");
        assert_eq!(p.usd.to_string(), total, "{model}");
    }
}

#[test]
fn gemini_batch_rates() {
    // 2.5 Flash: 1,000 × 0.15 + 500 × 1.25 = 150 + 625 → 0.000775
    assert_eq!(
        usd("gemini-2.5-flash", Usage::new(1_000, 500), Billing::Batch),
        "0.000775"
    );
    // 2.5 Flash-Lite: 1,000 × 0.05 + 500 × 0.20 = 50 + 100 → 0.00015
    assert_eq!(
        usd(
            "gemini-2.5-flash-lite",
            Usage::new(1_000, 500),
            Billing::Batch
        ),
        "0.00015"
    );
    // 2.5 Pro: 1,000 × 0.625 + 500 × 5 = 625 + 2,500 → 0.003125
    assert_eq!(
        usd("gemini-2.5-pro", Usage::new(1_000, 500), Billing::Batch),
        "0.003125"
    );
}

#[test]
fn gemini_2_5_pro_long_context() {
    // 150,000 + 60,000 cached > 200,000: 150,000 × 2.50 + 60,000 × 0.25 + 500 × 15
    // = 375,000 + 15,000 + 7,500 → 0.3975
    let usage = Usage::new(150_000, 500).with_cache_read(60_000);
    let p = priced("gemini-2.5-pro", usage, Billing::Standard);
    assert_eq!(p.context, ContextTier::LongContext);
    assert_eq!(p.usd.to_string(), "0.3975");
    // Batch: 250,000 × 1.25 + 500 × 7.50 = 312,500 + 3,750 → 0.31625
    assert_eq!(
        usd("gemini-2.5-pro", Usage::new(250_000, 500), Billing::Batch),
        "0.31625"
    );
}

#[test]
fn a_free_tier_call_costs_zero_and_carries_its_list_price_as_shadow() {
    let p = priced("gemini-2.5-flash", no_writes(), Billing::FreeTier);
    assert_eq!(p.usd, Money::ZERO);
    assert_eq!(p.usd.to_string(), "0.00");
    assert_eq!(p.list_usd.to_string(), "0.00179");
    assert_eq!(p.shadow().map(|m| m.to_string()), Some("0.00179".into()));
    // Buckets show the list rates.
    assert_eq!(p.buckets.output.usd.to_string(), "0.00125");
}

#[test]
fn a_free_tier_call_to_a_model_without_one_is_unpriced() {
    let why = unpriced("claude-haiku-4-5", no_writes(), Billing::FreeTier, now());
    assert_eq!(
        why,
        Unpriced::NoFreeTier {
            model: "claude-haiku-4-5".into()
        }
    );
}

#[test]
fn deepseek_prices_follow_their_effective_dates() {
    // From 2025-09-29: 1,000 × 0.28 + 8,000 × 0.028 + 500 × 0.42 = 280 + 224 + 210 → 0.000714
    let usage = no_writes();
    let at = |y, m, d, h, min, s| Utc.with_ymd_and_hms(y, m, d, h, min, s).unwrap();
    let price = |model: &str, t| table().price(model, &usage, Billing::Standard, t);
    for model in ["deepseek-chat", "deepseek-reasoner"] {
        assert_eq!(
            price(model, at(2025, 10, 1, 0, 0, 0))
                .usd()
                .unwrap()
                .to_string(),
            "0.000714"
        );
        assert_eq!(
            price(model, at(2025, 9, 29, 0, 0, 0))
                .usd()
                .unwrap()
                .to_string(),
            "0.000714"
        );
        // 2025-09-05 16:00 UTC to 2025-09-29: 1,000 × 0.56 + 8,000 × 0.07 + 500 × 1.68
        // = 560 + 560 + 840 → 0.00196
        assert_eq!(
            price(model, at(2025, 9, 28, 23, 59, 59))
                .usd()
                .unwrap()
                .to_string(),
            "0.00196"
        );
        assert_eq!(
            price(model, at(2025, 9, 5, 16, 0, 0))
                .usd()
                .unwrap()
                .to_string(),
            "0.00196"
        );
        // Before the first row: unpriced, not the first row's price and not $0.
        let before = price(model, at(2025, 9, 5, 15, 59, 59));
        assert!(
            matches!(before.unpriced(), Some(Unpriced::NotInForce { .. })),
            "{before:?}"
        );
    }
}

#[test]
fn the_row_in_force_is_reported_with_its_source() {
    let p = priced("deepseek-chat", no_writes(), Billing::Standard);
    assert_eq!(
        p.effective,
        Utc.with_ymd_and_hms(2025, 9, 29, 0, 0, 0).unwrap()
    );
    assert_eq!(
        p.source,
        "https://api-docs.deepseek.com/quick_start/pricing"
    );
}

#[test]
fn an_unknown_model_is_unpriced_never_zero() {
    let cost = table().price("gpt-imaginary-9", &all_buckets(), Billing::Standard, now());
    assert_eq!(cost.usd(), None);
    assert_eq!(
        cost.unpriced(),
        Some(&Unpriced::UnknownModel {
            model: "gpt-imaginary-9".into()
        })
    );
    // Even with no tokens at all.
    let cost = table().price(
        "gpt-imaginary-9",
        &Usage::default(),
        Billing::Standard,
        now(),
    );
    assert!(!cost.is_priced());
}

#[test]
fn tokens_in_a_bucket_without_a_published_rate_make_the_call_unpriced() {
    // Gemini has no per-request cache-write rate.
    let why = unpriced("gemini-2.5-flash", all_buckets(), Billing::Standard, now());
    assert_eq!(
        why,
        Unpriced::MissingRate {
            model: "gemini-2.5-flash".into(),
            billing: Billing::Standard,
            bucket: Bucket::CacheWrite5m,
        }
    );
    // No batch cache-read rate is listed for Gemini.
    let why = unpriced("gemini-2.5-flash", no_writes(), Billing::Batch, now());
    assert!(
        matches!(
            why,
            Unpriced::MissingRate {
                bucket: Bucket::CacheRead,
                ..
            }
        ),
        "{why}"
    );
    // DeepSeek has no batch API.
    let why = unpriced("deepseek-chat", no_writes(), Billing::Batch, now());
    assert_eq!(
        why,
        Unpriced::NoBatch {
            model: "deepseek-chat".into()
        }
    );
    assert!(matches!(
        unpriced("gemini-2.0-flash", no_writes(), Billing::Batch, now()),
        Unpriced::NoBatch { .. }
    ));
}

#[test]
fn absurd_token_counts_overflow_into_unpriced_not_a_panic() {
    let usage = Usage::new(u64::MAX, u64::MAX)
        .with_cache_read(u64::MAX)
        .with_cache_write(u64::MAX, u64::MAX);
    let cost = table().price("claude-opus-4-5", &usage, Billing::Standard, now());
    // Five buckets of u64::MAX × ≤ 25,000,000 picos fit in i128: it is priced exactly.
    assert!(cost.is_priced());
    let table = PriceTable::from_toml(
        r#"
[[model]]
id = "dear"
provider = "p"
effective = "2025-01-01"
source = "https://example.com"
standard = { input = "18446744073709.551615", output = "18446744073709.551615" }
"#,
        "t",
    )
    .unwrap();
    let cost = table.price(
        "dear",
        &Usage::new(u64::MAX, u64::MAX),
        Billing::Standard,
        now(),
    );
    assert!(
        matches!(cost.unpriced(), Some(Unpriced::Overflow { .. })),
        "{cost:?}"
    );
}

#[test]
fn aliases_and_dated_ids_price_as_the_canonical_model() {
    for (alias, canonical) in [
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-opus-4-5-20251101", "claude-opus-4-5"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
    ] {
        let a = priced(alias, no_writes(), Billing::Standard);
        let c = priced(canonical, no_writes(), Billing::Standard);
        assert_eq!(a, c, "{alias}");
        assert_eq!(a.model, canonical);
    }
}

#[test]
fn cost_serializes_with_exact_decimal_strings() {
    let cost = table().price("claude-haiku-4-5", &all_buckets(), Billing::Standard, now());
    let json = serde_json::to_value(&cost).unwrap();
    assert_eq!(json["priced"]["usd"], "0.00955");
    assert_eq!(
        json["priced"]["buckets"]["cache_write_1h"]["usd_per_mtok"],
        "2.00"
    );
    let back: Cost = serde_json::from_value(json).unwrap();
    assert_eq!(back, cost);
    let unknown = table().price("nope", &all_buckets(), Billing::Standard, now());
    let json = serde_json::to_value(&unknown).unwrap();
    assert_eq!(json["unpriced"]["reason"], "unknown_model");
    assert_eq!(serde_json::from_value::<Cost>(json).unwrap(), unknown);
}
