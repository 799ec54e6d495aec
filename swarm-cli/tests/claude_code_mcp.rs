//! `swarm mcp` started while Redis is down (as Claude Code starts it with the
//! session): the MCP handshake completes under a real MCP client (rmcp,
//! spawning the built binary over stdio), every tool is listed, each call is
//! a tool error naming the URL (password hidden) and what to do, and once
//! Redis answers the same session works without a restart.

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
