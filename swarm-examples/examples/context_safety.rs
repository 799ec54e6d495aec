//! Context safety: above the finding limit (5,000 in the brief; 50 here) the
//! coordinator must pause and summarise. The compaction stores one summary
//! finding that cites every old one, then archives them: nothing is deleted.
//!
//! `cargo run -p swarm-examples --example context_safety`

use async_trait::async_trait;
use swarm_examples::AnyError;
use swarmbus_agents::context::{ContextGuard, compact};
use swarmbus_core::{
    Completion, CompletionRequest, Finding, FindingFilter, FindingStore, LanguageModel, SessionId,
    Usage, WorkerId,
};
use swarmbus_memory::MemoryBus;

/// A summariser that works offline: the first sentence of each finding.
struct FirstSentences;

#[async_trait]
impl LanguageModel for FirstSentences {
    fn model_id(&self) -> &str {
        "offline-first-sentences"
    }

    async fn complete(&self, request: CompletionRequest) -> swarmbus_core::Result<Completion> {
        let prompt = request.prompt_text();
        let text: Vec<&str> = prompt
            .lines()
            .filter(|l| l.starts_with('['))
            .map(|l| l.split(". ").next().unwrap_or(l))
            .collect();
        Ok(Completion::new(
            text.join("\n"),
            self.model_id(),
            Usage::default(),
        ))
    }
}

#[tokio::main]
async fn main() -> Result<(), AnyError> {
    let bus = MemoryBus::new();
    let (w, s) = (WorkerId::new("haiku-1")?, SessionId::new("long-session")?);
    let findings: Vec<Finding> = (0..60)
        .map(|i| {
            Finding::new(
                w.clone(),
                s.clone(),
                format!("note {i}"),
                format!("Fact {i}. Detail."),
            )
        })
        .collect();
    bus.put_findings(&findings).await?;

    let guard = ContextGuard::new(50);
    let verdict = guard.check_bus(&bus, 100).await?;
    println!("60 findings, limit 50: {verdict:?}");
    if verdict.must_pause() {
        let done = compact(&bus, &FirstSentences, &FindingFilter::all(), 10, w, s)
            .await?
            .ok_or("nothing to compact")?;
        println!(
            "archived {} findings behind summary {} (cites {})",
            done.archived,
            done.summary.id,
            done.summary.cites.len()
        );
    }
    println!("after: {:?}", guard.check_bus(&bus, 100).await?);
    let all = bus
        .list_findings(&FindingFilter::all().with_archived())
        .await?;
    println!("still stored, archived included: {}", all.findings.len());
    Ok(())
}
