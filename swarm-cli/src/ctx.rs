//! What every command shares: the bus and the environment.

use std::sync::Arc;

use swarmbus_core::bus::Bus;
use swarmbus_core::error::Result;
use swarmbus_core::keys::{KeySpace, Namespace};
use swarmbus_core::memory::MemoryBus;
use swarmbus_core::model::BusLimits;
use swarmbus_redis::{RedisBus, RedisConfig};

/// Options shared by every command.
#[derive(Debug, clap::Args)]
pub(crate) struct CtxArgs {
    /// Redis URL of the swarm's bus (`redis://`, `rediss://`, with ACL user and
    /// password); without it commands use an empty in-memory bus.
    #[arg(long, env = "REDIS_URL", global = true, hide_env_values = true)]
    pub(crate) redis_url: Option<String>,
    /// The URL names a Redis Cluster seed node.
    #[arg(long, env = "REDIS_CLUSTER", global = true)]
    pub(crate) cluster: bool,
    /// Key namespace of the swarm (`{ns}:` prefix); required on a Cluster.
    #[arg(long, env = "SWARM_NAMESPACE", global = true)]
    pub(crate) namespace: Option<String>,
}

/// The shared context of a command.
#[derive(Debug)]
pub(crate) struct Ctx {
    args: CtxArgs,
}

impl Ctx {
    /// Loads `.env` (if any) and keeps the options.
    pub(crate) fn new(args: CtxArgs) -> Self {
        // A missing .env is normal; variables already set win over it.
        let _ = dotenvy::dotenv();
        Self { args }
    }

    /// Opens the swarm's bus: Redis when a URL is given, else in-memory.
    pub(crate) async fn bus(&self) -> Result<Arc<dyn Bus>> {
        let namespace = self
            .args
            .namespace
            .clone()
            .map(Namespace::new)
            .transpose()?;
        match &self.args.redis_url {
            Some(url) => {
                let mut config = if self.args.cluster {
                    RedisConfig::cluster([url.as_str()])?
                } else {
                    RedisConfig::from_url(url)?
                };
                if let Some(ns) = namespace {
                    config = config.namespace(ns);
                }
                Ok(Arc::new(RedisBus::connect(config).await?))
            }
            None => {
                let keys = namespace
                    .map(|ns| KeySpace::namespaced(&ns))
                    .unwrap_or_default();
                Ok(Arc::new(MemoryBus::with_config(keys, BusLimits::default())))
            }
        }
    }
}

/// Prints an error of a command to stderr and gives exit status 1.
pub(crate) fn fail(what: &str, err: impl std::fmt::Display) -> std::process::ExitCode {
    eprintln!("swarm: {what}: {err}");
    std::process::ExitCode::FAILURE
}

/// When a wait of `wait` (given by the user) from now ends; a wait too long
/// for the clock (`--seconds 18446744073709551615`) saturates to about 30
/// years instead of overflowing.
pub(crate) fn deadline_after(wait: std::time::Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(wait)
        .or_else(|| now.checked_add(std::time::Duration::from_secs(30 * 365 * 86_400)))
        .unwrap_or(now)
}
