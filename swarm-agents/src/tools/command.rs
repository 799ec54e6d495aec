//! `run_command`: a program from an allow-list, run directly (no shell) in
//! the workspace, **confined by the kernel** ([`crate::sandbox`]): it reads
//! the workspace and the system folders programs need, writes only a write
//! task's scratch copy and its private `/tmp`, has no network and no view of
//! other processes, and everything it starts ends with it. Its environment
//! is scrubbed (`PATH` without `$HOME` entries, `LANG`, `HOME` = the
//! workspace, `TMPDIR`). A timeout kills it, an output over the cap is
//! refused. Arguments are not checked: the kernel, not the list, keeps a
//! program inside, so `sort -o /elsewhere`, `--compress-program=sh` or
//! `--files0-from=/proc/…` reach nothing outside.

use std::collections::BTreeSet;
use std::process::Stdio;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{Tool, ToolContext, ToolDefinition, ToolError, Workspace, required_str};
use crate::sandbox::toolchain::{self, Grants};
use crate::sandbox::{EXEC_FAILED, LAUNCHER_PREFIX, LaunchSpec, SETUP_FAILED, scrubbed_path};

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

    /// The default list and `more` (bare program names; a name with a path
    /// separator is refused).
    pub fn default_and<I, S>(more: I) -> Result<Self, String>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut list = Self::default();
        for p in more {
            let p: String = p.into();
            let p = p.trim().to_owned();
            if p.is_empty() {
                continue;
            }
            if p.contains(['/', '\\']) || p.starts_with('-') {
                return Err(format!("{p:?} is not a bare program name"));
            }
            list.programs.insert(p);
        }
        Ok(list)
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
                 redirection). Allowed programs: {}. It runs confined: it reads the workspace \
                 (writes only on a write task), has a private /tmp, no network, and whatever it \
                 starts ends with it.",
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
        let grants = toolchain::resolve(program).map_err(|e| ToolError::NotAllowed {
            what: format!("the command {program:?}: {e}"),
        })?;
        let out = run_process(&ctx.workspace, &grants, &args, &[]).await?;
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

/// The launch spec of `grants.program` with `args` in the workspace root.
pub(crate) fn spec(
    ws: &Workspace,
    grants: &Grants,
    args: &[String],
    env: &[(&str, String)],
) -> LaunchSpec {
    let sandbox = ws.sandbox();
    let root = ws.root().to_path_buf();
    let mut full_env: Vec<(String, String)> = vec![
        ("PATH".into(), scrubbed_path(&grants.path)),
        ("LANG".into(), "C.UTF-8".into()),
        ("LC_ALL".into(), "C.UTF-8".into()),
        ("HOME".into(), root.display().to_string()),
        ("TMPDIR".into(), "/tmp".into()),
    ];
    full_env.extend(grants.env.iter().cloned());
    full_env.extend(env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let mut read_exec = sandbox.system_read_exec();
    read_exec.extend(grants.read_exec.iter().cloned());
    let mut read: Vec<std::path::PathBuf> = grants.read.clone();
    read.extend(ws.extra_read().iter().cloned());
    let mut write = Vec::new();
    if ws.is_scratch() {
        write.push(root.clone());
    } else {
        read.push(root.clone());
    }
    let timeout = ws.limits().command_timeout;
    let mut spec = LaunchSpec {
        program: grants.program.clone(),
        args: args.to_vec(),
        cwd: root,
        env: full_env,
        read_exec,
        read,
        write,
        limits: *sandbox.sandbox_limits(),
        // A little after the worker's own timeout: the worker reports it;
        // the launcher's deadline holds even if the worker is gone.
        timeout_ms: u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(2_000),
        probe: false,
        simulate: sandbox.simulated().map(str::to_owned),
    };
    // Temporary paths (TMPDIR, a toolchain's /tmp/…) name the writable one.
    let tmp = spec.tmp_dir();
    if tmp != std::path::Path::new("/tmp") {
        for (_, v) in &mut spec.env {
            if v == "/tmp" || v.starts_with("/tmp/") {
                *v = format!("{}{}", tmp.display(), &v[4..]);
            }
        }
    }
    spec
}

/// Runs `grants.program` with `args` in the workspace root, confined by
/// the workspace's sandbox (refused when it cannot confine), stdin closed.
/// Killed and refused when it prints more than the output cap, killed and
/// reported when it runs over the timeout. On Unix the launcher leads a
/// process group of its own, and "killed" means the whole group (also when
/// the call is dropped); the command's PID namespace dies with it.
pub(crate) async fn run_process(
    ws: &Workspace,
    grants: &Grants,
    args: &[String],
    env: &[(&str, String)],
) -> Result<ProcessOutput, ToolError> {
    let status = ws.sandbox().probe().await;
    if let crate::sandbox::SandboxStatus::Unavailable { reason } = status {
        return Err(ToolError::SandboxUnavailable {
            reason: reason.clone(),
        });
    }
    let spec = spec(ws, grants, args, env);
    let mut cmd = ws
        .sandbox()
        .command(&spec)
        .map_err(|reason| ToolError::SandboxUnavailable { reason })?;
    let limits = *ws.limits();
    let cap = limits.max_output_bytes;
    cmd.current_dir(ws.root())
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
    let stderr = String::from_utf8_lossy(&err).into_owned();
    let launcher_says = |what: &str| {
        stderr
            .lines()
            .filter_map(|l| l.strip_prefix(LAUNCHER_PREFIX))
            .find_map(|l| l.strip_prefix(what).map(str::to_owned))
    };
    match status.code() {
        Some(SETUP_FAILED) => {
            if let Some(reason) = launcher_says("sandbox setup failed: ") {
                return Err(ToolError::SandboxUnavailable { reason });
            }
        }
        Some(EXEC_FAILED) => {
            if let Some(message) = launcher_says("cannot start ") {
                return Err(ToolError::Failed {
                    message: format!("cannot start {message}"),
                });
            }
        }
        _ => {}
    }
    Ok(ProcessOutput {
        code: status.code(),
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr,
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
