//! The brief's shard test protocol: five librarian shards tested with a
//! cheap query, each one's status and quota recorded on the bus, and the
//! 80 % rule (no paper work below 80 % operational). Offline, a local mock
//! Gemini answers shards 1-4 with a recorded success and shard 5 with a
//! recorded per-day 429: 4/5 = 80 %, so paper work may proceed.
//!
//! `cargo run -p swarm-examples --example shard_testing`; `REDIS_URL` runs
//! it on Redis; `GEMINI_API_KEY_SHARD1..N` tests the real shards.

use swarm_examples::AnyError;
use swarm_examples::example_bus;
use swarm_examples::shard_testing::shard_testing;

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let bus = example_bus().await?;
    let verdict = shard_testing(bus).await?;
    if !verdict.proceed {
        println!("Paper work refused: fix or wait for the shards first.");
    }
    Ok(())
}
