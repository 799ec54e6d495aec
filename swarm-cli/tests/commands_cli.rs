//! The `swarm` commands against a real redis-server: findings, tasks, halt
//! and resume, status --watch, prompt, demo; `.env` honoured; one line when
//! nothing answers; out-of-range arguments refused without a panic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use swarmbus_core::{FindingStore, HaltSwitch, TaskQueue, WorkerId};
use swarmbus_redis::testing::RedisServer;
use swarmbus_redis::{RedisBus, RedisConfig};

/// `swarm` in `dir` with only the environment a test gives it.
fn swarm_in(dir: &Path, url: Option<&str>, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_swarm"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("REDIS_URL")
        .env_remove("SWARM_NAMESPACE")
        .env_remove("SWARM_SESSION")
        .env_remove("SWARM_WORKER")
        .env_remove("GEMINI_API_KEY_SHARD1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    if let Some(u) = url {
        cmd.env("REDIS_URL", u);
    }
    let mut child = cmd.spawn().expect("run swarm");
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input).expect("write stdin");
    }
    child.wait_with_output().expect("wait for swarm")
}

fn swarm(url: &str, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    swarm_in(dir.path(), Some(url), args, None)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn success(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}{}", stdout(o), stderr(o));
    stdout(o)
}

fn json(o: &Output) -> Value {
    serde_json::from_str(&success(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

async fn bus(server: &RedisServer) -> RedisBus {
    RedisBus::connect(RedisConfig::from_url(&server.url()).unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_put_from_an_argument_and_stdin_then_list_and_show() {
    let server = RedisServer::start();
    let url = server.url();
    let redis = bus(&server).await;

    let put = json(&swarm(
        &url,
        &[
            "findings",
            "put",
            "--title",
            "Gemini quota",
            "--tag",
            "gemini",
            "--tag",
            "quota",
            "--worker",
            "haiku-3",
            "--session",
            "instance-11",
            "--json",
            "--body",
            "1500 requests per day per project on the free tier.",
        ],
    ));
    let id = put["id"].as_str().unwrap().to_owned();
    assert_eq!(put["key"], format!("finding:{id}"));

    // The body on stdin, for subagents that only have Bash.
    let dir = tempfile::tempdir().unwrap();
    let out = swarm_in(
        dir.path(),
        Some(&url),
        &["findings", "put", "--title", "From a pipe"],
        Some("line one\nline two\n".as_bytes()),
    );
    let key = success(&out).trim().to_owned();
    assert!(key.starts_with("finding:"), "{key}");
    let piped = redis
        .get_finding(&key.trim_start_matches("finding:").parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(piped.body, "line one\nline two\n");
    assert_eq!(piped.worker.to_string(), "claude-code");

    let shown = json(&swarm(&url, &["findings", "show", &id, "--json"]));
    assert_eq!(shown["title"], "Gemini quota");
    assert_eq!(shown["worker"], "haiku-3");
    let text = success(&swarm(
        &url,
        &["findings", "show", &format!("finding:{id}")],
    ));
    assert!(text.contains("1500 requests per day"), "{text}");

    let page = json(&swarm(
        &url,
        &["findings", "list", "--query", "free tier", "--json"],
    ));
    assert_eq!(page["total"], 1);
    assert_eq!(page["findings"][0]["id"], id);
    let page = json(&swarm(
        &url,
        &["findings", "list", "--limit", "1", "--json"],
    ));
    assert_eq!(page["total"], 2);
    assert_eq!(page["findings"].as_array().unwrap().len(), 1);
    let next = page["next_cursor"].as_str().unwrap();
    let rest = json(&swarm(
        &url,
        &[
            "findings", "list", "--limit", "1", "--cursor", next, "--json",
        ],
    ));
    assert_eq!(rest["findings"].as_array().unwrap().len(), 1);
    assert_ne!(rest["findings"][0]["id"], page["findings"][0]["id"]);
    let listing = swarm(&url, &["findings", "list", "--tag", "quota"]);
    assert!(success(&listing).contains("Gemini quota"));

    // Refused: nothing stored.
    let out = swarm(&url, &["findings", "put", "--title", " ", "--body", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("title must not be empty"),
        "{}",
        stderr(&out)
    );
    let big = vec![b'x'; 300 * 1024];
    let out = swarm_in(
        dir.path(),
        Some(&url),
        &["findings", "put", "--title", "big"],
        Some(&big),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("over the limit"), "{}", stderr(&out));
    let out = swarm(&url, &["findings", "show", "not-a-uuid"]);
    assert_eq!(out.status.code(), Some(1));
    let out = swarm(
        &url,
        &["findings", "show", "67e55044-10b1-426f-9247-bb680e5fe0c8"],
    );
    assert!(
        stderr(&out).contains("no finding with id"),
        "{}",
        stderr(&out)
    );
    assert_eq!(redis.count_findings().await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_are_pushed_and_listed_and_the_swarm_halts_and_resumes() {
    let server = RedisServer::start();
    let url = server.url();
    let redis = bus(&server).await;

    let id = success(&swarm(
        &url,
        &[
            "task",
            "push",
            "--worker",
            "haiku-1",
            "--title",
            "grep for TODO",
            "--kind",
            "grep",
            "--payload",
            r#"{"pattern":"TODO"}"#,
        ],
    ));
    assert_eq!(id.trim().len(), 36, "{id}");
    let worker = WorkerId::new("haiku-1").unwrap();
    assert_eq!(redis.queued_tasks(&worker).await.unwrap(), 1);
    let claim = redis
        .claim_task(&worker, std::time::Duration::ZERO)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claim.task.id.to_string(), id.trim());
    assert_eq!(claim.task.kind, "grep");
    assert_eq!(claim.task.payload["pattern"], "TODO");
    redis.fail_task(&claim, "no such folder").await.unwrap();
    success(&swarm(
        &url,
        &["task", "push", "--worker", "haiku-1", "--title", "second"],
    ));

    let list = json(&swarm(
        &url,
        &["task", "list", "--worker", "haiku-1", "--json"],
    ));
    assert_eq!(list["queues"][0]["worker"], "haiku-1");
    assert_eq!(list["queues"][0]["queued"], 1);
    assert_eq!(list["failed"][0]["report"], "no such folder");
    let text = success(&swarm(&url, &["task", "list", "--worker", "haiku-1"]));
    assert!(
        text.contains("haiku-1: 1 queued") && text.contains("no such folder"),
        "{text}"
    );

    let out = swarm(
        &url,
        &[
            "task",
            "push",
            "--worker",
            "haiku-1",
            "--title",
            "x",
            "--payload",
            "{not json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not JSON"));
    assert_eq!(redis.queued_tasks(&worker).await.unwrap(), 1);

    let out = swarm(
        &url,
        &["halt", "--reason", "shard 2 returned malformed JSON"],
    );
    assert!(success(&out).contains("halted"));
    assert_eq!(
        redis.halted().await.unwrap().unwrap().failed,
        "shard 2 returned malformed JSON"
    );
    let out = swarm(&url, &["halt", "--reason", "another"]);
    assert!(success(&out).contains("already halted: shard 2"));
    let out = swarm(&url, &["resume"]);
    assert!(success(&out).contains("was halted: shard 2"));
    assert!(redis.halted().await.unwrap().is_none());
    assert!(success(&swarm(&url, &["resume"])).contains("not halted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_url_in_dot_env_is_honoured() {
    let server = RedisServer::start();
    let redis = bus(&server).await;
    let f = swarmbus_core::Finding::new(
        WorkerId::new("haiku-1").unwrap(),
        swarmbus_core::SessionId::new("s").unwrap(),
        "from the test",
        "body",
    );
    redis.put_finding(&f).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(".env"),
        format!("REDIS_URL={}\n", server.url()),
    )
    .unwrap();
    let out = swarm_in(dir.path(), None, &["status", "--json"], None);
    assert_eq!(json(&out)["findings"], 1);
    let out = swarm_in(dir.path(), None, &["findings", "show", f.id.as_ref()], None);
    assert!(success(&out).contains("from the test"));
    // An argument wins over .env.
    let out = swarm_in(
        dir.path(),
        None,
        &["status", "--redis-url", "redis://127.0.0.1:1"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn nothing_answering_is_one_line_naming_the_url() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["status"][..],
        &["findings", "list"],
        &["task", "list"],
        &["halt", "--reason", "x"],
        &["resume"],
        &["monitor", "--seconds", "1"],
    ] {
        let out = swarm_in(
            dir.path(),
            Some("redis://swarm:hunter2@127.0.0.1:1/0"),
            args,
            None,
        );
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("redis://swarm:***@127.0.0.1:1/0"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
}

#[test]
fn without_a_url_the_cli_uses_the_briefs_localhost_6379() {
    let dir = tempfile::tempdir().unwrap();
    let out = swarm_in(dir.path(), None, &["prompt", "coordinator"], None);
    assert!(
        success(&out).contains("redis://127.0.0.1:6379"),
        "{}",
        stdout(&out)
    );
    let out = swarm_in(dir.path(), None, &["status"], None);
    // Either a Redis answers there, or the one-line error names it: never an
    // empty in-memory swarm.
    if !out.status.success() {
        assert!(
            stderr(&out).contains("redis://127.0.0.1:6379"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn out_of_range_arguments_are_refused_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["monitor", "--seconds", "18446744073709551616"][..],
        &["status", "--watch", "--interval", "0"],
        &["status", "--shards", "100000"],
        &["findings", "list", "--limit", "0"],
        &["librarian", "ask", "--via-bus", "18446744073709551615", "q"],
        &["demo", "--timeout", "-1"],
    ] {
        let out = swarm_in(dir.path(), Some("redis://127.0.0.1:1"), args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_redraws_and_stops_after_count() {
    let server = RedisServer::start();
    let out = swarm(
        &server.url(),
        &["status", "--watch", "--interval", "1", "--count", "2"],
    );
    let text = success(&out);
    assert_eq!(text.matches("📊 SWARM STATUS").count(), 2, "{text}");
    // Piped: no terminal control codes.
    assert!(!text.contains('\u{1b}'), "{text:?}");
    let out = swarm(
        &server.url(),
        &[
            "status",
            "--watch",
            "--json",
            "--interval",
            "1",
            "--count",
            "2",
        ],
    );
    let printed = stdout(&out);
    let lines: Vec<&str> = printed
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::trim)
        .collect::<Vec<_>>();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for l in lines {
        let v: Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["findings"], 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_name_the_tools_the_models_and_the_live_status() {
    let server = RedisServer::start();
    let url = server.url();
    success(&swarm(
        &url,
        &["findings", "put", "--title", "one", "--body", "x"],
    ));
    let p = success(&swarm(&url, &["prompt", "coordinator"]));
    for s in [
        "claude-sonnet-5-5",
        "claude-haiku-5-5",
        "put_finding",
        "search_findings",
        "ask_librarian",
        "halt_swarm",
        "swarm_status",
        "📊 SWARM STATUS",
        "Redis Context: 1 findings",
        &url,
    ] {
        assert!(p.contains(s), "coordinator prompt lacks {s:?}:\n{p}");
    }
    let p = success(&swarm(&url, &["prompt", "coordinator", "--cli"]));
    assert!(
        p.contains("swarm findings put") && !p.contains("put_finding"),
        "{p}"
    );
    let p = success(&swarm(&url, &["prompt", "worker", "--worker", "haiku-4"]));
    assert!(
        p.contains("haiku-4") && p.contains("claim_task") && p.contains("complete_task"),
        "{p}"
    );
    let p = success(&swarm(
        &url,
        &["prompt", "worker", "--cli", "--worker-model", "m-1"],
    ));
    assert!(p.contains("swarm findings put") && p.contains("m-1"), "{p}");
    // Redis down: the prompt is still printed, and says so.
    let out = swarm("redis://127.0.0.1:1", &["prompt", "coordinator"]);
    assert!(success(&out).contains("Redis does not answer at redis://127.0.0.1:1"));
}

#[test]
fn the_demo_runs_in_process_on_a_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.rs"), "// TODO one\nfn main() {}\n").unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub").join("b.md"), "# TODO two\ntext\n").unwrap();
    let out = swarm_in(
        dir.path(),
        Some("redis://127.0.0.1:1"),
        &["demo", "--dir", "."],
        None,
    );
    let text = success(&out);
    assert!(text.contains("All workers reported"), "{text}");
    assert!(text.contains("2 lines contain \"TODO\""), "{text}");
    assert!(text.contains("Redis Context: 3 findings"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_on_redis_when_asked() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "TODO\n").unwrap();
    let out = swarm_in(
        dir.path(),
        Some(&server.url()),
        &["demo", "--on-redis"],
        None,
    );
    success(&out);
    assert_eq!(bus(&server).await.count_findings().await.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_reindex_adopts_keys_written_with_redis_cli() {
    let server = RedisServer::start();
    let url = server.url();
    server.cli(&[
        "SET",
        "finding:deepseek_pricing",
        "DeepSeek V3 costs 0.27 dollars per million input tokens",
    ]);
    server.cli(&[
        "SET",
        "finding:notes",
        r#"{"note":"JSON of another shape"}"#,
    ]);
    server.cli(&[
        "HSET",
        "finding:gemini_quota",
        "title",
        "Gemini quota",
        "body",
        "1500 a day",
    ]);
    server.cli(&["LPUSH", "finding:a_list", "not a finding"]);
    let out = json(&swarm(
        &url,
        &["findings", "reindex", "--json", "--batch", "1"],
    ));
    assert_eq!(out["adopted"], 3, "{out}");
    assert_eq!(out["scanned"], 4, "{out}");
    assert!(
        out["unreadable"][0]
            .as_str()
            .unwrap()
            .contains("finding:a_list"),
        "{out}"
    );
    assert_eq!(json(&swarm(&url, &["status", "--json"]))["findings"], 3);
    let shown = json(&swarm(
        &url,
        &["findings", "show", "deepseek_pricing", "--json"],
    ));
    assert_eq!(shown["origin"], "raw_text");
    assert!(shown.to_string().contains("0.27 dollars"), "{shown}");
    let hash = json(&swarm(
        &url,
        &["findings", "show", "finding:gemini_quota", "--json"],
    ));
    assert_eq!(hash["origin"], "raw_hash");
    let page = json(&swarm(
        &url,
        &["findings", "list", "--query", "gemini", "--json"],
    ));
    assert_eq!(page["total"], 1, "{page}");
    // Again: nothing new; piped, so no progress line on stderr.
    let again = swarm(&url, &["findings", "reindex"]);
    assert!(success(&again).contains("0 adopted"), "{}", stdout(&again));
    assert!(stderr(&again).is_empty(), "{}", stderr(&again));
}
