//! `swarm demo`: the brief's example session, on an in-process bus by
//! default. A coordinator routes three independent tasks, three workers run
//! them in parallel on the files of a folder (real local work standing in for
//! worker models, so no API key is needed), write findings and notify
//! `channel:findings`; the status block is printed before and after.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use async_trait::async_trait;
use swarmbus_agents::runtime::{Coordinator, TaskHandler, TaskOutput, Worker, WorkerConfig};
use swarmbus_agents::status::{StatusConfig, SwarmStatus};
use swarmbus_core::bus::Bus;
use swarmbus_core::{SessionId, Task, WorkerId};
use swarmbus_memory::MemoryBus;

use crate::ctx::{BusUse, Ctx, fail};

/// Most files one task reads.
const MAX_FILES: usize = 20_000;
/// Largest file one task reads, in bytes.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Options of `swarm demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// The folder the workers study (default: the current one).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Run on the configured Redis (`--redis-url` / `REDIS_URL`) instead of
    /// an in-process bus, leaving the session's keys there.
    #[arg(long)]
    on_redis: bool,
    /// Seconds to wait for the workers (1 to 600).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=600))]
    timeout: u64,
}

/// Local work on a folder's files. Task kinds: `grep` (payload
/// `{"pattern": …}`: lines containing it, per top-level folder), `count`
/// (lines per file extension), `largest` (the five largest files).
#[derive(Debug, Clone)]
struct FolderWork {
    root: PathBuf,
}

impl FolderWork {
    fn files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if out.len() >= MAX_FILES {
                    return out;
                }
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') || name == "target" || name == "node_modules" {
                    continue;
                }
                match e.file_type() {
                    Ok(t) if t.is_dir() => stack.push(e.path()),
                    Ok(t) if t.is_file() => out.push(e.path()),
                    _ => {}
                }
            }
        }
        out.sort();
        out
    }

    fn text(path: &Path) -> Option<String> {
        let meta = std::fs::metadata(path).ok()?;
        if meta.len() > MAX_FILE_BYTES {
            return None;
        }
        std::fs::read_to_string(path).ok()
    }

    fn top(&self, p: &Path) -> String {
        p.strip_prefix(&self.root)
            .ok()
            .and_then(|r| r.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

#[async_trait]
impl TaskHandler for FolderWork {
    async fn handle(&self, task: &Task) -> Result<TaskOutput, String> {
        let files = self.files();
        match task.kind.as_str() {
            "grep" => {
                let pattern = task
                    .payload
                    .get("pattern")
                    .and_then(|p| p.as_str())
                    .unwrap_or("");
                if pattern.is_empty() {
                    return Err("grep needs a non-empty \"pattern\" in the payload".into());
                }
                let mut per: BTreeMap<String, usize> = BTreeMap::new();
                for f in &files {
                    if let Some(text) = Self::text(f) {
                        let n = text.lines().filter(|l| l.contains(pattern)).count();
                        if n > 0 {
                            *per.entry(self.top(f)).or_default() += n;
                        }
                    }
                }
                let total: usize = per.values().sum();
                let body = per
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                Ok(TaskOutput::new(
                    format!("{total} lines contain {pattern:?}"),
                    format!("Lines containing {pattern:?} per folder: {body}."),
                )
                .with_tags(["search"]))
            }
            "count" => {
                let mut per: BTreeMap<String, (usize, usize)> = BTreeMap::new();
                for f in &files {
                    let ext = f
                        .extension()
                        .map(|e| e.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "(none)".into());
                    let lines = Self::text(f).map_or(0, |t| t.lines().count());
                    let e = per.entry(ext).or_default();
                    e.0 += 1;
                    e.1 += lines;
                }
                let mut rows: Vec<_> = per.into_iter().collect();
                rows.sort_by_key(|r| std::cmp::Reverse(r.1.1));
                let body = rows
                    .iter()
                    .take(10)
                    .map(|(k, (n, l))| format!("{k}: {n} files, {l} lines"))
                    .collect::<Vec<_>>()
                    .join("; ");
                Ok(TaskOutput::new(
                    format!("{} files read", files.len()),
                    format!("Text lines per file type (top 10): {body}."),
                )
                .with_tags(["analysis"]))
            }
            "largest" => {
                let mut sized: Vec<(u64, &PathBuf)> = files
                    .iter()
                    .filter_map(|f| std::fs::metadata(f).ok().map(|m| (m.len(), f)))
                    .collect();
                sized.sort_by_key(|r| std::cmp::Reverse(r.0));
                let body = sized
                    .iter()
                    .take(5)
                    .map(|(n, f)| {
                        format!(
                            "{} ({n} bytes)",
                            f.strip_prefix(&self.root).unwrap_or(f).display()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                Ok(TaskOutput::new("The five largest files", body).with_tags(["analysis"]))
            }
            other => Err(format!("no handler for task kind {other:?}")),
        }
    }
}

/// Runs the demo session.
pub(crate) async fn run(args: DemoArgs, ctx: &Ctx) -> ExitCode {
    if !args.dir.is_dir() {
        return fail("demo", format!("{} is not a folder", args.dir.display()));
    }
    let timeout = Duration::from_secs(args.timeout);
    let result = if args.on_redis && !ctx.is_memory() {
        if let Err(e) = ctx.bus(BusUse::ONE_SHOT).await {
            return fail("cannot open the bus", e);
        }
        match ctx.redis() {
            Some(bus) => session(bus, args.dir, timeout).await,
            None => return fail("demo", "the bus is not Redis"),
        }
    } else {
        println!("Bus: in-process (nothing is shared; `--on-redis` runs on Redis)");
        session(MemoryBus::new(), args.dir, timeout).await
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail("demo", e),
    }
}

async fn session<B: Bus + Clone + 'static>(
    bus: B,
    dir: PathBuf,
    timeout: Duration,
) -> Result<(), String> {
    let status = StatusConfig::default();
    let e = |e: swarmbus_core::Error| e.to_string();
    println!(
        "{}",
        SwarmStatus::snapshot(&bus, &status)
            .await
            .map_err(e)?
            .render()
    );
    let session = SessionId::new(format!(
        "demo-{}",
        chrono::Utc::now().format("%Y%m%d-%H%M%S")
    ))
    .map_err(e)?;
    let coordinator = Coordinator::new(bus.clone(), session.clone());
    let workers: Vec<WorkerId> = (1..=3)
        .map(|i| WorkerId::new(format!("haiku-{i}")))
        .collect::<Result<_, _>>()
        .map_err(e)?;
    let tasks = vec![
        Task::new(session.clone(), "grep", "Search the files for TODO notes")
            .with_payload(serde_json::json!({ "pattern": "TODO" })),
        Task::new(
            session.clone(),
            "count",
            "Count files and lines per file type",
        ),
        Task::new(session.clone(), "largest", "List the largest files"),
    ];
    let routed = coordinator
        .dispatch(tasks, &workers)
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "I'll spawn {} workers in parallel for these independent tasks:",
        workers.len()
    );
    for r in &routed {
        let who = r
            .worker
            .as_ref()
            .map_or("coordinator".to_owned(), ToString::to_string);
        println!("  {who}: {}", r.task.instructions);
    }
    let handler = FolderWork { root: dir };
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
    let gathered = coordinator
        .gather(&ids, timeout)
        .await
        .map_err(|e| e.to_string())?;
    println!("\nAll workers reported. Their findings:");
    for f in &gathered.findings {
        println!("  [{}] {}", f.worker, f.title);
        for line in f.body.lines().take(5) {
            println!("      {line}");
        }
    }
    for f in &gathered.failed {
        println!("  FAILED {}: {}", f.task.instructions, f.report);
    }
    for r in runs {
        match r.await {
            Ok(Ok(_)) => {}
            Ok(Err(err)) => return Err(err.to_string()),
            Err(err) => return Err(format!("a worker stopped: {err}")),
        }
    }
    println!("\n{}", coordinator.stats().summary());
    println!(
        "{}",
        SwarmStatus::snapshot(&bus, &status)
            .await
            .map_err(e)?
            .render()
    );
    if !gathered.failed.is_empty() || !gathered.pending.is_empty() {
        return Err("some tasks did not complete".into());
    }
    Ok(())
}
