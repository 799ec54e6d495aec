//! The brief's cross-session librarian query: session `instance-10`'s
//! workers write findings (some tagged `cost`); session `instance-11` asks
//! the librarian "What did Instance #10 discover about costs?" and gets an
//! answer citing the findings, each citation checked to exist. The same
//! question is then posted through the bus's archive desk and answered by a
//! `LibrarianDaemon`.
//!
//! `cargo run -p swarm-examples --example librarian_query` (offline, the
//! extractive provider); `REDIS_URL` runs it on Redis;
//! `GEMINI_API_KEY_SHARD<N>` answers through Gemini.

use swarm_examples::AnyError;
use swarm_examples::cross_session::{cross_session_query, librarian_source};
use swarm_examples::example_bus;

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let bus = example_bus().await?;
    let direct = librarian_source(&bus, true)?;
    let daemon = librarian_source(&bus, false)?;
    let report = cross_session_query(bus, direct, daemon).await?;
    println!(
        "\n{} cost findings written; the answer cites {}, the daemon's {}; every citation exists.",
        report.cost_findings.len(),
        report.citations.len(),
        report.daemon_citations.len()
    );
    Ok(())
}
