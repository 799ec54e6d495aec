//! Model lifecycle as data beside the prices: retired models are refused
//! with their replacement, deprecated ones warn, legacy and unknown ones
//! pass, and a retired model's old calls still price.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use chrono::{NaiveDate, TimeZone, Utc};
use swarmbus_cost::{Billing, CostError, LifecycleStatus, PriceTable, Usage, defaults};

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

fn table() -> PriceTable {
    PriceTable::built_in().unwrap()
}

#[test]
fn sonnet_4_5_warns_until_2026_11_30_then_is_refused_naming_sonnet_5_5() {
    let table = table();
    let lifecycle = table.lifecycle("claude-sonnet-4-5-20250929").unwrap();
    assert_eq!(lifecycle.model, "claude-sonnet-4-5");
    assert_eq!(lifecycle.retires_on, Some(day(2026, 11, 30)));
    assert_eq!(lifecycle.replacement.as_deref(), Some("claude-sonnet-5-5"));
    assert!(lifecycle.source.starts_with("https://"));

    let warning = table
        .check_model("claude-sonnet-4-5", day(2026, 11, 29))
        .unwrap()
        .unwrap();
    assert_eq!(warning.retires_on, Some(day(2026, 11, 30)));
    assert_eq!(warning.replacement.as_deref(), Some("claude-sonnet-5-5"));
    assert_eq!(
        warning.to_string(),
        "model claude-sonnet-4-5 is deprecated and retires on 2026-11-30; use claude-sonnet-5-5"
    );

    let refused = table
        .check_model("claude-sonnet-4-5-20250929", day(2026, 11, 30))
        .unwrap_err();
    assert_eq!(refused.model, "claude-sonnet-4-5-20250929");
    assert_eq!(refused.retired_on, day(2026, 11, 30));
    assert_eq!(refused.replacement.as_deref(), Some("claude-sonnet-5-5"));
    assert_eq!(
        refused.to_string(),
        "model claude-sonnet-4-5-20250929 was retired on 2026-11-30; use claude-sonnet-5-5"
    );
    // As the crate's error: never retried.
    let err = CostError::from(refused);
    assert!(!err.is_transient());
}

#[test]
fn a_retired_model_still_prices_its_old_calls() {
    let table = table();
    let before = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let cost = table.price(
        "claude-sonnet-4-5",
        &Usage::new(1_000, 100),
        Billing::Standard,
        before,
    );
    // 1,000 × 3 + 100 × 15 = 4,500 → $0.0045
    assert_eq!(cost.usd().unwrap().to_string(), "0.0045");
    assert!(
        table
            .check_model("claude-sonnet-4-5", day(2026, 12, 1))
            .is_err()
    );
}

#[test]
fn gemini_2_5_flash_shuts_down_on_2026_12_01_for_3_5_flash_lite() {
    let table = table();
    assert_eq!(
        table.lifecycle_status("models/gemini-2.5-flash", day(2026, 11, 29)),
        LifecycleStatus::Deprecated {
            retires_on: Some(day(2026, 12, 1))
        }
    );
    let refused = table
        .check_model("gemini-2.5-flash", day(2026, 12, 1))
        .unwrap_err();
    assert_eq!(
        refused.replacement.as_deref(),
        Some("gemini-3.5-flash-lite")
    );
    assert_eq!(
        defaults::GEMINI_2_5_FLASH_REPLACEMENT,
        refused.replacement.as_deref().unwrap()
    );
}

#[test]
fn a_replacement_that_is_itself_retired_is_followed() {
    let table = table();
    // Gemini 2.0 Flash is off since 2026-06-01; Google names 2.5 Flash, which is still
    // served on 2026-11-29 but off from 2026-12-01, when its replacement is 3.5 Flash-Lite.
    let now = table
        .check_model("gemini-2.0-flash", day(2026, 11, 29))
        .unwrap_err();
    assert_eq!(now.retired_on, day(2026, 6, 1));
    assert_eq!(now.replacement.as_deref(), Some("gemini-2.5-flash"));
    let later = table
        .check_model("gemini-2.0-flash", day(2026, 12, 2))
        .unwrap_err();
    assert_eq!(later.replacement.as_deref(), Some("gemini-3.5-flash-lite"));
}

#[test]
fn models_without_price_rows_have_a_lifecycle_too() {
    let table = table();
    let refused = table
        .check_model("claude-sonnet-4-20250514", day(2026, 11, 29))
        .unwrap_err();
    assert_eq!(refused.retired_on, day(2026, 6, 15));
    // Sonnet 4.6 is legacy (not retired), so it is the replacement as named.
    assert_eq!(refused.replacement.as_deref(), Some("claude-sonnet-4-6"));
    let deepseek = table
        .check_model("deepseek-chat", day(2026, 11, 29))
        .unwrap_err();
    assert_eq!(
        deepseek.replacement.as_deref(),
        Some(defaults::FALLBACK_MODEL)
    );
}

#[test]
fn legacy_active_and_unknown_models_pass_without_a_warning() {
    let table = table();
    let today = day(2026, 11, 29);
    assert_eq!(
        table.lifecycle_status("claude-haiku-4-5", today),
        LifecycleStatus::Legacy
    );
    for model in [
        "claude-haiku-4-5",
        defaults::COORDINATOR_MODEL,
        defaults::WORKER_MODEL,
        defaults::LIBRARIAN_MODEL,
        defaults::FALLBACK_MODEL,
        "gpt-nonexistent",
    ] {
        assert_eq!(table.check_model(model, today), Ok(None), "{model}");
    }
    assert_eq!(
        table.lifecycle_status("gpt-nonexistent", today),
        LifecycleStatus::Active
    );
}

#[test]
fn gemini_3_1_flash_lite_warns_before_its_announced_shutdown() {
    let warning = table()
        .check_model("gemini-3.1-flash-lite", day(2026, 11, 29))
        .unwrap()
        .unwrap();
    assert_eq!(warning.retires_on, Some(day(2027, 5, 7)));
    assert_eq!(warning.replacement, None);
}

#[test]
fn every_lifecycle_entry_cites_a_page_and_every_replacement_is_known() {
    let table = table();
    assert!(table.lifecycles().len() >= 15);
    for entry in table.lifecycles() {
        assert!(entry.source.starts_with("https://"), "{}", entry.model);
        if let Some(replacement) = &entry.replacement {
            assert!(
                table.canonical(replacement).is_some() || table.lifecycle(replacement).is_some(),
                "{} names {replacement}, which the table does not know",
                entry.model
            );
        }
    }
}

const ROW: &str = r#"
[[model]]
id = "m"
provider = "p"
effective = "2025-01-01"
source = "https://example.com/pricing"
standard = { input = "1", output = "2" }
"#;

#[test]
fn bad_lifecycle_entries_are_refused_with_the_reason() {
    let entry = |body: &str| format!("{ROW}\n[[lifecycle]]\nmodel = \"m\"\n{body}");
    let err = |body: &str| {
        PriceTable::from_toml(&entry(body), "t.toml")
            .unwrap_err()
            .to_string()
    };
    assert!(err("retires = \"2026-02-30\"\nsource = \"https://e.com\"").contains("retires"));
    assert!(err("retires = \"2026-01-01\"\nsource = \"e.com\"").contains("https://"));
    assert!(
        err("deprecated = \"2026-02-01\"\nretires = \"2026-01-01\"\nsource = \"https://e.com\"")
            .contains("after")
    );
    assert!(err("replacement = \"M\"\nsource = \"https://e.com\"").contains("itself"));
    assert!(err("colour = \"red\"\nsource = \"https://e.com\"").contains("colour"));
    let twice = format!(
        "{}\n[[lifecycle]]\nmodel = \"m\"\nsource = \"https://e.com\"\n",
        entry("source = \"https://e.com\"")
    );
    assert!(
        PriceTable::from_toml(&twice, "t.toml")
            .unwrap_err()
            .to_string()
            .contains("two lifecycle entries")
    );
}

#[test]
fn a_price_file_can_add_a_retirement_without_losing_the_built_in_facts() {
    let file = PriceTable::from_toml(
        "[[lifecycle]]\nmodel = \"claude-haiku-4-5-20251001\"\nretires = \"2027-10-15\"\nsource = \"https://example.com/notice\"\n",
        "notice.toml",
    )
    .unwrap();
    let merged = table().with_overrides(file).unwrap();
    let lifecycle = merged.lifecycle("claude-haiku-4-5").unwrap();
    assert_eq!(lifecycle.retires_on, Some(day(2027, 10, 15)));
    // The built-in replacement and released date are kept, and both pages are cited.
    assert_eq!(lifecycle.replacement.as_deref(), Some("claude-haiku-5-5"));
    assert_eq!(lifecycle.released_on, Some(day(2025, 10, 15)));
    assert!(
        lifecycle
            .note
            .unwrap()
            .contains("https://example.com/notice")
    );
    let warning = merged
        .check_model("claude-haiku-4-5", day(2026, 11, 29))
        .unwrap()
        .unwrap();
    assert_eq!(warning.replacement.as_deref(), Some("claude-haiku-5-5"));
}

#[test]
fn the_price_table_is_cores_model_catalog() {
    use swarmbus_core::llm::{ModelCatalog, ModelErrorKind, check_lifecycle};
    let table = table();
    let life =
        ModelCatalog::lifecycle(&table, "claude-sonnet-4-5-20250929", day(2026, 11, 29)).unwrap();
    assert_eq!(life.model, "claude-sonnet-4-5");
    assert_eq!(life.retires_on, Some(day(2026, 11, 30)));
    assert_eq!(life.replacement.as_deref(), Some("claude-sonnet-5-5"));
    assert!(ModelCatalog::lifecycle(&table, "gpt-nonexistent", day(2026, 11, 29)).is_none());

    let at = |d: NaiveDate| d.and_hms_opt(12, 0, 0).unwrap().and_utc();
    let catalog: &dyn ModelCatalog = &table;
    assert!(
        check_lifecycle(
            Some(catalog),
            "anthropic",
            "claude-sonnet-4-5",
            at(day(2026, 11, 29))
        )
        .is_ok()
    );
    let err = check_lifecycle(
        Some(catalog),
        "anthropic",
        "claude-sonnet-4-5",
        at(day(2026, 11, 30)),
    )
    .unwrap_err();
    let swarmbus_core::error::Error::Model(err) = err else {
        panic!("expected a model error, got {err:?}");
    };
    assert_eq!(err.kind, ModelErrorKind::Retired);
    assert!(
        err.message.contains("use claude-sonnet-5-5"),
        "{}",
        err.message
    );
    // Today's defaults pass.
    for model in [defaults::COORDINATOR_MODEL, defaults::WORKER_MODEL] {
        assert!(check_lifecycle(Some(catalog), "anthropic", model, at(day(2026, 11, 30))).is_ok());
    }
}
