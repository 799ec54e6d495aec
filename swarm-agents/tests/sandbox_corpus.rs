//! The hostile corpus: every program of the default allow-list, and
//! `python3 -c`, `find`, `tar`, `awk`, `sed` of an extended one, tried as an
//! attacker would through `run_command` (each call a real confined
//! launcher): read `/etc/passwd`, another process's `/proc/<pid>/environ`
//! and a canary next to the workspace; write outside (and inside, on a
//! read-only task); connect to a TCP and a UDP port on 127.0.0.1 that the
//! test listens on; fork and linger (double fork, `setsid`,
//! `start_new_session`). Every attempt must fail while the same program's
//! legitimate use inside the workspace works.

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use swarmbus_agents::tools::{CommandAllowList, ToolContext, ToolLimits, Toolbox, Workspace};
use swarmbus_core::{Bus, SessionId, Task, WorkerId};
use swarmbus_memory::MemoryBus;

const CANARY: &str = "CANARY-8c41d2-outside-the-workspace";
const SECRET: &str = "CANARY-secret-in-another-process";

const PROGRAMS: &[&str] = &[
    "cat", "echo", "head", "ls", "sort", "tail", "uniq", "wc", "python3", "find", "tar", "awk",
    "sed", "sh",
];

struct Corpus {
    _dir: tempfile::TempDir,
    outside: PathBuf,
    tools: Toolbox,
    ctx: ToolContext,
    tcp: TcpListener,
    udp: UdpSocket,
    helper: std::process::Child,
}

impl Drop for Corpus {
    fn drop(&mut self) {
        let _ = self.helper.kill();
        let _ = self.helper.wait();
    }
}

async fn corpus(allow_write: bool) -> Corpus {
    // Under the build folder, not /tmp: the outside is then in the
    // command's view of the file system and only Landlock keeps it out.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let ws = dir.path().join("ws");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(ws.join("src")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("canary.txt"), CANARY).unwrap();
    std::fs::write(ws.join("README.md"), "beta line\nalpha line\nalpha line\n").unwrap();
    std::fs::write(ws.join("src/lib.rs"), "pub fn answer() -> u32 { 42 }\n").unwrap();
    std::fs::write(ws.join("names.txt"), "/etc/passwd\0").unwrap();
    let status = std::process::Command::new("tar")
        .args(["-cf", "a.tar", "README.md"])
        .current_dir(&ws)
        .status()
        .unwrap();
    assert!(status.success());
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    // Another process of the worker's user, holding a secret in its
    // environment (as the worker holds ANTHROPIC_API_KEY).
    let helper = std::process::Command::new("sleep")
        .arg("60")
        .env("ANTHROPIC_API_KEY", SECRET)
        .spawn()
        .unwrap();
    let workspace = Arc::new(
        Workspace::new(&ws)
            .unwrap()
            .with_limits(ToolLimits::default().command_timeout(Duration::from_secs(20))),
    );
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let task = Task::new(SessionId::new("s").unwrap(), "k", "attack")
        .with_payload(json!({ "allow_write": allow_write }));
    let ctx = ToolContext::for_task(workspace, bus, WorkerId::new("w").unwrap(), task)
        .await
        .unwrap();
    Corpus {
        _dir: dir,
        outside,
        tools: Toolbox::built_in(CommandAllowList::new(PROGRAMS.iter().copied())),
        ctx,
        tcp,
        udp,
        helper,
    }
}

impl Corpus {
    /// Runs `program args` through the tool; its rendered output (or the
    /// error), which never holds a canary, a secret or /etc/passwd.
    async fn run(&self, program: &str, args: &[&str]) -> String {
        let out = match self
            .tools
            .call(
                &self.ctx,
                "run_command",
                &json!({"program": program, "args": args}),
            )
            .await
        {
            Ok(s) => s,
            Err(e) => e.to_string(),
        };
        for leak in [CANARY, SECRET, "root:x:0:0", env!("CARGO_MANIFEST_DIR")] {
            assert!(
                !out.contains(leak),
                "{program} {args:?} leaked {leak:?}: {out}"
            );
        }
        out
    }

    async fn works(&self, program: &str, args: &[&str], expect: &str) {
        let out = self.run(program, args).await;
        assert!(
            out.starts_with("exit code: 0") && out.contains(expect),
            "{program} {args:?} should work: {out}"
        );
    }

    fn root(&self) -> &Path {
        self.ctx.workspace.root()
    }

    fn out(&self, name: &str) -> String {
        self.outside.join(name).display().to_string()
    }

    /// Nothing reached the listeners.
    fn no_connection(&self, what: &str) {
        assert!(
            self.tcp.accept().is_err(),
            "{what}: a TCP connection reached the test's listener"
        );
        let mut buf = [0u8; 64];
        assert!(
            self.udp.recv_from(&mut buf).is_err(),
            "{what}: a UDP datagram reached the test's socket"
        );
    }
}

/// Host processes running `sleep <arg>`.
fn sleeping(arg: &str) -> Vec<u32> {
    let want = format!("sleep\0{arg}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .and_then(|(_, r)| r.split_whitespace().next().map(|x| x != "Z"))
                })
                .unwrap_or(false);
            alive
                && std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.ends_with(want.as_bytes()))
        })
        .collect()
}

fn assert_gone(arg: &str, what: &str) {
    let mut left = sleeping(arg);
    for _ in 0..20 {
        if left.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
        left = sleeping(arg);
    }
    for pid in &left {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    panic!("{what}: `sleep {arg}` outlived the command: {left:?}");
}

#[tokio::test]
async fn every_program_works_inside_the_workspace() {
    let c = corpus(false).await;
    c.works("cat", &["README.md"], "beta line").await;
    c.works("echo", &["hello"], "hello").await;
    c.works("head", &["-n", "1", "README.md"], "beta line")
        .await;
    c.works("tail", &["-n", "1", "README.md"], "alpha line")
        .await;
    c.works("ls", &["src"], "lib.rs").await;
    c.works("sort", &["README.md"], "alpha line\nalpha line\nbeta line")
        .await;
    c.works("uniq", &["README.md"], "beta line\nalpha line\n")
        .await;
    c.works("wc", &["-l", "README.md"], "3 README.md").await;
    c.works(
        "python3",
        &["-c", "print(open('src/lib.rs').read().split()[2])"],
        "answer()",
    )
    .await;
    c.works("find", &[".", "-name", "*.rs"], "./src/lib.rs")
        .await;
    c.works("tar", &["-tf", "a.tar"], "README.md").await;
    // tar may write its archive in the command's private /tmp.
    c.works("tar", &["-cvf", "/tmp/x.tar", "src"], "src/lib.rs")
        .await;
    c.works("awk", &["{print $1}", "README.md"], "beta\nalpha")
        .await;
    c.works("sed", &["-n", "2p", "README.md"], "alpha line")
        .await;
}

#[tokio::test]
async fn nothing_outside_the_workspace_is_read() {
    let c = corpus(false).await;
    let canary = c.out("canary.txt");
    let helper = format!("/proc/{}/environ", c.helper.id());
    let worker = format!("/proc/{}/environ", std::process::id());
    let parent = format!("/proc/{}/environ", std::os::unix::process::parent_id());
    for target in ["/etc/passwd", &canary, &helper, &worker, &parent] {
        for program in ["cat", "head", "tail", "sort", "uniq", "wc"] {
            let out = c.run(program, &[target]).await;
            assert!(
                !out.starts_with("exit code: 0"),
                "{program} {target}: {out}"
            );
        }
        let py = format!("print(open({target:?}).read())");
        c.run("python3", &["-c", &py]).await;
        c.run("awk", &["{print}", target]).await;
        c.run("sed", &["-n", "p", target]).await;
        c.run("tar", &["-cf", "-", target]).await;
        c.run("find", &[target, "-exec", "cat", "{}", ";"]).await;
    }
    // Row 1 of the issue: a file of names read by the program itself.
    for program in ["sort", "wc"] {
        let out = c.run(program, &["--files0-from=names.txt"]).await;
        assert!(!out.starts_with("exit code: 0"), "{program}: {out}");
    }
    // No listing of the home folder or /etc.
    for dir in ["/root", "/home", "/etc", "/"] {
        let out = c.run("ls", &[dir]).await;
        assert!(!out.starts_with("exit code: 0"), "ls {dir}: {out}");
        let out = c.run("find", &[dir, "-maxdepth", "1"]).await;
        assert!(!out.contains("passwd"), "find {dir}: {out}");
    }
    // The command's environment is the scrubbed one: no key, no Redis URL.
    let env = c
        .run("python3", &["-c", "import os; print(sorted(os.environ))"])
        .await;
    for name in ["ANTHROPIC", "GEMINI", "REDIS_URL", "CARGO_MANIFEST_DIR"] {
        assert!(!env.contains(name), "{name} reached the command: {env}");
    }
    assert!(env.contains("'PATH'") && env.contains("'HOME'"), "{env}");
}

#[tokio::test]
async fn nothing_is_written_outside_nor_inside_a_read_only_task() {
    let c = corpus(false).await;
    let w = |n: &str| c.out(n);
    let (w1, w2, w3, w4, w5, w6, w7) = (
        w("w1"),
        w("w2"),
        w("w3"),
        w("w4"),
        w("w5.tar"),
        w("w6"),
        w("w7"),
    );
    let py = format!("open({w3:?}, 'w').write('x')");
    let awk = format!("{{print > \"{w6}\"}}");
    let sed = format!("w {w7}");
    let o1 = format!("-o{w1}");
    let attempts: Vec<(&str, Vec<&str>)> = vec![
        ("sort", vec![&o1, "README.md"]),
        ("sort", vec!["-o", "../escaped.txt", "README.md"]),
        ("uniq", vec!["README.md", &w2]),
        ("python3", vec!["-c", &py]),
        ("find", vec![".", "-fprint", &w4]),
        ("tar", vec!["-cf", &w5, "README.md"]),
        ("awk", vec![&awk, "README.md"]),
        ("sed", vec!["-n", &sed, "README.md"]),
        // Row 7: inside, on a read-only task.
        ("sort", vec!["-oinside.txt", "README.md"]),
        ("uniq", vec!["README.md", "out.txt"]),
        ("tar", vec!["-cf", "inside.tar", "README.md"]),
    ];
    for (program, args) in &attempts {
        c.run(program, args).await;
    }
    for n in ["w1", "w2", "w3", "w4", "w5.tar", "w6", "w7"] {
        assert!(!c.outside.join(n).exists(), "{n} was written outside");
    }
    assert!(!c.outside.parent().unwrap().join("escaped.txt").exists());
    for n in ["inside.txt", "out.txt", "inside.tar"] {
        assert!(
            !c.root().join(n).exists(),
            "{n} written on a read-only task"
        );
    }
    assert_eq!(
        std::fs::read_to_string(c.outside.join("canary.txt")).unwrap(),
        CANARY
    );
}

#[tokio::test]
async fn no_socket_reaches_the_host() {
    let c = corpus(false).await;
    let tcp = c.tcp.local_addr().unwrap().port();
    let udp = c.udp.local_addr().unwrap().port();
    let connect = format!(
        "import socket; s = socket.create_connection(('127.0.0.1', {tcp}), timeout=2); s.send(b'x')"
    );
    let send = format!(
        "import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {udp}))"
    );
    let unix = "import socket; socket.socket(socket.AF_UNIX).connect('/run/systemd/notify')";
    for script in [connect.as_str(), send.as_str(), unix] {
        let out = c.run("python3", &["-c", script]).await;
        assert!(!out.starts_with("exit code: 0"), "{script}: {out}");
        c.no_connection(script);
    }
    // Programs that run others: find -exec, awk system(), sed e, tar
    // --to-command, sort --compress-program, each starting the same
    // connections.
    let shell_tcp = format!("python3 -c \"{connect}\"");
    let shell_udp = format!("python3 -c \"{send}\"");
    for line in [&shell_tcp, &shell_udp] {
        let awk = format!("BEGIN {{ system({line:?}) }}");
        let sed = format!("1e {line}");
        let to = format!("--to-command={line}");
        c.run(
            "find",
            &[".", "-maxdepth", "0", "-exec", "sh", "-c", line, ";"],
        )
        .await;
        c.run("awk", &[&awk]).await;
        c.run("sed", &[&sed, "README.md"]).await;
        c.run("tar", &["-xf", "a.tar", &to]).await;
        c.no_connection(line);
    }
}

#[tokio::test]
async fn nothing_a_command_starts_outlives_it() {
    // A write task, so the shell commands of row 3 can be planted.
    let c = corpus(true).await;
    let cases: Vec<(&str, &str, Vec<String>)> = vec![
        (
            "201.1",
            "python3",
            vec![
                "-c".into(),
                "import subprocess; subprocess.Popen(['sleep', '201.1'], start_new_session=True)"
                    .into(),
            ],
        ),
        (
            "201.2",
            "python3",
            vec![
                "-c".into(),
                "import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        os.execvp('sleep', ['sleep', '201.2'])\n"
                    .into(),
            ],
        ),
        (
            "201.3",
            "find",
            ["." , "-maxdepth", "0", "-exec", "sh", "-c", "setsid sleep 201.3 & exit 0", ";"]
                .map(String::from)
                .to_vec(),
        ),
        (
            "201.4",
            "awk",
            vec!["BEGIN { system(\"setsid sleep 201.4 &\") }".into()],
        ),
        (
            "201.5",
            "sed",
            vec![
                // Its output away, or sed waits for it.
                "1e setsid sleep 201.5 >/dev/null 2>&1 &".into(),
                "README.md".into(),
            ],
        ),
        (
            "201.6",
            "tar",
            ["-xf", "a.tar", "--to-command=setsid sleep 201.6 &"]
                .map(String::from)
                .to_vec(),
        ),
    ];
    for (arg, program, args) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        c.run(program, &args).await;
        assert_gone(arg, program);
    }
    // Row 3 of the issue: sort runs its --compress-program, here a shell
    // reading planted commands (lines long enough that 250 of them overflow
    // sort's 32 KiB buffer; the shell runs the first and exits).
    c.tools
        .call(
            &c.ctx,
            "write_file",
            &json!({"path": "cmds.txt", "content": format!("setsid sleep 201.7 & exit 0 # {}\n", "x".repeat(180)).repeat(250)}),
        )
        .await
        .unwrap();
    c.run("sort", &["-S", "32k", "--compress-program=sh", "cmds.txt"])
        .await;
    assert_gone("201.7", "sort --compress-program=sh");
}

#[tokio::test]
async fn a_write_task_writes_its_scratch_copy_and_leaves_a_diff() {
    let c = corpus(true).await;
    let origin = c.root().to_path_buf();
    assert!(c.ctx.workspace.is_scratch());
    c.works("sort", &["-o", "sorted.txt", "README.md"], "exit code: 0")
        .await;
    c.works(
        "python3",
        &["-c", "open('src/new.py', 'w').write('print(1)\\n')"],
        "exit code: 0",
    )
    .await;
    let diff = c.ctx.scratch.as_ref().unwrap().diff().await.unwrap();
    assert_eq!(
        diff.files,
        vec!["sorted.txt", "src/new.py"],
        "{}",
        diff.patch
    );
    assert!(diff.patch.contains("+alpha line"), "{}", diff.patch);
    // Still nothing outside.
    let o = c.out("x");
    c.run("sort", &["-o", &o, "README.md"]).await;
    assert!(!c.outside.join("x").exists());
    assert!(
        origin.starts_with(std::env::temp_dir()),
        "{}",
        origin.display()
    );
}

#[tokio::test]
async fn cargo_from_a_toolchain_under_home_builds_offline() {
    let Ok(g) = swarmbus_agents::sandbox::toolchain::resolve("cargo") else {
        return; // no cargo on PATH
    };
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap();
    if !g.program.starts_with(&home) {
        return; // a system cargo needs no grant
    }
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let ws = dir.path().join("hello");
    std::fs::create_dir_all(ws.join("src")).unwrap();
    std::fs::write(
        ws.join("Cargo.toml"),
        "[package]\nname = \"hello\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(
        ws.join("src/main.rs"),
        "fn main() { println!(\"hello from the sandbox\"); }\n",
    )
    .unwrap();
    let workspace = Arc::new(
        Workspace::new(&ws)
            .unwrap()
            .with_limits(ToolLimits::default().command_timeout(Duration::from_secs(120))),
    );
    let task = Task::new(SessionId::new("s").unwrap(), "k", "build")
        .with_payload(json!({ "allow_write": true }));
    let ctx = ToolContext::for_task(
        workspace,
        Arc::new(MemoryBus::new()),
        WorkerId::new("w").unwrap(),
        task,
    )
    .await
    .unwrap();
    let tools = Toolbox::built_in(CommandAllowList::default_and(["cargo"]).unwrap());
    let out = tools
        .call(
            &ctx,
            "run_command",
            &json!({"program": "cargo", "args": ["run", "-q"]}),
        )
        .await
        .unwrap();
    assert!(out.contains("hello from the sandbox"), "{out}");
    // The build went to the private /tmp, not the workspace copy.
    assert!(!ctx.workspace.root().join("target").exists());
}
