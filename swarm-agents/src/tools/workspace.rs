//! The workspace: the folder every file tool is confined to, the sandbox
//! its commands run in, and the git repository it had when it was opened.
//!
//! File tools open paths **beneath the workspace by the operating system's
//! rules**: every path goes through a `cap_std::fs::Dir` opened at the root
//! (`openat2` with `RESOLVE_BENEATH` on Linux), so `..`, absolute paths and
//! symlinks that lead out are refused by the kernel at the moment of the
//! open, with no window between a check and the use. A path's words are
//! also refused early (absolute, `..`, a NUL byte) for a clear message, and
//! no write may go into a `.git` folder.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{AgentError, Result};
use crate::sandbox::Sandbox;
use crate::tools::ToolError;

/// Caps on what tools read, print and run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ToolLimits {
    /// Largest file `read_file` reads, and `search_text` searches (bytes).
    pub max_file_bytes: u64,
    /// Largest tool output handed back to the model (bytes); more is refused.
    pub max_output_bytes: usize,
    /// Largest content `write_file` writes (bytes).
    pub max_write_bytes: usize,
    /// Most entries `list_files` returns.
    pub max_entries: usize,
    /// Most matches `search_text` returns.
    pub max_matches: usize,
    /// How long a command (or git) may run before it is killed.
    pub command_timeout: Duration,
    /// Tool output handed to the model over one task, in bytes; calls after
    /// it are refused.
    pub max_task_output_bytes: usize,
    /// Bytes a write task may change (what `write_file` writes, and the
    /// size of the task's diff).
    pub max_task_write_bytes: usize,
    /// Files a write task may change.
    pub max_task_write_files: usize,
    /// Largest workspace a write task copies to its scratch folder, in
    /// bytes (files `.gitignore` leaves out are not copied).
    pub max_scratch_bytes: u64,
}

impl Default for ToolLimits {
    /// 256 KiB files, 64 KiB outputs, 256 KiB writes, 1,000 entries, 200
    /// matches, 30 s commands; per task 1 MiB of tool output, 512 KiB and
    /// 64 files changed, a 1 GiB scratch copy.
    fn default() -> Self {
        Self {
            max_file_bytes: 256 * 1024,
            max_output_bytes: 64 * 1024,
            max_write_bytes: 256 * 1024,
            max_entries: 1_000,
            max_matches: 200,
            command_timeout: Duration::from_secs(30),
            max_task_output_bytes: 1024 * 1024,
            max_task_write_bytes: 512 * 1024,
            max_task_write_files: 64,
            max_scratch_bytes: 1 << 30,
        }
    }
}

impl ToolLimits {
    /// Sets the output cap.
    pub fn max_output_bytes(mut self, n: usize) -> Self {
        self.max_output_bytes = n;
        self
    }

    /// Sets the file-size cap.
    pub fn max_file_bytes(mut self, n: u64) -> Self {
        self.max_file_bytes = n;
        self
    }

    /// Sets the command timeout.
    pub fn command_timeout(mut self, t: Duration) -> Self {
        self.command_timeout = t;
        self
    }

    /// Sets the tool output of one task.
    pub fn max_task_output_bytes(mut self, n: usize) -> Self {
        self.max_task_output_bytes = n;
        self
    }

    /// Sets the bytes and files a write task may change.
    pub fn max_task_writes(mut self, bytes: usize, files: usize) -> Self {
        self.max_task_write_bytes = bytes;
        self.max_task_write_files = files;
        self
    }
}

/// The git repository a workspace had when it was opened: git reads this
/// one and no other (never one planted later, never one above).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitDirs {
    /// `GIT_DIR`.
    pub git_dir: PathBuf,
    /// Folders git reads (the git folder, and the main repository's when
    /// the workspace is a linked worktree).
    pub read: Vec<PathBuf>,
}

impl GitDirs {
    /// The repository at `root`, if `root/.git` is a folder or a `gitdir:`
    /// file naming one.
    fn detect(root: &Path) -> Option<Self> {
        let dot_git = root.join(".git");
        let meta = std::fs::symlink_metadata(&dot_git).ok()?;
        let git_dir = if meta.is_dir() {
            dot_git
        } else if meta.is_file() {
            let text = std::fs::read_to_string(&dot_git).ok()?;
            let target = text.trim().strip_prefix("gitdir:")?.trim();
            std::fs::canonicalize(root.join(target)).ok()?
        } else {
            return None;
        };
        let mut read = vec![git_dir.clone()];
        if let Ok(common) = std::fs::read_to_string(git_dir.join("commondir"))
            && let Ok(c) = std::fs::canonicalize(git_dir.join(common.trim()))
            && !read.contains(&c)
        {
            read.push(c);
        }
        Some(Self { git_dir, read })
    }
}

/// A workspace folder: the root every file, search, git and command tool is
/// confined to.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    dir: Arc<cap_std::fs::Dir>,
    limits: ToolLimits,
    sandbox: Arc<Sandbox>,
    git: Option<GitDirs>,
    scratch: bool,
    extra_read: Vec<PathBuf>,
}

impl Workspace {
    /// The folder `root` (it must exist), with default limits and the
    /// default sandbox ([`Sandbox::new`]). Its git repository is the one
    /// it has now, if any.
    pub fn new(root: impl AsRef<Path>) -> Result<Self> {
        let given = root.as_ref();
        let root = std::fs::canonicalize(given).map_err(|e| AgentError::InvalidConfig {
            field: "workspace",
            reason: format!("{}: {e}", given.display()),
        })?;
        if !root.is_dir() {
            return Err(AgentError::InvalidConfig {
                field: "workspace",
                reason: format!("{} is not a folder", root.display()),
            });
        }
        let dir = open_dir(&root)?;
        let git = GitDirs::detect(&root);
        Ok(Self {
            root,
            dir: Arc::new(dir),
            limits: ToolLimits::default(),
            sandbox: Arc::new(Sandbox::new()),
            git,
            scratch: false,
            extra_read: Vec::new(),
        })
    }

    /// The scratch copy at `root` of `origin` (same limits, sandbox and git
    /// repository; writable).
    pub(crate) fn scratch_of(origin: &Workspace, root: &Path) -> Result<Self> {
        let dir = open_dir(root)?;
        let mut extra_read = origin.extra_read.clone();
        if let Some(g) = &origin.git {
            extra_read.extend(g.read.iter().cloned());
        }
        Ok(Self {
            root: root.to_path_buf(),
            dir: Arc::new(dir),
            limits: origin.limits,
            sandbox: Arc::clone(&origin.sandbox),
            git: origin.git.clone(),
            scratch: true,
            extra_read,
        })
    }

    /// Sets the limits.
    pub fn with_limits(mut self, limits: ToolLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the sandbox of its commands.
    pub fn with_sandbox(mut self, sandbox: Arc<Sandbox>) -> Self {
        self.sandbox = sandbox;
        self
    }

    /// The canonical root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The limits.
    pub fn limits(&self) -> &ToolLimits {
        &self.limits
    }

    /// The sandbox its commands run in.
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.sandbox
    }

    /// The git repository it had when opened.
    pub fn git(&self) -> Option<&GitDirs> {
        self.git.as_ref()
    }

    /// Whether this is a write task's scratch copy (the only kind of
    /// workspace tools may write in).
    pub fn is_scratch(&self) -> bool {
        self.scratch
    }

    /// Folders outside the root its commands may read (the repository of a
    /// scratch copy's original).
    pub(crate) fn extra_read(&self) -> &[PathBuf] {
        &self.extra_read
    }

    /// The root, opened: every file tool opens paths beneath it.
    pub fn dir(&self) -> &cap_std::fs::Dir {
        &self.dir
    }

    /// The path relative to the root that `path` names, refused when its
    /// words leave the root.
    pub fn relative(&self, path: &str) -> Result<PathBuf, ToolError> {
        lexical(path)
    }

    /// The existing file or folder `path` (relative to the root) names, as
    /// an absolute path, if it lies inside the workspace once every symlink
    /// is followed (resolved beneath the root by the kernel).
    pub fn resolve(&self, path: &str) -> Result<PathBuf, ToolError> {
        let rel = lexical(path)?;
        if rel.as_os_str().is_empty() {
            return Ok(self.root.clone());
        }
        let real = self
            .dir
            .canonicalize(&rel)
            .map_err(|e| io_error(path, &e))?;
        Ok(self.root.join(real))
    }

    /// Where a write of `path` would land, checked before anything is
    /// created: an existing target must resolve inside the workspace and be
    /// a file; a new one must have its nearest existing ancestor inside. No
    /// component may be `.git`. (The write itself is made beneath the root
    /// again, by the kernel's rules.)
    pub fn resolve_for_write(&self, path: &str) -> Result<PathBuf, ToolError> {
        let rel = lexical(path)?;
        if rel.as_os_str().is_empty() {
            return Err(ToolError::InvalidInput {
                reason: "a file path is needed".into(),
            });
        }
        if rel
            .components()
            .any(|c| c.as_os_str().eq_ignore_ascii_case(".git"))
        {
            return Err(ToolError::NotAllowed {
                what: format!("writing inside .git ({path})"),
            });
        }
        if self.dir.symlink_metadata(&rel).is_ok() {
            let real = self.resolve(path)?;
            if real.is_dir() {
                return Err(ToolError::InvalidInput {
                    reason: format!("{path} is a folder"),
                });
            }
            return Ok(real);
        }
        let mut existing = rel.as_path();
        let mut rest = Vec::new();
        loop {
            if existing.as_os_str().is_empty() || self.dir.symlink_metadata(existing).is_ok() {
                break;
            }
            match (existing.file_name(), existing.parent()) {
                (Some(name), Some(parent)) => {
                    rest.push(name.to_owned());
                    existing = parent;
                }
                _ => break,
            }
        }
        let mut target = if existing.as_os_str().is_empty() {
            self.root.clone()
        } else {
            let shown = existing.to_string_lossy();
            self.resolve(&shown).map_err(|e| match e {
                ToolError::OutsideWorkspace { .. } => ToolError::OutsideWorkspace {
                    path: path.to_owned(),
                },
                other => other,
            })?
        };
        if !target.is_dir() {
            return Err(ToolError::InvalidInput {
                reason: format!("{path}: a parent is not a folder"),
            });
        }
        for name in rest.iter().rev() {
            target.push(name);
        }
        Ok(target)
    }

    /// `real` relative to the root, with `/` separators, for the model.
    pub fn display(&self, real: &Path) -> String {
        match real.strip_prefix(&self.root) {
            Ok(rel) if rel.as_os_str().is_empty() => ".".to_owned(),
            Ok(rel) => rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/"),
            Err(_) => "<outside>".to_owned(),
        }
    }
}

fn open_dir(root: &Path) -> Result<cap_std::fs::Dir> {
    cap_std::fs::Dir::open_ambient_dir(root, cap_std::ambient_authority()).map_err(|e| {
        AgentError::InvalidConfig {
            field: "workspace",
            reason: format!("{}: {e}", root.display()),
        }
    })
}

/// A tool error for an I/O error on `path` beneath the root: a path that
/// led out is [`ToolError::OutsideWorkspace`].
pub(crate) fn io_error(path: &str, e: &std::io::Error) -> ToolError {
    match e.kind() {
        std::io::ErrorKind::NotFound => ToolError::NotFound {
            path: path.to_owned(),
        },
        std::io::ErrorKind::PermissionDenied if e.to_string().contains("outside") => {
            ToolError::OutsideWorkspace {
                path: path.to_owned(),
            }
        }
        _ => ToolError::Failed {
            message: format!("{path}: {e}"),
        },
    }
}

/// The relative path `path` names, refused when its words could leave the
/// root: absolute, a prefix, `..`, or a NUL byte. `""` and `"."` are the
/// root itself.
fn lexical(path: &str) -> Result<PathBuf, ToolError> {
    if path.contains('\0') {
        return Err(ToolError::InvalidInput {
            reason: "a path cannot contain a NUL byte".into(),
        });
    }
    // A leading backslash or a drive letter is absolute on Windows; refuse
    // it everywhere so a path means the same on every platform.
    let looks_absolute = path.starts_with('/')
        || path.starts_with('\\')
        || path.starts_with('~')
        || path.as_bytes().get(1) == Some(&b':');
    let p = Path::new(path);
    if looks_absolute || p.is_absolute() || p.has_root() {
        return Err(ToolError::OutsideWorkspace {
            path: path.to_owned(),
        });
    }
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(ToolError::OutsideWorkspace {
                    path: path.to_owned(),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ws/src")).unwrap();
        std::fs::write(dir.path().join("ws/src/a.txt"), "inside").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "CANARY").unwrap();
        let w = Workspace::new(dir.path().join("ws")).unwrap();
        (dir, w)
    }

    #[test]
    fn words_that_leave_the_root_are_refused_before_any_lookup() {
        let (_d, w) = ws();
        for bad in [
            "../secret.txt",
            "src/../../secret.txt",
            "/etc/passwd",
            "\\windows",
            "C:\\x",
            "~/x",
            "a\0b",
        ] {
            let e = w.resolve(bad).unwrap_err();
            assert!(
                matches!(
                    e,
                    ToolError::OutsideWorkspace { .. } | ToolError::InvalidInput { .. }
                ),
                "{bad}: {e:?}"
            );
            assert!(w.resolve_for_write(bad).is_err(), "{bad}");
        }
        assert!(w.resolve("src/a.txt").is_ok());
        assert_eq!(w.display(&w.resolve(".").unwrap()), ".");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_out_is_refused_for_reads_and_writes() {
        let (d, w) = ws();
        std::os::unix::fs::symlink(d.path().join("secret.txt"), w.root().join("link")).unwrap();
        std::os::unix::fs::symlink(d.path(), w.root().join("up")).unwrap();
        assert!(matches!(
            w.resolve("link"),
            Err(ToolError::OutsideWorkspace { .. })
        ));
        assert!(matches!(
            w.resolve("up/secret.txt"),
            Err(ToolError::OutsideWorkspace { .. })
        ));
        assert!(matches!(
            w.resolve_for_write("link"),
            Err(ToolError::OutsideWorkspace { .. })
        ));
        // A new file under a symlinked folder that points out.
        assert!(matches!(
            w.resolve_for_write("up/new/file.txt"),
            Err(ToolError::OutsideWorkspace { .. })
        ));
        assert!(!d.path().join("new").exists());
    }

    #[test]
    fn new_files_inside_and_git_folders() {
        let (_d, w) = ws();
        let t = w.resolve_for_write("src/deep/new.txt").unwrap();
        assert!(t.starts_with(w.root()));
        assert!(matches!(
            w.resolve_for_write(".git/config"),
            Err(ToolError::NotAllowed { .. })
        ));
        assert!(w.resolve_for_write("src").is_err(), "a folder");
        assert!(w.resolve_for_write("src/a.txt/x").is_err(), "under a file");
    }
}
