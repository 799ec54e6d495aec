//! `swarm run "GOAL"`: plan → workers in parallel → synthesis, then the
//! status block and the cost report.
//!
//! With `ANTHROPIC_API_KEY` (Claude through `swarmbus-anthropic`;
//! `ANTHROPIC_BASE_URL` overrides the endpoint) the coordinator tier plans and synthesises and
//! the workers run a tool-use loop on the worker tier, tools sandboxed to
//! `--workspace`. Without it the run is offline: a fixed plan of local tasks
//! (search, line counts, documentation sections), the local handlers as
//! workers, and an extractive answer; the output says so.
//!
//! Exit status: 0 every task finished, 3 some tasks were stopped with a
//! report (the answer is still written from the rest), 1 the run stopped
//! (halt, malformed plan, context full, deadline, bus), 2 bad arguments.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::json;
use swarmbus_agents::agent::AgentWorker;
use swarmbus_agents::coordinator::{CoordinatorCalls, ModelPlanner, ModelSynthesis};
use swarmbus_agents::local::LocalWork;
use swarmbus_agents::run::{
    ExtractiveSynthesis, GoalRun, OfflinePlanner, Planner, RunConfig, RunReport, Synthesiser,
};
use swarmbus_agents::runtime::{TaskHandler, Worker, WorkerConfig};
use swarmbus_agents::status::{StatusConfig, SwarmStatus};
use swarmbus_agents::tools::{CommandAllowList, Toolbox, Workspace};
use swarmbus_core::accounting::Meter;
use swarmbus_core::bus::Bus;
use swarmbus_core::keys::{Channel, SessionId, WorkerId};
use swarmbus_core::llm::LanguageModel;
use swarmbus_cost::{Accountant, BudgetLimits, Call, Money, ReportFilter};

use crate::ctx::{BusUse, Ctx, fail};

/// Exit status when some tasks were stopped with a report.
const TASKS_STOPPED: u8 = 3;
/// The coordinator's worker id on the bus.
const COORDINATOR_ID: &str = "sonnet-coordinator";
/// Findings up to this many tokens go into the synthesis prompt; beyond it
/// the librarian is asked.
const SYNTHESIS_BUDGET_TOKENS: u64 = 150_000;

/// Which models play the tiers.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ModelArgs {
    /// The worker tier's model (default: the price table's worker default).
    #[arg(long, env = "SWARM_WORKER_MODEL", value_name = "MODEL")]
    pub(crate) model: Option<String>,
    /// Run offline even when ANTHROPIC_API_KEY is set.
    #[arg(long)]
    pub(crate) offline: bool,
    /// Programs `run_command` may start besides the default list (`cat echo
    /// head ls sort tail uniq wc`), comma-separated bare names: `pytest,cargo`.
    /// They run confined by the kernel like every command.
    #[arg(long, value_delimiter = ',', value_name = "PROGRAMS")]
    pub(crate) allow_command: Vec<String>,
}

/// `swarm run`.
#[derive(Debug, clap::Args)]
pub(crate) struct RunArgs {
    /// What the swarm should find out.
    goal: String,
    /// Workers started in this process (tokio tasks).
    #[arg(long, default_value_t = 3, value_name = "N")]
    workers: usize,
    /// Dispatch to these already running workers (`swarm worker run --id …`,
    /// comma-separated) instead of starting any here.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    worker_ids: Vec<String>,
    /// Spend limit of this run in dollars: a call that would go over it is
    /// refused and its task stopped with a report.
    #[arg(long, value_name = "USD")]
    budget: Option<String>,
    /// The folder the workers' tools are confined to (default: here).
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// How long to wait for the workers, in seconds.
    #[arg(long, default_value_t = 600, value_name = "SECONDS")]
    deadline: u64,
    /// What the offline search task looks for.
    #[arg(long, default_value = "pub trait", value_name = "TEXT")]
    offline_pattern: String,
    #[command(flatten)]
    model: ModelArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// At the end, apply the write tasks' diffs to the workspace (paths that
    /// change what runs or where secrets go are refused and listed).
    #[arg(long)]
    apply: bool,
}

/// Who thinks: the offline local handlers, or models.
pub(crate) enum Brains {
    /// No model: local handlers, a fixed plan, an extractive answer.
    Offline {
        /// Why offline.
        why: String,
        /// The workspace.
        workspace: PathBuf,
    },
    /// Models: the coordinator tier plans and synthesises, the worker tier
    /// runs the tool-use loop.
    Models(Box<ModelBrains>),
}

/// The models of a run and what meters them.
pub(crate) struct ModelBrains {
    coordinator: Arc<dyn LanguageModel>,
    worker: Arc<dyn LanguageModel>,
    workspace: Arc<Workspace>,
    bus: Arc<dyn Bus>,
    meter: Arc<dyn Meter>,
    provider: String,
    clock: swarmbus_core::SharedClock,
    commands: CommandAllowList,
}

impl Brains {
    /// Picks models from the environment: Claude when `ANTHROPIC_API_KEY`
    /// is set (and `--offline` is not), else offline.
    pub(crate) fn from_env(
        args: &ModelArgs,
        workspace: &Path,
        bus: Arc<dyn Bus>,
        accountant: Accountant<dyn Bus>,
        ctx: &Ctx,
    ) -> Result<Self, String> {
        let workspace = std::fs::canonicalize(workspace)
            .map_err(|e| format!("workspace {}: {e}", workspace.display()))?;
        let key =
            std::env::var_os(swarmbus_anthropic::client::API_KEY_VAR).filter(|k| !k.is_empty());
        if args.offline {
            return Ok(Brains::Offline {
                why: "offline (--offline)".into(),
                workspace,
            });
        }
        if key.is_none() {
            return Ok(Brains::Offline {
                why: "offline: no ANTHROPIC_API_KEY".into(),
                workspace,
            });
        }
        let tiers = accountant.tiers().clone();
        let worker_model = args.model.clone().unwrap_or(tiers.worker.model.clone());
        // A retired model stops the command here, naming its replacement,
        // before any worker starts; a deprecated one is warned about.
        let table = accountant.ledger().shared_table();
        ctx.check_models(
            &table,
            &[
                ("the coordinator model", tiers.coordinator.model.as_str()),
                (
                    "the worker model (--model, SWARM_WORKER_MODEL)",
                    worker_model.as_str(),
                ),
            ],
        )?;
        // Claude through the context's one client constructor, checking
        // every model against the price table's lifecycles before sending.
        let claude = |model: &str| -> Result<Option<Arc<dyn LanguageModel>>, String> {
            let config = swarmbus_anthropic::ClientConfig::from_env().model(model);
            Ok(ctx
                .anthropic(config, Some(Arc::clone(&table)))
                .map_err(|e| format!("Anthropic client: {e}"))?
                .map(|c| Arc::new(c) as Arc<dyn LanguageModel>))
        };
        let (Some(coordinator), Some(worker)) =
            (claude(&tiers.coordinator.model)?, claude(&worker_model)?)
        else {
            return Ok(Brains::Offline {
                why: "offline: no ANTHROPIC_API_KEY".into(),
                workspace,
            });
        };
        let commands = CommandAllowList::default_and(args.allow_command.iter().cloned())
            .map_err(|e| format!("--allow-command: {e}"))?;
        Brains::with_models(
            coordinator,
            worker,
            &workspace,
            bus,
            accountant,
            ctx.clock(),
        )
        .map(|b| b.commands(commands))
    }

    /// Sets the allow-list of `run_command`.
    pub(crate) fn commands(self, commands: CommandAllowList) -> Self {
        match self {
            Brains::Models(mut m) => {
                m.commands = commands;
                Brains::Models(m)
            }
            offline => offline,
        }
    }

    /// What the sandbox probe says about the workers' commands (`None`
    /// offline: no tools run).
    pub(crate) async fn sandbox_line(&self) -> Option<String> {
        let Brains::Models(m) = self else {
            return None;
        };
        let status = m.workspace.sandbox().probe().await;
        let list: Vec<&str> = m.commands.programs().collect();
        Some(match status {
            swarmbus_agents::sandbox::SandboxStatus::Unavailable { reason } => format!(
                "tools off: run_command and git are refused ({reason}); the file and bus tools work"
            ),
            _ => format!("{status}; run_command may start {}", list.join(" ")),
        })
    }

    /// Brains on these models, metered by `accountant` (its ledger records
    /// every call; its budgets hold each call's estimate before it is made).
    pub(crate) fn with_models(
        coordinator: Arc<dyn LanguageModel>,
        worker: Arc<dyn LanguageModel>,
        workspace: &Path,
        bus: Arc<dyn Bus>,
        accountant: Accountant<dyn Bus>,
        clock: swarmbus_core::SharedClock,
    ) -> Result<Self, String> {
        let ws = Workspace::new(workspace).map_err(|e| e.to_string())?;
        let provider = worker.provider_name().to_owned();
        let meter: Arc<dyn Meter> = Arc::new(accountant);
        Ok(Brains::Models(Box::new(ModelBrains {
            coordinator,
            worker,
            workspace: Arc::new(ws),
            bus,
            meter,
            provider,
            clock,
            commands: CommandAllowList::default(),
        })))
    }

    /// One line on what the workers run on.
    pub(crate) fn describe_worker(&self) -> String {
        match self {
            Brains::Offline { why, workspace } => format!(
                "{why}; local handlers (search, count, headings) on {}",
                workspace.display()
            ),
            Brains::Models(m) => format!(
                "{} ({}) with tools on {}; coordinator {}",
                m.worker.model_id(),
                m.provider,
                m.workspace.root().display(),
                m.coordinator.model_id()
            ),
        }
    }

    /// Whether no model is used.
    pub(crate) fn is_offline(&self) -> bool {
        matches!(self, Brains::Offline { .. })
    }

    /// The handler of worker `id`.
    pub(crate) fn worker_handler(&self, id: &WorkerId) -> Arc<dyn TaskHandler> {
        match self {
            Brains::Offline { workspace, .. } => Arc::new(LocalWork::new(workspace.clone())),
            Brains::Models(m) => Arc::new(
                AgentWorker::new(
                    Arc::clone(&m.worker),
                    Arc::clone(&m.bus),
                    Arc::clone(&m.workspace),
                    Toolbox::built_in(m.commands.clone()),
                    id.clone(),
                )
                .meter(Arc::clone(&m.meter))
                .clock(Arc::clone(&m.clock)),
            ),
        }
    }

    fn coordinator_calls(m: &ModelBrains, session: &SessionId) -> Result<CoordinatorCalls, String> {
        let me = WorkerId::new(COORDINATOR_ID).map_err(|e| e.to_string())?;
        Ok(
            CoordinatorCalls::new(Arc::clone(&m.coordinator), me, session.clone())
                .meter(Arc::clone(&m.meter)),
        )
    }

    fn planner(&self, pattern: &str, session: &SessionId) -> Result<Arc<dyn Planner>, String> {
        Ok(match self {
            Brains::Offline { .. } => Arc::new(OfflinePlanner::new(pattern)),
            Brains::Models(m) => Arc::new(ModelPlanner::new(Self::coordinator_calls(m, session)?)),
        })
    }

    fn synthesiser(&self, session: &SessionId) -> Result<Arc<dyn Synthesiser>, String> {
        Ok(match self {
            Brains::Offline { .. } => Arc::new(ExtractiveSynthesis),
            Brains::Models(m) => Arc::new(ModelSynthesis::new(
                Self::coordinator_calls(m, session)?,
                Arc::clone(&m.bus),
                SYNTHESIS_BUDGET_TOKENS,
            )),
        })
    }
}

/// Runs `swarm run`.
pub(crate) async fn run(args: RunArgs, ctx: &Ctx) -> ExitCode {
    let bus = match ctx.bus(BusUse::ONE_SHOT).await {
        Ok(b) => b,
        Err(e) => return fail("cannot open the bus", e),
    };
    let workspace = args.workspace.clone().unwrap_or_else(|| PathBuf::from("."));
    let budget = match args.budget.as_deref().map(Money::parse).transpose() {
        Ok(b) => b,
        Err(e) => return fail("--budget", e),
    };
    let session = match SessionId::new(format!(
        "run-{}-{}",
        chrono::Utc::now().format("%Y%m%d-%H%M%S"),
        &uuid_suffix()
    )) {
        Ok(s) => s,
        Err(e) => return fail("session", e),
    };
    let table = match ctx.prices() {
        Ok(t) => t,
        Err(e) => return fail("price table", e),
    };
    let mut limits = BudgetLimits::unlimited();
    if let Some(b) = budget {
        limits = limits.per_session(b);
    }
    let accountant = match ctx.accountant(Arc::clone(&bus), table, limits) {
        Ok(a) => a,
        Err(e) => return fail("accountant", e),
    };
    let status = ctx.status_config();
    let brains = match Brains::from_env(
        &args.model,
        &workspace,
        Arc::clone(&bus),
        accountant.clone(),
        ctx,
    ) {
        Ok(b) => b,
        Err(e) => return fail("run", e),
    };
    run_with(args, bus, brains, accountant, session, status).await
}

/// The run once its parts are chosen (tests call it with scripted models).
pub(crate) async fn run_with(
    args: RunArgs,
    bus: Arc<dyn Bus>,
    brains: Brains,
    accountant: Accountant<dyn Bus>,
    session: SessionId,
    status: StatusConfig,
) -> ExitCode {
    let started_at = chrono::Utc::now();

    // Workers: the ones named, or N here.
    let external = !args.worker_ids.is_empty();
    let ids: Vec<WorkerId> = if external {
        match args.worker_ids.iter().map(WorkerId::new).collect() {
            Ok(v) => v,
            Err(e) => return fail("--worker-ids", e),
        }
    } else {
        match (1..=args.workers.max(1))
            .map(|i| WorkerId::new(format!("haiku-{i}")))
            .collect()
        {
            Ok(v) => v,
            Err(e) => return fail("worker id", e),
        }
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut running = Vec::new();
    if !external {
        for id in &ids {
            let cfg = WorkerConfig::new(id.clone()).claim_wait(Duration::from_millis(200));
            let mut rx = stop_rx.clone();
            let stop = async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            let worker = Worker::shared(Arc::clone(&bus), brains.worker_handler(id), cfg);
            running.push(tokio::spawn(worker.run(stop)));
        }
    }

    if !external && let Some(line) = brains.sandbox_line().await {
        eprintln!("swarm run: {line}");
    }
    let progress = Progress::start(!args.json && std::io::stderr().is_terminal());
    progress.say(&format!("{} | planning", brains.describe_worker()));
    let watcher = progress.watch(Arc::clone(&bus)).await;

    let coordinator = match WorkerId::new(COORDINATOR_ID) {
        Ok(c) => c,
        Err(e) => return fail("coordinator id", e),
    };
    let config = RunConfig::new(session.clone(), ids.clone(), coordinator)
        .deadline(Duration::from_secs(args.deadline));
    let (planner, synthesiser) = match (
        brains.planner(&args.offline_pattern, &session),
        brains.synthesiser(&session),
    ) {
        (Ok(p), Ok(s)) => (p, s),
        (Err(e), _) | (_, Err(e)) => return fail("run", e),
    };
    let goal_run = GoalRun::new(Arc::clone(&bus), planner, synthesiser, config);
    let outcome = goal_run.run(&args.goal).await;
    let _ = stop_tx.send(true);
    for r in running {
        match r.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "a worker stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "a worker task panicked"),
        }
    }
    if let Some(w) = watcher {
        w.abort();
    }
    progress.finish();

    let report = match outcome {
        Ok(r) => r,
        Err(e) => {
            if args.json {
                println!(
                    "{}",
                    json!({"session": session.to_string(), "error": {"message": e.to_string(), "halt": e.halt_report()}})
                );
                return ExitCode::FAILURE;
            }
            return fail("run stopped", e);
        }
    };
    let status = SwarmStatus::snapshot(&*bus, &status).await;
    // The ledger's records of this run: every call since it started (core's
    // usage record carries worker, task, tier and model, not the session).
    let cost = accountant
        .report(&ReportFilter::all().between(Some(started_at), None))
        .await;
    let code = if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(TASKS_STOPPED)
    };
    let applied = if args.apply {
        apply_all(&report, args.workspace.as_deref(), args.json).await
    } else {
        Vec::new()
    };
    if args.json {
        let value = json!({
            "session": session.to_string(),
            "goal": report.goal,
            "mode": if brains.is_offline() { "offline" } else { "claude" },
            "workers": brains.describe_worker(),
            "planned_by": report.planned.by,
            "tasks": report.routed.iter().map(|r| json!({
                "id": r.task.id.to_string(),
                "kind": r.task.kind,
                "instructions": r.task.instructions,
                "tier": r.routing.tier,
                "reason": r.routing.reason,
                "worker": r.worker.as_ref().map(ToString::to_string),
            })).collect::<Vec<_>>(),
            "findings": report.findings.iter().map(|f| json!({
                "id": f.id.to_string(), "worker": f.worker.to_string(), "title": f.title,
            })).collect::<Vec<_>>(),
            "failed": report.failed.iter().map(|f| json!({
                "task": f.task.id.to_string(), "report": f.report,
            })).collect::<Vec<_>>(),
            "answer": {
                "id": report.answer.id.to_string(),
                "by": report.answered_by,
                "text": report.answer.body,
                "cites": report.answer.cites.iter().map(ToString::to_string).collect::<Vec<_>>(),
            },
            "cost": cost.as_ref().ok(),
            "cache_savings_usd": cost.as_ref().ok().map(|c| cache_savings(&accountant, c).1.to_string()),
            "status": status.as_ref().ok().map(SwarmStatus::to_json),
            "applied": applied,
        });
        println!("{value}");
        return code;
    }
    print_text(&report, &brains);
    match status {
        Ok(s) => println!("{}", s.render()),
        Err(e) => eprintln!("swarm: status: {e}"),
    }
    match cost {
        Ok(c) => {
            println!("Cost of this run (session {session}):");
            print!("{}", c.render());
            let (tokens, saved) = cache_savings(&accountant, &c);
            if tokens > 0 {
                println!("Prompt cache: {tokens} input tokens read from the cache saved ${saved}");
            }
            if brains.is_offline() {
                println!("(offline: no model was called, so nothing was spent)");
            }
        }
        Err(e) => eprintln!("swarm: cost report: {e}"),
    }
    code
}

/// `--apply`: every write task's diff applied to the workspace, the
/// refused paths listed (on stdout when not JSON: `swarm task apply`'s
/// lines); one JSON entry per task with a diff.
async fn apply_all(
    report: &RunReport,
    workspace: Option<&Path>,
    json_out: bool,
) -> Vec<serde_json::Value> {
    let show = if json_out {
        crate::task_cmd::Show::Nothing
    } else {
        crate::task_cmd::Show::Files
    };
    let ws = workspace.unwrap_or_else(|| Path::new("."));
    let mut out = Vec::new();
    for f in &report.findings {
        if !f.tags.contains(swarmbus_agents::tools::patch::DIFF_TAG) {
            continue;
        }
        let entry = match crate::task_cmd::apply_finding(f, ws, false, show).await {
            Ok(Some(a)) => json!({
                "finding": f.id.to_string(),
                "applied": a.applied,
                "refused": a.refused.iter().map(|(p, why)| json!({"path": p, "why": why})).collect::<Vec<_>>(),
            }),
            Ok(None) => continue,
            Err(e) => {
                eprintln!("swarm run --apply: {}: {e}", f.id);
                json!({"finding": f.id.to_string(), "error": e})
            }
        };
        out.push(entry);
    }
    out
}

fn print_text(report: &RunReport, brains: &Brains) {
    println!("Goal: {}", report.goal);
    println!("Workers: {}", brains.describe_worker());
    println!("{}", report.render());
}

/// What reading from the prompt cache saved: each model's calls priced as
/// if their cache reads had been fresh input, minus their price. Per model
/// totals, so a long-context band that one request alone would cross is not
/// seen (the figure errs low).
fn cache_savings(accountant: &Accountant<dyn Bus>, report: &swarmbus_cost::Report) -> (u64, Money) {
    let mut tokens = 0;
    let mut saved = Money::ZERO;
    for (model, totals) in &report.by_model {
        let read = totals.usage.cache_read_tokens;
        if read == 0 {
            continue;
        }
        let call = Call::new(accountant.tiers().worker.name.clone(), model.clone());
        let mut uncached = totals.usage;
        uncached.input_tokens = uncached.input_tokens.saturating_add(read);
        uncached.cache_read_tokens = 0;
        if let (Some(with), Some(without)) = (
            accountant.quote(&call, &totals.usage).usd(),
            accountant.quote(&call, &uncached).usd(),
        ) {
            tokens += read;
            saved += without - with;
        }
    }
    (tokens, saved)
}

fn uuid_suffix() -> String {
    let id = swarmbus_core::keys::FindingId::random().to_string();
    id.chars().take(8).collect()
}

/// Progress on a terminal (indicatif), nothing when piped.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn start(on_terminal: bool) -> Self {
        let bar = on_terminal.then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Self { bar }
    }

    fn say(&self, msg: &str) {
        if let Some(b) = &self.bar {
            b.set_message(msg.to_owned());
        }
    }

    /// Counts findings as they are announced on `channel:findings`.
    async fn watch(&self, bus: Arc<dyn Bus>) -> Option<tokio::task::JoinHandle<()>> {
        let bar = self.bar.clone()?;
        let mut notes = bus.subscribe(Channel::Findings).await.ok()?;
        Some(tokio::spawn(async move {
            let mut n = 0u64;
            while let Some(Ok(_)) = notes.next().await {
                n += 1;
                bar.set_message(format!("{n} findings written"));
            }
        }))
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
