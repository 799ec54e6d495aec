//! Model lifecycle: when a model was deprecated, when it retires (the first
//! day requests to it fail) and the replacement its provider names.
//!
//! The data is in the price table (`[[lifecycle]]` entries of
//! `data/prices.toml`), beside the prices, with the page each fact was read
//! from. [`PriceTable::check_model`] is the check to run before a call: a
//! retired model is refused with an error naming its replacement, a
//! deprecated one passes with a warning. Pricing never consults it: an old
//! call to a model retired since keeps its price.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::table::PriceTable;

/// How many replacements [`PriceTable::check_model`] follows when a named
/// replacement is itself retired (Gemini 2.0 Flash → 2.5 Flash → …).
const MAX_REPLACEMENT_HOPS: usize = 8;

/// One model's lifecycle, as its provider publishes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Lifecycle {
    /// The model id (a price row's id when the model is priced).
    pub model: String,
    /// Other ids of the model (for a model without price rows).
    pub aliases: Vec<String>,
    /// When the model was released, if recorded.
    pub released_on: Option<NaiveDate>,
    /// When the provider deprecated it, if published.
    pub deprecated_on: Option<NaiveDate>,
    /// The first day requests to it fail (the provider's retirement or
    /// shutdown date), if announced.
    pub retires_on: Option<NaiveDate>,
    /// The model the provider recommends instead, if it names one.
    pub replacement: Option<String>,
    /// The page these facts were read from.
    pub source: String,
    /// A remark (what the provider says, caveats on the dates).
    pub note: Option<String>,
}

/// Where a model stands on a given day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
pub enum LifecycleStatus {
    /// Served and current (or nothing is known against it).
    Active,
    /// Served, no retirement announced, but the provider recommends a newer
    /// model. No warning.
    Legacy,
    /// Served until `retires_on` (if announced); calls warn.
    Deprecated {
        /// The first day requests will fail, if announced.
        retires_on: Option<NaiveDate>,
    },
    /// No longer served since `retired_on`; calls are refused.
    Retired {
        /// The first day requests failed.
        retired_on: NaiveDate,
    },
}

impl LifecycleStatus {
    /// The status's name in JSON and text (`retired`).
    pub const fn name(self) -> &'static str {
        match self {
            LifecycleStatus::Active => "active",
            LifecycleStatus::Legacy => "legacy",
            LifecycleStatus::Deprecated { .. } => "deprecated",
            LifecycleStatus::Retired { .. } => "retired",
        }
    }
}

impl Lifecycle {
    /// Lays `newer` over this entry: each date and the replacement it sets
    /// replace this entry's, those it leaves out are kept; its source and
    /// note are added to the note, so each fact keeps its page.
    pub fn merge(&mut self, newer: Lifecycle) {
        let before = (
            self.deprecated_on,
            self.retires_on,
            self.replacement.clone(),
        );
        self.released_on = newer.released_on.or(self.released_on);
        self.deprecated_on = newer.deprecated_on.or(self.deprecated_on);
        self.retires_on = newer.retires_on.or(self.retires_on);
        self.replacement = newer.replacement.or(self.replacement.take());
        if before
            == (
                self.deprecated_on,
                self.retires_on,
                self.replacement.clone(),
            )
            && newer.source == self.source
        {
            return;
        }
        let added = match newer.note {
            Some(note) => format!("{} ({note})", newer.source),
            None => newer.source,
        };
        self.note = Some(match self.note.take() {
            Some(note) => format!("{note} Also from {added}."),
            None => format!("Also from {added}."),
        });
        self.aliases.extend(newer.aliases);
        self.aliases.sort();
        self.aliases.dedup();
    }

    /// The model's status on `today`: retired from its retirement date on;
    /// deprecated once a retirement is announced or the deprecation date
    /// has passed; legacy when only a successor is named.
    pub fn status(&self, today: NaiveDate) -> LifecycleStatus {
        match self.retires_on {
            Some(retired_on) if today >= retired_on => LifecycleStatus::Retired { retired_on },
            Some(retires_on) => LifecycleStatus::Deprecated {
                retires_on: Some(retires_on),
            },
            None if self.deprecated_on.is_some_and(|d| d <= today) => {
                LifecycleStatus::Deprecated { retires_on: None }
            }
            None if self.replacement.is_some() => LifecycleStatus::Legacy,
            None => LifecycleStatus::Active,
        }
    }
}

/// A warning: the model is deprecated but still served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Deprecation {
    /// The model as asked.
    pub model: String,
    /// When it was deprecated, if published.
    pub deprecated_on: Option<NaiveDate>,
    /// The first day requests to it will fail, if announced.
    pub retires_on: Option<NaiveDate>,
    /// What to use instead (the provider's named replacement, followed past
    /// replacements that are themselves retired).
    pub replacement: Option<String>,
}

impl fmt::Display for Deprecation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "model {} is deprecated", self.model)?;
        if let Some(day) = self.retires_on {
            write!(f, " and retires on {day}")?;
        }
        if let Some(replacement) = &self.replacement {
            write!(f, "; use {replacement}")?;
        }
        Ok(())
    }
}

/// The model is retired: a call would fail, so it is refused before it is
/// sent. Do not retry; switch to `replacement`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub struct ModelRetired {
    /// The model as asked.
    pub model: String,
    /// The first day requests to it failed.
    pub retired_on: NaiveDate,
    /// What to use instead, if the provider names a model that is not itself
    /// retired.
    pub replacement: Option<String>,
}

impl fmt::Display for ModelRetired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "model {} was retired on {}", self.model, self.retired_on)?;
        match &self.replacement {
            Some(replacement) => write!(f, "; use {replacement}"),
            None => f.write_str("; its provider names no replacement"),
        }
    }
}

impl PriceTable {
    /// The lifecycle of a model (any id or alias), if the table has one.
    pub fn lifecycle(&self, model: &str) -> Option<Lifecycle> {
        self.lifecycle_ref(model).cloned()
    }

    /// The status of a model on `today` (`Active` when nothing is known).
    pub fn lifecycle_status(&self, model: &str, today: NaiveDate) -> LifecycleStatus {
        self.lifecycle_ref(model)
            .map_or(LifecycleStatus::Active, |l| l.status(today))
    }

    /// The check to run before calling `model` on `today`: `Err` when it is
    /// retired (naming the replacement), `Ok(Some(warning))` when it is
    /// deprecated, `Ok(None)` otherwise (active, legacy, or unknown to the
    /// table: pricing reports unknown models on its own).
    pub fn check_model(
        &self,
        model: &str,
        today: NaiveDate,
    ) -> Result<Option<Deprecation>, ModelRetired> {
        let Some(lifecycle) = self.lifecycle_ref(model) else {
            return Ok(None);
        };
        match lifecycle.status(today) {
            LifecycleStatus::Retired { retired_on } => Err(ModelRetired {
                model: model.to_owned(),
                retired_on,
                replacement: self.live_replacement(lifecycle, today),
            }),
            LifecycleStatus::Deprecated { retires_on } => Ok(Some(Deprecation {
                model: model.to_owned(),
                deprecated_on: lifecycle.deprecated_on,
                retires_on,
                replacement: self.live_replacement(lifecycle, today),
            })),
            _ => Ok(None),
        }
    }

    /// The named replacement, followed while it is itself retired on
    /// `today` and names one in turn. `None` when no replacement is named
    /// or the chain ends at a retired model.
    pub fn live_replacement(&self, lifecycle: &Lifecycle, today: NaiveDate) -> Option<String> {
        let mut next = lifecycle.replacement.clone()?;
        for _ in 0..MAX_REPLACEMENT_HOPS {
            let Some(step) = self.lifecycle_ref(&next) else {
                return Some(next);
            };
            match step.status(today) {
                LifecycleStatus::Retired { .. } => next = step.replacement.clone()?,
                _ => return Some(next),
            }
        }
        None
    }
}

/// The price table is core's model catalog: providers given it refuse a
/// retired model before the call (`swarmbus_core::llm::check_lifecycle`).
/// The replacement is the named one followed past retired ones as of today
/// (UTC, the caller's clock), so the error names a model that still answers.
impl swarmbus_core::llm::ModelCatalog for PriceTable {
    fn lifecycle(
        &self,
        model: &str,
        today: chrono::NaiveDate,
    ) -> Option<swarmbus_core::llm::ModelLifecycle> {
        let entry = self.lifecycle_ref(model)?;
        let mut out = swarmbus_core::llm::ModelLifecycle::new(entry.model.clone());
        if let Some(day) = entry.deprecated_on {
            out = out.deprecated_on(day);
        }
        if let Some(day) = entry.retires_on {
            out = out.retires_on(day);
        }
        if let Some(next) = self
            .live_replacement(entry, today)
            .or_else(|| entry.replacement.clone())
        {
            out = out.replacement(next);
        }
        Some(out)
    }
}
