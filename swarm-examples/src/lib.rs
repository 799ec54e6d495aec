//! Shared pieces of the runnable examples (see `examples/`).
//!
//! # Layout
//!
//! - [`LocalWork`]: a [`TaskHandler`] doing real work on this repository's own
//!   files (search, count, read headings), standing in for a worker model so
//!   the examples run with no API key.
//! - [`repo_root`]: where this repository is.
//! - [`example_session`]: the brief's complete example session on any bus.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use std::time::Duration;

use async_trait::async_trait;
use swarmbus_agents::runtime::{Coordinator, TaskHandler, TaskOutput, Worker, WorkerConfig};
use swarmbus_core::model::estimate_tokens;
use swarmbus_core::status::{StatusConfig, SwarmStatus};
use swarmbus_core::{Bus, Channel, SessionId, Task, TaskId, Tier, Usage, WorkerId};
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

/// Real local work on the repository's files. Task kinds:
///
/// - `grep`: payload `{"pattern": "..."}`: count lines containing the
///   pattern in `*.rs` files, per crate.
/// - `count`: lines of Rust and Markdown per top-level folder.
/// - `headings`: the Markdown headings of README.md and `docs/`.
#[derive(Debug, Clone)]
pub struct LocalWork {
    root: PathBuf,
    read: Arc<Mutex<HashMap<TaskId, usize>>>,
}

impl LocalWork {
    /// Works on the files under `root`.
    pub fn new(root: PathBuf) -> Self {
        Self {
            root,
            read: Arc::default(),
        }
    }

    /// Characters of file text each task read: what a worker model would
    /// have had in its prompt.
    pub fn chars_read(&self, task: TaskId) -> usize {
        self.read
            .lock()
            .map(|m| m.get(&task).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn read_file(&self, task: TaskId, path: &Path) -> Result<String, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if let Ok(mut m) = self.read.lock() {
            *m.entry(task).or_default() += text.len();
        }
        Ok(text)
    }

    fn files(&self, ext: &str) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with('.') || name == "target" {
                    continue;
                }
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == ext) {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }

    fn top_folder(&self, p: &Path) -> String {
        p.strip_prefix(&self.root)
            .ok()
            .and_then(|r| r.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn grep(&self, task: TaskId, pattern: &str) -> Result<TaskOutput, String> {
        if pattern.is_empty() {
            return Err("grep needs a non-empty \"pattern\" in the payload".into());
        }
        let mut per: BTreeMap<String, usize> = BTreeMap::new();
        for f in self.files("rs") {
            let text = self.read_file(task, &f)?;
            let n = text.lines().filter(|l| l.contains(pattern)).count();
            if n > 0 {
                *per.entry(self.top_folder(&f)).or_default() += n;
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
        .with_tags(["search", "code"]))
    }

    fn count(&self, task: TaskId) -> Result<TaskOutput, String> {
        let mut per: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for (ext, md) in [("rs", false), ("md", true)] {
            for f in self.files(ext) {
                let text = self.read_file(task, &f)?;
                let e = per.entry(self.top_folder(&f)).or_default();
                if md {
                    e.1 += text.lines().count();
                } else {
                    e.0 += text.lines().count();
                }
            }
        }
        let rust: usize = per.values().map(|v| v.0).sum();
        let md: usize = per.values().map(|v| v.1).sum();
        let body = per
            .iter()
            .map(|(k, (r, m))| format!("{k}: {r} Rust / {m} Markdown"))
            .collect::<Vec<_>>()
            .join("; ");
        Ok(TaskOutput::new(
            format!("{rust} lines of Rust, {md} of Markdown"),
            format!("Lines per folder: {body}."),
        )
        .with_tags(["analysis", "code"]))
    }

    fn headings(&self, task: TaskId) -> Result<TaskOutput, String> {
        let mut files = vec![self.root.join("README.md")];
        files.extend(
            self.files("md")
                .into_iter()
                .filter(|p| self.top_folder(p) == "docs"),
        );
        let mut heads = Vec::new();
        for f in files.iter().filter(|f| f.exists()) {
            let text = self.read_file(task, f)?;
            let name = f
                .strip_prefix(&self.root)
                .unwrap_or(f)
                .display()
                .to_string();
            let h: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("## "))
                .map(|l| l.trim_start_matches("## "))
                .collect();
            heads.push(format!("{name} ({} sections: {})", h.len(), h.join(" / ")));
        }
        Ok(TaskOutput::new(
            format!("{} documentation files read", heads.len()),
            heads.join("\n"),
        )
        .with_tags(["docs"]))
    }
}

#[async_trait]
impl TaskHandler for LocalWork {
    async fn handle(&self, task: &Task) -> Result<TaskOutput, String> {
        match task.kind.as_str() {
            "grep" => {
                let pattern = task
                    .payload
                    .get("pattern")
                    .and_then(|p| p.as_str())
                    .unwrap_or("");
                self.grep(task.id, pattern)
            }
            "count" => self.count(task.id),
            "headings" => self.headings(task.id),
            other => Err(format!("no handler for task kind {other:?}")),
        }
    }
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
