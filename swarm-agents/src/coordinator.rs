//! The coordinator tier with a model: [`ModelPlanner`] asks it for a plan
//! of independent tasks (structured output against [`plan_schema`]; a
//! malformed plan stops the run), and [`ModelSynthesis`] asks it for the
//! answer from the findings (citations checked against the findings it was
//! shown), or asks the librarian when the findings exceed its budget.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use swarmbus_core::accounting::{Meter, MeteredCall};
use swarmbus_core::bus::Bus;
use swarmbus_core::finding::estimate_tokens;
use swarmbus_core::keys::{FindingId, SessionId, WorkerId};
use swarmbus_core::llm::{CompletionRequest, LanguageModel, Usage};
use swarmbus_core::{ArchiveQuery, Finding, FindingFilter, ResponseStatus, Tier};

use crate::error::{AgentError, Result, cut};
use crate::librarian::ask::{AskError, ask};
use crate::plan::{parse_plan, plan_schema};
use crate::run::{Answer, Planned, Planner, Synthesiser};
use crate::synthesis::cited_ids;

/// The coordinator's planning prompt.
pub const PLANNER_PROMPT: &str = "You are the coordinator of a swarm of cheap worker agents. \
Split the goal into independent tasks that workers can do in parallel without talking to each \
other: each task self-contained (what to look at, what to report). Workers can read, list and \
search the workspace's files, run read-only git and a few allow-listed commands, and read the \
swarm's findings. Prefer few, substantial tasks. Answer with JSON only, matching the schema.";

/// The coordinator's synthesis prompt.
pub const SYNTHESIS_PROMPT: &str = "You are the coordinator of a swarm. Workers wrote the \
findings below for the goal. Write the answer to the goal from them only. Cite every claim with \
the id of the finding that supports it, in square brackets, e.g. [67e55044-10b1-426f-9247-\
bb680e5fe0c8]. Never cite an id that is not listed.";

/// Who the coordinator is when it calls its model.
#[derive(Clone)]
pub struct CoordinatorCalls {
    model: Arc<dyn LanguageModel>,
    meter: Option<Arc<dyn Meter>>,
    coordinator: WorkerId,
    session: SessionId,
    max_output_tokens: u32,
}

impl std::fmt::Debug for CoordinatorCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorCalls")
            .field("model", &self.model.model_id())
            .field("coordinator", &self.coordinator)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl CoordinatorCalls {
    /// Calls of `coordinator` in `session` on `model`.
    pub fn new(model: Arc<dyn LanguageModel>, coordinator: WorkerId, session: SessionId) -> Self {
        Self {
            model,
            meter: None,
            coordinator,
            session,
            max_output_tokens: 4_096,
        }
    }

    /// Meters every call (reserved before, settled after).
    pub fn meter(mut self, meter: Arc<dyn Meter>) -> Self {
        self.meter = Some(meter);
        self
    }

    /// One call, reserved and recorded on the coordinator tier.
    async fn call(&self, request: CompletionRequest) -> Result<(String, Usage, String)> {
        let call = MeteredCall::new(Tier::Coordinator, self.model.model_id())
            .worker(self.coordinator.clone())
            .session(self.session.clone());
        let chars = serde_json::to_string(&request).map_or(0, |s| s.len());
        let estimate = Usage::new((chars / 4) as u64, u64::from(self.max_output_tokens));
        let hold = match &self.meter {
            Some(m) => Some(m.reserve(call, estimate).await?),
            None => None,
        };
        let completion = match self.model.complete(request).await {
            Ok(c) => c,
            Err(e) => {
                if let (Some(m), Some(h)) = (&self.meter, hold)
                    && let Err(e) = m.cancel(h).await
                {
                    tracing::warn!(error = %e, "a coordinator call's hold was not given back");
                }
                return Err(e.into());
            }
        };
        if let (Some(m), Some(h)) = (&self.meter, hold) {
            // Unbooked, the call stays on the books at its estimate.
            m.settle(h, &completion.model, completion.usage)
                .await
                .map_err(|u| AgentError::from(u.error))?;
        }
        Ok((completion.text(), completion.usage, completion.model))
    }
}

/// Plans with the coordinator model.
#[derive(Debug, Clone)]
pub struct ModelPlanner {
    calls: CoordinatorCalls,
}

impl ModelPlanner {
    /// A planner making `calls`.
    pub fn new(calls: CoordinatorCalls) -> Self {
        Self { calls }
    }
}

#[async_trait]
impl Planner for ModelPlanner {
    async fn plan(&self, goal: &str, max_tasks: usize) -> Result<Planned> {
        let request = CompletionRequest::new(format!(
            "Goal: {goal}\n\nPlan at most {max_tasks} independent tasks."
        ))
        .system(PLANNER_PROMPT)
        .json(plan_schema(max_tasks))
        .max_output_tokens(self.calls.max_output_tokens);
        let (text, usage, model) = self.calls.call(request).await?;
        let plan = parse_plan(&model, &text, max_tasks)?;
        Ok(Planned::new(plan, usage, model))
    }
}

/// Synthesises with the coordinator model, or through the librarian when
/// the findings exceed the coordinator's budget.
#[derive(Clone)]
pub struct ModelSynthesis {
    calls: CoordinatorCalls,
    bus: Arc<dyn Bus>,
    budget_tokens: u64,
    librarian_wait: Duration,
}

impl std::fmt::Debug for ModelSynthesis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelSynthesis")
            .field("calls", &self.calls)
            .field("budget_tokens", &self.budget_tokens)
            .finish_non_exhaustive()
    }
}

impl ModelSynthesis {
    /// Findings up to `budget_tokens` go into the prompt; beyond it the
    /// librarian is asked (and waited for up to 2 minutes).
    pub fn new(calls: CoordinatorCalls, bus: Arc<dyn Bus>, budget_tokens: u64) -> Self {
        Self {
            calls,
            bus,
            budget_tokens,
            librarian_wait: Duration::from_secs(120),
        }
    }

    /// Sets how long to wait for the librarian.
    pub fn librarian_wait(mut self, d: Duration) -> Self {
        self.librarian_wait = d;
        self
    }

    async fn through_librarian(&self, goal: &str, findings: &[Finding]) -> Result<Answer> {
        let query = ArchiveQuery::new(
            goal,
            FindingFilter::all().session(self.calls.session.clone()),
        )
        .asked_by(self.calls.coordinator.to_string());
        let r = match ask(&*self.bus, &query, self.librarian_wait).await {
            Ok(r) => r,
            Err(AskError::Bus { source, .. }) => return Err(source.into()),
            Err(e) => {
                return Err(AgentError::Librarian {
                    message: e.to_string(),
                });
            }
        };
        match r.status {
            ResponseStatus::Ok => {
                let given: Vec<FindingId> = findings.iter().map(|f| f.id.clone()).collect();
                let cites = r
                    .citations
                    .iter()
                    .filter(|c| given.contains(c))
                    .cloned()
                    .collect();
                Ok(Answer::new(
                    r.answer.unwrap_or_default(),
                    cites,
                    Usage::default(),
                    r.answered_by.unwrap_or_else(|| "librarian".into()),
                ))
            }
            _ => Err(AgentError::Librarian {
                message: r
                    .error
                    .map_or_else(|| "failed".into(), |e| format!("{}: {}", e.kind, e.message)),
            }),
        }
    }
}

#[async_trait]
impl Synthesiser for ModelSynthesis {
    async fn synthesise(&self, goal: &str, findings: &[Finding]) -> Result<Answer> {
        let tokens: u64 = findings
            .iter()
            .map(|f| u64::from(estimate_tokens(&f.title)) + u64::from(estimate_tokens(&f.body)))
            .sum();
        if tokens > self.budget_tokens {
            return self.through_librarian(goal, findings).await;
        }
        let mut prompt = format!("Goal: {goal}\n\nFindings:\n");
        for f in findings {
            prompt.push_str(&format!("[{}] {}\n{}\n\n", f.id, f.title, f.body));
        }
        let request = CompletionRequest::new(prompt)
            .system(SYNTHESIS_PROMPT)
            .max_output_tokens(self.calls.max_output_tokens);
        let (text, usage, model) = self.calls.call(request).await?;
        if text.trim().is_empty() {
            return Err(AgentError::MalformedAnswer {
                model,
                reason: "empty answer".into(),
            });
        }
        let given: Vec<FindingId> = findings.iter().map(|f| f.id.clone()).collect();
        let cites = cited_ids(&text, &given).map_err(|unknown| AgentError::MalformedAnswer {
            model: model.clone(),
            reason: format!(
                "cites findings it was not shown: {}",
                cut(&unknown.join(", "), 400)
            ),
        })?;
        Ok(Answer::new(text, cites, usage, model))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scripted::ScriptedModel;
    use swarmbus_memory::MemoryBus;

    fn calls(model: &ScriptedModel) -> CoordinatorCalls {
        CoordinatorCalls::new(
            Arc::new(model.clone()),
            WorkerId::new("sonnet").unwrap(),
            SessionId::new("s").unwrap(),
        )
    }

    #[tokio::test]
    async fn the_plan_is_asked_for_as_json_and_checked() {
        let model = ScriptedModel::new("claude-sonnet-5-5").then_text(
            r#"{"tasks":[{"kind":"search","instructions":"grep KEYS"},{"kind":"count","instructions":"count lines"}]}"#,
            Usage::new(200, 50),
        );
        let planned = ModelPlanner::new(calls(&model))
            .plan("audit", 5)
            .await
            .unwrap();
        assert_eq!(planned.plan.tasks.len(), 2);
        assert_eq!(planned.usage, Usage::new(200, 50));
        let req = &model.requests()[0];
        assert_eq!(req.json_schema, Some(plan_schema(5)));
        assert_eq!(req.system.as_deref(), Some(PLANNER_PROMPT));
    }

    #[tokio::test]
    async fn a_malformed_plan_stops_with_the_models_text() {
        let model = ScriptedModel::new("m").then_text("I think we should grep.", Usage::new(1, 1));
        let e = ModelPlanner::new(calls(&model))
            .plan("audit", 5)
            .await
            .unwrap_err();
        assert!(
            matches!(&e, AgentError::MalformedPlan { raw, .. } if raw == "I think we should grep."),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn synthesis_cites_only_findings_it_was_shown() {
        let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
        let f = Finding::new(
            WorkerId::new("w").unwrap(),
            SessionId::new("s").unwrap(),
            "t",
            "b",
        );
        let model =
            ScriptedModel::new("m").then_text(&format!("It is so [{}].", f.id), Usage::new(5, 5));
        let a = ModelSynthesis::new(calls(&model), Arc::clone(&bus), 10_000)
            .synthesise("goal", std::slice::from_ref(&f))
            .await
            .unwrap();
        assert_eq!(a.cites, vec![f.id.clone()]);
        let stranger = FindingId::random();
        let model =
            ScriptedModel::new("m").then_text(&format!("Also [{stranger}]."), Usage::new(5, 5));
        let e = ModelSynthesis::new(calls(&model), bus, 10_000)
            .synthesise("goal", std::slice::from_ref(&f.clone()))
            .await
            .unwrap_err();
        assert!(matches!(e, AgentError::MalformedAnswer { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn over_its_budget_the_synthesis_asks_the_librarian() {
        let bus = MemoryBus::new();
        let shared: Arc<dyn Bus> = Arc::new(bus.clone());
        let f = Finding::new(
            WorkerId::new("w").unwrap(),
            SessionId::new("s").unwrap(),
            "t",
            "x".repeat(4_000),
        );
        // A librarian answering the first query it sees.
        let lib = bus.clone();
        let id = f.id.clone();
        tokio::spawn(async move {
            use swarmbus_core::ArchiveResponse;
            use swarmbus_core::bus::ArchiveDesk;
            if let Ok(Some(q)) = lib.next_query(Duration::from_secs(5)).await {
                let r =
                    ArchiveResponse::answered(q.id, format!("summary [{id}]"), vec![id.clone()])
                        .answered_by("librarian-test");
                let _ = lib.answer(&r).await;
            }
        });
        let model = ScriptedModel::new("m");
        let a = ModelSynthesis::new(calls(&model), shared, 100)
            .librarian_wait(Duration::from_secs(5))
            .synthesise("goal", std::slice::from_ref(&f))
            .await
            .unwrap();
        assert_eq!(a.by, "librarian-test");
        assert_eq!(a.cites, vec![f.id.clone()]);
        assert!(
            model.requests().is_empty(),
            "the coordinator model was not called"
        );
    }
}
