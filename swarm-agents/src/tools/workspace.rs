//! The sandbox: a workspace folder every file tool is confined to.
//!
//! A path from a model is checked twice. First by its words: empty, absolute,
//! a root or drive prefix, a `..` component or a NUL byte is refused before
//! the file system is touched. Then by where it really is: the path is
//! canonicalized (every symlink followed) and must still lie inside the
//! canonical root. A write target that does not exist yet is checked through
//! its nearest existing ancestor, and no write may go into a `.git` folder
//! (a planted git config could make a later git call run a program).

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use crate::error::{AgentError, Result};
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
}

impl Default for ToolLimits {
    /// 256 KiB files, 64 KiB outputs, 1 MiB writes, 1,000 entries, 200
    /// matches, 30 s commands.
    fn default() -> Self {
        Self {
            max_file_bytes: 256 * 1024,
            max_output_bytes: 64 * 1024,
            max_write_bytes: 1024 * 1024,
            max_entries: 1_000,
            max_matches: 200,
            command_timeout: Duration::from_secs(30),
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
}

/// A workspace folder: the root every file, search, git and command tool is
/// confined to.
#[derive(Debug, Clone)]
pub struct Workspace {
    root: PathBuf,
    limits: ToolLimits,
}

impl Workspace {
    /// The folder `root` (it must exist), with default limits.
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
        Ok(Self {
            root,
            limits: ToolLimits::default(),
        })
    }

    /// Sets the limits.
    pub fn with_limits(mut self, limits: ToolLimits) -> Self {
        self.limits = limits;
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

    /// The existing file or folder `path` (relative to the root) names, if it
    /// lies inside the workspace once every symlink is followed.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, ToolError> {
        let rel = lexical(path)?;
        let joined = self.root.join(&rel);
        let real = std::fs::canonicalize(&joined).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ToolError::NotFound {
                path: path.to_owned(),
            },
            _ => ToolError::Failed {
                message: format!("{path}: {e}"),
            },
        })?;
        self.contain(path, real)
    }

    /// Where a write of `path` would land, checked before anything is
    /// created: an existing target must resolve inside the workspace and be a
    /// file; a new one must have its nearest existing ancestor inside. No
    /// component may be `.git`.
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
        let joined = self.root.join(&rel);
        if std::fs::symlink_metadata(&joined).is_ok() {
            let real = self.resolve(path)?;
            if real.is_dir() {
                return Err(ToolError::InvalidInput {
                    reason: format!("{path} is a folder"),
                });
            }
            return Ok(real);
        }
        // Walk up to the nearest ancestor that exists; everything below it
        // is new and made only of plain names (checked above).
        let mut existing = joined.as_path();
        let mut rest = Vec::new();
        loop {
            if std::fs::symlink_metadata(existing).is_ok() {
                break;
            }
            match (existing.file_name(), existing.parent()) {
                (Some(name), Some(parent)) => {
                    rest.push(name.to_owned());
                    existing = parent;
                }
                _ => {
                    return Err(ToolError::OutsideWorkspace {
                        path: path.to_owned(),
                    });
                }
            }
        }
        let real = std::fs::canonicalize(existing).map_err(|e| ToolError::Failed {
            message: format!("{path}: {e}"),
        })?;
        let mut target = self.contain(path, real)?;
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

    fn contain(&self, asked: &str, real: PathBuf) -> Result<PathBuf, ToolError> {
        if real.starts_with(&self.root) {
            Ok(real)
        } else {
            Err(ToolError::OutsideWorkspace {
                path: asked.to_owned(),
            })
        }
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
