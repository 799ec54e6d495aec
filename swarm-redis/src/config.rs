//! How to reach Redis: [`RedisConfig`], built from a URL and refined with
//! builder methods.
//!
//! The password is held as a [`SecretString`] from the moment the URL is
//! parsed: it never reaches `Debug`, errors or logs. Timeouts are explicit
//! (redis-rs's own defaults let a command wait about 9 s while Redis is
//! down).

use std::fmt;
use std::time::Duration;

use redis::{
    ConnectionAddr, ConnectionInfo, IntoConnectionInfo, ProtocolVersion, RedisConnectionInfo,
};
use secrecy::{ExposeSecret, SecretString};
use swarmbus_core::BusLimits;
use swarmbus_core::error::{Error, Result};
use swarmbus_core::keys::{KeySpace, Namespace};

/// Default time to open a TCP connection (and finish the handshake).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time to wait for the reply to one non-blocking command.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Default time during which a transient failure (connection lost, Redis
/// restarting, cluster failover) is retried before the error is returned.
pub const DEFAULT_RETRY_FOR: Duration = Duration::from_secs(5);

/// A retry budget that means "never give up" (about 100 years): see
/// [`RedisConfig::ride_outages`].
pub const RIDE_OUTAGES: Duration = Duration::from_secs(100 * 365 * 86_400);

/// Where the servers are: one node or the seed nodes of a cluster.
#[derive(Clone)]
pub(crate) enum Topology {
    /// One server (or a proxy in front of several).
    Single(ConnectionAddr),
    /// A Redis Cluster, reached through these seed nodes.
    Cluster(Vec<ConnectionAddr>),
}

/// How to connect a [`crate::RedisBus`].
///
/// ```
/// use std::time::Duration;
/// use swarmbus_core::keys::Namespace;
/// use swarmbus_redis::RedisConfig;
///
/// let config = RedisConfig::from_url("redis://swarm:s3cret@127.0.0.1:6379/2")?
///     .namespace(Namespace::new("team-a")?)
///     .response_timeout(Duration::from_secs(1));
/// // The password is never printed.
/// assert!(!format!("{config:?}").contains("s3cret"));
/// # Ok::<(), swarmbus_core::Error>(())
/// ```
#[derive(Clone)]
pub struct RedisConfig {
    pub(crate) topology: Topology,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<SecretString>,
    pub(crate) database: i64,
    pub(crate) protocol: ProtocolVersion,
    pub(crate) namespace: Option<Namespace>,
    pub(crate) connect_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) retry_for: Duration,
    pub(crate) limits: BusLimits,
    #[cfg(feature = "tls")]
    pub(crate) tls_root_cert: Option<Vec<u8>>,
}

/// One URL's parts, with the password lifted out into a secret.
struct ParsedUrl {
    addr: ConnectionAddr,
    username: Option<String>,
    password: Option<SecretString>,
    database: i64,
    protocol: ProtocolVersion,
}

fn parse_url(url: &str) -> Result<ParsedUrl> {
    let scheme_ok = ["redis://", "rediss://", "valkey://", "valkeys://"]
        .iter()
        .any(|s| url.starts_with(s));
    if !scheme_ok {
        return Err(Error::InvalidInput {
            field: "redis url",
            reason: "must start with redis:// or rediss://".into(),
        });
    }
    if (url.starts_with("rediss://") || url.starts_with("valkeys://")) && !cfg!(feature = "tls") {
        return Err(Error::InvalidInput {
            field: "redis url",
            reason: "rediss:// (TLS) needs the `tls` feature of swarmbus-redis".into(),
        });
    }
    // redis-rs's parser never echoes the URL in its errors; we still only
    // keep its category so that nothing of the URL can leak.
    let info: ConnectionInfo = url
        .into_connection_info()
        .map_err(|e| Error::InvalidInput {
            field: "redis url",
            reason: format!("{} ({})", e.category(), e.detail().unwrap_or("malformed")),
        })?;
    let redis = info.redis_settings();
    Ok(ParsedUrl {
        addr: info.addr().clone(),
        username: redis.username().map(str::to_owned),
        password: redis.password().map(|p| SecretString::from(p.to_owned())),
        database: redis.db(),
        protocol: redis.protocol(),
    })
}

impl RedisConfig {
    /// One Redis server: `redis://[user[:password]@]host[:port][/db]`, or
    /// `rediss://…` for TLS (feature `tls`).
    pub fn from_url(url: &str) -> Result<Self> {
        let parsed = parse_url(url)?;
        Ok(Self::with_parts(
            Topology::Single(parsed.addr.clone()),
            parsed,
        ))
    }

    /// A Redis Cluster reached through these seed nodes (one is enough;
    /// the others are found from it). Credentials are taken from the first
    /// URL that has them. A namespace is required (see
    /// [`RedisConfig::namespace`]).
    pub fn cluster<I, S>(urls: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut nodes = Vec::new();
        let mut first: Option<ParsedUrl> = None;
        for url in urls {
            let parsed = parse_url(url.as_ref())?;
            if parsed.database != 0 {
                return Err(Error::InvalidInput {
                    field: "redis url",
                    reason: "a Redis Cluster has only database 0".into(),
                });
            }
            nodes.push(parsed.addr.clone());
            match &mut first {
                None => first = Some(parsed),
                Some(f) => {
                    if f.password.is_none() && parsed.password.is_some() {
                        f.password = parsed.password;
                        f.username = parsed.username;
                    }
                }
            }
        }
        let Some(first) = first else {
            return Err(Error::InvalidInput {
                field: "redis url",
                reason: "a cluster needs at least one seed node".into(),
            });
        };
        Ok(Self::with_parts(Topology::Cluster(nodes), first))
    }

    fn with_parts(topology: Topology, parsed: ParsedUrl) -> Self {
        Self {
            topology,
            username: parsed.username,
            password: parsed.password,
            database: parsed.database,
            protocol: parsed.protocol,
            namespace: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            retry_for: DEFAULT_RETRY_FOR,
            limits: BusLimits::default(),
            #[cfg(feature = "tls")]
            tls_root_cert: None,
        }
    }

    /// Prefixes every key with `{ns}:` (a Cluster hash tag): several swarms
    /// share one Redis, and one swarm's keys share one slot. Required on a
    /// Cluster.
    pub fn namespace(mut self, namespace: Namespace) -> Self {
        self.namespace = Some(namespace);
        self
    }

    /// Selects a database (single node only; a Cluster has only 0).
    pub fn database(mut self, database: i64) -> Self {
        self.database = database;
        self
    }

    /// The ACL user.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// The password (of the ACL user, or `requirepass`).
    pub fn password(mut self, password: SecretString) -> Self {
        self.password = Some(password);
        self
    }

    /// How long opening a connection may take.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long the reply to one non-blocking command may take. Blocking
    /// reads (feed, task and query waits) run on their own connections and
    /// are given their wait plus this.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// For how long a transient failure is retried before it is returned
    /// (zero: never retried). Only operations that are safe to repeat are
    /// retried after a request may have reached the server.
    pub fn retry_for(mut self, budget: Duration) -> Self {
        self.retry_for = budget;
        self
    }

    /// Retries transient failures for as long as Redis is away (the
    /// default of the long-running commands: a worker, a librarian, the MCP
    /// server). Same as `retry_for(RIDE_OUTAGES)`.
    pub fn ride_outages(self) -> Self {
        self.retry_for(RIDE_OUTAGES)
    }

    /// Size limits and the default heartbeat TTL.
    pub fn limits(mut self, limits: BusLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Trusts this CA certificate (PEM) for `rediss://` connections, in
    /// addition to the system's roots.
    #[cfg(feature = "tls")]
    pub fn tls_root_cert(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls_root_cert = Some(pem.into());
        self
    }

    /// Whether this is a Cluster configuration.
    pub fn is_cluster(&self) -> bool {
        matches!(self.topology, Topology::Cluster(_))
    }

    /// The key space the bus will use.
    pub fn key_space(&self) -> KeySpace {
        match &self.namespace {
            Some(ns) => KeySpace::namespaced(ns),
            None => KeySpace::plain(),
        }
    }

    /// Checks the combination of settings.
    pub(crate) fn validate(&self) -> Result<()> {
        if self.is_cluster() {
            if self.namespace.is_none() {
                return Err(Error::InvalidInput {
                    field: "redis namespace",
                    reason: "required on a Redis Cluster, so that one swarm's keys share a hash \
                             slot and its scripts stay atomic"
                        .into(),
                });
            }
            if self.database != 0 {
                return Err(Error::InvalidInput {
                    field: "redis database",
                    reason: "a Redis Cluster has only database 0".into(),
                });
            }
        }
        if self.database < 0 {
            return Err(Error::InvalidInput {
                field: "redis database",
                reason: "must not be negative".into(),
            });
        }
        if self.connect_timeout.is_zero() || self.response_timeout.is_zero() {
            return Err(Error::InvalidInput {
                field: "redis timeout",
                reason: "connect and response timeouts must be above zero".into(),
            });
        }
        Ok(())
    }

    /// The handshake settings with the secret put back, for redis-rs only.
    pub(crate) fn redis_settings(&self, database: i64) -> RedisConnectionInfo {
        let mut settings = RedisConnectionInfo::default()
            .set_db(database)
            .set_protocol(self.protocol);
        if let Some(user) = &self.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &self.password {
            settings = settings.set_password(password.expose_secret());
        }
        settings
    }

    /// The connection info of one node, secret included, for redis-rs only.
    pub(crate) fn node_info(&self, addr: &ConnectionAddr, database: i64) -> Result<ConnectionInfo> {
        let info = addr
            .clone()
            .into_connection_info()
            .map_err(|e| Error::InvalidInput {
                field: "redis url",
                reason: e.category().to_owned(),
            })?;
        Ok(info.set_redis_settings(self.redis_settings(database)))
    }

    /// The first (or only) node's address.
    pub(crate) fn seed_addr(&self) -> Option<&ConnectionAddr> {
        match &self.topology {
            Topology::Single(addr) => Some(addr),
            Topology::Cluster(addrs) => addrs.first(),
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes: Vec<String> = match &self.topology {
            Topology::Single(addr) => vec![addr.to_string()],
            Topology::Cluster(addrs) => addrs.iter().map(ToString::to_string).collect(),
        };
        let mut s = f.debug_struct("RedisConfig");
        s.field("cluster", &self.is_cluster())
            .field("nodes", &nodes)
            .field("tls", &self.uses_tls())
            .field("username", &self.username)
            .field(
                "password",
                &if self.password.is_some() {
                    "<redacted>"
                } else {
                    "<none>"
                },
            )
            .field("database", &self.database)
            .field("namespace", &self.namespace.as_ref().map(Namespace::as_str))
            .field("connect_timeout", &self.connect_timeout)
            .field("response_timeout", &self.response_timeout)
            .field("retry_for", &self.retry_for)
            .field("limits", &self.limits);
        s.finish()
    }
}

impl RedisConfig {
    /// Whether connections use TLS (`rediss://`).
    pub fn uses_tls(&self) -> bool {
        let tls = |a: &ConnectionAddr| matches!(a, ConnectionAddr::TcpTls { .. });
        match &self.topology {
            Topology::Single(addr) => tls(addr),
            Topology::Cluster(addrs) => addrs.iter().any(tls),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_printed() {
        let c = RedisConfig::from_url("redis://swarm:hunter2@127.0.0.1:6390/3").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert!(shown.contains("127.0.0.1:6390"), "{shown}");
        assert_eq!(c.database, 3);
        assert_eq!(c.username.as_deref(), Some("swarm"));
        assert_eq!(
            c.password.as_ref().map(|p| p.expose_secret()),
            Some("hunter2")
        );
    }

    #[test]
    fn a_cluster_requires_a_namespace() {
        let c = RedisConfig::cluster(["redis://127.0.0.1:7000"]).unwrap();
        let err = c.validate().unwrap_err();
        assert!(err.to_string().contains("namespace"), "{err}");
        let c = c.namespace(Namespace::new("swarm").unwrap());
        assert!(c.validate().is_ok());
        assert_eq!(c.key_space().prefix(), "{swarm}:");
    }

    #[test]
    fn bad_urls_are_rejected_without_echoing_them() {
        let err = RedisConfig::from_url("http://user:pw@host").unwrap_err();
        assert!(!err.to_string().contains("pw"), "{err}");
        let err = RedisConfig::from_url("redis://:pw@host/notadb").unwrap_err();
        assert!(!err.to_string().contains("pw"), "{err}");
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn tls_urls_need_the_feature() {
        let err = RedisConfig::from_url("rediss://127.0.0.1:6380").unwrap_err();
        assert!(err.to_string().contains("tls"), "{err}");
    }
}
