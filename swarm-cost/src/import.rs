//! Import of LiteLLM's community price map
//! (`model_prices_and_context_window.json`) into a price-table file that
//! `PriceTable::built_in_with_file` (the CLI's `--prices`) accepts, so users
//! can update prices between releases.
//!
//! LiteLLM writes prices per token as JSON numbers; this module rewrites each
//! as an exact decimal per million tokens (from the number's shortest
//! decimal form, never through float arithmetic) and refuses one that is not
//! a whole number of pico-dollars per token. What it maps, per entry:
//!
//! | LiteLLM field | table field |
//! |---|---|
//! | `input_cost_per_token` | `standard.input` |
//! | `output_cost_per_token` | `standard.output` |
//! | `cache_read_input_token_cost` | `standard.cache_read` |
//! | `cache_creation_input_token_cost` | `standard.cache_write_5m` |
//! | `cache_creation_input_token_cost_above_1hr` | `standard.cache_write_1h` |
//! | `input_cost_per_token_batches`, `output_cost_per_token_batches` | `batch.input`, `batch.output` |
//! | `…_above_<N>k_tokens` of the fields above | `long_context` above N × 1000 prompt tokens |
//! | `deprecation_date` | a `[[lifecycle]]` entry with that `deprecated` date |
//!
//! Only chat and completion models of the providers whose own API we price
//! (`anthropic`, `gemini`, `deepseek`, `openai`) are mapped, under the id
//! their API takes (`gemini/gemini-3.5-flash-lite` → `gemini-3.5-flash-lite`).
//! Everything else (other modes, resellers and clouds, `tiered_pricing`
//! lists, prices finer than a pico-dollar) is listed as [`Unmapped`] with
//! the reason, never guessed.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{CostError, Result};
use crate::lifecycle::Lifecycle;
use crate::table::{LongContext, PriceRow, PriceTable, Rates, normalize_model};
use swarmbus_core::money::Rate;

/// The upstream file, cited as the source of imported rows by default.
pub const LITELLM_SOURCE: &str =
    "https://github.com/BerriAI/litellm/blob/main/model_prices_and_context_window.json";

/// LiteLLM providers whose entries are that provider's own API prices, with
/// the key prefix their ids carry.
const FIRST_PARTY: [(&str, &str); 4] = [
    ("anthropic", "anthropic/"),
    ("gemini", "gemini/"),
    ("deepseek", "deepseek/"),
    ("openai", "openai/"),
];

/// Modes that are billed per input and output token like a chat call.
const PRICED_MODES: [&str; 3] = ["chat", "completion", "responses"];

/// An entry of the LiteLLM file that was not turned into a row, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Unmapped {
    /// The entry's key in the file.
    pub key: String,
    /// Why it was left out.
    pub reason: String,
}

/// The result of an import: rows, lifecycle entries, and what was left out.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LitellmImport {
    /// One row per mapped model, effective at the import's date.
    pub rows: Vec<PriceRow>,
    /// Lifecycle entries from LiteLLM's `deprecation_date`.
    pub lifecycles: Vec<Lifecycle>,
    /// Entries that were not mapped, with the reason, in file order.
    pub unmapped: Vec<Unmapped>,
    /// The file the import read.
    pub origin: String,
    /// From when the imported prices are in force.
    pub effective: DateTime<Utc>,
}

impl LitellmImport {
    /// Reads LiteLLM's JSON text. `origin` names the file in errors,
    /// `effective` dates every row, `source` is cited on every row (an
    /// `https://` URL: [`LITELLM_SOURCE`] unless the file came from
    /// elsewhere).
    pub fn from_json(
        text: &str,
        origin: &str,
        effective: DateTime<Utc>,
        source: &str,
    ) -> Result<Self> {
        let bad = |reason: String| CostError::Import {
            origin: origin.to_owned(),
            reason,
        };
        if !source.starts_with("https://") {
            return Err(bad(format!(
                "the source cited on imported rows must be an https:// URL, not {source:?}"
            )));
        }
        let value: Value =
            serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let Value::Object(entries) = value else {
            return Err(bad(
                "expected a JSON object of model entries at the top level".into(),
            ));
        };
        let mut import = LitellmImport {
            rows: Vec::new(),
            lifecycles: Vec::new(),
            unmapped: Vec::new(),
            origin: origin.to_owned(),
            effective,
        };
        let mut seen = HashSet::new();
        for (key, entry) in &entries {
            match map_entry(key, entry, effective, source) {
                Ok((row, lifecycle)) => {
                    if !seen.insert(row.model.clone()) {
                        import.unmapped.push(Unmapped {
                            key: key.clone(),
                            reason: format!("another entry already maps to {}", row.model),
                        });
                        continue;
                    }
                    if let Some(lifecycle) = lifecycle {
                        import.lifecycles.push(lifecycle);
                    }
                    import.rows.push(row);
                }
                Err(reason) => import.unmapped.push(Unmapped {
                    key: key.clone(),
                    reason,
                }),
            }
        }
        Ok(import)
    }

    /// The imported rows as a table (checks them as `--prices` would).
    pub fn table(&self) -> Result<PriceTable> {
        PriceTable::from_parts(self.rows.clone(), self.lifecycles.clone(), &self.origin)
    }

    /// The price-table file: the format of `data/prices.toml`.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Imported from LiteLLM's price map {:?} by `swarm cost prices import`.",
            self.origin
        );
        let _ = writeln!(
            out,
            "# Every row is in force from {}; {} entries were not mapped (listed by the import).",
            self.effective.to_rfc3339(),
            self.unmapped.len()
        );
        out.push_str(
            "# Use it with `--prices FILE` (laid over the built-in table).\n\nformat = 1\n",
        );
        for row in &self.rows {
            out.push_str("\n[[model]]\n");
            let _ = writeln!(out, "id = {}", toml_string(&row.model));
            let _ = writeln!(out, "provider = {}", toml_string(&row.provider));
            let _ = writeln!(
                out,
                "effective = {}",
                toml_string(&row.effective.to_rfc3339())
            );
            let _ = writeln!(out, "source = {}", toml_string(&row.source));
            out.push_str("free_tier = false\n");
            if let Some(note) = &row.note {
                let _ = writeln!(out, "note = {}", toml_string(note));
            }
            let _ = writeln!(out, "standard = {}", toml_rates(&row.standard));
            if let Some(batch) = &row.batch {
                let _ = writeln!(out, "batch = {}", toml_rates(batch));
            }
            if let Some(lc) = &row.long_context {
                out.push_str("\n[model.long_context]\n");
                let _ = writeln!(out, "above_prompt_tokens = {}", lc.above_prompt_tokens);
                let _ = writeln!(out, "standard = {}", toml_rates(&lc.standard));
                if let Some(batch) = &lc.batch {
                    let _ = writeln!(out, "batch = {}", toml_rates(batch));
                }
            }
        }
        for lifecycle in &self.lifecycles {
            out.push_str("\n[[lifecycle]]\n");
            let _ = writeln!(out, "model = {}", toml_string(&lifecycle.model));
            if let Some(day) = lifecycle.deprecated_on {
                let _ = writeln!(out, "deprecated = {}", toml_string(&day.to_string()));
            }
            let _ = writeln!(out, "source = {}", toml_string(&lifecycle.source));
            if let Some(note) = &lifecycle.note {
                let _ = writeln!(out, "note = {}", toml_string(note));
            }
        }
        out
    }
}

/// A TOML basic string.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// An inline table of the rates that are set, prices as exact strings.
fn toml_rates(rates: &Rates) -> String {
    let fields = [
        ("input", rates.input),
        ("output", rates.output),
        ("cache_read", rates.cache_read),
        ("cache_write_5m", rates.cache_write_5m),
        ("cache_write_1h", rates.cache_write_1h),
    ];
    let set: Vec<String> = fields
        .iter()
        .filter_map(|(name, rate)| rate.map(|r| format!("{name} = \"{r}\"")))
        .collect();
    format!("{{ {} }}", set.join(", "))
}

/// Maps one entry, or says why not.
fn map_entry(
    key: &str,
    entry: &Value,
    effective: DateTime<Utc>,
    source: &str,
) -> Result<(PriceRow, Option<Lifecycle>), String> {
    if key == "sample_spec" {
        return Err("LiteLLM's documentation entry, not a model".into());
    }
    let Value::Object(fields) = entry else {
        return Err("not a JSON object".into());
    };
    let provider = match fields.get("litellm_provider") {
        Some(Value::String(p)) => p.as_str(),
        _ => return Err("no litellm_provider".into()),
    };
    let Some((_, prefix)) = FIRST_PARTY.iter().find(|(name, _)| *name == provider) else {
        return Err(format!(
            "provider {provider}: not a first-party API this table prices (its prices may differ from the model maker's)"
        ));
    };
    match fields.get("mode") {
        None => {}
        Some(Value::String(mode)) if PRICED_MODES.contains(&mode.as_str()) => {}
        Some(Value::String(mode)) => {
            return Err(format!(
                "mode {mode}: not billed per input and output token"
            ));
        }
        Some(_) => return Err("mode is not a string".into()),
    }
    if fields.contains_key("tiered_pricing") {
        return Err("tiered_pricing (price bands as a list) is not mapped: \
             its bands are not the table's one long-context threshold"
            .into());
    }
    let bare = key.strip_prefix(prefix).unwrap_or(key);
    let model = normalize_model(bare);
    if model.is_empty() || model.chars().any(char::is_whitespace) || model.contains('/') {
        return Err(format!(
            "key {key:?} does not name a model id of the {provider} API"
        ));
    }
    let price = |field: &str| per_million(fields, field);
    let standard = Rates {
        input: price("input_cost_per_token")?,
        output: price("output_cost_per_token")?,
        cache_read: price("cache_read_input_token_cost")?,
        cache_write_5m: price("cache_creation_input_token_cost")?,
        cache_write_1h: price("cache_creation_input_token_cost_above_1hr")?,
    };
    if standard.input.is_none() || standard.output.is_none() {
        return Err("no input_cost_per_token or output_cost_per_token".into());
    }
    let batch_input = price("input_cost_per_token_batches")?;
    let batch_output = price("output_cost_per_token_batches")?;
    let batch = match (batch_input, batch_output) {
        (Some(input), Some(output)) => Some(Rates {
            input: Some(input),
            output: Some(output),
            ..Rates::default()
        }),
        _ => None,
    };
    let long_context = long_context(fields)?;
    let ignored: Vec<&str> = fields
        .iter()
        .filter(|(name, value)| {
            (name.contains("cost_per") || name.ends_with("_cost"))
                && !is_mapped(name)
                && value.as_f64().is_some_and(|v| v != 0.0)
        })
        .map(|(name, _)| name.as_str())
        .collect();
    let mut note = format!("Imported from LiteLLM's price map, entry {key:?}.");
    if !ignored.is_empty() {
        let _ = write!(
            note,
            " Not priced by this table (no bucket): {}.",
            ignored.join(", ")
        );
    }
    let lifecycle = match fields.get("deprecation_date") {
        Some(Value::String(day)) => {
            let on = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d")
                .map_err(|_| format!("deprecation_date {day:?} is not YYYY-MM-DD"))?;
            Some(Lifecycle {
                model: model.clone(),
                aliases: Vec::new(),
                released_on: None,
                deprecated_on: Some(on),
                retires_on: None,
                replacement: None,
                source: source.to_owned(),
                note: Some(format!("LiteLLM's deprecation_date for {key:?}.")),
            })
        }
        _ => None,
    };
    Ok((
        PriceRow {
            model,
            aliases: Vec::new(),
            provider: provider.to_owned(),
            effective,
            source: source.to_owned(),
            free_tier: false,
            note: Some(note),
            standard,
            batch,
            long_context,
        },
        lifecycle,
    ))
}

/// The per-token fields (and their long-context variants) this import maps.
fn is_mapped(name: &str) -> bool {
    const BASES: [&str; 7] = [
        "input_cost_per_token",
        "output_cost_per_token",
        "cache_read_input_token_cost",
        "cache_creation_input_token_cost",
        "cache_creation_input_token_cost_above_1hr",
        "input_cost_per_token_batches",
        "output_cost_per_token_batches",
    ];
    BASES.contains(&name) || split_threshold(name).is_some()
}

/// `input_cost_per_token_above_200k_tokens` → (`input_cost_per_token`, 200000).
fn split_threshold(name: &str) -> Option<(&str, u64)> {
    let (base, rest) = name.rsplit_once("_above_")?;
    let thousands = rest.strip_suffix("k_tokens")?;
    let n: u64 = thousands.parse().ok()?;
    let base_known = [
        "input_cost_per_token",
        "output_cost_per_token",
        "cache_read_input_token_cost",
        "cache_creation_input_token_cost",
    ]
    .contains(&base)
        || base == "cache_creation_input_token_cost_above_1hr";
    (base_known && n > 0).then_some((base, n.checked_mul(1000)?))
}

/// The long-context tier from the `…_above_<N>k_tokens` fields.
fn long_context(fields: &Map<String, Value>) -> Result<Option<LongContext>, String> {
    let mut tiers: BTreeMap<u64, Rates> = BTreeMap::new();
    for (name, _) in fields.iter() {
        let Some((base, threshold)) = split_threshold(name) else {
            continue;
        };
        let rate = per_million(fields, name)?;
        let rates = tiers.entry(threshold).or_default();
        match base {
            "input_cost_per_token" => rates.input = rate,
            "output_cost_per_token" => rates.output = rate,
            "cache_read_input_token_cost" => rates.cache_read = rate,
            "cache_creation_input_token_cost" => rates.cache_write_5m = rate,
            _ => rates.cache_write_1h = rate,
        }
    }
    let mut tiers = tiers.into_iter();
    let Some((threshold, standard)) = tiers.next() else {
        return Ok(None);
    };
    if tiers.next().is_some() {
        return Err("more than one long-context threshold: the table holds one".into());
    }
    if standard.input.is_none() || standard.output.is_none() {
        return Err(format!(
            "a long-context tier above {threshold} tokens without both input and output prices"
        ));
    }
    Ok(Some(LongContext {
        above_prompt_tokens: threshold,
        standard,
        batch: None,
    }))
}

/// A per-token price field as an exact rate per million tokens.
fn per_million(fields: &Map<String, Value>, field: &str) -> Result<Option<Rate>, String> {
    let Some(value) = fields.get(field) else {
        return Ok(None);
    };
    let Some(per_token) = value.as_f64() else {
        return Err(format!("{field} is not a number"));
    };
    if !per_token.is_finite() || per_token < 0.0 {
        return Err(format!("{field} is {per_token}: not a price"));
    }
    let text = shift_six_places(&format!("{per_token}"))
        .ok_or_else(|| format!("{field} {per_token} cannot be read as a decimal"))?;
    Rate::per_million(&text)
        .map(Some)
        .map_err(|e| format!("{field} {per_token}: {e}"))
}

/// Multiplies a plain decimal (`0.00000125`) by one million, in text
/// (`1.25`), so no float rounding enters the price.
fn shift_six_places(decimal: &str) -> Option<String> {
    let (int_part, frac_part) = decimal.split_once('.').unwrap_or((decimal, ""));
    if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac_part.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut frac = frac_part.to_owned();
    while frac.len() < 6 {
        frac.push('0');
    }
    let (moved, rest) = frac.split_at(6);
    let int_digits = format!("{int_part}{moved}");
    let int_digits = int_digits.trim_start_matches('0');
    let int_digits = if int_digits.is_empty() {
        "0"
    } else {
        int_digits
    };
    let rest = rest.trim_end_matches('0');
    Some(if rest.is_empty() {
        int_digits.to_owned()
    } else {
        format!("{int_digits}.{rest}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_token_prices_become_exact_per_million_prices() {
        assert_eq!(shift_six_places("0.000003").as_deref(), Some("3"));
        assert_eq!(shift_six_places("0.00000125").as_deref(), Some("1.25"));
        assert_eq!(shift_six_places("0.0000000028").as_deref(), Some("0.0028"));
        assert_eq!(shift_six_places("15").as_deref(), Some("15000000"));
        assert_eq!(shift_six_places("0").as_deref(), Some("0"));
        assert_eq!(shift_six_places("1e-6"), None);
        assert_eq!(format!("{}", 3e-06_f64), "0.000003");
        assert_eq!(format!("{}", 1.25e-07_f64), "0.000000125");
    }

    #[test]
    fn thresholds_are_read_from_the_field_names() {
        assert_eq!(
            split_threshold("input_cost_per_token_above_200k_tokens"),
            Some(("input_cost_per_token", 200_000))
        );
        assert_eq!(
            split_threshold("cache_creation_input_token_cost_above_1hr_above_100k_tokens"),
            Some(("cache_creation_input_token_cost_above_1hr", 100_000))
        );
        assert_eq!(
            split_threshold("cache_creation_input_token_cost_above_1hr"),
            None
        );
        assert_eq!(
            split_threshold("input_cost_per_token_above_0k_tokens"),
            None
        );
    }

    #[test]
    fn a_price_finer_than_a_pico_dollar_is_refused() {
        let mut fields = Map::new();
        fields.insert("x".into(), serde_json::json!(1.0e-13));
        assert!(per_million(&fields, "x").is_err());
        fields.insert("y".into(), serde_json::json!(-1.0e-6));
        assert!(per_million(&fields, "y").is_err());
        fields.insert("z".into(), serde_json::json!("3e-6"));
        assert!(per_million(&fields, "z").is_err());
    }

    #[test]
    fn the_file_parses_whatever_the_input_file_is_called() {
        let json = r#"{"m": {"litellm_provider": "openai", "mode": "chat",
            "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06}}"#;
        let at = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 1, 1, 0, 0, 0)
            .single()
            .unwrap_or_default();
        let import =
            LitellmImport::from_json(json, "evil\nname\"[[model]].json", at, LITELLM_SOURCE);
        let toml = import.map(|i| i.to_toml()).unwrap_or_default();
        let table = PriceTable::from_toml(&toml, "t").map(|t| t.rows().len());
        assert_eq!(table.ok(), Some(1), "{toml}");
    }

    #[test]
    fn a_list_of_price_bands_is_not_guessed_at() {
        let json = r#"{"m": {"litellm_provider": "openai", "mode": "chat",
            "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
            "tiered_pricing": [{"range": [0, 128000], "input_cost_per_token": 1e-06}]}}"#;
        let import = LitellmImport::from_json(json, "t.json", Utc::now(), LITELLM_SOURCE);
        let unmapped = import
            .map(|i| (i.rows.len(), i.unmapped))
            .unwrap_or_default();
        assert_eq!(unmapped.0, 0);
        assert!(
            unmapped
                .1
                .iter()
                .any(|u| u.reason.contains("tiered_pricing"))
        );
    }

    #[test]
    fn toml_strings_escape_quotes_and_controls() {
        assert_eq!(toml_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
    }
}
