//! Context safety: over 5,000 findings (configurable) the coordinator must
//! pause and summarise. [`ContextGuard`] says when; [`compact`] replaces old
//! findings by one summary finding that cites them all, losing nothing: the
//! originals are archived (still readable), never deleted, and the summary is
//! stored before anything is archived.

use serde::Serialize;

use swarmbus_core::bus::{Counters, FindingStore};
use swarmbus_core::error::Result;
use swarmbus_core::keys::{SessionId, WorkerId};
use swarmbus_core::llm::{
    CompletionRequest, LanguageModel, ModelAction, ModelError, ModelErrorKind,
};
use swarmbus_core::{Finding, FindingFilter};

/// The brief's threshold.
pub const DEFAULT_FINDING_LIMIT: u64 = 5_000;

/// What the guard says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ContextVerdict {
    /// Under the limit.
    Ok {
        /// Active findings.
        findings: u64,
        /// Findings left before the limit.
        headroom: u64,
    },
    /// At or over the limit: stop delegating, summarise first.
    PauseAndSummarise {
        /// Active findings.
        findings: u64,
        /// The limit.
        limit: u64,
    },
}

impl ContextVerdict {
    /// Whether work must pause.
    pub fn must_pause(&self) -> bool {
        matches!(self, ContextVerdict::PauseAndSummarise { .. })
    }
}

/// Watches the number of active findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContextGuard {
    limit: u64,
}

impl Default for ContextGuard {
    fn default() -> Self {
        Self::new(DEFAULT_FINDING_LIMIT)
    }
}

impl ContextGuard {
    /// A guard that pauses above `limit` findings.
    pub const fn new(limit: u64) -> Self {
        Self { limit }
    }

    /// The limit.
    pub const fn limit(&self) -> u64 {
        self.limit
    }

    /// Judges a count ("more than the limit" pauses, as the brief says >5K).
    pub fn check(&self, findings: u64) -> ContextVerdict {
        if findings > self.limit {
            ContextVerdict::PauseAndSummarise {
                findings,
                limit: self.limit,
            }
        } else {
            ContextVerdict::Ok {
                findings,
                headroom: self.limit - findings,
            }
        }
    }

    /// Judges the bus's count (O(1)) and keeps `context:active` current with
    /// `tokens_per_finding` tokens per finding.
    pub async fn check_bus<B>(&self, bus: &B, tokens_per_finding: u64) -> Result<ContextVerdict>
    where
        B: FindingStore + Counters + ?Sized,
    {
        let n = bus.count_findings().await?;
        bus.set_context_tokens(n.saturating_mul(tokens_per_finding))
            .await?;
        Ok(self.check(n))
    }
}

/// What a compaction did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Compaction {
    /// The summary finding (it cites every archived finding).
    pub summary: Finding,
    /// How many findings were archived.
    pub archived: u64,
}

/// Summarises all but the newest `keep_newest` active findings of `filter`
/// with `model`, stores the summary as a finding by `worker` in `session`
/// citing every one of them, then archives them. Returns `None` when there
/// is nothing to compact.
///
/// The model is asked for plain text; an empty answer is an error and
/// archives nothing.
pub async fn compact<B, M>(
    bus: &B,
    model: &M,
    filter: &FindingFilter,
    keep_newest: usize,
    worker: WorkerId,
    session: SessionId,
) -> Result<Option<Compaction>>
where
    B: FindingStore + ?Sized,
    M: LanguageModel + ?Sized,
{
    let listing = bus.list_findings(filter).await?;
    let n = listing.findings.len();
    if n <= keep_newest {
        return Ok(None);
    }
    let old = &listing.findings[..n - keep_newest];
    let mut prompt = String::from(
        "Summarise these findings of a swarm of agents into one dense summary that keeps \
         every fact, number and decision. Refer to findings by their id in brackets.\n\n",
    );
    for f in old {
        prompt.push_str(&format!("[{}] {}: {}\n", f.id, f.title, f.body));
    }
    let answer = model.complete(CompletionRequest::new(prompt)).await?;
    let summary = answer.text();
    if summary.trim().is_empty() {
        let kind = if answer.stop_reason == swarmbus_core::llm::StopReason::MaxTokens {
            ModelErrorKind::Truncated
        } else {
            ModelErrorKind::MalformedResponse
        };
        return Err(ModelError::new(
            model.provider_name(),
            model.model_id(),
            kind,
            ModelAction::Fail,
            "empty summary; nothing archived",
        )
        .into());
    }
    let first = old.first().map(|f| f.created_at);
    let last = old.last().map(|f| f.created_at);
    let title = match (first, last) {
        (Some(a), Some(b)) => format!("Summary of {} findings from {a} to {b}", old.len()),
        _ => format!("Summary of {} findings", old.len()),
    };
    let summary = Finding::new(worker, session, title, summary)
        .with_tags(["summary"])
        .citing(old.iter().map(|f| f.id.clone()));
    // The summary is stored before anything is archived: a crash in between
    // leaves both, never neither.
    bus.put_finding(&summary).await?;
    let ids: Vec<_> = old.iter().map(|f| f.id.clone()).collect();
    let archived = bus.archive_findings(&ids).await?;
    Ok(Some(Compaction { summary, archived }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use swarmbus_core::llm::{Completion, Usage};
    use swarmbus_memory::MemoryBus;

    struct Echo;

    #[async_trait]
    impl LanguageModel for Echo {
        fn model_id(&self) -> &str {
            "echo"
        }
        async fn complete(&self, request: CompletionRequest) -> Result<Completion> {
            let lines = request
                .prompt_text()
                .lines()
                .filter(|l| l.starts_with('['))
                .count();
            Ok(Completion::new(
                format!("{lines} findings summarised"),
                "echo",
                Usage::default(),
            ))
        }
    }

    #[test]
    fn the_guard_pauses_above_the_limit() {
        let g = ContextGuard::default();
        assert!(!g.check(5_000).must_pause());
        assert_eq!(
            g.check(5_001),
            ContextVerdict::PauseAndSummarise {
                findings: 5_001,
                limit: 5_000
            }
        );
        assert_eq!(
            g.check(10),
            ContextVerdict::Ok {
                findings: 10,
                headroom: 4_990
            }
        );
    }

    #[tokio::test]
    async fn compaction_archives_old_findings_behind_a_citing_summary() {
        let bus = MemoryBus::new();
        let (w, s) = (WorkerId::new("w").unwrap(), SessionId::new("s").unwrap());
        let base = chrono::Utc::now();
        let fs: Vec<Finding> = (0..12)
            .map(|i| {
                Finding::new(w.clone(), s.clone(), format!("t{i}"), "b")
                    .at(base + chrono::Duration::seconds(i))
            })
            .collect();
        bus.put_findings(&fs).await.unwrap();
        let guard = ContextGuard::new(10);
        assert!(guard.check_bus(&bus, 100).await.unwrap().must_pause());

        let c = compact(&bus, &Echo, &FindingFilter::all(), 2, w.clone(), s.clone())
            .await
            .unwrap()
            .expect("compacted");
        assert_eq!(c.archived, 10);
        assert_eq!(c.summary.cites.len(), 10);
        assert_eq!(c.summary.body, "10 findings summarised");
        assert_eq!(
            bus.count_findings().await.unwrap(),
            3,
            "2 kept + the summary"
        );
        assert!(!guard.check_bus(&bus, 100).await.unwrap().must_pause());
        // Nothing lost: every original is still readable.
        for f in &fs {
            assert!(bus.get_finding(&f.id).await.unwrap().is_some());
        }
        assert_eq!(
            bus.list_findings(&FindingFilter::all().with_archived())
                .await
                .unwrap()
                .findings
                .len(),
            13
        );
    }
}
