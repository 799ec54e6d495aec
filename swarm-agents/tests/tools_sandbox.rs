//! Every way out of the workspace is refused, and nothing outside it is read:
//! a canary file next to the workspace never appears in any tool output.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use swarmbus_agents::tools::{
    CommandAllowList, ToolContext, ToolError, ToolLimits, Toolbox, Workspace,
};
use swarmbus_core::{Bus, SessionId, Task, WorkerId};
use swarmbus_memory::MemoryBus;

const CANARY: &str = "CANARY-5f1e9c-outside-the-workspace";

struct Fixture {
    _dir: tempfile::TempDir,
    outside: std::path::PathBuf,
    ctx: ToolContext,
    tools: Toolbox,
}

async fn fixture(allow_write: bool, limits: ToolLimits, commands: &[&str]) -> Fixture {
    fixture_with(allow_write, limits, commands, |_| {}).await
}

/// A fixture whose workspace `prepare` changes before it is opened (a
/// repository made there is the workspace's repository).
async fn fixture_with(
    allow_write: bool,
    limits: ToolLimits,
    commands: &[&str],
    prepare: impl FnOnce(&Path),
) -> Fixture {
    // Under the build folder rather than /tmp: the outside canary is then
    // visible to a command's mount namespace and only Landlock keeps it out.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let ws = dir.path().join("ws");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(ws.join("src")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("canary.txt"), CANARY).unwrap();
    std::fs::write(dir.path().join("canary.txt"), CANARY).unwrap();
    std::fs::write(ws.join("src/lib.rs"), "pub fn answer() -> u32 { 42 }\n").unwrap();
    std::fs::write(ws.join("README.md"), "# Title\n## Usage\n").unwrap();
    std::fs::write(ws.join(".gitignore"), "target/\n*.log\n").unwrap();
    std::fs::create_dir_all(ws.join("target")).unwrap();
    std::fs::write(ws.join("target/built.txt"), "built").unwrap();
    std::fs::write(ws.join("debug.log"), "log line").unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(outside.join("canary.txt"), ws.join("link.txt")).unwrap();
        std::os::unix::fs::symlink(&outside, ws.join("out")).unwrap();
    }
    prepare(&ws);
    let workspace = Arc::new(Workspace::new(&ws).unwrap().with_limits(limits));
    let bus: Arc<dyn Bus> = Arc::new(MemoryBus::new());
    let task = Task::new(SessionId::new("s").unwrap(), "k", "work")
        .with_payload(json!({ "allow_write": allow_write }));
    let ctx = ToolContext::for_task(workspace, bus, WorkerId::new("w").unwrap(), task)
        .await
        .unwrap();
    Fixture {
        _dir: dir,
        outside,
        ctx,
        tools: Toolbox::built_in(CommandAllowList::new(commands.iter().copied())),
    }
}

impl Fixture {
    async fn call(&self, tool: &str, input: Value) -> Result<String, ToolError> {
        let r = self.tools.call(&self.ctx, tool, &input).await;
        let shown = match &r {
            Ok(s) => s.clone(),
            Err(e) => e.to_string(),
        };
        assert!(
            !shown.contains(CANARY),
            "{tool} {input} leaked the canary: {shown}"
        );
        r
    }

    fn root(&self) -> &Path {
        self.ctx.workspace.root()
    }
}

fn refused(r: Result<String, ToolError>) -> ToolError {
    let e = r.expect_err("must be refused");
    assert!(e.is_refusal(), "{e:?} is not a refusal");
    e
}

#[tokio::test]
async fn reads_that_leave_the_workspace_are_refused() {
    let f = fixture(false, ToolLimits::default(), &["cat"]).await;
    let canary_abs = f.outside.join("canary.txt");
    for path in [
        "../canary.txt",
        "src/../../canary.txt",
        canary_abs.to_str().unwrap(),
        "link.txt",
        "out/canary.txt",
    ] {
        refused(f.call("read_file", json!({ "path": path })).await);
    }
    assert!(
        f.call("read_file", json!({"path": "src/lib.rs"}))
            .await
            .unwrap()
            .contains("answer")
    );
    refused(f.call("list_files", json!({"path": ".."})).await);
    refused(f.call("list_files", json!({"path": "out"})).await);
    refused(
        f.call("search_text", json!({"pattern": "CANARY", "path": "../"}))
            .await,
    );
}

#[tokio::test]
async fn listing_and_search_respect_gitignore_and_never_follow_links() {
    let f = fixture(false, ToolLimits::default(), &[]).await;
    let list = f.call("list_files", json!({})).await.unwrap();
    assert!(list.contains("src/lib.rs"), "{list}");
    assert!(list.contains("README.md"));
    assert!(!list.contains("target"), "ignored folder listed: {list}");
    assert!(!list.contains("debug.log"), "ignored file listed: {list}");
    let hits = f
        .call("search_text", json!({"pattern": "CANARY|answer"}))
        .await
        .unwrap();
    assert_eq!(hits, "src/lib.rs:1: pub fn answer() -> u32 { 42 }");
    let bad = f.call("search_text", json!({"pattern": "("})).await;
    assert!(matches!(bad, Err(ToolError::InvalidInput { .. })));
}

#[tokio::test]
async fn writes_need_the_tasks_permission_and_stay_inside() {
    let ro = fixture(false, ToolLimits::default(), &[]).await;
    refused(
        ro.call("write_file", json!({"path": "notes.md", "content": "x"}))
            .await,
    );
    assert!(!ro.root().join("notes.md").exists());

    let f = fixture(true, ToolLimits::default(), &[]).await;
    f.call(
        "write_file",
        json!({"path": "docs/new/notes.md", "content": "hello"}),
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(f.root().join("docs/new/notes.md")).unwrap(),
        "hello"
    );
    for path in [
        "../escaped.txt",
        "out/escaped.txt",
        "out/deep/x.txt",
        "link.txt",
        ".git/config",
    ] {
        refused(
            f.call("write_file", json!({"path": path, "content": "pwned"}))
                .await,
        );
    }
    assert!(!f.outside.join("escaped.txt").exists());
    assert!(!f.outside.join("deep").exists());
    assert_eq!(
        std::fs::read_to_string(f.outside.join("canary.txt")).unwrap(),
        CANARY,
        "the symlink target was not overwritten"
    );
}

#[tokio::test]
async fn commands_off_the_list_never_run_and_those_on_it_read_nothing_outside() {
    let f = fixture(false, ToolLimits::default(), &["cat", "wc"]).await;
    for (program, args) in [
        ("sh", json!(["-c", "cat ../canary.txt"])),
        ("/bin/cat", json!(["src/lib.rs"])),
        ("bash", json!([])),
    ] {
        refused(
            f.call("run_command", json!({"program": program, "args": args}))
                .await,
        );
    }
    // On the list, the kernel keeps them in: they run and fail to read.
    for args in [
        json!(["../canary.txt"]),
        json!(["link.txt"]),
        json!(["out/canary.txt"]),
        json!([f.outside.join("canary.txt")]),
    ] {
        let out = f
            .call("run_command", json!({"program": "cat", "args": args}))
            .await
            .unwrap();
        assert!(!out.starts_with("exit code: 0"), "{args}: {out}");
    }
    let out = f
        .call(
            "run_command",
            json!({"program": "wc", "args": ["--files0-from=../canary.txt"]}),
        )
        .await
        .unwrap();
    assert!(!out.starts_with("exit code: 0"), "{out}");
    let out = f
        .call(
            "run_command",
            json!({"program": "wc", "args": ["-l", "README.md"]}),
        )
        .await
        .unwrap();
    assert!(out.starts_with("exit code: 0"), "{out}");
    assert!(out.contains("2 README.md"), "{out}");
}

#[tokio::test]
async fn an_oversized_output_is_refused_and_a_slow_command_killed() {
    let limits = ToolLimits::default()
        .max_output_bytes(64)
        .command_timeout(Duration::from_millis(300));
    let f = fixture(false, limits, &["cat", "sleep"]).await;
    std::fs::write(f.root().join("big.txt"), "x".repeat(10_000)).unwrap();
    let e = f
        .call(
            "run_command",
            json!({"program": "cat", "args": ["big.txt"]}),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::OutputTooLarge { cap: 64 }), "{e:?}");
    let e = f
        .call("read_file", json!({"path": "big.txt"}))
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::OutputTooLarge { .. }), "{e:?}");
    let started = std::time::Instant::now();
    let e = f
        .call("run_command", json!({"program": "sleep", "args": ["30"]}))
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::Timeout { .. }), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "killed, not waited for"
    );
}

/// Whether process `pid` still runs (a zombie waiting for its reaper does
/// not: it is dead, only not yet collected).
#[cfg(target_os = "linux")]
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Host processes whose command line is `sleep <arg>` (an argument no
/// other test uses).
#[cfg(target_os = "linux")]
fn sleeping(arg: &str) -> Vec<u32> {
    let want = format!("sleep\0{arg}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            running(*pid)
                && std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.ends_with(want.as_bytes()) || c == want.as_bytes())
        })
        .collect()
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_timeout_kills_the_command_and_everything_it_started() {
    let limits = ToolLimits::default().command_timeout(Duration::from_millis(500));
    let f = fixture(false, limits, &["sh"]).await;
    // The shell leaves a grandchild in the background (in a session of its
    // own, too) and then runs into the timeout.
    let e = f
        .call(
            "run_command",
            json!({"program": "sh", "args": ["-c", "setsid sleep 100.125 & sleep 100.25 & sleep 100.5"]}),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::Timeout { .. }), "{e:?}");
    let mut left = Vec::new();
    for _ in 0..50 {
        left = ["100.125", "100.25", "100.5"]
            .iter()
            .flat_map(|a| sleeping(a))
            .collect();
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for pid in &left {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    assert!(left.is_empty(), "{left:?} survived the timeout");
}

#[tokio::test]
async fn a_file_over_the_size_cap_is_refused() {
    let f = fixture(false, ToolLimits::default().max_file_bytes(16), &[]).await;
    let e = f
        .call("read_file", json!({"path": "src/lib.rs"}))
        .await
        .unwrap_err();
    assert!(
        matches!(e, ToolError::FileTooLarge { cap: 16, .. }),
        "{e:?}"
    );
}

fn git(dir: &Path, args: &[&str]) {
    let ok = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[tokio::test]
async fn git_is_read_only_and_confined() {
    let f = fixture_with(false, ToolLimits::default(), &[], |root| {
        git(root, &["init", "-q"]);
        git(root, &["add", "src/lib.rs", "README.md"]);
        git(root, &["commit", "-q", "-m", "first commit"]);
        std::fs::write(root.join("src/lib.rs"), "pub fn answer() -> u32 { 43 }\n").unwrap();
    })
    .await;

    let log = f.call("git", json!({"command": "log"})).await.unwrap();
    assert!(log.contains("first commit"), "{log}");
    let diff = f.call("git", json!({"command": "diff"})).await.unwrap();
    assert!(diff.contains("+pub fn answer() -> u32 { 43 }"), "{diff}");
    let status = f.call("git", json!({"command": "status"})).await.unwrap();
    assert!(status.contains(" M src/lib.rs"), "{status}");
    let blame = f
        .call("git", json!({"command": "blame", "path": "README.md"}))
        .await
        .unwrap();
    assert!(blame.contains("# Title"), "{blame}");

    refused(
        f.call("git", json!({"command": "blame", "path": "../canary.txt"}))
            .await,
    );
    refused(f.call("git", json!({"command": "push"})).await);
    refused(f.call("git", json!({"command": "config"})).await);
    let e = f
        .call(
            "git",
            json!({"command": "diff", "revision": "--output=../x"}),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::InvalidInput { .. }), "{e:?}");
    let e = f
        .call("git", json!({"command": "diff", "revision": "--no-index"}))
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::InvalidInput { .. }), "{e:?}");
}

#[tokio::test]
async fn git_does_not_see_a_repository_above_the_workspace() {
    let f = fixture(false, ToolLimits::default(), &[]).await;
    // The repository is the workspace's parent; the workspace is a plain
    // folder inside it.
    let parent = f.root().parent().unwrap();
    git(parent, &["init", "-q"]);
    let e = f
        .call("git", json!({"command": "status"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, ToolError::Failed { message } if message.contains("not a git repository")),
        "{e:?}"
    );
}

#[tokio::test]
async fn unknown_tools_and_bad_inputs_are_errors_the_model_reads() {
    let f = fixture(false, ToolLimits::default(), &[]).await;
    let e = f.call("rm_rf", json!({})).await.unwrap_err();
    assert_eq!(e.to_string(), "no tool named \"rm_rf\"");
    let e = f.call("read_file", json!({"path": 3})).await.unwrap_err();
    assert_eq!(e.to_string(), "invalid input: path must be a string");
}

#[tokio::test]
async fn bus_tools_write_search_and_read_findings() {
    let f = fixture(false, ToolLimits::default(), &[]).await;
    let stored = f
        .call(
            "write_finding",
            json!({"title": "Redis keys", "body": "KEYS is never used", "tags": ["redis"]}),
        )
        .await
        .unwrap();
    let id = stored.trim_start_matches("stored finding ").to_owned();
    assert_eq!(f.ctx.written().len(), 1);
    let hits = f
        .call(
            "search_findings",
            json!({"text": "never used", "tag": "redis"}),
        )
        .await
        .unwrap();
    assert!(hits.contains(&id), "{hits}");
    let one = f.call("read_finding", json!({"id": id})).await.unwrap();
    assert!(one.contains("KEYS is never used"));
    let e = f
        .call("read_finding", json!({"id": "no:such key"}))
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::InvalidInput { .. }), "{e:?}");
    let e = f
        .call("read_finding", json!({"id": "session10-notes"}))
        .await
        .unwrap_err();
    assert!(matches!(e, ToolError::NotFound { .. }), "{e:?}");
}

#[tokio::test]
async fn the_probe_finds_the_kernel_sandbox_here() {
    let status = swarmbus_agents::sandbox::Sandbox::new()
        .probe()
        .await
        .clone();
    assert!(
        matches!(status, swarmbus_agents::sandbox::SandboxStatus::Enforced { landlock_abi, .. } if landlock_abi >= 3),
        "{status:?}"
    );
}

#[tokio::test]
async fn commands_are_refused_where_the_kernel_cannot_confine_them() {
    use swarmbus_agents::sandbox::{Sandbox, SandboxStatus};
    for (sandbox, says) in [
        (
            Sandbox::new().simulate_unsupported("no-landlock"),
            "Landlock",
        ),
        (
            Sandbox::new().simulate_unsupported("no-userns"),
            "user namespaces",
        ),
        (Sandbox::unavailable("no launcher here"), "no launcher here"),
    ] {
        let sandbox = Arc::new(sandbox);
        let status = sandbox.probe().await.clone();
        assert!(
            matches!(&status, SandboxStatus::Unavailable { reason } if reason.contains(says)),
            "{status:?}"
        );
        let f = fixture_with(false, ToolLimits::default(), &["cat"], |root| {
            git(root, &["init", "-q"]);
        })
        .await;
        let ws = Workspace::new(f.root())
            .unwrap()
            .with_sandbox(Arc::clone(&sandbox));
        let ctx = ToolContext::new(
            Arc::new(ws),
            Arc::new(MemoryBus::new()),
            WorkerId::new("w").unwrap(),
            Task::new(SessionId::new("s").unwrap(), "k", "work"),
        );
        for (tool, input) in [
            (
                "run_command",
                json!({"program": "cat", "args": ["README.md"]}),
            ),
            ("git", json!({"command": "status"})),
        ] {
            let e = f.tools.call(&ctx, tool, &input).await.unwrap_err();
            assert!(
                matches!(&e, ToolError::SandboxUnavailable { reason } if reason.contains(says)),
                "{tool}: {e:?}"
            );
            assert!(e.is_refusal());
            assert!(
                e.to_string().starts_with("refused: commands are off"),
                "{e}"
            );
        }
        // File tools need no sandbox and still work.
        assert!(
            f.tools
                .call(&ctx, "read_file", &json!({"path": "README.md"}))
                .await
                .unwrap()
                .contains("# Title")
        );
    }
}

#[tokio::test]
async fn git_ignores_a_repository_planted_after_the_workspace_was_opened() {
    // Row 4 of the issue: HEAD, config, objects/, refs/ written at the root
    // of a workspace that is not a repository.
    let f = fixture(true, ToolLimits::default(), &[]).await;
    for (path, content) in [
        ("HEAD", "ref: refs/heads/main\n"),
        (
            "config",
            "[core]\n\trepositoryformatversion = 0\n\tbare = true\n\tworktree = .\n[blame]\n\tignoreRevsFile = /etc/passwd\n",
        ),
        ("objects/info/x", ""),
        ("refs/heads/x", ""),
    ] {
        f.call("write_file", json!({"path": path, "content": content}))
            .await
            .unwrap();
    }
    let e = f
        .call("git", json!({"command": "blame", "path": "README.md"}))
        .await
        .unwrap_err();
    let shown = e.to_string();
    assert!(shown.contains("not a git repository"), "{shown}");
    assert!(!shown.contains("root:x:0:0"), "{shown}");
}
