//! `swarm mcp` started while Redis is down (as Claude Code starts it with the
//! session): the MCP handshake completes under a real MCP client (rmcp,
//! spawning the built binary over stdio), every tool is listed, each call is
//! a tool error naming the URL (password hidden) and what to do, and once
//! Redis answers the same session works without a restart. And once the
//! hooks have booked a Claude Code session, MCP `swarm_status` shows the real
//! split per tier and the worker share.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};
use swarmbus_redis::testing::RedisServer;

fn text(r: &CallToolResult) -> String {
    r.content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_tools_are_listed_calls_say_what_to_do_and_it_reconnects() {
    let mut server = RedisServer::start();
    let port = server.url().rsplit(':').next().unwrap().to_owned();
    server.stop();
    let url = format!("redis://:hunter2secret@127.0.0.1:{port}");
    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_swarm")).configure(|c| {
        c.args(["mcp", "--offline"])
            .env("REDIS_URL", &url)
            .env_remove("SWARM_NAMESPACE")
            .env_remove("GEMINI_API_KEY_SHARD1")
            .stderr(std::process::Stdio::null());
    });
    let client =
        ().serve(TokioChildProcess::new(cmd).unwrap())
            .await
            .expect("handshake without Redis");
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    for t in [
        "put_finding",
        "search_findings",
        "swarm_status",
        "halt_swarm",
    ] {
        assert!(names.iter().any(|n| n == t), "{t} not listed: {names:?}");
    }
    let call = |tool: &'static str, args: Value| {
        let Value::Object(map) = args else { panic!() };
        client.call_tool(CallToolRequestParams::new(tool).with_arguments(map))
    };
    let r = call("swarm_status", json!({})).await.unwrap();
    assert_eq!(r.is_error, Some(true), "{}", text(&r));
    let msg = text(&r);
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(
        msg.contains("start redis-server") && msg.contains("reconnects by itself"),
        "{msg}"
    );
    assert!(!msg.contains("hunter2secret"), "password shown: {msg}");
    let r = call("put_finding", json!({"title": "t", "body": "b"}))
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true));

    server.start_again();
    // A password the server does not require is refused by Redis 7
    // (AUTH without requirepass): set one so the URL's password is right.
    server.cli(&["CONFIG", "SET", "requirepass", "hunter2secret"]);
    let r = call(
        "put_finding",
        json!({"title": "after Redis came back", "body": "b"}),
    )
    .await
    .unwrap();
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let r = call("swarm_status", json!({})).await.unwrap();
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    assert!(text(&r).contains("1 findings"), "{}", text(&r));
    client.cancel().await.unwrap();
}

const FIX: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../swarm-claude-code/tests/fixtures"
);

fn swarm_cli(url: &str, args: &[&str], stdin: &str) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_swarm"))
        .args(args)
        .env("REDIS_URL", url)
        .env_remove("SWARM_NOW")
        .env_remove("SWARM_NAMESPACE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run A of the fixtures (a Sonnet coordinator, one Haiku subagent), booked
/// by the hooks as Claude Code fires them, then read through MCP: the block
/// and the JSON carry Claude Code's own figures for the run
/// (`A/claude.stdout.json`: sonnet $0.0209402, haiku $0.000332835).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_status_shows_the_booked_claude_code_split_and_the_worker_share() {
    let server = RedisServer::start();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let session = "8170940d-e053-491d-9284-1988c8ae3842";
    let agent_id = "a8d671a305efa9d2a";
    let main = dir.path().join(format!("{session}.jsonl"));
    std::fs::copy(format!("{FIX}/coordinator_A.jsonl"), &main).unwrap();
    let subs = dir.path().join(session).join("subagents");
    std::fs::create_dir_all(&subs).unwrap();
    let agent = subs.join(format!("agent-{agent_id}.jsonl"));
    std::fs::copy(format!("{FIX}/agent_A.jsonl"), &agent).unwrap();
    std::fs::copy(
        format!("{FIX}/agent_A.meta.json"),
        agent.with_extension("meta.json"),
    )
    .unwrap();
    let payload = |event: &str| {
        json!({
            "session_id": session,
            "transcript_path": main,
            "cwd": dir.path(),
            "hook_event_name": event,
            "agent_id": if event.starts_with("Subagent") { json!(agent_id) } else { Value::Null },
            "agent_type": if event.starts_with("Subagent") { json!("swarm-worker") } else { Value::Null },
            "agent_transcript_path": if event == "SubagentStop" { json!(agent) } else { Value::Null },
        })
        .to_string()
    };
    for event in ["SubagentStart", "SubagentStop", "Stop", "SessionEnd"] {
        swarm_cli(&url, &["hook", event], &payload(event));
    }

    let cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_swarm")).configure(|c| {
        c.args(["mcp", "--offline"])
            .env("REDIS_URL", &url)
            .env_remove("SWARM_NAMESPACE")
            .env_remove("GEMINI_API_KEY_SHARD1")
            .stderr(std::process::Stdio::null());
    });
    let client = ().serve(TokioChildProcess::new(cmd).unwrap()).await.unwrap();
    let r = client
        .call_tool(CallToolRequestParams::new("swarm_status"))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{}", text(&r));
    let block = text(&r);
    assert!(block.contains("Sonnet $0.0209 | Haiku $0.0003"), "{block}");
    // The worker share of the tokens against the brief's 90 % target, as
    // the block and the structured JSON give it.
    assert!(block.contains("Token Efficiency: Haiku "), "{block}");
    assert!(!block.contains("Haiku 0.0%"), "{block}");
    let st = &r.structured_content.as_ref().unwrap()["status"];
    let costs = st.to_string();
    assert!(costs.contains("0.0209402"), "{st:#}");
    assert!(costs.contains("0.000332835"), "{st:#}");
    client.cancel().await.unwrap();
}
