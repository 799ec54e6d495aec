//! The findings as MCP resources under a real MCP client: rmcp's client
//! spawns the built `swarm mcp` over stdio (and `swarm serve` over
//! Streamable HTTP) against a real redis-server. The resources are listed
//! and read, an unknown one is "resource not found" (-32002), and a
//! subscriber is sent `notifications/resources/updated` for the findings
//! other processes store (the CLI, redis-cli, another MCP session) until it
//! unsubscribes, on `resources/subscribe` (protocol 2025-11-25) and on
//! `subscriptions/listen` (2026-07-28).
//!
//! Every wait for a notification is bounded (10 s, the failure); "none
//! arrives" is checked over 1 s.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, ErrorCode, ReadResourceRequestParams, ResourceContents,
    ResourceUpdatedNotificationParam, ServerNotification, SubscribeRequestParams,
    SubscriptionFilter, UnsubscribeRequestParams,
};
use rmcp::service::{
    ClientLifecycleMode, ClientServiceExt, NotificationContext, RoleClient, RunningService,
    ServiceError,
};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, ServiceExt};
use serde_json::{Value, json};
use swarmbus_redis::testing::RedisServer;
use tokio::sync::mpsc;

const FEED: &str = "swarm://findings";
const TEMPLATE: &str = "swarm://findings/{id}";
/// The bound on every wait for a notification.
const WAIT: Duration = Duration::from_secs(10);
/// How long "no notification" is watched for.
const QUIET: Duration = Duration::from_secs(1);

/// A client that records the URIs of `notifications/resources/updated`.
#[derive(Clone)]
struct Recorder {
    updated: mpsc::UnboundedSender<String>,
}

impl ClientHandler for Recorder {
    async fn on_resource_updated(
        &self,
        params: ResourceUpdatedNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let _ = self.updated.send(params.uri);
    }
}

type Client = RunningService<RoleClient, Recorder>;
type Updates = mpsc::UnboundedReceiver<String>;

fn recorder() -> (Recorder, Updates) {
    let (updated, rx) = mpsc::unbounded_channel();
    (Recorder { updated }, rx)
}

fn mcp_command(redis: &RedisServer) -> tokio::process::Command {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_swarm")).configure(|c| {
        c.arg("mcp")
            .arg("--offline")
            .env("REDIS_URL", redis.url())
            .env_remove("SWARM_NAMESPACE")
            .env_remove("SWARM_MEMORY")
            .env_remove("GEMINI_API_KEY_SHARD1")
            .stderr(Stdio::null());
    })
}

/// A `swarm mcp` session (protocol 2025-11-25, `initialize`).
async fn connect(redis: &RedisServer) -> (Client, Updates) {
    let (handler, rx) = recorder();
    let transport = TokioChildProcess::new(mcp_command(redis)).expect("spawn swarm mcp");
    let client = handler
        .serve(transport)
        .await
        .expect("MCP handshake with swarm mcp");
    (client, rx)
}

async fn ok(client: &Client, tool: &'static str, args: Value) -> Value {
    let Value::Object(map) = args else {
        panic!("arguments must be an object")
    };
    let r = client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(map))
        .await
        .unwrap_or_else(|e| panic!("{tool}: protocol error {e}"));
    assert_ne!(r.is_error, Some(true), "{tool} failed: {:?}", r.content);
    r.structured_content.expect("structured content")
}

async fn put(client: &Client, title: &str, body: &str) -> String {
    let f = ok(
        client,
        "put_finding",
        json!({ "title": title, "body": body }),
    )
    .await;
    f["id"].as_str().unwrap().to_owned()
}

fn finding_uri(id: &str) -> String {
    format!("{FEED}/{id}")
}

/// A resource's one text content, parsed as JSON (checking its URI and type).
async fn read(client: &Client, uri: &str) -> Value {
    let r = client
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .unwrap_or_else(|e| panic!("read {uri}: {e}"));
    assert_eq!(r.contents.len(), 1, "{uri}: {:?}", r.contents);
    let ResourceContents::TextResourceContents {
        uri: got,
        mime_type,
        text,
        ..
    } = &r.contents[0]
    else {
        panic!("{uri}: not text: {:?}", r.contents[0])
    };
    assert_eq!(got, uri);
    assert_eq!(mime_type.as_deref(), Some("application/json"));
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{uri}: not JSON ({e}): {text}"))
}

/// The MCP error of reading `uri`.
async fn read_refused(client: &Client, uri: &str) -> rmcp::ErrorData {
    match client
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
    {
        Err(ServiceError::McpError(e)) => e,
        other => panic!("read {uri}: expected an MCP error, got {other:?}"),
    }
}

/// `resources/subscribe`: the protocol 2025-11-25 way (deprecated in rmcp
/// for 2026-07-28's `subscriptions/listen`), what clients speak today.
#[allow(deprecated)]
async fn try_subscribe(client: &Client, uri: &str) -> Result<(), ServiceError> {
    client.subscribe(SubscribeRequestParams::new(uri)).await
}

async fn subscribe(client: &Client, uri: &str) {
    try_subscribe(client, uri)
        .await
        .unwrap_or_else(|e| panic!("subscribe {uri}: {e}"));
}

#[allow(deprecated)] // as `try_subscribe`
async fn unsubscribe(client: &Client, uri: &str) {
    client
        .unsubscribe(UnsubscribeRequestParams::new(uri))
        .await
        .unwrap_or_else(|e| panic!("unsubscribe {uri}: {e}"));
}

/// The next `count` updated URIs (in any order), each within [`WAIT`].
async fn updates(rx: &mut Updates, count: usize, what: &str) -> BTreeSet<String> {
    let mut got = BTreeSet::new();
    for _ in 0..count {
        let uri = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("{what}: no notification within {WAIT:?}, had {got:?}"))
            .expect("the client is gone");
        got.insert(uri);
    }
    got
}

/// Asserts that no update arrives for [`QUIET`].
async fn no_updates(rx: &mut Updates, what: &str) {
    if let Ok(Some(uri)) = tokio::time::timeout(QUIET, rx.recv()).await {
        panic!("{what}: notified of {uri}");
    }
}

fn set(uris: &[&str]) -> BTreeSet<String> {
    uris.iter().map(|u| (*u).to_owned()).collect()
}

/// `swarm findings put` from another process; returns the new id.
async fn cli_put(redis: &RedisServer, title: &str) -> String {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_swarm"))
        .args(["findings", "put", "--json", "--title", title, "--body"])
        .arg(format!("{title}, stored by the CLI"))
        .env("REDIS_URL", redis.url())
        .env_remove("SWARM_NAMESPACE")
        .env_remove("SWARM_MEMORY")
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run swarm findings put");
    assert!(
        out.status.success(),
        "swarm findings put: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "swarm findings put --json ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    v["id"].as_str().expect("an id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_advertises_subscribable_findings_and_a_template() {
    let redis = RedisServer::start();
    let (client, _rx) = connect(&redis).await;
    let info = client.peer_info().expect("the server's initialize result");
    let resources = info
        .capabilities
        .resources
        .as_ref()
        .expect("resources advertised");
    assert_eq!(resources.subscribe, Some(true), "{resources:?}");

    let listed = client.list_all_resources().await.unwrap();
    let feed = listed
        .iter()
        .find(|r| r.uri == FEED)
        .unwrap_or_else(|| panic!("{FEED} not listed: {listed:?}"));
    assert_eq!(feed.mime_type.as_deref(), Some("application/json"));
    let templates = client.list_all_resource_templates().await.unwrap();
    assert!(
        templates.iter().any(|t| t.uri_template == TEMPLATE),
        "{TEMPLATE} not listed: {templates:?}"
    );
    client.cancel().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_are_read_newest_first_one_by_id_and_an_unknown_one_is_not_found() {
    let redis = RedisServer::start();
    let (client, _rx) = connect(&redis).await;
    let empty = read(&client, FEED).await;
    assert_eq!(empty, json!({ "findings": [] }));

    let first = put(&client, "sentinel failover takes 9 s", "measured twice").await;
    // Distinct creation times, so that "newest first" has one answer.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let long_body = "x".repeat(700);
    let second = put(&client, "a long report", &long_body).await;

    // The feed: {"findings": [...]}, newest first, as search_findings lists
    // them (long bodies cut, marked truncated).
    let feed = read(&client, FEED).await;
    let findings = feed["findings"].as_array().unwrap();
    let ids: Vec<&str> = findings.iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [second.as_str(), first.as_str()], "{feed}");
    assert_eq!(findings[1]["title"], "sentinel failover takes 9 s");
    assert_eq!(findings[1]["body"], "measured twice");
    assert_eq!(findings[1]["key"], format!("finding:{first}"));
    assert_eq!(findings[0]["truncated"], true, "{feed}");
    assert!(findings[0]["body"].as_str().unwrap().len() < long_body.len());

    // One finding in full, as get_finding gives it.
    let one = read(&client, &finding_uri(&second)).await;
    assert_eq!(one["id"], second.as_str());
    assert_eq!(one["body"], long_body.as_str());
    assert_eq!(
        one,
        ok(&client, "get_finding", json!({ "id": second })).await
    );
    let one = read(&client, &finding_uri(&first)).await;
    assert_eq!(one["body"], "measured twice");

    // Listed: the feed and each finding.
    let listed: BTreeSet<String> = client
        .list_all_resources()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.uri)
        .collect();
    assert_eq!(
        listed,
        set(&[FEED, &finding_uri(&first), &finding_uri(&second)])
    );

    // Unknown: "resource not found" (-32002) naming the URI, for an id not
    // stored, one that cannot be an id, and a URI that is not ours.
    for uri in [
        "swarm://findings/no_such_finding",
        "swarm://findings/a:b",
        "file:///etc/passwd",
    ] {
        let e = read_refused(&client, uri).await;
        assert_eq!(e.code, ErrorCode::RESOURCE_NOT_FOUND, "{uri}: {e:?}");
        assert_eq!(e.code.0, -32002);
        assert_eq!(e.data, Some(json!({ "uri": uri })), "{uri}");
        assert!(!e.message.is_empty());
    }
    // The session goes on.
    assert_eq!(
        read(&client, FEED).await["findings"][0]["id"],
        second.as_str()
    );
    client.cancel().await.unwrap();
}

/// The server sends `swarm://findings` for every new finding and new
/// version and `swarm://findings/<id>` for a new version of that one,
/// whoever wrote it: the CLI, redis-cli (adopted), another MCP session. A
/// deletion sends nothing (the bus does not announce it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_is_told_of_what_other_processes_store_until_it_unsubscribes() {
    let redis = RedisServer::start();
    let (client, mut rx) = connect(&redis).await;
    let (other, _other_rx) = connect(&redis).await;

    // Unknown URIs cannot be subscribed to.
    let refused = try_subscribe(&client, "file:///etc/passwd").await;
    assert!(
        matches!(&refused, Err(ServiceError::McpError(e)) if e.code == ErrorCode::RESOURCE_NOT_FOUND),
        "{refused:?}"
    );
    // Nothing is sent before a subscription.
    cli_put(&redis, "before any subscription").await;
    no_updates(&mut rx, "not subscribed").await;

    subscribe(&client, FEED).await;
    // Another process: the CLI. The subscription is live once subscribe
    // returned, so the first finding stored after it is notified.
    let from_cli = cli_put(&redis, "from the command line").await;
    assert_eq!(updates(&mut rx, 1, "CLI put").await, set(&[FEED]));
    // A raw key from redis-cli, adopted by the server.
    redis.cli(&["SET", "finding:raw_note", "written with redis-cli"]);
    assert_eq!(updates(&mut rx, 1, "raw key adopted").await, set(&[FEED]));
    // Another MCP session.
    put(&other, "from another session", "b").await;
    assert_eq!(updates(&mut rx, 1, "other session put").await, set(&[FEED]));
    let feed = read(&client, FEED).await;
    assert_eq!(feed["findings"].as_array().map(Vec::len), Some(4), "{feed}");

    // One finding: its update notifies the feed and it.
    let one = finding_uri(&from_cli);
    subscribe(&client, &one).await;
    let v = ok(
        &other,
        "update_finding",
        json!({ "id": from_cli, "body": "corrected: 3 replicas" }),
    )
    .await;
    assert_eq!(v["version"], 2, "{v}");
    assert_eq!(
        updates(&mut rx, 2, "update").await,
        set(&[FEED, one.as_str()])
    );
    assert_eq!(read(&client, &one).await["body"], "corrected: 3 replicas");

    // Without the feed: only that finding's changes.
    unsubscribe(&client, FEED).await;
    put(&other, "unrelated", "b").await;
    no_updates(&mut rx, "feed unsubscribed").await;
    ok(
        &other,
        "update_finding",
        json!({ "id": from_cli, "body": "v3" }),
    )
    .await;
    assert_eq!(updates(&mut rx, 1, "update").await, set(&[one.as_str()]));
    // A deletion is not announced on channel:findings (the bus's
    // contract), so nothing is sent: the subscriber finds out by reading.
    // (If the bus comes to announce deletions, say so in mcp_resources.rs
    // and expect the notification here.)
    ok(&other, "delete_finding", json!({ "id": from_cli })).await;
    no_updates(&mut rx, "delete").await;
    let e = read_refused(&client, &one).await;
    assert_eq!(e.code, ErrorCode::RESOURCE_NOT_FOUND, "{e:?}");

    // Unsubscribed from everything: silence.
    unsubscribe(&client, &one).await;
    put(&other, "after unsubscribing", "b").await;
    cli_put(&redis, "after unsubscribing, from the CLI").await;
    no_updates(&mut rx, "unsubscribed").await;

    // And a new subscription works again.
    subscribe(&client, FEED).await;
    cli_put(&redis, "subscribed again").await;
    assert_eq!(updates(&mut rx, 1, "resubscribed").await, set(&[FEED]));
    client.cancel().await.unwrap();
    other.cancel().await.unwrap();
}

/// Protocol 2026-07-28 (`server/discover`, no `initialize`): a
/// `subscriptions/listen` stream is acknowledged with the URIs that are
/// the server's and carries `notifications/resources/updated` for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_listen_streams_updates_on_protocol_2026_07_28() {
    use rmcp::model::ProtocolVersion;
    let redis = RedisServer::start();
    let (handler, _rx) = recorder();
    let transport = TokioChildProcess::new(mcp_command(&redis)).expect("spawn swarm mcp");
    let client = handler
        .serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("server/discover with swarm mcp");

    let mut sub = client
        .peer()
        .listen(
            SubscriptionFilter::builder()
                .resource_subscriptions(vec![FEED.to_owned(), "file:///etc/passwd".to_owned()])
                .build(),
        )
        .await
        .expect("subscriptions/listen acknowledged");
    assert_eq!(
        sub.acknowledged().resource_subscriptions.as_deref(),
        Some(&[FEED.to_owned()][..]),
        "{:?}",
        sub.acknowledged()
    );

    // The stream listens on the bus just after its acknowledgment (see
    // mcp_resources.rs), so the writer keeps storing until one is notified.
    let writer = {
        let url = redis.url();
        tokio::spawn(async move {
            for i in 0.. {
                let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_swarm"))
                    .args(["findings", "put", "--title"])
                    .arg(format!("listened {i}"))
                    .args(["--body", "b"])
                    .env("REDIS_URL", &url)
                    .env_remove("SWARM_NAMESPACE")
                    .env_remove("SWARM_MEMORY")
                    .stdin(Stdio::null())
                    .output()
                    .await
                    .unwrap();
                assert!(out.status.success());
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let n = tokio::time::timeout(WAIT, sub.next())
        .await
        .unwrap_or_else(|_| panic!("no notification on the listen stream within {WAIT:?}"))
        .expect("a valid stream")
        .expect("the stream is open");
    writer.abort();
    let ServerNotification::ResourceUpdatedNotification(n) = n else {
        panic!("not a resource update: {n:?}")
    };
    assert_eq!(n.params.uri, FEED);
    sub.cancel().await.unwrap();
    client.cancel().await.unwrap();
}

/// A running `swarm serve` on a free port, killed on drop.
struct Serve {
    child: std::process::Child,
    base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(redis: &RedisServer) -> Serve {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_swarm"))
        .args(["serve", "--offline", "--listen", "127.0.0.1:0"])
        .env("REDIS_URL", redis.url())
        .env_remove("SWARM_NAMESPACE")
        .env_remove("SWARM_MEMORY")
        .env_remove("GEMINI_API_KEY_SHARD1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn swarm serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
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
                .to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Serve { child, base }
}

async fn connect_http(server: &Serve) -> (Client, Updates) {
    let (handler, rx) = recorder();
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", server.base)),
    );
    let client = handler
        .serve(transport)
        .await
        .expect("MCP handshake over HTTP");
    (client, rx)
}

/// `swarm serve` runs the same handler: two HTTP sessions subscribe, each
/// is notified on its own stream, and one unsubscribing leaves the other's
/// subscription alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_streamable_http_each_session_keeps_its_own_subscriptions() {
    let redis = RedisServer::start();
    let server = serve(&redis);
    let (a, mut a_rx) = connect_http(&server).await;
    let (b, mut b_rx) = connect_http(&server).await;

    subscribe(&a, FEED).await;
    subscribe(&b, FEED).await;
    cli_put(&redis, "to both sessions").await;
    assert_eq!(updates(&mut a_rx, 1, "session a").await, set(&[FEED]));
    assert_eq!(updates(&mut b_rx, 1, "session b").await, set(&[FEED]));

    unsubscribe(&b, FEED).await;
    put(&b, "stored by b, over http", "b").await;
    assert_eq!(
        updates(&mut a_rx, 1, "a after b unsubscribed").await,
        set(&[FEED])
    );
    no_updates(&mut b_rx, "b unsubscribed").await;
    no_updates(&mut a_rx, "a, one per finding").await;
    a.cancel().await.unwrap();
    b.cancel().await.unwrap();
}
