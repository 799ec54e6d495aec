//! The crate's one error type, shared by every bus implementation.
//!
//! Callers decide what to do by asking the error ([`Error::retry`]), never by
//! parsing its message: the same shape as redis-rs's `RetryMethod`.

use std::time::Duration;

use crate::halt::HaltReport;

/// What a caller should do about an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Retry {
    /// Retrying the same call cannot help: the input or the stored data is wrong.
    Never,
    /// A transient fault (connection lost, timeout) and nothing was applied,
    /// or the call is idempotent: making the same call again is safe and may
    /// succeed. (A bus retries its own requests with one operation id, so a
    /// write it reports as failed with `Retry` did not apply, or applying it
    /// again changes nothing.)
    Retry,
    /// The call may or may not have been applied: its request may have
    /// reached the store and its reply was lost, and the bus's own retries
    /// ran out. Making the same call again may apply it twice (count a cost,
    /// a grant or a task twice): read the state first.
    Unknown,
    /// Retry after waiting at least this long.
    After(Duration),
    /// The swarm is halted: stop, do not start new work.
    Stop,
}

/// Every error of the core crate and of the bus implementations built on it.
///
/// Variants carry the facts (key, id, sizes); [`Error::retry`] says whether a
/// retry can help. Secrets (API keys, Redis passwords) never appear in it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An identifier (worker id, session id, tier name, uuid, shard number …)
    /// was rejected. `input` is the offending text, escaped and truncated.
    #[error("invalid {kind} \"{input}\": {reason}")]
    InvalidId {
        /// Which kind of identifier (`"worker id"`, `"finding id"`, …).
        kind: &'static str,
        /// The rejected input, escaped and cut to at most 80 characters.
        input: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// A string did not parse as a key of the schema.
    #[error("not a swarm key \"{key}\": {reason}")]
    InvalidKey {
        /// The rejected key, escaped and truncated.
        key: String,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// The value stored under `key` is not the JSON this crate wrote.
    #[error("malformed value under {key}: {reason}")]
    Decode {
        /// The key whose value did not decode.
        key: String,
        /// What the decoder said.
        reason: String,
    },
    /// The key holds a value of the wrong Redis type (for example a LIST
    /// where a STRING was expected).
    #[error("wrong type under {key}: expected {expected}, found {found}")]
    WrongType {
        /// The key.
        key: String,
        /// The type this crate writes there.
        expected: &'static str,
        /// The type found.
        found: String,
    },
    /// A value is larger than the configured limit; nothing was written.
    #[error("value for {key} is {size} bytes, over the limit of {limit} bytes")]
    ValueTooLarge {
        /// The key that would have been written.
        key: String,
        /// Size of the encoded value in bytes.
        size: usize,
        /// The configured limit in bytes.
        limit: usize,
    },
    /// A field of a value is invalid (empty title, bad filter range …).
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A finding with this id is already stored with different content: the
    /// stored one is kept.
    #[error("{key} already holds a different finding; the stored one is kept")]
    Conflict {
        /// The key.
        key: String,
    },
    /// No finding is stored under this key (updating or deleting an unknown
    /// or already deleted id).
    #[error("no finding under {key}")]
    NotFound {
        /// The key.
        key: String,
    },
    /// The swarm is halted; the report says why.
    #[error("swarm halted: {0}")]
    Halted(Box<HaltReport>),
    /// The operation timed out.
    #[error("{operation} timed out after {after:?}")]
    Timeout {
        /// The operation.
        operation: &'static str,
        /// How long it was given.
        after: Duration,
    },
    /// The bus (or the subscription) was closed.
    #[error("bus closed: {0}")]
    Closed(&'static str),
    /// An error of the backing store (Redis, a file …). The message never
    /// carries credentials.
    #[error("backend error ({backend}): {message}")]
    Backend {
        /// The backend (`"redis"`, …).
        backend: &'static str,
        /// What went wrong, with secrets removed.
        message: String,
        /// Whether and how to retry.
        retry: Retry,
        /// The backend's own error (for redis-rs: its kind and code), when
        /// there is one. Implementations only put errors here whose text
        /// carries no secret.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    /// A write whose outcome is unknown: its request may have been applied
    /// and the reply was lost (see [`Retry::Unknown`]). `cause` is the last
    /// failure seen.
    #[error("{operation} may or may not have been applied: {cause}")]
    Unconfirmed {
        /// The operation.
        operation: &'static str,
        /// The failure that left the outcome unknown.
        #[source]
        cause: Box<Error>,
    },
    /// A language-model call failed: the provider's facts and what to do
    /// (its [`crate::llm::ModelAction`]) are kept whole.
    #[error("model call failed: {0}")]
    Model(Box<crate::llm::ModelError>),
    /// A meter refused to hold a call's estimate (a budget is reached, or
    /// a budget applies and the call has no price): the call must not be
    /// made. Retrying does not help until the budget changes.
    #[error("call refused: {reason}")]
    Refused {
        /// Why, in words (the scope, limit and amounts).
        reason: String,
        /// The meter's own error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl Error {
    /// Whether and how a retry may help, with a wait until a named moment
    /// counted from the system clock (see [`Error::retry_at`]).
    pub fn retry(&self) -> Retry {
        self.retry_at(chrono::Utc::now())
    }

    /// Whether and how a retry may help, at `now` (the caller's clock): a
    /// failure that names the moment to wait until becomes the wait from
    /// `now` to it.
    pub fn retry_at(&self, now: chrono::DateTime<chrono::Utc>) -> Retry {
        match self {
            Error::Timeout { .. } => Retry::Retry,
            Error::Halted(_) => Retry::Stop,
            Error::Backend { retry, .. } => *retry,
            Error::Model(e) => model_retry(e, now),
            Error::Unconfirmed { .. } => Retry::Unknown,
            _ => Retry::Never,
        }
    }

    /// True for faults of the connection rather than of the data, after
    /// which the same call may be made again safely. An
    /// [`Error::Unconfirmed`] write is not transient in this sense: see
    /// [`Error::may_have_applied`].
    pub fn is_transient(&self) -> bool {
        matches!(self.retry(), Retry::Retry | Retry::After(_))
    }

    /// True when a failed write may nevertheless have been applied
    /// ([`Retry::Unknown`]).
    pub fn may_have_applied(&self) -> bool {
        self.retry() == Retry::Unknown
    }

    /// True when a meter refused the call ([`Error::Refused`]).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Error::Refused { .. })
    }

    /// A backend error without a source.
    pub fn backend(backend: &'static str, message: impl Into<String>, retry: Retry) -> Self {
        Error::Backend {
            backend,
            message: message.into(),
            retry,
            source: None,
        }
    }

    /// The key this error is about, when it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            Error::Decode { key, .. }
            | Error::WrongType { key, .. }
            | Error::ValueTooLarge { key, .. }
            | Error::Conflict { key }
            | Error::NotFound { key } => Some(key),
            _ => None,
        }
    }

    /// Builds a [`Error::Decode`] for `key`.
    pub fn decode(key: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Error::Decode {
            key: key.into(),
            reason: reason.to_string(),
        }
    }
}

fn model_retry(e: &crate::llm::ModelError, now: chrono::DateTime<chrono::Utc>) -> Retry {
    use crate::llm::ModelAction;
    match e.action {
        ModelAction::Retry | ModelAction::Rotate => match e.retry_after {
            Some(d) => Retry::After(d),
            None => Retry::Retry,
        },
        ModelAction::RetryAfter { after } => Retry::After(after),
        ModelAction::WaitUntil { until } => {
            Retry::After((until - now).to_std().unwrap_or(Duration::ZERO))
        }
        ModelAction::Stop { .. } => Retry::Stop,
        _ => Retry::Never,
    }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Escapes and truncates untrusted input for an error message.
pub(crate) fn shown(input: &str) -> String {
    const MAX: usize = 80;
    let mut out: String = input.chars().take(MAX).collect();
    if input.chars().count() > MAX {
        out.push('…');
    }
    out.escape_debug().to_string()
}
