//! LiteLLM's price map → a price-table file: the imported table quotes what
//! the input says, lists what it could not map, and refuses a broken file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use swarmbus_cost::import::LITELLM_SOURCE;
use swarmbus_cost::{Billing, CostError, LitellmImport, PriceTable, Usage};

const SAMPLE: &str = include_str!("fixtures/litellm/model_prices_sample.json");

fn effective() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
}

fn import() -> LitellmImport {
    LitellmImport::from_json(SAMPLE, "sample.json", effective(), LITELLM_SOURCE).unwrap()
}

fn usd(table: &PriceTable, model: &str, usage: &Usage, billing: Billing) -> String {
    let at = Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap();
    table
        .price(model, usage, billing, at)
        .usd()
        .map_or_else(|| "UNPRICED".to_owned(), |m| m.to_string())
}

#[test]
fn mapped_entries_become_rows_under_the_id_the_api_takes() {
    let import = import();
    let mut models: Vec<&str> = import.rows.iter().map(|r| r.model.as_str()).collect();
    models.sort_unstable();
    assert_eq!(
        models,
        [
            "claude-haiku-4-5-20251001",
            "claude-haiku-5-5",
            "claude-sonnet-4-5",
            "deepseek-flash",
            "gemini-3.5-flash-lite",
        ]
    );
    for row in &import.rows {
        assert_eq!(row.effective, effective());
        assert_eq!(row.source, LITELLM_SOURCE);
    }
    let haiku = import
        .rows
        .iter()
        .find(|r| r.model == "claude-haiku-5-5")
        .unwrap();
    let lc = haiku.long_context.as_ref().unwrap();
    assert_eq!(lc.above_prompt_tokens, 100_000);
    assert_eq!(lc.standard.cache_write_1h.unwrap().to_string(), "1.00");
    assert_eq!(haiku.standard.cache_write_5m.unwrap().to_string(), "0.125");
    let gemini = import
        .rows
        .iter()
        .find(|r| r.model == "gemini-3.5-flash-lite")
        .unwrap();
    // Prices this table has no bucket for are named on the row.
    let note = gemini.note.as_deref().unwrap();
    assert!(note.contains("input_cost_per_audio_token"), "{note}");
    assert!(note.contains("output_cost_per_reasoning_token"), "{note}");
}

#[test]
fn every_unmapped_entry_is_listed_with_its_reason() {
    let import = import();
    let reasons: Vec<(&str, &str)> = import
        .unmapped
        .iter()
        .map(|u| (u.key.as_str(), u.reason.as_str()))
        .collect();
    let reason = |key: &str| {
        reasons
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, r)| *r)
            .unwrap_or_else(|| panic!("{key} not listed: {reasons:?}"))
    };
    assert_eq!(reasons.len(), 7, "{reasons:?}");
    assert!(reason("sample_spec").contains("documentation"));
    assert!(reason("text-embedding-3-small").contains("mode embedding"));
    assert!(reason("dall-e-3").contains("mode image_generation"));
    assert!(reason("bedrock/us-east-1/anthropic.claude-haiku-5-5").contains("provider bedrock"));
    assert!(reason("vertex_ai/gemini-3.5-flash-lite").contains("vertex_ai-language-models"));
    assert!(reason("gpt-no-output-price").contains("output_cost_per_token"));
    assert!(reason("anthropic/claude-finer-than-a-picodollar").contains("input_cost_per_token"));
}

#[test]
fn the_imported_file_loads_like_prices_and_quotes_the_input_prices() {
    let import = import();
    let text = import.to_toml();
    // The file parses on its own and gives back the same rows.
    let file = PriceTable::from_toml(&text, "imported.toml").unwrap();
    let mut rows = import.rows.clone();
    rows.sort_by(|a, b| a.model.cmp(&b.model));
    assert_eq!(file.rows(), rows.as_slice());
    // Laid over the built-in table, it quotes what the JSON says.
    let table = PriceTable::built_in()
        .unwrap()
        .with_overrides(file)
        .unwrap();
    let usage = Usage::new(1_000, 3_000)
        .with_cache_read(10_000)
        .with_cache_write(2_000, 1_000);
    // Haiku 5.5: 1,000 × 0.10 + 10,000 × 0.01 + 2,000 × 0.125 + 1,000 × 0.20 + 3,000 × 0.50
    // = 100 + 100 + 250 + 200 + 1,500 = 2,150 → $0.00215
    assert_eq!(
        usd(&table, "claude-haiku-5-5", &usage, Billing::Standard),
        "0.00215"
    );
    // Above 100,000 prompt tokens, every token at the higher band: 100,001 × 0.50 + 10 × 2.50.
    assert_eq!(
        usd(
            &table,
            "claude-haiku-5-5",
            &Usage::new(100_001, 10),
            Billing::Standard
        ),
        "0.0500255"
    );
    // Batch: 1,000 × 0.05 + 100 × 0.25 = 75 → $0.000075.
    assert_eq!(
        usd(
            &table,
            "claude-haiku-5-5",
            &Usage::new(1_000, 100),
            Billing::Batch
        ),
        "0.000075"
    );
    // Sonnet 4.5 above 200,000 prompt tokens: 200,001 × 6 + 1,000 × 22.50.
    assert_eq!(
        usd(
            &table,
            "claude-sonnet-4-5",
            &Usage::new(200_001, 1_000),
            Billing::Standard
        ),
        "1.222506"
    );
    // Gemini 3.5 Flash-Lite: 1,000 × 0.30 + 10,000 × 0.03 + 3,000 × 2.50 = 8,100 → $0.0081.
    let no_writes = Usage::new(1_000, 3_000).with_cache_read(10_000);
    assert_eq!(
        usd(
            &table,
            "gemini-3.5-flash-lite",
            &no_writes,
            Billing::Standard
        ),
        "0.0081"
    );
    // DeepSeek Flash: 1,000 × 0.30 + 10,000 × 0.006 + 3,000 × 1.20 = 3,960 → $0.00396.
    assert_eq!(
        usd(&table, "deepseek-flash", &no_writes, Billing::Standard),
        "0.00396"
    );
    // The dated id of an entry counts as the built-in model it is an alias of.
    let priced = table
        .try_price(
            "claude-haiku-4-5",
            &usage,
            Billing::Standard,
            Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap(),
        )
        .unwrap();
    assert_eq!(priced.source, LITELLM_SOURCE);
    assert_eq!(priced.effective, effective());
}

#[test]
fn a_deprecation_date_adds_to_the_lifecycle_without_erasing_the_retirement() {
    let import = import();
    assert_eq!(import.lifecycles.len(), 1);
    let table = PriceTable::built_in()
        .unwrap()
        .with_overrides(import.table().unwrap())
        .unwrap();
    let sonnet = table.lifecycle("claude-sonnet-4-5").unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 11, 30).unwrap();
    assert_eq!(sonnet.deprecated_on, Some(day));
    assert_eq!(sonnet.retires_on, Some(day));
    assert_eq!(sonnet.replacement.as_deref(), Some("claude-sonnet-5-5"));
}

#[test]
fn malformed_input_is_a_clear_error() {
    let broken = &SAMPLE[..SAMPLE.len() / 2];
    let err =
        LitellmImport::from_json(broken, "half.json", effective(), LITELLM_SOURCE).unwrap_err();
    assert!(matches!(err, CostError::Import { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("half.json") && text.contains("not valid JSON"),
        "{text}"
    );
    let err =
        LitellmImport::from_json("[1, 2]", "list.json", effective(), LITELLM_SOURCE).unwrap_err();
    assert!(err.to_string().contains("JSON object"), "{err}");
    let err = LitellmImport::from_json("{}", "x.json", effective(), "http://insecure").unwrap_err();
    assert!(err.to_string().contains("https://"), "{err}");
}
