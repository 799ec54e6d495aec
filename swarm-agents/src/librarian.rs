//! The librarian: answers questions from the archive of findings, with
//! citations that are checked.
//!
//! [`Librarian::ask`] loads the findings a [`FindingFilter`] selects (by
//! session, worker, tag, time), puts ALL of them in the prompt when they fit
//! the context budget and otherwise the most relevant ones, asks the model
//! for a JSON answer `{"answer": …, "citations": [ids]}` (JSON mode with a
//! schema), and accepts the answer only when it parses, cites at least one
//! finding, and every cited id is a finding that was given to it and exists
//! in the store. Anything else is an error: never a guess.
//!
//! Without a model ([`AnswerSource::Extractive`]), an offline extractive
//! provider ranks the findings by relevance and quotes the best sentences of
//! the top ones, each with its id. The citation check and the extractive
//! answer are [`crate::synthesis`]'s, shared with the coordinator.
//!
//! - [`daemon`]: [`LibrarianDaemon`], answering `query:archive:<uuid>` on the bus.
//! - [`ask`]: the asking side, through the bus: [`ask::ask`] puts a question on the desk
//!   and waits for its answer ([`AskError`] when none comes).
//! - [`error`]: [`LibrarianError`], its [`LibrarianErrorKind`] and retry.

pub mod ask;
pub mod daemon;
pub mod error;

use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use swarmbus_core::Tier;
use swarmbus_core::accounting::{Meter, MeteredCall};
use swarmbus_core::bus::FindingStore;
use swarmbus_core::keys::{FindingId, WorkerId};
use swarmbus_core::llm::{Completion, CompletionRequest, LanguageModel, StopReason, Usage};
use swarmbus_core::search::{FindingIndex, MatchMode, SearchQuery};
use swarmbus_core::{Finding, FindingFilter};

pub use ask::AskError;
pub use daemon::{DaemonStats, LibrarianDaemon, query_id_from_key};
pub use error::{LibrarianError, LibrarianErrorKind, Result};

use crate::synthesis::{Pick, Strangers, check_citations, extractive_answer, rank};

/// How the librarian fills a prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LibrarianConfig {
    /// Tokens of findings a prompt may hold (default 800,000: Gemini
    /// Flash's 1M context with room for the question and the answer).
    pub context_budget_tokens: u64,
    /// Tokens counted per finding for its header (id, session, tags).
    pub per_finding_overhead_tokens: u64,
    /// Cap on the answer's tokens.
    pub max_output_tokens: Option<u32>,
    /// How many findings the extractive provider quotes.
    pub extractive_top: usize,
}

impl Default for LibrarianConfig {
    fn default() -> Self {
        Self {
            context_budget_tokens: 800_000,
            per_finding_overhead_tokens: 40,
            max_output_tokens: None,
            extractive_top: 3,
        }
    }
}

impl LibrarianConfig {
    /// Sets the context budget.
    pub fn context_budget(mut self, tokens: u64) -> Self {
        self.context_budget_tokens = tokens;
        self
    }

    /// Sets how many findings the extractive provider quotes.
    pub fn extractive_top(mut self, n: usize) -> Self {
        self.extractive_top = n.max(1);
        self
    }
}

/// Who writes the answers.
#[derive(Clone)]
#[non_exhaustive]
pub enum AnswerSource {
    /// A model: any core `LanguageModel` (the shard pool, one Gemini
    /// client, the DeepSeek fallback, a Claude client, a test double).
    Model(Arc<dyn LanguageModel>),
    /// The offline extractive provider (no key needed).
    Extractive,
}

impl AnswerSource {
    /// A model source.
    pub fn model(model: impl LanguageModel + 'static) -> Self {
        AnswerSource::Model(Arc::new(model))
    }

    /// Who answers, for `answered_by` when the completion does not say
    /// (the model's provider name, or `extractive`).
    pub fn name(&self) -> String {
        match self {
            AnswerSource::Model(m) => m.provider_name().to_owned(),
            AnswerSource::Extractive => "extractive".into(),
        }
    }
}

impl fmt::Debug for AnswerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerSource::Model(m) => f
                .debug_struct("Model")
                .field("provider", &m.provider_name())
                .field("model", &m.model_id())
                .finish(),
            AnswerSource::Extractive => f.write_str("Extractive"),
        }
    }
}

/// An answer with its checked citations.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LibrarianAnswer {
    /// The answer text.
    pub answer: String,
    /// The findings it cites, each one checked to exist; in the order cited.
    pub citations: Vec<FindingId>,
    /// Who answered (`shard2`, `fallback:deepseek`, `extractive`).
    pub answered_by: String,
    /// How many findings the filter selected.
    pub findings_selected: usize,
    /// How many of them were put in the prompt.
    pub findings_in_context: usize,
    /// Tokens used, when a model answered.
    pub usage: Option<Usage>,
}

/// Answers questions over any [`FindingStore`].
pub struct Librarian<S: FindingStore + ?Sized> {
    store: Arc<S>,
    source: AnswerSource,
    config: LibrarianConfig,
    meter: Option<Arc<dyn Meter>>,
    caller: Option<WorkerId>,
}

impl<S: FindingStore + ?Sized> fmt::Debug for Librarian<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Librarian")
            .field("source", &self.source)
            .field("config", &self.config)
            .finish()
    }
}

/// The JSON Schema of an answer.
pub fn answer_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "answer": {"type": "string", "description": "The answer, from the findings only."},
            "citations": {
                "type": "array",
                "items": {"type": "string", "description": "The id of a finding the answer uses."},
                "description": "Ids of every finding the answer relies on."
            }
        },
        "required": ["answer", "citations"]
    })
}

/// Output tokens estimated for a call without a cap of its own.
const ESTIMATED_OUTPUT_TOKENS: u32 = 1_024;

const SYSTEM: &str = "You are the librarian of a swarm of agents. You answer questions using ONLY \
the findings given to you, each introduced by its id in square brackets. Reply with one JSON \
object: {\"answer\": string, \"citations\": [finding ids]}. Cite the id of every finding your \
answer relies on, exactly as written, and at least one. If the findings do not answer the \
question, say so in the answer and cite the findings you checked that come closest.";

#[derive(Debug, Deserialize)]
struct RawAnswer {
    answer: String,
    #[serde(default)]
    citations: Vec<String>,
}

impl<S: FindingStore + ?Sized> Librarian<S> {
    /// A librarian over `store`, answering with `source`.
    pub fn new(store: Arc<S>, source: AnswerSource) -> Self {
        Self {
            store,
            source,
            config: LibrarianConfig::default(),
            meter: None,
            caller: None,
        }
    }

    /// Meters every model call on the librarian tier: its estimate reserved
    /// before, its usage settled (priced once, booked) after. The
    /// extractive source makes no call and is not metered.
    pub fn with_meter(mut self, meter: Arc<dyn Meter>) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Books its calls as made by `librarian` (the daemon's id).
    pub fn with_caller(mut self, librarian: WorkerId) -> Self {
        self.caller = Some(librarian);
        self
    }

    /// One model call, metered when a meter is set.
    async fn complete(
        &self,
        model: &dyn LanguageModel,
        request: CompletionRequest,
    ) -> Result<Completion> {
        let Some(meter) = &self.meter else {
            return Ok(model.complete(request).await?);
        };
        let chars = request
            .messages
            .iter()
            .map(|m| m.text().len())
            .sum::<usize>()
            + request.system.as_deref().map_or(0, str::len);
        let estimate = Usage::new(
            (chars / 4) as u64,
            u64::from(
                self.config
                    .max_output_tokens
                    .unwrap_or(ESTIMATED_OUTPUT_TOKENS),
            ),
        );
        let mut call = MeteredCall::new(Tier::Librarian, model.model_id());
        if let Some(w) = &self.caller {
            call = call.worker(w.clone());
        }
        let hold = meter.reserve(call, estimate).await?;
        match model.complete(request).await {
            Ok(c) => {
                // Unbooked, the call stays on the books at its estimate;
                // the answer is still given.
                if let Err(u) = meter.settle(hold, &c.model, c.usage).await {
                    tracing::warn!(error = %u.error, "a librarian call was not booked: it stays on the books at its estimate");
                }
                Ok(c)
            }
            Err(e) => {
                if let Err(c) = meter.cancel(hold).await {
                    tracing::warn!(error = %c, "a librarian call's hold was not given back");
                }
                Err(e.into())
            }
        }
    }

    /// Sets the configuration.
    pub fn with_config(mut self, config: LibrarianConfig) -> Self {
        self.config = config;
        self
    }

    /// Who answers.
    pub fn source(&self) -> &AnswerSource {
        &self.source
    }

    /// Answers `question` from the findings `filter` selects.
    pub async fn ask(&self, question: &str, filter: &FindingFilter) -> Result<LibrarianAnswer> {
        if question.trim().is_empty() {
            return Err(LibrarianError::Config {
                reason: "the question is empty".into(),
            });
        }
        let listing = self.store.list_findings(filter).await?;
        for unreadable in &listing.unreadable {
            tracing::warn!(key = %unreadable.key, reason = %unreadable.reason, "a stored finding cannot be read; left out");
        }
        self.answer_from(question, listing.findings, false).await
    }

    /// Answers from these findings. `ranked`: they come best first from the
    /// search index, so the budget keeps the first that fit.
    async fn answer_from(
        &self,
        question: &str,
        findings: Vec<Finding>,
        ranked: bool,
    ) -> Result<LibrarianAnswer> {
        if findings.is_empty() {
            return Err(LibrarianError::NoFindings {
                reason: "no finding matches the filter".into(),
            });
        }
        let selected = findings.len();
        match &self.source {
            AnswerSource::Extractive => {
                let answer = extract(question, &findings, self.config.extractive_top)?;
                self.verify_exist(&answer.citations).await?;
                Ok(answer)
            }
            AnswerSource::Model(provider) => {
                let context = if ranked {
                    self.first_that_fit(findings)
                } else {
                    self.select(question, findings)
                };
                let in_context = context.len();
                let prompt = build_prompt(question, &context);
                let mut request = CompletionRequest::new(prompt)
                    .system(SYSTEM)
                    .json(answer_schema());
                if let Some(n) = self.config.max_output_tokens {
                    request = request.max_output_tokens(n);
                }
                let completion = self.complete(provider.as_ref(), request).await?;
                let given: Vec<FindingId> = context.iter().map(|f| f.id.clone()).collect();
                let (answer, citations) = parse_completion(&completion, &given)?;
                self.verify_exist(&citations).await?;
                Ok(LibrarianAnswer {
                    answer,
                    citations,
                    answered_by: completion
                        .served_by
                        .clone()
                        .unwrap_or_else(|| provider.provider_name().to_owned()),
                    findings_selected: selected,
                    findings_in_context: in_context,
                    usage: Some(completion.usage),
                })
            }
        }
    }

    /// The findings, best first, that fit the budget.
    fn first_that_fit(&self, findings: Vec<Finding>) -> Vec<Finding> {
        let mut used = 0u64;
        findings
            .into_iter()
            .filter(|f| {
                let c = u64::from(f.tokens).saturating_add(self.config.per_finding_overhead_tokens);
                let fits = used.saturating_add(c) <= self.config.context_budget_tokens;
                if fits {
                    used += c;
                }
                fits
            })
            .collect()
    }

    /// All findings when they fit the budget; else the most relevant that
    /// fit, in their original (chronological) order.
    fn select(&self, question: &str, findings: Vec<Finding>) -> Vec<Finding> {
        let cost = |f: &Finding| {
            u64::from(f.tokens).saturating_add(self.config.per_finding_overhead_tokens)
        };
        let total: u64 = findings.iter().map(cost).sum();
        if total <= self.config.context_budget_tokens {
            return findings;
        }
        let ranked = rank(question, &findings);
        let mut keep = vec![false; findings.len()];
        let mut used = 0u64;
        for (i, _) in ranked {
            let c = cost(&findings[i]);
            if used.saturating_add(c) <= self.config.context_budget_tokens {
                used += c;
                keep[i] = true;
            }
        }
        findings
            .into_iter()
            .zip(keep)
            .filter_map(|(f, k)| k.then_some(f))
            .collect()
    }

    async fn verify_exist(&self, ids: &[FindingId]) -> Result<()> {
        let found = self.store.get_findings(ids).await?;
        let missing: Vec<String> = ids
            .iter()
            .zip(found)
            .filter(|(_, f)| f.is_none())
            .map(|(id, _)| id.to_string())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(LibrarianError::Citation {
                reason: format!("cited findings do not exist: {}", missing.join(", ")),
            })
        }
    }
}

impl<S: FindingStore + FindingIndex + ?Sized> Librarian<S> {
    /// Answers `question` over an archive of any size: the store's search
    /// index ranks the findings matching any word of the question (BM25,
    /// with the filters of `scope`: tag, session, worker, time, archived)
    /// and the best `candidates` are read, so the cost is that of the
    /// matching postings, not of the archive. The model (or the extractive
    /// answer) then works on them as [`Librarian::ask`] does.
    pub async fn ask_indexed(
        &self,
        question: &str,
        scope: &SearchQuery,
        candidates: usize,
    ) -> Result<LibrarianAnswer> {
        if question.trim().is_empty() {
            return Err(LibrarianError::Config {
                reason: "the question is empty".into(),
            });
        }
        let mut query = scope.clone();
        query.text = Some(question.to_owned());
        query.mode = MatchMode::Any;
        query.cursor = None;
        query.limit = Some(candidates.clamp(1, swarmbus_core::search::MAX_PAGE));
        let page = self.store.search_findings(&query).await?;
        let ids: Vec<FindingId> = page.hits.into_iter().map(|h| h.id).collect();
        let findings: Vec<Finding> = self
            .store
            .get_findings(&ids)
            .await?
            .into_iter()
            .flatten()
            .collect();
        self.answer_from(question, findings, true).await
    }
}

fn build_prompt(question: &str, findings: &[Finding]) -> String {
    let mut p = String::with_capacity(findings.iter().map(|f| f.body.len() + 200).sum());
    p.push_str("FINDINGS\n\n");
    for f in findings {
        p.push_str(&format!(
            "[{}] session {} · worker {} · {}",
            f.id,
            f.session,
            f.worker,
            f.created_at.to_rfc3339()
        ));
        if !f.tags.is_empty() {
            p.push_str(&format!(
                " · tags {}",
                f.tags.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        p.push('\n');
        p.push_str(&f.title);
        p.push('\n');
        p.push_str(&f.body);
        p.push_str("\n\n");
    }
    p.push_str("QUESTION\n\n");
    p.push_str(question);
    p.push('\n');
    p
}

/// Parses and checks a model's completion. An empty answer is
/// [`LibrarianError::Truncated`], never malformed: a model that spent its whole
/// output budget (on thinking, say) answered nothing, and a JSON answer the
/// token cap cut short is truncated too.
fn parse_completion(
    completion: &Completion,
    given: &[FindingId],
) -> Result<(String, Vec<FindingId>)> {
    let text = completion.text();
    let u = &completion.usage;
    let facts = || {
        format!(
            "stop reason {}, {} output tokens of which {} thinking",
            completion.stop_reason, u.output_tokens, u.thinking_tokens
        )
    };
    if text.trim().is_empty() {
        return Err(LibrarianError::Truncated {
            reason: format!("the model returned no text ({})", facts()),
        });
    }
    match parse_answer(&text, given) {
        Err(LibrarianError::MalformedResponse { .. })
            if completion.stop_reason == StopReason::MaxTokens =>
        {
            Err(LibrarianError::Truncated {
                reason: format!("the token cap cut the answer ({})", facts()),
            })
        }
        other => other,
    }
}

/// Parses and checks a model's answer against the findings it was given.
fn parse_answer(text: &str, given: &[FindingId]) -> Result<(String, Vec<FindingId>)> {
    let raw: RawAnswer =
        serde_json::from_str(strip_fence(text)).map_err(|e| LibrarianError::MalformedResponse {
            reason: format!("the librarian's answer is not the JSON asked for ({e})"),
        })?;
    if raw.answer.trim().is_empty() {
        return Err(LibrarianError::Truncated {
            reason: "the librarian's answer is empty".into(),
        });
    }
    let candidates = raw
        .citations
        .iter()
        .map(|c| c.trim().trim_start_matches("finding:"));
    let citations = check_citations(candidates, given, Strangers::All).map_err(|bad| {
        let bad: Vec<String> = bad.iter().map(|c| c.chars().take(60).collect()).collect();
        LibrarianError::Citation {
            reason: format!(
                "the answer cites ids that are not among the findings given: {}",
                bad.join(", ")
            ),
        }
    })?;
    if citations.is_empty() {
        return Err(LibrarianError::Citation {
            reason: "the answer cites no finding".into(),
        });
    }
    Ok((raw.answer.trim().to_owned(), citations))
}

/// Accepts a JSON answer wrapped in a Markdown code fence (some providers
/// add one even in JSON mode).
fn strip_fence(text: &str) -> &str {
    let t = text.trim();
    match t.strip_prefix("```") {
        Some(rest) => {
            let rest = rest.strip_prefix("json").unwrap_or(rest);
            rest.strip_suffix("```").unwrap_or(rest).trim()
        }
        None => t,
    }
}

/// The extractive answer ([`Pick::MostRelevant`]): the top findings by
/// relevance, each quoted with its id. No relevant finding →
/// [`LibrarianError::NoFindings`].
fn extract(question: &str, findings: &[Finding], top: usize) -> Result<LibrarianAnswer> {
    let extract = extractive_answer(question, findings, Pick::MostRelevant(top));
    if extract.citations.is_empty() {
        return Err(LibrarianError::NoFindings {
            reason: "no finding shares a term with the question".into(),
        });
    }
    Ok(LibrarianAnswer {
        answer: extract.text,
        citations: extract.citations,
        answered_by: "extractive".into(),
        findings_selected: findings.len(),
        findings_in_context: findings.len(),
        usage: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarmbus_core::keys::{SessionId, WorkerId};

    fn finding(title: &str, body: &str) -> Finding {
        Finding::new(
            WorkerId::new("haiku-1").unwrap(),
            SessionId::new("instance-10").unwrap(),
            title,
            body,
        )
    }

    #[test]
    fn relevance_puts_the_matching_finding_first() {
        let fs = vec![
            finding(
                "Redis pub/sub",
                "Channels lose messages when a subscriber is offline.",
            ),
            finding(
                "DeepSeek pricing",
                "DeepSeek V3 costs less per token than Haiku.",
            ),
            finding(
                "Gemini quotas",
                "Free tier: 1500 requests per day, 15 per minute.",
            ),
        ];
        let r = rank("What are the Gemini free tier quotas per day?", &fs);
        assert_eq!(r[0].0, 2);
        assert!(r[0].1 > r[1].1);
    }

    #[test]
    fn the_extractive_answer_quotes_and_cites() {
        let fs = vec![
            finding(
                "Gemini quotas",
                "Limits differ by model. Free tier: 1500 requests per day.",
            ),
            finding("Unrelated", "Nothing here."),
        ];
        let a = extract("How many requests per day on the free tier?", &fs, 3).unwrap();
        assert_eq!(a.citations, vec![fs[0].id.clone()]);
        assert!(
            a.answer.contains("Free tier: 1500 requests per day."),
            "{}",
            a.answer
        );
        assert!(a.answer.contains(&fs[0].id.to_string()));
    }

    #[test]
    fn answers_must_cite_given_ids() {
        let f = finding("t", "b");
        let given = vec![f.id.clone()];
        let ok = format!(r#"{{"answer":"yes","citations":["{}"]}}"#, f.id);
        assert_eq!(parse_answer(&ok, &given).unwrap().1, vec![f.id]);
        let fenced = format!("```json\n{ok}\n```");
        assert!(parse_answer(&fenced, &given).is_ok());
        let none = r#"{"answer":"yes","citations":[]}"#;
        assert!(matches!(
            parse_answer(none, &given),
            Err(LibrarianError::Citation { .. })
        ));
        let other = format!(
            r#"{{"answer":"yes","citations":["{}"]}}"#,
            FindingId::random()
        );
        assert!(matches!(
            parse_answer(&other, &given),
            Err(LibrarianError::Citation { .. })
        ));
        assert!(matches!(
            parse_answer("The answer is yes.", &given),
            Err(LibrarianError::MalformedResponse { .. })
        ));
    }

    #[tokio::test]
    async fn the_indexed_librarian_reads_only_the_best_candidates() {
        let bus = Arc::new(swarmbus_memory::MemoryBus::new());
        let noise: Vec<Finding> = (0..300)
            .map(|i| finding(&format!("note {i}"), "unrelated filler about logistics"))
            .collect();
        bus.put_findings(&noise).await.unwrap();
        let target = finding(
            "DeepSeek pricing",
            "DeepSeek costs 0.27 dollars per million input tokens.",
        );
        bus.put_finding(&target).await.unwrap();
        let librarian = Librarian::new(Arc::clone(&bus), AnswerSource::Extractive);
        let answer = librarian
            .ask_indexed(
                "What does DeepSeek cost per million input tokens?",
                &SearchQuery::default(),
                20,
            )
            .await
            .unwrap();
        assert_eq!(answer.citations.first(), Some(&target.id));
        assert!(
            answer.findings_selected <= 20,
            "{}",
            answer.findings_selected
        );
    }
}
