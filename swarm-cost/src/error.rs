//! The crate's one error type.
//!
//! Callers decide by asking the error ([`CostError::retry`],
//! [`CostError::is_budget_refusal`]), never by parsing its message. An
//! unpriced call is not an error (it is a [`crate::Cost::Unpriced`] value);
//! it becomes one only where a price is required, to reserve a budget.

use std::path::PathBuf;

use swarmbus_core::error::Retry;

use crate::pricing::Unpriced;
use swarmbus_core::money::Money;

/// Every error of `swarmbus-cost`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CostError {
    /// A price table did not parse or broke a rule (a float price, a row
    /// without source, two models claiming one alias …). `origin` is the file
    /// or `built-in`.
    #[error("price table {origin}: {reason}")]
    PriceTable {
        /// Where the table came from.
        origin: String,
        /// What is wrong, with the row's model id and field where known.
        reason: String,
    },
    /// A price table file could not be read.
    #[error("cannot read price table {}: {source}", path.display())]
    PriceFile {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A provider's usage JSON is not what its API documents, or its counts
    /// contradict each other (more cached tokens than prompt tokens).
    #[error("{provider} usage: {reason}")]
    Usage {
        /// `anthropic`, `gemini` or `openai-compatible`.
        provider: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A budget refused the call: reserving `requested` would pass `limit`
    /// (or the scope has already reached it).
    #[error(
        "budget exhausted for {scope}: ${spent} of ${limit} spent or reserved, ${requested} more refused"
    )]
    BudgetExhausted {
        /// The budget (`global`, `session instance-11`, `worker haiku-1`).
        scope: String,
        /// The limit.
        limit: Money,
        /// Spent and reserved when refused (rounded up to micro-dollars).
        spent: Money,
        /// The estimate that was refused (rounded up to micro-dollars).
        requested: Money,
    },
    /// A budget is set but the call cannot be priced, so it cannot be held
    /// to the budget: refused rather than let through at "$0".
    #[error("cannot hold a call to {model} to a budget: {reason}")]
    Unpriced {
        /// The model as asked.
        model: String,
        /// Why it has no price.
        reason: Unpriced,
    },
    /// An argument was rejected (an id too long to name a budget counter …).
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The argument.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The model is retired: refused before the call is sent. Switch to the
    /// replacement it names; never retried.
    #[error(transparent)]
    Retired(#[from] crate::lifecycle::ModelRetired),
    /// A LiteLLM price map could not be read (not JSON, not an object).
    #[error("LiteLLM price map {origin}: {reason}")]
    Import {
        /// The file.
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// The bus failed (it says whether a retry helps).
    #[error(transparent)]
    Bus(#[from] swarmbus_core::error::Error),
}

impl CostError {
    /// Whether and how a retry may help: only bus faults are transient; a
    /// budget refusal stays refused until money is freed or the limit raised.
    pub fn retry(&self) -> Retry {
        match self {
            CostError::Bus(e) => e.retry(),
            _ => Retry::Never,
        }
    }

    /// True for a transient bus fault.
    pub fn is_transient(&self) -> bool {
        matches!(self.retry(), Retry::Retry | Retry::After(_))
    }

    /// True when a budget refused the call (exhausted, or the call cannot be
    /// priced to be held to it): do not make the call.
    pub fn is_budget_refusal(&self) -> bool {
        matches!(
            self,
            CostError::BudgetExhausted { .. } | CostError::Unpriced { .. }
        )
    }

    pub(crate) fn usage(provider: &'static str, reason: impl Into<String>) -> Self {
        CostError::Usage {
            provider,
            reason: reason.into(),
        }
    }
}

/// The result type of this crate.
pub type Result<T, E = CostError> = std::result::Result<T, E>;

/// Core's error for a cost error crossing a core trait (`Meter`):
/// bus faults stay what they were (with their retry advice); a bad argument
/// is `InvalidInput`; anything else is a backend error of the accountant
/// that a retry does not fix.
impl From<CostError> for swarmbus_core::error::Error {
    fn from(err: CostError) -> Self {
        match err {
            CostError::Bus(e) => e,
            CostError::InvalidInput { field, reason } => {
                swarmbus_core::error::Error::InvalidInput { field, reason }
            }
            refusal if refusal.is_budget_refusal() => swarmbus_core::error::Error::Refused {
                reason: refusal.to_string(),
                source: Some(Box::new(refusal)),
            },
            other => swarmbus_core::error::Error::Backend {
                backend: "swarmbus-cost",
                message: other.to_string(),
                retry: Retry::Never,
                source: Some(Box::new(other)),
            },
        }
    }
}
