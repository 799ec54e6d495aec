//! The librarian's error: what went wrong answering a question, its stable
//! kind (the `error.kind` of an archive response) and whether a retry can
//! help.

use std::fmt;

use swarmbus_core::error::Retry;
use swarmbus_core::llm::{ModelError, ModelErrorKind};

/// A stable, machine-readable kind of [`LibrarianError`]; its
/// [`as_str`](LibrarianErrorKind::as_str) is the `kind` of an error response
/// on `response:archive:<uuid>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LibrarianErrorKind {
    /// The question or the configuration is invalid.
    Config,
    /// No finding matches the question's filter.
    NoFindings,
    /// The answer cites nothing, or cites ids that are not findings given
    /// to it or that do not exist.
    Citation,
    /// The model's answer is not the JSON asked for.
    MalformedResponse,
    /// The answer is empty: the token cap (or thinking using all of it) cut
    /// it before any text.
    Truncated,
    /// The bus (the findings' store) failed.
    Ledger,
    /// The meter refused the call (a budget is reached).
    BudgetRefused,
    /// The model call failed, with this kind (kept exactly).
    Model(ModelErrorKind),
}

impl LibrarianErrorKind {
    /// The snake_case name (`no_findings`). A model's kind keeps the names
    /// archive responses have always carried (`invalid_key`, `transport`,
    /// `all_shards_exhausted`, …).
    pub const fn as_str(self) -> &'static str {
        use ModelErrorKind as K;
        match self {
            Self::Config | Self::Model(K::Config) => "config",
            Self::NoFindings => "no_findings",
            Self::Citation => "citation",
            Self::MalformedResponse | Self::Model(K::MalformedResponse) => "malformed_response",
            Self::Truncated | Self::Model(K::Truncated) => "truncated",
            Self::Ledger => "ledger",
            Self::BudgetRefused => "budget_refused",
            Self::Model(K::Unauthenticated) => "invalid_key",
            Self::Model(K::PermissionDenied) => "permission_denied",
            Self::Model(K::NotFound | K::Retired) => "not_found",
            Self::Model(K::RateLimited) => "rate_limited",
            Self::Model(K::QuotaExhausted | K::SpendLimit | K::Billing) => "quota_exhausted",
            Self::Model(K::Overloaded) => "overloaded",
            Self::Model(K::Blocked | K::Refused) => "blocked",
            Self::Model(K::Timeout) => "timeout",
            Self::Model(K::Connection) => "transport",
            Self::Model(K::Exhausted) => "all_shards_exhausted",
            Self::Model(K::InvalidRequest | K::RequestTooLarge | K::InvalidInput) => {
                "invalid_request"
            }
            Self::Model(_) => "server_error",
        }
    }
}

impl fmt::Display for LibrarianErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for LibrarianErrorKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Every error of the librarian and its daemon. Variants carry the facts;
/// [`LibrarianError::kind`] and [`LibrarianError::retry`] classify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LibrarianError {
    /// The question (or the configuration) is invalid.
    #[error("invalid configuration: {reason}")]
    Config {
        /// Why.
        reason: String,
    },
    /// No finding matches the question's filter (or none is relevant, for
    /// the extractive provider).
    #[error("no findings to answer from: {reason}")]
    NoFindings {
        /// Which filter or question.
        reason: String,
    },
    /// The answer cites nothing, or cites ids that are not findings given
    /// to it or of the archive.
    #[error("answer citations rejected: {reason}")]
    Citation {
        /// Why (which ids).
        reason: String,
    },
    /// The model's answer is not the JSON asked for (never guessed at).
    #[error("malformed response: {reason}")]
    MalformedResponse {
        /// What is wrong with it.
        reason: String,
    },
    /// The model's answer is empty, or the token cap cut it: the call
    /// succeeded, but there is no answer to use.
    #[error("empty answer: {reason}")]
    Truncated {
        /// What the model reported (stop reason, token counts).
        reason: String,
    },
    /// The model call failed: core's [`swarmbus_core::Error::Model`], kept
    /// whole (kind, HTTP status, retry delay, action, served by).
    #[error("{}", model_message(.0))]
    Model(swarmbus_core::Error),
    /// The meter refused the call: a budget is reached (or applies and the
    /// model has no price). Not retried until the budget changes.
    #[error("budget refused the call: {reason}")]
    BudgetRefused {
        /// What the budget said.
        reason: String,
    },
    /// The bus (the findings' store, the archive desk) failed.
    #[error("ledger: {0}")]
    Bus(#[source] swarmbus_core::Error),
}

fn model_message(e: &swarmbus_core::Error) -> String {
    match e {
        swarmbus_core::Error::Model(m) => m.to_string(),
        other => other.to_string(),
    }
}

/// The librarian's result type.
pub type Result<T, E = LibrarianError> = std::result::Result<T, E>;

impl From<swarmbus_core::Error> for LibrarianError {
    /// A model's error is [`LibrarianError::Model`]; any other core error
    /// is the bus's ([`LibrarianError::Bus`]).
    fn from(e: swarmbus_core::Error) -> Self {
        match e {
            swarmbus_core::Error::Model(_) => LibrarianError::Model(e),
            swarmbus_core::Error::Refused { reason, .. } => {
                LibrarianError::BudgetRefused { reason }
            }
            other => LibrarianError::Bus(other),
        }
    }
}

impl LibrarianError {
    /// The stable kind.
    pub fn kind(&self) -> LibrarianErrorKind {
        match self {
            Self::Config { .. } => LibrarianErrorKind::Config,
            Self::NoFindings { .. } => LibrarianErrorKind::NoFindings,
            Self::Citation { .. } => LibrarianErrorKind::Citation,
            Self::MalformedResponse { .. } => LibrarianErrorKind::MalformedResponse,
            Self::Truncated { .. } => LibrarianErrorKind::Truncated,
            Self::Model(e) => match e {
                swarmbus_core::Error::Model(m) => LibrarianErrorKind::Model(m.kind),
                _ => LibrarianErrorKind::Model(ModelErrorKind::Other),
            },
            Self::Bus(_) => LibrarianErrorKind::Ledger,
            Self::BudgetRefused { .. } => LibrarianErrorKind::BudgetRefused,
        }
    }

    /// The model's error, when the model call failed.
    pub fn model_error(&self) -> Option<&ModelError> {
        match self {
            Self::Model(swarmbus_core::Error::Model(m)) => Some(m),
            _ => None,
        }
    }

    /// Whether and how asking again may help: a model's or the bus's own
    /// classification (a rate limit waits, a halted swarm stops); never for
    /// an answer that was refused or a question with nothing to answer from.
    pub fn retry(&self) -> Retry {
        match self {
            Self::Model(e) | Self::Bus(e) => e.retry(),
            _ => Retry::Never,
        }
    }

    /// Whether the same question may be answered later without a person
    /// acting.
    pub fn is_transient(&self) -> bool {
        matches!(self.retry(), Retry::Retry | Retry::After(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmbus_core::llm::ModelAction;

    #[test]
    fn a_model_error_keeps_its_facts_kind_and_retry() {
        let mut m = ModelError::new(
            "gemini",
            "gemini-test",
            ModelErrorKind::Exhausted,
            ModelAction::Fail,
            "all shards exhausted",
        );
        m.http_status = Some(429);
        let e = LibrarianError::from(swarmbus_core::Error::Model(Box::new(m)));
        assert_eq!(
            e.kind(),
            LibrarianErrorKind::Model(ModelErrorKind::Exhausted)
        );
        assert_eq!(e.kind().as_str(), "all_shards_exhausted");
        assert_eq!(e.model_error().and_then(|m| m.http_status), Some(429));
        assert_eq!(e.retry(), Retry::Never);
        let refused = LibrarianError::Citation {
            reason: "none".into(),
        };
        assert_eq!(refused.kind(), LibrarianErrorKind::Citation);
        assert!(!refused.is_transient());
    }
}
