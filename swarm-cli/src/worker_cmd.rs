//! `swarm worker run`: a worker process on the bus (the brief's
//! `haiku_worker_template.py`): heartbeats, claims tasks from
//! `worker:tasks:<id>`, runs them and writes findings until interrupted,
//! halted, idle for `--idle-exit` seconds, or after one task with `--once`.
//! It rides out Redis outages of any length (`--redis-give-up` to stop
//! waiting) and first takes back its own in-flight tasks.
//!
//! With `ANTHROPIC_API_KEY` the tasks run on the worker model with the
//! tools, their commands confined by the kernel (`--allow-command` adds
//! programs to the list); without it, on the offline local handlers (and
//! the worker says so on stderr). At start it says whether commands can be
//! confined here, and which tools are off and why when they cannot.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use swarmbus_agents::runtime::{TaskHandler, Worker, WorkerConfig};
use swarmbus_core::keys::WorkerId;
use swarmbus_cost::BudgetLimits;

use crate::ctx::{BusUse, Ctx, fail};
use crate::run_cmd::{Brains, ModelArgs};

/// Worker commands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum WorkerCmd {
    /// Run a worker process until interrupted, halted or idle.
    Run(WorkerArgs),
}

/// `swarm worker run`.
#[derive(Debug, clap::Args)]
pub(crate) struct WorkerArgs {
    /// The worker's id (its queue is `worker:tasks:<id>`).
    #[arg(long)]
    id: String,
    #[command(flatten)]
    model: ModelArgs,
    /// The folder the worker's tools are confined to (default: here).
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// Stop after one task.
    #[arg(long)]
    once: bool,
    /// Stop after this many seconds without a task.
    #[arg(long, value_name = "SECONDS")]
    idle_exit: Option<u64>,
    /// Heartbeat TTL in seconds (the worker counts as dead this long after its last beat).
    #[arg(long, default_value_t = 60, value_name = "SECONDS")]
    heartbeat_ttl: u64,
}

/// Runs the command.
pub(crate) async fn run(cmd: WorkerCmd, ctx: &Ctx) -> ExitCode {
    match cmd {
        WorkerCmd::Run(args) => run_worker(args, ctx).await,
    }
}

async fn run_worker(args: WorkerArgs, ctx: &Ctx) -> ExitCode {
    let id = match WorkerId::new(&args.id) {
        Ok(id) => id,
        Err(e) => return fail("worker id", e),
    };
    // A worker rides out Redis outages (retrying until Redis answers, or
    // for `--redis-give-up`), and on Redis first takes back the tasks an
    // earlier run under its id left in flight.
    let bus = match ctx.bus(BusUse::WORKER).await {
        Ok(b) => b,
        Err(e) => return fail("cannot open the bus", e),
    };
    if let Some(redis) = ctx.redis() {
        match redis.take_back_inflight(&id).await {
            Ok(0) => {}
            Ok(n) => eprintln!(
                "swarm worker {id}: took back {n} task(s) left in flight by an earlier run"
            ),
            Err(e) => return fail("take back in-flight tasks", e),
        }
    }
    let workspace = args.workspace.clone().unwrap_or_else(|| PathBuf::from("."));
    let accountant = match ctx
        .prices()
        .and_then(|t| ctx.accountant(Arc::clone(&bus), t, BudgetLimits::unlimited()))
    {
        Ok(a) => a,
        Err(e) => return fail("accountant", e),
    };
    let brains = match Brains::from_env(&args.model, &workspace, Arc::clone(&bus), accountant, ctx)
    {
        Ok(b) => b,
        Err(e) => return fail("worker", e),
    };
    eprintln!("swarm worker {id}: {}", brains.describe_worker());
    if let Some(line) = brains.sandbox_line().await {
        eprintln!("swarm worker {id}: {line}");
    }
    let handler: Arc<dyn TaskHandler> = brains.worker_handler(&id);
    let mut cfg = WorkerConfig::new(id.clone())
        .heartbeat_ttl(Duration::from_secs(args.heartbeat_ttl))
        .claim_wait(Duration::from_secs(1));
    if let Some(s) = args.idle_exit {
        cfg = cfg.idle_exit(Duration::from_secs(s));
    }
    if args.once {
        cfg = cfg.max_tasks(1);
    }
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match Worker::shared(bus, handler, cfg).run(stop).await {
        Ok(report) => {
            for f in &report.findings {
                println!("finding {} {}", f.id, f.title);
            }
            for f in &report.failed {
                println!("FAILED {}: {}", f.task.id, f.report);
            }
            if let Some(h) = &report.halted {
                println!("halted: {h}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail("worker", e),
    }
}
