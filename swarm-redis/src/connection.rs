//! The two kinds of connection behind one bus: a single node (through
//! redis-rs's `ConnectionManager`, which reconnects) or a Redis Cluster
//! (through `cluster_async`), plus the dedicated connections that blocking
//! reads need.
//!
//! Why dedicated connections: a blocking command (XREADGROUP BLOCK, BLMOVE,
//! BLPOP) holds its connection on the server until it returns, so on the
//! shared multiplexed connection it would delay every other command, and
//! the shared connection's response timeout would cut it short. Blocking
//! reads therefore borrow a connection from a small pool of their own, with
//! no response timeout of redis-rs: the bus bounds them itself.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, Pipeline, RedisFuture, RedisResult, Value};
use swarmbus_core::error::{Error, Result};

use crate::config::{RedisConfig, Topology};

/// How many idle blocking connections are kept for reuse.
const IDLE_BLOCKING_CONNECTIONS: usize = 8;

/// A response timeout long enough never to fire before the bus's own bound
/// on a blocking read (redis-rs's cluster client wants some value).
const UNBOUNDED: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone)]
enum Conn {
    Manager(ConnectionManager),
    Plain(MultiplexedConnection),
    Cluster(ClusterConnection),
}

/// A connection of either kind that counts the requests it sends (one per
/// command or pipeline): the number of round trips.
#[derive(Clone)]
pub(crate) struct Link {
    conn: Conn,
    trips: Arc<AtomicU64>,
}

impl ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.trips.fetch_add(1, Ordering::Relaxed);
        match &mut self.conn {
            Conn::Manager(c) => c.req_packed_command(cmd),
            Conn::Plain(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.trips.fetch_add(1, Ordering::Relaxed);
        match &mut self.conn {
            Conn::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Plain(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.conn {
            Conn::Manager(c) => c.get_db(),
            Conn::Plain(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.conn {
            Conn::Manager(_) => "single node",
            Conn::Plain(_) => "dedicated",
            Conn::Cluster(_) => "cluster",
        };
        f.debug_struct("Link").field("kind", &kind).finish()
    }
}

/// Opens connections: the shared one, dedicated ones for blocking reads and
/// pub/sub ones.
pub(crate) struct Connector {
    kind: ConnectorKind,
    connect_timeout: Duration,
    trips: Arc<AtomicU64>,
    idle: Mutex<Vec<Link>>,
}

enum ConnectorKind {
    Single {
        client: Client,
    },
    Cluster {
        /// Clients of the seed nodes, for pub/sub when the slot's master
        /// cannot be found.
        seeds: Vec<Client>,
        /// A cluster client without a response timeout, for blocking reads.
        blocking: Box<ClusterClient>,
        /// The hash slot of the namespace: every key of the swarm lives
        /// there, PUBLISH is sent there and subscribers listen there.
        slot: u16,
        /// For connections to the slot's master (credentials, TLS).
        config: Box<RedisConfig>,
    },
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            ConnectorKind::Single { .. } => "single node",
            ConnectorKind::Cluster { .. } => "cluster",
        };
        f.debug_struct("Connector").field("kind", &kind).finish()
    }
}

fn config_error(e: redis::RedisError) -> Error {
    Error::InvalidInput {
        field: "redis connection settings",
        reason: e.category().to_owned(),
    }
}

#[cfg(feature = "tls")]
fn install_crypto_provider() {
    // rustls needs one process-wide provider; if the application installed
    // one already, that one stays.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn single_client(config: &RedisConfig, info: redis::ConnectionInfo) -> Result<Client> {
    #[cfg(feature = "tls")]
    {
        install_crypto_provider();
        if let Some(root) = &config.tls_root_cert {
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root.clone()),
            };
            return Client::build_with_tls(info, certs).map_err(config_error);
        }
    }
    let _ = config;
    Client::open(info).map_err(config_error)
}

fn cluster_builder(
    config: &RedisConfig,
    nodes: Vec<redis::ConnectionInfo>,
) -> ClusterClientBuilder {
    let builder = ClusterClientBuilder::new(nodes).connection_timeout(config.connect_timeout);
    #[cfg(feature = "tls")]
    {
        install_crypto_provider();
        if let Some(root) = &config.tls_root_cert {
            return builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(root.clone()),
            });
        }
    }
    builder
}

impl Connector {
    /// Opens the shared connection and prepares the connector.
    pub(crate) async fn open(
        config: &RedisConfig,
    ) -> std::result::Result<(Self, Link), ConnectFailure> {
        let trips = Arc::new(AtomicU64::new(0));
        match &config.topology {
            Topology::Single(addr) => {
                let info = config
                    .node_info(addr, config.database)
                    .map_err(ConnectFailure::Config)?;
                let client = single_client(config, info).map_err(ConnectFailure::Config)?;
                // Fail fast while Redis is down (one reconnect attempt per
                // command, short backoff): the bus retries transient faults
                // itself, within `retry_for`, and only where that is safe.
                let manager_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.connect_timeout))
                    .set_response_timeout(Some(config.response_timeout))
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(20))
                    .set_max_delay(Duration::from_millis(200));
                let manager = client
                    .get_connection_manager_with_config(manager_config)
                    .await
                    .map_err(ConnectFailure::Redis)?;
                let link = Link {
                    conn: Conn::Manager(manager),
                    trips: trips.clone(),
                };
                let connector = Self {
                    kind: ConnectorKind::Single { client },
                    connect_timeout: config.connect_timeout,
                    trips,
                    idle: Mutex::new(Vec::new()),
                };
                Ok((connector, link))
            }
            Topology::Cluster(addrs) => {
                let mut infos = Vec::with_capacity(addrs.len());
                let mut seeds = Vec::with_capacity(addrs.len());
                for addr in addrs {
                    let info = config.node_info(addr, 0).map_err(ConnectFailure::Config)?;
                    seeds
                        .push(single_client(config, info.clone()).map_err(ConnectFailure::Config)?);
                    infos.push(info);
                }
                let shared = cluster_builder(config, infos.clone())
                    .response_timeout(config.response_timeout)
                    .overall_response_timeout(Some(config.response_timeout.saturating_mul(2)))
                    .retries(2)
                    .min_retry_wait(10)
                    .max_retry_wait(200)
                    .build()
                    .map_err(|e| ConnectFailure::Config(config_error(e)))?;
                let blocking = cluster_builder(config, infos)
                    .response_timeout(UNBOUNDED)
                    .overall_response_timeout(None)
                    .retries(2)
                    .build()
                    .map_err(|e| ConnectFailure::Config(config_error(e)))?;
                let conn = tokio::time::timeout(
                    config.connect_timeout.saturating_mul(2),
                    shared.get_async_connection(),
                )
                .await
                .map_err(|_| ConnectFailure::Timeout(config.connect_timeout.saturating_mul(2)))?
                .map_err(ConnectFailure::Redis)?;
                let mut link = Link {
                    conn: Conn::Cluster(conn),
                    trips: trips.clone(),
                };
                let mut keyslot = redis::cmd("CLUSTER");
                keyslot
                    .arg("KEYSLOT")
                    .arg(config.key_space().internal("slot"));
                let slot: u16 = keyslot
                    .query_async(&mut link)
                    .await
                    .map_err(ConnectFailure::Redis)?;
                let connector = Self {
                    kind: ConnectorKind::Cluster {
                        seeds,
                        blocking: Box::new(blocking),
                        slot,
                        config: Box::new(config.clone()),
                    },
                    connect_timeout: config.connect_timeout,
                    trips,
                    idle: Mutex::new(Vec::new()),
                };
                Ok((connector, link))
            }
        }
    }

    /// Requests sent so far on every connection of this bus but pub/sub.
    pub(crate) fn round_trips(&self) -> u64 {
        self.trips.load(Ordering::Relaxed)
    }

    /// A connection for one blocking read: an idle one, or a new one.
    pub(crate) async fn blocking(&self) -> RedisResult<Link> {
        if let Some(link) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Ok(link);
        }
        let conn = match &self.kind {
            ConnectorKind::Single { client } => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(None);
                Conn::Plain(
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                )
            }
            ConnectorKind::Cluster { blocking, .. } => {
                let conn = tokio::time::timeout(
                    self.connect_timeout.saturating_mul(2),
                    blocking.get_async_connection(),
                )
                .await
                .map_err(|_| timeout_error())??;
                Conn::Cluster(conn)
            }
        };
        Ok(Link {
            conn,
            trips: self.trips.clone(),
        })
    }

    /// Forgets the idle blocking connections (after a connection failure:
    /// they may be dead sockets to a server that went away).
    pub(crate) fn drop_idle(&self) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.clear();
        }
    }

    /// Gives back a blocking connection whose last command completed.
    pub(crate) fn give_back(&self, link: Link) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < IDLE_BLOCKING_CONNECTIONS
        {
            idle.push(link);
        }
    }

    /// A new pub/sub connection: to the server, or on a Cluster to the
    /// master of the namespace's slot (where PUBLISH is sent, so that its
    /// receiver count includes these subscribers), else to a seed node.
    pub(crate) async fn pubsub(&self, shared: &Link) -> RedisResult<redis::aio::PubSub> {
        let mut clients: Vec<Client> = Vec::new();
        match &self.kind {
            ConnectorKind::Single { client } => clients.push(client.clone()),
            ConnectorKind::Cluster {
                seeds,
                slot,
                config,
                ..
            } => {
                match slot_master(shared.clone(), *slot).await {
                    Ok(Some((host, port))) => {
                        let addr = match config.seed_addr() {
                            Some(redis::ConnectionAddr::TcpTls {
                                insecure,
                                tls_params,
                                ..
                            }) => redis::ConnectionAddr::TcpTls {
                                host,
                                port,
                                insecure: *insecure,
                                tls_params: tls_params.clone(),
                            },
                            _ => redis::ConnectionAddr::Tcp(host, port),
                        };
                        if let Ok(info) = config.node_info(&addr, 0)
                            && let Ok(client) = single_client(config, info)
                        {
                            clients.push(client);
                        }
                    }
                    Ok(None) => {}
                    Err(e) => tracing::debug!(error = %e.category(), "CLUSTER SLOTS failed"),
                }
                clients.extend(seeds.iter().cloned());
            }
        }
        let mut last = None;
        for client in clients {
            match tokio::time::timeout(self.connect_timeout, client.get_async_pubsub()).await {
                Ok(Ok(pubsub)) => return Ok(pubsub),
                Ok(Err(e)) => last = Some(e),
                Err(_) => last = Some(timeout_error()),
            }
        }
        Err(last.unwrap_or_else(timeout_error))
    }
}

/// The master serving `slot`, from CLUSTER SLOTS.
async fn slot_master(mut link: Link, slot: u16) -> RedisResult<Option<(String, u16)>> {
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("SLOTS");
    let ranges: Vec<Value> = cmd.query_async(&mut link).await?;
    for range in ranges {
        let Value::Array(parts) = range else { continue };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (parts.first(), parts.get(1), parts.get(2))
        else {
            continue;
        };
        if i64::from(slot) < *start || i64::from(slot) > *end {
            continue;
        }
        let host = match master.first() {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            _ => continue,
        };
        let Some(Value::Int(port)) = master.get(1) else {
            continue;
        };
        let Ok(port) = u16::try_from(*port) else {
            continue;
        };
        return Ok(Some((host, port)));
    }
    Ok(None)
}

/// An I/O timeout in redis-rs's terms, so that it classifies as one.
pub(crate) fn timeout_error() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "timed out",
    ))
}

/// Why the first connection failed.
#[derive(Debug)]
pub(crate) enum ConnectFailure {
    Config(Error),
    Redis(redis::RedisError),
    Timeout(Duration),
}

impl Connector {
    /// On a Cluster, the namespace's slot (where every key of the swarm
    /// lives, and so where SCAN and CONFIG for it are sent).
    pub(crate) fn slot(&self) -> Option<u16> {
        match &self.kind {
            ConnectorKind::Single { .. } => None,
            ConnectorKind::Cluster { slot, .. } => Some(*slot),
        }
    }
}

impl Link {
    /// Sends a command to the master of `slot` (a Cluster), or as usual.
    pub(crate) async fn query_on_slot<T: redis::FromRedisValue>(
        &mut self,
        cmd: &Cmd,
        slot: Option<u16>,
    ) -> RedisResult<T> {
        use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
        match (&mut self.conn, slot) {
            (Conn::Cluster(c), Some(slot)) => {
                self.trips.fetch_add(1, Ordering::Relaxed);
                let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(
                    Route::new(slot, SlotAddr::Master),
                ));
                let value = c.route_command(cmd.clone(), route).await?;
                Ok(redis::from_redis_value(value)?)
            }
            _ => cmd.query_async(self).await,
        }
    }
}
