//! Model lifecycle, from core's [`ModelCatalog`] (swarm-cost's price table
//! implements it): a retired model is refused before a request is sent (the
//! error names its replacement), a deprecated one is warned about, and a
//! 404 names the replacement when the catalog knows it. Without a catalog
//! nothing is checked and the API's own 404 says what happened.

use std::fmt;
use std::sync::Arc;

use chrono::NaiveDate;
use swarmbus_core::llm::ModelCatalog;

use crate::error::{Error, Result};

/// The client's lifecycle check (no catalog: no check).
#[derive(Clone, Default)]
pub(crate) struct LifecycleCheck {
    catalog: Option<Arc<dyn ModelCatalog>>,
}

impl fmt::Debug for LifecycleCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LifecycleCheck")
            .field("catalog", &self.catalog.is_some())
            .finish()
    }
}

impl LifecycleCheck {
    pub(crate) fn set(&mut self, catalog: Arc<dyn ModelCatalog>) {
        self.catalog = Some(catalog);
    }

    /// Refuses a model retired by `today`; warns about a deprecated one.
    pub(crate) fn check(&self, model: &str, today: NaiveDate) -> Result<()> {
        let Some(life) = self
            .catalog
            .as_ref()
            .and_then(|c| c.lifecycle(model, today))
        else {
            return Ok(());
        };
        if life.is_retired(today) {
            return Err(Error::ModelRetired {
                model: model.to_owned(),
                retired_on: life.retires_on,
                replacement: life.replacement,
            });
        }
        if life.is_deprecated(today) {
            tracing::warn!(
                model,
                retires_on = life.retires_on.map(|d| d.to_string()),
                replacement = life.replacement.as_deref(),
                "model is deprecated"
            );
        }
        Ok(())
    }

    /// Adds the replacement to a 404 about a model the catalog knows.
    pub(crate) fn name_replacement(&self, e: Error, today: NaiveDate) -> Error {
        match e {
            Error::NotFound {
                model,
                replacement: None,
                message,
                request_id,
            } => {
                let replacement = self
                    .catalog
                    .as_ref()
                    .and_then(|c| c.lifecycle(&model, today))
                    .and_then(|l| l.replacement);
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
