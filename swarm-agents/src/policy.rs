//! The delegation policy (the brief's IF.OPTIMISE): default to the worker
//! tier; escalate to the coordinator only for complex strategic reasoning,
//! multi-step architectural decisions, council deliberations or ambiguous
//! requirements. [`DelegationStats`] measures the ratio against the 90 %
//! target.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use swarmbus_core::Tier;

/// Why work was routed where it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// Worker: reading, writing or editing files.
    FileOperation,
    /// Worker: git.
    Git,
    /// Worker: calling or testing an API.
    ApiTest,
    /// Worker: converting or reshaping data.
    DataTransform,
    /// Worker: searching, grepping, researching.
    Search,
    /// Worker: analysing, counting, summarising.
    Analysis,
    /// Worker: nothing called for the coordinator (the default).
    Default,
    /// Coordinator: complex strategic reasoning.
    Strategy,
    /// Coordinator: multi-step architectural decisions.
    Architecture,
    /// Coordinator: council deliberation.
    Council,
    /// Coordinator: ambiguous requirements needing clarification.
    Ambiguity,
}

impl Reason {
    /// The tier this reason routes to.
    pub fn tier(self) -> Tier {
        match self {
            Reason::Strategy | Reason::Architecture | Reason::Council | Reason::Ambiguity => {
                Tier::Coordinator
            }
            _ => Tier::Worker,
        }
    }
}

/// Where a piece of work goes, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Routing {
    /// The tier.
    pub tier: Tier,
    /// The rule that decided.
    pub reason: Reason,
    /// The word that matched, if a keyword rule decided.
    pub matched: Option<String>,
}

/// Decides which tier does a piece of work.
pub trait DelegationPolicy: Send + Sync {
    /// Routes work described in words.
    fn route(&self, work: &str) -> Routing;
}

/// The default classifier: keyword rules over the work's words.
///
/// Coordinator rules are checked first (any one escalates), then worker rules
/// (to name the reason); anything else goes to the worker tier, because the
/// brief's default is the cheap model. Words match by prefix, so `architect`
/// matches "architecture" and "architectural".
///
/// | reason | words (prefixes) |
/// |---|---|
/// | strategy | strateg, trade-off, tradeoff, prioritis, prioritiz, roadmap |
/// | architecture | architect, multi-step, redesign |
/// | council | council, deliberat, guardian |
/// | ambiguity | ambiguous, ambiguity, unclear, clarif |
/// | file operation | file, read, write, edit, update, rename, copy, move |
/// | git | git, commit, diff, branch, merge, rebase |
/// | API test | api, endpoint, http, shard, ping |
/// | data transform | transform, convert, parse, json, csv, format, extract |
/// | search | search, grep, find, research, look, locate |
/// | analysis | analy, count, summar, measure, compare, list |
#[derive(Debug, Clone)]
pub struct KeywordPolicy {
    rules: Vec<(Reason, Vec<String>)>,
}

impl Default for KeywordPolicy {
    fn default() -> Self {
        let rule =
            |reason, words: &[&str]| (reason, words.iter().map(|w| (*w).to_owned()).collect());
        Self {
            rules: vec![
                rule(
                    Reason::Strategy,
                    &[
                        "strateg",
                        "trade-off",
                        "tradeoff",
                        "prioritis",
                        "prioritiz",
                        "roadmap",
                    ],
                ),
                rule(
                    Reason::Architecture,
                    &["architect", "multi-step", "redesign"],
                ),
                rule(Reason::Council, &["council", "deliberat", "guardian"]),
                rule(
                    Reason::Ambiguity,
                    &["ambiguous", "ambiguity", "unclear", "clarif"],
                ),
                rule(
                    Reason::FileOperation,
                    &[
                        "file", "read", "write", "edit", "update", "rename", "copy", "move",
                    ],
                ),
                rule(
                    Reason::Git,
                    &["git", "commit", "diff", "branch", "merge", "rebase"],
                ),
                rule(
                    Reason::ApiTest,
                    &["api", "endpoint", "http", "shard", "ping"],
                ),
                rule(
                    Reason::DataTransform,
                    &[
                        "transform",
                        "convert",
                        "parse",
                        "json",
                        "csv",
                        "format",
                        "extract",
                    ],
                ),
                rule(
                    Reason::Search,
                    &["search", "grep", "find", "research", "look", "locate"],
                ),
                rule(
                    Reason::Analysis,
                    &["analy", "count", "summar", "measure", "compare", "list"],
                ),
            ],
        }
    }
}

impl KeywordPolicy {
    /// Adds words (prefixes) to a reason's rule.
    pub fn with_words(mut self, reason: Reason, words: &[&str]) -> Self {
        let new = words.iter().map(|w| w.to_lowercase());
        match self.rules.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, ws)) => ws.extend(new),
            None => self.rules.push((reason, new.collect())),
        }
        self
    }
}

impl DelegationPolicy for KeywordPolicy {
    fn route(&self, work: &str) -> Routing {
        let lower = work.to_lowercase();
        let words: Vec<&str> = lower
            .split(|c: char| !(c.is_alphanumeric() || c == '-'))
            .filter(|w| !w.is_empty())
            .collect();
        // Coordinator rules first: one match escalates, wherever it stands.
        let ordered = self
            .rules
            .iter()
            .filter(|(r, _)| r.tier() == Tier::Coordinator)
            .chain(
                self.rules
                    .iter()
                    .filter(|(r, _)| r.tier() != Tier::Coordinator),
            );
        for (reason, prefixes) in ordered {
            for w in &words {
                if let Some(p) = prefixes.iter().find(|p| w.starts_with(p.as_str())) {
                    return Routing {
                        tier: reason.tier(),
                        reason: *reason,
                        matched: Some(p.clone()),
                    };
                }
            }
        }
        Routing {
            tier: Tier::Worker,
            reason: Reason::Default,
            matched: None,
        }
    }
}

/// Counts of routed work per tier, shareable across tasks.
#[derive(Debug, Default)]
pub struct DelegationStats {
    worker: AtomicU64,
    coordinator: AtomicU64,
}

/// The brief's target share of work on the worker tier, in tenths of a
/// percent (90 %): the one constant behind [`WORKER_TARGET`] and the cost
/// report's default target (it lives in core, which both crates share).
pub use swarmbus_core::policy::WORKER_TARGET_PERMILLE;

/// The brief's target share of work on the worker tier (0.9).
pub const WORKER_TARGET: f64 = WORKER_TARGET_PERMILLE as f64 / 1000.0;

impl DelegationStats {
    /// Records one routed piece of work.
    pub fn record(&self, tier: Tier) {
        match tier {
            Tier::Coordinator => self.coordinator.fetch_add(1, Ordering::Relaxed),
            _ => self.worker.fetch_add(1, Ordering::Relaxed),
        };
    }

    /// Work routed to workers (and librarians).
    pub fn worker(&self) -> u64 {
        self.worker.load(Ordering::Relaxed)
    }

    /// Work routed to the coordinator.
    pub fn coordinator(&self) -> u64 {
        self.coordinator.load(Ordering::Relaxed)
    }

    /// The worker share in `0.0..=1.0` (1.0 when nothing was routed).
    pub fn worker_ratio(&self) -> f64 {
        let (w, c) = (self.worker(), self.coordinator());
        if w + c == 0 {
            1.0
        } else {
            w as f64 / (w + c) as f64
        }
    }

    /// Whether the worker share meets `target` (e.g. [`WORKER_TARGET`]).
    pub fn meets(&self, target: f64) -> bool {
        self.worker_ratio() >= target
    }

    /// One line: `Delegation: 9 worker / 1 coordinator (90.0 % worker, target 90 %)`.
    pub fn summary(&self) -> String {
        format!(
            "Delegation: {} worker / {} coordinator ({:.1} % worker, target {:.0} %)",
            self.worker(),
            self.coordinator(),
            self.worker_ratio() * 100.0,
            WORKER_TARGET * 100.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(s: &str) -> (Tier, Reason) {
        let r = KeywordPolicy::default().route(s);
        (r.tier, r.reason)
    }

    #[test]
    fn the_briefs_worker_jobs_stay_on_the_worker_tier() {
        assert_eq!(
            route("Update agents.md with Instance #10's work"),
            (Tier::Worker, Reason::FileOperation)
        );
        assert_eq!(
            route("git log the last ten commits"),
            (Tier::Worker, Reason::Git)
        );
        assert_eq!(
            route("Test all 5 Gemini shards"),
            (Tier::Worker, Reason::ApiTest)
        );
        assert_eq!(
            route("grep the sources for KEYS"),
            (Tier::Worker, Reason::Search)
        );
        assert_eq!(
            route("Research Redis pub/sub patterns"),
            (Tier::Worker, Reason::Search)
        );
        assert_eq!(
            route("convert the CSV to JSON"),
            (Tier::Worker, Reason::DataTransform)
        );
        assert_eq!(route("do the thing"), (Tier::Worker, Reason::Default));
    }

    #[test]
    fn strategy_architecture_council_and_ambiguity_escalate() {
        assert_eq!(
            route("Decide the pricing strategy for next year"),
            (Tier::Coordinator, Reason::Strategy)
        );
        assert_eq!(
            route("Plan a multi-step migration of the architecture"),
            (Tier::Coordinator, Reason::Architecture)
        );
        assert_eq!(
            route("Guardian Council deliberation on the release"),
            (Tier::Coordinator, Reason::Council)
        );
        assert_eq!(
            route("The requirements are ambiguous; clarify them"),
            (Tier::Coordinator, Reason::Ambiguity)
        );
        // Escalation wins even when worker words come first.
        assert_eq!(
            route("read the files and choose an architectural direction"),
            (Tier::Coordinator, Reason::Architecture)
        );
    }

    #[test]
    fn stats_measure_the_ratio_against_the_target() {
        let s = DelegationStats::default();
        assert!(s.meets(WORKER_TARGET));
        for _ in 0..9 {
            s.record(Tier::Worker);
        }
        s.record(Tier::Coordinator);
        assert!((s.worker_ratio() - 0.9).abs() < 1e-12);
        assert!(s.meets(WORKER_TARGET));
        s.record(Tier::Coordinator);
        assert!(!s.meets(WORKER_TARGET));
        assert!(
            s.summary()
                .starts_with("Delegation: 9 worker / 2 coordinator (81.8 % worker")
        );
    }
}
