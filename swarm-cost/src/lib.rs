//! # swarmbus-cost
//!
//! Prices every model call of a swarm exactly, records it in a ledger on the
//! bus, holds calls to budgets and reports where the money went.
//!
//! # Layout
//!
//! - [`money`]: [`Money`] (exact pico-dollars, decimal display) and [`Rate`], core's
//!   (`swarmbus_core::money`, the meter's unit) re-exported.
//! - [`table`]: the effective-dated [`PriceTable`], data in `data/prices.toml`
//!   (embedded, overridable from a file), a source URL and date on every row.
//! - [`pricing`]: one call's [`Cost`] per bucket, long-context tier, batch,
//!   free tier with its shadow cost, and [`Unpriced`] reasons (never $0).
//! - [`usage`]: adapters from Anthropic, Gemini and OpenAI-compatible usage
//!   JSON into the buckets of [`Usage`].
//! - [`ledger`]: [`Ledger`], one JSON record per call in a bus journal, and
//!   the brief's `cost:<tier>` keys.
//! - [`estimate`]: [`Estimate`], what a held call was reserved at, reported
//!   as estimated spend (apart) until its exact price is booked.
//! - [`budget`]: [`Budgets`] per session, worker and globally: reserve,
//!   commit, refuse at the limit, atomic on the bus's counters.
//! - [`report`]: [`Report`], totals, the brief's status lines, worker share
//!   against the target, savings against the coordinator model.
//! - [`tiers`]: [`Tiers`], which tier and model play each role;
//!   [`defaults`]: the default model of each role as constants.
//! - [`lifecycle`]: [`Lifecycle`] (deprecation, retirement, replacement) and
//!   [`PriceTable::check_model`], which refuses a retired model.
//! - [`import`]: [`LitellmImport`], LiteLLM's community price map turned into
//!   a price-table file.
//! - [`accountant`]: [`Accountant`], ledger and budgets together.
//! - [`error`]: [`CostError`], which says whether to retry.
//!
//! # Example
//!
//! ```
//! use chrono::Utc;
//! use swarmbus_core::llm::Usage;
//! use swarmbus_cost::{Billing, PriceTable};
//!
//! let table = PriceTable::built_in()?;
//! // Haiku 4.5: 1,000 fresh input, 8,000 cache read, 1,000 cache write (5 min), 500 output.
//! let usage = Usage::new(1_000, 500).with_cache_read(8_000).with_cache_write(1_000, 0);
//! let cost = table.price("claude-haiku-4-5-20251001", &usage, Billing::Standard, Utc::now());
//! assert_eq!(cost.usd().map(|usd| usd.to_string()), Some("0.00555".to_owned()));
//!
//! // An unknown model has no price, not a price of $0.
//! assert!(table.price("gpt-nonexistent", &usage, Billing::Standard, Utc::now()).usd().is_none());
//! # Ok::<(), swarmbus_cost::CostError>(())
//! ```

pub mod accountant;
pub mod budget;
pub mod defaults;
pub mod error;
pub mod estimate;
pub mod import;
pub mod ledger;
pub mod lifecycle;
/// Exact money: core's, the unit of the meter.
pub mod money {
    pub use swarmbus_core::money::{Money, ParseMoneyError, Rate, permille};
}
pub mod pricing;
pub mod report;
pub mod table;
pub mod tiers;
pub mod usage;

pub use accountant::{Accountant, Pending};
pub use budget::{BudgetLimits, BudgetScope, Budgets, Reservation};
pub use error::{CostError, Result};
pub use estimate::{DEFAULT_ESTIMATES_JOURNAL, Estimate, EstimateEvent, Estimates};
pub use import::{LitellmImport, Unmapped};
pub use ledger::{Call, DEFAULT_JOURNAL, Entries, Ledger, LedgerEntry};
pub use lifecycle::{Deprecation, Lifecycle, LifecycleStatus, ModelRetired};
pub use money::{Money, ParseMoneyError, Rate};
pub use pricing::{
    Billing, Breakdown, Bucket, BucketCost, ContextTier, Cost, PricedCall, Unpriced,
};
pub use report::{EstimatedTotals, Report, ReportFilter, Savings, Totals, WorkerShare};
pub use swarmbus_core::llm::Usage;
/// The spend split and shares are core's, shared with `swarm status`.
pub use swarmbus_core::{Efficiency, Percent};
pub use table::{BUILT_IN_PRICES, LongContext, PriceRow, PriceTable, Rates};
pub use tiers::{TierModel, Tiers};
pub use usage::Provider;
