//! Pricing one call: [`PriceTable::price`] turns a model, a [`Usage`], a
//! [`Billing`] mode and a time into a [`Cost`].
//!
//! Per request: the row in force at the call's time is chosen, then the
//! long-context tier if that request's prompt is above the row's threshold,
//! then the batch or standard rates; each bucket costs tokens × rate, exactly.
//! Anything that cannot be priced exactly (unknown model, no row in force
//! yet, tokens in a bucket without a published rate) is [`Cost::Unpriced`]
//! with the reason, never $0.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use swarmbus_core::llm::Usage;

use crate::table::{PriceRow, PriceTable, Rates};
use swarmbus_core::money::{Money, Rate};

/// A bucket of tokens that providers bill at its own rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Bucket {
    /// Fresh (uncached) input.
    Input,
    /// Input read from a cache.
    CacheRead,
    /// Input written to a 5-minute cache.
    #[serde(rename = "cache_write_5m")]
    CacheWrite5m,
    /// Input written to a 1-hour cache.
    #[serde(rename = "cache_write_1h")]
    CacheWrite1h,
    /// Output, thinking included.
    Output,
}

impl Bucket {
    /// Every bucket, in the order reports show them.
    pub const ALL: [Bucket; 5] = [
        Bucket::Input,
        Bucket::CacheRead,
        Bucket::CacheWrite5m,
        Bucket::CacheWrite1h,
        Bucket::Output,
    ];

    /// The bucket's name in JSON and in the price table.
    pub const fn name(self) -> &'static str {
        match self {
            Bucket::Input => "input",
            Bucket::CacheRead => "cache_read",
            Bucket::CacheWrite5m => "cache_write_5m",
            Bucket::CacheWrite1h => "cache_write_1h",
            Bucket::Output => "output",
        }
    }

    /// The tokens of `usage` in this bucket.
    pub const fn tokens(self, usage: &Usage) -> u64 {
        match self {
            Bucket::Input => usage.input_tokens,
            Bucket::CacheRead => usage.cache_read_tokens,
            Bucket::CacheWrite5m => usage.cache_write_5m_tokens,
            Bucket::CacheWrite1h => usage.cache_write_1h_tokens,
            Bucket::Output => usage.output_tokens,
        }
    }
}

impl fmt::Display for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a call is billed.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Billing {
    /// Interactive, paid.
    #[default]
    Standard,
    /// Through the provider's batch API.
    Batch,
    /// On the provider's free tier: costs $0, carries the list price as its
    /// shadow cost.
    FreeTier,
}

impl fmt::Display for Billing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Billing::Standard => "standard",
            Billing::Batch => "batch",
            Billing::FreeTier => "free_tier",
        })
    }
}

/// Which rates of a row priced the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContextTier {
    /// The row's normal rates.
    Standard,
    /// The row's long-context rates (the prompt was above the threshold).
    LongContext,
}

/// One bucket of a priced call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct BucketCost {
    /// Tokens in the bucket.
    pub tokens: u64,
    /// The rate applied (`None` when the bucket has no rate and no tokens).
    pub usd_per_mtok: Option<Rate>,
    /// tokens × rate.
    pub usd: Money,
}

/// A priced call's buckets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Breakdown {
    /// Fresh input.
    pub input: BucketCost,
    /// Cache reads.
    pub cache_read: BucketCost,
    /// 5-minute cache writes.
    pub cache_write_5m: BucketCost,
    /// 1-hour cache writes.
    pub cache_write_1h: BucketCost,
    /// Output, thinking included.
    pub output: BucketCost,
}

impl Breakdown {
    /// One bucket.
    pub fn get(&self, bucket: Bucket) -> &BucketCost {
        match bucket {
            Bucket::Input => &self.input,
            Bucket::CacheRead => &self.cache_read,
            Bucket::CacheWrite5m => &self.cache_write_5m,
            Bucket::CacheWrite1h => &self.cache_write_1h,
            Bucket::Output => &self.output,
        }
    }

    fn get_mut(&mut self, bucket: Bucket) -> &mut BucketCost {
        match bucket {
            Bucket::Input => &mut self.input,
            Bucket::CacheRead => &mut self.cache_read,
            Bucket::CacheWrite5m => &mut self.cache_write_5m,
            Bucket::CacheWrite1h => &mut self.cache_write_1h,
            Bucket::Output => &mut self.output,
        }
    }

    /// The buckets with their names, in [`Bucket::ALL`] order.
    pub fn iter(&self) -> impl Iterator<Item = (Bucket, &BucketCost)> {
        Bucket::ALL.into_iter().map(|b| (b, self.get(b)))
    }

    /// The sum of the buckets.
    pub fn total(&self) -> Money {
        self.iter().map(|(_, c)| c.usd).sum()
    }
}

/// A call with a price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PricedCall {
    /// The canonical model id.
    pub model: String,
    /// The effective date of the row that priced it.
    pub effective: DateTime<Utc>,
    /// The row's source page.
    pub source: String,
    /// How it was billed.
    pub billing: Billing,
    /// Standard or long-context rates.
    pub context: ContextTier,
    /// The buckets at the rates applied (for a free-tier call: the list
    /// rates, i.e. the shadow cost).
    pub buckets: Breakdown,
    /// What the call costs: the sum of the buckets, or $0 on the free tier.
    pub usd: Money,
    /// The sum of the buckets at list rates: equal to `usd` except on the
    /// free tier, where it is the shadow cost.
    pub list_usd: Money,
}

impl PricedCall {
    /// The list-price shadow cost of a free-tier call (`None` for a paid one).
    pub fn shadow(&self) -> Option<Money> {
        (self.billing == Billing::FreeTier).then_some(self.list_usd)
    }
}

/// Why a call has no price. Never read as $0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Unpriced {
    /// The price table does not know the model.
    #[error("model \"{model}\" is not in the price table")]
    UnknownModel {
        /// The model as asked.
        model: String,
    },
    /// The call is older than the model's first row.
    #[error("no price of {model} was in force at {at} (the first is from {first_effective})")]
    NotInForce {
        /// The canonical model id.
        model: String,
        /// The call's time.
        at: DateTime<Utc>,
        /// The first row's effective date.
        first_effective: DateTime<Utc>,
    },
    /// The call has tokens in a bucket without a published rate.
    #[error("{model} has no published {billing} rate for {bucket} tokens")]
    MissingRate {
        /// The canonical model id.
        model: String,
        /// The billing mode.
        billing: Billing,
        /// The bucket.
        bucket: Bucket,
    },
    /// A batch call to a model without batch prices.
    #[error("{model} has no batch prices in the table")]
    NoBatch {
        /// The canonical model id.
        model: String,
    },
    /// A free-tier call to a model without a free tier.
    #[error("{model} has no free tier")]
    NoFreeTier {
        /// The canonical model id.
        model: String,
    },
    /// The cost does not fit the money type (absurd token counts).
    #[error("the cost of the call to {model} overflows")]
    Overflow {
        /// The canonical model id.
        model: String,
    },
}

impl Unpriced {
    /// The model the reason is about.
    pub fn model(&self) -> &str {
        match self {
            Unpriced::UnknownModel { model }
            | Unpriced::NotInForce { model, .. }
            | Unpriced::MissingRate { model, .. }
            | Unpriced::NoBatch { model }
            | Unpriced::NoFreeTier { model }
            | Unpriced::Overflow { model } => model,
        }
    }
}

/// The price of a call, or why it has none.
// Priced is the common case: boxing it would allocate for nearly every call
// to save space only for the rare unpriced one.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Cost {
    /// Priced.
    Priced(PricedCall),
    /// Not priced, with the reason. Never counted as $0.
    Unpriced(Unpriced),
}

impl Cost {
    /// What the call costs, or `None` when unpriced.
    pub fn usd(&self) -> Option<Money> {
        self.priced().map(|p| p.usd)
    }

    /// The shadow cost of a free-tier call.
    pub fn shadow(&self) -> Option<Money> {
        self.priced().and_then(PricedCall::shadow)
    }

    /// True when priced.
    pub fn is_priced(&self) -> bool {
        matches!(self, Cost::Priced(_))
    }

    /// The priced call.
    pub fn priced(&self) -> Option<&PricedCall> {
        match self {
            Cost::Priced(p) => Some(p),
            Cost::Unpriced(_) => None,
        }
    }

    /// Why unpriced.
    pub fn unpriced(&self) -> Option<&Unpriced> {
        match self {
            Cost::Priced(_) => None,
            Cost::Unpriced(u) => Some(u),
        }
    }
}

impl From<Result<PricedCall, Unpriced>> for Cost {
    fn from(result: Result<PricedCall, Unpriced>) -> Self {
        match result {
            Ok(p) => Cost::Priced(p),
            Err(u) => Cost::Unpriced(u),
        }
    }
}

impl PriceTable {
    /// Prices one call of `model` made at `at`.
    pub fn price(&self, model: &str, usage: &Usage, billing: Billing, at: DateTime<Utc>) -> Cost {
        self.try_price(model, usage, billing, at).into()
    }

    /// Like [`PriceTable::price`], as a `Result`.
    pub fn try_price(
        &self,
        model: &str,
        usage: &Usage,
        billing: Billing,
        at: DateTime<Utc>,
    ) -> Result<PricedCall, Unpriced> {
        let row = self.row_at(model, at)?;
        if billing == Billing::FreeTier && !row.free_tier {
            return Err(Unpriced::NoFreeTier {
                model: row.model.clone(),
            });
        }
        let (context, rates) = rates_for(row, usage, billing)?;
        let mut buckets = Breakdown::default();
        let mut list = Money::ZERO;
        for bucket in Bucket::ALL {
            let tokens = bucket.tokens(usage);
            let rate = rates.get(bucket);
            let usd = match rate {
                Some(rate) => rate.cost(tokens).ok_or_else(|| Unpriced::Overflow {
                    model: row.model.clone(),
                })?,
                None if tokens == 0 => Money::ZERO,
                None => {
                    return Err(Unpriced::MissingRate {
                        model: row.model.clone(),
                        billing,
                        bucket,
                    });
                }
            };
            list = list.checked_add(usd).ok_or_else(|| Unpriced::Overflow {
                model: row.model.clone(),
            })?;
            *buckets.get_mut(bucket) = BucketCost {
                tokens,
                usd_per_mtok: rate,
                usd,
            };
        }
        Ok(PricedCall {
            model: row.model.clone(),
            effective: row.effective,
            source: row.source.clone(),
            billing,
            context,
            buckets,
            usd: if billing == Billing::FreeTier {
                Money::ZERO
            } else {
                list
            },
            list_usd: list,
        })
    }
}

/// The rates that apply to one request of `row`.
fn rates_for<'r>(
    row: &'r PriceRow,
    usage: &Usage,
    billing: Billing,
) -> Result<(ContextTier, &'r Rates), Unpriced> {
    let (context, standard, batch) = match &row.long_context {
        Some(lc) if usage.prompt_tokens() > lc.above_prompt_tokens => {
            (ContextTier::LongContext, &lc.standard, lc.batch.as_ref())
        }
        _ => (ContextTier::Standard, &row.standard, row.batch.as_ref()),
    };
    match billing {
        Billing::Batch => batch
            .map(|b| (context, b))
            .ok_or_else(|| Unpriced::NoBatch {
                model: row.model.clone(),
            }),
        _ => Ok((context, standard)),
    }
}
