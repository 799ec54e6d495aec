//! Claude Code's hooks and OpenTelemetry booked through `swarm hook` and
//! `swarm otlp import` on a real `redis-server`, with the transcripts,
//! payloads and log bodies Claude Code 2.1.332 wrote
//! (swarm-claude-code/tests/fixtures/SOURCES.md): each call once, per tier,
//! priced to the micro-dollar as Claude Code itself priced it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};
use swarmbus_redis::testing::RedisServer;

const FIX: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../swarm-claude-code/tests/fixtures"
);

fn swarm(url: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_swarm"))
        .args(args)
        .env("REDIS_URL", url)
        .env_remove("SWARM_NOW")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A session laid out as Claude Code lays it out: `<dir>/<session>.jsonl`
/// and `<dir>/<session>/subagents/agent-<id>.jsonl` (+ meta).
struct Session {
    _dir: tempfile::TempDir,
    main: PathBuf,
    agent: PathBuf,
    session: String,
    agent_id: String,
}

fn lay_out(run: &str, session: &str, agent_id: &str) -> Session {
    let dir = tempfile::tempdir().unwrap();
    let main = dir.path().join(format!("{session}.jsonl"));
    std::fs::copy(format!("{FIX}/coordinator_{run}.jsonl"), &main).unwrap();
    let subs = dir.path().join(session).join("subagents");
    std::fs::create_dir_all(&subs).unwrap();
    let agent = subs.join(format!("agent-{agent_id}.jsonl"));
    std::fs::copy(format!("{FIX}/agent_{run}.jsonl"), &agent).unwrap();
    std::fs::copy(
        format!("{FIX}/agent_A.meta.json"),
        agent.with_extension("meta.json"),
    )
    .unwrap();
    Session {
        _dir: dir,
        main,
        agent,
        session: session.to_owned(),
        agent_id: agent_id.to_owned(),
    }
}

fn payload(s: &Session, event: &str) -> String {
    json!({
        "session_id": s.session,
        "transcript_path": s.main,
        "cwd": s.main.parent().unwrap(),
        "hook_event_name": event,
        "agent_id": if event.starts_with("Subagent") { json!(s.agent_id) } else { Value::Null },
        "agent_type": if event.starts_with("Subagent") { json!("general-purpose") } else { Value::Null },
        "agent_transcript_path": if event == "SubagentStop" { json!(s.agent) } else { Value::Null },
    })
    .to_string()
}

fn report(url: &str) -> Value {
    serde_json::from_str(&ok(&swarm(url, &["cost", "report", "--json"], None))).unwrap()
}

fn tier_usd(report: &Value, tier: &str) -> String {
    report["by_tier"][tier]["usd"]
        .as_str()
        .unwrap_or("0")
        .to_owned()
}

/// Claude Code's own figures for run A (`A/claude.stdout.json`,
/// `modelUsage[*].costUSD`): sonnet $0.0209402, haiku $0.000332835.
const SONNET_A: &str = "0.0209402";
const HAIKU_A: &str = "0.000332835";

#[test]
fn hooks_book_every_call_once_per_tier_to_the_micro_dollar() {
    let server = RedisServer::start();
    let url = server.url();
    let s = lay_out(
        "A",
        "8170940d-e053-491d-9284-1988c8ae3842",
        "a8d671a305efa9d2a",
    );
    ok(&swarm(
        &url,
        &["hook", "SubagentStart"],
        Some(&payload(&s, "SubagentStart")),
    ));
    let status = ok(&swarm(&url, &["status"], None));
    assert!(status.contains("Active Workers: 1 Haikus"), "{status}");
    ok(&swarm(
        &url,
        &["hook", "SubagentStop"],
        Some(&payload(&s, "SubagentStop")),
    ));
    let status = ok(&swarm(&url, &["status"], None));
    assert!(status.contains("Active Workers: 0 Haikus"), "{status}");
    // Stop and SessionEnd both fire in every `claude -p` session; the
    // subagent's transcript is read again by them: nothing twice.
    for event in ["Stop", "SessionEnd", "Stop"] {
        ok(&swarm(&url, &["hook", event], Some(&payload(&s, event))));
    }
    ok(&swarm(
        &url,
        &["hook", "SubagentStop"],
        Some(&payload(&s, "SubagentStop")),
    ));
    let r = report(&url);
    assert_eq!(r["total"]["calls"], 7, "{r:#}");
    assert_eq!(tier_usd(&r, "sonnet"), SONNET_A, "{r:#}");
    assert_eq!(tier_usd(&r, "haiku"), HAIKU_A, "{r:#}");
    assert_eq!(r["by_worker"]["a8d671a305efa9d2a"]["calls"], 3, "{r:#}");
    assert_eq!(r["by_session"][&s.session]["calls"], 7, "{r:#}");
    let status = ok(&swarm(&url, &["status"], None));
    assert!(
        status.contains("Sonnet $0.0209 | Haiku $0.0003"),
        "{status}"
    );
}

#[test]
fn hooks_and_opentelemetry_together_count_nothing_twice_and_say_disagreements() {
    let server = RedisServer::start();
    let url = server.url();
    let s = lay_out(
        "B",
        "b5a5967a-aab3-42e0-bdc7-5fa10aeab8b8",
        "a18b7bfe55267d3ff",
    );
    let logs = [
        format!("{FIX}/0002-logs.json"),
        format!("{FIX}/0003-logs.json"),
    ];
    let out = ok(&swarm(&url, &["otlp", "import", &logs[0], &logs[1]], None));
    assert!(out.starts_with("booked 7 calls"), "{out}");
    for event in ["SubagentStop", "Stop", "SessionEnd"] {
        ok(&swarm(&url, &["hook", event], Some(&payload(&s, event))));
    }
    let out = ok(&swarm(&url, &["otlp", "import", &logs[0], &logs[1]], None));
    assert!(
        out.starts_with("booked 0 calls ($0.00), 7 already booked"),
        "{out}"
    );
    let r = report(&url);
    assert_eq!(r["total"]["calls"], 7, "{r:#}");
    assert_eq!(tier_usd(&r, "sonnet"), SONNET_A, "{r:#}");
    assert_eq!(tier_usd(&r, "haiku"), HAIKU_A, "{r:#}");

    // A transcript that reports one of those calls with other tokens is said.
    let text = std::fs::read_to_string(&s.main).unwrap();
    std::fs::write(
        &s.main,
        text.replace("\"output_tokens\":157", "\"output_tokens\":158"),
    )
    .unwrap();
    let out = swarm(&url, &["hook", "Stop"], Some(&payload(&s, "Stop")));
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("disagree") && err.contains("output 157 vs 158"),
        "{err}"
    );
    assert_eq!(report(&url)["total"]["calls"], 7);
}

#[test]
fn the_budget_hook_refuses_a_new_subagent_once_the_cap_is_reached() {
    let server = RedisServer::start();
    let url = server.url();
    let s = lay_out(
        "A",
        "8170940d-e053-491d-9284-1988c8ae3842",
        "a8d671a305efa9d2a",
    );
    let mut pre: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{FIX}/PreToolUse_Agent.json")).unwrap(),
    )
    .unwrap();
    pre["transcript_path"] = json!(s.main);
    pre["cwd"] = json!(s.main.parent().unwrap());
    let pre = pre.to_string();
    // No budget: allowed.
    ok(&swarm(&url, &["hook", "PreToolUse"], Some(&pre)));
    // A cap above the session's spend: allowed; the spend counts calls not booked yet.
    ok(&swarm(&url, &["budget", "set", "--session", "0.03"], None));
    ok(&swarm(&url, &["hook", "PreToolUse"], Some(&pre)));
    // $0.02 < $0.0213 spent (still unbooked, running): refused with the reason.
    ok(&swarm(&url, &["budget", "set", "--session", "0.02"], None));
    let out = swarm(&url, &["hook", "PreToolUse"], Some(&pre));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("swarm budget reached") && err.contains("$0.02 cap"),
        "{err}"
    );
    // Booked spend counts the same.
    ok(&swarm(&url, &["hook", "Stop"], Some(&payload(&s, "Stop"))));
    assert_eq!(
        swarm(&url, &["hook", "PreToolUse"], Some(&pre))
            .status
            .code(),
        Some(2)
    );
    let shown = ok(&swarm(&url, &["budget", "show"], None));
    assert!(shown.contains("session $0.02"), "{shown}");
    // Another tool is never refused; a cleared budget allows again.
    let other = pre.replace("\"tool_name\":\"Agent\"", "\"tool_name\":\"Read\"");
    ok(&swarm(&url, &["hook", "PreToolUse"], Some(&other)));
    ok(&swarm(&url, &["budget", "clear"], None));
    ok(&swarm(&url, &["hook", "PreToolUse"], Some(&pre)));
    // The coordinator is told the spend.
    let told = ok(&swarm(
        &url,
        &["hook", "UserPromptSubmit"],
        Some(&payload(&s, "UserPromptSubmit")),
    ));
    assert!(
        told.contains("Swarm spend so far: this session $0.021273035"),
        "{told}"
    );
    assert!(
        swarm(&url, &["budget", "set", "--total", "0"], None)
            .status
            .code()
            == Some(1)
    );
}

#[test]
fn a_bad_payload_or_no_redis_is_said_and_never_blocks_claude_code() {
    let server = RedisServer::start();
    let out = swarm(&server.url(), &["hook", "Stop"], Some("{not json"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hook payload is not valid JSON"));
    let out = swarm("redis://127.0.0.1:1", &["hook", "Stop"], Some("{}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("redis://127.0.0.1:1"));
    let _ = Path::new(FIX);
}

fn tree(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.push((
                    p.strip_prefix(dir).unwrap().display().to_string() + "/",
                    String::new(),
                ));
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read_to_string(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn init_merges_is_idempotent_shows_a_dry_run_and_removes_exactly_what_it_added() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join(".claude")).unwrap();
    let mine = r#"{"permissions":{"allow":["Read"]},"hooks":{"Stop":[{"hooks":[{"type":"command","command":"echo mine"}]}]}}"#;
    std::fs::write(d.join(".claude/settings.json"), mine).unwrap();
    std::fs::write(
        d.join(".mcp.json"),
        r#"{"mcpServers":{"other":{"command":"x"}}}"#,
    )
    .unwrap();
    std::fs::write(d.join("CLAUDE.md"), "# My project\n").unwrap();
    let before = tree(d);
    let ds = d.to_str().unwrap();

    let dry = ok(&swarm(
        "redis://127.0.0.1:1",
        &["init", "claude-code", "--dry-run", ds],
        None,
    ));
    assert!(
        dry.contains("+++ b/.claude/agents/swarm-worker.md") && dry.contains("+model: haiku"),
        "{dry}"
    );
    assert!(
        dry.contains("\"command\": \"swarm hook SubagentStop\""),
        "{dry}"
    );
    assert_eq!(tree(d), before, "a dry run writes nothing");

    let out = ok(&swarm(
        "redis://127.0.0.1:1",
        &["init", "claude-code", ds],
        None,
    ));
    assert!(
        out.contains("Pending approval") && out.contains("Continue without using this MCP server"),
        "{out}"
    );
    let settings: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join(".claude/settings.json")).unwrap())
            .unwrap();
    assert_eq!(settings["permissions"]["allow"][0], "Read");
    assert_eq!(
        settings["hooks"]["Stop"][0]["hooks"][0]["command"],
        "echo mine"
    );
    assert_eq!(
        settings["hooks"]["Stop"][1]["hooks"][0]["command"],
        "swarm hook Stop"
    );
    for e in [
        "SubagentStart",
        "SubagentStop",
        "PreToolUse",
        "PostToolUse",
        "SessionEnd",
        "UserPromptSubmit",
    ] {
        assert_eq!(
            settings["hooks"][e][0]["hooks"][0]["command"],
            format!("swarm hook {e}"),
            "{settings:#}"
        );
    }
    let mcp: Value =
        serde_json::from_str(&std::fs::read_to_string(d.join(".mcp.json")).unwrap()).unwrap();
    assert_eq!(mcp["mcpServers"]["other"]["command"], "x");
    assert_eq!(mcp["mcpServers"]["swarm"]["args"][0], "mcp");
    assert!(
        mcp["mcpServers"]["swarm"].get("env").is_none(),
        "no secrets in .mcp.json"
    );
    let agent = std::fs::read_to_string(d.join(".claude/agents/swarm-worker.md")).unwrap();
    assert!(
        agent.contains("\nmodel: haiku\n")
            && agent.contains("tools: ")
            && agent.contains("mcp__swarm__put_finding")
    );
    let md = std::fs::read_to_string(d.join("CLAUDE.md")).unwrap();
    assert!(
        md.starts_with("# My project\n")
            && md.contains("`Agent` tool")
            && md.contains("subagent_type: \"swarm-worker\"")
            && md.contains("model: \"haiku\"")
    );
    assert!(
        !md.contains("Task tool") && !md.contains("claude-haiku"),
        "{md}"
    );

    let after = tree(d);
    let out = ok(&swarm(
        "redis://127.0.0.1:1",
        &["init", "claude-code", ds],
        None,
    ));
    assert!(out.starts_with("nothing to change"), "{out}");
    assert_eq!(tree(d), after, "a second run changes nothing");
    let dry = ok(&swarm(
        "redis://127.0.0.1:1",
        &["init", "claude-code", "--dry-run", ds],
        None,
    ));
    assert_eq!(dry.trim(), "nothing to change");

    ok(&swarm(
        "redis://127.0.0.1:1",
        &["init", "claude-code", "--remove", ds],
        None,
    ));
    assert_eq!(tree(d), before, "--remove gives back the folder as it was");

    // A broken settings file is never overwritten.
    std::fs::write(d.join(".claude/settings.json"), "{oops").unwrap();
    let out = swarm("redis://127.0.0.1:1", &["init", "claude-code", ds], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not valid JSON"));
    assert_eq!(
        std::fs::read_to_string(d.join(".claude/settings.json")).unwrap(),
        "{oops"
    );
}

#[test]
fn init_otel_adds_the_telemetry_env_keeps_the_users_values_and_removes_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join(".claude")).unwrap();
    // Claude Code ignores OTEL_* in a project's settings.json: the env goes
    // to .claude/swarm-otel.json (`claude --settings`), merged like the rest.
    std::fs::write(d.join(".claude/settings.json"), r#"{"env":{"MY_VAR":"x"}}"#).unwrap();
    std::fs::write(
        d.join(".claude/swarm-otel.json"),
        r#"{"env":{"OTEL_METRICS_EXPORTER":"prometheus","MY_VAR":"x"}}"#,
    )
    .unwrap();
    let before = tree(d);
    let ds = d.to_str().unwrap();
    let read = |d: &Path, f: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(d.join(f)).unwrap()).unwrap()
    };
    let env = |d: &Path| read(d, ".claude/swarm-otel.json")["env"].clone();

    let dry = ok(&swarm(
        "redis://127.0.0.1:1",
        &["init", "claude-code", ds, "--otel", "--dry-run"],
        None,
    ));
    assert!(
        dry.contains("+    \"OTEL_EXPORTER_OTLP_ENDPOINT\": \"http://127.0.0.1:4318\""),
        "{dry}"
    );
    assert_eq!(tree(d), before, "a dry run writes nothing");

    let out = swarm(
        "redis://127.0.0.1:1",
        &["init", "claude-code", ds, "--otel"],
        None,
    );
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    let told = ok(&out);
    assert!(
        told.contains("claude --settings .claude/swarm-otel.json")
            && told.contains("swarm otlp serve"),
        "{told}"
    );
    assert!(
        said.contains("kept your OTEL_METRICS_EXPORTER=\"prometheus\""),
        "{said}"
    );
    assert_eq!(
        env(d),
        json!({
            "OTEL_METRICS_EXPORTER": "prometheus",
            "MY_VAR": "x",
            "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"
        })
    );
    assert_eq!(
        read(d, ".claude/settings.json")["env"],
        json!({"MY_VAR": "x"}),
        "settings.json's env untouched"
    );

    // Again, with or without --otel: nothing changes.
    let after = tree(d);
    for args in [
        &["init", "claude-code", ds, "--otel"][..],
        &["init", "claude-code", ds],
    ] {
        let out = ok(&swarm("redis://127.0.0.1:1", args, None));
        assert!(out.starts_with("nothing to change"), "{out}");
        assert_eq!(tree(d), after, "{args:?} changes nothing");
    }

    // Another endpoint replaces ours (not the user's values).
    ok(&swarm(
        "redis://127.0.0.1:1",
        &["init", "claude-code", "--otel", "http://127.0.0.1:9999", ds],
        None,
    ));
    assert_eq!(
        env(d)["OTEL_EXPORTER_OTLP_ENDPOINT"],
        "http://127.0.0.1:9999"
    );
    assert_eq!(env(d)["OTEL_METRICS_EXPORTER"], "prometheus");

    // --remove gives back the folder as it was, the user's env included.
    ok(&swarm(
        "redis://127.0.0.1:1",
        &["init", "claude-code", "--remove", ds],
        None,
    ));
    assert_eq!(tree(d), before, "--remove gives back the folder as it was");

    // A folder where the endpoint should be is said, not taken as a URL.
    let out = swarm(
        "redis://127.0.0.1:1",
        &["init", "claude-code", "--otel", ds],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--otel takes the receiver's http:// URL")
    );
    assert_eq!(tree(d), before);

    // In a fresh folder the file is created, and --remove deletes it.
    let fresh = tempfile::tempdir().unwrap();
    let f = fresh.path().to_str().unwrap();
    ok(&swarm(
        "redis://127.0.0.1:1",
        &["init", "claude-code", f, "--otel"],
        None,
    ));
    assert_eq!(env(fresh.path())["CLAUDE_CODE_ENABLE_TELEMETRY"], "1");
    ok(&swarm(
        "redis://127.0.0.1:1",
        &["init", "claude-code", "--remove", f],
        None,
    ));
    // (the .claude folder stays, as without --otel)
    assert_eq!(tree(fresh.path()), [(".claude/".to_owned(), String::new())]);
}

#[test]
fn the_coordinator_prompt_names_the_agent_tool_and_an_alias_claude_code_accepts() {
    let p = ok(&swarm(
        "redis://127.0.0.1:1",
        &["prompt", "coordinator"],
        None,
    ));
    assert!(
        p.contains("Agent tool, subagent_type \"swarm-worker\" and model \"haiku\""),
        "{p}"
    );
    assert!(
        !p.contains("Use the Task tool") && !p.contains("with model claude-haiku"),
        "{p}"
    );
    let p = ok(&swarm(
        "redis://127.0.0.1:1",
        &[
            "prompt",
            "coordinator",
            "--worker-model",
            "claude-sonnet-5-5",
        ],
        None,
    ));
    assert!(p.contains("model \"sonnet\""), "{p}");
}

#[test]
fn the_status_line_shows_workers_while_they_run_and_never_fails() {
    let server = RedisServer::start();
    let url = server.url();
    let input = std::fs::read_to_string(format!("{FIX}/statusline_input_2.1.332.json")).unwrap();
    let s = lay_out(
        "A",
        "8170940d-e053-491d-9284-1988c8ae3842",
        "a8d671a305efa9d2a",
    );
    for agent in ["a1", "a2", "a3"] {
        let p = payload(&s, "SubagentStart").replace("a8d671a305efa9d2a", agent);
        ok(&swarm(&url, &["hook", "SubagentStart"], Some(&p)));
    }
    let line = ok(&swarm(&url, &["statusline"], Some(&input)));
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.contains("3 Haikus active"), "{line}");
    let status = ok(&swarm(&url, &["status"], None));
    assert!(status.contains("Active Workers: 3 Haikus"), "{status}");
    for event in ["SubagentStop", "Stop"] {
        ok(&swarm(&url, &["hook", event], Some(&payload(&s, event))));
    }
    let line = ok(&swarm(&url, &["statusline"], Some(&input)));
    assert!(
        line.contains("Sonnet $0.0209 | Haiku $0.0003 · Haiku 1.6% (target 90%)"),
        "{line}"
    );
    // A bad value under cost:sonnet, garbage on stdin, no Redis: `?`, exit 0.
    server.cli(&["SET", "cost:sonnet", "not-a-number"]);
    let line = ok(&swarm(&url, &["statusline"], Some("\u{0}garbage")));
    assert!(line.contains('?') && line.contains("findings"), "{line}");
    let line = ok(&swarm("redis://127.0.0.1:1", &["statusline"], Some(&input)));
    assert!(
        line.starts_with("🐝 ? findings · ? Haikus active"),
        "{line}"
    );
}
