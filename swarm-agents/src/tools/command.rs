//! `run_command`: a program from an allow-list, run directly (no shell) in
//! the workspace with a cleared environment, a timeout (killed when it runs
//! over) and an output cap (killed when it prints more). On Unix a command
//! runs in a process group of its own, and the whole group is killed (what
//! it started in the background too), not only the command.

use std::collections::BTreeSet;
use std::process::Stdio;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{Tool, ToolContext, ToolDefinition, ToolError, Workspace, required_str};

/// The programs `run_command` may start, by bare name (looked up on `PATH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandAllowList {
    programs: BTreeSet<String>,
}

impl Default for CommandAllowList {
    /// Read-only text utilities: `cat`, `echo`, `head`, `ls`, `sort`,
    /// `tail`, `uniq`, `wc`. Builds and interpreters are off by default:
    /// they run code the workspace contains.
    fn default() -> Self {
        Self::new(["cat", "echo", "head", "ls", "sort", "tail", "uniq", "wc"])
    }
}

impl CommandAllowList {
    /// Exactly these programs.
    pub fn new<I, S>(programs: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            programs: programs.into_iter().map(Into::into).collect(),
        }
    }

    /// Nothing allowed.
    pub fn none() -> Self {
        Self::new(Vec::<String>::new())
    }

    /// Whether `program` is on the list.
    pub fn allows(&self, program: &str) -> bool {
        self.programs.contains(program)
    }

    /// The programs.
    pub fn programs(&self) -> impl Iterator<Item = &str> {
        self.programs.iter().map(String::as_str)
    }
}

/// The `run_command` tool.
#[derive(Debug, Clone)]
pub struct RunCommand {
    allowed: CommandAllowList,
}

impl RunCommand {
    /// With this allow-list.
    pub fn new(allowed: CommandAllowList) -> Self {
        Self { allowed }
    }
}

#[async_trait]
impl Tool for RunCommand {
    fn definition(&self) -> ToolDefinition {
        let list: Vec<&str> = self.allowed.programs().collect();
        ToolDefinition::new(
            "run_command",
            &format!(
                "Run a program in the workspace root, without a shell (no pipes, globs or \
                 redirection). Allowed programs: {}. Paths in args must stay inside the workspace.",
                list.join(", ")
            ),
            json!({
                "type": "object",
                "properties": {
                    "program": {"type": "string", "enum": list},
                    "args": {"type": "array", "items": {"type": "string"}}
                },
                "required": ["program"]
            }),
        )
    }

    async fn call(&self, ctx: &ToolContext, input: &Value) -> Result<String, ToolError> {
        let program = required_str(input, "program")?;
        if program.contains(['/', '\\']) || !self.allowed.allows(program) {
            return Err(ToolError::NotAllowed {
                what: format!("the command {:?}", crate::error::cut(program, 80)),
            });
        }
        let args = string_list(input, "args")?;
        for a in &args {
            check_arg(&ctx.workspace, a)?;
        }
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(&args);
        let out = run_process(cmd, &ctx.workspace, &[]).await?;
        Ok(out.render())
    }
}

/// A list of strings field.
pub(crate) fn string_list(input: &Value, name: &str) -> Result<Vec<String>, ToolError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| ToolError::InvalidInput {
                        reason: format!("{name} must be a list of strings"),
                    })
            })
            .collect(),
        Some(_) => Err(ToolError::InvalidInput {
            reason: format!("{name} must be a list of strings"),
        }),
    }
}

/// An argument may not name a path outside the workspace: absolute paths,
/// `..`, `~` and NUL are refused, also after an `=` (`--file=/etc/x`); an
/// argument naming something that exists is resolved and must stay inside
/// (a symlink out is refused).
fn check_arg(ws: &Workspace, arg: &str) -> Result<(), ToolError> {
    let value = arg.split_once('=').map_or(arg, |(_, v)| v);
    for candidate in [arg, value] {
        if candidate.is_empty() || candidate.starts_with('-') && candidate == arg {
            continue;
        }
        let suspicious = candidate.starts_with(['/', '\\', '~'])
            || candidate.contains('\0')
            || candidate.split(['/', '\\']).any(|part| part == "..");
        if suspicious {
            return Err(ToolError::OutsideWorkspace {
                path: crate::error::cut(candidate, 120),
            });
        }
        if std::fs::symlink_metadata(ws.root().join(candidate)).is_ok() {
            ws.resolve(candidate)?;
        }
    }
    Ok(())
}

/// What a finished process printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcessOutput {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl ProcessOutput {
    pub(crate) fn render(&self) -> String {
        let mut s = format!(
            "exit code: {}\n",
            self.code
                .map_or("killed by a signal".into(), |c| c.to_string())
        );
        if !self.stdout.is_empty() {
            s.push_str("stdout:\n");
            s.push_str(&self.stdout);
            if !self.stdout.ends_with('\n') {
                s.push('\n');
            }
        }
        if !self.stderr.is_empty() {
            s.push_str("stderr:\n");
            s.push_str(&self.stderr);
        }
        s
    }
}

/// Runs `cmd` in the workspace root with a cleared environment (only `PATH`
/// and a neutral locale kept, `HOME` set to the root), stdin closed. Killed
/// and refused when it prints more than the output cap, killed and reported
/// when it runs over the timeout. On Unix it leads a process group of its
/// own, and "killed" means the whole group (a grandchild it left running in
/// the background too), also when the call is dropped (the task's wall time
/// ran out).
pub(crate) async fn run_process(
    mut cmd: tokio::process::Command,
    ws: &Workspace,
    env: &[(&str, std::ffi::OsString)],
) -> Result<ProcessOutput, ToolError> {
    let limits = *ws.limits();
    let cap = limits.max_output_bytes;
    cmd.current_dir(ws.root())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LANG", "C.UTF-8")
        .env("HOME", ws.root())
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd.spawn().map_err(|e| ToolError::Failed {
        message: format!("cannot start: {e}"),
    })?;
    // Declared after `child`, so dropped before it: the group is killed
    // while the child, its leader, is not yet reaped (its id still names
    // this group and no other).
    let mut group = ProcessGroup::of(&child);
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let timeout = limits.command_timeout;
    let started = tokio::time::Instant::now();
    let reads = async { tokio::join!(read_capped(stdout, cap), read_capped(stderr, cap)) };
    let Ok((out, err)) = tokio::time::timeout(timeout, reads).await else {
        group.kill();
        let _ = child.kill().await;
        return Err(ToolError::Timeout { after: timeout });
    };
    if out.len().saturating_add(err.len()) > cap {
        group.kill();
        let _ = child.kill().await;
        return Err(ToolError::OutputTooLarge { cap });
    }
    let left = timeout.saturating_sub(started.elapsed());
    let status = match tokio::time::timeout(left, child.wait()).await {
        Ok(Ok(s)) => {
            // Reaped: its id may name another group from now on.
            group.forget();
            s
        }
        Ok(Err(e)) => {
            return Err(ToolError::Failed {
                message: e.to_string(),
            });
        }
        Err(_) => {
            group.kill();
            let _ = child.kill().await;
            return Err(ToolError::Timeout { after: timeout });
        }
    };
    Ok(ProcessOutput {
        code: status.code(),
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    })
}

/// The process group a command leads (Unix): killed with SIGKILL by
/// [`ProcessGroup::kill`] or when dropped, unless [`ProcessGroup::forget`]
/// was called once the command was reaped. Elsewhere it does nothing: the
/// command alone is killed.
struct ProcessGroup {
    #[cfg(unix)]
    leader: Option<nix::unistd::Pid>,
}

impl ProcessGroup {
    fn of(child: &tokio::process::Child) -> Self {
        #[cfg(unix)]
        {
            Self {
                leader: child
                    .id()
                    .and_then(|id| i32::try_from(id).ok())
                    .map(nix::unistd::Pid::from_raw),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = child;
            Self {}
        }
    }

    /// Kills every process of the group (at most once).
    fn kill(&mut self) {
        #[cfg(unix)]
        if let Some(pgid) = self.leader.take() {
            // ESRCH (nothing left in the group) is the expected outcome
            // when every process has exited already.
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
        }
    }

    /// The leader was reaped: nothing to kill from now on.
    fn forget(&mut self) {
        #[cfg(unix)]
        {
            self.leader = None;
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads until EOF or until more than `cap` bytes came (then stops reading).
async fn read_capped<R: AsyncRead + Unpin>(pipe: Option<R>, cap: usize) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(p) = pipe {
        let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
        let _ = p.take(limit).read_to_end(&mut buf).await;
    }
    buf
}
