//! The brief's "complete example session": a coordinator routes three
//! independent tasks through the delegation policy, three workers run them in
//! parallel on this repository's own files, write findings and notify
//! `channel:findings`; the status block is printed before and after.
//!
//! `cargo run -p swarm-examples --example swarm_session`
//!
//! With `REDIS_URL` set (e.g. `redis://127.0.0.1:6379`) the same session runs
//! on Redis and leaves the brief's keys for its Python tools to read.

use swarm_examples::{AnyError, example_session};
use swarmbus_core::MemoryBus;
use swarmbus_redis::{RedisBus, RedisConfig};

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            let bus = RedisBus::connect(RedisConfig::from_url(&url)?).await?;
            println!("Bus: Redis");
            example_session(bus).await?;
            Ok(())
        }
        _ => {
            println!("Bus: in-memory (set REDIS_URL to use Redis)");
            example_session(MemoryBus::new()).await?;
            Ok(())
        }
    }
}
