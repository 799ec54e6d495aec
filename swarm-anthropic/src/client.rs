//! The Messages API client.
//!
//! - `POST {base}/v1/messages` with `anthropic-version: 2026-10-21`
//!   ([`API_VERSION`]); the key goes in `x-api-key` only (a header marked
//!   sensitive), never in a URL, a log line, `Debug` or an error.
//! - The base URL defaults to [`DEFAULT_BASE_URL`] and is overridden by
//!   configuration or `ANTHROPIC_BASE_URL` (a local mock in tests).
//! - Connect and read timeouts (and a whole-request timeout for
//!   non-streaming calls); a cap on the bytes read from any body or stream
//!   event, checked while reading.
//! - Parameters that API version `2026-10-21` removed (`temperature`,
//!   `top_p`, `top_k`) are DROPPED with a warning before sending: the
//!   swarm's provider-neutral requests may carry a temperature for other
//!   providers, and a call should not fail for a hint Claude no longer
//!   takes. Message shapes the version refuses (a `document` block in an
//!   assistant turn, citations on a user text block) are refused before
//!   sending with [`Error::InvalidInput`]: dropping them would change what
//!   the conversation says.
//! - While an `anthropic-ratelimit-*-remaining` header says 0 (or after a
//!   429 with `retry-after`), the next request waits for the reset instead
//!   of collecting 429s; a reset further away than
//!   [`ClientConfig::max_rate_limit_wait`] fails fast with
//!   [`Error::RateLimitPending`].
//! - [`AnthropicClient::send`] retries server errors, overload, timeouts and
//!   connection failures with exponential backoff and full jitter, then
//!   fails over to the configured fallback models: core's one retry policy
//!   ([`swarmbus_core::retry::Backoff`]) decides, the client sleeps.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, StreamExt};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use swarmbus_core::clock::{Clock, SharedClock, SystemClock};
use swarmbus_core::llm::{LifecycleVerdict, ModelCatalog};
use swarmbus_core::provider_env::ProviderEnv;
use swarmbus_core::retry::{Attempt, Backoff, Change, Decision, Failure, Jitter, RetryPolicy};
use tracing::Instrument;

use crate::error::{Error, RateLimitHeaders, Redactor, Result};
use crate::span::CallSpan;
use crate::sse::{DEFAULT_MAX_EVENT_BYTES, SseEvent, SseParser, StreamAccumulator, StreamUpdate};
use crate::wire::{MessagesRequest, MessagesResponse, Role};

/// The Claude API.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// The `anthropic-version` this client speaks.
pub const API_VERSION: &str = "2026-10-21";

/// The environment variable that overrides the base URL.
pub const BASE_URL_VAR: &str = "ANTHROPIC_BASE_URL";

/// The environment variable of the key.
pub const API_KEY_VAR: &str = "ANTHROPIC_API_KEY";

/// Where the key and the base URL override are read from.
const ENV: ProviderEnv = ProviderEnv::new(API_KEY_VAR, BASE_URL_VAR);

/// The model used when none is configured (the coordinator tier's).
pub const DEFAULT_MODEL: &str = "claude-sonnet-5-5";

/// A request as sent: the caller's request, borrowed, with `stream` set.
#[derive(serde::Serialize)]
struct Outgoing<'a> {
    #[serde(flatten)]
    request: &'a MessagesRequest,
    stream: bool,
}

/// How the client connects and retries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Scheme, host, optional port and path prefix.
    pub base_url: String,
    /// The model for provider-neutral calls.
    pub model: String,
    /// Models tried, in order, when the model is overloaded or failing
    /// after the retries.
    pub fallback_models: Vec<String>,
    /// Output tokens asked for when a provider-neutral request names none.
    pub default_max_tokens: u32,
    /// Provider-neutral requests asking for more output tokens than this
    /// stream (default 16,384): long generations are refused without it.
    pub stream_above_max_tokens: u32,
    /// Connect timeout (default 10 s).
    pub connect_timeout: Duration,
    /// Longest silence while reading a response or a stream (default 120 s).
    pub read_timeout: Duration,
    /// Whole-request timeout of a non-streaming call (default 600 s).
    pub request_timeout: Duration,
    /// Largest body read, and largest stream event (default 16 MiB).
    pub max_body_bytes: usize,
    /// Retries of a retryable failure, per model (default 2).
    pub max_retries: u32,
    /// First backoff delay (default 500 ms), doubled per retry.
    pub backoff_base: Duration,
    /// Longest backoff delay (default 8 s).
    pub backoff_cap: Duration,
    /// Longest wait for an exhausted rate limit to reset before a request
    /// (default 60 s); a longer one fails fast.
    pub max_rate_limit_wait: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            model: DEFAULT_MODEL.to_owned(),
            fallback_models: Vec::new(),
            default_max_tokens: 4096,
            stream_above_max_tokens: 16_384,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(600),
            max_body_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_retries: 2,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(8),
            max_rate_limit_wait: Duration::from_secs(60),
        }
    }
}

impl ClientConfig {
    /// The defaults, with the base URL from `ANTHROPIC_BASE_URL` when set.
    pub fn from_env() -> Self {
        Self {
            base_url: ENV.base_url_or(DEFAULT_BASE_URL),
            ..Self::default()
        }
    }

    /// Sets the base URL.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// Sets the model.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// Sets the fallback models.
    pub fn fallback_models(mut self, models: Vec<String>) -> Self {
        self.fallback_models = models;
        self
    }

    /// Sets the connect and read timeouts.
    pub fn timeouts(mut self, connect: Duration, read: Duration) -> Self {
        self.connect_timeout = connect;
        self.read_timeout = read;
        self
    }

    /// Sets the whole-request timeout of non-streaming calls.
    pub fn request_timeout(mut self, t: Duration) -> Self {
        self.request_timeout = t;
        self
    }

    /// Sets the body cap.
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// Sets the retries per model and the backoff (first delay, cap).
    pub fn retries(mut self, max_retries: u32, base: Duration, cap: Duration) -> Self {
        self.max_retries = max_retries;
        self.backoff_base = base;
        self.backoff_cap = cap;
        self
    }

    /// Sets the longest wait for a rate-limit reset.
    pub fn max_rate_limit_wait(mut self, d: Duration) -> Self {
        self.max_rate_limit_wait = d;
        self
    }

    fn checked_base(&self) -> Result<String> {
        let bad = |reason: String| Error::InvalidInput {
            field: "base URL",
            reason,
        };
        let url = reqwest::Url::parse(self.base_url.trim())
            .map_err(|e| bad(format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad(format!(
                "scheme must be http or https, not {}",
                url.scheme()
            )));
        }
        if url.query().is_some()
            || url.fragment().is_some()
            || url.password().is_some()
            || !url.username().is_empty()
        {
            return Err(bad("must not carry a query, fragment or credentials".into()));
        }
        Ok(url.as_str().trim_end_matches('/').to_owned())
    }
}

/// Checks a model id: letters, digits, `-`, `.`, `_`, `:`, `@`, at most 128
/// bytes.
pub fn check_model_id(model: &str) -> Result<()> {
    if model.is_empty()
        || model.len() > 128
        || !model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':' | b'@'))
    {
        return Err(Error::InvalidInput {
            field: "model",
            reason: format!(
                "invalid model id {:?}",
                model.chars().take(64).collect::<String>()
            ),
        });
    }
    Ok(())
}

/// A Claude Messages API client holding one key. Cloning shares the
/// connection pool and the rate-limit state.
#[derive(Clone)]
pub struct AnthropicClient {
    http: reqwest::Client,
    headers: HeaderMap,
    url: String,
    config: ClientConfig,
    redact: Redactor,
    /// No request before this time (an exhausted rate limit).
    paused_until: Arc<Mutex<Option<DateTime<Utc>>>>,
    /// Model lifecycles (none: no check; the API's own 404 says what
    /// happened).
    catalog: Option<Arc<dyn ModelCatalog>>,
    /// Reads the time for every decision by date (rate-limit resets,
    /// spend-limit dates, model lifecycles) and waits for resets.
    clock: SharedClock,
}

impl fmt::Debug for AnthropicClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnthropicClient")
            .field("url", &self.url)
            .field("model", &self.config.model)
            .field("api_version", &API_VERSION)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

impl AnthropicClient {
    /// A client for `key` with `config`.
    pub fn new(key: SecretString, config: ClientConfig) -> Result<Self> {
        let base = config.checked_base()?;
        if key.expose_secret().trim().is_empty() {
            return Err(Error::MissingKey {
                var: "the configured key (empty)".into(),
            });
        }
        let mut value =
            HeaderValue::from_str(key.expose_secret().trim()).map_err(|_| Error::InvalidInput {
                field: "API key",
                reason: "holds characters not allowed in an HTTP header".into(),
            })?;
        value.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("x-api-key", value);
        headers.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .user_agent(concat!("swarmbus-anthropic/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Connection {
                reason: format!("cannot build the HTTP client: {}", error_chain(&e)),
            })?;
        Ok(Self {
            http,
            headers,
            url: format!("{base}/v1/messages"),
            config,
            redact: Redactor::for_key(&key),
            paused_until: Arc::new(Mutex::new(None)),
            catalog: None,
            clock: Arc::new(SystemClock),
        })
    }

    /// A client for `ANTHROPIC_API_KEY`, with `ANTHROPIC_BASE_URL` when set.
    pub fn from_env() -> Result<Self> {
        let key = ENV.key().map_err(|e| Error::MissingKey { var: e.var })?;
        Self::new(key, ClientConfig::from_env())
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The endpoint (`{base}/v1/messages`).
    pub fn endpoint(&self) -> &str {
        &self.url
    }

    /// Checks every model against `catalog` before sending: a retired
    /// model is refused with its replacement named, a deprecated one warned
    /// about, and a 404 names the replacement.
    pub fn with_catalog(mut self, catalog: Arc<dyn ModelCatalog>) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Core's lifecycle check on the clock's today: a retired model is
    /// refused with its replacement named, a deprecated one warned about.
    fn check_lifecycle(&self, model: &str) -> Result<()> {
        match LifecycleVerdict::of(self.catalog.as_deref(), model, self.clock.today()) {
            LifecycleVerdict::Retired(life) => Err(Error::ModelRetired {
                model: model.to_owned(),
                retired_on: life.retires_on,
                replacement: life.replacement,
            }),
            LifecycleVerdict::Deprecated(life) => {
                let retires_on = life.retires_on.map(|d| d.to_string());
                let replacement = life.replacement.as_deref();
                tracing::warn!(model, retires_on, replacement, "model is deprecated");
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Adds the replacement the catalog knows to a 404 about a model.
    fn name_replacement(&self, e: Error) -> Error {
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
                    .and_then(|c| c.lifecycle(&model, self.clock.today()))
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

    /// Reads the time from `clock` (the system clock by default): the
    /// date a spend limit lifts, a rate limit's reset and a model's
    /// lifecycle are decided on it, and waits for a reset sleep on it.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// When the next request may go out, if a rate limit is exhausted.
    pub fn paused_until(&self) -> Option<DateTime<Utc>> {
        let guard = self.paused_until.lock().ok()?;
        (*guard).filter(|t| *t > self.clock.now())
    }

    fn pause_until(&self, until: DateTime<Utc>) {
        if let Ok(mut guard) = self.paused_until.lock() {
            *guard = Some(guard.map_or(until, |t| t.max(until)));
        }
    }

    /// Waits for an exhausted rate limit to reset, or fails fast when the
    /// reset is further away than the configured wait.
    async fn wait_for_rate_limit(&self) -> Result<()> {
        let Some(until) = self.paused_until() else {
            return Ok(());
        };
        let wait = (until - self.clock.now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        if wait > self.config.max_rate_limit_wait {
            return Err(Error::RateLimitPending {
                until,
                retry_after: wait,
            });
        }
        tracing::info!(
            wait_ms = wait.as_millis() as u64,
            "anthropic rate limit exhausted: waiting for its reset"
        );
        self.clock.sleep(wait).await;
        Ok(())
    }

    fn note_limits(&self, headers: &HeaderMap, status: u16) {
        let now = self.clock.now();
        if let Some(until) = RateLimitHeaders::from_headers(headers).exhausted_until(now)
            && until > now
        {
            self.pause_until(until);
        }
        if status == 429
            && let Some(d) = headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(crate::error::parse_retry_after)
            && let Ok(d) = chrono::Duration::from_std(d)
            && let Some(t) = now.checked_add_signed(d)
        {
            self.pause_until(t);
        }
    }

    /// Checks a request and prepares the body to send: model id, lifecycle
    /// (a retired model is refused before sending), input limits, removed
    /// parameters dropped, shapes the API version refuses refused.
    fn prepare(&self, request: &MessagesRequest, stream: bool) -> Result<Vec<u8>> {
        check_model_id(&request.model)?;
        self.check_lifecycle(&request.model)?;
        if request.max_tokens == 0 {
            return Err(Error::InvalidInput {
                field: "max_tokens",
                reason: "must be at least 1".into(),
            });
        }
        if request.messages.is_empty() {
            return Err(Error::InvalidInput {
                field: "messages",
                reason: "at least one message is required".into(),
            });
        }
        if request.messages.first().map(|m| m.role) != Some(Role::User) {
            tracing::debug!("the first message is not the user's; the API may refuse it");
        }
        if let Some(reason) = request.version_conflict() {
            return Err(Error::InvalidInput {
                field: "messages",
                reason: format!("{reason} is refused by anthropic-version {API_VERSION}"),
            });
        }
        // The common case sends the request as it is, with `stream` set,
        // without copying it; a copy only when something must be dropped.
        if request.stream.is_none()
            && !request.has_removed_parameters()
            && !request.extra.contains_key("stream")
        {
            return serde_json::to_vec(&Outgoing { request, stream }).map_err(|e| {
                Error::InvalidInput {
                    field: "request",
                    reason: format!("does not serialise: {e}"),
                }
            });
        }
        let mut body = request.clone();
        let dropped = body.strip_removed_parameters();
        if !dropped.is_empty() {
            tracing::warn!(
                dropped = ?dropped,
                api_version = API_VERSION,
                "dropping sampling parameters this API version removed"
            );
        }
        body.stream = Some(stream);
        serde_json::to_vec(&body).map_err(|e| Error::InvalidInput {
            field: "request",
            reason: format!("does not serialise: {e}"),
        })
    }

    async fn post(&self, body: Vec<u8>, stream: bool) -> Result<reqwest::Response> {
        self.wait_for_rate_limit().await?;
        let mut req = self
            .http
            .post(&self.url)
            .headers(self.headers.clone())
            .body(body);
        if stream {
            req = req.header(reqwest::header::ACCEPT, "text/event-stream");
        } else {
            req = req.timeout(self.config.request_timeout);
        }
        let response = req.send().await.map_err(|e| self.transport(e))?;
        self.note_limits(response.headers(), response.status().as_u16());
        Ok(response)
    }

    fn transport(&self, e: reqwest::Error) -> Error {
        transport_error(e, &self.config, &self.redact)
    }

    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>> {
        let limit = self.config.max_body_bytes;
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return Err(Error::BodyTooLarge { limit });
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(e))? {
            if body.len().saturating_add(chunk.len()) > limit {
                return Err(Error::BodyTooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    async fn http_error(&self, response: reqwest::Response, model: &str) -> Error {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        match self.read_body(response).await {
            Ok(body) => self.name_replacement(Error::from_http(
                status,
                &headers,
                &body,
                model,
                self.clock.now(),
                &self.redact,
            )),
            Err(e) => e,
        }
    }

    /// One non-streaming call, no retries, in its GenAI span: the answer,
    /// or the error that says why not.
    pub async fn create_message(&self, request: &MessagesRequest) -> Result<MessagesResponse> {
        let span = CallSpan::start(request);
        let result = self
            .create_once(request)
            .instrument(span.span().clone())
            .await;
        span.finish(&result);
        result
    }

    async fn create_once(&self, request: &MessagesRequest) -> Result<MessagesResponse> {
        let body = self.prepare(request, false)?;
        let response = self.post(body, false).await?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(self.http_error(response, &request.model).await);
        }
        let body = self.read_body(response).await?;
        decode_response(&body, status)
    }

    /// One streaming call, no retries: the stream of updates. An HTTP error
    /// fails here; an error in the middle of the stream comes from
    /// [`MessageStream::next_update`]. The call's GenAI span closes when the
    /// stream fails or [`MessageStream::finish`] is called.
    pub async fn stream_message(&self, request: &MessagesRequest) -> Result<MessageStream> {
        let span = CallSpan::start(request);
        match self
            .stream_once(request)
            .instrument(span.span().clone())
            .await
        {
            Ok(mut stream) => {
                stream.span = Some(span);
                Ok(stream)
            }
            Err(e) => {
                span.fail(&e);
                Err(e)
            }
        }
    }

    async fn stream_once(&self, request: &MessagesRequest) -> Result<MessageStream> {
        let body = self.prepare(request, true)?;
        let response = self.post(body, true).await?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(self.http_error(response, &request.model).await);
        }
        let is_sse = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.starts_with("text/event-stream"));
        if !is_sse {
            // A JSON body where a stream was asked for: decode it as one
            // answer rather than fail to find events in it.
            let body = self.read_body(response).await?;
            return Ok(MessageStream::whole(decode_response(&body, status)?));
        }
        let bytes = response.bytes_stream().boxed();
        Ok(MessageStream {
            bytes: Some(bytes),
            parser: SseParser::new(self.config.max_body_bytes),
            acc: StreamAccumulator::redacting(self.redact.clone()),
            pending: std::collections::VecDeque::new(),
            config: self.config.clone(),
            redact: self.redact.clone(),
            done: None,
            span: None,
        })
    }

    /// Streams one call (no retries) and collects the answer, in its GenAI
    /// span.
    pub async fn stream_collect(&self, request: &MessagesRequest) -> Result<MessagesResponse> {
        let span = CallSpan::start(request);
        let result = self
            .collect_once(request)
            .instrument(span.span().clone())
            .await;
        span.finish(&result);
        result
    }

    async fn collect_once(&self, request: &MessagesRequest) -> Result<MessagesResponse> {
        let mut stream = self.stream_once(request).await?;
        while let Some(update) = stream.next_update().await {
            update?;
        }
        stream.finish()
    }

    /// The call with retries, failover and a GenAI tracing span: retryable
    /// failures (server error, overload, timeout, connection) are retried
    /// with exponential backoff and full jitter, then the fallback models
    /// are tried in order. The answer's `model` says who served it.
    pub async fn send(&self, request: &MessagesRequest, stream: bool) -> Result<MessagesResponse> {
        let span = CallSpan::start(request);
        let result = self
            .send_inner(request, stream)
            .instrument(span.span().clone())
            .await;
        span.finish(&result);
        result
    }

    /// The call's retry policy (core's one [`Backoff`]): this client's
    /// retries of transient faults per model with capped exponential
    /// backoff and full jitter (at least the server's delay), then the next
    /// fallback model for a kind that allows one; a rate limit is not
    /// retried here (the next request waits for its reset).
    fn retry_policy(&self) -> Backoff {
        Backoff::new(self.config.backoff_base, self.config.backoff_cap)
            .max_retries(self.config.max_retries)
            .jitter(Jitter::Full, rand::random())
            .retry_named_waits(false)
            .fallback(true)
    }

    async fn send_inner(
        &self,
        request: &MessagesRequest,
        stream: bool,
    ) -> Result<MessagesResponse> {
        let mut fallbacks = self
            .config
            .fallback_models
            .iter()
            .filter(|m| **m != request.model);
        let mut policy = self.retry_policy();
        let mut req = request.clone();
        let mut retries: u32 = 0;
        loop {
            let result = if stream {
                self.collect_once(&req).await
            } else {
                self.create_once(&req).await
            };
            let e = match result {
                Ok(r) => {
                    policy.succeeded();
                    return Ok(r);
                }
                Err(e) => e,
            };
            let failure = Failure::new(e.action())
                .with_retry_after(e.retry_after())
                .with_kind(e.kind());
            match policy.decide(&Attempt::new(failure, retries).at(self.clock.now())) {
                Decision::Retry {
                    wait,
                    change: Change::Same,
                } => {
                    retries += 1;
                    tracing::info!(
                        model = %req.model,
                        kind = %e.kind(),
                        attempt = retries,
                        delay_ms = wait.as_millis() as u64,
                        "anthropic: retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
                Decision::Retry { .. } => {
                    let Some(next) = fallbacks.next() else {
                        return Err(e);
                    };
                    tracing::warn!(
                        from = %request.model,
                        to = %next,
                        "anthropic: failing over to a fallback model"
                    );
                    req.model.clone_from(next);
                    retries = 0;
                }
                _ => return Err(e),
            }
        }
    }
}

/// Decodes a non-streaming body.
pub fn decode_response(body: &[u8], status: u16) -> Result<MessagesResponse> {
    let malformed = |reason: String| Error::MalformedResponse {
        status: Some(status),
        reason,
    };
    // Straight into the typed answer (no intermediate JSON tree); `type`
    // lands in the answer's `extra` fields and must say `message`.
    let msg: MessagesResponse = serde_json::from_slice(body).map_err(|e| {
        if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() {
            malformed(format!("body is not JSON ({e})"))
        } else {
            malformed(format!("not a Messages answer ({e})"))
        }
    })?;
    if msg.extra.get("type").and_then(|t| t.as_str()) != Some("message") {
        return Err(malformed("body is not a message".into()));
    }
    if msg.stop_reason.is_none() {
        return Err(malformed("the answer has no stop_reason".into()));
    }
    Ok(msg)
}

/// A streaming answer: updates as they arrive, then the whole answer.
pub struct MessageStream {
    bytes: Option<BoxStream<'static, reqwest::Result<Bytes>>>,
    parser: SseParser,
    acc: StreamAccumulator,
    pending: std::collections::VecDeque<SseEvent>,
    config: ClientConfig,
    redact: Redactor,
    /// An answer that came whole (a JSON body).
    done: Option<MessagesResponse>,
    /// The call's span, when the stream was opened on its own (not inside
    /// [`AnthropicClient::send`]).
    span: Option<CallSpan>,
}

impl fmt::Debug for MessageStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessageStream")
            .field("complete", &self.acc.is_complete())
            .finish_non_exhaustive()
    }
}

impl MessageStream {
    fn whole(msg: MessagesResponse) -> Self {
        Self {
            bytes: None,
            parser: SseParser::new(0),
            acc: StreamAccumulator::new(),
            pending: std::collections::VecDeque::new(),
            config: ClientConfig::default(),
            redact: Redactor::none(),
            done: Some(msg),
            span: None,
        }
    }

    /// The next update; `None` when the stream is over (then call
    /// [`MessageStream::finish`]).
    pub async fn next_update(&mut self) -> Option<Result<StreamUpdate>> {
        let update = self.next_inner().await;
        if let Some(Err(e)) = &update
            && let Some(span) = self.span.take()
        {
            span.fail(e);
        }
        update
    }

    async fn next_inner(&mut self) -> Option<Result<StreamUpdate>> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                match self.acc.apply(&ev) {
                    Ok(StreamUpdate::Nothing) => continue,
                    other => return Some(other),
                }
            }
            let bytes = self.bytes.as_mut()?;
            let mut events = Vec::new();
            match bytes.next().await {
                Some(Ok(chunk)) => {
                    if let Err(e) = self.parser.push(&chunk, &mut events) {
                        self.bytes = None;
                        return Some(Err(e));
                    }
                }
                Some(Err(e)) => {
                    self.bytes = None;
                    return Some(Err(transport_error(e, &self.config, &self.redact)));
                }
                None => {
                    self.bytes = None;
                    if let Err(e) = self.parser.finish(&mut events) {
                        return Some(Err(e));
                    }
                }
            }
            self.pending.extend(events);
            if self.bytes.is_none() && self.pending.is_empty() {
                return None;
            }
        }
    }

    /// The whole answer: an error when the stream ended before
    /// `message_stop`.
    pub fn finish(mut self) -> Result<MessagesResponse> {
        let span = self.span.take();
        let result = match self.done {
            Some(msg) => Ok(msg),
            None => self.acc.finish(),
        };
        if let Some(span) = span {
            span.finish(&result);
        }
        result
    }
}

pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.join(": ")
}

fn transport_error(e: reqwest::Error, config: &ClientConfig, redact: &Redactor) -> Error {
    let e = e.without_url();
    if e.is_timeout() {
        let (phase, after) = if e.is_connect() {
            ("connect", config.connect_timeout)
        } else if e.is_body() || e.is_decode() {
            ("read", config.read_timeout)
        } else {
            ("request", config.request_timeout)
        };
        return Error::Timeout { phase, after };
    }
    Error::Connection {
        reason: redact.clean(&error_chain(&e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test code

    use super::*;

    fn client() -> AnthropicClient {
        AnthropicClient::new(
            SecretString::from("fake-anthropic-unit"),
            ClientConfig::default().base_url("http://127.0.0.1:9"),
        )
        .unwrap()
    }

    /// The body sent without a copy equals the one built from a copy, for
    /// both values of `stream`, with extra fields passed through.
    #[test]
    fn the_body_sent_as_is_equals_the_copied_one() {
        let c = client();
        let mut r = MessagesRequest::new("claude-haiku-5-5", 64, "hi");
        r.extra
            .insert("service_tier".into(), serde_json::json!("auto"));
        for stream in [false, true] {
            let direct: serde_json::Value =
                serde_json::from_slice(&c.prepare(&r, stream).unwrap()).unwrap();
            let mut copy = r.clone();
            copy.stream = Some(stream);
            let expected = serde_json::to_value(&copy).unwrap();
            assert_eq!(direct, expected);
            assert_eq!(direct["stream"], stream);
        }
        // A caller's own `stream` and a removed parameter take the copy path:
        // `stream` is the call's, the parameter is gone.
        r.stream = Some(true);
        r.extra.insert("temperature".into(), serde_json::json!(0.2));
        let sent: serde_json::Value =
            serde_json::from_slice(&c.prepare(&r, false).unwrap()).unwrap();
        assert_eq!(sent["stream"], false);
        assert!(sent.get("temperature").is_none());
        assert_eq!(sent["service_tier"], "auto");
    }
}
