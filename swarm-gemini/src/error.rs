//! The crate's one error type, and the classification of Gemini's errors.
//!
//! Every error answers two questions without anyone parsing its message:
//! WHAT to do ([`Error::action`]: retry the same shard after a delay, rotate
//! to another shard, cool this shard, mark it exhausted until the Pacific
//! midnight reset, disable it, or fail the call) and WHAT happened
//! ([`Error::kind`], [`Error::http_status`], [`Error::quota_id`],
//! [`Error::quota_value`], [`Error::retry_delay`]). API keys never appear in
//! an error: messages from the server are cut, and any copy of the key in
//! them is replaced before they are stored.
//!
//! The table (see `shared/fixtures/gemini/SOURCES.md`):
//!
//! | HTTP / body | error | action |
//! |---|---|---|
//! | 400 `API_KEY_INVALID`, 401 | [`Error::InvalidKey`] | disable the shard |
//! | 400 `FAILED_PRECONDITION` | [`Error::FailedPrecondition`] | disable the shard (unusable) |
//! | other 400 and 4xx | [`Error::InvalidRequest`] | fail, do not rotate |
//! | 403 | [`Error::PermissionDenied`] | disable the shard |
//! | 404 | [`Error::NotFound`] | fail |
//! | 429 with a `…PerDay…` quota | [`Error::QuotaExhausted`] | exhausted until next Pacific midnight |
//! | 429 otherwise | [`Error::RateLimited`] | cool for `RetryInfo.retryDelay` (60 s default) |
//! | 500, 504, other 5xx | [`Error::Server`] | retry with backoff, then rotate |
//! | 503 | [`Error::Overloaded`] | retry with backoff, then rotate |
//! | prompt blocked, blocking `finishReason` | [`Error::Blocked`] | fail, do not rotate |
//! | no candidates, `content: {}`, no parts, not a response | [`Error::MalformedResponse`] | fail |
//! | timeout | [`Error::Timeout`] | rotate |
//! | connection error | [`Error::Transport`] | retry, then rotate |

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use swarmbus_core::ShardStatus;
use swarmbus_core::error::Retry;
use swarmbus_core::keys::ShardId;
use swarmbus_core::llm::{ModelAction, ModelErrorKind};
use swarmbus_core::quota::next_pacific_midnight;

use crate::wire::{BlockReason, FinishReason};

/// The wait before retrying a 429 that gives no `RetryInfo`.
pub const DEFAULT_RATE_LIMIT_DELAY: Duration = Duration::from_secs(60);

/// The longest retry delay taken from a server: anything longer is cut to
/// this (a server bug must not park a shard for days).
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(24 * 3600);

/// What a caller (the shard pool) should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// A transient fault: retry the same shard after (at least) this delay,
    /// with backoff; after a few tries, rotate.
    RetryAfter(Duration),
    /// This shard cannot serve this call now: try the next shard at once.
    Rotate,
    /// Rate limited: cool the shard for this long, try another shard now,
    /// and this one again later.
    Cool(Duration),
    /// The shard's daily quota is gone: do not use it before this time (the
    /// next midnight in America/Los_Angeles).
    ExhaustUntil(DateTime<Utc>),
    /// The key or project is unusable: never use the shard again until a
    /// person enables it.
    Disable,
    /// Every shard would fail the same way: fail the call.
    Fail,
}

impl Action {
    /// Whether the pool moves on to another shard for this action.
    pub fn rotates(self) -> bool {
        !matches!(self, Action::Fail)
    }
}

/// A stable, machine-readable error kind (the CLI's `error.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The API key is invalid or missing.
    InvalidKey,
    /// Permission denied: leaked key, API not enabled, project unusable.
    PermissionDenied,
    /// Unknown model or method.
    NotFound,
    /// The request is wrong; every shard would refuse it.
    InvalidRequest,
    /// Rate limited for a short while.
    RateLimited,
    /// Daily quota (or prepaid balance) used up.
    QuotaExhausted,
    /// The model is overloaded (503).
    Overloaded,
    /// A server error (500, 504, …).
    ServerError,
    /// The prompt or the answer was blocked.
    Blocked,
    /// The response is not an answer.
    MalformedResponse,
    /// The call timed out.
    Timeout,
    /// The connection failed.
    Transport,
    /// No shard (and no fallback) could serve the call.
    AllShardsExhausted,
    /// Fewer shards are operational than the work requires.
    NotEnoughShards,
    /// The configuration is invalid.
    Config,
    /// The quota ledger (the bus) failed.
    Ledger,
    /// The answer is empty: the token cap (or thinking using all of it) cut
    /// it before any text. The call itself succeeded.
    Truncated,
}

impl ErrorKind {
    /// The snake_case name (`quota_exhausted`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidKey => "invalid_key",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::NotFound => "not_found",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::QuotaExhausted => "quota_exhausted",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::ServerError => "server_error",
            ErrorKind::Blocked => "blocked",
            ErrorKind::MalformedResponse => "malformed_response",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Transport => "transport",
            ErrorKind::AllShardsExhausted => "all_shards_exhausted",
            ErrorKind::NotEnoughShards => "not_enough_shards",
            ErrorKind::Config => "config",
            ErrorKind::Ledger => "ledger",
            ErrorKind::Truncated => "truncated",
        }
    }
}

impl serde::Serialize for ErrorKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which quota a 429 says was hit (a `google.rpc.QuotaFailure` violation or
/// a Vertex AI `ErrorInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct QuotaFact {
    /// The quota id (`GenerateRequestsPerDayPerProjectPerModel-FreeTier`).
    pub id: String,
    /// The metric (`generativelanguage.googleapis.com/generate_content_free_tier_requests`).
    pub metric: Option<String>,
    /// The limit's value (`250`), when reported.
    pub value: Option<u64>,
    /// The model it counts against, when reported.
    pub model: Option<String>,
}

impl QuotaFact {
    /// Whether this is a daily quota (its id says `PerDay`).
    pub fn is_per_day(&self) -> bool {
        self.id.to_ascii_lowercase().contains("perday")
    }

    /// Whether this is a per-minute quota.
    pub fn is_per_minute(&self) -> bool {
        self.id.to_ascii_lowercase().contains("perminute")
    }
}

/// What was blocked: the prompt, or the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlockCause {
    /// The prompt (`promptFeedback.blockReason`).
    Prompt(BlockReason),
    /// The answer (`finishReason`).
    Candidate(FinishReason),
}

impl fmt::Display for BlockCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockCause::Prompt(r) => write!(f, "prompt blocked ({r})"),
            BlockCause::Candidate(r) => write!(f, "answer blocked (finishReason {r})"),
        }
    }
}

/// One shard's state when no shard could serve a call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShardReport {
    /// The shard.
    pub shard: ShardId,
    /// Its project label, if configured.
    pub project: Option<String>,
    /// Its status.
    pub status: ShardStatus,
    /// When it is usable again (`None`: disabled, needs a person).
    pub next_usable: Option<DateTime<Utc>>,
    /// The last error or denial reason seen for it in this call.
    pub reason: Option<String>,
}

impl fmt::Display for ShardReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "shard{} {}", self.shard, self.status)?;
        if let Some(p) = &self.project {
            write!(f, " [project {p}]")?;
        }
        match (self.status, self.next_usable) {
            (ShardStatus::Disabled, _) | (_, None) => {}
            (_, Some(t)) => write!(f, " until {}", t.to_rfc3339())?,
        }
        if let Some(r) = &self.reason {
            write!(f, " ({r})")?;
        }
        Ok(())
    }
}

fn list_shards(shards: &[ShardReport]) -> String {
    shards
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn opt_status(status: &Option<u16>) -> String {
    status.map_or_else(String::new, |s| format!(" (HTTP {s})"))
}

/// Every error of this crate. Variants carry the facts; [`Error::action`]
/// and [`Error::kind`] classify. Never contains an API key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The API key is not valid (400 `API_KEY_INVALID`, 401).
    #[error("invalid API key (HTTP {status}): {message}")]
    InvalidKey {
        /// HTTP status.
        status: u16,
        /// The server's message, cut and cleaned.
        message: String,
    },
    /// No key is configured.
    #[error("no API key configured ({source_name} is not set)")]
    MissingKey {
        /// Where a key was looked for (`GEMINI_API_KEY`).
        source_name: String,
    },
    /// 400 `FAILED_PRECONDITION`: the key's project cannot use the API (for
    /// example the free tier is not offered where the call comes from).
    #[error("shard unusable, failed precondition (HTTP {status}): {message}")]
    FailedPrecondition {
        /// HTTP status.
        status: u16,
        /// The server's message, cut and cleaned.
        message: String,
    },
    /// The request is invalid: every shard would refuse it the same way.
    #[error("invalid request (HTTP {status}): {message}")]
    InvalidRequest {
        /// HTTP status.
        status: u16,
        /// The server's message, cut and cleaned.
        message: String,
        /// `google.rpc.BadRequest` field violations (`field: description`).
        field_violations: Vec<String>,
    },
    /// 403: leaked key, API not enabled for the project, no permission.
    #[error("permission denied (HTTP {status}{}): {message}", reason.as_ref().map(|r| format!(", {r}")).unwrap_or_default())]
    PermissionDenied {
        /// HTTP status.
        status: u16,
        /// The `ErrorInfo` reason (`SERVICE_DISABLED`), when given.
        reason: Option<String>,
        /// The server's message, cut and cleaned.
        message: String,
    },
    /// 404: unknown model or method.
    #[error("not found (HTTP {status}): {message}")]
    NotFound {
        /// HTTP status.
        status: u16,
        /// The server's message, cut and cleaned.
        message: String,
    },
    /// 429 for a per-minute quota, or with no details: temporary.
    #[error("rate limited (HTTP {status}{}): retry in {retry_delay:?}", quota.as_ref().map(|q| format!(", quota {}", q.id)).unwrap_or_default())]
    RateLimited {
        /// HTTP status.
        status: u16,
        /// The quota hit, when reported.
        quota: Option<Box<QuotaFact>>,
        /// `RetryInfo.retryDelay`, or 60 s when absent.
        retry_delay: Duration,
        /// The server's message, cut and cleaned.
        message: String,
    },
    /// 429 for a per-day quota (or a provider's 402 insufficient balance):
    /// unusable until `until`, the next midnight America/Los_Angeles. The
    /// 429's `RetryInfo` delay is NOT the reset and is only kept as a fact.
    #[error("quota exhausted{}{}{}{}", opt_status(status), quota.as_ref().map(|q| format!(", quota {}{}", q.id, q.value.map(|v| format!(" = {v}")).unwrap_or_default())).unwrap_or_default(), until.map(|u| format!(", until {}", u.to_rfc3339())).unwrap_or_else(|| ", until topped up".into()), if message.is_empty() { String::new() } else { format!(": {message}") })]
    QuotaExhausted {
        /// HTTP status.
        status: Option<u16>,
        /// The quota hit, when reported.
        quota: Option<Box<QuotaFact>>,
        /// When the quota resets (`None`: a prepaid balance, topped up by a
        /// person).
        until: Option<DateTime<Utc>>,
        /// The 429's `RetryInfo` delay, which does not tell the reset.
        retry_delay: Option<Duration>,
        /// The server's message, cut and cleaned.
        message: String,
    },
    /// 503: the model is overloaded.
    #[error("model overloaded (HTTP {status}): {message}")]
    Overloaded {
        /// HTTP status.
        status: u16,
        /// `RetryInfo.retryDelay`, when given.
        retry_delay: Option<Duration>,
        /// The server's message, cut and cleaned.
        message: String,
    },
    /// A server error (500, 504, other 5xx, or an error in the middle of a
    /// stream with such a code).
    #[error("server error (HTTP {status}): {message}")]
    Server {
        /// HTTP status (or the `code` of an error inside a stream).
        status: u16,
        /// The server's message, cut and cleaned.
        message: String,
    },
    /// The prompt or the answer was blocked by a safety or policy filter.
    #[error("{cause}{}", message.as_ref().map(|m| format!(": {m}")).unwrap_or_default())]
    Blocked {
        /// What was blocked and why.
        cause: BlockCause,
        /// `blockReasonMessage` or `finishMessage`, when given.
        message: Option<String>,
    },
    /// The response is not an answer (never guessed at).
    #[error("malformed response: {reason}")]
    MalformedResponse {
        /// What is wrong with it.
        reason: String,
    },
    /// The body was larger than the configured cap; reading stopped.
    #[error("response body over the {limit}-byte limit")]
    BodyTooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// The call timed out.
    #[error("{} timed out after {after:?}", if *connect { "connecting" } else { "request" })]
    Timeout {
        /// The timeout that expired.
        after: Duration,
        /// Whether it was the connect timeout.
        connect: bool,
    },
    /// The connection failed or broke.
    #[error("transport error{}: {message}", if *connect { " (connect)" } else { "" })]
    Transport {
        /// What happened (no URL, no key).
        message: String,
        /// Whether the request was never sent (connect failed).
        connect: bool,
    },
    /// The configuration is invalid (bad base URL, bad model id, no shard).
    #[error("invalid configuration: {reason}")]
    Config {
        /// Why.
        reason: String,
    },
    /// No shard could serve the call and there is no fallback (or it is
    /// exhausted too). Lists every shard's state.
    #[error("all {} shards exhausted: {}{}", shards.len(), list_shards(shards), fallback.as_ref().map(|f| format!("; fallback: {f}")).unwrap_or_default())]
    AllShardsExhausted {
        /// Every shard's state.
        shards: Vec<ShardReport>,
        /// The earliest time a shard is usable again (`None`: all disabled).
        next_usable: Option<DateTime<Utc>>,
        /// Why the fallback provider did not answer, when one is configured.
        fallback: Option<String>,
    },
    /// The shard test found fewer operational shards than required.
    #[error("only {operational} of {total} shards operational, {required_percent}% required")]
    NotEnoughShards {
        /// Operational shards.
        operational: usize,
        /// All shards.
        total: usize,
        /// The required percentage.
        required_percent: u8,
    },
    /// Another language model (the pool's fallback, or any core
    /// `LanguageModel` the librarian uses) failed: its error is kept whole,
    /// with its kind, HTTP status, retry delay and action.
    #[error("{0}")]
    Model(Box<swarmbus_core::llm::ModelError>),
    /// The request was refused before it was sent: no message, a zero
    /// token cap, a last message that is not the caller's.
    #[error("invalid request: {field}: {reason}")]
    InvalidInput {
        /// The request field at fault.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// The model's answer is empty because the token cap cut it (finish
    /// reason `MAX_TOKENS`, or thinking used the whole budget): the call
    /// succeeded, but a caller that needs text cannot use it.
    #[error("empty answer: {reason}")]
    Truncated {
        /// What the model reported (stop reason, token counts).
        reason: String,
    },
    /// The quota ledger or the bus failed.
    #[error("ledger: {0}")]
    Ledger(#[source] swarmbus_core::Error),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<swarmbus_core::Error> for Error {
    /// A model's error stays a model error ([`Error::Model`]); any other
    /// core error is the ledger's (the bus).
    fn from(e: swarmbus_core::Error) -> Self {
        match e {
            swarmbus_core::Error::Model(m) => Error::Model(m),
            other => Error::Ledger(other),
        }
    }
}

/// Refuses a provider-neutral request no provider could answer, before it
/// is sent: no message, a token cap of 0.
pub(crate) fn check_request(request: &swarmbus_core::llm::CompletionRequest) -> Result<()> {
    if request.messages.iter().all(|m| m.content.is_empty()) {
        return Err(Error::InvalidInput {
            field: "messages",
            reason: "the request has no message content".into(),
        });
    }
    if request.max_output_tokens == Some(0) {
        return Err(Error::InvalidInput {
            field: "max_output_tokens",
            reason: "a token cap of 0 leaves no room for an answer".into(),
        });
    }
    Ok(())
}

/// This crate's kind for another model's error kind.
fn model_kind(kind: ModelErrorKind) -> ErrorKind {
    use ModelErrorKind as K;
    match kind {
        K::Unauthenticated => ErrorKind::InvalidKey,
        K::PermissionDenied => ErrorKind::PermissionDenied,
        K::NotFound | K::Retired => ErrorKind::NotFound,
        K::RateLimited => ErrorKind::RateLimited,
        K::QuotaExhausted | K::SpendLimit | K::Billing => ErrorKind::QuotaExhausted,
        K::Overloaded => ErrorKind::Overloaded,
        K::Blocked | K::Refused => ErrorKind::Blocked,
        K::MalformedResponse => ErrorKind::MalformedResponse,
        K::Truncated => ErrorKind::Truncated,
        K::Timeout => ErrorKind::Timeout,
        K::Connection => ErrorKind::Transport,
        K::Exhausted => ErrorKind::AllShardsExhausted,
        K::Config => ErrorKind::Config,
        K::InvalidRequest | K::RequestTooLarge | K::InvalidInput => ErrorKind::InvalidRequest,
        _ => ErrorKind::ServerError,
    }
}

/// The backoff for a server error with no delay of its own.
const SERVER_RETRY: Duration = Duration::from_secs(1);

impl Error {
    /// What to do about it.
    pub fn action(&self) -> Action {
        match self {
            Error::InvalidKey { .. }
            | Error::FailedPrecondition { .. }
            | Error::PermissionDenied { .. } => Action::Disable,
            Error::RateLimited { retry_delay, .. } => Action::Cool(*retry_delay),
            Error::QuotaExhausted { until, .. } => match until {
                Some(t) => Action::ExhaustUntil(*t),
                None => Action::Disable,
            },
            Error::Overloaded { retry_delay, .. } => {
                Action::RetryAfter(retry_delay.unwrap_or(SERVER_RETRY))
            }
            Error::Server { .. } => Action::RetryAfter(SERVER_RETRY),
            Error::Transport { .. } => Action::RetryAfter(Duration::from_millis(500)),
            Error::Timeout { .. } => Action::Rotate,
            Error::Model(m) => match m.action {
                ModelAction::Retry => Action::RetryAfter(m.retry_after.unwrap_or(SERVER_RETRY)),
                ModelAction::RetryAfter { after } => Action::RetryAfter(after),
                ModelAction::Rotate => Action::Rotate,
                ModelAction::WaitUntil { until } | ModelAction::Stop { until: Some(until) } => {
                    Action::ExhaustUntil(until)
                }
                ModelAction::Disable | ModelAction::Stop { until: None } => Action::Disable,
                _ => Action::Fail,
            },
            Error::AllShardsExhausted { next_usable, .. } => match next_usable {
                Some(t) => Action::ExhaustUntil(*t),
                None => Action::Fail,
            },
            Error::Ledger(e) => match e.retry() {
                Retry::Retry => Action::RetryAfter(SERVER_RETRY),
                Retry::After(d) => Action::RetryAfter(d),
                _ => Action::Fail,
            },
            Error::MissingKey { .. }
            | Error::InvalidRequest { .. }
            | Error::NotFound { .. }
            | Error::Blocked { .. }
            | Error::MalformedResponse { .. }
            | Error::BodyTooLarge { .. }
            | Error::Config { .. }
            | Error::InvalidInput { .. }
            | Error::Truncated { .. }
            | Error::NotEnoughShards { .. } => Action::Fail,
        }
    }

    /// The stable kind.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidKey { .. } | Error::MissingKey { .. } => ErrorKind::InvalidKey,
            Error::FailedPrecondition { .. } | Error::PermissionDenied { .. } => {
                ErrorKind::PermissionDenied
            }
            Error::InvalidRequest { .. } => ErrorKind::InvalidRequest,
            Error::NotFound { .. } => ErrorKind::NotFound,
            Error::RateLimited { .. } => ErrorKind::RateLimited,
            Error::QuotaExhausted { .. } => ErrorKind::QuotaExhausted,
            Error::Overloaded { .. } => ErrorKind::Overloaded,
            Error::Server { .. } => ErrorKind::ServerError,
            Error::Blocked { .. } => ErrorKind::Blocked,
            Error::MalformedResponse { .. } | Error::BodyTooLarge { .. } => {
                ErrorKind::MalformedResponse
            }
            Error::Timeout { .. } => ErrorKind::Timeout,
            Error::Transport { .. } => ErrorKind::Transport,
            Error::Config { .. } => ErrorKind::Config,
            Error::InvalidInput { .. } => ErrorKind::InvalidRequest,
            Error::AllShardsExhausted { .. } => ErrorKind::AllShardsExhausted,
            Error::NotEnoughShards { .. } => ErrorKind::NotEnoughShards,
            Error::Ledger(_) => ErrorKind::Ledger,
            Error::Truncated { .. } => ErrorKind::Truncated,
            Error::Model(m) => model_kind(m.kind),
        }
    }

    /// The HTTP status the error came with, if any.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::InvalidKey { status, .. }
            | Error::FailedPrecondition { status, .. }
            | Error::InvalidRequest { status, .. }
            | Error::PermissionDenied { status, .. }
            | Error::NotFound { status, .. }
            | Error::RateLimited { status, .. }
            | Error::Overloaded { status, .. }
            | Error::Server { status, .. } => Some(*status),
            Error::QuotaExhausted { status, .. } => *status,
            Error::Model(m) => m.http_status,
            _ => None,
        }
    }

    /// The quota a 429 reported, if any.
    pub fn quota(&self) -> Option<&QuotaFact> {
        match self {
            Error::RateLimited { quota, .. } | Error::QuotaExhausted { quota, .. } => {
                quota.as_deref()
            }
            _ => None,
        }
    }

    /// The quota id a 429 reported (`GenerateRequestsPerDayPerProjectPerModel-FreeTier`).
    pub fn quota_id(&self) -> Option<&str> {
        self.quota().map(|q| q.id.as_str())
    }

    /// The quota value a 429 reported (`250`).
    pub fn quota_value(&self) -> Option<u64> {
        self.quota().and_then(|q| q.value)
    }

    /// The server's retry delay (`RetryInfo.retryDelay`), if it gave one;
    /// for a rate limit with none, the 60 s default.
    pub fn retry_delay(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_delay, .. } => Some(*retry_delay),
            Error::QuotaExhausted { retry_delay, .. } | Error::Overloaded { retry_delay, .. } => {
                *retry_delay
            }
            Error::Model(m) => m.retry_after,
            _ => None,
        }
    }

    /// When the exhausted quota resets, for a per-day quota error.
    pub fn reset_at(&self) -> Option<DateTime<Utc>> {
        match self {
            Error::QuotaExhausted { until, .. } => *until,
            _ => None,
        }
    }

    /// Whether the same call may succeed later without a person acting.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.action(),
            Action::RetryAfter(_) | Action::Rotate | Action::Cool(_) | Action::ExhaustUntil(_)
        )
    }

    /// Core's [`ModelError`](swarmbus_core::llm::ModelError) for this one,
    /// for [`swarmbus_core::llm::LanguageModel`] callers: the kind, HTTP
    /// status, retry delay and action are kept (a per-day exhaustion waits
    /// until its reset; a spend-free provider has no `Stop`).
    pub fn to_model_error(&self, provider: &str, model: &str) -> swarmbus_core::llm::ModelError {
        use swarmbus_core::llm::{ModelError, ModelErrorKind as K};
        if let Error::Model(m) = self {
            // Another model's error: its own facts, unchanged.
            let mut e = ModelError::new(
                m.provider.clone(),
                m.model.clone(),
                m.kind,
                m.action,
                m.message.clone(),
            );
            e.http_status = m.http_status;
            e.retry_after = m.retry_after;
            e.request_id.clone_from(&m.request_id);
            e.served_by.clone_from(&m.served_by);
            return e;
        }
        let kind = match self.kind() {
            _ if matches!(self, Error::InvalidInput { .. }) => K::InvalidInput,
            ErrorKind::InvalidKey => K::Unauthenticated,
            ErrorKind::PermissionDenied => K::PermissionDenied,
            ErrorKind::NotFound => K::NotFound,
            ErrorKind::InvalidRequest => K::InvalidRequest,
            ErrorKind::RateLimited => K::RateLimited,
            ErrorKind::QuotaExhausted => K::QuotaExhausted,
            ErrorKind::Overloaded => K::Overloaded,
            ErrorKind::ServerError => K::ServerError,
            ErrorKind::Blocked => K::Blocked,
            ErrorKind::MalformedResponse => K::MalformedResponse,
            ErrorKind::Timeout => K::Timeout,
            ErrorKind::Transport => K::Connection,
            ErrorKind::AllShardsExhausted | ErrorKind::NotEnoughShards => K::Exhausted,
            ErrorKind::Config | ErrorKind::Ledger => K::Config,
            ErrorKind::Truncated => K::Truncated,
        };
        let action = match self.action() {
            Action::RetryAfter(after) | Action::Cool(after) => ModelAction::RetryAfter { after },
            Action::Rotate => ModelAction::Rotate,
            Action::ExhaustUntil(until) => ModelAction::WaitUntil { until },
            Action::Disable => ModelAction::Disable,
            Action::Fail => ModelAction::Fail,
        };
        let mut e = ModelError::new(provider, model, kind, action, self.to_string());
        if let Some(status) = self.http_status() {
            e = e.http_status(status);
        }
        if let Some(d) = self.retry_delay() {
            e = e.retry_after(d);
        }
        e
    }

    /// Core's error for this one (a [`swarmbus_core::Error::Model`] from
    /// `provider`; another model's error is passed on as it came).
    pub fn into_core(self, provider: &str, model: &str) -> swarmbus_core::Error {
        match self {
            Error::Model(m) => swarmbus_core::Error::Model(m),
            other => other.to_model_error(provider, model).into(),
        }
    }

    /// Classifies an HTTP error response of the Gemini API (status and
    /// body) at time `now` (which dates a per-day exhaustion).
    pub fn from_http(status: u16, body: &[u8], now: DateTime<Utc>) -> Error {
        classify(status, body, now, &Redactor::none())
    }
}

// ---------------------------------------------------------------------------
// Redaction

/// The one redaction rule of every provider (`swarmbus_core::redact`).
pub(crate) use swarmbus_core::redact::Redactor;

// ---------------------------------------------------------------------------
// The API's error body

/// `{"error": {...}}`, the body of every API error.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ApiErrorEnvelope {
    pub(crate) error: ApiError,
}

/// A `google.rpc.Status`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ApiError {
    pub(crate) code: Option<i64>,
    pub(crate) message: Option<String>,
    pub(crate) status: Option<String>,
    #[serde(deserialize_with = "details")]
    pub(crate) details: Vec<ErrorDetail>,
}

/// One `details` entry; every kind's fields in one lenient struct. Debug
/// details (`DebugInfo`) are never read: they may echo the key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct ErrorDetail {
    #[serde(rename = "@type")]
    pub(crate) type_url: Option<String>,
    /// `ErrorInfo.reason`.
    pub(crate) reason: Option<String>,
    /// `ErrorInfo.metadata`.
    pub(crate) metadata: serde_json::Map<String, serde_json::Value>,
    /// `QuotaFailure.violations`.
    pub(crate) violations: Vec<serde_json::Value>,
    /// `RetryInfo.retryDelay`.
    pub(crate) retry_delay: Option<String>,
    /// `BadRequest.fieldViolations`.
    pub(crate) field_violations: Vec<serde_json::Value>,
}

impl ErrorDetail {
    fn is(&self, name: &str) -> bool {
        self.type_url
            .as_deref()
            .is_some_and(|t| t.rsplit('/').next() == Some(name))
    }
}

fn details<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ErrorDetail>, D::Error> {
    let value = serde_json::Value::deserialize(d)?;
    Ok(match value {
        serde_json::Value::Array(items) => items
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect(),
        _ => Vec::new(),
    })
}

impl ApiErrorEnvelope {
    /// Parses an error body; `None` when it is not one.
    pub(crate) fn parse(body: &[u8]) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        Self::from_value(value)
    }

    /// Reads an error envelope out of a JSON value; `None` when it has no
    /// `error` object.
    pub(crate) fn from_value(value: serde_json::Value) -> Option<Self> {
        if !value.get("error").is_some_and(serde_json::Value::is_object) {
            return None;
        }
        serde_json::from_value(value).ok()
    }
}

impl ApiError {
    fn error_reason(&self) -> Option<&str> {
        self.details
            .iter()
            .filter(|d| d.is("google.rpc.ErrorInfo"))
            .find_map(|d| d.reason.as_deref())
    }

    fn retry_delay(&self) -> Option<Duration> {
        self.details
            .iter()
            .filter(|d| d.is("google.rpc.RetryInfo"))
            .find_map(|d| d.retry_delay.as_deref())
            .and_then(parse_proto_duration)
    }

    /// The quota violations: `QuotaFailure` entries, and Vertex AI's
    /// `ErrorInfo` metadata (`quota_limit`, `quota_limit_value`).
    fn quotas(&self) -> Vec<QuotaFact> {
        let mut out = Vec::new();
        for d in &self.details {
            if d.is("google.rpc.QuotaFailure") {
                for v in &d.violations {
                    let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
                    if let Some(id) = s("quotaId") {
                        out.push(QuotaFact {
                            id,
                            metric: s("quotaMetric"),
                            value: v.get("quotaValue").and_then(json_u64),
                            model: v
                                .get("quotaDimensions")
                                .and_then(|q| q.get("model"))
                                .and_then(|m| m.as_str())
                                .map(str::to_owned),
                        });
                    }
                }
            } else if d.is("google.rpc.ErrorInfo") {
                let m = |k: &str| {
                    d.metadata
                        .get(k)
                        .and_then(|x| x.as_str())
                        .map(str::to_owned)
                };
                if let Some(id) = m("quota_limit") {
                    out.push(QuotaFact {
                        id,
                        metric: m("quota_metric"),
                        value: d.metadata.get("quota_limit_value").and_then(json_u64),
                        model: None,
                    });
                }
            }
        }
        out
    }

    fn field_violations(&self, redact: &Redactor) -> Vec<String> {
        self.details
            .iter()
            .filter(|d| d.is("google.rpc.BadRequest"))
            .flat_map(|d| d.field_violations.iter())
            .map(|v| {
                let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default();
                redact.clean(&format!("{}: {}", s("field"), s("description")))
            })
            .collect()
    }
}

fn json_u64(v: &serde_json::Value) -> Option<u64> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
}

/// Parses a protobuf JSON duration (`"58s"`, `"45.837906927s"`), capped at
/// [`MAX_RETRY_DELAY`].
pub(crate) fn parse_proto_duration(text: &str) -> Option<Duration> {
    let number = text.trim().strip_suffix('s')?;
    let secs: f64 = number.parse().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        secs.min(MAX_RETRY_DELAY.as_secs_f64()),
    ))
}

/// Classifies an HTTP error (or an error object inside a 200 stream, whose
/// `code` stands in for the status).
pub(crate) fn classify(
    http_status: u16,
    body: &[u8],
    now: DateTime<Utc>,
    redact: &Redactor,
) -> Error {
    match ApiErrorEnvelope::parse(body) {
        Some(env) => classify_api_error(http_status, &env.error, now, redact),
        None => classify_api_error(
            http_status,
            &ApiError {
                message: Some(format!(
                    "HTTP {http_status} with a body that is not an API error"
                )),
                ..ApiError::default()
            },
            now,
            redact,
        ),
    }
}

pub(crate) fn classify_api_error(
    http_status: u16,
    error: &ApiError,
    now: DateTime<Utc>,
    redact: &Redactor,
) -> Error {
    let message = redact.clean(error.message.as_deref().unwrap_or(""));
    let rpc_status = error.status.as_deref().unwrap_or("");
    let reason = error.error_reason();
    match http_status {
        400 if reason == Some("API_KEY_INVALID") => Error::InvalidKey {
            status: http_status,
            message,
        },
        400 if rpc_status == "FAILED_PRECONDITION" => Error::FailedPrecondition {
            status: http_status,
            message,
        },
        401 => Error::InvalidKey {
            status: http_status,
            message,
        },
        403 => Error::PermissionDenied {
            status: http_status,
            reason: reason.map(|r| redact.clean(r)),
            message,
        },
        404 => Error::NotFound {
            status: http_status,
            message,
        },
        429 => {
            let quotas = error.quotas();
            let retry_delay = error.retry_delay();
            if let Some(day) = quotas.iter().find(|q| q.is_per_day()) {
                Error::QuotaExhausted {
                    status: Some(http_status),
                    quota: Some(Box::new(day.clone())),
                    until: Some(next_pacific_midnight(now)),
                    retry_delay,
                    message,
                }
            } else {
                Error::RateLimited {
                    status: http_status,
                    quota: quotas.into_iter().next().map(Box::new),
                    retry_delay: retry_delay.unwrap_or(DEFAULT_RATE_LIMIT_DELAY),
                    message,
                }
            }
        }
        503 => Error::Overloaded {
            status: http_status,
            retry_delay: error.retry_delay(),
            message,
        },
        // 499 CANCELLED (seen inside streams) and 408 are transient.
        408 | 499 | 500..=599 => Error::Server {
            status: http_status,
            message,
        },
        400..=499 => Error::InvalidRequest {
            status: http_status,
            field_violations: error.field_violations(redact),
            message,
        },
        other => Error::MalformedResponse {
            reason: format!("unexpected HTTP status {other}: {message}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn proto_durations_parse() {
        assert_eq!(parse_proto_duration("58s"), Some(Duration::from_secs(58)));
        assert_eq!(
            parse_proto_duration("0.5s"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(parse_proto_duration("58"), None);
        assert_eq!(parse_proto_duration("-1s"), None);
        assert_eq!(parse_proto_duration("1e300s"), Some(MAX_RETRY_DELAY));
    }

    #[test]
    fn the_key_is_replaced_in_server_text() {
        let key = SecretString::from("k-123-secret");
        let r = Redactor::for_key(&key);
        assert_eq!(r.clean("bad key k-123-secret\n"), "bad key [REDACTED]");
    }

    #[test]
    fn a_non_json_error_body_is_classified_by_status() {
        let now = Utc::now();
        let e = Error::from_http(503, b"<html>oops</html>", now);
        assert_eq!(e.kind(), ErrorKind::Overloaded);
        let e = Error::from_http(302, b"", now);
        assert_eq!(e.kind(), ErrorKind::MalformedResponse);
    }
}
