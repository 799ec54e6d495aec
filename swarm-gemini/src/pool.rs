//! The shard pool (the brief's `MultiShardLibrarian`): many Gemini keys,
//! one quota ledger, failover.
//!
//! A shard is a key with an optional project label and its own
//! [`QuotaLimits`]: Google counts quota per PROJECT and MODEL, not per key,
//! so two keys of one project share one quota (give them the same label and
//! split the limits). Behaviour of [`ShardPool::generate`]:
//!
//! - Shards are tried round-robin, starting one further on each call.
//! - Before each request the shared [`QuotaLedger`] is asked
//!   (`try_acquire`): a disabled, exhausted or cooling shard, or one whose
//!   day or minute count is full, is skipped without a request. The ledger
//!   keeps `librarian:shard<N>:status` and `:quota` current for the status
//!   line, across processes when it is Redis.
//! - The error of a call decides ([`Error::action`]): a per-minute 429 cools
//!   the shard for the `RetryInfo` delay and the next shard is tried; a
//!   per-day 429 marks it exhausted until the next Pacific midnight (both
//!   apply to every shard with the same project label: the quota is the
//!   project's); an invalid or leaked key disables it; a 5xx or connection error is
//!   retried on the same shard with jittered exponential backoff (core's one
//!   retry policy, `swarmbus_core::retry::Backoff`, decides), then the
//!   next shard is tried; a bad request, a block or a malformed answer fails
//!   the call at once (every shard would answer the same).
//! - When no shard can serve now but one is only cooling and usable again
//!   before the caller's deadline, the pool waits for the earliest one.
//! - Otherwise the fallback model (if any: any core `LanguageModel`, the
//!   [`crate::OpenAiCompatible`] DeepSeek client by default) answers the
//!   same provider-neutral request. Its `ModelError.action` decides: a
//!   retry (with or without a delay) is retried with backoff while the
//!   deadline allows; `Fail` fails the call with the fallback's error (the
//!   request is wrong); anything else (rotate, wait, disable, stop) gives
//!   up on it, and the call fails with [`Error::AllShardsExhausted`],
//!   listing every shard's state, when it is next usable, and why the
//!   fallback did not answer.
//! - After a success the shard is recorded `ok` in the ledger. The pool
//!   remembers that it did so, to spare a round trip per call, but forgets
//!   it whenever the ledger shows the shard not ok (a denial, a cooling,
//!   exhaustion or disabling, a report) and at least every
//!   [`MARK_OK_REFRESH`], so a shard an operator re-enabled (status
//!   `untested`) is recorded `ok` again by its next success.
//! - A 429 that reports its `quotaValue` teaches the shard its real limit.
//! - Every move from a shard that could not serve (denied by the ledger,
//!   cooling, exhausted, disabled, failing) to another attempt (the next
//!   shard, the same shards after a wait, or the fallback) is a failover:
//!   [`PoolAnswer::failovers`] counts a call's, [`ShardPool::failovers`] the
//!   pool's since it was made (for metrics: `swarm librarian serve` adds them
//!   to the bus counter `librarian-failovers`).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use swarmbus_core::ShardStatus;
use swarmbus_core::bus::QuotaLedger;
use swarmbus_core::keys::ShardId;
use swarmbus_core::llm::{Completion, CompletionRequest, LanguageModel, ModelAction};
use swarmbus_core::quota::{Acquire, Denial, QuotaLimits};
use swarmbus_core::retry::{Attempt, Backoff, Change, Decision, Failure, Jitter, RetryPolicy};

use crate::client::{ClientConfig, DEFAULT_MODEL, GeminiClient, PROVIDER_NAME};
use crate::decode::Generation;
use crate::error::{Action, Error, Result, ShardReport};
use crate::wire::GenerateContentRequest;
use swarmbus_core::clock::{Clock, SystemClock};

/// The prefix of the shard key variables: `GEMINI_API_KEY_SHARD1`, …
pub const SHARD_KEY_PREFIX: &str = "GEMINI_API_KEY_SHARD";

/// How long the pool trusts its memory that it recorded a shard `ok`
/// before recording it again after a success (another process, or an
/// operator, may have changed the shard's state meanwhile).
pub const MARK_OK_REFRESH: Duration = Duration::from_secs(60);

/// One shard's configuration.
#[derive(Clone)]
#[non_exhaustive]
pub struct ShardConfig {
    /// Its number (`librarian:shard<N>:…`).
    pub id: ShardId,
    /// Its key.
    pub key: SecretString,
    /// The Google Cloud project the key belongs to, as a label (quota is
    /// counted per project and model).
    pub project: Option<String>,
    /// Its limits.
    pub limits: QuotaLimits,
}

impl fmt::Debug for ShardConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardConfig")
            .field("id", &self.id)
            .field("key", &"[REDACTED]")
            .field("project", &self.project)
            .field("limits", &self.limits)
            .finish()
    }
}

impl ShardConfig {
    /// A shard with the brief's free-tier limits and no project label.
    pub fn new(id: ShardId, key: SecretString) -> Self {
        Self {
            id,
            key,
            project: None,
            limits: QuotaLimits::free_tier(),
        }
    }

    /// Sets the project label.
    pub fn with_project(mut self, project: impl Into<String>) -> Self {
        self.project = Some(project.into());
        self
    }

    /// Sets the limits.
    pub fn with_limits(mut self, limits: QuotaLimits) -> Self {
        self.limits = limits;
        self
    }
}

/// Reads shards from variables (name, value):
///
/// - `GEMINI_API_KEY_SHARD<N>`: the key of shard N (N from 1);
/// - `GEMINI_SHARD<N>_PROJECT`: its project label;
/// - `GEMINI_SHARD<N>_PER_DAY`, `GEMINI_SHARD<N>_PER_MINUTE`: its limits
///   (a number, or `none` for no limit); otherwise `default_limits`.
///
/// Shards come back sorted by number; an empty key is skipped. Errors name
/// the variable, never its value.
pub fn shards_from_vars<I>(vars: I, default_limits: QuotaLimits) -> Result<Vec<ShardConfig>>
where
    I: IntoIterator<Item = (String, String)>,
{
    let vars: HashMap<String, String> = vars.into_iter().collect();
    let mut shards = Vec::new();
    for (name, value) in &vars {
        let Some(n) = name.strip_prefix(SHARD_KEY_PREFIX) else {
            continue;
        };
        let id = ShardId::parse(n).map_err(|_| Error::Config {
            reason: format!("{name}: the shard number must be 1 to 9999 without leading zeros"),
        })?;
        if value.trim().is_empty() {
            continue;
        }
        let get = |suffix: &str| vars.get(&format!("GEMINI_SHARD{id}_{suffix}"));
        let limit = |suffix: &str, default: Option<u32>| -> Result<Option<u32>> {
            match get(suffix).map(|v| v.trim()) {
                None | Some("") => Ok(default),
                Some(v) if v.eq_ignore_ascii_case("none") => Ok(None),
                Some(v) => v.parse().map(Some).map_err(|_| Error::Config {
                    reason: format!("GEMINI_SHARD{id}_{suffix} must be a number or `none`"),
                }),
            }
        };
        let limits = QuotaLimits::new(
            limit("PER_DAY", default_limits.per_day)?,
            limit("PER_MINUTE", default_limits.per_minute)?,
        );
        let mut shard =
            ShardConfig::new(id, SecretString::from(value.trim().to_owned())).with_limits(limits);
        if let Some(p) = get("PROJECT").map(|p| p.trim()).filter(|p| !p.is_empty()) {
            shard = shard.with_project(p);
        }
        shards.push(shard);
    }
    shards.sort_by_key(|s| s.id);
    Ok(shards)
}

/// [`shards_from_vars`] over the process environment (variables that are
/// not valid Unicode are ignored).
pub fn shards_from_env(default_limits: QuotaLimits) -> Result<Vec<ShardConfig>> {
    shards_from_vars(
        std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        default_limits,
    )
}

/// How the pool behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolConfig {
    /// The model every shard calls.
    pub model: String,
    /// Connection settings shared by the shards' clients.
    pub client: ClientConfig,
    /// Retries on the same shard after a transient error (5xx, connection)
    /// before moving on.
    pub retries_per_shard: u32,
    /// First backoff.
    pub backoff_base: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
    /// How long a call may wait for a cooling shard (the default deadline).
    pub max_wait: Duration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            model: DEFAULT_MODEL.into(),
            client: ClientConfig::default(),
            retries_per_shard: 2,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(8),
            max_wait: Duration::from_secs(65),
        }
    }
}

impl PoolConfig {
    /// Sets the model.
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = model.into();
        self
    }

    /// Sets the client settings.
    pub fn client(mut self, client: ClientConfig) -> Self {
        self.client = client;
        self
    }

    /// Sets the retries per shard.
    pub fn retries_per_shard(mut self, n: u32) -> Self {
        self.retries_per_shard = n;
        self
    }

    /// Sets the backoff bounds.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max;
        self
    }

    /// Sets the default deadline for waiting on a cooling shard.
    pub fn max_wait(mut self, d: Duration) -> Self {
        self.max_wait = d;
        self
    }
}

/// Who answered a pool call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServedBy {
    /// A shard.
    Shard(ShardId),
    /// The fallback provider (its name).
    Fallback(String),
}

impl fmt::Display for ServedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServedBy::Shard(id) => write!(f, "shard{id}"),
            ServedBy::Fallback(name) => write!(f, "fallback:{name}"),
        }
    }
}

/// The answer of a pool call.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PoolAnswer {
    /// The answer, provider-neutral.
    pub completion: Completion,
    /// Who answered.
    pub served_by: ServedBy,
    /// Gemini's full answer, when a shard answered.
    pub generation: Option<Generation>,
    /// How many times this call moved on from a shard that could not serve
    /// (0: the first shard tried answered).
    pub failovers: u32,
}

pub(crate) struct PoolShard {
    pub(crate) id: ShardId,
    pub(crate) project: Option<String>,
    limits: Mutex<QuotaLimits>,
    pub(crate) client: GeminiClient,
    /// When this process last recorded the shard `ok` in the ledger. While
    /// it is recent and nothing showed the shard not ok, later successes
    /// need no second round trip; it is forgotten whenever the ledger shows
    /// the shard in another state, and trusted at most [`MARK_OK_REFRESH`].
    marked_ok: Mutex<Option<DateTime<Utc>>>,
}

impl PoolShard {
    /// Records the shard as working, unless this process did so recently
    /// and has not seen it in another state since.
    async fn mark_ok<L: QuotaLedger + ?Sized>(&self, ledger: &L, now: DateTime<Utc>) -> Result<()> {
        let fresh = self
            .marked_ok
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| at <= now && now < add(at, MARK_OK_REFRESH));
        if !fresh {
            ledger.mark_ok(self.id, self.limits(), now).await?;
            *self
                .marked_ok
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(now);
        }
        Ok(())
    }

    /// Forgets that the shard was recorded `ok`: the ledger shows it in
    /// another state (denied, cooling, exhausted, disabled, re-enabled).
    pub(crate) fn forget_ok(&self) {
        *self
            .marked_ok
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    pub(crate) fn limits(&self) -> QuotaLimits {
        *self.limits.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Learns the real limit from a 429 that reports its `quotaValue`.
    fn learn(&self, error: &Error) {
        let Some(q) = error.quota() else { return };
        let Some(value) = q
            .value
            .and_then(|v| u32::try_from(v).ok())
            .filter(|v| *v > 0)
        else {
            return;
        };
        let mut limits = self.limits.lock().unwrap_or_else(PoisonError::into_inner);
        if q.is_per_day() && limits.per_day != Some(value) {
            limits.per_day = Some(value);
            tracing::info!(shard = %self.id, per_day = value, "learnt the daily limit from a 429");
        } else if q.is_per_minute() && limits.per_minute != Some(value) {
            limits.per_minute = Some(value);
            tracing::info!(shard = %self.id, per_minute = value, "learnt the per-minute limit from a 429");
        }
    }
}

/// What one shard did for one call.
enum Outcome {
    Served(Box<PoolAnswer>),
    Denied(Denial),
    Failed(Error),
}

/// Many Gemini keys behind one quota ledger, with failover and an optional
/// fallback provider. `L` is any [`QuotaLedger`]: `MemoryBus` in one
/// process, `RedisBus` across processes, or `dyn Bus`.
pub struct ShardPool<L: QuotaLedger + ?Sized> {
    pub(crate) shards: Vec<PoolShard>,
    pub(crate) ledger: Arc<L>,
    cursor: AtomicUsize,
    failovers: AtomicU64,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) config: PoolConfig,
    fallback: Option<Arc<dyn LanguageModel>>,
}

impl<L: QuotaLedger + ?Sized> fmt::Debug for ShardPool<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardPool")
            .field(
                "shards",
                &self.shards.iter().map(|s| s.id.get()).collect::<Vec<_>>(),
            )
            .field("model", &self.config.model)
            .field(
                "fallback",
                &self
                    .fallback
                    .as_ref()
                    .map(|f| format!("{} {}", f.provider_name(), f.model_id())),
            )
            .finish()
    }
}

impl<L: QuotaLedger + ?Sized> ShardPool<L> {
    /// A pool over `shards` accounting through `ledger`. Fails on no shard,
    /// a repeated shard number or an unusable key or base URL.
    pub fn new(shards: Vec<ShardConfig>, ledger: Arc<L>, config: PoolConfig) -> Result<Self> {
        if shards.is_empty() {
            return Err(Error::Config {
                reason: format!("no shard configured (set {SHARD_KEY_PREFIX}1, …)"),
            });
        }
        let http = config.client.http_client()?;
        let mut out: Vec<PoolShard> = Vec::with_capacity(shards.len());
        for s in shards {
            if out.iter().any(|o| o.id == s.id) {
                return Err(Error::Config {
                    reason: format!("shard {} is configured twice", s.id),
                });
            }
            let client = GeminiClient::with_http(
                s.key,
                config.client.clone().model(config.model.clone()),
                http.clone(),
            )?
            .with_label(format!("shard{}", s.id));
            out.push(PoolShard {
                id: s.id,
                project: s.project,
                limits: Mutex::new(s.limits),
                client,
                marked_ok: Mutex::new(None),
            });
        }
        Ok(Self {
            shards: out,
            ledger,
            cursor: AtomicUsize::new(0),
            failovers: AtomicU64::new(0),
            clock: Arc::new(SystemClock),
            config,
            fallback: None,
        })
    }

    /// Uses `clock` for quota days, cooling, waits and backoff.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        for s in &mut self.shards {
            s.client = s.client.clone().with_clock(clock.clone());
        }
        self.clock = clock;
        self
    }

    /// Checks the pool's model against `catalog` before every call: a
    /// retired model is refused before any quota is counted or request
    /// sent (kind `retired`, naming the replacement).
    pub fn with_catalog(mut self, catalog: Arc<dyn swarmbus_core::llm::ModelCatalog>) -> Self {
        for s in &mut self.shards {
            s.client = s.client.clone().with_catalog(catalog.clone());
        }
        self
    }

    /// Adds the fallback model, used only when no shard can serve: any core
    /// `LanguageModel` ([`crate::OpenAiCompatible`] for DeepSeek, a Claude
    /// client, an `Arc<dyn LanguageModel>`). Its answers are served as
    /// [`ServedBy::Fallback`] with its `provider_name()`.
    pub fn with_fallback<M: LanguageModel + 'static>(mut self, fallback: M) -> Self {
        self.fallback = Some(Arc::new(fallback));
        self
    }

    /// The configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Failovers of every call since the pool was made (see the module
    /// docs): a monotonic count, for metrics.
    pub fn failovers(&self) -> u64 {
        self.failovers.load(Ordering::Relaxed)
    }

    /// The shards' numbers, in order.
    pub fn shard_ids(&self) -> Vec<ShardId> {
        self.shards.iter().map(|s| s.id).collect()
    }

    /// A shard's current limits (learnt ones included).
    pub fn limits(&self, shard: ShardId) -> Option<QuotaLimits> {
        self.shards
            .iter()
            .find(|s| s.id == shard)
            .map(PoolShard::limits)
    }

    /// Answers `request`, waiting for a cooling shard up to the configured
    /// deadline.
    pub async fn generate(&self, request: &GenerateContentRequest) -> Result<PoolAnswer> {
        self.generate_within(request, self.config.max_wait).await
    }

    /// Answers `request`, waiting for a cooling shard at most `max_wait`.
    pub async fn generate_within(
        &self,
        request: &GenerateContentRequest,
        max_wait: Duration,
    ) -> Result<PoolAnswer> {
        self.route(request, None, max_wait).await
    }

    /// Answers a provider-neutral request: the shards get its Gemini form,
    /// a fallback the request itself.
    pub async fn complete_request(&self, request: &CompletionRequest) -> Result<PoolAnswer> {
        crate::error::check_request(request)?;
        let gemini = GenerateContentRequest::from_completion(request);
        self.route(&gemini, Some(request), self.config.max_wait)
            .await
    }

    async fn route(
        &self,
        request: &GenerateContentRequest,
        neutral: Option<&CompletionRequest>,
        max_wait: Duration,
    ) -> Result<PoolAnswer> {
        if let Some(first) = self.shards.first() {
            first.client.check_model(&self.config.model)?;
        }
        let deadline = add(self.clock.now(), max_wait);
        let n = self.shards.len();
        let mut notes: HashMap<ShardId, String> = HashMap::new();
        // Set when a shard could not serve; the next attempt counts it as a
        // failover.
        let mut moving = false;
        let mut failovers = 0u32;
        loop {
            let start = self.cursor.fetch_add(1, Ordering::Relaxed) % n;
            let mut denied: HashMap<ShardId, Denial> = HashMap::new();
            let mut last_transient = None;
            for k in 0..n {
                let shard = &self.shards[(start + k) % n];
                if std::mem::take(&mut moving) {
                    failovers = failovers.saturating_add(1);
                    self.failovers.fetch_add(1, Ordering::Relaxed);
                }
                let outcome = self.try_shard(shard, request).await?;
                moving = !matches!(outcome, Outcome::Served(_));
                match outcome {
                    Outcome::Served(mut answer) => {
                        answer.failovers = failovers;
                        return Ok(*answer);
                    }
                    Outcome::Denied(d) => {
                        denied.insert(shard.id, d);
                    }
                    Outcome::Failed(e) => {
                        notes.insert(shard.id, format!("{}: {e}", e.kind()));
                        if matches!(e.action(), Action::RetryAfter(_) | Action::Rotate) {
                            last_transient = Some(e);
                        }
                    }
                }
            }
            let now = self.clock.now();
            let reports = self.reports(&denied, &notes, now).await?;
            let earliest_cooling = reports
                .iter()
                .filter(|r| r.status == ShardStatus::Cooling)
                .filter_map(|r| r.next_usable)
                .min();
            if let Some(t) = earliest_cooling
                && t <= deadline
            {
                let wait = (t - now)
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .max(Duration::from_millis(50));
                tracing::info!(
                    wait_ms = wait.as_millis() as u64,
                    "every usable shard is cooling; waiting for the earliest"
                );
                self.clock.sleep(wait).await;
                continue;
            }
            let mut fallback_note = None;
            if let Some(fb) = &self.fallback {
                let neutral = match neutral {
                    Some(r) => r.clone(),
                    None => request.to_completion_request(),
                };
                if std::mem::take(&mut moving) {
                    failovers = failovers.saturating_add(1);
                    self.failovers.fetch_add(1, Ordering::Relaxed);
                }
                match self.ask_fallback(fb.as_ref(), neutral, deadline).await {
                    Ok(mut answer) => {
                        answer.failovers = failovers;
                        return Ok(answer);
                    }
                    Err(FallbackFailure::Fail(e)) => return Err(e),
                    Err(FallbackFailure::GaveUp(note)) => fallback_note = Some(note),
                }
            }
            let all_ok = reports
                .iter()
                .all(|r| matches!(r.status, ShardStatus::Ok | ShardStatus::Untested));
            if let Some(e) = last_transient
                && all_ok
                && fallback_note.is_none()
            {
                return Err(e);
            }
            let next_usable = reports.iter().filter_map(|r| r.next_usable).min();
            return Err(Error::AllShardsExhausted {
                shards: reports,
                next_usable,
                fallback: fallback_note,
            });
        }
    }

    /// The fallback's answer; its `ModelError.action` decides what a failure
    /// means: retried (with backoff, at least its delay) while the deadline
    /// allows, the call failed (`Fail`), or given up on (anything else).
    async fn ask_fallback(
        &self,
        fb: &dyn LanguageModel,
        request: CompletionRequest,
        deadline: DateTime<Utc>,
    ) -> std::result::Result<PoolAnswer, FallbackFailure> {
        let name = fb.provider_name().to_owned();
        tracing::info!(provider = %name, "no shard can serve; using the fallback");
        let mut policy = self.retry_policy();
        let mut attempt = 0u32;
        loop {
            let e = match fb.complete(request.clone()).await {
                Ok(completion) => {
                    return Ok(PoolAnswer {
                        completion,
                        served_by: ServedBy::Fallback(name),
                        generation: None,
                        failovers: 0,
                    });
                }
                Err(e) => Error::from(e),
            };
            let (action, kind) = match &e {
                Error::Model(m) => (m.action, m.kind.as_str()),
                other => (
                    match other.action() {
                        Action::RetryAfter(after) | Action::Cool(after) => {
                            ModelAction::RetryAfter { after }
                        }
                        Action::Rotate => ModelAction::Rotate,
                        Action::ExhaustUntil(until) => ModelAction::WaitUntil { until },
                        Action::Disable => ModelAction::Disable,
                        _ => ModelAction::Fail,
                    },
                    other.kind().as_str(),
                ),
            };
            let note = format!("{kind}: {e}");
            let failure = match action {
                ModelAction::Fail => return Err(FallbackFailure::Fail(e)),
                // The fallback's own delay for a plain retry is its client's
                // business: no floor here.
                ModelAction::Retry => Failure::new(ModelAction::Retry),
                other => Failure::new(other),
            };
            let left = (deadline - self.clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO);
            let ask = Attempt::new(failure, attempt)
                .time_left(left)
                .at(self.clock.now());
            match policy.decide(&ask) {
                Decision::Retry {
                    wait,
                    change: Change::Same,
                } => {
                    attempt += 1;
                    tracing::debug!(provider = %name, attempt, "fallback failed; retrying");
                    self.clock.sleep(wait).await;
                }
                _ => return Err(FallbackFailure::GaveUp(note)),
            }
        }
    }

    /// One shard's attempt at a call, with retries on transient errors.
    async fn try_shard(
        &self,
        shard: &PoolShard,
        request: &GenerateContentRequest,
    ) -> Result<Outcome> {
        let mut policy = self.retry_policy().rotate(true);
        let mut attempt = 0u32;
        let mut last_error: Option<Error> = None;
        loop {
            let limits = shard.limits();
            match self
                .ledger
                .try_acquire(shard.id, limits, self.clock.now())
                .await?
            {
                Acquire::Granted { .. } => {}
                Acquire::Denied(d) => {
                    shard.forget_ok();
                    return Ok(match last_error {
                        Some(e) => Outcome::Failed(e),
                        None => Outcome::Denied(d),
                    });
                }
                _ => {
                    return Err(Error::Config {
                        reason: "the quota ledger gave an answer this version does not know".into(),
                    });
                }
            }
            let result = shard.client.generate(&self.config.model, request).await;
            let error = match result {
                Ok(generation) => {
                    shard.mark_ok(&*self.ledger, self.clock.now()).await?;
                    let completion = generation
                        .clone()
                        .into_completion(&self.config.model, Some(format!("shard{}", shard.id)));
                    return Ok(Outcome::Served(Box::new(PoolAnswer {
                        completion,
                        served_by: ServedBy::Shard(shard.id),
                        generation: Some(generation),
                        failovers: 0,
                    })));
                }
                Err(e) => e,
            };
            if matches!(
                error,
                Error::Transport { connect: true, .. } | Error::Timeout { connect: true, .. }
            ) {
                // Never sent: give the request back to the day's count.
                self.ledger
                    .release(shard.id, shard.limits(), self.clock.now())
                    .await?;
            }
            let action = error.action();
            tracing::debug!(shard = %shard.id, kind = %error.kind(), ?action, attempt, "shard call failed");
            let failure = Failure::new(match action {
                Action::RetryAfter(after) => ModelAction::RetryAfter { after },
                Action::Fail => ModelAction::Fail,
                _ => ModelAction::Rotate,
            });
            match policy.decide(&Attempt::new(failure, attempt).at(self.clock.now())) {
                Decision::Retry {
                    wait,
                    change: Change::Same,
                } => {
                    attempt += 1;
                    self.clock.sleep(wait).await;
                    last_error = Some(error);
                    continue;
                }
                Decision::Retry { .. } => {}
                _ => {
                    // The shard answered; the request is what failed.
                    shard.mark_ok(&*self.ledger, self.clock.now()).await?;
                    return Err(error);
                }
            }
            self.apply(shard, &error, action).await?;
            return Ok(Outcome::Failed(error));
        }
    }

    /// Records what an error means for a shard in the ledger.
    pub(crate) async fn apply(
        &self,
        shard: &PoolShard,
        error: &Error,
        action: Action,
    ) -> Result<()> {
        if matches!(
            action,
            Action::Cool(_) | Action::ExhaustUntil(_) | Action::Disable
        ) {
            for s in self.same_project(shard) {
                s.forget_ok();
            }
        }
        match action {
            Action::Cool(d) => {
                shard.learn(error);
                let until = add(self.clock.now(), d);
                for s in self.same_project(shard) {
                    tracing::info!(shard = %s.id, until = %until.to_rfc3339(), "shard rate limited; cooling");
                    self.ledger
                        .cool_until(s.id, until, self.clock.now())
                        .await?;
                }
            }
            Action::ExhaustUntil(until) => {
                shard.learn(error);
                for s in self.same_project(shard) {
                    tracing::info!(shard = %s.id, until = %until.to_rfc3339(), "shard's daily quota exhausted");
                    self.ledger
                        .exhaust_until(s.id, until, self.clock.now())
                        .await?;
                }
            }
            Action::Disable => {
                // Per key: an invalid or leaked key says nothing about the
                // project's other keys.
                let reason = format!("{}: {error}", error.kind());
                tracing::warn!(shard = %shard.id, kind = %error.kind(), "shard disabled");
                self.ledger
                    .disable(shard.id, &reason, self.clock.now())
                    .await?;
            }
            Action::RetryAfter(_) | Action::Rotate | Action::Fail => {}
        }
        Ok(())
    }

    /// The shard and every other shard with the same project label: Google
    /// counts quota per project and model, so a quota one key hit is hit
    /// for all keys of its project.
    fn same_project<'a>(&'a self, shard: &'a PoolShard) -> impl Iterator<Item = &'a PoolShard> {
        self.shards.iter().filter(move |s| {
            s.id == shard.id || (shard.project.is_some() && s.project == shard.project)
        })
    }

    /// One call's retry policy (core's one [`Backoff`]): at most
    /// `retries_per_shard` retries of a target, waits of `backoff_base`
    /// doubling to `backoff_max` (a server's delay may exceed it), jittered
    /// over their upper half so many callers spread out.
    fn retry_policy(&self) -> Backoff {
        Backoff::new(self.config.backoff_base, self.config.backoff_max)
            .max_retries(self.config.retries_per_shard)
            .jitter(Jitter::Equal, rand::random())
            .jitter_floor(true)
    }

    /// Every shard's state now, for a report or an error.
    pub async fn shard_reports(&self) -> Result<Vec<ShardReport>> {
        self.reports(&HashMap::new(), &HashMap::new(), self.clock.now())
            .await
    }

    async fn reports(
        &self,
        denied: &HashMap<ShardId, Denial>,
        notes: &HashMap<ShardId, String>,
        now: DateTime<Utc>,
    ) -> Result<Vec<ShardReport>> {
        let mut out = Vec::with_capacity(self.shards.len());
        for s in &self.shards {
            let report = match denied.get(&s.id) {
                Some(d) => ShardReport {
                    shard: s.id,
                    project: s.project.clone(),
                    status: d.status(),
                    next_usable: d.until(),
                    reason: match d {
                        Denial::Disabled { reason } => Some(reason.clone()),
                        _ => notes.get(&s.id).cloned(),
                    },
                },
                None => {
                    let state = self
                        .ledger
                        .shard_states(&[s.id], s.limits(), now)
                        .await?
                        .into_iter()
                        .next();
                    if state
                        .as_ref()
                        .is_some_and(|st| st.status != ShardStatus::Ok)
                    {
                        s.forget_ok();
                    }
                    match state {
                        Some(st) => ShardReport {
                            shard: s.id,
                            project: s.project.clone(),
                            status: st.status,
                            next_usable: st.next_usable(now),
                            reason: notes.get(&s.id).cloned().or(st.disabled_reason.clone()),
                        },
                        None => ShardReport {
                            shard: s.id,
                            project: s.project.clone(),
                            status: ShardStatus::Untested,
                            next_usable: Some(now),
                            reason: notes.get(&s.id).cloned(),
                        },
                    }
                }
            };
            out.push(report);
        }
        Ok(out)
    }
}

/// `t + d`, saturating.
pub(crate) fn add(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Why the fallback did not answer.
enum FallbackFailure {
    /// Its error fails the call (the request is wrong).
    Fail(Error),
    /// It cannot answer now; the note says why.
    GaveUp(String),
}

#[async_trait]
impl<L: QuotaLedger + ?Sized> LanguageModel for ShardPool<L> {
    fn model_id(&self) -> &str {
        &self.config.model
    }

    fn provider_name(&self) -> &str {
        PROVIDER_NAME
    }

    async fn complete(&self, request: CompletionRequest) -> swarmbus_core::Result<Completion> {
        self.complete_request(&request)
            .await
            .map(|answer| answer.completion)
            .map_err(|e| e.into_core(PROVIDER_NAME, &self.config.model))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn shards_are_read_from_numbered_variables() {
        let shards = shards_from_vars(
            vars(&[
                ("GEMINI_API_KEY_SHARD2", "k2"),
                ("GEMINI_API_KEY_SHARD1", "k1"),
                ("GEMINI_API_KEY_SHARD3", " "),
                ("GEMINI_SHARD2_PROJECT", "proj-b"),
                ("GEMINI_SHARD2_PER_DAY", "250"),
                ("GEMINI_SHARD1_PER_MINUTE", "none"),
                ("OTHER", "x"),
            ]),
            QuotaLimits::free_tier(),
        )
        .unwrap();
        assert_eq!(shards.len(), 2);
        assert_eq!(shards[0].id.get(), 1);
        assert_eq!(shards[0].limits, QuotaLimits::new(Some(1500), None));
        assert_eq!(shards[1].project.as_deref(), Some("proj-b"));
        assert_eq!(shards[1].limits, QuotaLimits::new(Some(250), Some(15)));
        assert!(!format!("{shards:?}").contains("k2"));
    }

    #[test]
    fn a_bad_shard_variable_is_named_without_its_value() {
        let e = shards_from_vars(
            vars(&[("GEMINI_API_KEY_SHARD01", "secret-value")]),
            QuotaLimits::free_tier(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("GEMINI_API_KEY_SHARD01"));
        assert!(!e.to_string().contains("secret-value"));
    }
}
