//! The crate's one error type, and the classification of the API's errors.
//!
//! Every error answers WHAT happened ([`Error::kind`], [`Error::http_status`],
//! [`Error::request_id`], the `anthropic-ratelimit-*` headers) and WHAT to do
//! ([`Error::action`]) without anyone parsing its message, in core's one
//! vocabulary: [`ModelErrorKind`] and [`ModelAction`] (this crate declares
//! no kinds or actions of its own). The API key never
//! appears in an error: server text is cut and any copy of the key in it is
//! replaced before it is stored.
//!
//! | HTTP / body | kind | action |
//! |---|---|---|
//! | 400 `invalid_request_error` | `invalid_request` | fail (fix the request) |
//! | 401 `authentication_error` | `unauthenticated` | disable the key |
//! | 402 `billing_error` | `billing` | disable the key (until someone pays) |
//! | 403 `permission_error` | `permission_denied` | fail |
//! | 404 `not_found_error` | `not_found` (names the model, and its replacement when the catalog knows it) | fail |
//! | 413 `request_too_large` | `request_too_large` | fail (send less) |
//! | 429 `rate_limit_error` | `rate_limited` | wait `retry-after` (60 s when absent) |
//! | 429 with `error.details.error_code = enforced_spend_limit_reached` | `spend_limit` | stop until the date the message names, else the 1st of next month 00:00 UTC |
//! | 500 `api_error`, other 5xx | `server_error` | retry with backoff and jitter, then fail over |
//! | 529 `overloaded_error` | `overloaded` | retry with backoff and jitter, then fail over |
//! | 504 `timeout_error`, client timeout | `timeout` | retry |
//! | `stop_reason: refusal` | `refused` (with category) | fail, never retry |
//! | not a Messages answer, bad SSE, stream cut before `message_stop`, body over the cap | `malformed_response` | fail (never guess) |
//! | connection refused / reset | `connection` | retry with backoff |

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, TimeZone, Utc};
use serde::Deserialize;
use swarmbus_core::{ModelAction, ModelErrorKind};

/// The wait before retrying a 429 that names none.
pub const DEFAULT_RATE_LIMIT_DELAY: Duration = Duration::from_secs(60);

/// The longest delay taken from a server (a server bug must not park a
/// client for days).
pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(24 * 3600);

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kind of an API error `type` (used for `event: error` in a stream,
/// which has no HTTP status).
pub fn kind_of_error_type(error_type: &str) -> ModelErrorKind {
    match error_type {
        "invalid_request_error" => ModelErrorKind::InvalidRequest,
        "authentication_error" => ModelErrorKind::Unauthenticated,
        "billing_error" => ModelErrorKind::Billing,
        "permission_error" => ModelErrorKind::PermissionDenied,
        "not_found_error" => ModelErrorKind::NotFound,
        "request_too_large" => ModelErrorKind::RequestTooLarge,
        "rate_limit_error" => ModelErrorKind::RateLimited,
        "overloaded_error" => ModelErrorKind::Overloaded,
        "timeout_error" => ModelErrorKind::Timeout,
        _ => ModelErrorKind::ServerError,
    }
}

fn kind_of_status(status: u16, error_type: &str) -> ModelErrorKind {
    match status {
        400 => ModelErrorKind::InvalidRequest,
        401 => ModelErrorKind::Unauthenticated,
        402 => ModelErrorKind::Billing,
        403 => ModelErrorKind::PermissionDenied,
        404 => ModelErrorKind::NotFound,
        413 => ModelErrorKind::RequestTooLarge,
        429 => ModelErrorKind::RateLimited,
        529 => ModelErrorKind::Overloaded,
        504 => ModelErrorKind::Timeout,
        408 => ModelErrorKind::Timeout,
        500..=599 if error_type == "overloaded_error" => ModelErrorKind::Overloaded,
        500..=599 => ModelErrorKind::ServerError,
        _ => ModelErrorKind::InvalidRequest,
    }
}

/// What to do about `kind` when nothing more specific is known: disable
/// the key for 401/402, wait [`DEFAULT_RATE_LIMIT_DELAY`] for a 429, retry
/// a transient fault, fail anything else.
pub fn default_action(kind: ModelErrorKind) -> ModelAction {
    match kind {
        ModelErrorKind::Unauthenticated | ModelErrorKind::Billing => ModelAction::Disable,
        ModelErrorKind::RateLimited => ModelAction::RetryAfter {
            after: DEFAULT_RATE_LIMIT_DELAY,
        },
        k if k.is_transient() => ModelAction::Retry,
        _ => ModelAction::Fail,
    }
}

/// The `anthropic-ratelimit-*` headers of a response, as sent
/// (`anthropic-ratelimit-output-tokens-remaining` → `0`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RateLimitHeaders(pub BTreeMap<String, String>);

impl RateLimitHeaders {
    /// Reads them from a response's headers.
    pub fn from_headers(headers: &reqwest::header::HeaderMap) -> Self {
        Self(
            headers
                .iter()
                .filter(|(name, _)| name.as_str().starts_with("anthropic-ratelimit-"))
                .filter_map(|(name, v)| {
                    v.to_str()
                        .ok()
                        .map(|v| (name.as_str().to_owned(), cut(v.trim(), 100)))
                })
                .collect(),
        )
    }

    /// Whether none were sent.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One header's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// When the exhausted limits reset: the latest `…-reset` among the
    /// limits whose `…-remaining` is 0 (`None` when none is exhausted). An
    /// exhausted limit whose reset does not parse waits
    /// [`DEFAULT_RATE_LIMIT_DELAY`].
    pub fn exhausted_until(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut until: Option<DateTime<Utc>> = None;
        for (name, value) in &self.0 {
            let Some(limit) = name.strip_suffix("-remaining") else {
                continue;
            };
            if value.trim().parse::<u64>().ok() != Some(0) {
                continue;
            }
            let reset = self
                .0
                .get(&format!("{limit}-reset"))
                .and_then(|r| DateTime::parse_from_rfc3339(r.trim()).ok())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| {
                    chrono::Duration::from_std(DEFAULT_RATE_LIMIT_DELAY)
                        .ok()
                        .and_then(|d| now.checked_add_signed(d))
                        .unwrap_or(now)
                });
            until = Some(until.map_or(reset, |u| u.max(reset)));
        }
        until
    }
}

/// Every error of this crate. Variants carry the facts; [`Error::kind`]
/// and [`Error::action`] classify. Never contains an API key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An HTTP error answer (or an `event: error` in a stream) of a kind
    /// with no facts beyond the message.
    #[error("{kind} ({}{error_type}): {message}", status.map(|s| format!("HTTP {s}, ")).unwrap_or_default())]
    Api {
        /// The kind.
        kind: ModelErrorKind,
        /// HTTP status (`None` for an error event in a 200 stream).
        status: Option<u16>,
        /// The API's `error.type` (`overloaded_error`).
        error_type: String,
        /// The server's message, cut and cleaned.
        message: String,
        /// The `request-id`, for support.
        request_id: Option<String>,
        /// A `retry-after` the server sent.
        retry_after: Option<Duration>,
        /// The `anthropic-ratelimit-*` headers.
        rate_limits: RateLimitHeaders,
    },
    /// 404: the model (or another resource) does not exist.
    #[error("not found (HTTP 404): model {model}{}: {message}", replacement.as_ref().map(|r| format!(" (replaced by {r})")).unwrap_or_default())]
    NotFound {
        /// The model the request named.
        model: String,
        /// Its replacement, when the model catalog knows it.
        replacement: Option<String>,
        /// The server's message.
        message: String,
        /// The `request-id`.
        request_id: Option<String>,
    },
    /// 429: rate limited; wait `retry_after`.
    #[error("rate limited (HTTP 429), retry after {}s: {message}", retry_after.as_secs())]
    RateLimited {
        /// How long to wait (`retry-after`, 60 s when absent).
        retry_after: Duration,
        /// The server's message.
        message: String,
        /// The `request-id`.
        request_id: Option<String>,
        /// The `anthropic-ratelimit-*` headers.
        rate_limits: RateLimitHeaders,
    },
    /// The client did not send: a rate limit is exhausted (its
    /// `…-remaining` header said 0) until a reset further away than the
    /// client is configured to wait.
    #[error("rate limit exhausted until {}; not sent", until.to_rfc3339())]
    RateLimitPending {
        /// When the limit resets.
        until: DateTime<Utc>,
        /// How long that is from now.
        retry_after: Duration,
    },
    /// 429 `enforced_spend_limit_reached`: the organisation's spend limit
    /// is reached; nothing helps before `until`. When the message names a
    /// moment that has already passed, `until` is `None` and the action is
    /// [`ModelAction::Retry`]: see [`spend_limit_until`].
    #[error("spend limit reached (HTTP 429); {}: {message}", spend_limit_advice(*until, *named))]
    SpendLimit {
        /// When access returns: the moment the message names while it is
        /// ahead, the 1st of next month 00:00 UTC when it names none, and
        /// `None` when the named moment has passed (retry).
        until: Option<DateTime<Utc>>,
        /// The moment the message names, if it names one.
        named: Option<DateTime<Utc>>,
        /// The server's message.
        message: String,
        /// The `request-id`.
        request_id: Option<String>,
    },
    /// The model refused (`stop_reason: refusal`): retrying cannot help.
    #[error("model {model} refused{}{}", category.as_ref().map(|c| format!(" (category {c})")).unwrap_or_default(), explanation.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    Refused {
        /// The model.
        model: String,
        /// `stop_details.category`.
        category: Option<String>,
        /// `stop_details.explanation`.
        explanation: Option<String>,
    },
    /// The model is retired: refused before sending.
    #[error("model {model} is retired{}{}; not sent", retired_on.map(|d| format!(" since {d}")).unwrap_or_default(), replacement.as_ref().map(|r| format!(", use {r}")).unwrap_or_default())]
    ModelRetired {
        /// The model.
        model: String,
        /// Its retirement date.
        retired_on: Option<NaiveDate>,
        /// Its replacement.
        replacement: Option<String>,
    },
    /// The response is not a Messages answer.
    #[error("malformed response{}: {reason}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    MalformedResponse {
        /// HTTP status.
        status: Option<u16>,
        /// What is wrong.
        reason: String,
    },
    /// The body (or one stream event) is larger than the cap; reading
    /// stopped there.
    #[error("response body over the cap of {limit} bytes")]
    BodyTooLarge {
        /// The cap.
        limit: usize,
    },
    /// The stream ended without `message_stop`.
    #[error("stream ended without message_stop after {events} events")]
    IncompleteStream {
        /// How many events arrived.
        events: usize,
    },
    /// A stream line is not UTF-8.
    #[error("stream event is not UTF-8 (byte {offset} of the stream)")]
    InvalidUtf8 {
        /// Where the line starts.
        offset: usize,
    },
    /// A stream event's data is not the JSON its type calls for.
    #[error("invalid stream event {event:?}: {reason}")]
    InvalidEvent {
        /// The event's name.
        event: String,
        /// What is wrong.
        reason: String,
    },
    /// The call timed out.
    #[error("timed out ({phase}) after {after:?}")]
    Timeout {
        /// `connect`, `read` or `request`.
        phase: &'static str,
        /// The configured timeout.
        after: Duration,
    },
    /// The connection failed.
    #[error("connection failed: {reason}")]
    Connection {
        /// What failed (no key, no URL credentials).
        reason: String,
    },
    /// No key is configured.
    #[error("no API key configured ({var} is not set)")]
    MissingKey {
        /// Where a key was looked for.
        var: String,
    },
    /// The caller's input is invalid; nothing was sent.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Which input.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// The kind, in core's vocabulary.
    pub fn kind(&self) -> ModelErrorKind {
        match self {
            Error::Api { kind, .. } => *kind,
            // A retired model answers as the API would (404, the CLI's
            // `not_found`); its `ModelError` says `retired`.
            Error::NotFound { .. } | Error::ModelRetired { .. } => ModelErrorKind::NotFound,
            Error::RateLimited { .. } | Error::RateLimitPending { .. } => {
                ModelErrorKind::RateLimited
            }
            Error::SpendLimit { .. } => ModelErrorKind::SpendLimit,
            Error::Refused { .. } => ModelErrorKind::Refused,
            Error::MalformedResponse { .. }
            | Error::BodyTooLarge { .. }
            | Error::IncompleteStream { .. }
            | Error::InvalidUtf8 { .. }
            | Error::InvalidEvent { .. } => ModelErrorKind::MalformedResponse,
            Error::Timeout { .. } => ModelErrorKind::Timeout,
            Error::Connection { .. } => ModelErrorKind::Connection,
            Error::MissingKey { .. } => ModelErrorKind::Unauthenticated,
            Error::InvalidInput { .. } => ModelErrorKind::InvalidInput,
        }
    }

    /// What to do, in core's vocabulary.
    pub fn action(&self) -> ModelAction {
        match self {
            Error::Api {
                kind, retry_after, ..
            } => match (default_action(*kind), retry_after) {
                (ModelAction::Retry, Some(d)) => ModelAction::RetryAfter { after: *d },
                (a, _) => a,
            },
            Error::RateLimited { retry_after, .. }
            | Error::RateLimitPending { retry_after, .. } => ModelAction::RetryAfter {
                after: *retry_after,
            },
            Error::SpendLimit { until, .. } => match until {
                Some(t) => ModelAction::Stop { until: Some(*t) },
                None => ModelAction::Retry,
            },
            Error::MissingKey { .. } => ModelAction::Disable,
            other => default_action(other.kind()),
        }
    }

    /// The HTTP status, when the server answered with one.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => *status,
            Error::MalformedResponse { status, .. } => *status,
            Error::NotFound { .. } => Some(404),
            Error::RateLimited { .. } | Error::SpendLimit { .. } => Some(429),
            _ => None,
        }
    }

    /// How long to wait before retrying, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.action() {
            ModelAction::RetryAfter { after } => Some(after),
            _ => None,
        }
    }

    /// The `request-id` of the failed call.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Error::Api { request_id, .. }
            | Error::NotFound { request_id, .. }
            | Error::RateLimited { request_id, .. }
            | Error::SpendLimit { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// The `anthropic-ratelimit-*` headers, when the error came with them.
    pub fn rate_limits(&self) -> Option<&RateLimitHeaders> {
        match self {
            Error::Api { rate_limits, .. } | Error::RateLimited { rate_limits, .. } => {
                Some(rate_limits)
            }
            _ => None,
        }
    }

    /// Whether the client's own retry loop may try again (server errors,
    /// overload, timeouts, connection failures, a lifted spend limit).
    pub fn is_retryable(&self) -> bool {
        matches!(self.action(), ModelAction::Retry)
            || matches!(self, Error::Api { kind, .. } if kind.is_transient())
    }

    /// Whether a fallback model may serve the call instead (overload and
    /// server errors, after the retries).
    pub fn allows_failover(&self) -> bool {
        self.kind().allows_fallback()
    }

    /// Core's [`ModelError`](swarmbus_core::ModelError) for this error, for
    /// a call to `model`: the kind, action, HTTP status, retry delay and
    /// request id are copied out, and the error itself is kept as the
    /// `source` (its text is cleaned: no key reaches it).
    pub fn into_model_error(self, model: &str) -> swarmbus_core::ModelError {
        let kind = match &self {
            Error::ModelRetired { .. } => ModelErrorKind::Retired,
            other => other.kind(),
        };
        let mut e = swarmbus_core::ModelError::new(
            crate::span::PROVIDER_NAME,
            model,
            kind,
            self.action(),
            self.to_string(),
        );
        e.http_status = self.http_status();
        e.retry_after = self.retry_after();
        e.request_id = self.request_id().map(str::to_owned);
        e.source(self)
    }

    /// Reads an HTTP error answer.
    pub fn from_http(
        status: u16,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
        model: &str,
        now: DateTime<Utc>,
        redact: &Redactor,
    ) -> Self {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| cut(v.trim(), 100))
        };
        let retry_after = header("retry-after").and_then(|v| parse_retry_after(&v));
        let rate_limits = RateLimitHeaders::from_headers(headers);
        let envelope = ErrorEnvelope::parse(body);
        let request_id = envelope
            .as_ref()
            .and_then(|e| e.request_id.clone())
            .or_else(|| header("request-id"))
            .map(|r| redact.clean(&r));
        let Some(env) = envelope else {
            let kind = kind_of_status(status, "");
            if !(400..600).contains(&status) {
                return Error::MalformedResponse {
                    status: Some(status),
                    reason: "unexpected HTTP status".into(),
                };
            }
            return Error::Api {
                kind,
                status: Some(status),
                error_type: String::new(),
                message: format!("HTTP {status} with a body that is not an API error"),
                request_id,
                retry_after,
                rate_limits,
            };
        };
        let message = redact.clean(env.error.message.as_deref().unwrap_or(""));
        let error_type = redact.clean(env.error.kind.as_deref().unwrap_or(""));
        let error_code = env
            .error
            .details
            .as_ref()
            .and_then(|d| d.get("error_code"))
            .and_then(|c| c.as_str());
        match kind_of_status(status, &error_type) {
            ModelErrorKind::RateLimited if error_code == Some("enforced_spend_limit_reached") => {
                Error::SpendLimit {
                    until: spend_limit_until(&message, now),
                    named: named_date(&message),
                    message,
                    request_id,
                }
            }
            ModelErrorKind::RateLimited => Error::RateLimited {
                retry_after: retry_after.unwrap_or(DEFAULT_RATE_LIMIT_DELAY),
                message,
                request_id,
                rate_limits,
            },
            ModelErrorKind::NotFound => Error::NotFound {
                model: cut(model, 128),
                replacement: None,
                message,
                request_id,
            },
            kind => Error::Api {
                kind,
                status: Some(status),
                error_type,
                message,
                request_id,
                retry_after,
                rate_limits,
            },
        }
    }

    /// Reads an `event: error` that arrived in a 200 stream.
    pub(crate) fn from_stream_event(data: &serde_json::Value, redact: &Redactor) -> Self {
        let error = data.get("error");
        let s = |k: &str| {
            error
                .and_then(|e| e.get(k))
                .and_then(|v| v.as_str())
                .map(|v| redact.clean(v))
                .unwrap_or_default()
        };
        let error_type = s("type");
        Error::Api {
            kind: kind_of_error_type(&error_type),
            status: None,
            message: s("message"),
            error_type,
            request_id: data
                .get("request_id")
                .and_then(|v| v.as_str())
                .map(|v| redact.clean(v)),
            retry_after: None,
            rate_limits: RateLimitHeaders::default(),
        }
    }
}

/// `retry-after` in seconds (an integer or a decimal), capped at
/// [`MAX_RETRY_DELAY`].
pub fn parse_retry_after(text: &str) -> Option<Duration> {
    let secs: f64 = text.trim().parse().ok()?;
    if !secs.is_finite() || secs < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        secs.min(MAX_RETRY_DELAY.as_secs_f64()),
    ))
}

/// When a spend limit lifts, as of `now` (the client's clock).
///
/// - The message names a moment (the first `YYYY-MM-DD`, with `at HH:MM`
///   when given, UTC) still ahead of `now`: stop until then.
/// - It names a moment at or before `now`: `None`, the limit is lifted, try
///   again. The server's own word is that access returns at that moment, and
///   it has come: most often the two clocks disagree by a little, or the
///   message was written before the reset. Stopping until the month after
///   would idle the swarm for weeks on a limit nobody stated, while a retry
///   costs one request, goes through the client's bounded backoff, and a
///   limit still in force answers with a fresh date.
/// - It names none: the limit is the monthly one, stop until the first day
///   of the next month, 00:00 UTC.
pub fn spend_limit_until(message: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match named_date(message) {
        Some(t) if t > now => Some(t),
        Some(_) => None,
        None => Some(first_of_next_month(now)),
    }
}

/// The advice in a spend-limit error's message.
fn spend_limit_advice(until: Option<DateTime<Utc>>, named: Option<DateTime<Utc>>) -> String {
    match (until, named) {
        (Some(t), _) => format!("stop until {}", t.to_rfc3339()),
        (None, Some(n)) => format!(
            "the message says access returned at {}, which has passed: retry",
            n.to_rfc3339()
        ),
        (None, None) => "retry".to_owned(),
    }
}

/// The first day of the month after `now`'s, 00:00 UTC.
pub fn first_of_next_month(now: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if now.month() == 12 {
        (now.year().saturating_add(1), 1)
    } else {
        (now.year(), now.month() + 1)
    };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .unwrap_or(now)
}

fn named_date(message: &str) -> Option<DateTime<Utc>> {
    let bytes = message.as_bytes();
    let shape = |w: &[u8]| {
        w.len() == 10
            && w.iter().enumerate().all(|(i, b)| match i {
                4 | 7 => *b == b'-',
                _ => b.is_ascii_digit(),
            })
    };
    let start = (0..bytes.len().saturating_sub(9)).find(|&i| {
        bytes.get(i..i + 10).is_some_and(shape)
            && (i == 0 || bytes.get(i - 1).is_some_and(|b| !b.is_ascii_digit()))
    })?;
    let date = NaiveDate::parse_from_str(message.get(start..start + 10)?, "%Y-%m-%d").ok()?;
    let rest = message.get(start + 10..).unwrap_or("");
    let time = rest
        .trim_start()
        .strip_prefix("at ")
        .and_then(|r| r.trim_start().get(..5))
        .and_then(|hm| NaiveTime::parse_from_str(hm, "%H:%M").ok())
        .unwrap_or(NaiveTime::MIN);
    Some(Utc.from_utc_datetime(&date.and_time(time)))
}

/// The one redaction rule of every provider (`swarmbus_core::redact`).
pub use swarmbus_core::redact::Redactor;

fn cut(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        s.to_owned()
    } else {
        let mut out: String = s.chars().take(max_chars).collect();
        out.push('…');
        out
    }
}

/// `{"type": "error", "error": {"type", "message", "details"}, "request_id"}`.
#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: ApiError,
    #[serde(default)]
    request_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ApiError {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    details: Option<serde_json::Value>,
}

impl ErrorEnvelope {
    fn parse(body: &[u8]) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_slice(body).ok()?;
        if !value.get("error").is_some_and(serde_json::Value::is_object) {
            return None;
        }
        serde_json::from_value(value).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn the_spend_limit_lifts_on_the_named_date() {
        let m = "You will regain access on 2026-12-01 at 00:00 UTC.";
        assert_eq!(
            spend_limit_until(m, t("2026-11-29T11:00:00Z")),
            Some(t("2026-12-01T00:00:00Z"))
        );
        let m = "You will regain access on 2027-01-15 at 09:30 UTC.";
        assert_eq!(
            spend_limit_until(m, t("2026-11-29T11:00:00Z")),
            Some(t("2027-01-15T09:30:00Z"))
        );
    }

    #[test]
    fn a_named_moment_one_second_ahead_stops_and_at_or_past_it_retries() {
        let m = "You will regain access on 2026-12-01 at 00:00 UTC.";
        assert_eq!(
            spend_limit_until(m, t("2026-11-30T23:59:59Z")),
            Some(t("2026-12-01T00:00:00Z"))
        );
        assert_eq!(spend_limit_until(m, t("2026-12-01T00:00:00Z")), None);
        assert_eq!(spend_limit_until(m, t("2031-12-02T00:00:00Z")), None);
    }

    #[test]
    fn without_a_date_the_spend_limit_lifts_on_the_first_of_next_month() {
        assert_eq!(
            spend_limit_until("limit reached", t("2026-11-29T11:00:00Z")),
            Some(t("2026-12-01T00:00:00Z"))
        );
        assert_eq!(
            spend_limit_until("limit reached", t("2026-12-31T23:59:59Z")),
            Some(t("2027-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn a_lifted_spend_limit_says_retry_and_names_the_passed_moment() {
        let e = Error::SpendLimit {
            until: None,
            named: Some(t("2026-12-01T00:00:00Z")),
            message: "m".into(),
            request_id: None,
        };
        assert_eq!(e.action(), ModelAction::Retry);
        assert!(
            e.to_string()
                .contains("2026-12-01T00:00:00+00:00, which has passed: retry")
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_caps_them() {
        assert_eq!(parse_retry_after("17"), Some(Duration::from_secs(17)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_retry_after("1e300"), Some(MAX_RETRY_DELAY));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-3"), None);
    }

    #[test]
    fn the_key_is_replaced_in_server_text() {
        let r = Redactor::for_key(&SecretString::from("fake-anthropic-secret-123"));
        assert_eq!(
            r.clean("bad key fake-anthropic-secret-123\n"),
            "bad key [REDACTED]"
        );
    }
}
