//! Provider usage JSON into buckets, then into prices: real recorded Gemini
//! responses, and Anthropic / DeepSeek / OpenAI samples written from their
//! documented shapes (see tests/fixtures/README.md).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::PathBuf;

use chrono::{TimeZone, Utc};
use serde_json::Value;
use swarmbus_cost::usage::{anthropic, gemini, openai_compatible};
use swarmbus_cost::{Billing, PriceTable, Provider, Usage};

fn fixture(path: &str) -> Value {
    let full: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "fixtures", path]
        .iter()
        .collect();
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()));
    serde_json::from_str(&text).unwrap()
}

fn usd(model: &str, usage: &Usage, billing: Billing) -> String {
    let at = Utc.with_ymd_and_hms(2026, 1, 15, 0, 0, 0).unwrap();
    PriceTable::built_in()
        .unwrap()
        .price(model, usage, billing, at)
        .usd()
        .unwrap_or_else(|| panic!("{model} unpriced"))
        .to_string()
}

/// The adapter's buckets add up to the response's own totalTokenCount.
fn assert_total_matches(response: &Value, usage: &Usage) {
    if let Some(total) = response["usageMetadata"]["totalTokenCount"].as_u64() {
        assert_eq!(usage.total_tokens(), total);
    }
}

#[test]
fn gemini_implicit_cache_is_inside_the_prompt_count() {
    // promptTokenCount 12,013 includes cachedContentTokenCount 11,243; thoughts 73 + candidates 15.
    let response = fixture("gemini/vertexai/unary-success-implicit-caching.json");
    let usage = gemini(&response).unwrap();
    assert_eq!(
        usage,
        Usage::new(12_013 - 11_243, 15 + 73)
            .with_cache_read(11_243)
            .with_thinking(73)
    );
    assert_total_matches(&response, &usage);
    assert_eq!(response["modelVersion"], "gemini-2.5-flash");
    // 770 × 0.30 + 11,243 × 0.03 + 88 × 2.50 = 231 + 337.29 + 220 = 788.29 → $0.00078829
    assert_eq!(
        usd("gemini-2.5-flash", &usage, Billing::Standard),
        "0.00078829"
    );
    // On the free tier: $0, with that as its shadow.
    let cost = PriceTable::built_in().unwrap().price(
        "gemini-2.5-flash",
        &usage,
        Billing::FreeTier,
        Utc::now(),
    );
    assert_eq!(cost.usd().unwrap().to_string(), "0.00");
    assert_eq!(cost.shadow().unwrap().to_string(), "0.00078829");
}

#[test]
fn gemini_thoughts_are_billed_as_output() {
    let response = fixture("gemini/googleai/unary-success-thinking-reply-thought-summary.json");
    let usage = gemini(&response).unwrap();
    // prompt 14; candidates 2 + thoughts 24 = 26 output, 24 of them thinking.
    assert_eq!(usage, Usage::new(14, 26).with_thinking(24));
    assert_total_matches(&response, &usage);
    // 14 × 0.30 + 26 × 2.50 = 4.2 + 65 = 69.2 → $0.0000692
    assert_eq!(
        usd("gemini-2.5-flash", &usage, Billing::Standard),
        "0.0000692"
    );
}

#[test]
fn gemini_tool_use_prompt_tokens_are_input() {
    let response = fixture("gemini/googleai/unary-success-url-context.json");
    let usage = gemini(&response).unwrap();
    // prompt 15 + tool use 424 = 439 input; candidates 102 + thoughts 142 = 244 output.
    assert_eq!(usage, Usage::new(439, 244).with_thinking(142));
    assert_total_matches(&response, &usage);
    // 439 × 0.30 + 244 × 2.50 = 131.7 + 610 → $0.0007417
    assert_eq!(
        usd("gemini-2.5-flash", &usage, Billing::Standard),
        "0.0007417"
    );

    let response = fixture("gemini/googleai/unary-success-code-execution.json");
    let usage = gemini(&response).unwrap();
    // 21 + 160 = 181 input; 96 + 86 = 182 output.
    assert_eq!(usage, Usage::new(181, 182).with_thinking(86));
    assert_total_matches(&response, &usage);
    // 181 × 0.30 + 182 × 2.50 = 54.3 + 455 → $0.0005093
    assert_eq!(
        usd("gemini-2.5-flash", &usage, Billing::Standard),
        "0.0005093"
    );
}

#[test]
fn gemini_2_0_flash_plain_reply() {
    let response = fixture("gemini/googleai/unary-success-basic-reply-short.json");
    let usage = gemini(&response).unwrap();
    assert_eq!(usage, Usage::new(7, 22));
    assert_total_matches(&response, &usage);
    // 7 × 0.10 + 22 × 0.40 = 0.7 + 8.8 → $0.0000095
    let model = response["modelVersion"].as_str().unwrap();
    assert_eq!(usd(model, &usage, Billing::Standard), "0.0000095");
}

#[test]
fn gemini_partial_usage_metadata_counts_what_is_there() {
    let response = fixture("gemini/vertexai/unary-success-partial-usage-metadata.json");
    assert_eq!(gemini(&response).unwrap(), Usage::new(6, 0));
    // The usageMetadata object alone works too.
    assert_eq!(
        gemini(&response["usageMetadata"]).unwrap(),
        Usage::new(6, 0)
    );
}

#[test]
fn anthropic_message_with_a_5_minute_cache_write_is_the_issue_example() {
    let response = fixture("anthropic/message-cache-5m.json");
    let usage = Provider::Anthropic.usage(&response).unwrap();
    assert_eq!(
        usage,
        Usage::new(1_000, 500)
            .with_cache_read(8_000)
            .with_cache_write(1_000, 0)
    );
    let model = response["model"].as_str().unwrap();
    assert_eq!(usd(model, &usage, Billing::Standard), "0.00555");
}

#[test]
fn anthropic_splits_cache_writes_by_ttl() {
    let response = fixture("anthropic/message-cache-1h-and-5m.json");
    let usage = anthropic(&response).unwrap();
    assert_eq!(
        usage,
        Usage::new(2_000, 1_200)
            .with_cache_read(40_000)
            .with_cache_write(1_000, 2_000)
    );
    // 2,000 × 3 + 40,000 × 0.30 + 1,000 × 3.75 + 2,000 × 6 + 1,200 × 15
    // = 6,000 + 12,000 + 3,750 + 12,000 + 18,000 = 51,750 → $0.05175
    let model = response["model"].as_str().unwrap();
    assert_eq!(usd(model, &usage, Billing::Standard), "0.05175");
}

#[test]
fn anthropic_usage_without_split_writes_for_five_minutes() {
    let usage = anthropic(&fixture("anthropic/usage-no-cache-split.json")).unwrap();
    assert_eq!(usage, Usage::new(12, 87).with_cache_write(2_048, 0));
    // Haiku: 12 × 1 + 2,048 × 1.25 + 87 × 5 = 12 + 2,560 + 435 → $0.003007
    assert_eq!(
        usd("claude-haiku-4-5", &usage, Billing::Standard),
        "0.003007"
    );
}

#[test]
fn deepseek_cache_hits_are_inside_prompt_tokens() {
    let response = fixture("openai/deepseek-chat-cache-hit.json");
    let usage = openai_compatible(&response).unwrap();
    assert_eq!(usage, Usage::new(1_000, 500).with_cache_read(8_000));
    // 1,000 × 0.28 + 8,000 × 0.028 + 500 × 0.42 = 280 + 224 + 210 → $0.000714
    assert_eq!(usd("deepseek-chat", &usage, Billing::Standard), "0.000714");
}

#[test]
fn deepseek_reasoning_tokens_are_output() {
    let response = fixture("openai/deepseek-reasoner.json");
    let usage = Provider::OpenAiCompatible.usage(&response).unwrap();
    assert_eq!(usage, Usage::new(20, 350).with_thinking(300));
    // 20 × 0.28 + 350 × 0.42 = 5.6 + 147 → $0.0001526
    assert_eq!(
        usd("deepseek-reasoner", &usage, Billing::Standard),
        "0.0001526"
    );
}

#[test]
fn openai_cached_tokens_are_inside_prompt_tokens() {
    let usage = openai_compatible(&fixture("openai/openai-cached-tokens.json")).unwrap();
    assert_eq!(usage, Usage::new(2_006 - 1_920, 300).with_cache_read(1_920));
}

#[test]
fn a_response_without_usage_is_an_error_not_zero_tokens() {
    let response = fixture("gemini/googleai/unary-success-basic-reply-short.json");
    // An Anthropic or OpenAI reader finds no usage in a Gemini response.
    assert!(anthropic(&response).is_err());
    assert!(openai_compatible(&response).is_err());
    let mut stripped = response.clone();
    stripped.as_object_mut().unwrap().remove("usageMetadata");
    let err = gemini(&stripped).unwrap_err();
    assert!(err.to_string().contains("usageMetadata"), "{err}");
}
