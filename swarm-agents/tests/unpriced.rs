//! Issue 19 row 7: a worker call whose model has no price was counted as $0
//! against the task's `max_usd` (`cost.unwrap_or(0.0)` in the agent loop),
//! so a dollar limit never stopped it. Now an unpriced call is refused
//! against a dollar limit (before it is made when the meter holds no price) or
//! held at its estimate; never $0. Runs the real accountant and price table.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;
use swarmbus_agents::agent::{AgentWorker, StopCause, TaskLimits};
use swarmbus_agents::scripted::ScriptedModel;
use swarmbus_agents::tools::{CommandAllowList, Toolbox, Workspace};
use swarmbus_core::accounting::{Hold, Meter, MeteredCall, Settled, Unsettled};
use swarmbus_core::llm::Usage;
use swarmbus_core::money::Money;
use swarmbus_core::{SessionId, Task, WorkerId};
use swarmbus_cost::{Accountant, BudgetLimits, PriceTable, Tiers};
use swarmbus_memory::MemoryBus;

fn looping(model: &'static str) -> ScriptedModel {
    ScriptedModel::new(model).responding(move |_| {
        Ok(ScriptedModel::new(model).tool_use("x", "list_files", json!({}), Usage::new(600, 10)))
    })
}

fn agent(model: &ScriptedModel, meter: Arc<dyn Meter>, ws: &Arc<Workspace>) -> AgentWorker {
    AgentWorker::new(
        Arc::new(model.clone()),
        Arc::new(MemoryBus::new()),
        Arc::clone(ws),
        Toolbox::built_in(CommandAllowList::default()),
        WorkerId::new("haiku-1").unwrap(),
    )
    .meter(meter)
    .limits(
        TaskLimits::default()
            .max_usd(Money::from_micros(10_000))
            .max_steps(6),
    )
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

/// A meter that holds a priced estimate but settles every call unpriced
/// and without the estimate (the answer named a model it cannot price).
struct Unpriced;

#[async_trait]
impl Meter for Unpriced {
    async fn reserve(&self, call: MeteredCall, _: Usage) -> swarmbus_core::Result<Hold> {
        Ok(Hold::new(
            uuid::Uuid::nil(),
            Some(Money::from_micros(1)),
            call.role,
        ))
    }
    async fn settle(&self, hold: Hold, _: &str, _: Usage) -> Result<Settled, Unsettled> {
        let tier = hold
            .into_state::<swarmbus_core::Tier>()
            .unwrap()
            .default_name();
        Ok(Settled::new(uuid::Uuid::nil(), tier, None, None))
    }
    async fn cancel(&self, _: Hold) -> swarmbus_core::Result<()> {
        Ok(())
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
    assert!(run.usd > Money::ZERO, "{}", run.usd);
}
