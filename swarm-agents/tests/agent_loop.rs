//! The tool-use loop on a scripted model: tool_use → tool_result → final
//! text; every call recorded with worker, task, tier and model; the cached
//! prefix marked; escapes refused and never read; each limit, a refused
//! budget and a halt stop the task with a report; a call the provider asked
//! to wait for (429 with `retry-after`) is made again after the wait when it
//! fits in the wall time, its hold released and a new one taken; a failed
//! call's report names the failure once, with the provider's facts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use swarmbus_agents::agent::{AgentWorker, StopCause, TaskLimits};
use swarmbus_agents::runtime::{TaskHandler, Worker, WorkerConfig};
use swarmbus_agents::scripted::ScriptedModel;
use swarmbus_agents::tools::{CommandAllowList, Toolbox, Workspace};
use swarmbus_core::accounting::{Hold, Meter, MeteredCall, Settled, Unsettled};
use swarmbus_core::llm::{
    CacheTtl, ContentBlock, ModelAction, ModelError, ModelErrorKind, Role, Usage,
};
use swarmbus_core::money::Money;
use swarmbus_core::{
    Bus, FindingStore, HaltReport, HaltSwitch, SessionId, Task, TaskQueue, Tier, WorkerId,
};
use swarmbus_memory::MemoryBus;

const CANARY: &str = "CANARY-agent-loop-91c2";

/// A settled call as the test meter saw it.
#[derive(Debug, Clone)]
struct Record {
    tier: swarmbus_core::TierName,
    model: String,
    worker: Option<WorkerId>,
    task: Option<swarmbus_core::TaskId>,
    usage: Usage,
}

/// A meter that keeps every hold it gave (settled or cancelled) and every
/// call it booked, at $1 per million tokens of any kind (enough to test
/// dollar limits); with an allowance, it refuses once that many calls
/// were held.
#[derive(Default)]
struct Ledger {
    records: Mutex<Vec<Record>>,
    reserved: Mutex<Vec<u64>>,
    committed: Mutex<Vec<u64>>,
    released: Mutex<Vec<u64>>,
    allowance: Mutex<Option<u32>>,
}

#[async_trait]
impl Meter for Ledger {
    async fn reserve(&self, call: MeteredCall, estimate: Usage) -> swarmbus_core::Result<Hold> {
        if let Some(left) = self.allowance.lock().unwrap().as_mut() {
            if *left == 0 {
                return Err(swarmbus_core::Error::Refused {
                    reason: "session budget of $0.50 reached".into(),
                    source: None,
                });
            }
            *left -= 1;
        }
        let mut r = self.reserved.lock().unwrap();
        let id = r.len() as u64 + 1;
        r.push(id);
        Ok(Hold::new(
            uuid::Uuid::from_u128(u128::from(id)),
            Some(price(estimate)),
            (id, call),
        ))
    }

    async fn settle(&self, hold: Hold, model: &str, usage: Usage) -> Result<Settled, Unsettled> {
        let estimate = hold.estimate();
        let hold_id = hold.id();
        let (id, call) = *hold.into_state::<(u64, MeteredCall)>().unwrap();
        self.committed.lock().unwrap().push(id);
        let tier = call.role.default_name();
        self.records.lock().unwrap().push(Record {
            tier: tier.clone(),
            model: model.to_owned(),
            worker: call.worker,
            task: call.task,
            usage,
        });
        Ok(Settled::new(hold_id, tier, Some(price(usage)), estimate))
    }

    async fn cancel(&self, hold: Hold) -> swarmbus_core::Result<()> {
        let (id, _) = *hold.into_state::<(u64, MeteredCall)>().unwrap();
        self.released.lock().unwrap().push(id);
        Ok(())
    }
}

/// $1 per million tokens: a micro-dollar a token.
fn price(usage: Usage) -> Money {
    Money::from_micros(i64::try_from(usage.total_tokens()).unwrap())
}

impl Ledger {
    /// (reserved, committed, released), after checking that every hold was
    /// settled exactly once: committed or released, never both, never twice.
    fn settled(&self) -> (Vec<u64>, Vec<u64>, Vec<u64>) {
        let r = self.reserved.lock().unwrap().clone();
        let c = self.committed.lock().unwrap().clone();
        let l = self.released.lock().unwrap().clone();
        let mut all: Vec<u64> = c.iter().chain(&l).copied().collect();
        all.sort_unstable();
        assert_eq!(
            all, r,
            "every hold settled once: committed {c:?}, released {l:?}"
        );
        (r, c, l)
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
    .meter(s.ledger.clone())
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
        .limits(TaskLimits::default().max_usd(Money::from_micros(1_000)))
        .run_task(&task())
        .await
        .unwrap_err();
    assert!(matches!(stop.cause, StopCause::Dollars { .. }), "{stop}");
    assert_eq!(model.requests().len(), 2, "600 then 1,200 micro-dollars");
}

#[tokio::test]
async fn a_budget_refusal_stops_the_task_before_the_call() {
    let s = setup();
    let model = ScriptedModel::new("m").responding(|_| {
        Ok(ScriptedModel::new("m").tool_use("x", "list_files", json!({}), Usage::new(1, 1)))
    });
    *s.ledger.allowance.lock().unwrap() = Some(2);
    let stop = agent(&s, &model).run_task(&task()).await.unwrap_err();
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

/// A 429 as the Anthropic client hands it over after its own retries: rate
/// limited, wait `after`, with the HTTP status and the request id.
fn rate_limited(after: Duration) -> swarmbus_core::Error {
    ModelError::new(
        "anthropic",
        "claude-haiku-5-5",
        ModelErrorKind::RateLimited,
        ModelAction::RetryAfter { after },
        "rate limited (HTTP 429): fake limit for tests",
    )
    .http_status(429)
    .retry_after(after)
    .request_id("req_fake_429")
    .into()
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_call_is_made_again_after_the_wait_the_provider_asked() {
    let s = setup();
    let model = ScriptedModel::new("claude-haiku-5-5")
        .then_fail(rate_limited(Duration::from_secs(1)))
        .then_text("answer() returns 42\nIt returns 42.", Usage::new(500, 20));
    let gate = Arc::clone(&s.ledger);
    let started = tokio::time::Instant::now();
    let run = agent(&s, &model)
        .meter(s.ledger.clone())
        .limits(TaskLimits::default().max_steps(1))
        .run_task(&task())
        .await
        .unwrap();
    assert_eq!(run.text, "answer() returns 42\nIt returns 42.");
    assert_eq!(run.usage, Usage::new(500, 20));
    assert_eq!(run.steps, 1, "the retried call is one step");
    // The same call was sent twice, after the wait (on tokio's paused clock:
    // the wait is what the provider asked, not a timing of this machine).
    let requests = model.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].messages, requests[1].messages);
    assert!(started.elapsed() >= Duration::from_secs(1));
    // Recorded once; the failed call's hold released, the retry's committed.
    let records = s.ledger.records.lock().unwrap().clone();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].usage, Usage::new(500, 20));
    let (reserved, committed, released) = gate.settled();
    assert_eq!(reserved, vec![1, 2]);
    assert_eq!(released, vec![1]);
    assert_eq!(committed, vec![2]);
}

#[tokio::test(start_paused = true)]
async fn a_halt_during_a_rate_limit_wait_stops_the_task_without_the_retry() {
    let s = setup();
    let model = ScriptedModel::new("claude-haiku-5-5")
        .then_fail(rate_limited(Duration::from_secs(60)))
        .then_text("never sent", Usage::new(1, 1));
    let bus = s.bus.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        bus.halt(&HaltReport::new("shard 3 failed", "step 1"))
            .await
            .unwrap();
    });
    let started = tokio::time::Instant::now();
    let stop = agent(&s, &model).run_task(&task()).await.unwrap_err();
    assert_eq!(
        stop.cause,
        StopCause::Halted {
            reason: "shard 3 failed".into()
        }
    );
    assert_eq!(model.requests().len(), 1, "the retry was never sent");
    // Stopped about a poll after the halt (tokio's paused clock), not after
    // the 60 s the provider asked for.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_wait_longer_than_the_wall_time_left_fails_at_once_with_the_providers_facts() {
    let s = setup();
    let model = ScriptedModel::new("claude-haiku-5-5")
        .then_fail(rate_limited(Duration::from_secs(30)))
        .then_text("never sent", Usage::new(1, 1));
    let gate = Arc::clone(&s.ledger);
    let started = tokio::time::Instant::now();
    let stop = agent(&s, &model)
        .meter(s.ledger.clone())
        .limits(TaskLimits::default().wall_time(Duration::from_secs(10)))
        .run_task(&task())
        .await
        .unwrap_err();
    assert_eq!(model.requests().len(), 1, "not retried");
    assert!(started.elapsed() < Duration::from_secs(10), "did not wait");
    let StopCause::Model { message } = &stop.cause else {
        panic!("{stop}");
    };
    for fact in [
        "anthropic",
        "rate_limited",
        "HTTP 429",
        "retry after 30.0 s",
        "req_fake_429",
        "does not fit",
    ] {
        assert!(message.contains(fact), "{fact} missing from {message}");
    }
    assert_eq!(stop.steps, 1);
    assert!(s.ledger.records.lock().unwrap().is_empty());
    let (_, committed, released) = gate.settled();
    assert!(committed.is_empty());
    assert_eq!(released, vec![1]);
}

#[tokio::test(start_paused = true)]
async fn model_retries_are_bounded_per_call() {
    let s = setup();
    let model = ScriptedModel::new("claude-haiku-5-5")
        .responding(|_| Err(rate_limited(Duration::from_millis(10))));
    let gate = Arc::clone(&s.ledger);
    let stop = agent(&s, &model)
        .meter(s.ledger.clone())
        .limits(TaskLimits::default().model_retries(2))
        .run_task(&task())
        .await
        .unwrap_err();
    assert_eq!(model.requests().len(), 3, "the call and 2 retries");
    let StopCause::Model { message } = &stop.cause else {
        panic!("{stop}");
    };
    assert!(message.contains("2 retries of this call used"), "{message}");
    let (reserved, committed, released) = gate.settled();
    assert_eq!(reserved.len(), 3);
    assert!(committed.is_empty());
    assert_eq!(released.len(), 3);

    // Off: the first 429 stops the task.
    let model =
        ScriptedModel::new("m").responding(|_| Err(rate_limited(Duration::from_millis(10))));
    let stop = agent(&s, &model)
        .limits(TaskLimits::default().model_retries(0))
        .run_task(&task())
        .await
        .unwrap_err();
    assert_eq!(model.requests().len(), 1);
    assert!(stop.to_string().contains("model retries are off"), "{stop}");
}

#[tokio::test(start_paused = true)]
async fn failures_without_a_named_wait_are_not_retried_by_the_agent() {
    let s = setup();
    let stop_error = |action: ModelAction, kind: ModelErrorKind| -> swarmbus_core::Error {
        ModelError::new("anthropic", "m", kind, action, "fake failure").into()
    };
    let cases = [
        // A spend limit: stop every call to the provider.
        stop_error(
            ModelAction::Stop { until: None },
            ModelErrorKind::SpendLimit,
        ),
        // Overloaded after the client's own retries, no wait named.
        stop_error(ModelAction::Retry, ModelErrorKind::Overloaded),
        stop_error(ModelAction::Fail, ModelErrorKind::InvalidRequest),
    ];
    for error in cases {
        let shown = error.to_string();
        let model = ScriptedModel::new("m")
            .then_fail(error)
            .then_text("never sent", Usage::new(1, 1));
        let stop = agent(&s, &model).run_task(&task()).await.unwrap_err();
        assert_eq!(model.requests().len(), 1, "{shown} was retried");
        assert!(matches!(stop.cause, StopCause::Model { .. }), "{stop}");
        assert!(!stop.to_string().contains("not retried"), "{stop}");
    }
}

#[tokio::test]
async fn a_failed_calls_report_says_model_call_failed_once_and_keeps_the_facts() {
    let s = setup();
    let model =
        ScriptedModel::new("claude-haiku-5-5").then_fail(rate_limited(Duration::from_secs(600)));
    // Through the handler the runtime reports with: the report string.
    let report = agent(&s, &model).handle(&task()).await.unwrap_err();
    assert_eq!(report.matches("model call failed").count(), 1, "{report}");
    for fact in ["HTTP 429", "retry after 600.0 s", "request id req_fake_429"] {
        assert!(report.contains(fact), "{fact} missing from {report}");
    }
}
