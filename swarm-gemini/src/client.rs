//! The Gemini HTTP client: one key, any model.
//!
//! - The key goes in the `x-goog-api-key` header only (marked sensitive),
//!   never in a URL, a log line or an error.
//! - The base URL defaults to [`DEFAULT_BASE_URL`] and is overridden by
//!   configuration or `GEMINI_BASE_URL` (a local mock in tests).
//! - Connect and whole-request timeouts; a cap on the bytes read from any
//!   body, checked while reading (a huge or endless body is cut, not
//!   buffered).
//! - Every failure is an [`Error`] that says what to do.
//! - Every call is a `tracing` span after the OpenTelemetry GenAI
//!   conventions ([`swarmbus_core::llm::gen_ai_span`]): provider
//!   [`PROVIDER_NAME`], operation [`OPERATION`], the request's model and
//!   token cap; the response's model, id, finish reason and token counts,
//!   or the error's kind. The span never holds the key or the prompt.
//! - [`GeminiClient`] is a core [`LanguageModel`]: the whole request maps
//!   to Gemini ([`crate::convert`]) and its failures become
//!   [`swarmbus_core::llm::ModelError`]s that keep their kind, HTTP status,
//!   retry delay and action.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::stream::{BoxStream, Stream, StreamExt};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use swarmbus_core::llm::{
    Completion, CompletionRequest, LanguageModel, LifecycleVerdict, ModelCatalog, check_lifecycle,
    gen_ai_span, record_completion, record_model_error,
};
use swarmbus_core::provider_env::ProviderEnv;
use tracing::Instrument;

use crate::decode::{
    DEFAULT_MAX_BODY_BYTES, Generation, SseDecoder, StreamAccumulator, decode_response_with,
    http_error,
};
use crate::error::{Error, Redactor, Result};
use crate::wire::{
    CountTokensRequest, CountTokensResponse, GenerateContentRequest, GenerateContentResponse,
};
use swarmbus_core::clock::{Clock, SystemClock};

/// The Gemini Developer API.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com";

/// The model used when none is given: the librarian's Flash-class model.
///
/// `gemini-2.5-flash` (the brief's original librarian model) shuts down on
/// 2026-12-01; Google's Gemini deprecations page
/// (<https://ai.google.dev/gemini-api/docs/deprecations>, the "Gemini 2.5
/// Flash models" table, as read on 2026-11-10 and quoted by
/// aideprecations.com) names `gemini-3.5-flash-lite` as its recommended
/// replacement.
pub const DEFAULT_MODEL: &str = "gemini-3.5-flash-lite";

/// The model [`DEFAULT_MODEL`] replaces (shut down on 2026-12-01).
pub const RETIRED_DEFAULT_MODEL: &str = "gemini-2.5-flash";

/// The provider's name in telemetry and errors: the OpenTelemetry GenAI
/// conventions' well-known `gen_ai.provider.name` value for the Gemini
/// Developer API.
pub const PROVIDER_NAME: &str = "gcp.gemini";

/// The GenAI operation name of a `generateContent` call (a well-known
/// `gen_ai.operation.name` value).
pub const OPERATION: &str = "generate_content";

/// The environment variable that overrides the base URL.
pub const BASE_URL_VAR: &str = "GEMINI_BASE_URL";

/// The environment variable of the single key (`swarm gemini generate`).
pub const API_KEY_VAR: &str = "GEMINI_API_KEY";

/// Where the single key and the base URL override are read from.
const ENV: ProviderEnv = ProviderEnv::new(API_KEY_VAR, BASE_URL_VAR);

/// How the client connects.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Scheme, host and optional port (and path prefix); no trailing slash
    /// needed.
    pub base_url: String,
    /// The model for [`swarmbus_core::llm::LanguageModel`] calls.
    pub model: String,
    /// Connect timeout (default 10 s).
    pub connect_timeout: Duration,
    /// Whole-request timeout, body included (default 120 s).
    pub request_timeout: Duration,
    /// Largest body read, and largest stream event (default 16 MiB).
    pub max_body_bytes: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            model: DEFAULT_MODEL.to_owned(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(120),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl ClientConfig {
    /// The defaults, with the base URL from `GEMINI_BASE_URL` when set.
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

    /// Sets both timeouts.
    pub fn timeouts(mut self, connect: Duration, request: Duration) -> Self {
        self.connect_timeout = connect;
        self.request_timeout = request;
        self
    }

    /// Sets the body cap.
    pub fn max_body_bytes(mut self, n: usize) -> Self {
        self.max_body_bytes = n;
        self
    }

    /// Builds the HTTP client these settings describe (shared by the shards
    /// of a pool, so they share connections).
    pub fn http_client(&self) -> Result<reqwest::Client> {
        reqwest::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.request_timeout)
            .user_agent(concat!("swarmbus-gemini/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config {
                reason: format!("cannot build the HTTP client: {}", error_chain(&e)),
            })
    }

    /// Checks and normalises the base URL (http or https, no query).
    pub(crate) fn checked_base(&self) -> Result<String> {
        let url = reqwest::Url::parse(self.base_url.trim()).map_err(|e| Error::Config {
            reason: format!("base URL is not a URL: {e}"),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Config {
                reason: format!(
                    "base URL scheme must be http or https, not {}",
                    url.scheme()
                ),
            });
        }
        if url.query().is_some() || url.fragment().is_some() || url.password().is_some() {
            return Err(Error::Config {
                reason: "base URL must not carry a query, fragment or credentials".into(),
            });
        }
        Ok(url.as_str().trim_end_matches('/').to_owned())
    }
}

/// Checks a model id (`gemini-2.5-flash`, `models/gemini-2.5-flash`) and
/// returns it without the `models/` prefix. Only letters, digits, `-`, `.`
/// and `_`: a model id goes into the URL path.
pub fn model_path(model: &str) -> Result<&str> {
    let m = model.strip_prefix("models/").unwrap_or(model);
    if m.is_empty()
        || m.len() > 128
        || !m
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        return Err(Error::Config {
            reason: format!(
                "invalid model id {:?}",
                m.chars().take(64).collect::<String>()
            ),
        });
    }
    Ok(m)
}

/// A Gemini API client holding one key.
#[derive(Clone)]
pub struct GeminiClient {
    http: reqwest::Client,
    headers: HeaderMap,
    base: String,
    config: ClientConfig,
    clock: Arc<dyn Clock>,
    redact: Redactor,
    label: Option<String>,
    catalog: Option<Arc<dyn ModelCatalog>>,
}

impl fmt::Debug for GeminiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeminiClient")
            .field("base_url", &self.base)
            .field("model", &self.config.model)
            .field("label", &self.label)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

impl GeminiClient {
    /// A client for `key` with `config`.
    pub fn new(key: SecretString, config: ClientConfig) -> Result<Self> {
        let http = config.http_client()?;
        Self::with_http(key, config, http)
    }

    /// A client for `key` sharing an existing HTTP client (its timeouts
    /// apply).
    pub fn with_http(
        key: SecretString,
        config: ClientConfig,
        http: reqwest::Client,
    ) -> Result<Self> {
        let base = config.checked_base()?;
        if key.expose_secret().trim().is_empty() {
            return Err(Error::MissingKey {
                source_name: "the configured key (empty)".into(),
            });
        }
        let mut value = HeaderValue::from_str(key.expose_secret()).map_err(|_| Error::Config {
            reason: "the API key holds characters not allowed in an HTTP header".into(),
        })?;
        value.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("x-goog-api-key", value);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(Self {
            http,
            headers,
            base,
            config,
            clock: Arc::new(SystemClock),
            redact: Redactor::for_key(&key),
            label: None,
            catalog: None,
        })
    }

    /// A client for `GEMINI_API_KEY`, with `GEMINI_BASE_URL` when set.
    pub fn from_env() -> Result<Self> {
        let key = ENV
            .key()
            .map_err(|e| Error::MissingKey { source_name: e.var })?;
        Self::new(key, ClientConfig::from_env())
    }

    /// Uses `clock` to date errors (a per-day quota's reset).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Checks every model against `catalog` before a call: a retired model
    /// is refused before anything is sent, with an error (kind `retired`)
    /// naming its replacement; a deprecated one is logged as a warning.
    pub fn with_catalog(mut self, catalog: Arc<dyn ModelCatalog>) -> Self {
        self.catalog = Some(catalog);
        self
    }

    /// Refuses a retired model, warns about a deprecated one (core's one
    /// lifecycle check; see [`GeminiClient::with_catalog`]).
    pub(crate) fn check_model(&self, model: &str) -> Result<()> {
        let verdict = check_lifecycle(
            self.catalog.as_deref(),
            PROVIDER_NAME,
            model,
            self.clock.now(),
        )?;
        if let LifecycleVerdict::Deprecated(life) = verdict {
            let retires_on = life.retires_on.map(|d| d.to_string());
            let replacement = life.replacement.as_deref();
            tracing::warn!(model, retires_on, replacement, "model is deprecated");
        }
        Ok(())
    }

    /// Names the client in logs (`shard2`).
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The base URL in use.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, model: &str, method: &str) -> Result<String> {
        Ok(format!(
            "{}/v1beta/models/{}:{method}",
            self.base,
            model_path(model)?
        ))
    }

    async fn post<B: Serialize + ?Sized>(&self, url: &str, body: &B) -> Result<reqwest::Response> {
        let body = serde_json::to_vec(body).map_err(|e| Error::Config {
            reason: format!("request does not serialise: {e}"),
        })?;
        self.http
            .post(url)
            .headers(self.headers.clone())
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport(e))
    }

    fn transport(&self, e: reqwest::Error) -> Error {
        transport_error(e, &self.config, &self.redact)
    }

    async fn read_body(&self, response: reqwest::Response) -> Result<Vec<u8>> {
        read_capped(
            response,
            self.config.max_body_bytes,
            &self.config,
            &self.redact,
        )
        .await
    }

    /// `generateContent`: the checked response (an answer, or the error that
    /// says why not).
    pub async fn generate_content(
        &self,
        model: &str,
        request: &GenerateContentRequest,
    ) -> Result<GenerateContentResponse> {
        let span = self.span(model, request);
        let started = Instant::now();
        let result = async {
            self.check_model(model)?;
            let url = self.url(model, "generateContent")?;
            let response = self.post(&url, request).await?;
            let status = response.status().as_u16();
            let body = self.read_body(response).await?;
            let now = self.clock.now();
            if !(200..300).contains(&status) {
                return Err(http_error(status, &body, now, &self.redact));
            }
            decode_response_with(&body, now, &self.redact)
        }
        .instrument(span.clone())
        .await;
        match &result {
            Ok(response) => self.record_response(&span, model, response),
            Err(e) => record_model_error(&span, &e.to_model_error(PROVIDER_NAME, model)),
        }
        self.log("generateContent", model, started, result.as_ref().err());
        result
    }

    /// The GenAI span of one call to `model`.
    fn span(&self, model: &str, request: &GenerateContentRequest) -> tracing::Span {
        let span = gen_ai_span(PROVIDER_NAME, OPERATION, model);
        if let Some(n) = request
            .generation_config
            .as_ref()
            .and_then(|c| c.max_output_tokens)
        {
            span.record("gen_ai.request.max_tokens", n);
        }
        span
    }

    fn record_response(
        &self,
        span: &tracing::Span,
        model: &str,
        response: &GenerateContentResponse,
    ) {
        if let Ok(g) = Generation::from_response(response) {
            let completion = g.into_completion(model, self.label.clone());
            record_completion(span, &completion);
        }
        if let Some(id) = &response.response_id {
            span.record("gen_ai.response.id", id.as_str());
        }
    }

    /// `generateContent` as a [`Generation`] (text, finish reason, usage).
    pub async fn generate(
        &self,
        model: &str,
        request: &GenerateContentRequest,
    ) -> Result<Generation> {
        let response = self.generate_content(model, request).await?;
        Generation::from_response(&response)
    }

    /// `streamGenerateContent?alt=sse`: the chunks as they arrive. An HTTP
    /// error (or a plain JSON error body) fails here; an error in the
    /// middle of the stream comes as the stream's last item.
    pub async fn stream_generate_content(
        &self,
        model: &str,
        request: &GenerateContentRequest,
    ) -> Result<ChunkStream> {
        let span = self.span(model, request);
        let started = Instant::now();
        let opened = async {
            self.check_model(model)?;
            let url = format!("{}?alt=sse", self.url(model, "streamGenerateContent")?);
            let response = self.post(&url, request).await?;
            let status = response.status().as_u16();
            let now = self.clock.now();
            if !(200..300).contains(&status) {
                let body = self.read_body(response).await?;
                let e = http_error(status, &body, now, &self.redact);
                tracing::debug!(
                    label = self.label.as_deref().unwrap_or("gemini"),
                    model,
                    status,
                    kind = %e.kind(),
                    "streamGenerateContent refused"
                );
                return Err(e);
            }
            Ok((response, now))
        }
        .instrument(span.clone())
        .await;
        let (response, now) = match opened {
            Ok(r) => r,
            Err(e) => {
                record_model_error(&span, &e.to_model_error(PROVIDER_NAME, model));
                self.log("streamGenerateContent", model, started, Some(&e));
                return Err(e);
            }
        };
        let decoder = SseDecoder::with_limits(
            now,
            self.config.max_body_bytes,
            self.config.max_body_bytes.saturating_mul(4),
        )
        .redacting(self.redact.clone());
        Ok(ChunkStream::new(
            response,
            decoder,
            self.config.clone(),
            self.redact.clone(),
            StreamTelemetry {
                span,
                model: model.to_owned(),
                served_by: self.label.clone(),
                generation: StreamAccumulator::new(),
                done: false,
            },
        ))
    }

    /// Streams and collects into one checked [`Generation`].
    pub async fn stream_generate(
        &self,
        model: &str,
        request: &GenerateContentRequest,
    ) -> Result<Generation> {
        let mut stream = self.stream_generate_content(model, request).await?;
        let mut acc = StreamAccumulator::new();
        while let Some(chunk) = stream.next().await {
            acc.push(&chunk?)?;
        }
        acc.finish()
    }

    /// `countTokens`.
    pub async fn count_tokens(
        &self,
        model: &str,
        request: &CountTokensRequest,
    ) -> Result<CountTokensResponse> {
        let url = self.url(model, "countTokens")?;
        let started = Instant::now();
        let result = async {
            let response = self.post(&url, request).await?;
            let status = response.status().as_u16();
            let body = self.read_body(response).await?;
            let now = self.clock.now();
            if !(200..300).contains(&status) {
                return Err(http_error(status, &body, now, &self.redact));
            }
            serde_json::from_slice::<CountTokensResponse>(&body).map_err(|e| {
                Error::MalformedResponse {
                    reason: format!("not a countTokens response ({e})"),
                }
            })
        }
        .await;
        self.log("countTokens", model, started, result.as_ref().err());
        result
    }

    fn log(&self, method: &str, model: &str, started: Instant, error: Option<&Error>) {
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let label = self.label.as_deref().unwrap_or("gemini");
        match error {
            None => tracing::debug!(label, model, method, elapsed_ms, "gemini call ok"),
            Some(e) => tracing::debug!(
                label,
                model,
                method,
                elapsed_ms,
                kind = %e.kind(),
                status = e.http_status(),
                error = %e,
                "gemini call failed"
            ),
        }
    }
}

/// The error chain of a reqwest error, without its URL.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

pub(crate) fn transport_error(
    e: reqwest::Error,
    config: &ClientConfig,
    redact: &Redactor,
) -> Error {
    let e = e.without_url();
    let connect = e.is_connect();
    let timed_out = e.is_timeout()
        || std::error::Error::source(&e).is_some_and(|s| s.to_string().contains("timed out"));
    if timed_out {
        Error::Timeout {
            after: if connect {
                config.connect_timeout
            } else {
                config.request_timeout
            },
            connect,
        }
    } else {
        Error::Transport {
            message: redact.clean(&error_chain(&e)),
            connect,
        }
    }
}

pub(crate) async fn read_capped(
    mut response: reqwest::Response,
    cap: usize,
    config: &ClientConfig,
    redact: &Redactor,
) -> Result<Vec<u8>> {
    if response.content_length().is_some_and(|n| n > cap as u64) {
        return Err(Error::BodyTooLarge { limit: cap });
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(e, config, redact))?
    {
        if body.len() + chunk.len() > cap {
            return Err(Error::BodyTooLarge { limit: cap });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The chunks of a streamed answer, as they arrive. Ends after the last
/// chunk, or after the first error (a broken connection, a timeout, an error
/// object in the stream, a malformed event).
pub struct ChunkStream {
    inner: BoxStream<'static, Result<GenerateContentResponse>>,
}

impl fmt::Debug for ChunkStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChunkStream")
    }
}

/// What a stream records on its span as chunks arrive.
struct StreamTelemetry {
    span: tracing::Span,
    model: String,
    served_by: Option<String>,
    generation: StreamAccumulator,
    done: bool,
}

impl StreamTelemetry {
    fn chunk(&mut self, chunk: &GenerateContentResponse) {
        if let Err(e) = self.generation.push(chunk) {
            // A blocked chunk: its consumer sees the same error.
            self.error(&e);
        }
        if let Some(id) = &chunk.response_id {
            self.span.record("gen_ai.response.id", id.as_str());
        }
    }

    /// The stream ended: records the answer's facts once.
    fn finish(&mut self) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let g = std::mem::take(&mut self.generation).into_generation();
        let completion = g.into_completion(&self.model, self.served_by.clone());
        record_completion(&self.span, &completion);
    }

    fn error(&mut self, e: &Error) {
        self.done = true;
        record_model_error(&self.span, &e.to_model_error(PROVIDER_NAME, &self.model));
    }
}

struct StreamState {
    telemetry: StreamTelemetry,
    body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    decoder: SseDecoder,
    pending: std::collections::VecDeque<Result<GenerateContentResponse>>,
    ended: bool,
    config: ClientConfig,
    redact: Redactor,
}

impl ChunkStream {
    fn new(
        response: reqwest::Response,
        decoder: SseDecoder,
        config: ClientConfig,
        redact: Redactor,
        telemetry: StreamTelemetry,
    ) -> Self {
        let state = StreamState {
            telemetry,
            body: response.bytes_stream().boxed(),
            decoder,
            pending: Default::default(),
            ended: false,
            config,
            redact,
        };
        let inner = futures::stream::unfold(state, |mut st| async move {
            loop {
                if let Some(item) = st.pending.pop_front() {
                    match &item {
                        Ok(chunk) => st.telemetry.chunk(chunk),
                        Err(e) => {
                            st.telemetry.error(e);
                            st.ended = true;
                            st.pending.clear();
                        }
                    }
                    return Some((item, st));
                }
                if st.ended {
                    st.telemetry.finish();
                    return None;
                }
                match st.body.next().await {
                    Some(Ok(bytes)) => {
                        let items = st.decoder.feed(&bytes);
                        st.pending.extend(items);
                    }
                    Some(Err(e)) => {
                        st.ended = true;
                        let e = transport_error(e, &st.config, &st.redact);
                        st.telemetry.error(&e);
                        return Some((Err(e), st));
                    }
                    None => {
                        st.ended = true;
                        let items = st.decoder.finish();
                        st.pending.extend(items);
                    }
                }
            }
        })
        .boxed();
        Self { inner }
    }

    /// Builds a stream from ready chunks (for tests of stream consumers).
    pub fn from_items(items: Vec<Result<GenerateContentResponse>>) -> Self {
        Self {
            inner: futures::stream::iter(items).boxed(),
        }
    }
}

impl Stream for ChunkStream {
    type Item = Result<GenerateContentResponse>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

#[async_trait]
impl LanguageModel for GeminiClient {
    fn model_id(&self) -> &str {
        &self.config.model
    }

    fn provider_name(&self) -> &str {
        PROVIDER_NAME
    }

    async fn complete(&self, request: CompletionRequest) -> swarmbus_core::Result<Completion> {
        let model = self.config.model.clone();
        crate::error::check_request(&request).map_err(|e| e.into_core(PROVIDER_NAME, &model))?;
        let g = self
            .generate(&model, &GenerateContentRequest::from_completion(&request))
            .await
            .map_err(|e| e.into_core(PROVIDER_NAME, &model))?;
        let served_by = self.label.clone().unwrap_or_else(|| "gemini".into());
        Ok(g.into_completion(&model, Some(served_by)))
    }
}
