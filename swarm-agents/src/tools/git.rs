//! `git`, read-only: `status`, `log`, `diff`, `show`, `blame`, with
//! arguments the tool builds itself (never passed through from the model),
//! confined like every command ([`crate::sandbox`]).
//!
//! git reads **only the repository the workspace had when it was opened**:
//! `GIT_DIR` is fixed to it and `GIT_WORK_TREE` to the workspace, so no
//! repository is ever discovered (not one planted later as `HEAD`,
//! `config`, `objects/` at the root, not one above the workspace); a
//! workspace that had none gets no git at all. No system or global config,
//! `safe.bareRepository=explicit`, no pager, no external diff or text
//! conversion, no fsmonitor, hooks, signature programs, credential helpers,
//! replace objects or network protocols.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::command::run_process;
use super::{
    Tool, ToolContext, ToolDefinition, ToolError, bool_field, required_str, str_field, u64_field,
};
use crate::sandbox::toolchain;

/// The `git` tool.
#[derive(Debug, Clone, Copy, Default)]
pub struct GitReadOnly;

/// Options that switch off every way a repository's configuration could
/// make a read-only command run a program or write a file.
const SAFE: &[&str] = &[
    "--no-pager",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.pager=cat",
    "-c",
    "diff.external=",
    "-c",
    "log.showSignature=false",
    "-c",
    "gpg.program=false",
    "-c",
    "core.untrackedCache=false",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "safe.bareRepository=explicit",
    "-c",
    "core.sshCommand=false",
    "-c",
    "protocol.allow=never",
    "-c",
    "credential.helper=",
    "-c",
    "blame.ignoreRevsFile=",
    "-c",
    "core.attributesFile=/dev/null",
    "-c",
    "core.excludesFile=/dev/null",
];

/// A revision (or range) the model may name: refs, hashes, `HEAD~2`,
/// `a..b`; never an option.
fn revision(rev: &str) -> Result<&str, ToolError> {
    let ok = !rev.is_empty()
        && rev.len() <= 200
        && !rev.starts_with('-')
        && rev
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./~^@{}-".contains(c));
    if ok {
        Ok(rev)
    } else {
        Err(ToolError::InvalidInput {
            reason: format!("not a revision: {:?}", crate::error::cut(rev, 80)),
        })
    }
}

#[async_trait]
impl Tool for GitReadOnly {
    fn definition(&self) -> ToolDefinition {
        ToolDefinition::new(
            "git",
            "Read-only git in the workspace: status, log, diff, show or blame. \
             revision is a ref, hash or range (a..b); path limits to a file or folder.",
            json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string", "enum": ["status", "log", "diff", "show", "blame"]},
                    "revision": {"type": "string"},
                    "path": {"type": "string"},
                    "max_count": {"type": "integer", "minimum": 1, "maximum": 200},
                    "stat": {"type": "boolean", "description": "diff/show/log: a summary of changed files instead of the patch"}
                },
                "required": ["command"]
            }),
        )
    }

    async fn call(&self, ctx: &ToolContext, input: &Value) -> Result<String, ToolError> {
        let command = required_str(input, "command")?;
        let rev = str_field(input, "revision")?.map(revision).transpose()?;
        let path = match str_field(input, "path")? {
            Some(p) => {
                // Checked by words and, when it exists, by where it really is;
                // a deleted file may still be asked about in history.
                let real = ctx.workspace.resolve(p).or_else(|e| match e {
                    ToolError::NotFound { .. } => ctx
                        .workspace
                        .resolve_for_write(p)
                        .map_err(|_| ToolError::OutsideWorkspace { path: p.to_owned() }),
                    other => Err(other),
                })?;
                Some(ctx.workspace.display(&real))
            }
            None => None,
        };
        let stat = bool_field(input, "stat")?;
        let max = u64_field(input, "max_count")?.unwrap_or(20).clamp(1, 200);
        let mut args: Vec<String> = SAFE.iter().map(|s| (*s).to_owned()).collect();
        match command {
            "status" => {
                args.extend(["status", "--short", "--branch"].map(String::from));
            }
            "log" => {
                args.extend(
                    ["log", "--no-ext-diff", "--no-textconv", "--date=iso"].map(String::from),
                );
                args.push(format!("--max-count={max}"));
                if stat {
                    args.push("--stat".into());
                }
                args.extend(rev.map(String::from));
            }
            "diff" | "show" => {
                args.extend([command, "--no-ext-diff", "--no-textconv"].map(String::from));
                if stat {
                    args.push("--stat".into());
                }
                args.extend(rev.map(String::from));
            }
            "blame" => {
                if path.is_none() {
                    return Err(ToolError::InvalidInput {
                        reason: "blame needs a path".into(),
                    });
                }
                args.extend(["blame", "--no-textconv"].map(String::from));
                args.extend(rev.map(String::from));
            }
            other => {
                return Err(ToolError::NotAllowed {
                    what: format!("git {:?}", crate::error::cut(other, 40)),
                });
            }
        }
        if let Some(p) = path {
            args.push("--".into());
            args.push(p);
        }
        let Some(repo) = ctx.workspace.git() else {
            return Err(ToolError::Failed {
                message: "git: not a git repository: the workspace had no .git when the worker \
                          opened it (a repository written later is never read)"
                    .into(),
            });
        };
        let mut env: Vec<(&str, String)> = vec![
            ("GIT_DIR", repo.git_dir.display().to_string()),
            ("GIT_WORK_TREE", ctx.workspace.root().display().to_string()),
            ("GIT_CONFIG_NOSYSTEM", "1".into()),
            ("GIT_CONFIG_GLOBAL", "/dev/null".into()),
            ("GIT_ATTR_NOSYSTEM", "1".into()),
            ("GIT_NO_REPLACE_OBJECTS", "1".into()),
            ("GIT_NO_LAZY_FETCH", "1".into()),
            ("GIT_PROTOCOL_FROM_USER", "0".into()),
            ("GIT_OPTIONAL_LOCKS", "0".into()),
            ("GIT_TERMINAL_PROMPT", "0".into()),
            ("GIT_PAGER", "cat".into()),
        ];
        if let Some(parent) = ctx.workspace.root().parent() {
            env.push(("GIT_CEILING_DIRECTORIES", parent.display().to_string()));
        }
        let grants = toolchain::resolve("git").map_err(|e| ToolError::NotAllowed {
            what: format!("git: {e}"),
        })?;
        let out = run_process(&ctx.workspace, &grants, &args, &env).await?;
        if out.code == Some(0) {
            Ok(if out.stdout.is_empty() {
                "(no output)".into()
            } else {
                out.stdout
            })
        } else {
            Err(ToolError::Failed {
                message: format!("git: {}", out.stderr.trim()),
            })
        }
    }
}
