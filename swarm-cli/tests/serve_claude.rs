//! The real Claude Code CLI (npm `@anthropic-ai/claude-code@2.1.332`, found
//! through `SWARM_CLAUDE_BIN`) joins `swarm serve` over HTTP with a token
//! (`claude mcp add --transport http … --header "Authorization: Bearer …"`
//! in a fresh HOME) and stores a finding. The Messages API is a local
//! wiremock scripted as in the recorded runs
//! (`tests/fixtures/claude-code/SOURCES.md`): MCP tools are deferred, so the
//! model first calls `ToolSearch` with `select:mcp__swarm__put_finding`,
//! then the tool, then answers; every answer is streamed (SSE).
//!
//! Without the CLI the test says so and passes, except in CI (`CI` set),
//! where `.ci/run` installs it (unless npm was unreachable:
//! `SWARM_CLAUDE_SKIP` says why). Under libfaketime it skips, as
//! `claude_code_e2e.rs` does: Claude Code's own clock is not ours.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod serve_support;

use std::path::PathBuf;

use serde_json::{Value, json};
use serve_support::{RedisServer, Serve, token};
use swarmbus_core::FindingStore;
use swarmbus_core::keys::Namespace;
use swarmbus_redis::{RedisBus, RedisConfig};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const PUT_ID: &str = "toolu_serve_put_finding";
const SEARCH_ID: &str = "toolu_serve_tool_search";

const DEFAULT_BIN: &str = "/root/.cache/swarm/claude-code-2.1.332/node_modules/.bin/claude";

fn claude_bin() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SWARM_CLAUDE_BIN") {
        let p = PathBuf::from(p);
        if p.exists() {
            return Some(p);
        }
    }
    let d = PathBuf::from(DEFAULT_BIN);
    if d.exists() {
        return Some(d);
    }
    if let Ok(why) = std::env::var("SWARM_CLAUDE_SKIP") {
        eprintln!("SKIPPED: {why}");
        return None;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI: the Claude Code CLI is missing (SWARM_CLAUDE_BIN unset or wrong); .ci/run installs it"
    );
    eprintln!(
        "SKIPPED: the Claude Code CLI is not installed (set SWARM_CLAUDE_BIN; `npm install @anthropic-ai/claude-code@2.1.332`)"
    );
    None
}

fn under_faketime() -> bool {
    std::env::var_os("FAKETIME").is_some()
        || std::env::var("LD_PRELOAD").is_ok_and(|p| p.contains("faketime"))
}

fn sse(model: &str, block: Value, delta: Value, stop: &str) -> String {
    let events = [
        (
            "message_start",
            json!({"type":"message_start","message":{"id":"msg_serve","type":"message","role":"assistant",
                "model":model,"content":[],"stop_reason":null,"stop_sequence":null,
                "usage":{"input_tokens":100,"output_tokens":1,"cache_read_input_tokens":0,"cache_creation_input_tokens":0}}}),
        ),
        (
            "content_block_start",
            json!({"type":"content_block_start","index":0,"content_block":block}),
        ),
        (
            "content_block_delta",
            json!({"type":"content_block_delta","index":0,"delta":delta}),
        ),
        (
            "content_block_stop",
            json!({"type":"content_block_stop","index":0}),
        ),
        (
            "message_delta",
            json!({"type":"message_delta","delta":{"stop_reason":stop,"stop_sequence":null},"usage":{"output_tokens":20}}),
        ),
        ("message_stop", json!({"type":"message_stop"})),
    ];
    events
        .iter()
        .map(|(e, d)| format!("event: {e}\ndata: {d}\n\n"))
        .collect()
}

/// The scripted model: ToolSearch, then put_finding, then a text answer.
struct Script;

impl Respond for Script {
    fn respond(&self, req: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&req.body).unwrap_or_default();
        let model = body["model"]
            .as_str()
            .unwrap_or("claude-sonnet-5-5")
            .to_owned();
        let text = body.to_string();
        let has_tool = body["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["name"] == "mcp__swarm__put_finding"));
        let tool_use = |id: &str, name: &str, input: Value| {
            sse(
                &model,
                json!({"type":"tool_use","id":id,"name":name,"input":{}}),
                json!({"type":"input_json_delta","partial_json":input.to_string()}),
                "tool_use",
            )
        };
        let sse_body = if text.contains(PUT_ID) {
            sse(
                &model,
                json!({"type":"text","text":""}),
                json!({"type":"text_delta","text":"Stored the finding over HTTP."}),
                "end_turn",
            )
        } else if has_tool {
            tool_use(
                PUT_ID,
                "mcp__swarm__put_finding",
                json!({"title":"Claude Code over HTTP","body":"stored through swarm serve with a bearer token",
                       "tags":["http","claude-code"],"worker":"cc-remote","session":"cc-http"}),
            )
        } else if body["tools"].as_array().is_some_and(|t| !t.is_empty()) {
            tool_use(
                SEARCH_ID,
                "ToolSearch",
                json!({"query":"select:mcp__swarm__put_finding"}),
            )
        } else {
            // Side requests (titles, summaries): a plain answer.
            sse(
                &model,
                json!({"type":"text","text":""}),
                json!({"type":"text_delta","text":"ok"}),
                "end_turn",
            )
        };
        ResponseTemplate::new(200).set_body_raw(sse_body, "text/event-stream")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_claude_code_joins_over_http_with_a_token_and_stores_a_finding() {
    let Some(claude) = claude_bin() else {
        return;
    };
    if under_faketime() {
        eprintln!("SKIPPED under libfaketime: Claude Code's own clock is not ours");
        return;
    }
    let redis = RedisServer::start();
    let url = redis.url();
    let tok = token(&url, Some("cc"), "write");
    let serve = Serve::start(&url, Some("cc"), &["--require-auth"]);
    let api = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .respond_with(Script)
        .mount(&api)
        .await;

    let home = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&claude)
            .args(args)
            .current_dir(work.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .env("ANTHROPIC_BASE_URL", api.uri())
            .env("ANTHROPIC_API_KEY", "test-not-a-key")
            .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let mcp_url = format!("{}/mcp", serve.base);
    let auth = format!("Authorization: Bearer {tok}");
    let (ok, out, err) = run(&[
        "mcp",
        "add",
        "--transport",
        "http",
        "swarm",
        &mcp_url,
        "--header",
        &auth,
    ]);
    assert!(ok, "claude mcp add: {out}\n{err}");
    let (ok, out, err) = run(&[
        "-p",
        "Store a finding in the swarm with mcp__swarm__put_finding.",
        "--allowedTools",
        "mcp__swarm",
        "ToolSearch",
        "--output-format",
        "json",
    ]);
    assert!(ok, "claude -p: {out}\n{err}");
    let result: Value = serde_json::from_str(out.trim()).unwrap_or_else(|_| panic!("{out}"));
    assert_eq!(result["is_error"], false, "{result}");

    // The finding is in the cc namespace, with what the model sent.
    let bus = RedisBus::connect(
        RedisConfig::from_url(&url)
            .unwrap()
            .namespace(Namespace::new("cc").unwrap()),
    )
    .await
    .unwrap();
    let listing = bus
        .list_findings(&swarmbus_core::FindingFilter::all())
        .await
        .unwrap();
    assert_eq!(listing.findings.len(), 1, "one finding stored; {out}");
    let stored = &listing.findings[0];
    assert_eq!(stored.title, "Claude Code over HTTP");
    assert_eq!(stored.worker.as_str(), "cc-remote");
    let id = stored.id.to_string();
    let ids = [id.as_str()];
    // Nothing in the default namespace.
    assert_eq!(redis.cli(&["ZCARD", "swarm:findings"]).trim(), "0");
    // The model saw the tool's answer (the finding's id) in its last request.
    let requests = api.received_requests().await.unwrap();
    assert!(
        requests
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains(ids[0])),
        "the tool result carried the id"
    );
}
