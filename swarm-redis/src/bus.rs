//! [`RedisBus`]: the handle, its key names, and how it sends requests
//! (retries, timeouts, NOSCRIPT, WRONGTYPE). The trait implementations live
//! in one module per capability.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::{Cmd, ErrorKind, FromRedisValue, Pipeline, RedisError, Script, ServerErrorKind, Value};
use secrecy::{ExposeSecret, SecretString};
use swarmbus_core::error::{Error, Result};
use swarmbus_core::keys::{Key, KeySpace, ShardId, WorkerId};
use swarmbus_core::model::BusLimits;
use tokio::time::Instant;

use crate::config::RedisConfig;
use crate::connection::{ConnectFailure, Connector, Link};
use crate::errors::{is_transient, is_wrong_type, map_error, surely_not_sent, unexpected_reply};
use crate::scripts;

/// Whether a request may be sent again after it may have reached Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Idempotent: repeating it changes nothing (SET, SET NX-like scripts,
    /// reads).
    Safe,
    /// Repeating it could count twice (INCRBYFLOAT, RPUSH, LPOP): retried
    /// only when the connection was refused, so it surely was not sent.
    Unsafe,
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
/// use swarmbus_core::model::Finding;
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
    pub(crate) cluster: bool,
    secret: Option<SecretString>,
    /// Consumer groups known to exist (created or seen) by this handle.
    pub(crate) groups: Mutex<HashSet<String>>,
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
                cluster: config.is_cluster(),
                secret,
                groups: Mutex::new(HashSet::new()),
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
        let reply: String = self
            .query("ping", Replay::Safe, &redis::cmd("PING"))
            .await?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(unexpected_reply("ping", &reply))
        }
    }

    /// Loads every script (SCRIPT LOAD, on every master of a Cluster), so
    /// later calls go by SHA.
    async fn load_scripts(&self) -> Result<()> {
        let mut backoff = self.backoff();
        for script in scripts::all() {
            self.load_script(script, &mut backoff)
                .await
                .map_err(|e| self.fail(&e, "load scripts"))?;
        }
        Ok(())
    }

    async fn load_script(
        &self,
        script: &Script,
        backoff: &mut Backoff,
    ) -> std::result::Result<(), RedisError> {
        loop {
            let mut link = self.inner.link.clone();
            match script.load_async(&mut link).await {
                Ok(_) => return Ok(()),
                Err(e) => {
                    if !backoff.wait(&e, Replay::Safe).await {
                        return Err(e);
                    }
                }
            }
        }
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
            deadline: Instant::now() + self.inner.retry_for,
            delay: Duration::from_millis(20),
        }
    }

    /// Sends one command, retrying transient failures as `replay` allows.
    pub(crate) async fn query<T: FromRedisValue>(
        &self,
        operation: &'static str,
        replay: Replay,
        cmd: &Cmd,
    ) -> Result<T> {
        self.query_raw(operation, replay, cmd)
            .await
            .map_err(|e| self.fail(&e, operation))
    }

    /// Like [`RedisBus::query`], returning redis-rs's error for callers that
    /// look at it (WRONGTYPE, NOGROUP).
    pub(crate) async fn query_raw<T: FromRedisValue>(
        &self,
        operation: &'static str,
        replay: Replay,
        cmd: &Cmd,
    ) -> std::result::Result<T, RedisError> {
        let mut backoff = self.backoff();
        loop {
            let mut link = self.inner.link.clone();
            match cmd.query_async(&mut link).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if !backoff.wait(&e, replay).await {
                        tracing::debug!(operation, error = %e.category(), "redis request failed");
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Sends one pipeline (one round trip), retrying as `replay` allows; a
    /// NOSCRIPT reply loads the scripts and sends the pipeline again.
    pub(crate) async fn pipeline<T: FromRedisValue>(
        &self,
        operation: &'static str,
        replay: Replay,
        pipe: &Pipeline,
    ) -> Result<T> {
        self.pipeline_raw(operation, replay, pipe)
            .await
            .map_err(|e| self.fail(&e, operation))
    }

    pub(crate) async fn pipeline_raw<T: FromRedisValue>(
        &self,
        operation: &'static str,
        replay: Replay,
        pipe: &Pipeline,
    ) -> std::result::Result<T, RedisError> {
        let mut backoff = self.backoff();
        let mut reloaded = false;
        loop {
            let mut link = self.inner.link.clone();
            match pipe.query_async(&mut link).await {
                Ok(v) => return Ok(v),
                Err(e) if is_no_script(&e) && !reloaded => {
                    // Scripts are gone (restart, failover, SCRIPT FLUSH):
                    // nothing of the pipeline ran that needed them.
                    reloaded = true;
                    self.reload_scripts(&mut backoff).await?;
                }
                Err(e) => {
                    if !backoff.wait(&e, replay).await {
                        tracing::debug!(operation, error = %e.category(), "redis request failed");
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Calls a script by SHA (EVALSHA), loading it on NOSCRIPT.
    pub(crate) async fn eval<T: FromRedisValue>(
        &self,
        operation: &'static str,
        replay: Replay,
        script: &Script,
        keys: &[&str],
        args: &[&dyn ToArg],
    ) -> Result<T> {
        self.eval_raw(operation, replay, script, keys, args)
            .await
            .map_err(|e| self.fail(&e, operation))
    }

    pub(crate) async fn eval_raw<T: FromRedisValue>(
        &self,
        operation: &'static str,
        replay: Replay,
        script: &Script,
        keys: &[&str],
        args: &[&dyn ToArg],
    ) -> std::result::Result<T, RedisError> {
        let cmd = evalsha(script, keys, args);
        let mut backoff = self.backoff();
        let mut reloaded = false;
        loop {
            let mut link = self.inner.link.clone();
            match cmd.query_async(&mut link).await {
                Ok(v) => return Ok(v),
                Err(e) if is_no_script(&e) && !reloaded => {
                    reloaded = true;
                    self.load_script(script, &mut backoff).await?;
                }
                Err(e) => {
                    if !backoff.wait(&e, replay).await {
                        tracing::debug!(operation, error = %e.category(), "redis request failed");
                        return Err(e);
                    }
                }
            }
        }
    }

    async fn reload_scripts(&self, backoff: &mut Backoff) -> std::result::Result<(), RedisError> {
        for script in scripts::all() {
            self.load_script(script, backoff).await?;
        }
        Ok(())
    }

    /// Runs a blocking command on a dedicated connection, bounded by `wait`
    /// plus the response timeout. Transient failures are retried within the
    /// retry budget when `replay` allows.
    pub(crate) async fn blocking<T: FromRedisValue>(
        &self,
        operation: &'static str,
        replay: Replay,
        cmd: &Cmd,
        wait: Duration,
    ) -> std::result::Result<T, RedisError> {
        let bound = wait.saturating_add(self.inner.response_timeout);
        let mut backoff = self.backoff();
        loop {
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
            let outcome = match tokio::time::timeout(bound, attempt).await {
                Ok(reply) => reply,
                Err(_) => Err(crate::connection::timeout_error()),
            };
            match outcome {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if e.is_timeout() || !backoff.wait(&e, replay).await {
                        tracing::debug!(operation, "blocking redis request failed");
                        return Err(e);
                    }
                }
            }
        }
    }

    /// PUBLISH, sent on a Cluster to the namespace slot's master (where the
    /// subscriptions listen), retried like any idempotent request.
    pub(crate) async fn publish_raw(&self, cmd: &Cmd) -> Result<i64> {
        let slot = self.inner.connector.slot();
        let mut backoff = self.backoff();
        loop {
            let mut link = self.inner.link.clone();
            match link.query_on_slot(cmd, slot).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if !backoff.wait(&e, Replay::Safe).await {
                        return Err(self.fail(&e, "publish"));
                    }
                }
            }
        }
    }

    /// Sends a command to the master of the namespace's slot on a Cluster
    /// (where every key of the swarm lives: SCAN, CONFIG), as usual on one
    /// node; retried within the budget as `replay` allows.
    pub(crate) async fn query_on_swarm_node<T: FromRedisValue>(
        &self,
        replay: Replay,
        cmd: &Cmd,
    ) -> std::result::Result<T, RedisError> {
        let slot = self.inner.connector.slot();
        let mut backoff = self.backoff();
        loop {
            let mut link = self.inner.link.clone();
            match link.query_on_slot(cmd, slot).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    if !backoff.wait(&e, replay).await {
                        return Err(e);
                    }
                }
            }
        }
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
        self.query("type", Replay::Safe, &cmd).await
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
        self.pipeline("type", Replay::Safe, &pipe).await
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
            let replies: Vec<Vec<Option<Vec<u8>>>> =
                self.pipeline(operation, Replay::Safe, &pipe).await?;
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

/// Retry pacing within the retry budget.
struct Backoff {
    deadline: Instant,
    delay: Duration,
}

impl Backoff {
    /// Waits before the next attempt and returns true, or returns false when
    /// the error is not worth retrying or the budget is spent.
    async fn wait(&mut self, e: &RedisError, replay: Replay) -> bool {
        let allowed = is_transient(e) && (replay == Replay::Safe || surely_not_sent(e));
        if !allowed || Instant::now() + self.delay > self.deadline {
            return false;
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Duration::from_millis(500));
        true
    }
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
