//! Built-in tools for model-backed workers, confined to a [`Workspace`].
//!
//! Every tool refuses rather than runs: a path that leaves the workspace,
//! a command off the allow-list, a write the task did not allow, an output
//! over its cap or over the task's total is a [`ToolError`] handed back to
//! the model as an error `tool_result`, and nothing is read, run or
//! written. What a tool starts (`run_command`, `git`) runs in the kernel
//! sandbox ([`crate::sandbox`]), so a program on the list cannot reach what
//! the list meant to keep out; where the kernel cannot confine it, it is
//! refused.
//!
//! - [`workspace`]: the workspace (opened beneath by the OS), its limits.
//! - [`files`]: `read_file`, `list_files` (respects `.gitignore`),
//!   `search_text` (regex), `write_file` (only on a write task's scratch copy).
//! - [`git`]: `git` read-only (`status`, `log`, `diff`, `show`, `blame`) on
//!   the repository the workspace had when it was opened.
//! - [`command`]: `run_command` from an allow-list, no shell, confined.
//! - [`scratch`]: a write task's scratch copy and the diff it leaves.
//! - [`patch`]: a diff stored with a finding, reviewed (dangerous paths
//!   refused, each named) and applied to the user's tree.
//! - [`findings`]: the bus: `read_finding`, `search_findings`,
//!   `ask_librarian`, `write_finding`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use swarmbus_core::Task;
use swarmbus_core::bus::Bus;
use swarmbus_core::keys::{FindingId, WorkerId};

pub mod command;
pub mod files;
pub mod findings;
pub mod git;
pub mod patch;
pub mod scratch;
pub mod workspace;

pub use command::{CommandAllowList, RunCommand};
pub use files::{ListFiles, ReadFile, SearchText, WriteFile};
pub use findings::{AskLibrarian, ReadFinding, SearchFindings, WriteFinding};
pub use git::GitReadOnly;
pub use scratch::{Scratch, TaskDiff};
pub use workspace::{GitDirs, ToolLimits, Workspace};

/// Why a tool refused or failed. Its `Display` is what the model reads in
/// its error `tool_result`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ToolError {
    /// The path leaves the workspace (`..`, absolute, a symlink out).
    #[error("refused: {path} is outside the workspace")]
    OutsideWorkspace {
        /// The path as asked.
        path: String,
    },
    /// Not allowed for this task or this worker (a command off the list, a
    /// write the task does not allow).
    #[error("refused: {what} is not allowed")]
    NotAllowed {
        /// What was refused.
        what: String,
    },
    /// The output would be larger than the cap; narrow the request.
    #[error("refused: the output is over the cap of {cap} bytes; narrow the request")]
    OutputTooLarge {
        /// The cap.
        cap: usize,
    },
    /// The file is larger than the cap.
    #[error("refused: {path} is {size} bytes, over the cap of {cap} bytes")]
    FileTooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// No such file or folder.
    #[error("not found: {path}")]
    NotFound {
        /// The path as asked.
        path: String,
    },
    /// The input does not fit the tool's schema.
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// What is wrong.
        reason: String,
    },
    /// The command ran over its time and was killed.
    #[error("killed after {after:?}: over the time limit")]
    Timeout {
        /// The limit.
        after: Duration,
    },
    /// No tool of that name.
    #[error("no tool named {name:?}")]
    UnknownTool {
        /// The name asked for.
        name: String,
    },
    /// The tool ran and failed.
    #[error("failed: {message}")]
    Failed {
        /// What went wrong.
        message: String,
    },
    /// Commands cannot run confined here, so they do not run at all.
    #[error("refused: commands are off on this worker: {reason}")]
    SandboxUnavailable {
        /// What the kernel (or the setup) lacks.
        reason: String,
    },
    /// One of the task's limits is used up.
    #[error("refused: {what}")]
    TaskLimit {
        /// Which limit, and what to do instead.
        what: String,
    },
}

impl ToolError {
    /// True when the tool refused without touching anything.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ToolError::OutsideWorkspace { .. }
                | ToolError::NotAllowed { .. }
                | ToolError::OutputTooLarge { .. }
                | ToolError::FileTooLarge { .. }
                | ToolError::SandboxUnavailable { .. }
                | ToolError::TaskLimit { .. }
        )
    }
}

/// A tool's name, description and JSON Schema of its input, as a model is
/// told about it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ToolDefinition {
    /// The name the model calls.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of the input object.
    pub input_schema: Value,
}

impl ToolDefinition {
    /// A definition.
    pub fn new(name: &str, description: &str, input_schema: Value) -> Self {
        Self {
            name: name.to_owned(),
            description: description.to_owned(),
            input_schema,
        }
    }
}

/// What a tool call may touch: the workspace, the bus, and the task it
/// serves.
#[derive(Clone)]
#[non_exhaustive]
pub struct ToolContext {
    /// The sandbox.
    pub workspace: Arc<Workspace>,
    /// The bus (findings, the librarian).
    pub bus: Arc<dyn Bus>,
    /// The worker running the task.
    pub worker: WorkerId,
    /// The task.
    pub task: Task,
    /// Whether the task allows writing files (payload `"allow_write": true`);
    /// writes then go to [`ToolContext::scratch`], never to the user's tree.
    pub allow_write: bool,
    /// How long `ask_librarian` waits for an answer.
    pub librarian_wait: Duration,
    /// A write task's scratch copy (its workspace is [`ToolContext::workspace`]).
    pub scratch: Option<Arc<Scratch>>,
    written: Arc<Mutex<Vec<FindingId>>>,
    usage: Arc<Mutex<TaskToolUsage>>,
}

/// What a task's tools used so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskToolUsage {
    /// Tool output handed to the model, in bytes.
    pub output_bytes: usize,
    /// Bytes `write_file` wrote.
    pub written_bytes: usize,
    /// Files `write_file` wrote.
    pub written_files: std::collections::BTreeSet<String>,
}

impl std::fmt::Debug for ToolContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolContext")
            .field("workspace", &self.workspace)
            .field("worker", &self.worker)
            .field("task", &self.task.id)
            .field("allow_write", &self.allow_write)
            .finish_non_exhaustive()
    }
}

impl ToolContext {
    /// The context of `task` run by `worker`, without a scratch copy: file
    /// writes are refused unless `workspace` already is one. A task whose
    /// payload says `"allow_write": true` should use [`ToolContext::for_task`].
    pub fn new(workspace: Arc<Workspace>, bus: Arc<dyn Bus>, worker: WorkerId, task: Task) -> Self {
        let allow_write = task_allows_write(&task);
        Self {
            workspace,
            bus,
            worker,
            task,
            allow_write,
            librarian_wait: Duration::from_secs(60),
            scratch: None,
            written: Arc::default(),
            usage: Arc::default(),
        }
    }

    /// The context of `task`: a write task (payload `"allow_write": true`)
    /// gets a scratch copy of `workspace` and works there; a read-only one
    /// works on `workspace` itself, where nothing can be written.
    pub async fn for_task(
        workspace: Arc<Workspace>,
        bus: Arc<dyn Bus>,
        worker: WorkerId,
        task: Task,
    ) -> Result<Self, ToolError> {
        if !task_allows_write(&task) {
            return Ok(Self::new(workspace, bus, worker, task));
        }
        let scratch = Arc::new(Scratch::create(&workspace).await?);
        let mut ctx = Self::new(Arc::clone(scratch.workspace()), bus, worker, task);
        ctx.scratch = Some(scratch);
        Ok(ctx)
    }

    /// What the task's tools used so far.
    pub fn usage(&self) -> TaskToolUsage {
        self.usage.lock().map(|u| u.clone()).unwrap_or_default()
    }

    /// Counts a write of `bytes` to `path` against the task's limits, or
    /// refuses it.
    pub(crate) fn charge_write(&self, path: &str, bytes: usize) -> Result<(), ToolError> {
        let limits = self.workspace.limits();
        let mut u = self.usage.lock().map_err(|_| ToolError::Failed {
            message: "the task's counters are poisoned".into(),
        })?;
        let files = u.written_files.len() + usize::from(!u.written_files.contains(path));
        if files > limits.max_task_write_files {
            return Err(ToolError::TaskLimit {
                what: format!(
                    "this task may change at most {} files",
                    limits.max_task_write_files
                ),
            });
        }
        let total = u.written_bytes.saturating_add(bytes);
        if total > limits.max_task_write_bytes {
            return Err(ToolError::TaskLimit {
                what: format!(
                    "this task may write at most {} bytes ({} written so far)",
                    limits.max_task_write_bytes, u.written_bytes
                ),
            });
        }
        u.written_bytes = total;
        u.written_files.insert(path.to_owned());
        Ok(())
    }

    /// Findings the tools wrote for this task so far.
    pub fn written(&self) -> Vec<FindingId> {
        self.written.lock().map(|w| w.clone()).unwrap_or_default()
    }

    pub(crate) fn note_written(&self, id: FindingId) {
        if let Ok(mut w) = self.written.lock() {
            w.push(id);
        }
    }
}

/// A tool a model can call.
#[async_trait]
pub trait Tool: Send + Sync {
    /// What the model is told about it.
    fn definition(&self) -> ToolDefinition;

    /// Runs one call. An `Err` goes back to the model as an error result.
    async fn call(&self, ctx: &ToolContext, input: &Value) -> Result<String, ToolError>;
}

/// The tools a worker offers its model, by name.
#[derive(Clone, Default)]
pub struct Toolbox {
    tools: BTreeMap<String, Arc<dyn Tool>>,
}

impl std::fmt::Debug for Toolbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.tools.keys()).finish()
    }
}

impl Toolbox {
    /// No tools.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Every built-in tool, with `commands` as the allow-list of
    /// `run_command`.
    pub fn built_in(commands: CommandAllowList) -> Self {
        Self::empty()
            .with(ReadFile)
            .with(ListFiles)
            .with(SearchText)
            .with(WriteFile)
            .with(GitReadOnly)
            .with(RunCommand::new(commands))
            .with(ReadFinding)
            .with(SearchFindings)
            .with(AskLibrarian)
            .with(WriteFinding)
    }

    /// Adds (or replaces) a tool.
    pub fn with(mut self, tool: impl Tool + 'static) -> Self {
        let name = tool.definition().name;
        self.tools.insert(name, Arc::new(tool));
        self
    }

    /// Removes a tool.
    pub fn without(mut self, name: &str) -> Self {
        self.tools.remove(name);
        self
    }

    /// The definitions, sorted by name (a stable order keeps a prompt cache
    /// warm).
    pub fn definitions(&self) -> Vec<ToolDefinition> {
        self.tools.values().map(|t| t.definition()).collect()
    }

    /// The names.
    pub fn names(&self) -> Vec<&str> {
        self.tools.keys().map(String::as_str).collect()
    }

    /// Runs the tool `name` with `input`; an unknown name is an error result,
    /// an output over the cap is refused, and once the task's tools have
    /// handed back `max_task_output_bytes` every call is refused.
    pub async fn call(
        &self,
        ctx: &ToolContext,
        name: &str,
        input: &Value,
    ) -> Result<String, ToolError> {
        let tool = self.tools.get(name).ok_or_else(|| ToolError::UnknownTool {
            name: crate::error::cut(name, 80),
        })?;
        let limits = *ctx.workspace.limits();
        let used = ctx.usage().output_bytes;
        if used >= limits.max_task_output_bytes {
            return Err(ToolError::TaskLimit {
                what: format!(
                    "this task's tools already returned {used} bytes, its limit of {}; answer with \
                     what you have",
                    limits.max_task_output_bytes
                ),
            });
        }
        let out = tool.call(ctx, input).await?;
        let cap = limits.max_output_bytes;
        if out.len() > cap {
            return Err(ToolError::OutputTooLarge { cap });
        }
        if let Ok(mut u) = ctx.usage.lock() {
            u.output_bytes = u.output_bytes.saturating_add(out.len());
        }
        Ok(out)
    }
}

/// Whether the task's payload says `"allow_write": true`.
pub fn task_allows_write(task: &Task) -> bool {
    task.payload
        .get("allow_write")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// A string field of a tool input.
pub(crate) fn str_field<'a>(input: &'a Value, name: &str) -> Result<Option<&'a str>, ToolError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ToolError::InvalidInput {
            reason: format!("{name} must be a string"),
        }),
    }
}

/// A required string field.
pub(crate) fn required_str<'a>(input: &'a Value, name: &str) -> Result<&'a str, ToolError> {
    str_field(input, name)?.ok_or_else(|| ToolError::InvalidInput {
        reason: format!("{name} is required"),
    })
}

/// An optional non-negative integer field.
pub(crate) fn u64_field(input: &Value, name: &str) -> Result<Option<u64>, ToolError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| ToolError::InvalidInput {
            reason: format!("{name} must be a non-negative integer"),
        }),
    }
}

/// An optional boolean field.
pub(crate) fn bool_field(input: &Value, name: &str) -> Result<bool, ToolError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ToolError::InvalidInput {
            reason: format!("{name} must be true or false"),
        }),
    }
}
