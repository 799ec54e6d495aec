//! Issue 19 row 7: a worker call whose model has no price was counted as $0
//! against the task's `max_usd` (`cost.unwrap_or(0.0)` in the agent loop),
//! so a dollar limit never stopped it. Now an unpriced call is refused
//! against a dollar limit (before it is made when the recorder can tell) or
//! held at its estimate; never $0. Runs the real accountant and price table.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;
use swarmbus_agents::agent::{AgentWorker, StopCause, TaskLimits};
use swarmbus_agents::metering::Metering;
use swarmbus_agents::scripted::ScriptedModel;
use swarmbus_agents::tools::{CommandAllowList, Toolbox, Workspace};
use swarmbus_core::accounting::{RecordedCost, UsageRecord, UsageRecorder};
use swarmbus_core::llm::Usage;
use swarmbus_core::{SessionId, Task, WorkerId};
use swarmbus_cost::{Accountant, BudgetLimits, PriceTable, Tiers};
use swarmbus_memory::MemoryBus;

fn looping(model: &'static str) -> ScriptedModel {
    ScriptedModel::new(model).responding(move |_| {
        Ok(ScriptedModel::new(model).tool_use("x", "list_files", json!({}), Usage::new(600, 10)))
    })
}

fn agent(
    model: &ScriptedModel,
    recorder: Arc<dyn UsageRecorder>,
    ws: &Arc<Workspace>,
) -> AgentWorker {
    AgentWorker::new(
        Arc::new(model.clone()),
        Arc::new(MemoryBus::new()),
        Arc::clone(ws),
        Toolbox::built_in(CommandAllowList::default()),
        WorkerId::new("haiku-1").unwrap(),
    )
    .metering(Metering::none().recorder(recorder))
    .limits(TaskLimits::default().max_usd(0.01).max_steps(6))
}

fn task() -> Task {
    Task::new(SessionId::new("s").unwrap(), "read", "list the files")
}

#[tokio::test]
async fn an_unpriced_model_is_refused_against_a_dollar_limit_before_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Arc::new(Workspace::new(dir.path()).unwrap());
    let bus = Arc::new(MemoryBus::new());
    let accountant = Accountant::new(
        bus,
        Arc::new(PriceTable::built_in().unwrap()),
        Tiers::default(),
        BudgetLimits::unlimited(),
    )
    .unwrap();
    let model = looping("mystery-model-without-a-price");
    let stop = agent(&model, Arc::new(accountant), &ws)
        .run_task(&task())
        .await
        .unwrap_err();
    // Before: the 6 steps ran, each counted $0 (`StopCause::Steps`).
    let StopCause::Budget { reason } = &stop.cause else {
        panic!("not refused by the dollar limit: {stop}");
    };
    assert!(reason.contains("no price"), "{reason}");
    assert_eq!(model.requests().len(), 0, "refused before the call");
}

/// A recorder that cannot quote and records every call unpriced.
struct Unpriced;

#[async_trait]
impl UsageRecorder for Unpriced {
    async fn record_usage(&self, _: &UsageRecord) -> swarmbus_core::Result<RecordedCost> {
        Ok(RecordedCost::new(None))
    }
}

#[tokio::test]
async fn a_call_that_came_back_unpriced_stops_the_task_instead_of_counting_zero() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Arc::new(Workspace::new(dir.path()).unwrap());
    let model = looping("m");
    let stop = agent(&model, Arc::new(Unpriced), &ws)
        .run_task(&task())
        .await
        .unwrap_err();
    let StopCause::Budget { reason } = &stop.cause else {
        panic!("an unpriced call was counted as $0: {stop}");
    };
    assert!(reason.contains("unpriced"), "{reason}");
    assert_eq!(model.requests().len(), 1, "no call after the unpriced one");
}

#[tokio::test]
async fn a_priced_model_still_runs_under_the_dollar_limit() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Arc::new(Workspace::new(dir.path()).unwrap());
    let accountant = Accountant::new(
        Arc::new(MemoryBus::new()),
        Arc::new(PriceTable::built_in().unwrap()),
        Tiers::default(),
        BudgetLimits::unlimited(),
    )
    .unwrap();
    let model = ScriptedModel::new("claude-haiku-4-5").then_text("done", Usage::new(100, 10));
    let run = agent(&model, Arc::new(accountant), &ws)
        .run_task(&task())
        .await
        .unwrap();
    assert!(run.usd > 0.0, "{}", run.usd);
}
