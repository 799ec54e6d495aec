//! `swarm task push|list`, `swarm halt` and `swarm resume`.

use std::process::ExitCode;

use serde_json::{Value, json};
use swarmbus_core::WorkerId;

use crate::ctx::{Ctx, fail};
use crate::ops;

/// Task commands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum TaskCmd {
    /// Queue a task for a worker (`worker:tasks:<worker>`); prints its id.
    Push(PushArgs),
    /// How many tasks wait per worker, and the failed tasks with their reports.
    List(ListArgs),
}

/// `swarm task push`.
#[derive(Debug, clap::Args)]
pub(crate) struct PushArgs {
    /// The worker whose queue gets the task.
    #[arg(long)]
    worker: String,
    /// What to do, in words.
    #[arg(long)]
    title: String,
    /// Arguments for the worker, as JSON.
    #[arg(long)]
    payload: Option<String>,
    /// The kind of work (a handler name, e.g. `grep`).
    #[arg(long)]
    kind: Option<String>,
    /// The session (default `claude-code`).
    #[arg(long, env = "SWARM_SESSION")]
    session: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `swarm task list`.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Workers whose queues to count (repeat; default: every live worker).
    #[arg(long = "worker")]
    workers: Vec<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `swarm halt`.
#[derive(Debug, clap::Args)]
pub(crate) struct HaltArgs {
    /// What failed and why the swarm stops.
    #[arg(long)]
    reason: String,
}

/// Runs a task command.
pub(crate) async fn run(cmd: TaskCmd, ctx: &Ctx) -> ExitCode {
    let bus = match ctx.open().await {
        Ok(b) => b,
        Err(code) => return code,
    };
    match cmd {
        TaskCmd::Push(a) => {
            let payload = match a.payload.as_deref().map(serde_json::from_str::<Value>) {
                None => None,
                Some(Ok(v)) => Some(v),
                Some(Err(e)) => return fail("task push", format!("--payload is not JSON: {e}")),
            };
            match ops::push_task(
                &bus,
                &a.worker,
                &a.title,
                payload,
                a.session.as_deref(),
                a.kind.as_deref(),
            )
            .await
            {
                Ok(t) if a.json => {
                    println!("{}", ops::task_json(&t));
                    ExitCode::SUCCESS
                }
                Ok(t) => {
                    println!("{}", t.id);
                    ExitCode::SUCCESS
                }
                Err(e) => fail("task push", e),
            }
        }
        TaskCmd::List(a) => {
            let workers: Vec<WorkerId> = if a.workers.is_empty() {
                match bus.alive_workers().await {
                    Ok(hs) => hs.into_iter().map(|h| h.worker).collect(),
                    Err(e) => return fail("task list", e),
                }
            } else {
                match a
                    .workers
                    .iter()
                    .map(|w| ops::parse_worker(w))
                    .collect::<Result<Vec<_>, _>>()
                {
                    Ok(w) => w,
                    Err(e) => return fail("task list", e),
                }
            };
            let mut queues = Vec::new();
            for w in &workers {
                match bus.queued_tasks(w).await {
                    Ok(n) => queues.push((w.to_string(), n)),
                    Err(e) => return fail("task list", e),
                }
            }
            let failed = match bus.failed_tasks().await {
                Ok(f) => f,
                Err(e) => return fail("task list", e),
            };
            if a.json {
                let v = json!({
                    "queues": queues.iter().map(|(w, n)| json!({"worker": w, "queued": n})).collect::<Vec<_>>(),
                    "failed": failed.iter().map(|f| json!({
                        "task": ops::task_json(&f.task),
                        "worker": f.worker.to_string(),
                        "report": f.report,
                        "deliveries": f.deliveries,
                        "dead_lettered": f.dead_lettered,
                        "at": f.at.to_rfc3339(),
                    })).collect::<Vec<_>>(),
                });
                println!("{v}");
                return ExitCode::SUCCESS;
            }
            if queues.is_empty() {
                println!("no live workers (name one with --worker)");
            }
            for (w, n) in &queues {
                println!("{w}: {n} queued");
            }
            if !failed.is_empty() {
                println!("failed tasks:");
                for f in &failed {
                    println!(
                        "  {} [{}] {}: {}",
                        f.task.id, f.worker, f.task.instructions, f.report
                    );
                }
            }
            ExitCode::SUCCESS
        }
    }
}

/// `swarm halt --reason TEXT`.
pub(crate) async fn halt(a: HaltArgs, ctx: &Ctx) -> ExitCode {
    let bus = match ctx.open().await {
        Ok(b) => b,
        Err(code) => return code,
    };
    match ops::halt(&bus, &a.reason, "swarm-cli").await {
        Ok((true, _)) => {
            println!("halted: {}", a.reason.trim());
            ExitCode::SUCCESS
        }
        Ok((false, r)) => {
            println!(
                "already halted: {} (kept; `swarm resume` clears it)",
                r.failed
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail("halt", e),
    }
}

/// `swarm resume`.
pub(crate) async fn resume(ctx: &Ctx) -> ExitCode {
    let bus = match ctx.open().await {
        Ok(b) => b,
        Err(code) => return code,
    };
    match bus.clear_halt().await {
        Ok(Some(r)) => {
            println!("resumed (was halted: {})", r.failed);
            ExitCode::SUCCESS
        }
        Ok(None) => {
            println!("not halted");
            ExitCode::SUCCESS
        }
        Err(e) => fail("resume", e),
    }
}
