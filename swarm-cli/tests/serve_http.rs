//! `swarm serve` over real HTTP against a real redis-server: health, bearer
//! tokens (missing, wrong, revoked, another namespace's, a role too small),
//! the MCP tools through rmcp's Streamable HTTP client, `/metrics` parsed as
//! Prometheus text and equal to the bus, and the per-token rate limit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use swarmbus_core::FindingStore;
use swarmbus_redis::testing::RedisServer;
use swarmbus_redis::{RedisBus, RedisConfig};

fn swarm(redis: &RedisServer, ns: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_swarm"));
    c.env("REDIS_URL", redis.url())
        .env("SWARM_NAMESPACE", ns)
        .env_remove("GEMINI_API_KEY_SHARD1")
        .env_remove("SWARM_MEMORY");
    c
}

fn token(redis: &RedisServer, ns: &str, role: &str) -> String {
    let out = swarm(redis, ns)
        .args(["token", "create", "--role", role, "--label", "test"])
        .output()
        .expect("swarm token create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(t.starts_with("swm_"), "{t}");
    t
}

/// A running `swarm serve`, killed on drop.
struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(redis: &RedisServer, ns: &str, extra: &[&str]) -> Server {
    let mut child = swarm(redis, ns)
        .args(["serve", "--offline", "--listen", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn swarm serve");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let base = loop {
        let line = lines
            .next()
            .expect("swarm serve exited before listening")
            .unwrap();
        if let Some(rest) = line.strip_prefix("swarm serve: ") {
            break rest
                .split(' ')
                .next()
                .unwrap()
                .trim_end_matches('/')
                .to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server { child, base }
}

async fn rpc(base: &str, token: Option<&str>, body: Value) -> reqwest::Response {
    let mut r = reqwest::Client::new()
        .post(format!("{base}/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json")
        .json(&body);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    r.send().await.expect("POST /mcp")
}

fn put_call(title: &str) -> Value {
    json!({"jsonrpc":"2.0","id":7,"method":"tools/call",
           "params":{"name":"put_finding","arguments":{"title":title,"body":"b"}}})
}

async fn count(redis: &RedisServer, ns: &str) -> u64 {
    let bus = RedisBus::connect(
        RedisConfig::from_url(&redis.url())
            .unwrap()
            .namespace(swarmbus_core::keys::Namespace::new(ns).unwrap()),
    )
    .await
    .unwrap();
    bus.count_findings().await.unwrap()
}

#[test]
fn serve_refuses_to_start_off_loopback_or_with_require_auth_without_tokens() {
    let redis = RedisServer::start();
    for extra in [vec!["--listen", "0.0.0.0:0"], vec!["--require-auth"]] {
        let out = swarm(&redis, "empty")
            .args(["serve", "--offline"])
            .args(&extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{extra:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("swarm token create"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_guard_every_request_and_the_mcp_tools_work_over_http() {
    let redis = RedisServer::start();
    let ns = "team-a";
    let write = token(&redis, ns, "write");
    let read = token(&redis, ns, "read");
    let admin = token(&redis, ns, "admin");
    let foreign = token(&redis, "team-b", "admin");
    let server = serve(&redis, ns, &["--require-auth"]);
    let base = server.base.clone();

    // Health needs no token.
    let h = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(h.status(), 200);
    let r = reqwest::get(format!("{base}/readyz")).await.unwrap();
    assert_eq!(r.status(), 200);

    // Refused requests touch nothing.
    let none = rpc(&base, None, put_call("x")).await;
    assert_eq!(none.status(), 401);
    assert!(none.headers().contains_key("www-authenticate"));
    assert_eq!(
        rpc(&base, Some("swm_0000"), put_call("x")).await.status(),
        401
    );
    // Tokens live in the namespace they grant: another namespace's is unknown here.
    assert_eq!(
        rpc(&base, Some(&foreign), put_call("x")).await.status(),
        401
    );
    let small = rpc(&base, Some(&read), put_call("x")).await;
    assert_eq!(small.status(), 403);
    let why: Value = small.json().await.unwrap();
    assert!(
        why["error"].as_str().unwrap().contains("needs write"),
        "{why}"
    );
    assert_eq!(count(&redis, ns).await, 0);

    // The write token through a real MCP client over Streamable HTTP.
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp"))
            .auth_header(write.clone()),
    );
    let client = ().serve(transport).await.expect("MCP handshake over HTTP");
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for t in [
        "put_finding",
        "get_finding",
        "search_findings",
        "swarm_status",
        "halt_swarm",
    ] {
        assert!(names.contains(&t), "{t} missing from {names:?}");
    }
    let Value::Object(args) =
        json!({"title": "over http", "body": "from a remote agent", "tags": ["http"]})
    else {
        unreachable!()
    };
    let put = client
        .call_tool(CallToolRequestParams::new("put_finding").with_arguments(args))
        .await
        .unwrap();
    assert_ne!(put.is_error, Some(true), "{put:?}");
    assert_eq!(count(&redis, ns).await, 1);
    // A write token may not halt; an admin token may.
    let halt = json!({"jsonrpc":"2.0","id":8,"method":"tools/call",
                      "params":{"name":"halt_swarm","arguments":{"reason":"test"}}});
    assert_eq!(rpc(&base, Some(&write), halt.clone()).await.status(), 403);
    client.cancel().await.unwrap();

    // /metrics needs a token too, and says what the bus says.
    assert_eq!(
        reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .status(),
        401
    );
    let text = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<String> = text.lines().map(str::to_string).collect();
    let scrape =
        prometheus_parse::Scrape::parse(lines.into_iter().map(Ok)).expect("Prometheus text");
    let value = |name: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name)
            .map(|s| match s.value {
                prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(value("swarm_findings"), Some(1.0), "{text}");
    assert_eq!(value("swarm_halted"), Some(0.0), "{text}");
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric.starts_with("swarm_mcp_tool_duration_seconds")
                && s.labels.get("tool") == Some("put_finding")),
        "{text}"
    );

    // Revoked: refused from the next request on.
    let list = swarm(&redis, ns).args(["token", "list"]).output().unwrap();
    let listing = String::from_utf8(list.stdout).unwrap();
    assert!(!listing.contains(&write), "a listing never shows a token");
    let ids: Vec<String> = listing
        .lines()
        .skip(1)
        .filter(|l| l.contains(" write "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 1, "{listing}");
    let rv = swarm(&redis, ns)
        .args(["token", "revoke", &ids[0]])
        .output()
        .unwrap();
    assert!(rv.status.success());
    assert_eq!(
        rpc(&base, Some(&write), put_call("after")).await.status(),
        401
    );
    assert_eq!(count(&redis, ns).await, 1);

    // The admin token halts.
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp"))
            .auth_header(admin.clone()),
    );
    let client = ().serve(transport).await.expect("MCP handshake over HTTP");
    let Value::Object(args) = json!({"reason": "test"}) else {
        unreachable!()
    };
    let halted = client
        .call_tool(CallToolRequestParams::new("halt_swarm").with_arguments(args))
        .await
        .unwrap();
    assert_ne!(halted.is_error, Some(true), "{halted:?}");
    client.cancel().await.unwrap();
    drop(halt);
    let r = reqwest::Client::new()
        .get(format!("{base}/metrics"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(r.contains("swarm_halted 1"), "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_over_its_rate_gets_429_with_retry_after() {
    let redis = RedisServer::start();
    let read = token(&redis, "rl", "read");
    let server = serve(&redis, "rl", &["--require-auth", "--rate-limit", "2"]);
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = client
            .get(format!("{}/metrics", server.base))
            .bearer_auth(&read)
            .send()
            .await
            .unwrap();
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
        }
        statuses.push(r.status().as_u16());
    }
    assert_eq!(&statuses[..4], &[200, 200, 200, 200], "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let again = client
        .get(format!("{}/metrics", server.base))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
}
