//! Local work without a model: real tasks on a workspace's files (search,
//! count, read headings), the offline stand-in for a worker model, and the
//! offline plan that uses them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use swarmbus_core::{Task, TaskId};

use crate::plan::{Plan, PlannedTask};
use crate::runtime::{TaskHandler, TaskOutput};

/// Real local work on a workspace's files. Task kinds:
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
                // The entry's own type: a symlink is neither followed nor
                // read, so local work never leaves its root (nor loops).
                let Ok(kind) = e.file_type() else { continue };
                if kind.is_dir() {
                    stack.push(p);
                } else if kind.is_file() && p.extension().is_some_and(|x| x == ext) {
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

/// The plan the offline coordinator uses for any goal: the three local
/// tasks [`LocalWork`] knows (a search for `pattern`, line counts, the
/// documentation's sections). No model plans it, and the run says so.
pub fn offline_plan(pattern: &str) -> Plan {
    Plan::new(vec![
        PlannedTask::new("grep", format!("Search the sources for {pattern:?}"))
            .with("pattern", serde_json::Value::String(pattern.to_owned())),
        PlannedTask::new("count", "Count lines of Rust and Markdown per folder"),
        PlannedTask::new(
            "headings",
            "Read the README and docs and list their sections",
        ),
    ])
}
