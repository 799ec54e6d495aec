//! `swarm task push|list|apply`, `swarm halt` and `swarm resume`.
//!
//! `swarm task apply ID` shows the diff a write task left with its finding,
//! names every file it refuses (paths that change what runs or where
//! secrets go: `.env*`, `.git/`, `.claude/`, `.mcp.json`, `.cargo/`, CI
//! workflows, hooks, symlinks, …) and applies the rest to the workspace.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use swarmbus_agents::tools::patch;
use swarmbus_core::Finding;
use swarmbus_core::{FindingId, TaskId};

use serde_json::{Value, json};
use swarmbus_core::WorkerId;

use crate::ctx::{BusUse, Ctx, fail};
use crate::ops;

/// Task commands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum TaskCmd {
    /// Queue a task for a worker (`worker:tasks:<worker>`); prints its id.
    Push(PushArgs),
    /// How many tasks wait per worker, and the failed tasks with their reports.
    List(ListArgs),
    /// Show a write task's diff and apply it to the workspace (dangerous
    /// paths refused and named).
    Apply(ApplyArgs),
}

/// `swarm task apply`.
#[derive(Debug, clap::Args)]
pub(crate) struct ApplyArgs {
    /// The task's id (as `swarm task push` printed it), or its finding's.
    id: String,
    /// The folder the diff applies to (default: here).
    #[arg(long, value_name = "DIR")]
    workspace: Option<PathBuf>,
    /// Show the diff and what would be refused; change nothing.
    #[arg(long)]
    dry_run: bool,
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
    let bus = match ctx.bus(BusUse::ONE_SHOT).await {
        Ok(b) => b,
        Err(e) => return fail("cannot open the bus", e),
    };
    match cmd {
        TaskCmd::Apply(a) => {
            let id = match TaskId::parse(a.id.trim()) {
                Ok(t) => swarmbus_agents::task_finding_id(t),
                Err(_) => match FindingId::parse(a.id.trim()) {
                    Ok(f) => f,
                    Err(e) => return fail("task apply", e),
                },
            };
            let finding = match bus.get_finding(&id).await {
                Ok(Some(f)) => f,
                Ok(None) => return fail("task apply", format!("no finding {id}")),
                Err(e) => return fail("task apply", e),
            };
            let ws = a.workspace.unwrap_or_else(|| PathBuf::from("."));
            match apply_finding(&finding, &ws, a.dry_run, Show::All).await {
                Ok(None) => fail(
                    "task apply",
                    format!(
                        "the finding {id} carries no diff (a read-only task, or nothing changed)"
                    ),
                ),
                Ok(Some(r)) if r.refused.is_empty() => ExitCode::SUCCESS,
                Ok(Some(_)) => ExitCode::from(3),
                Err(e) => fail("task apply", e),
            }
        }
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
    let bus = match ctx.bus(BusUse::ONE_SHOT).await {
        Ok(b) => b,
        Err(e) => return fail("cannot open the bus", e),
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
    let bus = match ctx.bus(BusUse::ONE_SHOT).await {
        Ok(b) => b,
        Err(e) => return fail("cannot open the bus", e),
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

/// What [`apply_finding`] prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Show {
    /// The files, the diff and the outcome.
    All,
    /// The files and the outcome.
    Files,
    /// Nothing.
    Nothing,
}

/// Reviews the diff `finding` carries and, unless `dry_run`, applies its
/// safe part to `workspace`. `None`: the finding has no diff.
pub(crate) async fn apply_finding(
    finding: &Finding,
    workspace: &Path,
    dry_run: bool,
    show: Show,
) -> Result<Option<patch::Applied>, String> {
    let say = |line: String| {
        if show != Show::Nothing {
            println!("{line}");
        }
    };
    let Some(diff) = patch::extract(finding) else {
        return Ok(None);
    };
    let root = std::fs::canonicalize(workspace)
        .map_err(|e| format!("workspace {}: {e}", workspace.display()))?;
    let review = patch::review(&diff, &root)
        .await
        .map_err(|e| e.to_string())?;
    let task = finding
        .task
        .map_or_else(|| finding.id.to_string(), |t| t.to_string());
    say(format!(
        "task {task}: {} file(s) in the diff",
        review.files().count()
    ));
    for f in review.files() {
        let lines = f
            .lines
            .map_or_else(|| "binary".to_owned(), |(a, d)| format!("+{a} -{d}"));
        match &f.refused {
            Some(why) => say(format!("  refused {}: {why}", f.path)),
            None => say(format!("  {} ({lines})", f.path)),
        }
    }
    if show == Show::All {
        print!("{diff}");
    }
    if dry_run {
        let refused: Vec<(String, String)> = review
            .refused()
            .map(|f| (f.path.clone(), f.refused.clone().unwrap_or_default()))
            .collect();
        say(format!("dry run: nothing changed in {}", root.display()));
        return Ok(Some(patch::Applied::listing(Vec::new(), refused)));
    }
    let applied = patch::apply(&root, &review)
        .await
        .map_err(|e| e.to_string())?;
    say(format!(
        "applied {} file(s) to {}{}",
        applied.applied.len(),
        root.display(),
        if applied.refused.is_empty() {
            String::new()
        } else {
            format!(
                "; refused {}: {}",
                applied.refused.len(),
                applied
                    .refused
                    .iter()
                    .map(|(p, _)| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    ));
    Ok(Some(applied))
}
