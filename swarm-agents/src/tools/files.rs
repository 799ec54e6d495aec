//! File tools: read, list (respecting `.gitignore`), search, write. Every
//! file is opened beneath the workspace root by the kernel's rules (the
//! workspace's `cap_std` `Dir`), never by a path string checked first.

use std::io::Read;
use std::path::Path;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{
    Tool, ToolContext, ToolDefinition, ToolError, Workspace, bool_field, required_str, str_field,
    u64_field,
};

/// `read_file`: a text file of the workspace, up to the file-size cap,
/// optionally a range of lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadFile;

#[async_trait]
impl Tool for ReadFile {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition::new(
            "read_file",
            "Read a text file of the workspace (path relative to the workspace root). \
             Optionally only lines start_line..=end_line (1-based).",
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "File path relative to the workspace root"},
                    "start_line": {"type": "integer", "minimum": 1},
                    "end_line": {"type": "integer", "minimum": 1}
                },
                "required": ["path"]
            }),
        )
    }

    async fn call(&self, ctx: &ToolContext, input: &Value) -> Result<String, ToolError> {
        let path = required_str(input, "path")?;
        let rel = ctx.workspace.relative(path)?;
        let text = read_capped(&ctx.workspace, path, &rel)?;
        let start = u64_field(input, "start_line")?.unwrap_or(1).max(1);
        let end = u64_field(input, "end_line")?;
        if start == 1 && end.is_none() {
            return Ok(text);
        }
        let skip = usize::try_from(start - 1).unwrap_or(usize::MAX);
        let take = end
            .map(|e| usize::try_from(e.saturating_sub(start - 1)).unwrap_or(usize::MAX))
            .unwrap_or(usize::MAX);
        Ok(text
            .lines()
            .skip(skip)
            .take(take)
            .collect::<Vec<_>>()
            .join("\n"))
    }
}

/// Reads a regular file no larger than the cap, as text (invalid UTF-8
/// replaced), opened beneath the workspace root.
fn read_capped(ws: &Workspace, asked: &str, rel: &Path) -> Result<String, ToolError> {
    let file = ws
        .dir()
        .open(rel)
        .map_err(|e| super::workspace::io_error(asked, &e))?;
    let meta = file.metadata().map_err(|e| ToolError::Failed {
        message: format!("{asked}: {e}"),
    })?;
    if !meta.is_file() {
        return Err(ToolError::InvalidInput {
            reason: format!("{asked} is not a file"),
        });
    }
    let cap = ws.limits().max_file_bytes;
    if meta.len() > cap {
        return Err(ToolError::FileTooLarge {
            path: asked.to_owned(),
            size: meta.len(),
            cap,
        });
    }
    // Read at most cap + 1 bytes: a file that grew since the check is still
    // refused rather than read whole.
    let mut bytes = Vec::new();
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| ToolError::Failed {
            message: format!("{asked}: {e}"),
        })?;
    if bytes.len() as u64 > cap {
        return Err(ToolError::FileTooLarge {
            path: asked.to_owned(),
            size: bytes.len() as u64,
            cap,
        });
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A walker over `dir` that respects `.gitignore`, `.ignore` and
/// `.git/info/exclude` (inside the workspace only: the user's global git
/// ignore file is not read), skips `.git`, and never follows symlinks.
fn walker(dir: &Path, max_depth: Option<usize>) -> ignore::Walk {
    ignore::WalkBuilder::new(dir)
        .hidden(false)
        .git_ignore(true)
        .git_exclude(true)
        .git_global(false)
        .require_git(false)
        .parents(false)
        .follow_links(false)
        .max_depth(max_depth)
        .filter_entry(|e| e.file_name() != ".git")
        .sort_by_file_path(|a, b| a.cmp(b))
        .build()
}

/// `list_files`: files and folders under a folder of the workspace,
/// `.gitignore` respected.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListFiles;

#[async_trait]
impl Tool for ListFiles {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition::new(
            "list_files",
            "List files and folders (folders end with /) under a folder of the workspace, \
             respecting .gitignore. Use max_depth to stay shallow.",
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "Folder relative to the workspace root (default \".\")"},
                    "max_depth": {"type": "integer", "minimum": 1}
                }
            }),
        )
    }

    async fn call(&self, ctx: &ToolContext, input: &Value) -> Result<String, ToolError> {
        let path = str_field(input, "path")?.unwrap_or(".");
        let depth =
            u64_field(input, "max_depth")?.map(|d| usize::try_from(d).unwrap_or(usize::MAX));
        let ws = &ctx.workspace;
        let dir = ws.resolve(path)?;
        let cap = ws.limits().max_entries;
        let mut out = Vec::new();
        for entry in walker(&dir, depth) {
            let Ok(entry) = entry else { continue };
            if entry.depth() == 0 {
                continue;
            }
            if out.len() >= cap {
                return Err(ToolError::OutputTooLarge {
                    cap: ws.limits().max_output_bytes,
                });
            }
            let mut shown = ws.display(entry.path());
            if entry.file_type().is_some_and(|t| t.is_dir()) {
                shown.push('/');
            }
            out.push(shown);
        }
        if out.is_empty() {
            return Ok(format!("{path}: no files"));
        }
        Ok(out.join("\n"))
    }
}

/// `search_text`: lines matching a regular expression in the workspace's
/// text files, `.gitignore` respected.
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchText;

#[async_trait]
impl Tool for SearchText {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition::new(
            "search_text",
            "Search the workspace's text files for a regular expression (Rust regex syntax). \
             Returns path:line: text for each matching line.",
            json!({
                "type": "object",
                "properties": {
                    "pattern": {"type": "string"},
                    "path": {"type": "string", "description": "File or folder to search (default \".\")"},
                    "case_insensitive": {"type": "boolean"}
                },
                "required": ["pattern"]
            }),
        )
    }

    async fn call(&self, ctx: &ToolContext, input: &Value) -> Result<String, ToolError> {
        let pattern = required_str(input, "pattern")?;
        let path = str_field(input, "path")?.unwrap_or(".");
        let re = regex::RegexBuilder::new(pattern)
            .case_insensitive(bool_field(input, "case_insensitive")?)
            .size_limit(1 << 20)
            .dfa_size_limit(1 << 20)
            .build()
            .map_err(|e| ToolError::InvalidInput {
                reason: format!("pattern: {e}"),
            })?;
        let ws = &ctx.workspace;
        let start = ws.resolve(path)?;
        let limits = *ws.limits();
        let mut hits = Vec::new();
        for entry in walker(&start, None) {
            let Ok(entry) = entry else { continue };
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if meta.len() > limits.max_file_bytes {
                continue;
            }
            // Opened again beneath the root, by the kernel's rules.
            let Ok(rel) = entry.path().strip_prefix(ws.root()) else {
                continue;
            };
            let mut bytes = Vec::new();
            let read = ws.dir().open(rel).and_then(|f| {
                f.take(limits.max_file_bytes.saturating_add(1))
                    .read_to_end(&mut bytes)
            });
            if read.is_err() || bytes.len() as u64 > limits.max_file_bytes {
                continue;
            }
            if bytes.iter().take(8192).any(|b| *b == 0) {
                continue; // binary
            }
            let text = String::from_utf8_lossy(&bytes);
            let shown = ws.display(entry.path());
            for (n, line) in text.lines().enumerate() {
                if re.is_match(line) {
                    if hits.len() >= limits.max_matches {
                        return Err(ToolError::OutputTooLarge {
                            cap: limits.max_output_bytes,
                        });
                    }
                    hits.push(format!(
                        "{shown}:{}: {}",
                        n + 1,
                        crate::error::cut(line.trim_end(), 300)
                    ));
                }
            }
        }
        if hits.is_empty() {
            return Ok(format!("no lines match {pattern:?}"));
        }
        Ok(hits.join("\n"))
    }
}

/// `write_file`: writes a file of a write task's scratch copy (never the
/// user's tree); folders are created as needed, beneath the root.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteFile;

#[async_trait]
impl Tool for WriteFile {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition::new(
            "write_file",
            "Write (create or replace) a text file of the workspace. Only allowed when the task allows writing.",
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "content": {"type": "string"}
                },
                "required": ["path", "content"]
            }),
        )
    }

    async fn call(&self, ctx: &ToolContext, input: &Value) -> Result<String, ToolError> {
        let path = required_str(input, "path")?;
        let content = required_str(input, "content")?;
        if !ctx.allow_write {
            return Err(ToolError::NotAllowed {
                what: format!("writing {path} (this task is read-only)"),
            });
        }
        let cap = ctx.workspace.limits().max_write_bytes;
        if content.len() > cap {
            return Err(ToolError::OutputTooLarge { cap });
        }
        if !ctx.workspace.is_scratch() {
            return Err(ToolError::NotAllowed {
                what: format!(
                    "writing {path}: writes go to a write task's scratch copy, and this workspace \
                     is not one"
                ),
            });
        }
        // Checked by words and by where the parents lead, then written
        // beneath the root by the kernel's rules.
        ctx.workspace.resolve_for_write(path)?;
        let rel = ctx.workspace.relative(path)?;
        let shown = ctx.workspace.display(&ctx.workspace.root().join(&rel));
        ctx.charge_write(&shown, content.len())?;
        let dir = ctx.workspace.dir();
        if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
            dir.create_dir_all(parent)
                .map_err(|e| super::workspace::io_error(path, &e))?;
        }
        dir.write(&rel, content)
            .map_err(|e| super::workspace::io_error(path, &e))?;
        Ok(format!("wrote {} bytes to {path}", content.len()))
    }
}
