//! Model lifecycle: a retired model is refused before a request is sent
//! (the error names its replacement), a deprecated one is warned about, and
//! a 404 names the replacement when the catalog knows it.
//!
//! The dates and replacements come from a model catalog (swarm-cost's price
//! table implements core's catalog trait); without one, nothing is checked
//! and the API's own 404 says what happened.

use std::fmt;
use std::sync::Arc;

use chrono::{NaiveDate, Utc};

use crate::error::{Error, Result};

/// A model's published lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Lifecycle {
    /// When the model was deprecated (calls still work; warn).
    pub deprecated_on: Option<NaiveDate>,
    /// When it stops serving (calls are refused from this day).
    pub retires_on: Option<NaiveDate>,
    /// The model to use instead.
    pub replacement: Option<String>,
}

/// Where lifecycles come from.
pub trait LifecycleSource: Send + Sync {
    /// The lifecycle of `model`, when known.
    fn lifecycle(&self, model: &str) -> Option<Lifecycle>;
}

/// The client's lifecycle check (no catalog: no check).
#[derive(Clone, Default)]
pub(crate) struct LifecycleCheck {
    source: Option<Arc<dyn LifecycleSource>>,
}

impl fmt::Debug for LifecycleCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LifecycleCheck")
            .field("catalog", &self.source.is_some())
            .finish()
    }
}

impl LifecycleCheck {
    pub(crate) fn set(&mut self, source: Arc<dyn LifecycleSource>) {
        self.source = Some(source);
    }

    fn lookup(&self, model: &str) -> Option<Lifecycle> {
        self.source.as_ref()?.lifecycle(model)
    }

    /// Refuses a retired model; warns about a deprecated one.
    pub(crate) fn check(&self, model: &str) -> Result<()> {
        let Some(l) = self.lookup(model) else {
            return Ok(());
        };
        let today = Utc::now().date_naive();
        if l.retires_on.is_some_and(|d| d <= today) {
            return Err(Error::ModelRetired {
                model: model.to_owned(),
                retired_on: l.retires_on,
                replacement: l.replacement,
            });
        }
        if l.deprecated_on.is_some_and(|d| d <= today) || l.retires_on.is_some() {
            tracing::warn!(
                model,
                retires_on = ?l.retires_on,
                replacement = ?l.replacement,
                "model is deprecated"
            );
        }
        Ok(())
    }

    /// Adds the replacement to a 404 about a model the catalog knows.
    pub(crate) fn name_replacement(&self, e: Error) -> Error {
        match e {
            Error::NotFound {
                model,
                replacement: None,
                message,
                request_id,
            } => {
                let replacement = self.lookup(&model).and_then(|l| l.replacement);
                Error::NotFound {
                    model,
                    replacement,
                    message,
                    request_id,
                }
            }
            other => other,
        }
    }
}
