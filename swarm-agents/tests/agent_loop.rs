//! The tool-use loop on a scripted model: tool_use → tool_result → final
//! text; every call recorded with worker, task, tier and model; the cached
//! prefix marked; escapes refused and never read; each limit, a refused
//! budget and a halt stop the task with a report.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use swarmbus_agents::agent::{AgentWorker, StopCause, TaskLimits};
use swarmbus_agents::metering::{BudgetGate, CallMeta, Metering, SpendHold};
use swarmbus_agents::runtime::{TaskHandler, Worker, WorkerConfig};
use swarmbus_agents::scripted::ScriptedModel;
use swarmbus_agents::tools::{CommandAllowList, Toolbox, Workspace};
use swarmbus_core::accounting::{RecordedCost, UsageRecord, UsageRecorder};
use swarmbus_core::llm::{CacheTtl, ContentBlock, Role, Usage};
use swarmbus_core::{
    Bus, FindingStore, HaltReport, HaltSwitch, MemoryBus, SessionId, Task, TaskQueue, Tier,
    WorkerId,
};

const CANARY: &str = "CANARY-agent-loop-91c2";

#[derive(Default)]
struct Ledger {
    records: Mutex<Vec<UsageRecord>>,
}

#[async_trait]
impl UsageRecorder for Ledger {
    async fn record_usage(&self, record: &UsageRecord) -> swarmbus_core::Result<RecordedCost> {
        self.records.lock().unwrap().push(record.clone());
        // $1 per million tokens of any kind: enough to test dollar limits.
        Ok(RecordedCost::new(Some(
            record.usage.total_tokens() as f64 / 1_000_000.0,
        )))
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    bus: MemoryBus,
    workspace: Arc<Workspace>,
    ledger: Arc<Ledger>,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let ws = dir.path().join("ws");
    std::fs::create_dir_all(ws.join("src")).unwrap();
    std::fs::write(ws.join("src/lib.rs"), "pub fn answer() -> u32 { 42 }\n").unwrap();
    std::fs::write(dir.path().join("secret.txt"), CANARY).unwrap();
    Setup {
        workspace: Arc::new(Workspace::new(&ws).unwrap()),
        _dir: dir,
        bus: MemoryBus::new(),
        ledger: Arc::default(),
    }
}

fn agent(s: &Setup, model: &ScriptedModel) -> AgentWorker {
    AgentWorker::new(
        Arc::new(model.clone()),
        Arc::new(s.bus.clone()),
        Arc::clone(&s.workspace),
        Toolbox::built_in(CommandAllowList::default()),
        WorkerId::new("haiku-1").unwrap(),
    )
    .metering(Metering::none().recorder(s.ledger.clone()))
}

fn task() -> Task {
    Task::new(
        SessionId::new("s").unwrap(),
        "read",
        "What does answer() return?",
    )
}

#[tokio::test]
async fn a_tool_call_round_trip_ends_in_a_finding_with_its_usage_recorded() {
    let s = setup();
    let model = ScriptedModel::new("claude-haiku-5-5")
        .then_tool(
            "toolu_1",
            "read_file",
            json!({"path": "src/lib.rs"}),
            Usage::new(1_000, 40).with_cache_write(3_000, 0),
        )
        .then_text(
            "answer() returns 42\nIn src/lib.rs, answer() returns 42.",
            Usage::new(1_100, 30).with_cache_read(3_000),
        );
    let bus = s.bus.clone();
    let t = task();
    let worker = WorkerId::new("haiku-1").unwrap();
    bus.push_task(&worker, &t).await.unwrap();
    let cfg = WorkerConfig::new(worker.clone())
        .claim_wait(Duration::from_millis(50))
        .max_tasks(1);
    let report = Worker::new(bus.clone(), agent(&s, &model), cfg)
        .run(futures::future::pending())
        .await
        .unwrap();
    assert_eq!(report.findings.len(), 1, "{report:?}");
    let f = &report.findings[0];
    assert_eq!(f.title, "answer() returns 42");
    assert_eq!(f.task, Some(t.id));

    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    // The cacheable prefix (system prompt and tools) is marked in every call.
    for r in &requests {
        assert_eq!(r.system_cache, Some(CacheTtl::FiveMinutes));
        assert_eq!(r.tools_cache, Some(CacheTtl::FiveMinutes));
        assert!(r.tools.iter().any(|t| t.name == "read_file"));
    }
    // The second call carries the assistant's tool_use and our tool_result.
    let last = requests[1].messages.last().unwrap();
    assert_eq!(last.role, Role::User);
    assert!(matches!(
        &last.content[0],
        ContentBlock::ToolResult { tool_use_id, content, is_error: false }
            if tool_use_id == "toolu_1" && content.contains("42")
    ));
    assert_eq!(requests[1].messages[1].role, Role::Assistant);

    let records = s.ledger.records.lock().unwrap().clone();
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!(r.tier, Tier::Worker.default_name());
        assert_eq!(r.model, "claude-haiku-5-5");
        assert_eq!(r.worker, Some(worker.clone()));
        assert_eq!(r.task, Some(t.id));
    }
    let total: Usage = records.iter().map(|r| r.usage).sum();
    assert_eq!(total.cache_read_tokens, 3_000);
    assert_eq!(total.input_tokens, 2_100);
}

#[tokio::test]
async fn an_escape_is_an_error_result_and_the_canary_is_never_sent() {
    let s = setup();
    let model = ScriptedModel::new("m")
        .then_tool(
            "a",
            "read_file",
            json!({"path": "../secret.txt"}),
            Usage::new(1, 1),
        )
        .then_tool(
            "b",
            "run_command",
            json!({"program": "sh", "args": ["-c", "cat ../secret.txt"]}),
            Usage::new(1, 1),
        )
        .then_text("could not read it", Usage::new(1, 1));
    let run = agent(&s, &model).run_task(&task()).await.unwrap();
    assert_eq!(run.steps, 3);
    assert_eq!(run.tool_calls, 2);
    let requests = model.requests();
    for r in &requests {
        let sent = serde_json::to_string(r).unwrap();
        assert!(!sent.contains(CANARY), "the canary reached the model");
    }
    for (i, call) in ["a", "b"].iter().enumerate() {
        let result = &requests[i + 1].messages.last().unwrap().content[0];
        assert!(
            matches!(result, ContentBlock::ToolResult { tool_use_id, is_error: true, content }
                if tool_use_id == call && content.starts_with("refused")),
            "{result:?}"
        );
    }
}

#[tokio::test]
async fn the_step_limit_stops_the_task_and_the_runtime_reports_it() {
    let s = setup();
    let model = ScriptedModel::new("m").responding(|_| {
        Ok(ScriptedModel::new("m").tool_use("x", "list_files", json!({}), Usage::new(10, 1)))
    });
    let agent = agent(&s, &model).limits(TaskLimits::default().max_steps(3));
    let stop = agent.run_task(&task()).await.unwrap_err();
    assert_eq!(stop.cause, StopCause::Steps { limit: 3 });
    assert_eq!(stop.steps, 3);
    assert_eq!(model.requests().len(), 3);

    // Through the runtime: the task is failed with the report, not retried.
    let w = WorkerId::new("haiku-1").unwrap();
    s.bus.push_task(&w, &task()).await.unwrap();
    let cfg = WorkerConfig::new(w.clone())
        .claim_wait(Duration::from_millis(50))
        .max_tasks(1);
    let report = Worker::new(s.bus.clone(), agent, cfg)
        .run(futures::future::pending())
        .await
        .unwrap();
    assert_eq!(report.failed.len(), 1);
    assert!(
        report.failed[0].report.contains("step limit of 3"),
        "{}",
        report.failed[0].report
    );
    assert_eq!(s.bus.failed_tasks().await.unwrap().len(), 1);
    assert_eq!(s.bus.queued_tasks(&w).await.unwrap(), 0, "not requeued");
}

#[tokio::test]
async fn token_and_dollar_limits_stop_before_the_next_call() {
    let s = setup();
    let looping = || {
        ScriptedModel::new("m").responding(|_| {
            Ok(ScriptedModel::new("m").tool_use("x", "list_files", json!({}), Usage::new(600, 0)))
        })
    };
    let model = looping();
    let stop = agent(&s, &model)
        .limits(TaskLimits::default().max_tokens(1_000))
        .run_task(&task())
        .await
        .unwrap_err();
    assert_eq!(
        stop.cause,
        StopCause::Tokens {
            used: 1_200,
            limit: 1_000
        }
    );
    assert_eq!(model.requests().len(), 2);

    let model = looping();
    let stop = agent(&s, &model)
        .limits(TaskLimits::default().max_usd(0.001))
        .run_task(&task())
        .await
        .unwrap_err();
    assert!(matches!(stop.cause, StopCause::Dollars { .. }), "{stop}");
    assert_eq!(model.requests().len(), 2, "600 then 1,200 micro-dollars");
}

struct Allowance {
    left: Mutex<u32>,
}

#[async_trait]
impl BudgetGate for Allowance {
    async fn reserve(&self, _: &CallMeta, _: &Usage) -> Result<SpendHold, String> {
        let mut left = self.left.lock().unwrap();
        if *left == 0 {
            return Err("session budget of $0.50 reached".into());
        }
        *left -= 1;
        Ok(SpendHold::new(u64::from(*left)))
    }
    async fn commit(&self, _: SpendHold, _: &CallMeta, _: &Usage, _: Option<f64>) {}
    async fn release(&self, _: SpendHold) {}
}

#[tokio::test]
async fn a_budget_refusal_stops_the_task_before_the_call() {
    let s = setup();
    let model = ScriptedModel::new("m").responding(|_| {
        Ok(ScriptedModel::new("m").tool_use("x", "list_files", json!({}), Usage::new(1, 1)))
    });
    let gate = Arc::new(Allowance {
        left: Mutex::new(2),
    });
    let stop = agent(&s, &model)
        .metering(Metering::none().budget(gate).recorder(s.ledger.clone()))
        .run_task(&task())
        .await
        .unwrap_err();
    assert_eq!(
        stop.cause,
        StopCause::Budget {
            reason: "session budget of $0.50 reached".into()
        }
    );
    assert_eq!(model.requests().len(), 2, "the third call was never made");
    assert_eq!(s.ledger.records.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_halt_stops_the_task_before_its_next_step() {
    let s = setup();
    let bus = s.bus.clone();
    let model = ScriptedModel::new("m")
        .responding(move |_| {
            // The halt lands while the model is answering.
            let bus = bus.clone();
            tokio::spawn(async move {
                bus.halt(&HaltReport::new("librarian down", "step 2"))
                    .await
                    .unwrap();
            });
            Ok(ScriptedModel::new("m").tool_use("x", "list_files", json!({}), Usage::new(1, 1)))
        })
        .delay(Duration::from_millis(20));
    let stop = agent(&s, &model)
        .limits(TaskLimits::default().max_steps(50))
        .run_task(&task())
        .await
        .unwrap_err();
    assert_eq!(
        stop.cause,
        StopCause::Halted {
            reason: "librarian down".into()
        }
    );
    assert!(model.requests().len() <= 2, "{}", model.requests().len());
}

#[tokio::test]
async fn a_slow_model_hits_the_wall_time_limit() {
    let s = setup();
    let model = ScriptedModel::new("m")
        .delay(Duration::from_secs(30))
        .then_text("late", Usage::new(1, 1));
    let started = std::time::Instant::now();
    let stop = agent(&s, &model)
        .limits(TaskLimits::default().wall_time(Duration::from_millis(200)))
        .run_task(&task())
        .await
        .unwrap_err();
    assert!(matches!(stop.cause, StopCause::WallTime { .. }), "{stop}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn dependent_findings_go_into_the_prompt_and_are_cited() {
    let s = setup();
    let dep = swarmbus_core::Finding::new(
        WorkerId::new("haiku-2").unwrap(),
        SessionId::new("s").unwrap(),
        "Earlier result",
        "the answer lives in src/lib.rs",
    );
    s.bus.put_finding(&dep).await.unwrap();
    let t = task().continuing(dep.id.clone());
    let model = ScriptedModel::new("m").then_text(
        &format!("42\nAs found before [{}], it is 42.", dep.id),
        Usage::new(1, 1),
    );
    let out = agent(&s, &model).handle(&t).await.unwrap();
    assert_eq!(out.cites, vec![dep.id]);
    assert_eq!(out.model.as_deref(), Some("m"));
    let first = model.requests()[0].messages[0].text();
    assert!(first.contains("the answer lives in src/lib.rs"), "{first}");
    let _: &dyn Bus = &s.bus;
}
