//! Shared pieces of the runnable examples (see `examples/`).
//!
//! # Layout
//!
//! - [`LocalWork`] (from `swarmbus-agents`): real work on this repository's own
//!   files (search, count, read headings), standing in for a worker model so
//!   the examples run with no API key.
//! - [`repo_root`]: where this repository is.
//! - [`example_session`]: the brief's complete example session on any bus.
//! - [`scripted_coordinator`], [`scripted_worker`]: scripted local models for
//!   offline runs of the model-backed swarm; [`model_run`]: a goal run on models.
//! - [`cross_session`]: the librarian answering one session's question over
//!   another session's findings (`examples/librarian_query.rs`).
//! - [`shard_testing`]: the shard test protocol and the 80 % rule
//!   (`examples/shard_testing.rs`).

pub mod cross_session;
pub mod shard_testing;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use swarmbus_agents::agent::AgentWorker;
use swarmbus_agents::coordinator::{CoordinatorCalls, ModelPlanner, ModelSynthesis};
pub use swarmbus_agents::local::LocalWork;
use swarmbus_agents::run::{GoalRun, RunConfig, RunReport};
use swarmbus_agents::runtime::{Coordinator, Worker, WorkerConfig};
pub use swarmbus_agents::scripted::ScriptedModel;
use swarmbus_agents::status::{StatusConfig, SwarmStatus};
use swarmbus_agents::tools::{CommandAllowList, Toolbox, Workspace};
use swarmbus_core::accounting::Meter;
use swarmbus_core::finding::estimate_tokens;
use swarmbus_core::llm::{Completion, CompletionRequest, ContentBlock, LanguageModel, StopReason};
use swarmbus_core::{Bus, Channel, SessionId, Task, Tier, Usage, WorkerId};
use swarmbus_cost::{Accountant, BudgetLimits, PriceTable, ReportFilter, Tiers};

/// Any error of an example.
pub type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The brief's example session on `bus`: prints the status block, routes three
/// independent tasks, runs three workers in parallel, gathers their findings and
/// prints the status again. Returns the final snapshot.
pub async fn example_session<B: Bus + Clone + 'static>(bus: B) -> Result<SwarmStatus, AnyError> {
    let status = StatusConfig::default();
    println!("{}", SwarmStatus::snapshot(&bus, &status).await?.render());

    let session = SessionId::new(format!(
        "example-{}",
        chrono::Utc::now().format("%Y%m%d-%H%M%S")
    ))?;
    let coordinator = Coordinator::new(bus.clone(), session.clone());
    let workers: Vec<WorkerId> = (1..=3)
        .map(|i| WorkerId::new(format!("haiku-{i}")))
        .collect::<Result<_, _>>()?;

    // The coordinator watches the channel while the workers run.
    let mut notes = bus.subscribe(Channel::Findings).await?;

    let tasks = vec![
        Task::new(
            session.clone(),
            "grep",
            "Search the sources for trait definitions",
        )
        .with_payload(serde_json::json!({ "pattern": "pub trait" })),
        Task::new(
            session.clone(),
            "count",
            "Count lines of Rust and Markdown per crate",
        ),
        Task::new(
            session.clone(),
            "headings",
            "Read the README and docs and list their sections",
        ),
    ];
    let routed = coordinator.dispatch(tasks, &workers).await?;
    println!(
        "I'll spawn {} workers in parallel for these independent tasks:",
        workers.len()
    );
    for r in &routed {
        let who = r
            .worker
            .as_ref()
            .map_or("coordinator".to_owned(), ToString::to_string);
        println!(
            "  {who}: {} ({:?} tier, {:?})",
            r.task.instructions, r.task.tier, r.routing.reason
        );
    }

    let handler = LocalWork::new(repo_root());
    let accountant = Accountant::new(
        Arc::new(bus.clone()),
        Arc::new(PriceTable::built_in()?),
        Tiers::default(),
        BudgetLimits::default(),
    )?;
    let runs: Vec<_> = workers
        .iter()
        .map(|id| {
            let cfg = WorkerConfig::new(id.clone())
                .claim_wait(Duration::from_millis(100))
                .idle_exit(Duration::from_millis(500));
            tokio::spawn(Worker::new(bus.clone(), handler.clone(), cfg).run(std::future::pending()))
        })
        .collect();

    let ids: Vec<_> = routed.iter().map(|r| r.task.id).collect();
    let gathered = coordinator.gather(&ids, Duration::from_secs(30)).await?;
    let mut heard = 0;
    while let Ok(Some(Ok(_))) = tokio::time::timeout(
        Duration::from_millis(50),
        futures::StreamExt::next(&mut notes),
    )
    .await
    {
        heard += 1;
    }
    println!(
        "\nAll {} workers completed; {heard} notifications on channel:findings. Their findings:",
        workers.len()
    );
    for f in &gathered.findings {
        println!(
            "  [{}] {}: {}",
            f.worker,
            f.title,
            f.body.lines().next().unwrap_or("")
        );
    }
    for f in &gathered.failed {
        println!("  FAILED {}: {}", f.task.instructions, f.report);
    }
    for r in runs {
        r.await??;
    }

    // The accountant prices every call. The workers here did local work with
    // no model, so each is priced as the worker model would have been: the
    // text it read as input, its finding as output. The coordinator made one
    // call to route the tasks and read the findings back.
    for f in &gathered.findings {
        let read = f.task.map_or(0, |t| handler.chars_read(t));
        let input = u64::from(estimate_tokens(&f.body)) + (read / 4) as u64;
        let call = accountant
            .call(Tier::Worker)
            .ok_or("no worker tier")?
            .worker(f.worker.clone())
            .session(session.clone());
        accountant
            .record(&call, Usage::new(input, u64::from(f.tokens)))
            .await?;
    }
    let read_back: u64 = gathered.findings.iter().map(|f| u64::from(f.tokens)).sum();
    let call = accountant
        .call(Tier::Coordinator)
        .ok_or("no coordinator tier")?
        .session(session.clone());
    accountant
        .record(&call, Usage::new(800 + read_back, 300))
        .await?;
    let report = accountant
        .report(&ReportFilter::all().session(session.clone()))
        .await?;
    println!("\n{}", report.render());
    println!("{}\n", coordinator.stats().summary());
    let after = SwarmStatus::snapshot(&bus, &status).await?;
    println!("{}", after.render());
    if !gathered.failed.is_empty() || !gathered.pending.is_empty() {
        return Err("some tasks did not complete".into());
    }
    Ok(after)
}

/// A scripted coordinator model (offline stand-in for the coordinator
/// tier): asked for a plan (JSON schema) it plans three independent tasks;
/// asked to synthesise, it answers citing every finding id it was shown.
pub fn scripted_coordinator(model: &str) -> ScriptedModel {
    let id = model.to_owned();
    ScriptedModel::new(model).responding(move |req: &CompletionRequest| {
        if req.json_schema.is_some() {
            let plan = serde_json::json!({"tasks": [
                {"kind": "list", "instructions": "List the workspace's top-level files and folders and say what each crate folder is."},
                {"kind": "search", "instructions": "Search the sources for public traits (pattern `pub trait`) and count them per crate."},
                {"kind": "read", "instructions": "Read README.md and report its sections."}
            ]});
            return Ok(Completion::new(plan.to_string(), &id, Usage::new(900, 150)));
        }
        let prompt = req.prompt_text();
        let ids: Vec<&str> = prompt
            .split('[')
            .filter_map(|p| p.split(']').next())
            .filter(|p| p.len() == 36 && p.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
            .collect();
        let cites: Vec<String> = ids.iter().map(|i| format!("[{i}]")).collect();
        Ok(Completion::new(
            format!(
                "The workspace's crates, traits and docs are summarised by the workers' findings {}.",
                cites.join(" ")
            ),
            &id,
            Usage::new(2_500, 300).with_cache_read(0),
        ))
    })
}

/// A scripted worker model (offline stand-in for the worker tier): one tool
/// call chosen from the task's words, then an answer built from the tool's
/// result. Its first call writes the cached prefix, the second reads it.
pub fn scripted_worker(model: &str) -> ScriptedModel {
    let id = model.to_owned();
    ScriptedModel::new(model).responding(move |req: &CompletionRequest| {
        let last = req.messages.last();
        let result = last.and_then(|m| {
            m.content.iter().find_map(|b| match b {
                ContentBlock::ToolResult { content, .. } => Some(content.clone()),
                _ => None,
            })
        });
        match result {
            Some(out) => {
                let first = out.lines().next().unwrap_or("").to_owned();
                Ok(Completion::new(
                    format!(
                        "{} lines of tool output read\nFirst line: {first}\n{}",
                        out.lines().count(),
                        out.lines().take(20).collect::<Vec<_>>().join("\n")
                    ),
                    &id,
                    Usage::new(420, 120).with_cache_read(1_800),
                ))
            }
            None => {
                let task = req.messages.first().map(|m| m.text()).unwrap_or_default();
                let (tool, input) = if task.contains("Search") {
                    ("search_text", serde_json::json!({"pattern": "pub trait"}))
                } else if task.contains("README") {
                    ("read_file", serde_json::json!({"path": "README.md"}))
                } else {
                    ("list_files", serde_json::json!({"max_depth": 1}))
                };
                Ok(Completion::from_blocks(
                    vec![ContentBlock::ToolUse {
                        id: "toolu_scripted_1".into(),
                        name: tool.into(),
                        input,
                    }],
                    &id,
                    Usage::new(350, 60).with_cache_write(1_800, 0),
                )
                .stop_reason(StopReason::ToolUse))
            }
        }
    })
}

/// A goal run on models: `workers` agent workers (tokio tasks) on
/// `worker_model` with tools on `workspace`, the coordinator on
/// `coordinator_model`, every call metered by `meter`. Returns the run
/// report once the workers have stopped.
pub async fn model_run(
    bus: Arc<dyn Bus>,
    coordinator_model: Arc<dyn LanguageModel>,
    worker_model: Arc<dyn LanguageModel>,
    meter: Arc<dyn Meter>,
    workspace: &Path,
    workers: usize,
    goal: &str,
) -> Result<RunReport, AnyError> {
    let session = SessionId::new(format!(
        "run-{}",
        &swarmbus_core::FindingId::random().to_string()[..8]
    ))?;
    let ws = Arc::new(Workspace::new(workspace)?);
    let ids: Vec<WorkerId> = (1..=workers)
        .map(|i| WorkerId::new(format!("haiku-{i}")))
        .collect::<Result<_, _>>()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut running = Vec::new();
    for id in &ids {
        let agent = AgentWorker::new(
            Arc::clone(&worker_model),
            Arc::clone(&bus),
            Arc::clone(&ws),
            Toolbox::built_in(CommandAllowList::default()),
            id.clone(),
        )
        .meter(Arc::clone(&meter));
        let cfg = WorkerConfig::new(id.clone()).claim_wait(Duration::from_millis(100));
        let mut rx = stop_rx.clone();
        running.push(tokio::spawn(
            Worker::shared(Arc::clone(&bus), agent, cfg).run(async move {
                let _ = rx.wait_for(|s| *s).await;
            }),
        ));
    }
    let me = WorkerId::new("sonnet-coordinator")?;
    let calls = CoordinatorCalls::new(coordinator_model, me.clone(), session.clone()).meter(meter);
    let run = GoalRun::new(
        Arc::clone(&bus),
        Arc::new(ModelPlanner::new(calls.clone())),
        Arc::new(ModelSynthesis::new(calls, Arc::clone(&bus), 150_000)),
        RunConfig::new(session, ids, me).deadline(Duration::from_secs(60)),
    );
    let outcome = run.run(goal).await;
    let _ = stop_tx.send(true);
    for r in running {
        r.await??;
    }
    Ok(outcome?)
}

/// Opens the examples' bus: Redis when `REDIS_URL` is set, else in-memory.
pub async fn example_bus() -> Result<Arc<dyn Bus>, AnyError> {
    match std::env::var("REDIS_URL") {
        Ok(url) if !url.is_empty() => {
            println!("Bus: Redis");
            Ok(Arc::new(
                swarmbus_redis::RedisBus::connect(swarmbus_redis::RedisConfig::from_url(&url)?)
                    .await?,
            ))
        }
        _ => {
            println!("Bus: in-memory (set REDIS_URL to use Redis)");
            Ok(Arc::new(swarmbus_memory::MemoryBus::new()))
        }
    }
}

/// The scripted local models, named after the tier defaults (so the price
/// table prices them): what [`run_models`] gives without an API key.
pub fn example_models() -> (ScriptedModel, ScriptedModel) {
    println!("Models: scripted local models (offline), priced as the tier defaults");
    let tiers = Tiers::default();
    (
        scripted_coordinator(&tiers.coordinator.model),
        scripted_worker(&tiers.worker.model),
    )
}

/// Any model, counting the requests it served and summing their usage, so an
/// example can check the ledger against what the models reported whichever
/// provider answers (scripted offline, Claude with a key).
pub struct Counted {
    inner: Arc<dyn LanguageModel>,
    served: std::sync::Mutex<(u64, Usage)>,
}

impl std::fmt::Debug for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Counted")
            .field("model", &self.inner.model_id())
            .finish_non_exhaustive()
    }
}

impl Counted {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn LanguageModel>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            served: std::sync::Mutex::new((0, Usage::default())),
        })
    }

    /// Requests answered successfully.
    pub fn requests(&self) -> u64 {
        self.served.lock().map(|s| s.0).unwrap_or(0)
    }

    /// The sum of the usage of every answered request.
    pub fn usage_served(&self) -> Usage {
        self.served.lock().map(|s| s.1).unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl LanguageModel for Counted {
    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn provider_name(&self) -> &str {
        self.inner.provider_name()
    }

    async fn complete(&self, request: CompletionRequest) -> swarmbus_core::Result<Completion> {
        let answer = self.inner.complete(request).await?;
        if let Ok(mut s) = self.served.lock() {
            s.0 += 1;
            s.1 += answer.usage;
        }
        Ok(answer)
    }
}

/// A goal run's models: (coordinator, worker).
pub type ModelPair = (Arc<dyn LanguageModel>, Arc<dyn LanguageModel>);

/// The models of a goal run: Claude when `ANTHROPIC_API_KEY` is set (the
/// coordinator and worker tier defaults, through `swarmbus-anthropic`;
/// `ANTHROPIC_BASE_URL` is honoured), else the scripted local models.
pub fn run_models() -> Result<ModelPair, AnyError> {
    let tiers = Tiers::default();
    match (
        claude(&tiers.coordinator.model)?,
        claude(&tiers.worker.model)?,
    ) {
        (Some(coordinator), Some(worker)) => {
            println!(
                "Models: Claude ({} coordinates, {} works)",
                tiers.coordinator.model, tiers.worker.model
            );
            Ok((coordinator, worker))
        }
        _ => {
            let (coordinator, worker) = example_models();
            Ok((Arc::new(coordinator), Arc::new(worker)))
        }
    }
}

/// Claude as `model` when `ANTHROPIC_API_KEY` is set (held as a secret, sent
/// only in `x-api-key`; `ANTHROPIC_BASE_URL` honoured), else `None`.
pub fn claude(model: &str) -> Result<Option<Arc<dyn LanguageModel>>, AnyError> {
    let Some(key) = std::env::var("ANTHROPIC_API_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty())
    else {
        return Ok(None);
    };
    Ok(Some(Arc::new(swarmbus_anthropic::AnthropicClient::new(
        secrecy::SecretString::from(key),
        swarmbus_anthropic::ClientConfig::from_env().model(model),
    )?)))
}

/// An accountant on `bus` with the built-in prices and no budget.
pub fn example_accountant(bus: &Arc<dyn Bus>) -> Result<Accountant<dyn Bus>, AnyError> {
    Ok(Accountant::new(
        Arc::clone(bus),
        Arc::new(PriceTable::built_in()?),
        Tiers::default(),
        BudgetLimits::default(),
    )?)
}

/// Prints a run report: plan, findings, answer.
pub fn print_run(report: &RunReport) {
    println!("{}", report.render());
}
