//! The price table: data, effective-dated, one row per model and date.
//!
//! The built-in table is `data/prices.toml`, embedded with `include_str!`;
//! a file in the same format can replace it ([`PriceTable::from_file`]) or
//! be laid over it ([`PriceTable::with_overrides`]: a row with the same model
//! and effective date replaces the built-in one, any other row is added).
//! The format is described at the top of `data/prices.toml` and in
//! `docs/cost.md`.
//!
//! Prices are decimal strings in dollars per million tokens; a TOML float is
//! refused, because `0.1` as a float is not 0.1 and the point of this crate
//! is that sums are exact.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{CostError, Result};
use crate::lifecycle::Lifecycle;
use crate::pricing::{Bucket, Unpriced};
use swarmbus_core::money::Rate;

/// The built-in table's TOML text.
pub const BUILT_IN_PRICES: &str = include_str!("../data/prices.toml");

/// The rates of one billing mode, per bucket. A bucket without a published
/// rate is `None`: a call with tokens in it is unpriced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Rates {
    /// Fresh (uncached) input.
    pub input: Option<Rate>,
    /// Output, thinking included.
    pub output: Option<Rate>,
    /// Input read from a cache.
    pub cache_read: Option<Rate>,
    /// Input written to a 5-minute cache.
    pub cache_write_5m: Option<Rate>,
    /// Input written to a 1-hour cache.
    pub cache_write_1h: Option<Rate>,
}

impl Rates {
    /// The rate of one bucket.
    pub fn get(&self, bucket: Bucket) -> Option<Rate> {
        match bucket {
            Bucket::Input => self.input,
            Bucket::CacheRead => self.cache_read,
            Bucket::CacheWrite5m => self.cache_write_5m,
            Bucket::CacheWrite1h => self.cache_write_1h,
            Bucket::Output => self.output,
        }
    }
}

/// Higher rates for a request whose prompt is long.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LongContext {
    /// The tier applies when the request's prompt (every input token: fresh,
    /// cache reads and cache writes) is above this many tokens.
    pub above_prompt_tokens: u64,
    /// Standard rates of the tier.
    pub standard: Rates,
    /// Batch rates of the tier, if published.
    pub batch: Option<Rates>,
}

/// One row of the table: a model's prices from a date on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PriceRow {
    /// The canonical model id (`claude-haiku-4-5`).
    pub model: String,
    /// Other ids of the same model (`claude-haiku-4-5-20251001`).
    pub aliases: Vec<String>,
    /// Who sells it (`anthropic`, `google`, `deepseek`).
    pub provider: String,
    /// From when these prices are in force.
    pub effective: DateTime<Utc>,
    /// The page the prices were read from.
    pub source: String,
    /// Whether the provider offers a free tier for the model.
    pub free_tier: bool,
    /// A remark on the row (what changed, caveats).
    pub note: Option<String>,
    /// Standard (interactive) rates.
    pub standard: Rates,
    /// Batch-API rates, if the provider has them.
    pub batch: Option<Rates>,
    /// A long-context tier, if the provider has one.
    pub long_context: Option<LongContext>,
}

/// The price table: rows sorted by model and effective date, an index of
/// every id and alias, and the models' lifecycles.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    rows: Vec<PriceRow>,
    names: HashMap<String, String>,
    lifecycles: Vec<Lifecycle>,
    lifecycle_names: HashMap<String, usize>,
}

/// Normalises a model id for lookup: trimmed, lower case, without the
/// `models/` prefix the Gemini API puts on names.
pub fn normalize_model(model: &str) -> String {
    let trimmed = model.trim();
    let bare = trimmed.strip_prefix("models/").unwrap_or(trimmed);
    bare.to_ascii_lowercase()
}

impl PriceTable {
    /// The built-in table (`data/prices.toml`).
    pub fn built_in() -> Result<Self> {
        Self::from_toml(BUILT_IN_PRICES, "built-in")
    }

    /// Parses a table; `origin` names it in errors (a file name).
    pub fn from_toml(text: &str, origin: &str) -> Result<Self> {
        let raw: RawTable = toml::from_str(text).map_err(|e| CostError::PriceTable {
            origin: origin.to_owned(),
            reason: e.to_string(),
        })?;
        if let Some(format) = raw.format
            && format != 1
        {
            return Err(table_error(
                origin,
                format!("unknown format {format}, expected 1"),
            ));
        }
        let rows = raw
            .model
            .into_iter()
            .map(|row| row.into_row(origin))
            .collect::<Result<Vec<_>>>()?;
        let lifecycles = raw
            .lifecycle
            .into_iter()
            .map(|entry| entry.into_lifecycle(origin))
            .collect::<Result<Vec<_>>>()?;
        Self::from_parts(rows, lifecycles, origin)
    }

    /// Reads a table from a file (replacing the built-in one).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| CostError::PriceFile {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// The built-in table with a file's rows laid over it.
    pub fn built_in_with_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::built_in()?.with_overrides(Self::from_file(path)?)
    }

    /// Lays `overrides` over this table: a row with the same model and
    /// effective date replaces this table's, any other row is added; a row
    /// whose id is an alias here counts as a row of the model it names (so
    /// `claude-haiku-4-5-20251001` from an imported file prices
    /// `claude-haiku-4-5`). A lifecycle entry for a model this table has
    /// one for updates the dates and replacement it sets and keeps the
    /// others ([`Lifecycle::merge`]).
    pub fn with_overrides(self, overrides: PriceTable) -> Result<Self> {
        let mut rows = self.rows;
        for mut row in overrides.rows {
            if let Some(canonical) = self.names.get(&row.model)
                && *canonical != row.model
            {
                row.model = canonical.clone();
            }
            match rows
                .iter_mut()
                .find(|r| r.model == row.model && r.effective == row.effective)
            {
                Some(existing) => *existing = row,
                None => rows.push(row),
            }
        }
        let mut lifecycles = self.lifecycles;
        for mut entry in overrides.lifecycles {
            if let Some(canonical) = self.names.get(&entry.model)
                && *canonical != entry.model
            {
                entry.model = canonical.clone();
            }
            match lifecycles.iter_mut().find(|l| l.model == entry.model) {
                Some(existing) => existing.merge(entry),
                None => lifecycles.push(entry),
            }
        }
        Self::from_parts(rows, lifecycles, "overrides")
    }

    /// Builds a table from rows (no lifecycles), checking that ids and
    /// aliases are unique.
    pub fn from_rows(rows: Vec<PriceRow>, origin: &str) -> Result<Self> {
        Self::from_parts(rows, Vec::new(), origin)
    }

    /// Builds a table from rows and lifecycle entries, checking that ids and
    /// aliases are unique and that each model has one lifecycle entry.
    pub fn from_parts(
        mut rows: Vec<PriceRow>,
        lifecycles: Vec<Lifecycle>,
        origin: &str,
    ) -> Result<Self> {
        rows.sort_by(|a, b| (&a.model, a.effective).cmp(&(&b.model, b.effective)));
        for pair in rows.windows(2) {
            if let [a, b] = pair
                && a.model == b.model
                && a.effective == b.effective
            {
                return Err(table_error(
                    origin,
                    format!("{}: two rows in force from {}", a.model, a.effective),
                ));
            }
        }
        let mut names: HashMap<String, String> = HashMap::new();
        for row in &rows {
            names.insert(row.model.clone(), row.model.clone());
        }
        for row in &rows {
            for alias in &row.aliases {
                let alias = normalize_model(alias);
                match names.get(&alias) {
                    Some(owner) if *owner != row.model => {
                        return Err(table_error(
                            origin,
                            format!("alias {alias} of {} already names {owner}", row.model),
                        ));
                    }
                    _ => {
                        names.insert(alias, row.model.clone());
                    }
                }
            }
        }
        let mut lifecycle_names: HashMap<String, usize> = HashMap::new();
        for (index, entry) in lifecycles.iter().enumerate() {
            let model = names
                .get(&entry.model)
                .cloned()
                .unwrap_or_else(|| entry.model.clone());
            for name in std::iter::once(&model).chain(&entry.aliases) {
                let name = names.get(name).cloned().unwrap_or_else(|| name.clone());
                if let Some(other) = lifecycle_names.insert(name.clone(), index)
                    && other != index
                {
                    return Err(table_error(
                        origin,
                        format!("two lifecycle entries for {name}"),
                    ));
                }
            }
        }
        Ok(Self {
            rows,
            names,
            lifecycles,
            lifecycle_names,
        })
    }

    /// Every lifecycle entry.
    pub fn lifecycles(&self) -> &[Lifecycle] {
        &self.lifecycles
    }

    /// The lifecycle entry of a model: found by its priced canonical id,
    /// else by the id or an alias of the entry.
    pub(crate) fn lifecycle_ref(&self, model: &str) -> Option<&Lifecycle> {
        let name = normalize_model(model);
        let key = self.names.get(&name).unwrap_or(&name);
        self.lifecycle_names
            .get(key)
            .or_else(|| self.lifecycle_names.get(&name))
            .and_then(|index| self.lifecycles.get(*index))
    }

    /// Every row, sorted by model and effective date.
    pub fn rows(&self) -> &[PriceRow] {
        &self.rows
    }

    /// The canonical id of a model id or alias, if the table knows it.
    pub fn canonical(&self, model: &str) -> Option<&str> {
        self.names.get(&normalize_model(model)).map(String::as_str)
    }

    /// The rows of one model (any id or alias), oldest first.
    pub fn rows_of<'a>(&'a self, model: &str) -> impl Iterator<Item = &'a PriceRow> + 'a {
        let canonical = self.canonical(model).map(str::to_owned);
        self.rows
            .iter()
            .filter(move |r| Some(&r.model) == canonical.as_ref())
    }

    /// The row in force for `model` at `at`: the one with the latest
    /// effective date at or before `at`.
    pub fn row_at(&self, model: &str, at: DateTime<Utc>) -> Result<&PriceRow, Unpriced> {
        let Some(canonical) = self.canonical(model) else {
            return Err(Unpriced::UnknownModel {
                model: model.to_owned(),
            });
        };
        let mut first = None;
        let mut in_force = None;
        for row in self.rows.iter().filter(|r| r.model == canonical) {
            first.get_or_insert(row.effective);
            if row.effective <= at {
                in_force = Some(row);
            }
        }
        match (in_force, first) {
            (Some(row), _) => Ok(row),
            (None, Some(first_effective)) => Err(Unpriced::NotInForce {
                model: canonical.to_owned(),
                at,
                first_effective,
            }),
            (None, None) => Err(Unpriced::UnknownModel {
                model: model.to_owned(),
            }),
        }
    }
}

fn table_error(origin: &str, reason: String) -> CostError {
    CostError::PriceTable {
        origin: origin.to_owned(),
        reason,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    format: Option<u32>,
    #[serde(default)]
    model: Vec<RawRow>,
    #[serde(default)]
    lifecycle: Vec<RawLifecycle>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLifecycle {
    model: String,
    #[serde(default)]
    aliases: Vec<String>,
    released: Option<String>,
    deprecated: Option<String>,
    retires: Option<String>,
    replacement: Option<String>,
    source: String,
    note: Option<String>,
}

impl RawLifecycle {
    fn into_lifecycle(self, origin: &str) -> Result<Lifecycle> {
        let model = self.model.trim().to_owned();
        let bad = |reason: String| table_error(origin, format!("lifecycle {model}: {reason}"));
        if model.is_empty() || normalize_model(&model) != model {
            return Err(bad(format!(
                "write the model id as {:?} (non-empty, lower case, no models/ prefix)",
                normalize_model(&model)
            )));
        }
        if !self.source.starts_with("https://") {
            return Err(bad(format!(
                "source must be the https:// page the dates come from, not {:?}",
                self.source
            )));
        }
        let date = |text: Option<String>, field: &str| -> Result<Option<NaiveDate>> {
            text.map(|t| {
                NaiveDate::parse_from_str(t.trim(), "%Y-%m-%d")
                    .map_err(|_| bad(format!("{field} {t:?} is not YYYY-MM-DD")))
            })
            .transpose()
        };
        let released_on = date(self.released, "released")?;
        let deprecated_on = date(self.deprecated, "deprecated")?;
        let retires_on = date(self.retires, "retires")?;
        if let (Some(d), Some(r)) = (deprecated_on, retires_on)
            && d > r
        {
            return Err(bad(format!("deprecated {d} is after retires {r}")));
        }
        let replacement = self.replacement.map(|r| normalize_model(&r));
        if replacement.as_deref() == Some(model.as_str()) || replacement.as_deref() == Some("") {
            return Err(bad("a model cannot replace itself".into()));
        }
        Ok(Lifecycle {
            aliases: self.aliases.iter().map(|a| normalize_model(a)).collect(),
            model,
            released_on,
            deprecated_on,
            retires_on,
            replacement,
            source: self.source,
            note: self.note,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRow {
    id: String,
    #[serde(default)]
    aliases: Vec<String>,
    provider: String,
    effective: String,
    source: String,
    #[serde(default)]
    free_tier: bool,
    note: Option<String>,
    standard: RawRates,
    batch: Option<RawRates>,
    long_context: Option<RawLongContext>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRates {
    input: Option<RawPrice>,
    output: Option<RawPrice>,
    cache_read: Option<RawPrice>,
    cache_write_5m: Option<RawPrice>,
    cache_write_1h: Option<RawPrice>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLongContext {
    above_prompt_tokens: u64,
    standard: RawRates,
    batch: Option<RawRates>,
}

/// A price as written: a string or an integer; a float is refused.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawPrice {
    Text(String),
    Integer(i64),
    Float(f64),
}

impl RawRow {
    fn into_row(self, origin: &str) -> Result<PriceRow> {
        let model = self.id.trim().to_owned();
        let bad = |reason: String| table_error(origin, format!("{model}: {reason}"));
        if model.is_empty() || model.chars().any(char::is_whitespace) {
            return Err(bad("a model id must be non-empty without whitespace".into()));
        }
        if normalize_model(&model) != model {
            return Err(bad(format!(
                "write the id as {} (lower case, no models/ prefix)",
                normalize_model(&model)
            )));
        }
        if self.provider.trim().is_empty() {
            return Err(bad("provider must not be empty".into()));
        }
        if !self.source.starts_with("https://") {
            return Err(bad(format!(
                "source must be the https:// page the prices come from, not {:?}",
                self.source
            )));
        }
        let effective = parse_effective(&self.effective).ok_or_else(|| {
            bad(format!(
                "effective {:?} is not YYYY-MM-DD or RFC 3339",
                self.effective
            ))
        })?;
        let standard = self.standard.into_rates(&model, "standard", origin)?;
        if standard.input.is_none() || standard.output.is_none() {
            return Err(bad("standard rates need input and output".into()));
        }
        let batch = self
            .batch
            .map(|b| b.into_rates(&model, "batch", origin))
            .transpose()?;
        let long_context = match self.long_context {
            None => None,
            Some(lc) => {
                if lc.above_prompt_tokens == 0 {
                    return Err(bad(
                        "long_context.above_prompt_tokens must be positive".into()
                    ));
                }
                Some(LongContext {
                    above_prompt_tokens: lc.above_prompt_tokens,
                    standard: lc
                        .standard
                        .into_rates(&model, "long_context.standard", origin)?,
                    batch: lc
                        .batch
                        .map(|b| b.into_rates(&model, "long_context.batch", origin))
                        .transpose()?,
                })
            }
        };
        Ok(PriceRow {
            aliases: self.aliases.iter().map(|a| normalize_model(a)).collect(),
            model,
            provider: self.provider,
            effective,
            source: self.source,
            free_tier: self.free_tier,
            note: self.note,
            standard,
            batch,
            long_context,
        })
    }
}

impl RawRates {
    fn into_rates(self, model: &str, section: &str, origin: &str) -> Result<Rates> {
        let rate = |price: Option<RawPrice>, field: &str| -> Result<Option<Rate>> {
            let bad = |reason: String| {
                table_error(origin, format!("{model}: {section}.{field}: {reason}"))
            };
            match price {
                None => Ok(None),
                Some(RawPrice::Text(text)) => Rate::per_million(&text)
                    .map(Some)
                    .map_err(|e| bad(e.to_string())),
                Some(RawPrice::Integer(n)) => Rate::per_million(&n.to_string())
                    .map(Some)
                    .map_err(|e| bad(e.to_string())),
                Some(RawPrice::Float(x)) => Err(bad(format!(
                    "write the price as a string (\"{x}\") so that it is exact; floats are refused"
                ))),
            }
        };
        Ok(Rates {
            input: rate(self.input, "input")?,
            output: rate(self.output, "output")?,
            cache_read: rate(self.cache_read, "cache_read")?,
            cache_write_5m: rate(self.cache_write_5m, "cache_write_5m")?,
            cache_write_1h: rate(self.cache_write_1h, "cache_write_1h")?,
        })
    }
}

/// `YYYY-MM-DD` (00:00 UTC) or an RFC 3339 time.
fn parse_effective(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return date.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROW: &str = r#"
[[model]]
id = "m"
provider = "p"
effective = "2025-01-01"
source = "https://example.com/pricing"
standard = { input = "1", output = "2" }
"#;

    #[test]
    fn the_built_in_table_parses_and_every_row_has_a_source_and_date() {
        let table = PriceTable::built_in().unwrap();
        assert!(table.rows().len() >= 10);
        for row in table.rows() {
            assert!(row.source.starts_with("https://"), "{}", row.model);
            assert!(row.effective.timestamp() > 0, "{}", row.model);
        }
    }

    #[test]
    fn a_float_price_is_refused_with_the_field_named() {
        let text = ROW.replace("input = \"1\"", "input = 0.1");
        let err = PriceTable::from_toml(&text, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("standard.input"), "{err}");
        assert!(err.contains("string"), "{err}");
    }

    #[test]
    fn an_integer_price_is_accepted() {
        let text = ROW.replace("input = \"1\"", "input = 1");
        let table = PriceTable::from_toml(&text, "t.toml").unwrap();
        assert_eq!(table.rows()[0].standard.input, Rate::per_million("1").ok());
    }

    #[test]
    fn a_row_without_https_source_is_refused() {
        let text = ROW.replace("https://example.com/pricing", "somewhere");
        assert!(PriceTable::from_toml(&text, "t.toml").is_err());
        let text = ROW.replace("source = \"https://example.com/pricing\"\n", "");
        assert!(PriceTable::from_toml(&text, "t.toml").is_err());
    }

    #[test]
    fn two_rows_with_one_date_are_refused() {
        let text = format!("{ROW}{ROW}");
        let err = PriceTable::from_toml(&text, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("two rows"), "{err}");
    }

    #[test]
    fn an_alias_may_not_name_two_models() {
        let text = format!(
            "{}{}",
            ROW.replace("id = \"m\"", "id = \"a\"\naliases = [\"x\"]"),
            ROW.replace("id = \"m\"", "id = \"b\"\naliases = [\"x\"]")
        );
        let err = PriceTable::from_toml(&text, "t.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("alias x"), "{err}");
    }

    #[test]
    fn unknown_fields_are_refused() {
        let text = ROW.replace("provider", "vendor = \"v\"\nprovider");
        assert!(PriceTable::from_toml(&text, "t.toml").is_err());
    }

    #[test]
    fn overrides_replace_same_date_rows_and_add_others() {
        let base = PriceTable::from_toml(ROW, "a").unwrap();
        let same =
            PriceTable::from_toml(&ROW.replace("input = \"1\"", "input = \"9\""), "b").unwrap();
        let merged = base.clone().with_overrides(same).unwrap();
        assert_eq!(merged.rows().len(), 1);
        assert_eq!(merged.rows()[0].standard.input, Rate::per_million("9").ok());
        let later = PriceTable::from_toml(&ROW.replace("2025-01-01", "2026-01-01"), "c").unwrap();
        assert_eq!(base.with_overrides(later).unwrap().rows().len(), 2);
    }

    #[test]
    fn lookups_normalise_case_and_the_models_prefix() {
        let table = PriceTable::built_in().unwrap();
        assert_eq!(
            table.canonical("models/gemini-2.5-flash"),
            Some("gemini-2.5-flash")
        );
        assert_eq!(
            table.canonical("Claude-Haiku-4-5-20251001"),
            Some("claude-haiku-4-5")
        );
        assert_eq!(table.canonical("gpt-unknown"), None);
    }
}
