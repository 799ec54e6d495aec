//! A write task's scratch copy: the task writes there, never in the user's
//! tree, and leaves a diff.
//!
//! The copy is made of what the model would see: the workspace's files
//! without `.git` and without what `.gitignore` leaves out, symlinks copied
//! as symlinks (the sandbox keeps commands from following one out). It lives
//! in a private temporary folder (mode 0700) with a git index of its own
//! beside it (outside the copy, so nothing the task runs can touch it): the
//! tree as copied is recorded there first, and the task's diff is the
//! change from it to the tree at the end, made by git (`--binary`, so any
//! file survives). For the model's `git` tool a scratch copy of a
//! repository reads the original repository (read-only) with the copy as
//! its work tree, so history, `status` and `diff` work as in the original.
//!
//! Why a copy rather than `git worktree add`: a worktree checks out `HEAD`
//! and so loses the user's uncommitted changes, which the task must see,
//! and it writes into the user's `.git`; the copy holds exactly the files
//! the task reads, and the user's repository is never written.
//!
//! The copy is removed when the [`Scratch`] is dropped.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;

use super::{ToolError, Workspace};

/// A write task's scratch copy of a workspace.
#[derive(Debug)]
pub struct Scratch {
    dir: tempfile::TempDir,
    tree: PathBuf,
    index_dir: PathBuf,
    base: String,
    workspace: Arc<Workspace>,
}

/// The change a write task made, as a git diff of the scratch copy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TaskDiff {
    /// The patch (`git diff --binary`), empty when nothing changed.
    pub patch: String,
    /// The files it changes, relative to the workspace root.
    pub files: Vec<String>,
}

impl TaskDiff {
    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.patch.trim().is_empty()
    }
}

impl Scratch {
    /// Copies `origin` into a fresh private folder and records the copy.
    pub async fn create(origin: &Workspace) -> Result<Self, ToolError> {
        let dir = tempfile::Builder::new()
            .prefix("swarm-task-")
            .tempdir()
            .map_err(|e| failed(&format!("cannot make a scratch folder: {e}")))?;
        let root = std::fs::canonicalize(dir.path())
            .map_err(|e| failed(&format!("scratch folder: {e}")))?;
        let tree = root.join("tree");
        let index_dir = root.join("index");
        for d in [&tree, &index_dir] {
            std::fs::create_dir(d).map_err(|e| failed(&format!("scratch folder: {e}")))?;
        }
        let from = origin.root().to_path_buf();
        let to = tree.clone();
        let cap = origin.limits().max_scratch_bytes;
        tokio::task::spawn_blocking(move || copy_tree(&from, &to, cap))
            .await
            .map_err(|e| failed(&format!("copy: {e}")))??;
        let workspace = Workspace::scratch_of(origin, &tree).map_err(|e| failed(&e.to_string()))?;
        let mut s = Self {
            dir,
            tree,
            index_dir,
            base: String::new(),
            workspace: Arc::new(workspace),
        };
        s.git(&["init", "-q"], None).await?;
        s.git(&["add", "-A", "--", "."], None).await?;
        s.base = s.git(&["write-tree"], None).await?.trim().to_owned();
        Ok(s)
    }

    /// The copy, as the task's workspace.
    pub fn workspace(&self) -> &Arc<Workspace> {
        &self.workspace
    }

    /// Where the copy is.
    pub fn path(&self) -> &Path {
        &self.tree
    }

    /// The change from the copy as made to the tree now. Over the task's
    /// limits (`max_task_write_files`, `max_task_write_bytes`) it is refused:
    /// a diff that large is not stored.
    pub async fn diff(&self) -> Result<TaskDiff, ToolError> {
        self.git(&["add", "-A", "--", "."], None).await?;
        let names = self
            .git(
                &[
                    "diff",
                    "--cached",
                    "--no-renames",
                    "--name-only",
                    "-z",
                    &self.base,
                ],
                None,
            )
            .await?;
        let files: Vec<String> = names
            .split('\0')
            .filter(|n| !n.is_empty())
            .map(str::to_owned)
            .collect();
        let limits = self.workspace.limits();
        if files.len() > limits.max_task_write_files {
            return Err(ToolError::TaskLimit {
                what: format!(
                    "the task changed {} files, over its limit of {}; its changes were not kept",
                    files.len(),
                    limits.max_task_write_files
                ),
            });
        }
        let patch = self
            .git(
                &[
                    "diff",
                    "--cached",
                    "--no-renames",
                    "--binary",
                    "--full-index",
                    &self.base,
                ],
                None,
            )
            .await?;
        if patch.len() > limits.max_task_write_bytes {
            return Err(ToolError::TaskLimit {
                what: format!(
                    "the task's diff is {} bytes, over its limit of {}; its changes were not kept",
                    patch.len(),
                    limits.max_task_write_bytes
                ),
            });
        }
        Ok(TaskDiff { patch, files })
    }

    async fn git(&self, args: &[&str], stdin: Option<&[u8]>) -> Result<String, ToolError> {
        let env = [
            ("GIT_DIR", self.index_dir.as_os_str().to_owned()),
            ("GIT_WORK_TREE", self.tree.as_os_str().to_owned()),
            ("HOME", self.dir.path().as_os_str().to_owned()),
        ];
        host_git(&self.tree, args, &env, stdin).await
    }
}

fn failed(message: &str) -> ToolError {
    ToolError::Failed {
        message: message.to_owned(),
    }
}

/// Options for the worker's own git calls (never the model's): no config
/// but the repository's own, no hooks, no helpers, no pager.
const HOST_GIT_SAFE: &[&str] = &[
    "--no-pager",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.autocrlf=false",
    "-c",
    "core.quotePath=false",
    "-c",
    "user.name=swarm",
    "-c",
    "user.email=swarm@localhost",
];

/// Runs the worker's own `git` (fixed arguments, not the model's) in `cwd`
/// with a clean environment plus `env`; its stdout, or the failure.
pub(crate) async fn host_git(
    cwd: &Path,
    args: &[&str],
    env: &[(&str, OsString)],
    stdin: Option<&[u8]>,
) -> Result<String, ToolError> {
    let mut cmd = tokio::process::Command::new("git");
    cmd.args(HOST_GIT_SAFE)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LANG", "C.UTF-8")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_OPTIONAL_LOCKS", "0")
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(parent) = cwd.parent() {
        cmd.env("GIT_CEILING_DIRECTORIES", parent);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| failed(&format!("cannot start git: {e}")))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input)
            .await
            .map_err(|e| failed(&format!("git: {e}")))?;
        drop(pipe);
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| failed(&format!("git: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(failed(&format!(
            "git {}: {}",
            args.first().copied().unwrap_or(""),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Copies `from` into `to`: what `.gitignore` keeps (no `.git`), symlinks
/// as symlinks, at most `cap` bytes.
fn copy_tree(from: &Path, to: &Path, cap: u64) -> Result<(), ToolError> {
    let walk = ignore::WalkBuilder::new(from)
        .hidden(false)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(false)
        .require_git(false)
        .parents(false)
        .follow_links(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build();
    let mut total = 0u64;
    for entry in walk {
        let Ok(entry) = entry else { continue };
        let Ok(rel) = entry.path().strip_prefix(from) else {
            continue;
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let target = to.join(rel);
        let Some(kind) = entry.file_type() else {
            continue;
        };
        let io = |e: std::io::Error| failed(&format!("copy {}: {e}", rel.display()));
        if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(io)?;
        } else if kind.is_symlink() {
            let link = std::fs::read_link(entry.path()).map_err(io)?;
            #[cfg(unix)]
            std::os::unix::fs::symlink(link, &target).map_err(io)?;
            #[cfg(not(unix))]
            let _ = link;
        } else if kind.is_file() {
            total = total.saturating_add(entry.metadata().map(|m| m.len()).unwrap_or(0));
            if total > cap {
                return Err(ToolError::TaskLimit {
                    what: format!(
                        "the workspace is over {cap} bytes, too large for a write task's scratch copy"
                    ),
                });
            }
            std::fs::copy(entry.path(), &target).map_err(io)?;
        }
    }
    Ok(())
}
