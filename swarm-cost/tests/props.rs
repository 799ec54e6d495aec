//! Properties: a call's total is the sum of its buckets; pricing is additive
//! over splitting a call's tokens (exactly, to the pico-dollar); money
//! round-trips through its decimal text.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use swarmbus_cost::{Billing, Bucket, Cost, Money, PriceTable, Usage};

fn models() -> Vec<String> {
    let table = PriceTable::built_in().unwrap();
    let mut ids: Vec<String> = table.rows().iter().map(|r| r.model.clone()).collect();
    ids.dedup();
    ids
}

fn billing() -> impl Strategy<Value = Billing> {
    prop_oneof![
        Just(Billing::Standard),
        Just(Billing::Batch),
        Just(Billing::FreeTier)
    ]
}

/// Token counts up to `max` per bucket, cache writes zero when `writes` is false.
fn usage(max: u64) -> impl Strategy<Value = Usage> {
    (0..=max, 0..=max, 0..=max, 0..=max, 0..=max, any::<bool>()).prop_map(
        |(input, read, w5, w1, output, writes)| {
            let u = Usage::new(input, output).with_cache_read(read);
            if writes {
                u.with_cache_write(w5, w1)
            } else {
                u
            }
        },
    )
}

/// Splits each bucket of `u` at a fraction (in thousandths) of its tokens.
fn split(u: Usage, cut: [u16; 5]) -> (Usage, Usage) {
    let part = |n: u64, c: u16| n / 1000 * u64::from(c) + (n % 1000) * u64::from(c) / 1000;
    let a = Usage::new(part(u.input_tokens, cut[0]), part(u.output_tokens, cut[4]))
        .with_cache_read(part(u.cache_read_tokens, cut[1]))
        .with_cache_write(
            part(u.cache_write_5m_tokens, cut[2]),
            part(u.cache_write_1h_tokens, cut[3]),
        );
    let b = Usage::new(
        u.input_tokens - a.input_tokens,
        u.output_tokens - a.output_tokens,
    )
    .with_cache_read(u.cache_read_tokens - a.cache_read_tokens)
    .with_cache_write(
        u.cache_write_5m_tokens - a.cache_write_5m_tokens,
        u.cache_write_1h_tokens - a.cache_write_1h_tokens,
    );
    (a, b)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_total_is_the_sum_of_the_buckets(
        model in prop::sample::select(models()),
        u in usage(1_000_000_000_000),
        billing in billing(),
    ) {
        let table = PriceTable::built_in().unwrap();
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        if let Cost::Priced(p) = table.price(&model, &u, billing, at) {
            prop_assert_eq!(p.buckets.total(), p.list_usd);
            let expected = if billing == Billing::FreeTier { Money::ZERO } else { p.list_usd };
            prop_assert_eq!(p.usd, expected);
            for bucket in Bucket::ALL {
                let b = p.buckets.get(bucket);
                prop_assert_eq!(b.tokens, bucket.tokens(&u));
                let by_rate = b.usd_per_mtok.map_or(Money::ZERO, |r| r.cost(b.tokens).unwrap());
                prop_assert_eq!(b.usd, by_rate);
            }
        }
    }

    #[test]
    fn pricing_is_additive_over_splitting_a_call(
        model in prop::sample::select(models()),
        // Below every long-context threshold, so the whole and its parts use
        // the same rates (a long-context tier is per request by design).
        u in usage(40_000),
        cut in any::<[u16; 5]>().prop_map(|c| c.map(|x| x % 1001)),
        billing in billing(),
    ) {
        let table = PriceTable::built_in().unwrap();
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let (a, b) = split(u, cut);
        prop_assert_eq!(a + b, u);
        let whole = table.price(&model, &u, billing, at);
        let (pa, pb) = (table.price(&model, &a, billing, at), table.price(&model, &b, billing, at));
        match (whole.priced(), pa.priced(), pb.priced()) {
            (Some(w), Some(x), Some(y)) => {
                prop_assert_eq!(w.usd, x.usd + y.usd);
                prop_assert_eq!(w.list_usd, x.list_usd + y.list_usd);
                for bucket in Bucket::ALL {
                    prop_assert_eq!(w.buckets.get(bucket).usd, x.buckets.get(bucket).usd + y.buckets.get(bucket).usd);
                }
            }
            // A whole that has no price leaves at least one part without one.
            (None, x, y) => prop_assert!(x.is_none() || y.is_none()),
            // Parts without a price come from a whole without one.
            (Some(_), x, y) => prop_assert!(x.is_some() && y.is_some()),
        }
    }

    #[test]
    fn long_context_calls_are_additive_within_the_tier(
        extra in 1u64..1_000_000,
        u in usage(100_000),
        cut in any::<[u16; 5]>().prop_map(|c| c.map(|x| x % 1001)),
    ) {
        // Both parts carry > 200k prompt tokens, so all three are long context.
        let table = PriceTable::built_in().unwrap();
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let (a, b) = split(u, cut);
        let big = Usage::new(200_000 + extra, 0);
        let (a, b) = (a + big, b + big);
        let w = table.price("claude-sonnet-4-5", &(a + b), Billing::Standard, at).usd().unwrap();
        let x = table.price("claude-sonnet-4-5", &a, Billing::Standard, at).usd().unwrap();
        let y = table.price("claude-sonnet-4-5", &b, Billing::Standard, at).usd().unwrap();
        prop_assert_eq!(w, x + y);
    }

    #[test]
    fn money_round_trips_through_its_decimal_text(picos in any::<i64>(), scale in 0u32..8) {
        let m = Money::from_picos(i128::from(picos) * 10_i128.pow(scale));
        prop_assert_eq!(Money::parse(&m.to_string()).unwrap(), m);
        let json = serde_json::to_string(&m).unwrap();
        prop_assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), m);
    }

    #[test]
    fn sums_do_not_depend_on_order(mut amounts in prop::collection::vec(0i64..1_000_000_000, 0..50)) {
        let forward: Money = amounts.iter().map(|&p| Money::from_picos(i128::from(p))).sum();
        amounts.reverse();
        let backward: Money = amounts.iter().map(|&p| Money::from_picos(i128::from(p))).sum();
        prop_assert_eq!(forward, backward);
    }
}
