//! The launcher's two stages on Linux (see the module above for the whole
//! picture). Every step is a safe wrapper of a crate made for it: nix
//! (namespaces, mounts, signals), rustix (capabilities, rlimits, the
//! parent-death signal, pidfds, poll), landlock, seccompiler.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, LandlockStatus, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
};
use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, SeccompRule, TargetArch};

use super::{EXEC_FAILED, LAUNCH_ARG, LAUNCHER_PREFIX, LaunchSpec, SETUP_FAILED};

/// Runs the stage named by `args[0]` with the spec in `args[1]`.
pub(super) fn launch(args: &[OsString]) -> i32 {
    let (Some(stage), Some(spec)) = (args.first(), args.get(1)) else {
        return setup_failed("the launcher needs a stage and a spec");
    };
    let spec_json = spec.to_string_lossy().into_owned();
    let spec: LaunchSpec = match serde_json::from_str(&spec_json) {
        Ok(s) => s,
        Err(e) => return setup_failed(&format!("bad launch spec: {e}")),
    };
    match stage.to_str() {
        Some("outer") => outer(&spec, &spec_json),
        Some("inner") => inner(&spec),
        _ => setup_failed("unknown launcher stage"),
    }
}

fn say(line: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{LAUNCHER_PREFIX}{line}");
}

fn setup_failed(reason: &str) -> i32 {
    say(&format!("sandbox setup failed: {reason}"));
    SETUP_FAILED
}

/// Stage one, in the worker's PID namespace: new namespaces, the id maps,
/// then stage two as the first process of the new PID namespace; kills it
/// (and so the whole namespace) at the deadline.
fn outer(spec: &LaunchSpec, spec_json: &str) -> i32 {
    if spec.simulate.as_deref() == Some("no-userns") {
        return setup_failed(
            "unprivileged user namespaces are not available (simulated by SWARM_SANDBOX_SIMULATE)",
        );
    }
    let uid = nix::unistd::geteuid();
    let gid = nix::unistd::getegid();
    let flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS;
    if let Err(e) = unshare(flags) {
        return setup_failed(&format!(
            "cannot create user, mount, PID and network namespaces ({e}); unprivileged user \
             namespaces may be off (sysctl user.max_user_namespaces, \
             kernel.unprivileged_userns_clone, or an AppArmor restriction)"
        ));
    }
    // Inside, the command is uid/gid 0 of its own namespace, mapped to the
    // worker's ids: files it writes belong to the worker. It gains nothing
    // outside (and its capabilities are dropped before it starts).
    for (file, text) in [
        ("/proc/self/setgroups", "deny".to_owned()),
        ("/proc/self/uid_map", format!("0 {uid} 1")),
        ("/proc/self/gid_map", format!("0 {gid} 1")),
    ] {
        if let Err(e) = std::fs::write(file, text) {
            return setup_failed(&format!("cannot write {file}: {e}"));
        }
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => return setup_failed(&format!("no path for the launcher: {e}")),
    };
    // Stage two's stdin is a pipe whose write end only this process holds:
    // stage two sees it hang up if this process is gone before it set its
    // parent-death signal.
    let mut child = match Command::new(exe)
        .arg(LAUNCH_ARG)
        .arg("inner")
        .arg(spec_json)
        .env_clear()
        .stdin(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return setup_failed(&format!("cannot start the second stage: {e}")),
    };
    let deadline = std::time::Duration::from_millis(spec.timeout_ms.max(1));
    let timed_out = match wait_deadline(&child, deadline) {
        Ok(t) => t,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return setup_failed(&format!("cannot wait for the command: {e}"));
        }
    };
    if timed_out {
        // SIGKILL to the namespace's first process: the kernel kills every
        // other process of the namespace with it.
        let _ = child.kill();
        let _ = child.wait();
        say(&format!(
            "killed after {} ms: over the time limit",
            spec.timeout_ms
        ));
        return 128 + 9;
    }
    match child.wait() {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        Err(e) => setup_failed(&format!("cannot wait for the command: {e}")),
    }
}

/// Waits until `child` exits (false) or `deadline` passes (true), on a
/// pidfd, without reaping it.
fn wait_deadline(
    child: &std::process::Child,
    deadline: std::time::Duration,
) -> std::io::Result<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| std::io::Error::other("bad pid"))?;
    let fd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())?;
    let started = std::time::Instant::now();
    loop {
        let left = deadline.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Ok(true);
        }
        let ts = Timespec {
            tv_sec: i64::try_from(left.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(0) => return Ok(true),
            Ok(_) => return Ok(false),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Stage two, process 1 of the new PID namespace: mounts, limits,
/// capabilities, Landlock, seccomp; then the command, waited for.
fn inner(spec: &LaunchSpec) -> i32 {
    if let Err(e) =
        rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
    {
        return setup_failed(&format!("cannot set the parent-death signal: {e}"));
    }
    if parent_gone() {
        return setup_failed("the first stage is gone");
    }
    let mounted = match setup_mounts(spec) {
        Ok(m) => m,
        Err(e) => return setup_failed(&e),
    };
    let own_proc = mounted.own_proc;
    let devnull = match std::fs::File::open("/dev/null") {
        Ok(f) => f,
        Err(e) => return setup_failed(&format!("cannot open /dev/null: {e}")),
    };
    if let Err(e) = set_limits(spec) {
        return setup_failed(&e);
    }
    if let Err(e) = drop_capabilities() {
        return setup_failed(&e);
    }
    let abi = match restrict_files(spec, &mounted) {
        Ok(abi) => abi,
        Err(e) => return setup_failed(&e),
    };
    if let Err(e) = restrict_syscalls() {
        return setup_failed(&e);
    }
    if spec.probe {
        return match self_test() {
            Ok(()) => {
                say(&format!(
                    "ok landlock-abi={abi} proc={}",
                    if own_proc { "own" } else { "none" }
                ));
                0
            }
            Err(e) => setup_failed(&e),
        };
    }
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .envs(mounted.tmp.iter().map(|t| ("TMPDIR", t)))
        .current_dir(&spec.cwd)
        .stdin(devnull);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            say(&format!("cannot start {}: {e}", spec.program.display()));
            return EXEC_FAILED;
        }
    };
    match child.wait() {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(c), _) => c,
            (None, Some(sig)) => {
                let name = nix::sys::signal::Signal::try_from(sig)
                    .map(|s| s.as_str())
                    .unwrap_or("?");
                let why = match name {
                    "SIGXCPU" => " (the CPU-time limit)",
                    "SIGXFSZ" => " (the file-size limit)",
                    _ => "",
                };
                say(&format!("the command was killed by {name}{why}"));
                128 + sig
            }
            (None, None) => 128,
        },
        Err(e) => setup_failed(&format!("cannot wait for the command: {e}")),
    }
}

/// Whether stage one's end of the stdin pipe is closed (stage one died).
fn parent_gone() -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match poll(&mut fds, Some(&zero)) {
        Ok(0) => false,
        Ok(_) => fds[0].revents().contains(PollFlags::HUP),
        Err(_) => true,
    }
}

/// What the mounts gave the command.
struct Mounted {
    /// A `/proc` of this PID namespace.
    own_proc: bool,
    /// The writable temporary folder: the private `/tmp`.
    tmp: Option<PathBuf>,
}

/// Makes the bind mount at `p` read-only, keeping the flags the kernel
/// locks on mounts inherited into a user namespace (nosuid, nodev, noexec,
/// the atime mode): a remount that dropped one is refused.
fn remount_read_only(p: &Path) -> Result<(), String> {
    use nix::sys::statvfs::{FsFlags, statvfs};
    let have = statvfs(p)
        .map_err(|e| format!("cannot read the mount flags of {}: {e}", p.display()))?
        .flags();
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if have.contains(fs) {
            flags |= ms;
        }
    }
    mount(None::<&str>, p, None::<&str>, flags, None::<&str>).map_err(|e| {
        format!(
            "cannot make {} read-only in the private /tmp: {e}",
            p.display()
        )
    })
}

/// Nothing propagates to the host; a `/proc` of this PID namespace (when
/// the kernel allows it); a private, size-limited `/tmp`.
fn setup_mounts(spec: &LaunchSpec) -> Result<Mounted, String> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("cannot make the mounts private: {e}"))?;
    let own_proc = mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .is_ok();
    let mut tmp = None;
    if Path::new("/tmp").is_dir() {
        // What the command needs under /tmp (a workspace made there, a
        // launcher built there) is held open first and bound back into the
        // new /tmp afterwards: read-only unless the task may write it, so
        // the whole private /tmp can be writable (programs write to /tmp
        // itself) without the write rule on /tmp reaching those paths.
        let writable = |p: &Path| spec.write.iter().any(|w| p.starts_with(w));
        let mut needed: Vec<&PathBuf> = spec
            .write
            .iter()
            .chain(&spec.read)
            .chain(&spec.read_exec)
            .chain(std::iter::once(&spec.cwd))
            .filter(|p| p.starts_with("/tmp") && p.as_path() != Path::new("/tmp"))
            .collect();
        // Parents first: a writable path inside a read-only one is bound
        // again on top of it.
        needed.sort();
        needed.dedup();
        let mut kept: Vec<(&PathBuf, OwnedFd, bool, bool)> = Vec::new();
        for p in needed {
            let rw = writable(p);
            if kept
                .iter()
                .any(|(q, _, _, q_rw)| p.starts_with(q) && *q_rw == rw)
            {
                continue;
            }
            let Ok(fd) = nix::fcntl::open(
                p.as_path(),
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            ) else {
                continue;
            };
            kept.push((p, fd, p.is_dir(), rw));
        }
        let opts = format!("size={},mode=1777", spec.limits.tmp_bytes.max(4096));
        mount(
            Some("tmpfs"),
            "/tmp",
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
            Some(opts.as_str()),
        )
        .map_err(|e| format!("cannot mount a private /tmp: {e}"))?;
        for (p, fd, is_dir, rw) in &kept {
            // A mount point inside an earlier bind already exists (it is the
            // real file): never create, let alone truncate, it.
            if !p.exists() {
                let made = if *is_dir {
                    std::fs::create_dir_all(p)
                } else {
                    p.parent()
                        .map_or(Ok(()), std::fs::create_dir_all)
                        .and_then(|()| std::fs::write(p, b""))
                };
                made.map_err(|e| format!("cannot make {} in the private /tmp: {e}", p.display()))?;
            }
            let source = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd));
            mount(
                Some(source.as_str()),
                p.as_path(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| format!("cannot bind {} into the private /tmp: {e}", p.display()))?;
            if !*rw {
                remount_read_only(p)?;
            }
        }
        tmp = Some(PathBuf::from("/tmp"));
    }
    Ok(Mounted { own_proc, tmp })
}

fn set_limits(spec: &LaunchSpec) -> Result<(), String> {
    use rustix::process::{Resource, Rlimit, setrlimit};
    let l = &spec.limits;
    let soft_hard = |v: u64| Rlimit {
        current: Some(v),
        maximum: Some(v),
    };
    for (res, lim, what) in [
        (
            Resource::Cpu,
            Rlimit {
                current: Some(l.cpu_seconds.max(1)),
                maximum: Some(l.cpu_seconds.max(1).saturating_add(1)),
            },
            "CPU time",
        ),
        (Resource::As, soft_hard(l.memory_bytes), "address space"),
        (Resource::Fsize, soft_hard(l.file_bytes), "file size"),
        (Resource::Nproc, soft_hard(l.processes.max(2)), "processes"),
        (
            Resource::Nofile,
            soft_hard(l.open_files.max(16)),
            "open files",
        ),
        (Resource::Core, soft_hard(0), "core files"),
    ] {
        setrlimit(res, lim).map_err(|e| format!("cannot limit {what}: {e}"))?;
    }
    Ok(())
}

fn drop_capabilities() -> Result<(), String> {
    use rustix::thread::{CapabilitySet, CapabilitySets, set_capabilities};
    set_capabilities(
        None,
        CapabilitySets {
            effective: CapabilitySet::empty(),
            permitted: CapabilitySet::empty(),
            inheritable: CapabilitySet::empty(),
        },
    )
    .map_err(|e| format!("cannot drop capabilities: {e}"))
}

/// The devices every command may use.
const DEVICES_RW: &[&str] = &["/dev/null", "/dev/zero", "/dev/full"];
const DEVICES_R: &[&str] = &["/dev/random", "/dev/urandom"];

/// Applies the Landlock ruleset; returns the ABI the kernel enforces.
/// Reading, writing, executing, renaming across folders and truncating
/// (ABI 3) are a hard requirement; newer rights (device ioctls, TCP,
/// scopes, Unix socket paths) are added where the kernel has them.
fn restrict_files(spec: &LaunchSpec, mounted: &Mounted) -> Result<u32, String> {
    if spec.simulate.as_deref() == Some("no-landlock") {
        return Err(
            "Landlock is not enforced by this kernel (simulated by SWARM_SANDBOX_SIMULATE)".into(),
        );
    }
    let err =
        |e: landlock::RulesetError| format!("Landlock (ABI 3 or later is needed: Linux 6.2): {e}");
    let newest = ABI::V10;
    let all = AccessFs::from_all(newest);
    let read = AccessFs::from_read(newest) & !AccessFs::Execute;
    let read_exec = AccessFs::from_read(newest);
    let mut rw_paths: Vec<PathBuf> = spec.write.clone();
    rw_paths.extend(DEVICES_RW.iter().map(PathBuf::from));
    rw_paths.extend(mounted.tmp.clone());
    let mut r_paths: Vec<PathBuf> = spec.read.clone();
    r_paths.extend(DEVICES_R.iter().map(PathBuf::from));
    if mounted.own_proc {
        r_paths.push(PathBuf::from("/proc"));
    }
    let ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(ABI::V3))
        .map_err(err)?
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(all)
        .map_err(err)?
        .handle_access(AccessNet::from_all(newest))
        .map_err(err)?
        .scope(Scope::from_all(newest))
        .map_err(err)?
        .create()
        .map_err(err)?
        .add_rules(path_beneath_rules(&spec.read_exec, read_exec))
        .map_err(err)?
        .add_rules(path_beneath_rules(&r_paths, read))
        .map_err(err)?
        .add_rules(path_beneath_rules(&rw_paths, all))
        .map_err(err)?;
    let status = ruleset.restrict_self().map_err(err)?;
    let abi = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => effective_abi as u32,
        LandlockStatus::NotEnabled => {
            return Err(
                "Landlock is built into this kernel but not enabled (add landlock to lsm= at boot)"
                    .into(),
            );
        }
        LandlockStatus::NotImplemented => {
            return Err("this kernel has no Landlock (Linux 6.2 or later with \
                 CONFIG_SECURITY_LANDLOCK is needed)"
                .into());
        }
    };
    match status.ruleset {
        RulesetStatus::FullyEnforced | RulesetStatus::PartiallyEnforced => Ok(abi),
        RulesetStatus::NotEnforced => Err("Landlock is not enforced by this kernel".into()),
    }
}

/// System calls refused with EPERM: every new socket (TCP, UDP, Unix,
/// netlink, raw), io_uring (it could open sockets past the filter), process
/// tracing and memory access, mounts and namespace changes, kernel keyrings,
/// BPF, perf events, userfaultfd and handle-based opens.
fn denied_syscalls() -> Vec<i64> {
    let list = [
        libc::SYS_socket,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_mount_setattr,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_kexec_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
    ];
    #[allow(clippy::useless_conversion)] // the type of SYS_* differs by target
    let mut out: Vec<i64> = list.iter().map(|n| i64::from(*n)).collect();
    // The x32 ABI numbers the same calls with bit 30 set: refused too.
    if cfg!(target_arch = "x86_64") {
        let x32: Vec<i64> = out.iter().map(|n| n | 0x4000_0000).collect();
        out.extend(x32);
    }
    out
}

fn restrict_syscalls() -> Result<(), String> {
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| format!("no seccomp filter for this architecture: {e}"))?;
    let rules: BTreeMap<i64, Vec<SeccompRule>> = denied_syscalls()
        .into_iter()
        .map(|n| (n, Vec::new()))
        .collect();
    let errno = u32::try_from(libc::EPERM).unwrap_or(1);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(errno),
        arch,
    )
    .map_err(|e| format!("seccomp filter: {e}"))?;
    let program: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| format!("seccomp filter: {e}"))?;
    seccompiler::apply_filter(&program).map_err(|e| format!("cannot apply the seccomp filter: {e}"))
}

/// After confinement: the root folder is unreadable and no TCP or UDP
/// socket can be made. Any success is a failed probe.
fn self_test() -> Result<(), String> {
    if std::fs::read_dir("/").is_ok() {
        return Err("the probe could list / after Landlock was applied".into());
    }
    if std::net::TcpListener::bind("127.0.0.1:0").is_ok() {
        return Err("the probe could open a TCP socket after seccomp was applied".into());
    }
    if std::net::UdpSocket::bind("127.0.0.1:0").is_ok() {
        return Err("the probe could open a UDP socket after seccomp was applied".into());
    }
    Ok(())
}
