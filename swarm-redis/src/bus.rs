//! [`RedisBus`]: the handle, its key names, and how it sends requests
//! (retries, timeouts, NOSCRIPT, WRONGTYPE). The trait implementations live
//! in one module per capability.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::{Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, Script, ServerErrorKind, Value};
use secrecy::{ExposeSecret, SecretString};
use swarmbus_core::BusLimits;
use swarmbus_core::error::{Error, Result, Retry};
use swarmbus_core::keys::{Key, KeySpace, ShardId, WorkerId};
use tokio::time::Instant;

use crate::config::RedisConfig;
use crate::connection::{ConnectFailure, Connector, Link};
use crate::errors::{is_transient, is_wrong_type, map_error, surely_not_sent, unexpected_reply};
use crate::scripts;

/// How a request behaves when it is sent again after it may have reached
/// Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replay {
    /// Idempotent (reads, SET, marks that only move later): repeating it
    /// changes nothing, so a caller may repeat it too.
    Safe,
    /// A write that carries an operation id (a script wrapped by
    /// `scripts::once`): the bus's own retries apply once, but a caller
    /// repeating the call sends a new id, so a failure after the request may
    /// have arrived is [`Error::Unconfirmed`].
    Once,
}

/// A request that failed for good.
#[derive(Debug)]
pub(crate) struct Failed {
    /// The last error.
    pub(crate) error: RedisError,
    /// Whether an attempt may have reached Redis and applied (a `Once`
    /// write whose connection broke after sending).
    pub(crate) maybe_applied: bool,
}

/// A bus over Redis (one node or a Cluster) implementing every trait of
/// `swarmbus_core::bus`.
///
/// Cheap to clone: clones share the connections. Many processes may use
/// one Redis at once; every multi-key change is one Lua script, so it is
/// atomic for all of them.
///
/// ```no_run
/// use swarmbus_core::bus::{Counters, FindingStore};
/// use swarmbus_core::keys::{Namespace, SessionId, WorkerId};
/// use swarmbus_core::Finding;
/// use swarmbus_redis::{RedisBus, RedisConfig};
///
/// # async fn demo() -> swarmbus_core::Result<()> {
/// let config = RedisConfig::from_url("redis://127.0.0.1:6379")?
///     .namespace(Namespace::new("team-a")?);
/// let bus = RedisBus::connect(config).await?;
/// let finding = Finding::new(
///     WorkerId::new("haiku-1")?,
///     SessionId::new("instance-11")?,
///     "Redis pub/sub is at-most-once",
///     "Keep findings in a stream as well.",
/// );
/// bus.put_finding(&finding).await?;
/// assert_eq!(bus.count_findings().await?, 1);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisBus {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) link: Link,
    pub(crate) connector: Connector,
    pub(crate) keys: KeySpace,
    pub(crate) names: Names,
    pub(crate) limits: BusLimits,
    pub(crate) response_timeout: Duration,
    pub(crate) retry_for: Duration,
    /// How long an operation-id marker lives: longer than any retry of it.
    pub(crate) op_ttl_ms: u64,
    pub(crate) cluster: bool,
    secret: Option<SecretString>,
    /// Consumer groups known to exist (created or seen) by this handle.
    pub(crate) groups: Mutex<HashSet<String>>,
    /// One warning per outage, one info line on recovery.
    pub(crate) outage: crate::outage::OutageLog,
}

impl fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBus")
            .field("cluster", &self.inner.cluster)
            .field("prefix", &self.inner.keys.prefix())
            .field("response_timeout", &self.inner.response_timeout)
            .field("retry_for", &self.inner.retry_for)
            .finish_non_exhaustive()
    }
}

/// The library's own keys (under `swarm:` of the key space): indices,
/// counters, streams and processing lists. The brief's keys keep their
/// names and types.
#[derive(Debug)]
pub(crate) struct Names {
    /// ZSET of active finding ids, scored by creation time in ms.
    pub(crate) findings_active: String,
    /// ZSET of archived finding ids, scored likewise.
    pub(crate) findings_archived: String,
    /// STREAM of new findings (field `finding`: the id), for consumer groups.
    pub(crate) feed: String,
    /// ZSET of worker ids, scored by heartbeat expiry (server ms).
    pub(crate) workers: String,
    /// HASH worker id → `b` once it has beaten, else the server time (ms)
    /// of its first task: the worker-grace rule of reclaim.
    pub(crate) seen: String,
    /// HASH task id → deliveries so far (also: which tasks are known).
    pub(crate) deliveries: String,
    /// SET of workers that have queued or in-flight tasks.
    pub(crate) task_workers: String,
    /// LIST of TaskFailure JSON, oldest first.
    pub(crate) failed_tasks: String,
    /// LIST of queue values that were not tasks.
    pub(crate) rejected_tasks: String,
    /// HASH draft name → content.
    pub(crate) drafts: String,
    /// LIST of unanswered query ids, oldest first.
    pub(crate) pending_queries: String,
}

impl Names {
    fn new(keys: &KeySpace) -> Self {
        Self {
            findings_active: keys.internal("findings"),
            findings_archived: keys.internal("findings:archived"),
            feed: keys.internal("feed"),
            workers: keys.internal("workers"),
            seen: keys.internal("workers:seen"),
            deliveries: keys.internal("tasks:deliveries"),
            task_workers: keys.internal("tasks:workers"),
            failed_tasks: keys.internal("tasks:failed"),
            rejected_tasks: keys.internal("tasks:rejected"),
            drafts: keys.internal("drafts"),
            pending_queries: keys.internal("queries:pending"),
        }
    }
}

impl RedisBus {
    /// Connects, checks the server answers, and loads the scripts.
    ///
    /// Fails with [`Error::InvalidInput`] for a bad configuration (a Cluster
    /// without namespace, …) and a transient [`Error::Backend`] or
    /// [`Error::Timeout`] when Redis cannot be reached.
    pub async fn connect(config: RedisConfig) -> Result<Self> {
        config.validate()?;
        let secret = config.password.clone();
        let scrub = |e: &RedisError| {
            map_error(
                e,
                "connect",
                config.response_timeout,
                secret.as_ref().map(|s| s.expose_secret()),
            )
        };
        let (connector, link) = match Connector::open(&config).await {
            Ok(pair) => pair,
            Err(ConnectFailure::Config(e)) => return Err(e),
            Err(ConnectFailure::Redis(e)) => return Err(scrub(&e)),
            Err(ConnectFailure::Timeout(after)) => {
                return Err(Error::Timeout {
                    operation: "connect",
                    after,
                });
            }
        };
        let keys = config.key_space();
        let bus = Self {
            inner: Arc::new(Inner {
                link,
                connector,
                names: Names::new(&keys),
                keys,
                limits: config.limits.clone(),
                response_timeout: config.response_timeout,
                retry_for: config.retry_for,
                op_ttl_ms: op_marker_ttl(config.retry_for, config.response_timeout),
                cluster: config.is_cluster(),
                secret,
                groups: Mutex::new(HashSet::new()),
                outage: crate::outage::OutageLog::default(),
            }),
        };
        bus.load_scripts().await?;
        Ok(bus)
    }

    /// The key space (namespace) of this bus.
    pub fn key_space(&self) -> &KeySpace {
        &self.inner.keys
    }

    /// The size limits in force.
    pub fn limits(&self) -> &BusLimits {
        &self.inner.limits
    }

    /// Whether this bus talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.inner.cluster
    }

    /// Requests sent to Redis so far by this handle and its clones (a
    /// pipeline counts once): the number of round trips, for measuring.
    pub fn round_trips(&self) -> u64 {
        self.inner.connector.round_trips()
    }

    /// Checks that Redis answers (PING).
    pub async fn ping(&self) -> Result<()> {
        let reply: String = self.query("ping", &redis::cmd("PING")).await?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(unexpected_reply("ping", &reply))
        }
    }

    /// Loads every script (SCRIPT LOAD, on every master of a Cluster), so
    /// later calls go by SHA.
    async fn load_scripts(&self) -> Result<()> {
        self.reload_scripts()
            .await
            .map_err(|e| self.fail(&e, "load scripts"))
    }

    /// Loads every script, retried like any idempotent request. Boxed: a
    /// request answered NOSCRIPT calls it from inside [`RedisBus::send`].
    fn reload_scripts(
        &self,
    ) -> std::pin::Pin<Box<dyn Future<Output = std::result::Result<(), RedisError>> + Send + '_>>
    {
        Box::pin(async move {
            for script in scripts::all() {
                self.send("load scripts", Replay::Safe, self.backoff(), || {
                    let mut link = self.inner.link.clone();
                    async move { script.load_async(&mut link).await.map(|_| ()) }
                })
                .await
                .map_err(|f| f.error)?;
            }
            Ok(())
        })
    }

    // ---- key names ----------------------------------------------------

    pub(crate) fn key(&self, key: &Key) -> String {
        self.inner.keys.format(key)
    }

    pub(crate) fn internal(&self, name: &str) -> String {
        self.inner.keys.internal(name)
    }

    pub(crate) fn names(&self) -> &Names {
        &self.inner.names
    }

    pub(crate) fn progress_key(&self, worker: &WorkerId) -> String {
        self.internal(&format!("progress:{worker}"))
    }

    pub(crate) fn inflight_key(&self, worker: &WorkerId) -> String {
        self.internal(&format!("tasks:inflight:{worker}"))
    }

    pub(crate) fn ledger_key(&self, shard: ShardId) -> String {
        self.internal(&format!("quota:shard{shard}"))
    }

    // ---- sending ------------------------------------------------------

    /// Maps an error, scrubbing the password.
    pub(crate) fn fail(&self, e: &RedisError, operation: &'static str) -> Error {
        map_error(
            e,
            operation,
            self.inner.response_timeout,
            self.inner.secret.as_ref().map(|s| s.expose_secret()),
        )
    }

    fn backoff(&self) -> Backoff {
        Backoff {
            deadline: Instant::now()
                .checked_add(self.inner.retry_for)
                .unwrap_or_else(far_future),
            policy: crate::outage::retry_policy(),
            retries: 0,
            retry_timeouts: true,
        }
    }

    /// The one retry loop: makes `attempt` until it succeeds, fails for
    /// good, or the retry budget is spent. A NOSCRIPT reply (a restart, a
    /// failover, SCRIPT FLUSH: nothing of the request ran) loads the scripts
    /// and sends again, once.
    async fn send<T, F, Fut>(
        &self,
        operation: &'static str,
        replay: Replay,
        mut backoff: Backoff,
        mut attempt: F,
    ) -> std::result::Result<T, Failed>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = std::result::Result<T, RedisError>>,
    {
        let mut reloaded = false;
        let mut maybe_applied = false;
        loop {
            match attempt().await {
                Ok(v) => {
                    self.inner.outage.answered();
                    return Ok(v);
                }
                Err(e) if is_no_script(&e) && !reloaded => {
                    reloaded = true;
                    if let Err(error) = self.reload_scripts().await {
                        return Err(Failed {
                            error,
                            maybe_applied,
                        });
                    }
                }
                Err(e) => {
                    if replay == Replay::Once && is_transient(&e) && !surely_not_sent(&e) {
                        maybe_applied = true;
                    }
                    if is_transient(&e) && !e.is_timeout() {
                        self.inner
                            .outage
                            .failed(operation, &e, self.inner.retry_for);
                        // The idle blocking connections date from before
                        // the failure: the next blocking read opens a new
                        // one instead of finding a dead socket after the
                        // server is back (a second, spurious outage).
                        self.inner.connector.drop_idle();
                    }
                    if !backoff.wait(&e).await {
                        tracing::debug!(operation, error = %e.category(), "redis request failed");
                        return Err(Failed {
                            error: e,
                            maybe_applied,
                        });
                    }
                }
            }
        }
    }

    /// Sends one idempotent command, retrying transient failures.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        operation: &'static str,
        cmd: &Cmd,
    ) -> Result<T> {
        self.query_raw(operation, cmd)
            .await
            .map_err(|e| self.fail(&e, operation))
    }

    /// Like [`RedisBus::query`], returning redis-rs's error for callers that
    /// look at it (WRONGTYPE, NOGROUP).
    pub(crate) async fn query_raw<T: FromRedisValue>(
        &self,
        operation: &'static str,
        cmd: &Cmd,
    ) -> std::result::Result<T, RedisError> {
        self.send(operation, Replay::Safe, self.backoff(), || {
            let mut link = self.inner.link.clone();
            async move { cmd.query_async(&mut link).await }
        })
        .await
        .map_err(|f| f.error)
    }

    /// Sends one idempotent pipeline (one round trip), retrying transient
    /// failures.
    pub(crate) async fn pipeline<T: FromRedisValue>(
        &self,
        operation: &'static str,
        pipe: &Pipeline,
    ) -> Result<T> {
        self.send(operation, Replay::Safe, self.backoff(), || {
            let mut link = self.inner.link.clone();
            async move { pipe.query_async(&mut link).await }
        })
        .await
        .map_err(|f| self.fail(&f.error, operation))
    }

    /// Sends a pipeline of writes each of which carries an operation id
    /// (see [`RedisBus::op_args`]): retried like an idempotent one, and a
    /// failure after it may have arrived is [`Error::Unconfirmed`].
    pub(crate) async fn pipeline_once<T: FromRedisValue>(
        &self,
        operation: &'static str,
        pipe: &Pipeline,
    ) -> Result<T> {
        match self
            .send(operation, Replay::Once, self.backoff(), || {
                let mut link = self.inner.link.clone();
                async move { pipe.query_async(&mut link).await }
            })
            .await
        {
            Ok(v) => Ok(v),
            Err(f) => Err(self.failed(f, operation, None).await),
        }
    }

    /// Sends one command that carries an operation id (see
    /// [`RedisBus::op_args`]), as [`RedisBus::pipeline_once`].
    pub(crate) async fn query_once<T: FromRedisValue>(
        &self,
        operation: &'static str,
        cmd: &Cmd,
    ) -> Result<T> {
        match self
            .send(operation, Replay::Once, self.backoff(), || {
                let mut link = self.inner.link.clone();
                async move { cmd.query_async(&mut link).await }
            })
            .await
        {
            Ok(v) => Ok(v),
            Err(f) => Err(self.failed(f, operation, None).await),
        }
    }

    /// Calls an idempotent script by SHA (EVALSHA), loading it on NOSCRIPT.
    pub(crate) async fn eval<T: FromRedisValue>(
        &self,
        operation: &'static str,
        script: &Script,
        keys: &[&str],
        args: &[&dyn ToArg],
    ) -> Result<T> {
        let cmd = evalsha(script, keys, args);
        self.query(operation, &cmd).await
    }

    /// Calls a script wrapped by `scripts::once` with a fresh operation id,
    /// so that the bus's retries apply it once. A WRONGTYPE reply about
    /// `on_key` (the key and the type this crate writes there) becomes
    /// [`Error::WrongType`]; a failure after the request may have arrived
    /// becomes [`Error::Unconfirmed`].
    pub(crate) async fn eval_once<T: FromRedisValue>(
        &self,
        operation: &'static str,
        script: &Script,
        keys: &[&str],
        args: &[&dyn ToArg],
        on_key: Option<(&str, &'static str)>,
    ) -> Result<T> {
        let cmd = self.evalsha_once(script, keys, args);
        match self
            .send(operation, Replay::Once, self.backoff(), || {
                let mut link = self.inner.link.clone();
                let cmd = &cmd;
                async move { cmd.query_async(&mut link).await }
            })
            .await
        {
            Ok(v) => Ok(v),
            Err(f) => Err(self.failed(f, operation, on_key).await),
        }
    }

    /// `EVALSHA` of a `scripts::once` script with a fresh operation id.
    pub(crate) fn evalsha_once(&self, script: &Script, keys: &[&str], args: &[&dyn ToArg]) -> Cmd {
        let (op_key, op_ttl) = self.op_args();
        let mut all_keys: Vec<&str> = Vec::with_capacity(keys.len() + 1);
        all_keys.extend_from_slice(keys);
        all_keys.push(&op_key);
        let mut cmd = evalsha(script, &all_keys, args);
        cmd.arg(op_ttl);
        cmd
    }

    /// A fresh operation id's marker key (in the namespace's hash slot) and
    /// the marker's lifetime in ms, for a `scripts::once` script: the key
    /// goes last in KEYS, the lifetime last in ARGV.
    pub(crate) fn op_args(&self) -> (String, u64) {
        let op = uuid::Uuid::new_v4().simple().to_string();
        (self.internal(&format!("op:{op}")), self.inner.op_ttl_ms)
    }

    /// The core error for a request that failed for good.
    pub(crate) async fn failed(
        &self,
        f: Failed,
        operation: &'static str,
        on_key: Option<(&str, &'static str)>,
    ) -> Error {
        let cause = match on_key {
            Some((key, expected)) => self.fail_on_key(&f.error, operation, key, expected).await,
            None => self.fail(&f.error, operation),
        };
        if f.maybe_applied && is_transient(&f.error) {
            Error::Unconfirmed {
                operation,
                cause: Box::new(cause),
            }
        } else {
            cause
        }
    }

    /// Runs a blocking read on a dedicated connection, bounded by `wait`
    /// plus the response timeout. Transient failures are retried within the
    /// retry budget; a timeout ends the read.
    pub(crate) async fn blocking<T: FromRedisValue>(
        &self,
        operation: &'static str,
        cmd: &Cmd,
        wait: Duration,
    ) -> std::result::Result<T, RedisError> {
        let bound = wait.saturating_add(self.inner.response_timeout);
        let mut backoff = self.backoff();
        backoff.retry_timeouts = false;
        self.send(operation, Replay::Safe, backoff, || async move {
            let attempt = async {
                let mut link = self.inner.connector.blocking().await?;
                let reply = cmd.query_async::<T>(&mut link).await;
                // A connection whose command completed, even with a reply
                // error, is healthy and can serve the next blocking read.
                match &reply {
                    Err(e) if is_transient(e) => {}
                    _ => self.inner.connector.give_back(link),
                }
                reply
            };
            match tokio::time::timeout(bound, attempt).await {
                Ok(reply) => reply,
                Err(_) => Err(crate::connection::timeout_error()),
            }
        })
        .await
        .map_err(|f| f.error)
    }

    /// Sends an idempotent command to the master of the namespace's slot on
    /// a Cluster (where every key of the swarm lives: SCAN, CONFIG), as usual
    /// on one node; retried like [`RedisBus::query`], redis-rs's error kept.
    pub(crate) async fn query_on_swarm_node<T: FromRedisValue>(
        &self,
        operation: &'static str,
        cmd: &Cmd,
    ) -> std::result::Result<T, RedisError> {
        let slot = self.inner.connector.slot();
        self.send(operation, Replay::Safe, self.backoff(), || {
            let mut link = self.inner.link.clone();
            async move { link.query_on_slot(cmd, slot).await }
        })
        .await
        .map_err(|f| f.error)
    }

    /// Like [`RedisBus::pipeline`], returning redis-rs's error for callers
    /// that look at it (WRONGTYPE).
    pub(crate) async fn pipeline_raw<T: FromRedisValue>(
        &self,
        operation: &'static str,
        pipe: &Pipeline,
    ) -> std::result::Result<T, RedisError> {
        self.send(operation, Replay::Safe, self.backoff(), || {
            let mut link = self.inner.link.clone();
            async move { pipe.query_async(&mut link).await }
        })
        .await
        .map_err(|f| f.error)
    }

    /// Turns a WRONGTYPE reply about `key` into [`Error::WrongType`] (asking
    /// Redis for the type found), anything else into the usual mapping.
    pub(crate) async fn fail_on_key(
        &self,
        e: &RedisError,
        operation: &'static str,
        key: &str,
        expected: &'static str,
    ) -> Error {
        if is_wrong_type(e) {
            let found = self
                .key_type(key)
                .await
                .unwrap_or_else(|_| "unknown".into());
            return Error::WrongType {
                key: key.to_owned(),
                expected,
                found,
            };
        }
        self.fail(e, operation)
    }

    /// The Redis type of a key (`none`, `string`, `list`, …).
    pub(crate) async fn key_type(&self, key: &str) -> Result<String> {
        let mut cmd = redis::cmd("TYPE");
        cmd.arg(key);
        self.query("type", &cmd).await
    }

    /// The types of many keys, in one round trip.
    pub(crate) async fn key_types(&self, keys: &[String]) -> Result<Vec<String>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("TYPE").arg(key);
        }
        self.pipeline("type", &pipe).await
    }

    /// Reads string values (MGET), `max` keys per command, several
    /// commands per round trip.
    pub(crate) async fn mget(
        &self,
        operation: &'static str,
        keys: &[String],
    ) -> Result<Vec<Option<Vec<u8>>>> {
        const PER_MGET: usize = 2048;
        const MGETS_PER_TRIP: usize = 8;
        let mut out = Vec::with_capacity(keys.len());
        for group in keys.chunks(PER_MGET * MGETS_PER_TRIP) {
            let mut pipe = redis::pipe();
            for chunk in group.chunks(PER_MGET) {
                pipe.cmd("MGET").arg(chunk);
            }
            let replies: Vec<Vec<Option<Vec<u8>>>> = self.pipeline(operation, &pipe).await?;
            for reply in replies {
                out.extend(reply);
            }
        }
        if out.len() != keys.len() {
            return Err(unexpected_reply(
                operation,
                "MGET returned a different count",
            ));
        }
        Ok(out)
    }

    /// Checks a value against the size limit.
    pub(crate) fn check_size(&self, key: &str, encoded: &str) -> Result<()> {
        self.inner.limits.check(|| key.to_owned(), encoded)
    }

    /// [`Self::check_size`] for JSON this crate encoded: escapes count as the
    /// characters they stand for (`BusLimits::check_json`), so the limit is
    /// the caller's text, as on every bus.
    pub(crate) fn check_json_size(&self, key: &str, json: &str) -> Result<()> {
        self.inner.limits.check_json(|| key.to_owned(), json)
    }

    pub(crate) fn response_timeout(&self) -> Duration {
        self.inner.response_timeout
    }
}

/// Arguments of a script call.
pub(crate) trait ToArg: Sync {
    fn write(&self, cmd: &mut Cmd);
}

impl<T: redis::ToRedisArgs + Sync> ToArg for T {
    fn write(&self, cmd: &mut Cmd) {
        cmd.arg(self);
    }
}

/// Builds `EVALSHA sha numkeys keys… args…`.
pub(crate) fn evalsha(script: &Script, keys: &[&str], args: &[&dyn ToArg]) -> Cmd {
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(script.get_hash()).arg(keys.len()).arg(keys);
    for a in args {
        a.write(&mut cmd);
    }
    cmd
}

fn is_no_script(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) || e.code() == Some("NOSCRIPT")
}

/// Retry pacing within the retry budget: core's one retry policy
/// ([`crate::outage::retry_policy`]) decides, bounded by the deadline.
struct Backoff {
    deadline: Instant,
    policy: swarmbus_core::Backoff,
    /// Retries made so far.
    retries: u32,
    /// Whether a timed-out request is sent again (not for blocking reads,
    /// whose bound is the caller's wait).
    retry_timeouts: bool,
}

impl Backoff {
    /// Waits before the next attempt and returns true, or returns false when
    /// the error is not worth retrying or the budget is spent.
    async fn wait(&mut self, e: &RedisError) -> bool {
        use swarmbus_core::retry::{Attempt, Decision, Failure, RetryPolicy};
        let verdict = if is_transient(e) && (!e.is_timeout() || self.retry_timeouts) {
            Retry::Retry
        } else {
            Retry::Never
        };
        let left = self.deadline.saturating_duration_since(Instant::now());
        let attempt = Attempt::new(Failure::of_retry(verdict), self.retries).time_left(left);
        match self.policy.decide(&attempt) {
            Decision::Retry { wait, .. } => {
                tokio::time::sleep(wait).await;
                self.retries = self.retries.saturating_add(1);
                true
            }
            _ => false,
        }
    }
}

/// The longest one blocking read waits on the server (a week): longer
/// waits, `Duration::MAX` ("wait forever") included, are cut into reads of
/// at most this long, or end after it (`read_feed`).
pub(crate) const MAX_BLOCK: Duration = Duration::from_secs(7 * 86_400);

/// When a wait of `wait` from now ends; `Duration::MAX` saturates instead
/// of overflowing `Instant`.
pub(crate) fn deadline_after(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait).unwrap_or_else(far_future)
}

/// An instant far enough ahead to stand for "no deadline" (about 30 years).
fn far_future() -> Instant {
    let now = Instant::now();
    [30 * 365, 365, 1]
        .into_iter()
        .find_map(|days| now.checked_add(Duration::from_secs(days * 86_400)))
        .unwrap_or(now)
}

/// How long an operation-id marker lives: four times the longest a request
/// and its retries can take, and at least a minute.
fn op_marker_ttl(retry_for: Duration, response_timeout: Duration) -> u64 {
    // A bus that never gives up keeps its markers a week (Redis refuses
    // expiry times past its range, and a week covers any real outage).
    let span = retry_for
        .saturating_add(response_timeout)
        .saturating_mul(4)
        .max(Duration::from_secs(60))
        .min(Duration::from_secs(7 * 86_400));
    u64::try_from(span.as_millis()).unwrap_or(u64::MAX)
}

/// Reads a reply array's element as text.
pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Okay => Some("OK".into()),
        Value::Int(i) => Some(i.to_string()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        _ => None,
    }
}

/// Reads a reply array's element as an integer.
pub(crate) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        Value::Double(d) if d.fract() == 0.0 => Some(*d as i64),
        _ => None,
    }
}

/// A reply's elements, when it is an array.
pub(crate) fn items(v: Value) -> Option<Vec<Value>> {
    match v {
        Value::Array(items) | Value::Set(items) => Some(items),
        _ => None,
    }
}
