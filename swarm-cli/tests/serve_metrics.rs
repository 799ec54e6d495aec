//! `/metrics` of `swarm serve` after a scripted session, parsed as
//! Prometheus text: spend, calls and tokens per tier, model and bucket equal
//! the cost ledger as `swarm cost report --json` reads it; tasks queued, in
//! flight and dead equal what was done to them over MCP; librarian answers
//! and MCP tool latency histograms count the calls made through the server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod serve_support;

use std::collections::BTreeMap;

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde_json::{Value, json};
use serve_support::{RedisServer, SESSION, Serve, record_session, swarm, token};

fn args(v: Value) -> serde_json::Map<String, Value> {
    let Value::Object(m) = v else { unreachable!() };
    m
}

fn money(v: &Value) -> f64 {
    v.as_str()
        .map_or_else(|| v.as_f64().unwrap(), |s| s.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_counters_equal_the_ledger_and_the_task_queues() {
    let redis = RedisServer::start();
    let url = redis.url();
    let ns = Some("metrics");
    let read = token(&url, ns, "read");
    let write = token(&url, ns, "write");
    record_session(&url, ns);
    for n in 1..=3 {
        let out = swarm(&url, ns)
            .args(["task", "push", "--worker", "haiku-7", "--title"])
            .arg(format!("task {n}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let serve = Serve::start(&url, ns, &["--require-auth"]);

    // Over MCP: claim two tasks, fail one; ask the librarian (offline).
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", serve.base))
            .auth_header(write.clone()),
    );
    let client = ().serve(transport).await.unwrap();
    let mut claimed = Vec::new();
    for _ in 0..2 {
        let r = client
            .call_tool(
                CallToolRequestParams::new("claim_task")
                    .with_arguments(args(json!({"worker": "haiku-7"}))),
            )
            .await
            .unwrap();
        assert_ne!(r.is_error, Some(true), "{r:?}");
        let v = r.structured_content.clone().unwrap();
        claimed.push(v["task_id"].as_str().unwrap_or_default().to_string());
    }
    let r = client
        .call_tool(CallToolRequestParams::new("fail_task").with_arguments(args(
            json!({"task_id": claimed[0], "report": "malformed result"}),
        )))
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{r:?}");
    let r = client
        .call_tool(
            CallToolRequestParams::new("put_finding").with_arguments(args(
                json!({"title": "workers found the cache", "body": "cache reads are 10 % of input"}),
            )),
        )
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{r:?}");
    // An unknown task: the tool fails (HTTP 200, isError), counted so.
    let r = client
        .call_tool(
            CallToolRequestParams::new("complete_task")
                .with_arguments(args(json!({"task_id": "nope", "result": "x"}))),
        )
        .await
        .unwrap();
    assert_eq!(r.is_error, Some(true), "{r:?}");
    let r = client
        .call_tool(
            CallToolRequestParams::new("ask_librarian")
                .with_arguments(args(json!({"question": "what did the workers find?"}))),
        )
        .await
        .unwrap();
    assert_ne!(r.is_error, Some(true), "{r:?}");
    client.cancel().await.unwrap();

    let text = reqwest::Client::new()
        .get(format!("{}/metrics", serve.base))
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
    let value = |s: &prometheus_parse::Sample| match s.value {
        prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Untyped(v) => v,
        _ => f64::NAN,
    };
    let one = |name: &str| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name)
            .map(value)
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
    };
    // Sum of a metric's samples by one label (optionally one bucket).
    let sum_by = |name: &str, label: &str, bucket: Option<&str>| {
        let mut m: BTreeMap<String, f64> = BTreeMap::new();
        for s in scrape.samples.iter().filter(|s| s.metric == name) {
            if bucket.is_some_and(|b| s.labels.get("bucket") != Some(b)) {
                continue;
            }
            *m.entry(s.labels.get(label).unwrap().to_string())
                .or_default() += value(s);
        }
        m
    };

    let report: Value = serde_json::from_slice(
        &swarm(&url, ns)
            .args(["cost", "report", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let spend_tier = sum_by("swarm_ledger_spend_usd_total", "tier", None);
    let spend_model = sum_by("swarm_ledger_spend_usd_total", "model", None);
    let calls_tier = sum_by("swarm_model_calls_total", "tier", None);
    assert_eq!(spend_tier.len(), 3, "{spend_tier:?}\n{text}");
    for (key, by, spend) in [
        ("by_tier", "tier", &spend_tier),
        ("by_model", "model", &spend_model),
    ] {
        let totals = report[key].as_object().unwrap();
        assert_eq!(totals.len(), spend.len(), "{key}");
        for (name, t) in totals {
            let usd = money(&t["usd"]);
            assert!(
                (spend[name] - usd).abs() < 1e-9,
                "{by} {name}: metrics {} vs ledger {usd}",
                spend[name]
            );
        }
    }
    for (tier, t) in report["by_tier"].as_object().unwrap() {
        assert_eq!(
            calls_tier[tier] as u64,
            t["calls"].as_u64().unwrap(),
            "{tier}"
        );
        for (bucket, field) in [
            ("input", "input_tokens"),
            ("cache_read", "cache_read_tokens"),
            ("cache_write_5m", "cache_write_5m_tokens"),
            ("cache_write_1h", "cache_write_1h_tokens"),
            ("output", "output_tokens"),
        ] {
            let tokens = sum_by("swarm_tokens_total", "tier", Some(bucket));
            assert_eq!(
                tokens.get(tier).copied().unwrap_or(0.0) as u64,
                t["usage"][field].as_u64().unwrap(),
                "{tier} {bucket}"
            );
        }
    }
    // The scripted session's own figures, independent of the report.
    let haiku_input: u64 = SESSION.iter().filter(|c| c.0 == "haiku").map(|c| c.2).sum();
    assert_eq!(
        sum_by("swarm_tokens_total", "tier", Some("input"))["haiku"] as u64,
        haiku_input
    );
    assert!(spend_tier["sonnet"] > spend_tier["haiku"]);
    // 3 haiku calls of 4 haiku + sonnet calls; target 90 %.
    assert!((one("swarm_worker_call_share_ratio") - 0.75).abs() < 1e-9);
    assert!((one("swarm_worker_share_target_ratio") - 0.9).abs() < 1e-9);

    // Tasks: 3 pushed, 2 claimed, 1 of them failed.
    assert_eq!(one("swarm_tasks_queued"), 1.0, "{text}");
    assert_eq!(one("swarm_tasks_in_flight"), 1.0, "{text}");
    assert_eq!(one("swarm_tasks_dead"), 1.0, "{text}");

    // Through this server: one librarian answer, tool latencies.
    let answers = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "swarm_librarian_answers_total" && s.labels.get("outcome") == Some("ok")
        })
        .map(value);
    assert_eq!(answers, Some(1.0), "{text}");
    let claims = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "swarm_mcp_tool_duration_seconds_count"
                && s.labels.get("tool") == Some("claim_task")
        })
        .map(value);
    assert_eq!(claims, Some(2.0), "{text}");
    let failed = scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "swarm_mcp_tool_duration_seconds_count"
                && s.labels.get("tool") == Some("complete_task")
                && s.labels.get("outcome") == Some("error")
        })
        .map(value);
    assert_eq!(failed, Some(1.0), "{text}");
}

/// A librarian process whose first shard is cooling (a per-minute 429) fails
/// over to the second; `/metrics` of a `swarm serve` on the same Redis counts
/// that failover, whichever process made it.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_the_librarians_failovers_across_processes() {
    use wiremock::matchers::{header, method};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    let redis = RedisServer::start();
    let url = redis.url();
    let ns = Some("failovers");
    let read = token(&url, ns, "read");
    let out = swarm(&url, ns)
        .args(["findings", "put", "--json", "--title", "cache", "--body"])
        .arg("cache reads are 10 % of input")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let put: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = put["id"].as_str().unwrap().to_string();

    let gemini = MockServer::start().await;
    let cooling = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../swarm-gemini/tests/fixtures/transcribed/error-429-per-minute-free-tier.json"),
    )
    .unwrap();
    Mock::given(method("POST"))
        .and(header("x-goog-api-key", "test-failover-shard-1"))
        .respond_with(ResponseTemplate::new(429).set_body_raw(cooling, "application/json"))
        .mount(&gemini)
        .await;
    let answer = json!({"answer": "cache reads are 10 % of input", "citations": [id]});
    Mock::given(method("POST"))
        .and(header("x-goog-api-key", "test-failover-shard-2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "candidates": [{"content": {"parts": [{"text": answer.to_string()}], "role": "model"}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 300, "candidatesTokenCount": 20, "totalTokenCount": 320}
        })))
        .mount(&gemini)
        .await;

    let mut ask = swarm(&url, ns);
    ask.env("GEMINI_BASE_URL", gemini.uri())
        .env("GEMINI_API_KEY_SHARD1", "test-failover-shard-1")
        .env("GEMINI_API_KEY_SHARD2", "test-failover-shard-2")
        // The prices and model lifecycle of a fixed day, whatever day this runs.
        .args(["--now", "2026-12-02T09:00:00Z", "librarian", "ask"])
        .arg("what share of input are cache reads?");
    let out = tokio::task::spawn_blocking(move || ask.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("cache reads are 10 % of input"), "{stdout}");

    let serve = Serve::start(&url, ns, &["--require-auth"]);
    let text = reqwest::Client::new()
        .get(format!("{}/metrics", serve.base))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text");
    let failovers = scrape
        .samples
        .iter()
        .find(|s| s.metric == "swarm_librarian_failovers_total")
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        });
    assert_eq!(failovers, Some(1.0), "{text}");
}
