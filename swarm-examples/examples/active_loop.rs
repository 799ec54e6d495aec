//! The brief's active loop: worker A publishes a finding; worker B, reading
//! the durable finding feed, loads it and continues from it; the coordinator
//! watches both arrive and synthesises.
//!
//! `cargo run -p swarm-examples --example active_loop`
//!
//! B reads the feed through a consumer group, not only the pub/sub channel:
//! a B that starts late (or restarts) still receives A's finding.

use std::time::Duration;

use swarm_examples::AnyError;
use swarmbus_core::{
    Finding, FindingFeed, FindingFilter, FindingStore, GroupName, SessionId, WorkerId,
};
use swarmbus_memory::MemoryBus;

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let bus = MemoryBus::new();
    let session = SessionId::new("active-loop")?;
    let (a, b) = (WorkerId::new("haiku-a")?, WorkerId::new("haiku-b")?);

    // Worker A: process data, publish a finding (stored, fed, and notified).
    let data = [12u32, 7, 31, 4, 19];
    let sum: u32 = data.iter().sum();
    let finding_a = Finding::new(
        a.clone(),
        session.clone(),
        "data_analysis_A",
        format!("sum of {data:?} is {sum}"),
    )
    .with_tags(["analysis"]);
    bus.put_finding(&finding_a).await?;
    println!("A published {}: {}", finding_a.id, finding_a.body);

    // Worker B starts afterwards and still receives it from the feed.
    let group = GroupName::new("continuers")?;
    let entries = bus
        .read_feed(&group, &b, 10, Duration::from_secs(1))
        .await?;
    for e in &entries {
        let Some(from) = bus.get_finding(&e.finding).await? else {
            continue;
        };
        if from.worker == b {
            continue;
        }
        let mean = f64::from(sum) / data.len() as f64;
        let finding_b = Finding::new(
            b.clone(),
            session.clone(),
            "data_analysis_B",
            format!("continuing from {}: the mean is {mean:.1}", from.title),
        )
        .citing([from.id.clone()]);
        bus.put_finding(&finding_b).await?;
        println!(
            "B continued from {} with {}: {}",
            from.id, finding_b.id, finding_b.body
        );
    }
    let acks: Vec<_> = entries.into_iter().map(|e| e.entry).collect();
    bus.ack_feed(&group, &acks).await?;

    // The coordinator loads both and synthesises.
    let listing = bus
        .list_findings(&FindingFilter::all().session(session))
        .await?;
    println!("Coordinator sees {} findings:", listing.findings.len());
    for f in &listing.findings {
        println!("  {} by {} (cites {:?})", f.title, f.worker, f.cites);
    }
    if listing.findings.len() != 2 {
        return Err("expected A's and B's findings".into());
    }
    Ok(())
}
