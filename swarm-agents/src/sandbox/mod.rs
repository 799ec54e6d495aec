//! The worker sandbox: every program a tool starts (`run_command`, `git`)
//! runs confined by the kernel, not by checks of its arguments.
//!
//! A command is started through a small **launcher**, a second copy of a
//! program that calls [`launcher_hook`] first thing in `main` (the `swarm`
//! binary does; this crate also ships the `swarm-sandbox` binary, which
//! does nothing else). In its own process the launcher
//!
//! 1. unshares user, mount, PID, network, IPC and UTS namespaces and maps
//!    the worker's uid and gid (no privilege is needed or gained);
//! 2. starts its second stage, the first process of the new PID namespace,
//!    which mounts a fresh `/proc` (this namespace's processes only) and a
//!    private `/tmp` (a size-limited tmpfs), sets resource limits (CPU time,
//!    address space, file size, processes, open files), drops every
//!    capability, applies a Landlock ruleset (read and execute on the system
//!    folders programs need, read on the workspace, write only where the
//!    task may write) and a seccomp filter (no `socket`, no `io_uring`, no
//!    `ptrace`, no mounts or namespace changes, no kernel keyrings), then
//!    starts the command with a scrubbed environment;
//! 3. waits for the command and exits with its status: the PID namespace
//!    ends with its first process, so everything the command left behind
//!    (double forks, `setsid`) is killed by the kernel.
//!
//! The network namespace has only a loopback device that is down, and the
//! seccomp filter refuses every `socket` call, so TCP, UDP and Unix
//! sockets are all out of reach. Landlock's own TCP rules and its scopes
//! (abstract Unix sockets, signals) are applied too where the kernel has
//! them.
//!
//! Where the kernel cannot enforce this (no Landlock with at least ABI 3,
//! user namespaces refused, another OS, no launcher), [`Sandbox::probe`]
//! says why and every command is refused with that reason: nothing ever
//! runs unconfined.
//!
//! - [`Sandbox`]: the launcher, the limits and the extra paths; probed once.
//! - [`toolchain`]: read/execute grants for toolchains under `$HOME`
//!   (rustup, pyenv), never their credentials.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

#[cfg(target_os = "linux")]
mod linux;
pub mod toolchain;

/// The first argument that makes a program the launcher (see
/// [`launcher_hook`]).
pub const LAUNCH_ARG: &str = "__swarm-sandbox-launch";

/// The environment variable that makes the sandbox behave as if the kernel
/// could not enforce it: `no-landlock` or `no-userns`. It can only turn
/// commands off (they are then refused), never run one with less
/// confinement; tests and `swarm worker run` use it to show the refusal.
pub const SIMULATE_ENV: &str = "SWARM_SANDBOX_SIMULATE";

/// The prefix of every line the launcher itself prints on stderr.
pub(crate) const LAUNCHER_PREFIX: &str = "swarm-sandbox: ";

/// The exit status of a launcher that could not confine the command (the
/// command never started).
pub(crate) const SETUP_FAILED: i32 = 125;

/// The exit status of a launcher that could not start the program.
pub(crate) const EXEC_FAILED: i32 = 127;

static HOOKED: AtomicBool = AtomicBool::new(false);

/// Makes this program a sandbox launcher. Call it first thing in `main`,
/// before any thread is started (a tokio runtime included): when the
/// program was started as a launcher (its first argument is
/// [`LAUNCH_ARG`]) it confines and runs the command and exits with its
/// status; otherwise it returns at once and [`Sandbox::new`] will use this
/// program as the launcher.
pub fn launcher_hook() {
    let mut args = std::env::args_os().skip(1);
    if args.next().as_deref() == Some(std::ffi::OsStr::new(LAUNCH_ARG)) {
        let rest: Vec<OsString> = args.collect();
        std::process::exit(launch(&rest));
    }
    HOOKED.store(true, Ordering::SeqCst);
}

#[cfg(target_os = "linux")]
fn launch(args: &[OsString]) -> i32 {
    linux::launch(args)
}

#[cfg(not(target_os = "linux"))]
fn launch(_args: &[OsString]) -> i32 {
    eprintln!("{LAUNCHER_PREFIX}sandbox setup failed: commands are confined only on Linux");
    SETUP_FAILED
}

/// Resource limits of one confined command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SandboxLimits {
    /// CPU seconds (`RLIMIT_CPU`; the command gets SIGXCPU, then SIGKILL).
    pub cpu_seconds: u64,
    /// Address space in bytes (`RLIMIT_AS`).
    pub memory_bytes: u64,
    /// Largest file the command may write, in bytes (`RLIMIT_FSIZE`).
    pub file_bytes: u64,
    /// Processes and threads of the command together (`RLIMIT_NPROC`,
    /// counted in the command's own user namespace).
    pub processes: u64,
    /// Open files per process (`RLIMIT_NOFILE`).
    pub open_files: u64,
    /// Size of the command's private `/tmp` (a tmpfs), in bytes.
    pub tmp_bytes: u64,
}

impl Default for SandboxLimits {
    /// 60 CPU seconds, 4 GiB of address space, 64 MiB files, 256
    /// processes, 1,024 open files, a 512 MiB `/tmp`.
    fn default() -> Self {
        Self {
            cpu_seconds: 60,
            memory_bytes: 4 << 30,
            file_bytes: 64 << 20,
            processes: 256,
            open_files: 1024,
            tmp_bytes: 512 << 20,
        }
    }
}

impl SandboxLimits {
    /// Sets the CPU-time limit.
    pub fn cpu_seconds(mut self, s: u64) -> Self {
        self.cpu_seconds = s;
        self
    }

    /// Sets the address-space limit.
    pub fn memory_bytes(mut self, n: u64) -> Self {
        self.memory_bytes = n;
        self
    }

    /// Sets the file-size limit.
    pub fn file_bytes(mut self, n: u64) -> Self {
        self.file_bytes = n;
        self
    }

    /// Sets the process limit.
    pub fn processes(mut self, n: u64) -> Self {
        self.processes = n;
        self
    }
}

/// What the probe found: commands run confined, or why they cannot.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SandboxStatus {
    /// Commands run confined.
    Enforced {
        /// The Landlock ABI the kernel enforces.
        landlock_abi: u32,
        /// Whether the command sees a `/proc` of its own namespace (else
        /// `/proc` is not readable at all).
        own_proc: bool,
    },
    /// Commands are refused; the reason says what the kernel lacks.
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl SandboxStatus {
    /// Whether commands can run.
    pub fn is_enforced(&self) -> bool {
        matches!(self, SandboxStatus::Enforced { .. })
    }
}

impl std::fmt::Display for SandboxStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SandboxStatus::Enforced {
                landlock_abi,
                own_proc,
            } => write!(
                f,
                "commands confined (namespaces, Landlock ABI {landlock_abi}, seccomp, rlimits{})",
                if *own_proc {
                    ", own /proc"
                } else {
                    ", no /proc"
                }
            ),
            SandboxStatus::Unavailable { reason } => write!(f, "commands are off: {reason}"),
        }
    }
}

/// Where one command may read, execute and write, and what it runs. Built
/// by the tools; the launcher receives it as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LaunchSpec {
    /// The program, an absolute path.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// The folder it starts in.
    pub cwd: PathBuf,
    /// Its whole environment.
    pub env: Vec<(String, String)>,
    /// Read and execute, recursively.
    pub read_exec: Vec<PathBuf>,
    /// Read only, recursively.
    pub read: Vec<PathBuf>,
    /// Read, write, create and remove, recursively.
    pub write: Vec<PathBuf>,
    /// The limits.
    pub limits: SandboxLimits,
    /// Wall time in milliseconds after which the launcher kills everything.
    pub timeout_ms: u64,
    /// Only check that confinement works (nothing is started).
    pub probe: bool,
    /// Behave as if the kernel lacked this (see [`SIMULATE_ENV`]).
    pub simulate: Option<String>,
}

impl LaunchSpec {
    /// The command's writable temporary folder: its private `/tmp` (paths
    /// granted under the host's `/tmp` are bound into it read-only unless
    /// the task may write them).
    pub fn tmp_dir(&self) -> PathBuf {
        PathBuf::from("/tmp")
    }
}

/// The system folders every command may read and execute: programs, their
/// libraries and the dynamic loader's configuration. Never `/etc/passwd`,
/// `/home`, `/root`, `/proc` of other processes or the user's projects.
pub const SYSTEM_READ_EXEC: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
];

/// The sandbox of a worker's commands.
#[derive(Debug)]
pub struct Sandbox {
    launcher: Result<PathBuf, String>,
    limits: SandboxLimits,
    read_exec: Vec<PathBuf>,
    simulate: Option<String>,
    status: tokio::sync::OnceCell<SandboxStatus>,
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Sandbox {
    /// The sandbox with the default launcher: this program when it called
    /// [`launcher_hook`], else a `swarm-sandbox` binary next to it (or one
    /// folder up, as for a test binary under `target/*/deps`). Reads
    /// [`SIMULATE_ENV`].
    pub fn new() -> Self {
        let launcher = default_launcher();
        Self::with_launcher_result(launcher)
    }

    /// The sandbox with this launcher (a program that calls
    /// [`launcher_hook`]: `swarm`, or `swarm-sandbox`).
    pub fn with_launcher(path: impl Into<PathBuf>) -> Self {
        Self::with_launcher_result(Ok(path.into()))
    }

    /// A sandbox that refuses every command with `reason`.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self::with_launcher_result(Err(reason.into()))
    }

    fn with_launcher_result(launcher: Result<PathBuf, String>) -> Self {
        Self {
            launcher,
            limits: SandboxLimits::default(),
            read_exec: Vec::new(),
            simulate: std::env::var(SIMULATE_ENV).ok().filter(|s| !s.is_empty()),
            status: tokio::sync::OnceCell::new(),
        }
    }

    /// Sets the limits of every command.
    pub fn limits(mut self, limits: SandboxLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Lets every command read and execute `path` (a toolchain outside the
    /// system folders; see [`toolchain`] for those under `$HOME`).
    pub fn allow_read_exec(mut self, path: impl Into<PathBuf>) -> Self {
        self.read_exec.push(path.into());
        self
    }

    /// Behaves as if the kernel lacked `what` (`no-landlock`, `no-userns`):
    /// every command is then refused.
    pub fn simulate_unsupported(mut self, what: impl Into<String>) -> Self {
        self.simulate = Some(what.into());
        self
    }

    /// The limits.
    pub fn sandbox_limits(&self) -> &SandboxLimits {
        &self.limits
    }

    /// The extra read/execute paths.
    pub fn extra_read_exec(&self) -> &[PathBuf] {
        &self.read_exec
    }

    /// The launcher, or why there is none.
    pub fn launcher(&self) -> Result<&Path, &str> {
        match &self.launcher {
            Ok(p) => Ok(p),
            Err(e) => Err(e),
        }
    }

    /// Checks once (a launcher run that confines itself and tests the
    /// confinement: a folder outside its rules unreadable, a TCP and a UDP
    /// socket refused) whether commands can run here, and why not.
    pub async fn probe(&self) -> &SandboxStatus {
        self.status.get_or_init(|| self.run_probe()).await
    }

    async fn run_probe(&self) -> SandboxStatus {
        let launcher = match &self.launcher {
            Ok(p) => p.clone(),
            Err(reason) => {
                return SandboxStatus::Unavailable {
                    reason: reason.clone(),
                };
            }
        };
        if !cfg!(target_os = "linux") {
            return SandboxStatus::Unavailable {
                reason: format!(
                    "commands are confined only on Linux (Landlock, namespaces, seccomp); this is {}",
                    std::env::consts::OS
                ),
            };
        }
        let spec = LaunchSpec {
            program: PathBuf::from("/bin/true"),
            args: Vec::new(),
            cwd: PathBuf::from("/"),
            env: Vec::new(),
            read_exec: self.system_read_exec(),
            read: Vec::new(),
            write: Vec::new(),
            limits: self.limits,
            timeout_ms: 10_000,
            probe: true,
            simulate: self.simulate.clone(),
        };
        let mut cmd = match self.command(&spec) {
            Ok(c) => c,
            Err(reason) => return SandboxStatus::Unavailable { reason },
        };
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let out = match tokio::time::timeout(std::time::Duration::from_secs(20), cmd.output()).await
        {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => {
                return SandboxStatus::Unavailable {
                    reason: format!("the launcher {} cannot start: {e}", launcher.display()),
                };
            }
            Err(_) => {
                return SandboxStatus::Unavailable {
                    reason: "the sandbox probe did not finish in 20 s".into(),
                };
            }
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        parse_probe(out.status.code(), &stderr)
    }

    /// The system read/execute folders and the extra ones.
    pub(crate) fn system_read_exec(&self) -> Vec<PathBuf> {
        SYSTEM_READ_EXEC
            .iter()
            .map(PathBuf::from)
            .chain(self.read_exec.iter().cloned())
            .collect()
    }

    /// The launcher command for `spec` (nothing of the worker's
    /// environment passes: the launcher starts with an empty one).
    pub(crate) fn command(&self, spec: &LaunchSpec) -> Result<tokio::process::Command, String> {
        let launcher = self.launcher.as_ref().map_err(Clone::clone)?;
        let json = serde_json::to_string(spec)
            .map_err(|e| format!("the command cannot be described to the launcher: {e}"))?;
        let mut cmd = tokio::process::Command::new(launcher);
        cmd.arg(LAUNCH_ARG).arg("outer").arg(json).env_clear();
        Ok(cmd)
    }

    /// The simulated lack, if any.
    pub(crate) fn simulated(&self) -> Option<&str> {
        self.simulate.as_deref()
    }
}

/// The probe's verdict from the launcher's exit status and stderr.
fn parse_probe(code: Option<i32>, stderr: &str) -> SandboxStatus {
    let lines: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix(LAUNCHER_PREFIX))
        .collect();
    if code == Some(0)
        && let Some(ok) = lines.iter().find_map(|l| l.strip_prefix("ok "))
    {
        let mut abi = 0;
        let mut own_proc = false;
        for word in ok.split_whitespace() {
            if let Some(v) = word.strip_prefix("landlock-abi=") {
                abi = v.parse().unwrap_or(0);
            }
            if word == "proc=own" {
                own_proc = true;
            }
        }
        return SandboxStatus::Enforced {
            landlock_abi: abi,
            own_proc,
        };
    }
    let reason = lines
        .iter()
        .map(|l| l.strip_prefix("sandbox setup failed: ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("; ");
    SandboxStatus::Unavailable {
        reason: if reason.is_empty() {
            format!(
                "the sandbox probe failed (exit {}): {}",
                code.map_or("by a signal".into(), |c| c.to_string()),
                crate::error::cut(stderr.trim(), 300)
            )
        } else {
            reason
        },
    }
}

/// This program when it called [`launcher_hook`]; else `swarm-sandbox`
/// next to it or one folder up.
fn default_launcher() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("no path for this program: {e}"))?;
    if HOOKED.load(Ordering::SeqCst) {
        return Ok(exe);
    }
    let name = format!("swarm-sandbox{}", std::env::consts::EXE_SUFFIX);
    let dir = exe.parent();
    for d in [dir, dir.and_then(Path::parent)].into_iter().flatten() {
        let candidate = d.join(&name);
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(
        "no sandbox launcher: the program did not call swarmbus_agents::sandbox::launcher_hook() \
         and no swarm-sandbox binary is next to it"
            .into(),
    )
}

/// The command's `PATH`: the worker's, without entries under `$HOME` or
/// relative ones, after `extra` (toolchain folders that were granted).
pub(crate) fn scrubbed_path(extra: &[PathBuf]) -> String {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let host = std::env::var_os("PATH").unwrap_or_default();
    let mut out: Vec<String> = extra.iter().map(|p| p.display().to_string()).collect();
    for p in std::env::split_paths(&host) {
        let under_home = home
            .as_ref()
            .is_some_and(|h| h.as_os_str().len() > 1 && p.starts_with(h));
        if p.is_absolute() && !under_home {
            let s = p.display().to_string();
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    if out.is_empty() {
        out.push("/usr/bin:/bin".into());
    }
    out.join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_verdict_is_read_from_the_launchers_lines() {
        assert_eq!(
            parse_probe(Some(0), "swarm-sandbox: ok landlock-abi=7 proc=own\n"),
            SandboxStatus::Enforced {
                landlock_abi: 7,
                own_proc: true
            }
        );
        let s = parse_probe(
            Some(125),
            "swarm-sandbox: sandbox setup failed: Landlock is not enforced\n",
        );
        assert_eq!(
            s,
            SandboxStatus::Unavailable {
                reason: "Landlock is not enforced".into()
            }
        );
        // A zero exit without the ok line is no proof of confinement.
        assert!(!parse_probe(Some(0), "").is_enforced());
    }

    #[test]
    fn home_entries_leave_the_path() {
        let p = scrubbed_path(&[PathBuf::from("/opt/tool/bin")]);
        assert!(p.starts_with("/opt/tool/bin"));
        if let Some(home) = std::env::var_os("HOME").filter(|h| h.len() > 1) {
            let home = PathBuf::from(home);
            assert!(
                p.split(':')
                    .all(|e| !Path::new(e).starts_with(&home) || e == "/opt/tool/bin"),
                "{p}"
            );
        }
    }
}
